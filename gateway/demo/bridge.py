"""Calls between two registered browsers, bridged as a back-to-back user agent.

The caller's INVITE is answered on one leg; a new INVITE (a Call-ID of its own, the
caller's SDP as it is) goes to the callee's browser along the Path it registered
with, back through Wedge (:meth:`Bridge.start`). The callee's responses cross over
to the caller: a 1xx as it is, a 2xx ACKed and then answered to the caller with the
callee's SDP, a refusal as the caller's final response with a Warning saying why.
Once both are up, each request in one dialog (re-INVITE for hold, INFO, UPDATE) is
relayed to the other and its final response brought back (:meth:`Bridge.relay`).
Ending a call (BYE from either side, the caller's CANCEL, a CANCEL to a callee still
ringing, the ring timeout) is the same for every call: :mod:`gateway.demo.calls`.
"""

from __future__ import annotations

import logging

from gateway.demo.calls import Call, Calls, Leg
from gateway.demo.dialog import USER_AGENT, Dialog, uri_address
from gateway.demo.registrar import Binding, Registrar
from gateway.demo.settings import PbxSettings
from gateway.demo.wire import ALLOW, GONE, Wire
from gateway.sip import Flow, Headers, Request, Response

__all__ = ["Bridge"]

logger = logging.getLogger("wedge.demo")


class Bridge:
    """See the module docstring.

    Args:
        wire: the PBX's way out.
        settings: the users file (who could be online) and the ring timeout.
        registrar: where the callee's browser is.
        calls: the calls under way, whose legs are answered and ended there.
    """

    def __init__(
        self, wire: Wire, settings: PbxSettings, registrar: Registrar, calls: Calls
    ) -> None:
        self._wire = wire
        self._settings = settings
        self._registrar = registrar
        self._calls = calls

    def start(self, call: Call, target: str) -> None:
        """A new call from its caller's leg to the browser registered as ``target``."""
        leg = call.caller
        assert leg is not None
        wire, calls = self._wire, self._calls
        binding = self._registrar.lookup(target, wire.now)
        if binding is None:
            if self._settings.users is not None and target in self._settings.users:
                calls.end(call, 480, f"{target} is not online", "Offline")
            elif target.isdigit():
                calls.end(call, 404, f"there is no extension {target}: try 600, 601 or 602")
            else:
                calls.end(call, 404, f"nobody called {target} is registered")
            return
        if target == leg.user:
            calls.end(call, 486, "that is you: call someone else, or 600")
            return
        if calls.in_call(target):
            calls.end(call, 486, f"{target} is in another call")
            return
        calls.busy(call, leg.user, True)
        calls.busy(call, target, True)
        invite = leg.invite
        host = wire.host()
        display = invite.from_.display
        name = f'"{display}" ' if display else f'"{leg.user}" '
        call_id = wire.new_id()
        pairs = [("Via", wire.via()), ("Max-Forwards", "70")]
        pairs += [("Route", path) for path in binding.path]
        pairs += [
            ("From", f"{name}<sip:{leg.user}@{host}>;tag={wire.new_id()}"),
            ("To", f"<sip:{target}@{host}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:pbx@{host}>"),
            ("Allow", ALLOW),
            ("User-Agent", USER_AGENT),
            ("Content-Type", "application/sdp"),
        ]
        outgoing = Request("INVITE", binding.contact, Headers.of(pairs))
        outgoing.body = invite.body
        address = uri_address(binding.path[0] if binding.path else binding.contact)
        if address is None:
            calls.end(call, 480, f"{target} cannot be reached")
            return
        callee = Leg(call, False, target, call_id, outgoing, "")
        call.callee = callee
        calls.add(callee)
        logger.info("call from=%s to=%s", leg.user, target)
        callee.client = wire.send(
            outgoing,
            Flow("udp", wire.local, address),
            lambda response: self._callee_answered(callee, binding, response),
        )
        call.ring_timer = wire.after(
            self._settings.ring_timeout,
            lambda: calls.end(call, 480, f"{target} did not answer", "No Answer"),
        )

    def _callee_answered(self, leg: Leg, binding: Binding, response: Response | None) -> None:
        call = leg.call
        calls = self._calls
        status = 408 if response is None else response.status
        if status == 100:
            return
        if status < 200:
            leg.provisional = True
            if call.ended:
                calls.cancel(leg)
            elif call.caller is not None and not call.answered:
                body = response.body if response is not None else b""
                calls.answer(
                    call.caller,
                    status,
                    response.reason if response is not None else None,
                    body=body,
                    content_type="application/sdp" if body else None,
                )
            return
        if status < 300:
            assert response is not None
            self._callee_confirmed(leg, response)
            return
        if call.ended:
            return
        if status in GONE:
            self._registrar.remove(binding)
            calls.end(call, 480, f"{leg.user}'s browser is not reachable any more")
        elif status in (486, 600):
            calls.end(call, 486, f"{leg.user} is busy")
        elif status in (603, 403):
            calls.end(call, 603, f"{leg.user} declined the call", "Decline")
        elif status == 480:
            calls.end(call, 480, f"{leg.user} did not answer", "No Answer")
        else:
            reason = response.reason if response is not None else None
            calls.end(call, status, f"{leg.user}'s browser answered {status}", reason)

    def _callee_confirmed(self, leg: Leg, response: Response) -> None:
        """A 2xx to our INVITE: ACK it (again, if it is a retransmission), then
        answer the caller with the callee's SDP."""
        call = leg.call
        wire, calls = self._wire, self._calls
        if leg.dialog is None:
            leg.dialog = Dialog.as_uac(leg.invite, response, wire.local)
            if leg.dialog is None:
                calls.end(call, 502, f"{leg.user}'s browser answered without a Contact")
                return
        if leg.ack is None:
            ack = leg.dialog.request("ACK", wire.via(), cseq=leg.invite.cseq.number)
            leg.ack = bytes(ack)
        wire.resend(leg.ack, leg.dialog.flow)
        if leg.up:
            return
        leg.up = True
        caller = call.caller
        if call.ended or caller is None:
            calls.bye(leg, "the caller hung up")
            return
        wire.cancel_timer(call.ring_timer)
        call.answered = True
        calls.answer(caller, 200, body=response.body, content_type="application/sdp")
        calls.keepalive(leg)

    def relay(self, leg: Leg, request: Request, flow: Flow) -> None:
        """A request from one browser of a bridged call goes to the other; its final
        response comes back."""
        wire, calls = self._wire, self._calls
        other = leg.call.other(leg)
        if other is None or other.dialog is None or not other.up:
            wire.reply(request, 491 if request.method == "INVITE" else 481)
            return
        if request.method == "INVITE" and (leg.busy or other.busy or leg.ok or other.ok):
            wire.reply(request, 491)  # RFC 3261 §14.2: an offer is already under way
            return
        content_type = request.headers.get("content-type")
        relayed = other.dialog.request(
            request.method, wire.via(), body=request.body, content_type=content_type
        )
        leg.busy = True
        done = False

        def answered(response: Response | None) -> None:
            nonlocal done
            status = 408 if response is None else response.status
            if status < 200:
                return
            if status < 300 and request.method == "INVITE" and other.dialog is not None:
                assert response is not None
                if not done:
                    ack = other.dialog.request("ACK", wire.via(), cseq=response.cseq.number)
                    other.ack = bytes(ack)
                if other.ack is not None:
                    wire.resend(other.ack, other.dialog.flow)
            if done:
                return
            done = True
            leg.busy = False
            if leg.call.ended:
                return
            body = response.body if response is not None else b""
            reason = response.reason if response is not None else None
            ctype = response.headers.get("content-type") if response is not None else None
            calls.answer(
                leg, status, reason, body=body, content_type=ctype, request=(request, flow)
            )
            if status in (408, 481):  # RFC 3261 §12.2.1.2: the dialog is gone
                calls.end(leg.call, 0, f"{other.user}'s browser lost the call")

        wire.send(relayed, other.dialog.flow, answered)
