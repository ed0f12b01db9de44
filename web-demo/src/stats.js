// The call's numbers from RTCPeerConnection.getStats(), read the same way in Chromium
// and Firefox: the audio inbound-rtp (packets, loss, jitter, level, codec), the
// outbound-rtp (packets sent) and the round-trip time of the selected candidate pair
// (the relay answers ICE consent checks), else of RTCP (remote-inbound-rtp).

export async function collect(pc) {
  if (!pc) return null;
  const report = await pc.getStats();
  const all = new Map();
  report.forEach((stat) => all.set(stat.id, stat));
  const summary = { inbound: null, outbound: null, rtt: null, codec: null, transport: null };
  let pairId = null;
  for (const stat of all.values()) {
    const kind = stat.kind || stat.mediaType;
    if (stat.type === 'inbound-rtp' && kind === 'audio' && !stat.isRemote) {
      summary.inbound = {
        packetsReceived: stat.packetsReceived || 0,
        packetsLost: stat.packetsLost || 0,
        jitter: stat.jitter ?? null,
        audioLevel: stat.audioLevel ?? null,
        totalAudioEnergy: stat.totalAudioEnergy ?? null,
        codecId: stat.codecId || null,
      };
    } else if (stat.type === 'outbound-rtp' && kind === 'audio' && !stat.isRemote) {
      summary.outbound = { packetsSent: stat.packetsSent || 0, codecId: stat.codecId || null };
    } else if (stat.type === 'remote-inbound-rtp' && kind === 'audio' && summary.rtt === null) {
      if (typeof stat.roundTripTime === 'number') summary.rtt = stat.roundTripTime;
    } else if (stat.type === 'transport') {
      summary.transport = { dtlsState: stat.dtlsState || null, srtpCipher: stat.srtpCipher || null };
      pairId = stat.selectedCandidatePairId || pairId;
    }
  }
  let pair = pairId ? all.get(pairId) : null;
  if (!pair) {
    for (const stat of all.values()) {
      if (stat.type === 'candidate-pair' && (stat.selected || (stat.nominated && stat.state === 'succeeded'))) {
        pair = stat;
      }
    }
  }
  if (pair && typeof pair.currentRoundTripTime === 'number') summary.rtt = pair.currentRoundTripTime;
  const codecId = (summary.inbound && summary.inbound.codecId) || (summary.outbound && summary.outbound.codecId);
  const codec = codecId ? all.get(codecId) : null;
  if (codec) {
    summary.codec = { mimeType: codec.mimeType, clockRate: codec.clockRate, payloadType: codec.payloadType };
  }
  return summary;
}

/** The summary as the panel shows it. */
export function describe(summary) {
  const dash = '–';
  if (!summary) {
    return { codec: dash, rtt: dash, jitter: dash, received: dash, lost: dash, sent: dash, level: dash };
  }
  const inbound = summary.inbound || {};
  const ms = (seconds) => (typeof seconds === 'number' ? `${Math.round(seconds * 1000)} ms` : dash);
  const lost = inbound.packetsLost ?? null;
  const received = inbound.packetsReceived ?? null;
  const share = received ? ` (${((100 * Math.max(lost, 0)) / (received + Math.max(lost, 0))).toFixed(1)} %)` : '';
  return {
    codec: summary.codec
      ? `${summary.codec.mimeType.replace(/^audio\//, '')} ${summary.codec.clockRate / 1000} kHz`
      : dash,
    rtt: ms(summary.rtt),
    jitter: ms(inbound.jitter),
    received: received === null ? dash : String(received),
    lost: lost === null ? dash : `${lost}${share}`,
    sent: summary.outbound ? String(summary.outbound.packetsSent) : dash,
    level: typeof inbound.audioLevel === 'number' ? `${Math.round(inbound.audioLevel * 100)} %` : dash,
  };
}
