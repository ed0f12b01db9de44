// The softphone's state and its JsSIP user agent. The page (app.js) calls the methods
// and renders ``phone.state`` on every 'change' event; nothing here touches the DOM
// except the remote <audio> element handed to the constructor.
//
// state = {
//   connection:   'idle' | 'connecting' | 'connected' | 'reconnecting'
//   registration: 'none' | 'registering' | 'registered' | 'unregistering' | 'failed'
//   name, server
//   call: null | { direction: 'outgoing' | 'incoming', peer, status, muted, localHold,
//                  remoteHold, answeredAt }
//         status: 'calling' | 'ringing' (they ring) | 'incoming' (we ring) | 'answering'
//                 | 'up' | 'ended'
//   heard: the digits 602 read back last, or null
//   message: null | { text, kind: 'error' | 'info' }
// }

import { callProblem, connectionProblem, microphoneProblem, registrationProblem, sipFailure } from './messages.js';
import { microphone } from './audio.js';

const PC_CONFIG = { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'max-bundle' };
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

export class Phone extends EventTarget {
  constructor(remoteAudio) {
    super();
    this.remoteAudio = remoteAudio;
    this.ua = null;
    this.session = null;
    this.stream = null;
    this.everConnected = false;
    this.state = {
      connection: 'idle',
      registration: 'none',
      name: null,
      server: null,
      call: null,
      heard: null,
      message: null,
    };
  }

  // -- state --------------------------------------------------------------------------

  set(changes) {
    Object.assign(this.state, changes);
    this.dispatchEvent(new Event('change'));
  }

  setCall(changes) {
    if (!this.state.call) return;
    this.set({ call: { ...this.state.call, ...changes } });
  }

  tell(text, kind = 'error') {
    this.set({ message: text ? { text, kind } : null });
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  get domain() {
    try {
      return new URL(this.state.server.replace(/^ws/, 'http')).hostname;
    } catch {
      return location.hostname;
    }
  }

  // -- registration -------------------------------------------------------------------

  register(name, password, server) {
    name = name.trim();
    if (!NAME.test(name)) {
      this.tell('Enter a name of letters and digits (dot, dash and underscore allowed, 32 characters at most).');
      return false;
    }
    if (!/^wss?:\/\//.test(server)) {
      this.tell(`The server URL must start with wss:// (got "${server}").`);
      return false;
    }
    if (typeof JsSIP === 'undefined') {
      this.tell('JsSIP did not load (dist/jssip.js): run `npm ci` in web-demo and reload.');
      return false;
    }
    this.stop();
    this.everConnected = false;
    this.set({ name, server, connection: 'connecting', registration: 'registering', message: null });
    const socket = new JsSIP.WebSocketInterface(server);
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${name}@${this.domain}`,
      password: password || undefined,
      display_name: name,
      register: true,
      register_expires: 300,
      session_timers: false,
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 10,
      user_agent: `Wedge web demo (JsSIP ${JsSIP.version})`,
    });
    this.ua = ua;
    const mine = (handler) => (event) => {
      if (this.ua === ua) handler(event);
    };
    ua.on('connecting', mine(() => {
      if (!this.everConnected) this.set({ connection: 'connecting' });
    }));
    ua.on('connected', mine(() => {
      this.everConnected = true;
      this.set({ connection: 'connected' });
    }));
    ua.on('disconnected', mine(() => this.disconnected()));
    ua.on('registered', mine(() => this.set({ registration: 'registered', message: null })));
    ua.on('unregistered', mine(() => {
      if (this.state.registration !== 'failed') this.set({ registration: 'none' });
    }));
    ua.on('registrationFailed', mine((event) => {
      const failure = sipFailure(event);
      if (failure.cause === 'Connection Error') return; // disconnected() explains
      this.tell(registrationProblem(failure, name));
      this.set({ registration: 'failed' });
      this.stop(); // a refusal will not change by asking again
    }));
    ua.on('newRTCSession', mine(({ session, originator }) => {
      if (originator === 'remote') this.incoming(session);
    }));
    ua.start();
    return true;
  }

  async disconnected() {
    if (this.everConnected) {
      // JsSIP reconnects (and registers again) by itself.
      this.set({ connection: 'reconnecting' });
      this.tell('The connection to Wedge was lost; reconnecting…', 'info');
      return;
    }
    // Never connected: say why, and stop trying until the user asks again.
    const server = this.state.server;
    this.stop();
    this.set({ connection: 'idle', registration: 'failed' });
    this.tell(connectionProblem(server, await reachable(server)));
  }

  unregister() {
    if (!this.ua) return;
    this.hangup();
    this.set({ registration: 'unregistering' });
    const ua = this.ua;
    ua.once('unregistered', () => this.stop());
    ua.unregister();
    setTimeout(() => {
      if (this.ua === ua) this.stop();
    }, 3000);
  }

  stop() {
    const ua = this.ua;
    this.ua = null;
    if (ua) {
      try {
        ua.stop();
      } catch {
        // already stopped
      }
    }
    if (this.session) this.endCall(null);
    const registration = this.state.registration === 'failed' ? 'failed' : 'none';
    this.set({ connection: 'idle', registration });
  }

  // -- calls --------------------------------------------------------------------------

  async call(target) {
    target = target.trim();
    if (!target) {
      this.tell('Enter a number (600, 601, 602) or the name of someone registered.');
      return;
    }
    if (!this.ua || this.state.registration !== 'registered') {
      this.tell('Register first: a call needs a registered phone.');
      return;
    }
    if (this.session) return;
    const uri = target.includes('@') ? `sip:${target.replace(/^sips?:/, '')}` : `sip:${target}@${this.domain}`;
    this.set({
      call: { direction: 'outgoing', peer: target, status: 'calling', muted: false, localHold: false, remoteHold: false, answeredAt: null },
      heard: null,
      message: null,
    });
    try {
      this.stream = await microphone();
    } catch (error) {
      this.tell(microphoneProblem(error));
      this.set({ call: null });
      return;
    }
    if (!this.state.call || !this.ua) {
      this.releaseMicrophone();
      return;
    }
    this.emit('microphone', this.stream);
    const session = this.ua.call(uri, {
      mediaStream: this.stream,
      pcConfig: PC_CONFIG,
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      eventHandlers: { peerconnection: ({ peerconnection }) => this.watch(peerconnection) },
    });
    this.track(session, target);
  }

  incoming(session) {
    const peer = session.remote_identity.display_name || session.remote_identity.uri.user;
    if (this.session) {
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    session.on('peerconnection', ({ peerconnection }) => this.watch(peerconnection));
    this.set({
      call: { direction: 'incoming', peer, status: 'incoming', muted: false, localHold: false, remoteHold: false, answeredAt: null },
      heard: null,
    });
    this.track(session, peer);
  }

  async answer() {
    const session = this.session;
    if (!session || !this.state.call || this.state.call.status !== 'incoming') return;
    this.setCall({ status: 'answering' });
    try {
      this.stream = await microphone();
    } catch (error) {
      this.tell(microphoneProblem(error));
      if (this.session === session) session.terminate({ status_code: 480, reason_phrase: 'Microphone Unavailable' });
      return;
    }
    if (this.session !== session) {
      this.releaseMicrophone();
      return;
    }
    this.emit('microphone', this.stream);
    session.answer({ mediaStream: this.stream, pcConfig: PC_CONFIG });
  }

  reject() {
    if (this.session && this.state.call && this.state.call.direction === 'incoming' && !this.state.call.answeredAt) {
      this.session.terminate({ status_code: 603, reason_phrase: 'Decline' });
    }
  }

  hangup() {
    if (!this.session) return;
    try {
      this.session.terminate();
    } catch {
      this.endCall(null);
    }
  }

  toggleMute() {
    const session = this.session;
    if (!session || !this.state.call || !this.state.call.answeredAt) return;
    if (session.isMuted().audio) session.unmute({ audio: true });
    else session.mute({ audio: true });
  }

  toggleHold() {
    const session = this.session;
    if (!session || !this.state.call || !this.state.call.answeredAt) return;
    if (session.isOnHold().local) session.unhold();
    else session.hold();
  }

  dtmf(key) {
    const session = this.session;
    if (!session || !this.state.call || this.state.call.status !== 'up') return false;
    session.sendDTMF(key, { transportType: 'RFC2833', duration: 160, interToneGap: 70 });
    return true;
  }

  // -- one call's events ----------------------------------------------------------------

  track(session, peer) {
    this.session = session;
    session.on('progress', () => {
      if (this.session === session && this.state.call.direction === 'outgoing') this.setCall({ status: 'ringing' });
    });
    session.on('accepted', () => {
      if (this.session === session) this.setCall({ status: 'up', answeredAt: Date.now() });
    });
    session.on('confirmed', () => {
      if (this.session === session && this.state.call.status !== 'up') this.setCall({ status: 'up', answeredAt: Date.now() });
    });
    session.on('muted', () => this.setCall({ muted: true }));
    session.on('unmuted', () => this.setCall({ muted: false }));
    session.on('hold', ({ originator }) =>
      this.setCall(originator === 'local' ? { localHold: true } : { remoteHold: true }),
    );
    session.on('unhold', ({ originator }) =>
      this.setCall(originator === 'local' ? { localHold: false } : { remoteHold: false }),
    );
    session.on('newInfo', ({ originator, info, request }) => {
      if (originator !== 'remote') return;
      const type = (info && info.contentType) || (request && request.getHeader('Content-Type')) || '';
      const body = (info && info.body) || (request && request.body) || '';
      if (/^text\/plain/i.test(type) && body.trim()) this.set({ heard: body.trim() });
    });
    session.on('ended', (event) => {
      if (this.session !== session) return;
      const why = event.originator === 'remote' ? reasonText(event.message) : null;
      const who = this.state.call ? this.state.call.peer : peer;
      this.endCall(event.originator === 'remote' ? (why ? `Call ended: ${why}.` : `${who} hung up.`) : null, 'info');
    });
    session.on('failed', (event) => {
      if (this.session !== session) return;
      const failure = sipFailure(event);
      const call = this.state.call;
      let text;
      if (call && call.direction === 'incoming' && event.originator === 'remote') {
        text = `Missed call from ${call.peer}.`; // the caller gave up first
      } else if (event.originator === 'local' && (failure.cause === 'Canceled' || failure.cause === 'Rejected')) {
        text = null; // the user's own choice
      } else {
        text = callProblem(failure, call ? call.peer : peer);
      }
      this.endCall(text, text && text.startsWith('Missed') ? 'info' : 'error');
    });
  }

  watch(pc) {
    pc.addEventListener('track', (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      this.remoteAudio.srcObject = stream;
      this.remoteAudio.play().catch(() => {
        this.tell('The browser blocked the call\'s sound: click anywhere on the page to hear it.', 'info');
      });
    });
    this.emit('peerconnection', pc);
  }

  endCall(text, kind = 'error') {
    this.session = null;
    this.releaseMicrophone();
    this.remoteAudio.srcObject = null;
    this.set({ call: null });
    if (text) this.tell(text, kind);
  }

  releaseMicrophone() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    this.emit('microphone', null);
  }

  get peerConnection() {
    return this.session ? this.session.connection : null;
  }
}

/** The text of a BYE's Reason header (RFC 3326), e.g. "bob's browser went away". */
function reasonText(message) {
  if (!message || typeof message.getHeader !== 'function') return null;
  const value = message.getHeader('Reason');
  const match = value && /text="((?:[^"\\]|\\.)*)"/.exec(value);
  return match ? match[1].replace(/\\(.)/g, '$1') : null;
}

/** Whether an HTTPS request to the WebSocket's host and port gets any answer. */
async function reachable(server) {
  const url = server.replace(/^wss:/, 'https:').replace(/^ws:/, 'http:');
  try {
    await fetch(url, { mode: 'no-cors', cache: 'no-store' });
    return true;
  } catch {
    return false;
  }
}
