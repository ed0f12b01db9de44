"""Per-call media glue: which SDP is an offer and which an answer, and the order of a
call's messages while the relay works on one of them.

Theory of operation. The proxy core hands every message of a call with media to
:meth:`CallMedia.carry` just before it would send it, with what to do next
(``proceed``) and what to do if the relay refuses (``fail``). A message without SDP
proceeds at once, unless an earlier message of the same call is still with the
relay: then it waits its turn, so that a 180 never overtakes the 183 before it and an
ACK never overtakes the 200 it acknowledges. A message with SDP becomes a
:class:`MediaJob` for the engine, which awaits the relay
(:class:`~media.control.MediaControl`) and calls :meth:`CallMedia.done`; the body is
replaced and the message proceeds.

Offer or answer (RFC 3264, RFC 3261 §13.2.1, RFC 3311, RFC 3262): a description from
a party is an answer when the other party's offer is outstanding, and an offer
otherwise. An answer in a provisional response leaves the offer outstanding, since
the 2xx repeats it (RFC 3261 §13.2.1) or, from another fork, differs; any other answer
completes the exchange. A body its sender already sent in the same exchange (a
retransmitted 2xx, the same answer in the 183 and the 200) is not sent to the relay
again: the rewrite of last time is used. A new offer starts a new exchange, since
the same answer text then answers something else (an ICE restart, say).

The state of a call ends with :meth:`CallMedia.end` (BYE, a failed initial INVITE),
which queues the relay's ``delete`` behind whatever the call still has under way.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.sip import Request, Response
from media.control import MediaError, Negotiation
from sdp.rewrite import AVP, SAVP_SDES, SAVP_SDES_ICE, TEAMS, WEBRTC, Profile

__all__ = [
    "PROFILES",
    "CallMedia",
    "MediaJob",
    "profile_for",
]

PROFILES: Mapping[str, Profile] = {
    "avp": AVP,
    "savp-sdes": SAVP_SDES,
    "savp-sdes-ice": SAVP_SDES_ICE,
    "teams": TEAMS,
    "webrtc": WEBRTC,
}
"""Media profiles by their policy name."""

_BY_TRANSPORT: Mapping[str, Profile] = {
    "udp": AVP,
    "tcp": AVP,
    "tls": SAVP_SDES,
    "ws": WEBRTC,
    "wss": WEBRTC,
}


def profile_for(transport: str, name: str | None = None) -> Profile:
    """The profile a leg gets: the one policy names, else its transport's
    (ARCHITECTURE.md §5)."""
    if name is not None:
        return PROFILES[name]
    return _BY_TRANSPORT[transport]


@dataclass(frozen=True, slots=True)
class MediaJob:
    """Work for the relay, in the order the engine must start it."""

    ticket: int
    call_id: str
    kind: str
    """``offer``, ``answer`` or ``delete``."""
    negotiation: Negotiation | None = None
    sdp: bytes = b""


Proceed = Callable[[], None]
Fail = Callable[[MediaError], None]


@dataclass(slots=True, eq=False)
class _Call:
    caller: str
    caller_profile: Profile
    callee_profile: Profile
    codecs: tuple[str, ...] = ()
    """The callee side's codec allow-list, for offers from the caller."""
    flags: tuple[str, ...] = ()
    """The callee side's raw relay flags."""
    offerer: str | None = None
    """The party whose offer is outstanding."""
    sent: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    """Party -> its last description as received, and as the relay rewrote it."""
    busy: int = 0
    """The ticket of the job under way (0: none)."""
    queue: deque[Proceed] = field(default_factory=deque)
    ended: bool = False

    def profile(self, tag: str | None) -> Profile:
        return self.caller_profile if tag == self.caller else self.callee_profile


@dataclass(slots=True, eq=False)
class _Waiting:
    call: _Call
    kind: str
    message: Request | Response | None = None
    sender: str = ""
    body: bytes = b""
    proceed: Proceed | None = None
    fail: Fail | None = None


class CallMedia:
    """The media state of every call with media, and the jobs it wants run."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._jobs: list[MediaJob] = []
        self._waiting: dict[int, _Waiting] = {}
        self._tickets = itertools.count(1)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def jobs(self) -> list[MediaJob]:
        """Jobs to start, in order; each ends with :meth:`done` (``delete`` too)."""
        jobs, self._jobs = self._jobs, []
        return jobs

    def start(
        self,
        call_id: str,
        caller: str,
        caller_profile: Profile,
        callee_profile: Profile,
        codecs: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
    ) -> None:
        """A new call from the party tagged ``caller``, with each side's profile and
        the callee side's codec allow-list and relay flags (policy's, for a trunk).

        Again for the same call (failover to another target): the callee's side may
        change profile."""
        call = self._calls.get(call_id)
        if call is None:
            self._calls[call_id] = _Call(caller, caller_profile, callee_profile, codecs, flags)
        else:
            call.callee_profile, call.codecs, call.flags = callee_profile, codecs, flags

    def carry(
        self,
        message: Request | Response,
        proceed: Proceed,
        fail: Fail,
    ) -> None:
        """``message`` is ready to go on: let the relay rewrite its SDP first, in turn."""
        call = self._calls.get(message.call_id)
        if call is None:
            proceed()
            return
        if call.busy:
            call.queue.append(lambda: self._carry(call, message, proceed, fail))
        else:
            self._carry(call, message, proceed, fail)

    def end(self, call_id: str) -> None:
        """The call is over: free its media once what it has under way is done."""
        call = self._calls.get(call_id)
        if call is None or call.ended:
            return
        call.ended = True

        def delete() -> None:
            self._calls.pop(call_id, None)
            ticket = next(self._tickets)
            call.busy = ticket
            self._waiting[ticket] = _Waiting(call, "delete")
            self._jobs.append(MediaJob(ticket, call_id, "delete"))

        if call.busy:
            call.queue.append(delete)
        else:
            delete()

    def done(self, ticket: int, result: bytes | MediaError | None) -> None:
        """The relay finished job ``ticket``: the new body, or why not."""
        waiting = self._waiting.pop(ticket, None)
        if waiting is None:
            return
        call = waiting.call
        call.busy = 0
        message, proceed, fail = waiting.message, waiting.proceed, waiting.fail
        if message is not None and proceed is not None and fail is not None:
            if isinstance(result, bytes):
                if waiting.kind == "offer":
                    # A new exchange: the other party's last answer answered another
                    # offer, so the same text from it now needs a fresh rewrite.
                    call.sent.clear()
                call.sent[waiting.sender] = (waiting.body, result)
                self._exchanged(call, waiting.kind, message, waiting.sender)
                message.body = result
                proceed()
            else:
                fail(result or MediaError("the relay gave no description", 500))
        while call.queue and not call.busy:
            call.queue.popleft()()

    # -- internals -----------------------------------------------------------------------

    def _carry(
        self, call: _Call, message: Request | Response, proceed: Proceed, fail: Fail
    ) -> None:
        body = _sdp(message)
        if body is None or call.ended:
            proceed()
            return
        sender, receiver = _parties(message)
        last = call.sent.get(sender)
        if last is not None and last[0] == body:
            message.body = last[1]
            proceed()
            return
        kind = "answer" if call.offerer is not None and call.offerer != sender else "offer"
        negotiation = Negotiation(
            message.call_id,
            sender,
            receiver,
            call.profile(sender),
            call.profile(receiver if receiver is not None else _callee(call, sender)),
            call.codecs if kind == "offer" and sender == call.caller else (),
            call.flags,
        )
        ticket = next(self._tickets)
        call.busy = ticket
        self._waiting[ticket] = _Waiting(call, kind, message, sender, body, proceed, fail)
        self._jobs.append(MediaJob(ticket, message.call_id, kind, negotiation, body))

    @staticmethod
    def _exchanged(call: _Call, kind: str, message: Request | Response, sender: str) -> None:
        if kind == "offer":
            call.offerer = sender
        elif not (isinstance(message, Response) and message.status < 200):
            call.offerer = None


def _sdp(message: Request | Response) -> bytes | None:
    if not message.body:
        return None
    content_type = message.content_type
    if content_type is None or content_type.mime != "application/sdp":
        return None
    return message.body


def _parties(message: Request | Response) -> tuple[str, str | None]:
    """The sender's and the receiver's dialog tags."""
    if isinstance(message, Request):
        return message.from_.tag or "", message.to.tag
    return message.to.tag or "", message.from_.tag


def _callee(call: _Call, sender: str) -> str | None:
    # Toward the callee before its tag is known: anything that is not the caller.
    return None if sender == call.caller else call.caller
