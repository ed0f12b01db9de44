"""The ``MediaControl`` protocol: what the proxy asks of a media relay, whichever it is.

Both backends implement it: the built-in relay (:mod:`media.builtin`) and rtpengine
over its ng protocol. The vocabulary is rtpengine's, because it is the one SIP
proxies already share (Kamailio's and OpenSIPS's rtpengine modules):

- a media session is named by the SIP Call-ID;
- each party to it is a *leg*, named by its dialog tag: the ``from_tag`` of an offer
  is the tag of the party that made it, the ``to_tag`` the tag of the party it goes
  to (unknown in an initial INVITE's offer);
- ``offer`` takes the offerer's description and returns the one to send on, with the
  relay in the path; ``answer`` does the same for the answer. A later offer in the
  same session (re-INVITE or UPDATE: hold, resume, ICE restart, a codec change) is
  an ``offer`` again, from whichever party makes it, as in rtpengine;
- ``delete`` ends the session and frees its ports; ``stats`` reads its counters.

The proxy names each leg's :class:`~sdp.rewrite.Profile` (from its transport and the
trunk's policy); the relay converts between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sdp.rewrite import Profile

__all__ = [
    "CallStats",
    "LegStats",
    "MediaControl",
    "MediaError",
    "Negotiation",
    "TimeoutHandler",
]


class MediaError(Exception):
    """The relay could not take part: the SIP status to answer with, and why.

    488 for a description the relay cannot serve (malformed, no common codec), 503
    when the relay itself is out of service (no free port, backend not answering).
    """

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Negotiation:
    """One offer or answer passing through the relay."""

    call_id: str
    from_tag: str
    """The tag of the party whose description this is."""
    to_tag: str | None
    """The tag of the party it goes to; None while unknown (an initial offer)."""
    source: Profile
    """The profile of the leg the description came from."""
    destination: Profile
    """The profile of the leg it goes to."""
    codecs: Sequence[str] = ()
    """A codec allow-list for the destination leg (policy); empty: all."""
    flags: Sequence[str] = ()
    """Raw relay flags for the call's trunk leg (policy; rtpengine's ng flags)."""


@dataclass(slots=True)
class LegStats:
    """What the relay received from one party, over the whole session."""

    tag: str
    packets: int = 0
    bytes: int = 0
    lost: int = 0
    """RTP packets never received, from the sequence numbers (RFC 3550 §6.4.1)."""
    jitter_ms: float = 0.0
    """RFC 3550 §6.4.1 interarrival jitter of the main stream, in milliseconds."""
    dropped: int = 0
    """Packets dropped: SRTP authentication failures, unvalidated sources, garbage."""


@dataclass(slots=True)
class CallStats:
    """A media session's counters, one entry per party."""

    call_id: str
    legs: list[LegStats] = field(default_factory=list)

    def summary(self) -> str:
        """One log-friendly line: packets, loss and jitter per party."""
        return " ".join(
            f"{leg.tag}:pkts={leg.packets},lost={leg.lost},jitter={leg.jitter_ms:.1f}ms"
            f"{f',dropped={leg.dropped}' if leg.dropped else ''}"
            for leg in self.legs
        )


TimeoutHandler = Callable[[str], None]
"""Called with a Call-ID whose media stopped flowing (the call should end)."""


class MediaControl(Protocol):
    """A media relay, as the proxy drives it. Every method may be awaited concurrently
    for different calls; for one call the proxy awaits them in order."""

    async def offer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        """The offer ``sdp`` as the destination should see it.

        Raises:
            MediaError: the offer cannot be relayed.
        """
        ...

    async def answer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        """The answer ``sdp`` (to an earlier :meth:`offer` in the other direction) as
        the offerer should see it.

        Raises:
            MediaError: the answer cannot be relayed.
        """
        ...

    async def delete(self, call_id: str) -> CallStats | None:
        """End the session and free what it holds; its final counters, if it existed."""
        ...

    async def stats(self, call_id: str) -> CallStats | None:
        """The session's counters so far, or None if there is no such session."""
        ...

    def on_timeout(self, handler: TimeoutHandler) -> None:
        """Call ``handler`` for each session whose media stops (see the relay's timeout)."""
        ...

    async def close(self) -> None:
        """End every session and release the backend."""
        ...
