"""The demo PBX's calls under way, and the life of their legs whatever is at the far end.

A call has one leg or two: the caller's browser, to which the PBX is the UAS, and,
when the call is to another browser (:mod:`gateway.demo.bridge`), the callee's, to
which it is the UAC. A call to a service extension (:mod:`gateway.demo.services`)
has the caller's leg only. Either way its legs are answered, checked on and ended
the same way, so that is kept here, with the records and the table of calls:

- :meth:`Calls.answer`: a response on a leg; a 2xx to an INVITE is retransmitted
  until its ACK comes (RFC 3261 §13.3.1.4, :meth:`Calls.acked`), and a leg that is
  up is checked on with an in-dialog OPTIONS every
  :attr:`~gateway.demo.settings.PbxSettings.keepalive` seconds
  (:meth:`Calls.keepalive`);
- :meth:`Calls.end`: a final response to a caller not answered yet, CANCEL to a
  callee still ringing (:meth:`Calls.cancel`), BYE with a Reason to every leg up;
- the table: legs by Call-ID, callers by their INVITE's server transaction (for
  CANCEL), and who is in a call (a browser takes one call at a time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.demo.dialog import USER_AGENT, Dialog, uri_address
from gateway.demo.media_requests import CloseMedia
from gateway.demo.offer import ServiceOffer
from gateway.demo.registration import Registration
from gateway.demo.settings import PbxSettings
from gateway.demo.wire import ALLOW, GONE, Wire, quoted, warning_header
from gateway.sip import Flow, Request, Response, make_cancel, make_response
from gateway.sip.flow import Address
from gateway.transaction import TransactionKey

__all__ = ["Call", "Calls", "Leg"]

logger = logging.getLogger("wedge.demo")


@dataclass(slots=True, eq=False)
class Leg:
    """One side of a call: the caller's browser (we are its UAS) or the callee's
    (we are its UAC)."""

    call: Call
    caller: bool
    user: str
    call_id: str
    invite: Request
    """The INVITE that started the leg: received (caller) or sent (callee)."""
    local_tag: str
    source: Flow | None = None
    """Caller: the flow its INVITE came on (where 2xx retransmissions go)."""
    dialog: Dialog | None = None
    up: bool = False
    server: TransactionKey | None = None
    """Caller: the INVITE server transaction, until its final response."""
    client: TransactionKey | None = None
    """Callee: the INVITE client transaction."""
    provisional: bool = False
    """Callee: a 1xx came, so a CANCEL may be sent (§9.1)."""
    ok: tuple[Response, Flow] | None = None
    """Caller: our 2xx, retransmitted until the ACK comes (§13.3.1.4)."""
    ok_timer: int = 0
    ack: bytes | None = None
    """Callee: the ACK of the last 2xx, sent again if the 2xx is."""
    keepalive_timer: int = 0
    busy: bool = False
    """A re-INVITE or other request relayed from this leg waits for an answer."""


@dataclass(slots=True, eq=False)
class Call:
    caller: Leg | None = None
    callee: Leg | None = None
    extension: str | None = None
    offer: ServiceOffer | None = None
    media: Address | None = None
    """Service calls: where the player listens."""
    sdp_session: int = 0
    sdp_version: int = 0
    answered: bool = False
    ended: bool = False
    ring_timer: int = 0
    cancelled: bool = False

    def legs(self) -> list[Leg]:
        return [leg for leg in (self.caller, self.callee) if leg is not None]

    def other(self, leg: Leg) -> Leg | None:
        return self.callee if leg is self.caller else self.caller


class Calls:
    """See the module docstring.

    Args:
        wire: the PBX's way out.
        settings: the keep-alive interval and the SIP timers (T1, T2).
        registration: told when a leg's browser is found gone, to check on its
            registration too.
    """

    def __init__(self, wire: Wire, settings: PbxSettings, registration: Registration) -> None:
        self._wire = wire
        self._settings = settings
        self._registration = registration
        self.legs: dict[str, Leg] = {}
        """Every leg of every call under way, by its Call-ID."""
        self.servers: dict[TransactionKey, Leg] = {}
        """Callers by their INVITE's server transaction, until it ends."""
        self._calls_of: dict[str, set[Call]] = {}

    def add(self, leg: Leg) -> None:
        """``leg`` is under way: find it by its Call-ID (and its INVITE's server
        transaction, for a caller)."""
        self.legs[leg.call_id] = leg
        if leg.server is not None:
            self.servers[leg.server] = leg

    def count(self) -> int:
        """Calls under way."""
        return len({leg.call for leg in self.legs.values()})

    def in_call(self, user: str) -> bool:
        return bool(self._calls_of.get(user))

    def busy(self, call: Call, user: str, busy: bool) -> None:
        """``user`` is (or is no longer) in ``call``."""
        calls = self._calls_of.setdefault(user, set())
        if busy:
            calls.add(call)
        else:
            calls.discard(call)
            if not calls:
                del self._calls_of[user]

    # -- answering -------------------------------------------------------------------

    def answer(
        self,
        leg: Leg,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        warning: str | None = None,
        request: tuple[Request, Flow] | None = None,
    ) -> None:
        """A response on ``leg`` to ``request`` and the flow it came on (default: its
        INVITE). A 2xx to an INVITE is retransmitted until its ACK (§13.3.1.4)."""
        answering, flow = request or (leg.invite, leg.source)
        initial = answering is leg.invite
        if initial and leg.server is None:
            return  # the INVITE has its final response already
        extra: list[tuple[str, str]] = []
        if answering.method == "INVITE" and 100 < status < 300:
            extra += [("Contact", f"<sip:pbx@{self._wire.host()}>"), ("Allow", ALLOW)]
        if warning:
            extra.append(warning_header(warning))
        extra.append(("User-Agent", USER_AGENT))
        if content_type and body:
            extra.append(("Content-Type", content_type))
        response = make_response(
            answering, status, reason, to_tag=leg.local_tag, extra=tuple(extra)
        )
        if body:
            response.body = body
        self._wire.respond(response)
        if status < 200:
            return
        if initial:
            if leg.server is not None:
                self.servers.pop(leg.server, None)
            leg.server = None
        if status < 300 and answering.method == "INVITE":
            assert leg.dialog is not None
            if initial:
                leg.up = True
                leg.call.answered = True
                self.keepalive(leg)
            assert flow is not None
            leg.ok = (response, flow)
            self._retransmit_ok(leg, self._settings.timers.t1)

    def _retransmit_ok(self, leg: Leg, interval: float, elapsed: float = 0.0) -> None:
        timers = self._settings.timers

        def again() -> None:
            if leg.ok is None:
                return
            if elapsed + interval >= 64 * timers.t1:
                leg.ok = None
                self.end(leg.call, 0, f"{leg.user}'s browser never confirmed the call")
                return
            self._wire.resend(bytes(leg.ok[0]), leg.ok[1])
            self._retransmit_ok(leg, min(2 * interval, timers.t2), elapsed + interval)

        leg.ok_timer = self._wire.after(interval, again)

    def acked(self, ack: Request) -> None:
        """An ACK (no transaction of its own): the 2xx it confirms is sent no more."""
        leg = self.legs.get(ack.call_id)
        if leg is None or leg.ok is None:
            return
        if ack.cseq.number == leg.ok[0].cseq.number:
            leg.ok = None
            self._wire.cancel_timer(leg.ok_timer)

    def keepalive(self, leg: Leg) -> None:
        """Check on ``leg``'s browser every ``keepalive`` seconds: a browser that went
        away without BYE (tab closed, network gone) makes Wedge answer 430 Flow
        Failed, and the call ends for the other party with a Reason saying why."""
        wire = self._wire

        def probe() -> None:
            dialog = leg.dialog
            if leg.call.ended or dialog is None:
                return

            def answered(response: Response | None) -> None:
                if leg.call.ended:
                    return
                if response is None or response.status in GONE:
                    logger.info("browser gone user=%s call-id=%s", leg.user, leg.call_id)
                    # The BYE to the gone browser too: it fails (430), but passing
                    # through Wedge it ends that call's relay session there.
                    self.end(leg.call, 0, f"{leg.user}'s browser went away")
                    self._registration.forget_if_gone(leg.user)
                else:
                    self.keepalive(leg)

            wire.send(dialog.request("OPTIONS", wire.via()), dialog.flow, answered)

        leg.keepalive_timer = wire.after(self._settings.keepalive, probe)

    # -- ending ----------------------------------------------------------------------

    def end(
        self,
        call: Call,
        status: int,
        why: str,
        reason: str | None = None,
        *,
        exclude: Leg | None = None,
    ) -> None:
        """End ``call``: a final ``status`` to an unanswered caller, CANCEL to a
        ringing callee, BYE (with ``why`` as its Reason) to every leg that is up
        but ``exclude`` (which hung up itself)."""
        if call.ended:
            return
        call.ended = True
        wire = self._wire
        wire.cancel_timer(call.ring_timer)
        if call.extension is not None and call.caller is not None:
            wire.media(CloseMedia(call.caller.call_id))
        for leg in call.legs():
            wire.cancel_timer(leg.keepalive_timer)
            wire.cancel_timer(leg.ok_timer)
            leg.ok = None
            self.busy(call, leg.user, False)
            self.legs.pop(leg.call_id, None)
            if leg is exclude:
                continue
            if leg.caller and not leg.up:
                self.answer(leg, status or 480, reason, warning=why)
            elif not leg.caller and not leg.up:
                self.cancel(leg)
            else:
                self.bye(leg, why)

    def bye(self, leg: Leg, why: str) -> None:
        """BYE on ``leg``, with ``why`` as its Reason (RFC 3326)."""
        if leg.dialog is None:
            return
        reason = ("Reason", f'SIP;cause=200;text="{quoted(why)}"')  # RFC 3326
        wire = self._wire
        wire.send(leg.dialog.request("BYE", wire.via(), extra=(reason,)), leg.dialog.flow)

    def cancel(self, leg: Leg) -> None:
        """CANCEL the INVITE to a callee (§9.1), once it answered 1xx; before that,
        the 1xx handler cancels it when it comes."""
        if not leg.provisional or leg.client is None:
            return
        invite = leg.invite
        headers = invite.headers
        address = uri_address(headers.values("route")[0] if "route" in headers else invite.uri)
        if address is not None:
            self._wire.send(make_cancel(invite), Flow("udp", self._wire.local, address))
        leg.client = None
