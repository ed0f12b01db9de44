"""The demo PBX's media players, RTP bytes in and RTP bytes out; G.711; SDP for them."""

from __future__ import annotations

import math

import pytest

from gateway.demo import g711, tones
from gateway.demo.offer import answer, read_offer
from gateway.demo.players import (
    ECHO_DELAY,
    FRAME,
    READBACK_PAUSE,
    DtmfReadback,
    Echo,
    MediaFormat,
    Tone,
)
from gateway.demo.rtp import build, parse, telephone_event, telephone_event_payload
from sdp import Direction, SdpError
from tests.unit.gateway.demo.fake_wedge import RELAY_OFFER

pytestmark = pytest.mark.unit

PCMU = MediaFormat("PCMU", 0, 101)
SSRC = 0x5EED


def goertzel(samples: list[int], frequency: float) -> float:
    """The power of ``frequency`` in ``samples`` (8 kHz), normalised by length."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / tones.RATE)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    return (previous**2 + before**2 - coefficient * previous * before) / len(samples)


def keys_in(samples: list[int]) -> str:
    """The DTMF keys heard in ``samples``, 20 ms at a time (each run of one key once)."""
    rows, columns = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    heard, last = [], None
    for start in range(0, len(samples) - 159, 160):
        frame = samples[start : start + 160]
        if max(abs(s) for s in frame) < 1000:
            last = None
            continue
        row = max(rows, key=lambda f: goertzel(frame, f))
        column = max(columns, key=lambda f: goertzel(frame, f))
        energy = sum(s * s for s in frame)  # a pure tone's own power is half of it
        if min(goertzel(frame, row), goertzel(frame, column)) < 0.1 * energy:
            last = None  # not a key: the beeps around the readback
            continue
        key = next(k for k, pair in tones.DTMF_FREQUENCIES.items() if pair == (row, column))
        if key != last:
            heard.append(key)
        last = key
    return "".join(heard)


def events(key: str, timestamp: int, sequence: int) -> list[bytes]:
    """An RFC 4733 key press as a browser sends it: three updates, three ends."""
    packets = []
    for n, (end, duration) in enumerate(
        [(False, 160), (False, 320), (False, 480), (True, 640), (True, 640), (True, 640)]
    ):
        payload = telephone_event_payload(key, end=end, duration=duration)
        packets.append(build(101, sequence + n, timestamp, 0xB0B, payload, marker=n == 0))
    return packets


def play(player: DtmfReadback | Tone | Echo, start: float, seconds: float) -> list[bytes]:
    """What ``player`` sends from ``start`` for ``seconds``, its timer fired every 20 ms."""
    out = []
    for n in range(round(seconds / FRAME)):
        out += player.due(start + n * FRAME)
    return out


def test_dtmf_readback_reads_the_keys_back() -> None:
    player = DtmfReadback(PCMU, SSRC, 1000, 5000, now=0.0)
    prompt = play(player, 0.0, 1.0)
    assert len(prompt) == 50, "one 20 ms packet per 20 ms"
    for key, at in (("4", 1.0), ("1", 1.4), ("5", 1.8)):
        for packet in events(key, int(at * 8000), int(at * 100)):
            player.receive(packet, at)
            player.receive(packet, at)  # duplicates change nothing
    assert player.heard() == []
    quiet = play(player, 1.0, 0.8 + READBACK_PAUSE + 0.1)  # past the pause after "5"
    assert player.heard() == ["415"]
    readback = play(player, 1.0 + 0.8 + READBACK_PAUSE + 0.1, 1.5)
    audio = [
        sample
        for data in quiet + readback
        for sample in g711.decode(parse(data).payload, "PCMU")  # type: ignore[union-attr]
    ]
    assert keys_in(audio) == "415"
    first = parse(prompt[0])
    assert first is not None and first.marker and first.payload_type == 0 and first.ssrc == SSRC
    sequence = [parse(p).sequence for p in prompt + quiet + readback]  # type: ignore[union-attr]
    assert sequence == list(range(1000, 1000 + len(sequence)))


def test_dtmf_readback_pound_reads_at_once_and_info_keys_count() -> None:
    player = DtmfReadback(PCMU, SSRC, 0, 0, now=0.0)
    player.key("9", 0.1)  # from SIP INFO
    for packet in events("#", 800, 10):
        player.receive(packet, 0.2)
    assert player.heard() == ["9"]


def test_echo_returns_packets_later_under_its_own_ssrc() -> None:
    player = Echo(PCMU, SSRC, 0, 0, now=0.0)
    sent = build(0, 7, 160, 0xB0B, b"\x55" * 160)
    player.receive(sent, 1.0)
    player.receive(b"\x80\xc8" + bytes(26), 1.0)  # RTCP on the RTP port: ignored
    player.receive(build(96, 8, 320, 0xB0B, b"x"), 1.0)  # a format not in the call
    assert player.due(1.0 + ECHO_DELAY - 0.01) == []
    assert player.next_deadline() == pytest.approx(1.0 + ECHO_DELAY)
    [echoed] = player.due(1.0 + ECHO_DELAY)
    packet = parse(echoed)
    assert packet is not None
    assert (packet.ssrc, packet.sequence, packet.timestamp, packet.payload) == (
        SSRC,
        7,
        160,
        b"\x55" * 160,
    )
    assert player.next_deadline() is None
    player.sending = False  # on hold
    player.receive(sent, 2.0)
    assert player.due(3.0) == []


def test_tone_plays_the_announcement_and_keeps_time_on_hold() -> None:
    player = Tone(MediaFormat("PCMA", 8), SSRC, 65535, 2**32 - 160, now=0.0)
    first = play(player, 0.0, 1.0)
    packets = [parse(p) for p in first]
    assert all(p is not None and p.payload_type == 8 and len(p.payload) == 160 for p in packets)
    assert [p.sequence for p in packets[:3]] == [65535, 0, 1]  # type: ignore[union-attr]
    assert [p.timestamp for p in packets[:3]] == [2**32 - 160, 0, 160]  # type: ignore[union-attr]
    samples = [s for p in packets for s in g711.decode(p.payload, "PCMA")]  # type: ignore[union-attr]
    assert goertzel(samples[:1440], 523.25) > 100 * goertzel(samples[:1440], 1000)
    player.sending = False
    assert play(player, 1.0, 1.0) == []
    player.sending = True
    [resumed] = player.due(2.0)
    packet = parse(resumed)
    # The next sequence number, and the timestamp of the 100th frame after the first.
    assert packet is not None and packet.marker and packet.sequence == 49
    assert packet.timestamp == (2**32 - 160 + 100 * 160) % 2**32


def test_a_late_timer_catches_up_a_little_then_skips() -> None:
    player = Tone(PCMU, SSRC, 0, 0, now=0.0)
    assert len(player.due(0.0)) == 1
    assert len(player.due(5.0)) == 10  # not 250


def test_telephone_event_reads_keys() -> None:
    event = telephone_event(telephone_event_payload("*", end=True, duration=800))
    assert event is not None and (event.key, event.end, event.duration) == ("*", True, 800)
    assert telephone_event(bytes([16, 0, 0, 0])) is None  # a flash-hook, not a key


# -- G.711 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("law", "zero"), [("PCMU", 0xFF), ("PCMA", 0xD5)])
def test_g711_round_trip(law: str, zero: int) -> None:
    assert g711.silence(law, 3) == bytes([zero]) * 3
    ramp = list(range(-32768, 32768, 97))
    decoded = g711.decode(g711.encode(ramp, law), law)
    for sample, back in zip(ramp, decoded, strict=True):
        assert abs(sample - back) <= max(16, abs(sample) // 16), (sample, back)
    assert g711.encode([10**6, -(10**6)], law) == g711.encode([32767, -32768], law)


# -- SDP ----------------------------------------------------------------------------------


def test_offer_and_answer() -> None:
    offer = read_offer(RELAY_OFFER)
    assert offer.address == ("127.0.0.1", 40000)
    assert offer.media == MediaFormat("PCMU", 0, 126)
    assert offer.direction is Direction.SENDRECV
    text = answer(offer, "127.0.0.1", 30000, 7, 1).decode()
    assert text.splitlines() == [
        "v=0",
        "o=wedge-demo 7 1 IN IP4 127.0.0.1",
        "s=Wedge demo PBX",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 126",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:126 telephone-event/8000",
        "a=fmtp:126 0-15",
        "a=ptime:20",
        "a=rtcp:30001",
        "a=sendrecv",
    ]


def test_offer_without_g711_is_refused() -> None:
    with pytest.raises(SdpError):
        read_offer(RELAY_OFFER.replace(b" 0 8 126", b" 111"))
