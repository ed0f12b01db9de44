"""The relay's fast path for established streams, in C (``media/_forward.c``)."""

import builtins
from collections.abc import Callable

from media.rtp import RtpStats

Address = tuple[str, int]

class ReceiveStats:
    """RFC 3550 receive statistics of one stream: as :class:`media.rtp.ReceiveStats`."""

    packets: int
    bytes: int
    lost_before: int
    def __init__(self, clock_rate: int = 8000) -> None: ...
    def update(self, packet: builtins.bytes, now: float) -> None: ...
    def set_clock_rate(self, clock_rate: int) -> None: ...
    @property
    def lost(self) -> int: ...
    @property
    def jitter_ms(self) -> float: ...

class Forwarder:
    """One relay port's socket reader, with its fast path for established streams."""

    last_received: float
    forwarded: int
    dropped: int
    def __init__(self, fd: int, slow: Callable[[bytes, Address], object]) -> None: ...
    def drain(self) -> None: ...
    # ``stats`` must be a ReceiveStats of this module (TypeError otherwise).
    def accept(
        self,
        source: Address,
        rx: int,
        owner: object,
        rtp: Forwarder,
        rtcp: Forwarder,
        stats: RtpStats,
    ) -> None: ...
    def disarm(self) -> None: ...
    def send_to(self, destination: Address | None, tx: int, owner: object) -> None: ...
    def close(self) -> None: ...

def use_libsrtp(protect: int, unprotect: int, protect_rtcp: int, unprotect_rtcp: int) -> None: ...
