"""The media ends of the demo PBX's service extensions: 600 echo, 601 chime, 602 DTMF.

Each player is pure: RTP packets come in with ``now`` (:meth:`Player.receive`), and
the packets to send come out of :meth:`Player.due`, whose next deadline is
:meth:`Player.next_deadline`. The shell (:mod:`gateway.demo.shell`) owns the UDP
socket and the timer. Every player sends one 20 ms packet per 20 ms of time while it
may send (not on hold), silence when it has nothing to say, so the caller's browser
sees a steady stream; the echo is the exception and sends what it gets, later.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from gateway.demo import g711, tones
from gateway.demo.rtp import RtpStream, parse, telephone_event

__all__ = [
    "ECHO_DELAY",
    "FRAME",
    "READBACK_PAUSE",
    "DtmfReadback",
    "Echo",
    "MediaFormat",
    "Player",
    "Tone",
    "make_player",
]

FRAME = 0.020
"""Seconds of audio per packet (RFC 3551's default ptime for G.711)."""
SAMPLES = tones.RATE * 20 // 1000
"""Samples per packet: 160."""
MAX_CATCH_UP = 10
"""Packets a late timer may send at once; beyond that the stream skips ahead, as a
real-time source would, rather than burst a backlog."""
ECHO_DELAY = 0.4
"""Seconds the echo holds each packet: long enough to hear yourself as an echo
rather than as a sidetone."""
MAX_ECHO_QUEUE = 200
"""Packets the echo may hold (4 s of 20 ms packets): a flood is cut, not stored."""
READBACK_PAUSE = 1.5
"""Seconds after the last key before 602 reads the keys back (``#`` reads at once)."""
MAX_DIGITS = 32
"""Keys 602 reads back at most at a time."""


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """What the call's SDP settled: the codec, its payload type, and the payload type
    of telephone-event (RFC 4733), if any."""

    law: str
    """``PCMU`` or ``PCMA``."""
    payload_type: int
    events: int | None = None


class Player:
    """One call's media end. Subclasses say what to send."""

    def __init__(self, media: MediaFormat, ssrc: int, sequence: int, timestamp: int, now: float):
        self.media = media
        self.stream = RtpStream(media.payload_type, ssrc, sequence, timestamp)
        self.sending = True
        """False while the caller holds the call (our direction is recvonly/inactive)."""
        self._start = now
        self._frames = 0  # frames due so far: the next is due at start + frames * FRAME
        self._next = now

    def receive(self, data: bytes, now: float) -> None:
        """One datagram from the far end (RTP or not; anything else is ignored)."""

    def due(self, now: float) -> list[bytes]:
        """The packets to send by ``now``."""
        if now < self._next:
            return []
        # Deadlines are counted, not summed, so they do not drift.
        late = int((now - self._next) / FRAME + 1e-9) + 1
        if late > MAX_CATCH_UP:
            skipped = late - MAX_CATCH_UP
            self.stream.skip(SAMPLES * skipped)
            self._advance(skipped)
        out: list[bytes] = []
        while self._next <= now + 1e-9:
            payload = self.frame(self._next)
            if self.sending:
                out.append(self.stream.packet(payload, SAMPLES))
            else:
                self.stream.skip(SAMPLES)
            self._advance(1)
        return out

    def _advance(self, frames: int) -> None:
        self._frames += frames
        self._next = self._start + self._frames * FRAME

    def next_deadline(self) -> float | None:
        return self._next

    def frame(self, now: float) -> bytes:
        """The next 20 ms of audio, in the call's law."""
        return g711.silence(self.media.law, SAMPLES)

    def heard(self) -> list[str]:
        """Keys read back since the last call (602 only), one string per readback."""
        return []

    def key(self, key: str, now: float) -> None:
        """A key pressed, reported in SIP (INFO) rather than in RTP."""


class Echo(Player):
    """600: every RTP packet of the call's formats, back to the sender after
    :data:`ECHO_DELAY`, under our SSRC (sequence numbers and timestamps kept)."""

    def __init__(self, media: MediaFormat, ssrc: int, sequence: int, timestamp: int, now: float):
        super().__init__(media, ssrc, sequence, timestamp, now)
        self._queue: deque[tuple[float, bytes]] = deque()
        self._formats = {media.payload_type, media.events}

    def receive(self, data: bytes, now: float) -> None:
        packet = parse(data)
        if packet is None or packet.payload_type not in self._formats or not self.sending:
            return
        if len(self._queue) >= MAX_ECHO_QUEUE:
            return
        echoed = bytearray(data)
        echoed[8:12] = self.stream.ssrc.to_bytes(4, "big")
        self._queue.append((now + ECHO_DELAY, bytes(echoed)))

    def due(self, now: float) -> list[bytes]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.popleft()[1])
        return out if self.sending else []

    def next_deadline(self) -> float | None:
        return self._queue[0][0] if self._queue else None


class Tone(Player):
    """601: the chime and tone of :func:`~gateway.demo.tones.announcement`, looped."""

    def __init__(self, media: MediaFormat, ssrc: int, sequence: int, timestamp: int, now: float):
        super().__init__(media, ssrc, sequence, timestamp, now)
        self._audio = _encoded(media.law)
        self._at = 0

    def frame(self, now: float) -> bytes:
        audio = self._audio
        chunk = audio[self._at : self._at + SAMPLES]
        self._at = (self._at + SAMPLES) % len(audio)
        if len(chunk) < SAMPLES:
            chunk += audio[: SAMPLES - len(chunk)]
        return chunk


class DtmfReadback(Player):
    """602: a beep to say "ready"; then the keys pressed (RFC 4733 events, or SIP
    INFO through :meth:`key`) are played back as DTMF tones once the caller pauses
    for :data:`READBACK_PAUSE` seconds or presses ``#``."""

    def __init__(self, media: MediaFormat, ssrc: int, sequence: int, timestamp: int, now: float):
        super().__init__(media, ssrc, sequence, timestamp, now)
        self._law = media.law
        self._pending: list[str] = []
        self._last_key = now
        self._last_event: int | None = None  # RTP timestamp of the last event seen
        self._audio = bytearray(g711.encode(tones.pause(200) + tones.beep(), self._law))
        self._heard: list[str] = []

    def receive(self, data: bytes, now: float) -> None:
        packet = parse(data)
        if packet is None or packet.payload_type != self.media.events:
            return
        event = telephone_event(packet.payload)
        # Every packet of one event (and the three copies of its end) carries the
        # event's start as its timestamp (RFC 4733 §2.5.1.2): a new timestamp is a
        # new key press.
        if event is None or packet.timestamp == self._last_event:
            return
        self._last_event = packet.timestamp
        self.key(event.key, now)

    def key(self, key: str, now: float) -> None:
        self._last_key = now
        if key == "#":
            self._read_back()
        elif len(self._pending) < MAX_DIGITS:
            self._pending.append(key)

    def frame(self, now: float) -> bytes:
        if self._pending and now - self._last_key >= READBACK_PAUSE:
            self._read_back()
        if not self._audio:
            return g711.silence(self._law, SAMPLES)
        chunk = bytes(self._audio[:SAMPLES])
        del self._audio[:SAMPLES]
        return chunk.ljust(SAMPLES, g711.silence(self._law, 1))

    def heard(self) -> list[str]:
        heard, self._heard = self._heard, []
        return heard

    def _read_back(self) -> None:
        if not self._pending:
            return
        digits = "".join(self._pending)
        self._pending.clear()
        self._heard.append(digits)
        samples = tones.beep(100, 1400) + tones.pause(300) + tones.dtmf(digits)
        self._audio += g711.encode(samples, self._law)


def _encoded(law: str) -> bytes:
    return _ANNOUNCEMENTS.setdefault(law, g711.encode(tones.announcement(), law))


_ANNOUNCEMENTS: dict[str, bytes] = {}

SERVICES: dict[str, type[Player]] = {"600": Echo, "601": Tone, "602": DtmfReadback}
"""The service extensions and the player each one gets."""


def make_player(
    extension: str, media: MediaFormat, ssrc: int, sequence: int, timestamp: int, now: float
) -> Player:
    """The player of service ``extension`` (a key of :data:`SERVICES`)."""
    return SERVICES[extension](media, ssrc, sequence, timestamp, now)
