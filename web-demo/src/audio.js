// The page's own sounds and the microphone: getUserMedia, a level meter, the ring,
// the ringback and key clicks, all with Web Audio (no audio files).

let context = null;

/** The page's AudioContext, made (or resumed) from a user gesture. */
export function audioContext() {
  if (!context) {
    const Context = window.AudioContext || window.webkitAudioContext;
    context = new Context();
  }
  if (context.state === 'suspended') context.resume().catch(() => {});
  return context;
}

/** A microphone stream (rejects with the browser's DOMException when it cannot). */
export async function microphone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const error = new Error('getUserMedia is not available');
    error.name = 'SecurityError';
    throw error;
  }
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    video: false,
  });
}

/** Shows the level of ``stream`` on a <meter> (RMS of the waveform, 10 times a second). */
export class LevelMeter {
  constructor(meter) {
    this.meter = meter;
    this.source = null;
    this.timer = null;
  }

  attach(stream) {
    this.detach();
    const ctx = audioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    this.source = ctx.createMediaStreamSource(stream);
    this.source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      // Speech sits around 0.01-0.2 RMS; a square root spreads it over the meter.
      this.meter.value = Math.min(1, Math.sqrt(rms * 4));
    }, 100);
  }

  detach() {
    if (this.timer) clearInterval(this.timer);
    if (this.source) this.source.disconnect();
    this.timer = null;
    this.source = null;
    this.meter.value = 0;
  }
}

/** A repeating pattern of tones: the ring (incoming) and the ringback (outgoing). */
class Pattern {
  constructor(frequencies, on, off, gain) {
    Object.assign(this, { frequencies, on, off, gain });
    this.timer = null;
    this.nodes = [];
  }

  start() {
    if (this.timer) return;
    const play = () => {
      const ctx = audioContext();
      const out = ctx.createGain();
      out.gain.value = this.gain;
      out.connect(ctx.destination);
      const end = ctx.currentTime + this.on;
      for (const f of this.frequencies) {
        const osc = ctx.createOscillator();
        osc.frequency.value = f;
        osc.connect(out);
        osc.start();
        osc.stop(end);
        this.nodes.push(osc);
      }
    };
    play();
    this.timer = setInterval(play, (this.on + this.off) * 1000);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    for (const node of this.nodes) {
      try {
        node.stop();
      } catch {
        // already stopped
      }
    }
    this.nodes = [];
  }
}

export const ring = new Pattern([660, 880], 0.4, 1.6, 0.08);
export const ringback = new Pattern([440, 480], 2, 4, 0.05);

const KEYS = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477], 4: [770, 1209], 5: [770, 1336],
  6: [770, 1477], 7: [852, 1209], 8: [852, 1336], 9: [852, 1477], '*': [941, 1209],
  0: [941, 1336], '#': [941, 1477],
};

/** A short DTMF click for a key press, so the key is heard as well as seen. */
export function keyTone(key) {
  const pair = KEYS[key];
  if (!pair) return;
  const ctx = audioContext();
  const out = ctx.createGain();
  out.gain.value = 0.04;
  out.connect(ctx.destination);
  for (const f of pair) {
    const osc = ctx.createOscillator();
    osc.frequency.value = f;
    osc.connect(out);
    osc.start();
    osc.stop(ctx.currentTime + 0.12);
  }
}
