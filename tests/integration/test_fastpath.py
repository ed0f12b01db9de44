"""The built-in relay's C fast path (media/_forward.c) on 127.0.0.1, through the shell:
established streams forwarded socket to socket, everything else still RelayPort.receive's."""

from __future__ import annotations

import asyncio
import base64
import random
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from media.builtin import BuiltinRelay
from media.control import Negotiation
from media.endpoint import start_builtin
from media.fastpath import NATIVE
from media.relay import RelayPort
from media.srtp import SrtpContext
from sdp.attributes import CRYPTO
from sdp.model import parse
from sdp.rewrite import AVP, SAVP_SDES, Profile

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not NATIVE, reason="built without the C fast path (pure Python install)"),
]

LOCAL = "127.0.0.1"
SUITE = "AES_CM_128_HMAC_SHA1_80"
PARTY_KEY = bytes(range(30))


@pytest.fixture
async def relay() -> AsyncIterator[BuiltinRelay]:
    probe = _udp()
    first = min(probe.getsockname()[1] // 2 * 2, 60000)
    probe.close()
    built, stop = await start_builtin(bind=LOCAL, advertise=None, ports=(first, first + 99))
    yield built
    await built.close()
    stop()


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.setblocking(False)
    return sock


def _sdp(
    sock: socket.socket,
    profile: Profile,
    key: bytes | None = None,
    rtcp: socket.socket | None = None,
) -> bytes:
    """An offer or answer for media at ``sock``, with RTCP multiplexed or at ``rtcp``."""
    port = sock.getsockname()[1]
    mux = "a=rtcp-mux\r\n" if rtcp is None else f"a=rtcp:{rtcp.getsockname()[1]}\r\n"
    crypto = ""
    if key is not None:
        crypto = f"a=crypto:1 {SUITE} inline:{base64.b64encode(key).decode()}\r\n"
    return (
        f"v=0\r\no=t 1 1 IN IP4 {LOCAL}\r\ns=-\r\nc=IN IP4 {LOCAL}\r\nt=0 0\r\n"
        f"m=audio {port} {profile.proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{mux}{crypto}"
    ).encode()


def _rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + bytes([seq % 256]) * 160


def _rtcp_rr() -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, 0x1234)


class Call:
    """A call between sockets ``a`` and ``b`` through the relay, as negotiated."""

    def __init__(
        self,
        relay: BuiltinRelay,
        a: socket.socket,
        b: socket.socket,
        b_rtcp: socket.socket | None = None,
    ) -> None:
        self.relay, self.a, self.b, self.b_rtcp = relay, a, b, b_rtcp
        self.to_a_port = 0
        self.to_b_port = 0
        self.a_srtp: SrtpContext | None = None

    async def setup(self, a_profile: Profile) -> None:
        sdes = a_profile is SAVP_SDES
        offer = _sdp(self.a, a_profile, PARTY_KEY if sdes else None)
        to_b = parse(await self.relay.offer(Negotiation("c1", "a", None, a_profile, AVP), offer))
        self.to_b_port = to_b.media[0].port
        answer = Negotiation("c1", "b", "a", AVP, a_profile)
        to_a = parse(await self.relay.answer(answer, _sdp(self.b, AVP, rtcp=self.b_rtcp)))
        self.to_a_port = to_a.media[0].port
        if sdes:
            ours = to_a.media[0].get_all(CRYPTO)[0]
            self.a_srtp = SrtpContext(SUITE, PARTY_KEY, ours.keys[0].key_bytes())

    def port(self, number: int) -> RelayPort:
        session = self.relay.sessions["c1"]
        return next(port for port in session.ports() if port.number == number)


async def _take(sock: socket.socket, count: int) -> list[bytes]:
    """Up to ``count`` datagrams that reach ``sock`` within a second."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(1):
            while len(got) < count:
                got.append(await loop.sock_recv(sock, 4096))
    except TimeoutError:
        pass
    return got


async def test_plain_rtp_and_rtcp_take_the_fast_path_once_latched(relay: BuiltinRelay) -> None:
    a, b, b_rtcp = _udp(), _udp(), _udp()
    call = Call(relay, a, b, b_rtcp)
    await call.setup(AVP)
    packets = [_rtp(seq) for seq in range(1, 21)]
    for packet in packets:
        a.sendto(packet, (LOCAL, call.to_a_port))
    assert await _take(b, 20) == packets
    a.sendto(_rtcp_rr(), (LOCAL, call.to_a_port))
    b.sendto(_rtp(500), (LOCAL, call.to_b_port))
    b.sendto(_rtp(501), (LOCAL, call.to_b_port))
    assert await _take(b_rtcp, 1) == [_rtcp_rr()]  # muxed on a's leg, not on b's
    assert await _take(a, 2) == [_rtp(500), _rtp(501)]
    port = call.port(call.to_a_port)
    assert port.fast is not None
    # The first packet latched the source (RelayPort.receive); the rest, and the RTCP,
    # were the fast path's. Both paths count into the same statistics.
    assert port.fast.forwarded == 20
    stats = await relay.stats("c1")
    assert stats is not None
    assert [(leg.packets, leg.lost, leg.dropped) for leg in stats.legs] == [(20, 0, 0), (2, 0, 0)]
    assert port.last_received > 0


async def _sdes_call(relay: BuiltinRelay) -> tuple[Call, SrtpContext]:
    """A call whose caller (``call.a``) speaks SDES-SRTP, and the caller's keys."""
    call = Call(relay, _udp(), _udp())
    await call.setup(SAVP_SDES)
    assert call.a_srtp is not None
    return call, call.a_srtp


async def test_sdes_srtp_is_unprotected_and_protected_by_the_fast_path(
    relay: BuiltinRelay,
) -> None:
    call, srtp = await _sdes_call(relay)
    a, b = call.a, call.b
    packets = [_rtp(seq) for seq in range(1, 11)]
    for packet in packets:
        a.sendto(srtp.protect(packet), (LOCAL, call.to_a_port))
    assert await _take(b, 10) == packets
    b.sendto(_rtp(700), (LOCAL, call.to_b_port))  # latches the plain side
    b.sendto(_rtp(701), (LOCAL, call.to_b_port))
    assert [srtp.unprotect(p) for p in await _take(a, 2)] == [_rtp(700), _rtp(701)]
    forged = bytearray(srtp.protect(_rtp(11)))
    forged[-1] ^= 1
    a.sendto(bytes(forged), (LOCAL, call.to_a_port))
    a.sendto(srtp.protect(_rtp(12)), (LOCAL, call.to_a_port))
    assert await _take(b, 2) == [_rtp(12)]
    port = call.port(call.to_a_port)
    assert port.fast is not None and port.fast.forwarded == 10
    stats = await relay.stats("c1")
    assert stats is not None and stats.legs[0].dropped == 1  # the forged packet


async def test_other_sources_and_datagrams_are_for_the_slow_path(relay: BuiltinRelay) -> None:
    a, b, stranger = _udp(), _udp(), _udp()
    call = Call(relay, a, b)
    await call.setup(AVP)
    a.sendto(_rtp(1), (LOCAL, call.to_a_port))
    assert await _take(b, 1) == [_rtp(1)]
    stranger.sendto(_rtp(2), (LOCAL, call.to_a_port))
    stranger.sendto(b"\xff garbage", (LOCAL, call.to_a_port))
    a.sendto(_rtp(3), (LOCAL, call.to_a_port))
    assert await _take(b, 2) == [_rtp(3)]
    port = call.port(call.to_a_port)
    assert port.dropped == {"unlatched source": 1, "unknown": 1}
    assert port.fast is not None and port.fast.forwarded == 1


async def test_a_new_address_in_a_reoffer_disarms_until_the_party_sends(
    relay: BuiltinRelay,
) -> None:
    a, b, moved = _udp(), _udp(), _udp()
    call = Call(relay, a, b)
    await call.setup(AVP)
    a.sendto(_rtp(1), (LOCAL, call.to_a_port))
    b.sendto(_rtp(2), (LOCAL, call.to_b_port))
    assert await _take(b, 1) == [_rtp(1)]
    assert await _take(a, 1) == [_rtp(2)]
    # The callee moves: its re-offer names a new address, which unlatches its port.
    reoffer = Negotiation("c1", "b", "a", AVP, AVP)
    await relay.offer(reoffer, _sdp(moved, AVP))
    await relay.answer(Negotiation("c1", "a", "b", AVP, AVP), _sdp(a, AVP))
    a.sendto(_rtp(3), (LOCAL, call.to_a_port))
    assert await _take(moved, 1) == [_rtp(3)]
    moved.sendto(_rtp(4), (LOCAL, call.to_b_port))  # latches the new address
    b.sendto(_rtp(5), (LOCAL, call.to_b_port))  # the old one is a stranger now
    moved.sendto(_rtp(6), (LOCAL, call.to_b_port))
    assert await _take(a, 3) == [_rtp(4), _rtp(6)]
    assert call.port(call.to_b_port).dropped == {"unlatched source": 1}


async def test_a_released_port_forwards_nothing(relay: BuiltinRelay) -> None:
    a, b = _udp(), _udp()
    call = Call(relay, a, b)
    await call.setup(AVP)
    a.sendto(_rtp(1), (LOCAL, call.to_a_port))
    a.sendto(_rtp(2), (LOCAL, call.to_a_port))
    assert len(await _take(b, 2)) == 2
    port = call.port(call.to_a_port)
    await relay.delete("c1")
    assert port.fast is not None and port.fast.last_received > 0
    a.sendto(_rtp(3), (LOCAL, call.to_a_port))
    assert await _take(b, 1) == []


async def test_garbage_and_oversized_packets_from_the_peer_are_dropped_and_counted(
    relay: BuiltinRelay,
) -> None:
    call, srtp = await _sdes_call(relay)
    a, b = call.a, call.b
    a.sendto(srtp.protect(_rtp(1)), (LOCAL, call.to_a_port))
    b.sendto(_rtp(2), (LOCAL, call.to_b_port))
    assert len(await _take(b, 1)) == len(await _take(a, 1)) == 1
    # From the latched source, looking like RTP or RTCP: every length the fast path
    # may meet, none of which authenticates.
    rng = random.Random(7)
    garbage = [bytes([rng.randrange(128, 192)]) + rng.randbytes(size) for size in range(0, 4200, 7)]
    for index, datagram in enumerate(garbage):
        a.sendto(datagram, (LOCAL, call.to_a_port))
        if index % 20 == 0:
            await asyncio.sleep(0.001)  # the relay drains: no loss to a full buffer
    # Toward the SRTP party: too long to protect in place (4,000 bytes and a trailer
    # would overflow the slot), and too long for a slot at all.
    for size in (4000, 5000):
        b.sendto(_rtp(3)[:12] + bytes(size), (LOCAL, call.to_b_port))
    a.sendto(srtp.protect(_rtp(4)), (LOCAL, call.to_a_port))
    b.sendto(_rtp(5), (LOCAL, call.to_b_port))
    assert await _take(b, 1) == [_rtp(4)]
    assert [srtp.unprotect(p) for p in await _take(a, 1)] == [_rtp(5)]
    stats = await relay.stats("c1")
    assert stats is not None
    srtp_leg, plain_leg = stats.legs
    # Garbage shorter than an RTP or RTCP header is the slow path's ("short"); the rest
    # fails authentication in the fast path. The packet too long to protect counts
    # where it would have left, the truncated one where it arrived.
    assert (srtp_leg.dropped, plain_leg.dropped) == (len(garbage) + 1, 1)
