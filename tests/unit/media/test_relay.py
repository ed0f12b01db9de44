"""media.relay: one port's forwarding, wired by hand (test_session.py wires it by SDP).

Two legs, one stream each: the caller's port ``a`` and the callee's port ``b``. What a
port sends is appended to ``sent``; the ports read the test's clock.
"""

from __future__ import annotations

import logging
import struct

import pytest

from media.relay import Address, RelayPort, StreamEnd
from media.srtp import SrtpContext

pytestmark = pytest.mark.unit

CALLER: Address = ("192.0.2.10", 4000)
CALLEE: Address = ("192.0.2.20", 5000)
KEY = bytes(range(30))


def _rtp(seq: int, timestamp: int | None = None) -> bytes:
    stamp = seq * 160 if timestamp is None else timestamp
    return struct.pack("!BBHII", 0x80, 0, seq, stamp, 0x1234) + bytes(160)


class Call:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, Address]] = []
        self.now = 10.0
        self.a = self._port(40000)
        self.b = self._port(40002)
        self.a_stream = StreamEnd(0, self.a, self.a)
        self.b_stream = StreamEnd(0, self.b, self.b)
        self.a_stream.peer, self.b_stream.peer = self.b_stream, self.a_stream
        self.a.serve([self.a_stream])
        self.b.serve([self.b_stream])
        self.a.remote, self.b.remote = CALLER, CALLEE

    def _port(self, number: int) -> RelayPort:
        return RelayPort(
            number, lambda data, to: self.sent.append((number, data, to)), lambda: self.now
        )

    def take(self) -> list[tuple[int, bytes, Address]]:
        sent, self.sent = self.sent, []
        return sent


def test_rtp_goes_out_of_the_peer_port_to_its_party() -> None:
    call = Call()
    call.a.receive(_rtp(1), CALLER)
    call.b.receive(_rtp(2), CALLEE)
    assert call.take() == [(40002, _rtp(1), CALLEE), (40000, _rtp(2), CALLER)]
    assert (call.a_stream.stats.packets, call.b_stream.stats.packets) == (1, 1)


def test_the_port_reads_its_clock_for_the_last_packet_and_the_jitter() -> None:
    call = Call()
    call.a.receive(_rtp(1, 0), CALLER)
    call.now = 10.03  # 10 ms late for 20 ms packets: D = 80 units at 8 kHz
    call.a.receive(_rtp(2, 160), CALLER)
    assert call.a.last_received == 10.03
    assert call.a_stream.stats.jitter_ms == pytest.approx(80 / 16 / 8)


def test_the_first_packet_latches_and_then_only_its_source_passes() -> None:
    call = Call()
    moved: Address = ("198.51.100.1", 6000)
    call.a.receive(_rtp(1), moved)  # behind a NAT: not where the SDP said
    call.b.receive(_rtp(1), CALLEE)
    call.a.receive(_rtp(2), CALLER)
    assert [to for _, _, to in call.take()] == [CALLEE, moved]
    assert call.a.dropped["unlatched source"] == 1


def test_an_srtp_leg_unprotects_in_and_protects_out() -> None:
    call = Call()
    party = SrtpContext("AES_CM_128_HMAC_SHA1_80", KEY, KEY[::-1])
    call.a.srtp = SrtpContext("AES_CM_128_HMAC_SHA1_80", KEY[::-1], KEY)
    call.a.secure = True
    call.a.receive(party.protect(_rtp(1)), CALLER)
    call.a.receive(_rtp(2), CALLER)  # not authenticated
    call.b.receive(_rtp(3), CALLEE)
    (_, plain, _), (_, protected, to) = call.take()
    assert plain == _rtp(1)
    assert (party.unprotect(protected), to) == (_rtp(3), CALLER)
    assert call.a.dropped["srtp"] == 1


def test_rtcp_follows_the_stream_to_the_peer_rtcp_port() -> None:
    call = Call()
    rtcp_port = call._port(40003)
    call.b_stream.rtcp = rtcp_port
    rtcp_port.remote = ("192.0.2.20", 5001)
    report = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    call.a.receive(report, CALLER)
    assert call.take() == [(40003, report, ("192.0.2.20", 5001))]
    assert call.a_stream.stats.packets == 0  # RTCP is not counted as media


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x00\x00", "short"),
        (_rtp(1)[:10], "short"),
        (b"\xff" + bytes(20), "unknown"),
        (b"\x00\x01" + bytes(18), "stun without ice"),
        (b"\x16" + bytes(20), "dtls without dtls"),
    ],
)
def test_what_is_not_media_is_counted_and_dropped(data: bytes, reason: str) -> None:
    call = Call()
    call.a.receive(data, CALLER)
    assert call.take() == []
    assert call.a.dropped == {reason: 1}


def test_a_failed_send_loses_the_packet_as_the_network_would(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = Call()

    def full(data: bytes, to: Address) -> None:
        raise BlockingIOError("the socket buffer is full")

    call.b.send = full
    call.a.receive(_rtp(1), CALLER)
    call.a.receive(_rtp(2), CALLER)
    assert call.a_stream.stats.packets == 2
    assert not caplog.records


def test_a_bug_loses_one_packet_is_logged_and_the_port_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = Call()

    def broken(data: bytes, to: Address) -> None:
        raise RuntimeError("a bug")

    call.b.send = broken
    with caplog.at_level(logging.ERROR, "wedge.media"):
        call.a.receive(_rtp(1), CALLER)  # does not raise
    assert "relay port 40000: packet dropped" in caplog.text
    call.b.send = lambda data, to: call.sent.append((40002, data, to))
    call.a.receive(_rtp(2), CALLER)
    assert call.take() == [(40002, _rtp(2), CALLEE)]


def test_rtp_too_long_for_srtp_is_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    # A plain-RTP peer may send what does not fit libsrtp's buffer with its trailer:
    # dropped and counted on the SRTP leg, and no error line per packet.
    call = Call()
    call.a.srtp = SrtpContext("AES_CM_128_HMAC_SHA1_80", KEY, KEY)
    call.a.secure = True
    huge = _rtp(1)[:12] + bytes(1450)
    with caplog.at_level(logging.WARNING, logger="wedge.media"):
        call.b.receive(huge, CALLEE)
        call.b.receive(_rtp(2), CALLEE)
    assert not caplog.records
    assert call.a.dropped["srtp protect"] == 1
    assert [port for port, _, _ in call.take()] == [40000]  # the next packet passes
