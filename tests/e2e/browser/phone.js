// The test softphone: JsSIP in Chromium, driven by tests/e2e/browser.py.
//
// Everything is on window.phone; every method returns plain JSON (or a promise of it)
// so the driver can hand it back to Python:
//
//   await phone.start({wsUrl, uri, password, register, autoAnswer, debug})
//   phone.registered()                 -> true once the registrar said 200
//   await phone.register() / await phone.unregister()
//   phone.call(target)                 -> {id}: the INVITE goes out (state() follows it)
//   phone.answer() / phone.hangup()
//   await phone.hold() / await phone.unhold() / await phone.renegotiate({iceRestart})
//   phone.state()                      -> transport, registration, calls, lastError, events
//   phone.sdp()                        -> the last call's offers and answers, as on the wire
//   await phone.stats()                -> getStats() of the current call, plus both SDPs
//   phone.stop()
//
// Failures are kept, not thrown away: JsSIP's 'failed', 'registrationFailed' and
// peer-connection errors land in state().lastError and in the session's cause, and
// every event is logged to the console (which the driver copies to its stderr).
'use strict';

(() => {
  const PC_CONFIG = { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'max-bundle' };
  const MEDIA = { audio: true, video: false };
  const TIMEOUT_MS = 10_000;
  const MAX_EVENTS = 300;

  let ua = null;
  let settings = { autoAnswer: false };
  const calls = []; // one record per JsSIP RTCSession, oldest first
  const state = {
    transport: 'idle', // idle, connecting, connected, disconnected
    registration: 'none', // none, registered, unregistered, failed
    registrationCause: null,
    registerResponse: null, // the last final response to a REGISTER: status, Contact, Path
    lastError: null,
    events: [],
  };

  // -- what happened, for the test and for a human --------------------------------

  function note(what, detail) {
    const entry = { t: Math.round(performance.now()), what };
    if (detail !== undefined) entry.detail = detail;
    state.events.push(entry);
    if (state.events.length > MAX_EVENTS) state.events.shift();
    console.log(`phone: ${what}${detail === undefined ? '' : ' ' + JSON.stringify(detail)}`);
    render();
  }

  function failure(what, detail) {
    state.lastError = { what, ...detail };
    note(what, detail);
  }

  function render() {
    const status = document.getElementById('status');
    if (!status) return;
    const current = calls[calls.length - 1];
    status.textContent =
      `transport ${state.transport}, registration ${state.registration}` +
      (current ? `, call ${current.direction} ${current.status}` : '') +
      (state.lastError ? `, last error: ${JSON.stringify(state.lastError)}` : '');
    const log = document.getElementById('log');
    if (log) {
      log.textContent = state.events
        .slice(-40)
        .map((e) => `${e.t} ${e.what}${e.detail === undefined ? '' : ' ' + JSON.stringify(e.detail)}`)
        .join('\n');
    }
  }

  window.addEventListener('error', (event) =>
    failure('page error', { message: String(event.message) }),
  );
  window.addEventListener('unhandledrejection', (event) =>
    failure('unhandled rejection', { message: String(event.reason && event.reason.message || event.reason) }),
  );

  function registerResponse(response) {
    if (!response || !response.status_code) return;
    state.registerResponse = {
      status: response.status_code,
      contact: response.getHeaders('Contact'),
      path: response.getHeaders('Path'),
    };
  }

  function message(error) {
    return error && error.message ? error.message : String(error);
  }

  // -- calls ------------------------------------------------------------------------

  function summary(call) {
    return {
      id: call.id,
      direction: call.direction,
      status: call.status,
      remote: call.remote,
      responses: call.responses.slice(),
      cause: call.cause,
      endedBy: call.endedBy,
      onHold: call.session.isOnHold(),
      candidates: call.candidates.slice(),
      iceConnectionState: call.pc ? call.pc.iceConnectionState : null,
      connectionState: call.pc ? call.pc.connectionState : null,
    };
  }

  function watchPeerConnection(call, pc) {
    if (call.pc === pc) return;
    call.pc = pc;
    pc.addEventListener('track', (event) => {
      const audio = document.getElementById('remote');
      audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      audio.play().catch((error) => note('audio play refused', { message: message(error) }));
      note('remote track', { id: call.id, kind: event.track.kind });
    });
    pc.addEventListener('iceconnectionstatechange', () =>
      note('ice state', { id: call.id, state: pc.iceConnectionState }),
    );
    pc.addEventListener('connectionstatechange', () =>
      note('connection state', { id: call.id, state: pc.connectionState }),
    );
  }

  function track(session, direction, request) {
    const call = {
      id: session.id,
      direction,
      session,
      status: direction === 'incoming' ? 'ringing' : 'connecting',
      remote: session.remote_identity ? session.remote_identity.uri.toString() : null,
      responses: [], // status codes of the responses to the INVITE, in order
      cause: null,
      endedBy: null,
      candidates: [], // local ICE candidates as gathered
      sdp: [], // every offer and answer, as sent or received: {originator, type, sdp}
      pc: null,
    };
    calls.push(call);
    note('new call', { id: call.id, direction, remote: call.remote, method: request && request.method });

    const responded = (response) => {
      if (response && response.status_code) call.responses.push(response.status_code);
    };
    const set = (status, detail) => {
      call.status = status;
      note(`call ${status}`, { id: call.id, ...detail });
    };

    session.on('peerconnection', ({ peerconnection }) => watchPeerConnection(call, peerconnection));
    if (session.connection) watchPeerConnection(call, session.connection);
    session.on('connecting', () => set('connecting'));
    session.on('sending', () => set('sending'));
    session.on('progress', ({ originator, response }) => {
      if (originator === 'remote') responded(response);
      set('progress', { status: response ? response.status_code : null });
    });
    session.on('accepted', ({ originator, response }) => {
      if (originator === 'remote') responded(response);
      set('accepted', { originator });
    });
    session.on('confirmed', ({ originator }) => set('confirmed', { originator }));
    session.on('ended', ({ originator, cause }) => {
      call.cause = cause;
      call.endedBy = originator;
      set('ended', { originator, cause });
    });
    session.on('failed', ({ originator, cause, message: response }) => {
      if (originator === 'remote' && response && response.status_code) responded(response);
      call.cause = cause;
      call.endedBy = originator;
      call.status = 'failed';
      failure('call failed', {
        id: call.id,
        originator,
        cause,
        status: response && response.status_code ? response.status_code : null,
      });
    });
    session.on('sdp', ({ originator, type, sdp }) => call.sdp.push({ originator, type, sdp }));
    session.on('icecandidate', ({ candidate }) => {
      if (candidate && candidate.candidate) call.candidates.push(candidate.candidate);
    });
    session.on('hold', ({ originator }) => note('hold', { id: call.id, originator }));
    session.on('unhold', ({ originator }) => note('unhold', { id: call.id, originator }));
    session.on('reinvite', () => note('re-INVITE received', { id: call.id }));
    session.on('update', () => note('UPDATE received', { id: call.id }));
    session.on('getusermediafailed', (error) =>
      failure('getUserMedia failed', { id: call.id, message: message(error) }),
    );
    for (const event of [
      'peerconnection:createofferfailed',
      'peerconnection:createanswerfailed',
      'peerconnection:setlocaldescriptionfailed',
      'peerconnection:setremotedescriptionfailed',
    ]) {
      session.on(event, (error) => failure(event, { id: call.id, message: message(error) }));
    }
    return call;
  }

  function live() {
    for (let i = calls.length - 1; i >= 0; i--) {
      if (!calls[i].session.isEnded()) return calls[i];
    }
    return null;
  }

  function current() {
    const call = live();
    if (!call) throw new Error('no call under way');
    return call;
  }

  function callOptions() {
    return { mediaConstraints: MEDIA, pcConfig: PC_CONFIG };
  }

  // hold, unhold, renegotiate: settle when the re-INVITE's answer is applied, or the
  // call ends (JsSIP ends it when a re-INVITE fails), or after TIMEOUT_MS.
  function reoffer(method, options) {
    const call = current();
    const session = call.session;
    return new Promise((resolve, reject) => {
      const finish = (error) => {
        clearTimeout(timer);
        session.off('ended', onEnd);
        session.off('failed', onEnd);
        if (error) {
          failure(`${method} failed`, { id: call.id, message: error.message });
          reject(error);
        } else {
          note(`${method} done`, { id: call.id });
          resolve(summary(call));
        }
      };
      const onEnd = ({ cause }) => finish(new Error(`${method}: the call ended (${cause})`));
      const timer = setTimeout(
        () => finish(new Error(`${method}: no answer within ${TIMEOUT_MS} ms`)),
        TIMEOUT_MS,
      );
      session.on('ended', onEnd);
      session.on('failed', onEnd);
      if (!session[method](options, () => finish(null))) {
        finish(new Error(`${method}: not possible now (call ${call.status})`));
      }
    });
  }

  // -- registration -----------------------------------------------------------------

  function requireUa() {
    if (!ua) throw new Error('phone.start() first');
    return ua;
  }

  function until(events, failures, timeoutMs, what) {
    const agent = requireUa();
    return new Promise((resolve, reject) => {
      const handlers = [];
      const done = (fn, value) => {
        clearTimeout(timer);
        for (const [name, handler] of handlers) agent.off(name, handler);
        fn(value);
      };
      for (const name of events) {
        const handler = () => done(resolve, name);
        handlers.push([name, handler]);
        agent.on(name, handler);
      }
      for (const name of failures) {
        const handler = (data) =>
          done(reject, new Error(`${what}: ${name}${data && data.cause ? ` (${data.cause})` : ''}`));
        handlers.push([name, handler]);
        agent.on(name, handler);
      }
      const timer = setTimeout(
        () => done(reject, new Error(`${what}: nothing within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
  }

  // -- the API ----------------------------------------------------------------------

  window.phone = {
    async start({
      wsUrl,
      uri,
      password,
      register = false,
      autoAnswer = false,
      registerExpires = 600,
      debug = false,
    }) {
      if (ua) throw new Error('already started');
      if (debug) JsSIP.debug.enable('JsSIP:*');
      else JsSIP.debug.disable();
      settings = { autoAnswer };
      const configuration = {
        sockets: [new JsSIP.WebSocketInterface(wsUrl)],
        uri,
        register,
        register_expires: registerExpires,
        session_timers: false,
        user_agent: `Wedge test phone (JsSIP ${JsSIP.version})`,
      };
      if (password) configuration.password = password;
      ua = new JsSIP.UA(configuration);

      ua.on('connecting', () => {
        state.transport = 'connecting';
        note('transport connecting', { url: wsUrl });
      });
      ua.on('connected', () => {
        state.transport = 'connected';
        note('transport connected');
      });
      ua.on('disconnected', ({ error, code, reason }) => {
        state.transport = 'disconnected';
        if (error) failure('transport disconnected', { code, reason: reason || null });
        else note('transport disconnected', { code });
      });
      ua.on('registered', ({ response }) => {
        registerResponse(response);
        state.registration = 'registered';
        state.registrationCause = null;
        note('registered', { status: response.status_code });
      });
      ua.on('unregistered', ({ response, cause }) => {
        registerResponse(response);
        state.registration = 'unregistered';
        state.registrationCause = cause || null;
        note('unregistered', { status: response ? response.status_code : null, cause: cause || null });
      });
      ua.on('registrationFailed', ({ response, cause }) => {
        registerResponse(response);
        state.registration = 'failed';
        state.registrationCause = cause;
        failure('registration failed', {
          cause,
          status: response ? response.status_code : null,
        });
      });
      ua.on('newRTCSession', ({ originator, session, request }) => {
        const call = track(session, originator === 'local' ? 'outgoing' : 'incoming', request);
        if (call.direction === 'incoming' && settings.autoAnswer) {
          note('answering automatically', { id: call.id });
          session.answer(callOptions());
        }
      });

      const connected = until(['connected'], ['disconnected'], TIMEOUT_MS, 'connect');
      ua.start();
      await connected;
      return this.state();
    },

    sdp() {
      const call = calls[calls.length - 1];
      return call ? call.sdp.slice() : [];
    },

    registered() {
      return ua ? ua.isRegistered() : false;
    },

    async register() {
      const done = until(['registered'], ['registrationFailed'], TIMEOUT_MS, 'register');
      requireUa().register();
      await done;
      return this.state();
    },

    async unregister() {
      const done = until(['unregistered'], ['registrationFailed'], TIMEOUT_MS, 'unregister');
      requireUa().unregister();
      await done;
      return this.state();
    },

    call(target) {
      const session = requireUa().call(target, callOptions());
      return { id: session.id };
    },

    answer() {
      const call = current();
      if (call.direction !== 'incoming' || call.status !== 'ringing') {
        throw new Error(`no incoming call ringing (call ${call.direction} ${call.status})`);
      }
      call.session.answer(callOptions());
      return summary(call);
    },

    hangup() {
      const call = current();
      call.session.terminate();
      return summary(call);
    },

    hold() {
      return reoffer('hold', {});
    },

    unhold() {
      return reoffer('unhold', {});
    },

    renegotiate({ iceRestart = false } = {}) {
      return reoffer('renegotiate', { rtcOfferConstraints: { iceRestart } });
    },

    state() {
      return {
        transport: state.transport,
        registration: state.registration,
        registrationCause: state.registrationCause,
        registerResponse: state.registerResponse,
        registered: this.registered(),
        calls: calls.map(summary),
        call: calls.length ? summary(calls[calls.length - 1]) : null,
        lastError: state.lastError,
        events: state.events.slice(),
      };
    },

    async stats() {
      const call = [...calls].reverse().find((c) => c.pc);
      if (!call) return null;
      const pc = call.pc;
      const result = {
        id: call.id,
        signalingState: pc.signalingState,
        iceConnectionState: pc.iceConnectionState,
        connectionState: pc.connectionState,
        inbound: null,
        outbound: null,
        source: null,
        transport: null,
        candidatePair: null,
        localSdp: pc.localDescription ? pc.localDescription.sdp : null,
        remoteSdp: pc.remoteDescription ? pc.remoteDescription.sdp : null,
      };
      let report;
      try {
        report = await pc.getStats();
      } catch (error) {
        result.error = message(error);
        return result;
      }
      const byId = new Map();
      report.forEach((entry) => byId.set(entry.id, entry));
      const pick = (entry, keys) =>
        Object.fromEntries(keys.filter((k) => entry[k] !== undefined).map((k) => [k, entry[k]]));
      const candidate = (id) =>
        byId.has(id)
          ? pick(byId.get(id), ['candidateType', 'protocol', 'address', 'port'])
          : null;
      let transport = null;
      for (const entry of byId.values()) {
        if (entry.type === 'inbound-rtp' && entry.kind === 'audio') {
          result.inbound = pick(entry, [
            'packetsReceived', 'bytesReceived', 'packetsLost', 'jitter', 'audioLevel',
            'totalAudioEnergy', 'totalSamplesDuration', 'totalSamplesReceived',
            'concealedSamples', 'packetsDiscarded', 'lastPacketReceivedTimestamp', 'ssrc',
          ]);
          const codec = byId.get(entry.codecId);
          if (codec) result.inbound.codec = codec.mimeType;
        } else if (entry.type === 'outbound-rtp' && entry.kind === 'audio') {
          result.outbound = pick(entry, ['packetsSent', 'bytesSent', 'ssrc']);
          const codec = byId.get(entry.codecId);
          if (codec) result.outbound.codec = codec.mimeType;
        } else if (entry.type === 'media-source' && entry.kind === 'audio') {
          result.source = pick(entry, ['audioLevel', 'totalAudioEnergy', 'totalSamplesDuration']);
        } else if (entry.type === 'transport') {
          transport = entry;
        }
      }
      let pair = null;
      if (transport) {
        result.transport = pick(transport, [
          'iceState', 'dtlsState', 'dtlsRole', 'srtpCipher', 'tlsVersion', 'selectedCandidatePairChanges',
        ]);
        pair = byId.get(transport.selectedCandidatePairId) || null;
      }
      if (!pair) {
        pair = [...byId.values()].find(
          (e) => e.type === 'candidate-pair' && e.nominated && e.state === 'succeeded',
        ) || null;
      }
      if (pair) {
        result.candidatePair = {
          ...pick(pair, ['state', 'nominated', 'bytesSent', 'bytesReceived', 'currentRoundTripTime']),
          local: candidate(pair.localCandidateId),
          remote: candidate(pair.remoteCandidateId),
        };
      }
      return result;
    },

    stop() {
      if (ua) ua.stop();
      return this.state();
    },
  };

  note('ready', { jssip: JsSIP.version });
})();
