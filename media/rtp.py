"""What the relay reads of RTP and RTCP: packet kinds and receive statistics.

The relay forwards packets whole; it reads only the first bytes. RFC 7983 §7 sorts
a datagram on a media port by its first byte (STUN, DTLS or RTP/RTCP), RFC 5761 §4
sorts RTP from RTCP by the second (RTCP packet types 192-223 occupy what would be
RTP payload types 64-95 with the marker bit set), and the fixed RTP header
(RFC 3550 §5.1) gives the sequence number, timestamp and SSRC that the statistics of
RFC 3550 §6.4.1 need.
"""

from __future__ import annotations

import builtins
import struct
from typing import Protocol

__all__ = [
    "MIN_RTCP",
    "MIN_RTP",
    "ReceiveStats",
    "RtpStats",
    "is_dtls",
    "is_rtp_or_rtcp",
    "is_stun",
    "rtcp_sender_ssrc",
    "ssrc",
]

MIN_RTP = 12
"""The fixed RTP header (RFC 3550 §5.1): shorter is not RTP."""
MIN_RTCP = 8
"""An RTCP header with the sender's SSRC (RFC 3550 §6.4)."""


def is_stun(first: int) -> bool:
    """RFC 7983 §7: 0-3 is STUN."""
    return first < 4


def is_dtls(first: int) -> bool:
    """RFC 7983 §7: 20-63 is DTLS."""
    return 19 < first < 64


def is_rtp_or_rtcp(first: int) -> bool:
    """RFC 7983 §7: 128-191 is RTP or RTCP (version 2)."""
    return 127 < first < 192


def ssrc(packet: bytes) -> int:
    """The SSRC of an RTP packet."""
    return int.from_bytes(packet[8:12], "big")


def rtcp_sender_ssrc(packet: bytes) -> int:
    """The SSRC of the sender of a (compound) RTCP packet: its first packet's."""
    return int.from_bytes(packet[4:8], "big")


_SEQUENCE_AND_TIMESTAMP = struct.Struct("!HI").unpack_from
"""The sequence number and timestamp of an RTP header, from offset 2: one C call."""
_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
"""RFC 3550 A.1: a jump larger than this is a restart of the sequence, not loss."""


class RtpStats(Protocol):
    """What the relay reads and updates of a stream's receive statistics: the interface
    of :class:`ReceiveStats` and of its C twin in ``media/_forward.c``."""

    @property
    def packets(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def lost(self) -> int: ...
    @property
    def jitter_ms(self) -> float: ...
    def update(self, packet: builtins.bytes, now: float) -> None: ...
    def set_clock_rate(self, clock_rate: int) -> None: ...


class ReceiveStats:
    """RFC 3550 §6.4.1 and Appendix A.1/A.8 for one stream: received, lost, jitter.

    Kept per stream rather than per SSRC (a relay sees one sender per stream); a
    sender that restarts its sequence (a new SSRC, a large jump) starts the count
    again instead of reporting thousands of lost packets.
    """

    __slots__ = (
        "_base",
        "_clock_rate",
        "_cycles",
        "_jitter",
        "_max_seq",
        "_received_since_base",
        "_transit",
        "bytes",
        "lost_before",
        "packets",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self._clock_rate = clock_rate
        self.packets = 0
        self.bytes = 0
        self.lost_before = 0
        """Loss counted before the last restart of the sequence."""
        self._base = -1
        self._max_seq = 0
        self._cycles = 0
        self._received_since_base = 0
        self._transit = 0.0
        self._jitter = 0.0

    def set_clock_rate(self, clock_rate: int) -> None:
        if clock_rate != self._clock_rate:
            self._clock_rate = clock_rate
            self._transit = 0.0
            self._jitter = 0.0

    def update(self, packet: bytes, now: float) -> None:
        """Count one RTP packet (at least :data:`MIN_RTP` bytes) received at ``now``."""
        self.packets += 1
        self.bytes += len(packet)
        seq, timestamp = _SEQUENCE_AND_TIMESTAMP(packet, 2)
        if self._base < 0:
            self._restart(seq)
        else:
            delta = (seq - self._max_seq) % _SEQ_MOD
            if delta < _MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += _SEQ_MOD
                self._max_seq = seq
            elif delta > _SEQ_MOD - 100:
                pass  # RFC 3550 A.1: a late or duplicate packet
            else:
                self.lost_before = self.lost
                self._restart(seq)
        self._received_since_base += 1
        # RFC 3550 A.8: J += (|D| - J) / 16, D the change in transit time, in
        # timestamp units.
        transit = now * self._clock_rate - timestamp
        if self._transit:
            self._jitter += (abs(transit - self._transit) - self._jitter) / 16
        self._transit = transit

    def _restart(self, seq: int) -> None:
        self._base = seq
        self._max_seq = seq
        self._cycles = 0
        self._received_since_base = 0
        self._transit = 0.0

    @property
    def lost(self) -> int:
        """Packets expected but not received (RFC 3550 A.3); never negative."""
        if self._base < 0:
            return self.lost_before
        expected = self._cycles + self._max_seq - self._base + 1
        return self.lost_before + max(0, expected - self._received_since_base)

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000 / self._clock_rate
