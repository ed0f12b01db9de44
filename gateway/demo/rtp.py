"""RTP as the demo PBX's players need it: build and read packets, RFC 4733 events.

RFC 3550 §5.1 fixed header (version 2, no padding or extension when we write;
CSRCs, an extension and padding skipped when we read) and RFC 4733 §2.3 named
telephone events. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "DTMF_EVENTS",
    "HEADER",
    "Packet",
    "RtpStream",
    "TelephoneEvent",
    "build",
    "parse",
    "telephone_event",
    "telephone_event_payload",
]

HEADER = 12
"""Bytes in the fixed RTP header."""
DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 §3.2: event codes 0-15 are these keys, in this order."""

_FIXED = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class Packet:
    """What :func:`parse` reads of an RTP packet."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def build(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: bool = False,
) -> bytes:
    """An RTP packet with the fixed header and ``payload``."""
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    header = _FIXED.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return header + payload


def parse(data: bytes) -> Packet | None:
    """The packet in ``data``, or None if it is not RTP version 2 (RTCP, STUN, junk).

    RTCP shares the first byte's shape; its packet types 200-204 read as payload
    types 72-76 with the marker set (RFC 5761 §4), which are refused here too.
    """
    if len(data) < HEADER:
        return None
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    if first >> 6 != 2 or 72 <= second & 0x7F <= 76:
        return None
    start = HEADER + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = len(data)
    if first & 0x20 and end > start:  # padding: the last byte counts it
        end -= data[-1]
    if end < start:
        return None
    return Packet(second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[start:end])


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event payload."""

    key: str
    """The key (``0``-``9``, ``*``, ``#``, ``A``-``D``)."""
    end: bool
    """The E bit: this packet (or a retransmission of it) ends the event."""
    duration: int
    """In timestamp units since the event's start (its RTP timestamp)."""


def telephone_event(payload: bytes) -> TelephoneEvent | None:
    """The DTMF key an RFC 4733 payload carries, or None for another event."""
    if len(payload) < 4 or payload[0] >= len(DTMF_EVENTS):
        return None
    return TelephoneEvent(
        DTMF_EVENTS[payload[0]], bool(payload[1] & 0x80), int.from_bytes(payload[2:4], "big")
    )


def telephone_event_payload(key: str, *, end: bool, duration: int, volume: int = 10) -> bytes:
    """An RFC 4733 payload for ``key`` (for tests and for anyone who sends DTMF)."""
    return bytes([DTMF_EVENTS.index(key), (0x80 if end else 0) | (volume & 0x3F)]) + (
        duration & 0xFFFF
    ).to_bytes(2, "big")


class RtpStream:
    """One outgoing stream: its SSRC, and the sequence number and timestamp that run on."""

    def __init__(self, payload_type: int, ssrc: int, sequence: int, timestamp: int) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence
        self.timestamp = timestamp
        self._marker = True  # the first packet starts a talkspurt (RFC 3551 §4.1)

    def packet(self, payload: bytes, samples: int) -> bytes:
        """The next packet carrying ``payload``, ``samples`` long."""
        data = build(
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            payload,
            marker=self._marker,
        )
        self._marker = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        return data

    def skip(self, samples: int) -> None:
        """Let ``samples`` of time pass without a packet (on hold); the next packet
        starts a new talkspurt."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._marker = True
