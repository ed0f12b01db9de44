"""media.rtp: packet kinds and the RFC 3550 receive statistics of a stream."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import fastpath, rtp
from media.rtp import (
    RtpStats,
    is_dtls,
    is_rtp_or_rtcp,
    is_stun,
    rtcp_sender_ssrc,
    ssrc,
)

pytestmark = pytest.mark.unit

Stats = Callable[..., RtpStats]
BUILDS: list[Stats] = [rtp.ReceiveStats]
if fastpath.NATIVE:
    from media import _forward

    BUILDS.append(_forward.ReceiveStats)
each_build = pytest.mark.parametrize("make", BUILDS, ids=lambda build: build.__module__)
"""The statistics in pure Python, and their C twin the fast path counts into."""


def rtp(seq: int, timestamp: int = 0, payload: int = 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, timestamp, 0x1234) + bytes(payload)


def test_first_bytes_sort_datagrams_as_rfc_7983() -> None:
    assert [is_stun(b) for b in (0, 3, 4)] == [True, True, False]
    assert [is_dtls(b) for b in (19, 20, 63, 64)] == [False, True, True, False]
    assert [is_rtp_or_rtcp(b) for b in (127, 128, 191, 192)] == [False, True, True, False]


def test_ssrcs_of_rtp_and_rtcp() -> None:
    assert ssrc(rtp(1)) == 0x1234
    assert rtcp_sender_ssrc(struct.pack("!BBHI", 0x80, 201, 1, 0xCAFE)) == 0xCAFE


@each_build
def test_in_order_packets_count_with_no_loss(make: Stats) -> None:
    stats = make()
    for seq in range(100, 110):
        stats.update(rtp(seq), 1.0)
    assert (stats.packets, stats.bytes, stats.lost) == (10, 10 * 172, 0)


@each_build
def test_a_gap_is_loss_and_a_late_packet_fills_it(make: Stats) -> None:
    stats = make()
    for seq in (1, 2, 5, 6):
        stats.update(rtp(seq), 1.0)
    assert stats.lost == 2
    stats.update(rtp(3), 1.0)  # late, not a restart
    assert (stats.packets, stats.lost) == (5, 1)


@each_build
def test_the_sequence_wraps_without_loss(make: Stats) -> None:
    stats = make()
    for seq in (65533, 65534, 65535, 0, 1, 2):
        stats.update(rtp(seq), 1.0)
    assert (stats.packets, stats.lost) == (6, 0)


@each_build
def test_a_duplicate_counts_as_received_and_never_makes_loss_negative(make: Stats) -> None:
    stats = make()
    for seq in (7, 8, 8, 9):
        stats.update(rtp(seq), 1.0)
    assert (stats.packets, stats.lost) == (4, 0)


@each_build
def test_a_large_jump_restarts_the_count_and_keeps_earlier_loss(make: Stats) -> None:
    stats = make()
    for seq in (10, 12):  # one lost
        stats.update(rtp(seq), 1.0)
    for seq in (30000, 30001, 30003):  # a new sender: one more lost, not 29990
        stats.update(rtp(seq), 1.0)
    assert (stats.packets, stats.lost_before, stats.lost) == (5, 1, 2)


@pytest.mark.parametrize(("back", "lost"), [(99, 0), (100, 100)])
@each_build
def test_up_to_99_back_is_late_and_100_back_starts_a_new_sequence(
    make: Stats, back: int, lost: int
) -> None:
    stats = make()
    for seq in (5000, 5001, 5001 - back, 5002):
        stats.update(rtp(seq), 1.0)
    # Late: 5000-5002 all came. Restarted at 5001 - back: what lies between is missing.
    assert (stats.packets, stats.lost) == (4, lost)


@each_build
def test_jitter_is_zero_for_steady_packets_and_follows_rfc_3550_a8(make: Stats) -> None:
    steady = make(8000)
    for n in range(50):
        steady.update(rtp(n, n * 160), 100.0 + n * 0.02)
    assert steady.jitter_ms == pytest.approx(0.0, abs=1e-6)
    late = make(8000)
    late.update(rtp(0, 0), 100.0)
    late.update(rtp(1, 160), 100.03)  # 10 ms late: D = 80 timestamp units
    assert late.jitter_ms == pytest.approx(80 / 16 / 8, rel=1e-6)


@each_build
def test_a_new_clock_rate_starts_the_jitter_again(make: Stats) -> None:
    stats = make(8000)
    stats.update(rtp(0, 0), 100.0)
    stats.update(rtp(1, 160), 100.03)
    stats.set_clock_rate(48000)
    assert stats.jitter_ms == 0.0


class Reference:
    """RFC 3550 A.1 and A.8 as the RFC writes them: the wraps counted in ``cycles``."""

    def __init__(self) -> None:
        self.packets = self.cycles = self.max_seq = self.received = self.lost_before = 0
        self.base = -1
        self.transit = self.jitter = 0.0

    def update(self, seq: int, timestamp: int, now: float) -> None:
        self.packets += 1
        if self.base < 0:
            self.restart(seq)
        else:
            delta = (seq - self.max_seq) % 65536
            if delta < 3000:
                if seq < self.max_seq:
                    self.cycles += 65536
                self.max_seq = seq
            elif delta <= 65536 - 100:
                self.lost_before = self.lost
                self.restart(seq)
        self.received += 1
        transit = now * 8000 - timestamp
        if self.transit:
            self.jitter += (abs(transit - self.transit) - self.jitter) / 16
        self.transit = transit

    def restart(self, seq: int) -> None:
        self.base = self.max_seq = seq
        self.cycles = self.received = 0
        self.transit = 0.0

    @property
    def lost(self) -> int:
        expected = self.cycles + self.max_seq - self.base + 1
        return self.lost_before + max(0, expected - self.received)


@given(
    st.integers(0, 65535),
    st.lists(
        st.tuples(
            st.one_of(
                st.integers(-5, 40),
                st.integers(-65535, 65535),
                st.sampled_from((-101, -100, -99, 2999, 3000)),  # the edges of A.1
            ),
            st.integers(0, 2000),
        ),
        max_size=300,
    ),
)
@each_build
def test_the_counts_are_those_of_rfc_3550_appendix_a(
    make: Stats, first: int, steps: list[tuple[int, int]]
) -> None:
    stats, reference = make(8000), Reference()
    seq, now = first, 50.0
    for step, delay_us in steps:
        seq = (seq + step) % 65536
        timestamp = (seq * 160) % (1 << 32)
        now += 0.02 + delay_us / 1e6
        stats.update(rtp(seq, timestamp), now)
        reference.update(seq, timestamp, now)
        assert (stats.packets, stats.lost, stats.lost_before) == (
            reference.packets,
            reference.lost,
            reference.lost_before,
        )
    assert stats.jitter_ms == pytest.approx(reference.jitter / 8, rel=1e-9, abs=1e-9)
