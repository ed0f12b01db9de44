"""media.builtin: sessions by Call-ID, and the periodic tick that ends silent calls."""

from __future__ import annotations

import itertools
import struct
from datetime import UTC, datetime

import pytest

from media.builtin import BuiltinRelay, RelaySettings
from media.control import Negotiation
from media.dtls import DtlsCertificate
from media.relay import Address, RelayPort
from media.session import SessionSettings
from sdp.rewrite import AVP

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, tzinfo=UTC)
CALLER: Address = ("192.0.2.10", 4000)


def _sdp(port: int, direction: str = "sendrecv") -> bytes:
    return (
        f"v=0\r\no=t 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\na={direction}\r\n"
    ).encode()


class Relay:
    """A BuiltinRelay on in-memory ports, a clock the test moves, and what timed out."""

    def __init__(self, timeout: float, hold_timeout: float) -> None:
        self.now = 100.0
        self.ports: dict[int, RelayPort] = {}
        self.ended: list[str] = []
        numbers = itertools.count(40000, 2)

        def allocate(pair: bool) -> tuple[RelayPort, RelayPort | None]:
            port = RelayPort(next(numbers), lambda data, to: None, lambda: self.now)
            self.ports[port.number] = port
            return port, None

        settings = SessionSettings("203.0.113.5", DtlsCertificate.generate(NOW), bytes)
        self.relay = BuiltinRelay(
            settings,
            allocate,
            lambda port: None,
            lambda: self.now,
            RelaySettings(timeout, hold_timeout),
        )
        self.relay.on_timeout(self.ended.append)

    async def call(self, call_id: str, direction: str = "sendrecv") -> RelayPort:
        """A call from CALLER; the relay port CALLER sends to."""
        offer = Negotiation(call_id, "a", None, AVP, AVP)
        await self.relay.offer(offer, _sdp(CALLER[1], direction))
        answer = await self.relay.answer(
            Negotiation(call_id, "b", "a", AVP, AVP), _sdp(6000, direction)
        )
        port = int(answer.split(b"m=audio ")[1].split()[0])
        return self.ports[port]

    def tick(self, at: float) -> None:
        self.now = at
        self.relay.tick(at)


def _rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 1) + bytes(160)


async def test_a_call_with_media_goes_on_and_a_silent_one_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = Relay(timeout=60, hold_timeout=3600)
    talking = await relay.call("talking")
    await relay.call("silent")
    for second in range(1, 62):
        relay.now = 100.0 + second
        talking.receive(_rtp(second), CALLER)
        relay.tick(100.0 + second)
    assert relay.ended == ["silent"]
    assert list(relay.relay.sessions) == ["talking"]
    assert "media timeout call-id=silent: no media for 61 s" in caplog.text


async def test_a_call_silent_since_its_last_packet_ends_after_the_timeout() -> None:
    relay = Relay(timeout=60, hold_timeout=3600)
    port = await relay.call("call")
    relay.now = 110.0
    port.receive(_rtp(1), CALLER)
    relay.tick(170.0)
    assert relay.ended == []
    relay.tick(170.5)
    assert relay.ended == ["call"]


async def test_a_call_on_hold_both_ways_has_the_hold_timeout() -> None:
    relay = Relay(timeout=60, hold_timeout=600)
    await relay.call("held", "inactive")
    relay.tick(100.0 + 61)
    assert relay.ended == []
    relay.tick(100.0 + 601)
    assert relay.ended == ["held"]


@pytest.mark.parametrize(("timeout", "hold_timeout"), [(0, 0), (0, 600)])
async def test_a_zero_timeout_never_ends_a_call(timeout: float, hold_timeout: float) -> None:
    relay = Relay(timeout, hold_timeout)
    await relay.call("call")
    relay.tick(100.0 + 10_000)
    assert relay.ended == []


async def test_a_zero_hold_timeout_never_ends_a_held_call() -> None:
    relay = Relay(timeout=60, hold_timeout=0)
    await relay.call("held", "inactive")
    relay.tick(100.0 + 10_000)
    assert relay.ended == []
