"""Just enough of each answered call's dialog for Wedge to end it itself.

A proxy normally leaves dialogs to their end points. But when the relay sees that a
call's media stopped (a browser tab closed, a PBX crashed), nobody will send BYE
and both parties would pay for a dead call; Wedge then sends a BYE to each party,
as rtpengine-backed proxies do. To build those BYEs (RFC 3261 §12.2.1.1) it keeps,
per answered call: each party's remote target (Contact) and tags, the part of the
route set on each side of Wedge, the flow each party is reached on, and the
highest CSeq seen from each party, since a new request must exceed it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.proxy.routing import RouteStamp
from gateway.sip import Flow, Headers, Request, Response
from gateway.sip.headers import NameAddr

__all__ = ["Dialog", "Dialogs"]

MAX_DIALOGS = 100_000
"""Answered calls remembered; the oldest go first (a BYE that never came)."""


@dataclass(slots=True)
class _Party:
    flow: Flow
    identity: str
    """Its From/To header value, tag included."""
    tag: str
    target: str
    """Its Contact URI: the Request-URI of a request to it."""
    routes: list[str]
    """The Route entries between Wedge and it, nearest first."""
    cseq: int


@dataclass(slots=True)
class Dialog:
    """An answered call, as seen from Wedge."""

    call_id: str
    caller: _Party
    callee: _Party


class Dialogs:
    """The answered calls Wedge may have to end, by Call-ID."""

    def __init__(self, stamp: RouteStamp, limit: int = MAX_DIALOGS) -> None:
        self.stamp = stamp
        self.limit = limit
        self._dialogs: dict[str, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def answered(
        self, invite: Request, response: Response, caller_flow: Flow, callee_flow: Flow
    ) -> None:
        """A 2xx to an initial INVITE went upstream: remember the dialog it made."""
        caller_contact = invite.contacts[0].uri_text if invite.contacts else None
        callee_contact = response.contacts[0].uri_text if response.contacts else None
        caller_tag, callee_tag = invite.from_.tag, response.to.tag
        if not (caller_contact and callee_contact and caller_tag and callee_tag):
            return
        # Record-Route as the 2xx carries it: the callee's side above our entries, the
        # caller's below (each proxy puts its entry on top on the way to the callee).
        entries = response.headers.values("record-route")
        ours = [i for i, entry in enumerate(response.record_routes) if self._is_ours(entry)]
        above = entries[: ours[0]] if ours else entries
        below = entries[ours[-1] + 1 :] if ours else []
        self._dialogs[invite.call_id] = Dialog(
            invite.call_id,
            _Party(
                caller_flow,
                invite.headers.get("from") or "",
                caller_tag,
                caller_contact,
                below,
                invite.cseq.number,
            ),
            _Party(
                callee_flow,
                response.headers.get("to") or "",
                callee_tag,
                callee_contact,
                list(reversed(above)),
                0,
            ),
        )
        if len(self._dialogs) > self.limit:
            del self._dialogs[next(iter(self._dialogs))]

    def saw(self, request: Request) -> None:
        """An in-dialog request passed: its sender's CSeq may have grown."""
        dialog = self._dialogs.get(request.call_id)
        if dialog is None:
            return
        tag = request.from_.tag
        for party in (dialog.caller, dialog.callee):
            if party.tag == tag:
                party.cseq = max(party.cseq, request.cseq.number)

    def end(self, call_id: str) -> Dialog | None:
        """Forget the call (its BYE passed); what was known of it."""
        return self._dialogs.pop(call_id, None)

    def byes(
        self, call_id: str, reason: str, via: Callable[[Flow], str | None]
    ) -> list[tuple[Request, Flow]]:
        """A BYE to each party of the call, each with the flow to send it on, as if the
        other party had sent it; the call is forgotten. ``via`` gives our Via for a flow.
        """
        dialog = self._dialogs.pop(call_id, None)
        if dialog is None:
            return []
        out: list[tuple[Request, Flow]] = []
        for sender, receiver in ((dialog.caller, dialog.callee), (dialog.callee, dialog.caller)):
            top = via(receiver.flow)
            if top is None:
                continue
            sender.cseq += 1
            pairs = [("Via", top), ("Max-Forwards", "70")]
            pairs += [("Route", route) for route in receiver.routes]
            pairs += [
                ("From", sender.identity),
                ("To", receiver.identity),
                ("Call-ID", call_id),
                ("CSeq", f"{sender.cseq} BYE"),
                ("Reason", f'SIP;cause=408;text="{reason}"'),  # RFC 3326
                ("Content-Length", "0"),
            ]
            out.append((Request("BYE", receiver.target, Headers.of(pairs)), receiver.flow))
        return out

    def _is_ours(self, entry: NameAddr) -> bool:
        return self.stamp.own_route(entry) is not None
