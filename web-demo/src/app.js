// The page: wires the form, the dial pad and the buttons to the Phone (phone.js), and
// renders its state. Keyboard: digits dial (or send DTMF in a call), Enter calls,
// Escape rejects a ringing call. Screen readers hear the registration and call state
// (role=status), failures (role=alert) and incoming calls (role=alertdialog).
//
// window.wedgeDemo is a read-only view for tests and for the curious:
//   wedgeDemo.state()  -> the phone's state, plus the visible texts
//   wedgeDemo.stats()  -> the call's getStats() summary (stats.js), or null

import { LevelMeter, audioContext, keyTone, ring, ringback } from './audio.js';
import { Phone } from './phone.js';
import { collect, describe } from './stats.js';

const $ = (id) => document.getElementById(id);
const el = {
  form: $('register-form'),
  name: $('name'),
  password: $('password'),
  server: $('server'),
  register: $('register'),
  unregister: $('unregister'),
  registrationDot: $('registration-dot'),
  registrationText: $('registration-text'),
  dialForm: $('dial-form'),
  number: $('number'),
  call: $('call'),
  hangup: $('hangup'),
  mute: $('mute'),
  hold: $('hold'),
  callDot: $('call-dot'),
  callText: $('call-text'),
  timer: $('call-timer'),
  heard: $('heard'),
  incoming: $('incoming'),
  incomingFrom: $('incoming-from'),
  accept: $('accept'),
  reject: $('reject'),
  level: $('level'),
  micState: $('mic-state'),
  remote: $('remote'),
  message: $('message'),
  messageText: $('message-text'),
  dismiss: $('message-dismiss'),
};

const phone = new Phone(el.remote);
const meter = new LevelMeter(el.level);
const TITLE = document.title;
let lastSummary = null;

el.server.value = `${location.protocol === 'http:' ? 'ws' : 'wss'}://${location.host}/`;
el.name.value = new URLSearchParams(location.search).get('name') || localStorage.getItem('wedge-demo-name') || '';

// -- actions ---------------------------------------------------------------------------

el.form.addEventListener('submit', (event) => {
  event.preventDefault();
  audioContext(); // a user gesture: sounds may play from now on
  const name = el.name.value.trim();
  if (phone.register(name, el.password.value, el.server.value.trim())) {
    localStorage.setItem('wedge-demo-name', name);
  } else {
    el.name.focus();
  }
});

el.unregister.addEventListener('click', () => phone.unregister());

el.dialForm.addEventListener('submit', (event) => {
  event.preventDefault();
  audioContext();
  if (phone.state.call) return;
  phone.call(el.number.value);
});

el.hangup.addEventListener('click', () => {
  const call = phone.state.call;
  if (call && call.status === 'incoming') phone.reject();
  else phone.hangup();
});
el.mute.addEventListener('click', () => phone.toggleMute());
el.hold.addEventListener('click', () => phone.toggleHold());
el.accept.addEventListener('click', () => phone.answer());
el.reject.addEventListener('click', () => phone.reject());
el.dismiss.addEventListener('click', () => phone.tell(null));

function press(key) {
  audioContext();
  const button = document.querySelector(`.keypad [data-key="${CSS.escape(key)}"]`);
  if (button) {
    button.classList.add('pressed');
    setTimeout(() => button.classList.remove('pressed'), 150);
  }
  if (phone.dtmf(key)) {
    keyTone(key);
    return;
  }
  if (!phone.state.call) {
    keyTone(key);
    el.number.value += key;
  }
}

for (const button of document.querySelectorAll('.keypad [data-key]')) {
  button.addEventListener('click', () => press(button.dataset.key));
}

document.addEventListener('keydown', (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const call = phone.state.call;
  if (event.key === 'Escape' && call && call.status === 'incoming') {
    event.preventDefault();
    phone.reject();
    return;
  }
  const typing = event.target instanceof HTMLInputElement;
  if (/^[0-9*#]$/.test(event.key) && (!typing || (call && call.status === 'up'))) {
    event.preventDefault();
    press(event.key);
    if (!call) el.number.focus();
  }
});

// Leaving the page hangs up and unregisters, so the name is free again at once.
window.addEventListener('pagehide', () => {
  if (phone.ua) phone.stop();
});

// -- the microphone and the stats --------------------------------------------------------

phone.addEventListener('microphone', ({ detail: stream }) => {
  if (stream) {
    meter.attach(stream);
    el.micState.textContent = 'Microphone on.';
  } else {
    meter.detach();
    el.micState.textContent = 'The microphone is used once you call or answer.';
  }
});

async function refreshStats() {
  const pc = phone.peerConnection;
  lastSummary = pc ? await collect(pc).catch(() => null) : null;
  const shown = describe(lastSummary);
  for (const [key, value] of Object.entries(shown)) $(`stat-${key}`).textContent = value;
}
setInterval(refreshStats, 1000);

// -- rendering -----------------------------------------------------------------------------

const REGISTRATION = {
  none: ['off', 'Not registered'],
  registering: ['busy', 'Registering…'],
  registered: ['on', 'Registered'],
  unregistering: ['busy', 'Unregistering…'],
  failed: ['error', 'Not registered: see the message above'],
};

function registrationLine(state) {
  if (state.registration === 'registering' && state.connection === 'connecting') {
    return ['busy', `Connecting to ${state.server}…`];
  }
  if (state.connection === 'reconnecting') return ['busy', 'Connection lost; reconnecting…'];
  const [dot, text] = REGISTRATION[state.registration];
  if (state.registration === 'registered') return [dot, `Registered as ${state.name}: others can call you`];
  if (state.registration === 'registering') return [dot, `Registering as ${state.name}…`];
  return [dot, text];
}

const SERVICES = { 600: '600 (echo)', 601: '601 (tone)', 602: '602 (DTMF readback)' };

function callLine(call) {
  if (!call) return ['off', 'No call'];
  const peer = SERVICES[call.peer] || call.peer;
  switch (call.status) {
    case 'calling': return ['busy', `Calling ${peer}…`];
    case 'ringing': return ['busy', `Ringing ${peer}…`];
    case 'incoming': return ['busy', `${peer} is calling you`];
    case 'answering': return ['busy', `Answering ${peer}…`];
    case 'up': {
      const notes = [];
      if (call.localHold) notes.push('on hold');
      if (call.remoteHold) notes.push(`${peer} put you on hold`);
      if (call.muted) notes.push('muted');
      return ['on', `In a call with ${peer}${notes.length ? ' (' + notes.join(', ') + ')' : ''}`];
    }
    default: return ['off', 'No call'];
  }
}

function render() {
  const state = phone.state;
  const call = state.call;
  const [regDot, regText] = registrationLine(state);
  el.registrationDot.dataset.state = regDot;
  el.registrationText.textContent = regText;
  const active = state.registration === 'registering' || state.registration === 'registered' || state.connection === 'reconnecting';
  el.register.hidden = active;
  el.unregister.hidden = !active;
  el.name.disabled = active;
  el.password.disabled = active;
  el.server.disabled = active;

  const [callDot, callText] = callLine(call);
  el.callDot.dataset.state = callDot;
  el.callText.textContent = callText;
  const up = Boolean(call && call.answeredAt);
  el.call.disabled = state.registration !== 'registered' || Boolean(call);
  el.hangup.disabled = !call;
  el.mute.disabled = !up;
  el.hold.disabled = !up;
  el.mute.setAttribute('aria-pressed', String(Boolean(call && call.muted)));
  el.mute.textContent = call && call.muted ? 'Unmute' : 'Mute';
  el.hold.setAttribute('aria-pressed', String(Boolean(call && call.localHold)));
  el.hold.textContent = call && call.localHold ? 'Resume' : 'Hold';
  el.heard.textContent = state.heard ? `The PBX heard: ${state.heard}` : '';

  const ringing = Boolean(call && call.status === 'incoming');
  const wasRinging = !el.incoming.hidden;
  el.incoming.hidden = !ringing;
  if (ringing) {
    el.incomingFrom.textContent = `${call.peer} is calling you.`;
    document.title = `Incoming call from ${call.peer}`;
    ring.start();
    if (!wasRinging) el.accept.focus();
  } else {
    document.title = TITLE;
    ring.stop();
    if (wasRinging && document.activeElement && el.incoming.contains(document.activeElement)) el.hangup.focus();
  }
  if (call && call.status === 'ringing') ringback.start();
  else ringback.stop();

  const message = state.message;
  el.message.hidden = !message;
  el.messageText.textContent = message ? message.text : '';
  if (message) el.message.dataset.kind = message.kind;
}

setInterval(() => {
  const call = phone.state.call;
  if (!call || !call.answeredAt) {
    el.timer.textContent = '';
    return;
  }
  const seconds = Math.floor((Date.now() - call.answeredAt) / 1000);
  el.timer.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}, 500);

phone.addEventListener('change', render);
render();

// -- for tests and the curious -------------------------------------------------------------

window.wedgeDemo = Object.freeze({
  state: () => ({
    ...JSON.parse(JSON.stringify(phone.state)),
    texts: {
      registration: el.registrationText.textContent,
      call: el.callText.textContent,
      message: el.message.hidden ? null : el.messageText.textContent,
      heard: el.heard.textContent,
      incoming: el.incoming.hidden ? null : el.incomingFrom.textContent,
    },
    level: el.level.value,
  }),
  stats: () => (phone.peerConnection ? collect(phone.peerConnection) : Promise.resolve(null)),
});
