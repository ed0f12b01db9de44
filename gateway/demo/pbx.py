"""The demo PBX behind ``wedge demo``, as a pure state machine: its core.

Wedge reaches it over real SIP on loopback UDP, exactly as it would reach Asterisk
or FreeSWITCH: browsers register through Wedge (which adds its Path), call through
Wedge, and are called back along the Path they registered with. The PBX has:

- registration (:mod:`gateway.demo.registration`, over the registrar of
  :mod:`gateway.demo.registrar`): any name, or the users of a users file with
  Digest passwords (:mod:`gateway.demo.auth`); one browser per name;
- service extensions (:mod:`gateway.demo.services`), answered by the PBX itself
  with plain RTP (:mod:`gateway.demo.offer`; the shell runs a
  :mod:`~gateway.demo.players` player per call): ``600`` echo, ``601`` a chime and
  tone, ``602`` DTMF readback (the keys are also sent back to the browser in an
  INFO, ``text/plain``);
- calls between registered users (:mod:`gateway.demo.bridge`), bridged as a
  back-to-back user agent: the caller's INVITE is answered on one leg and a new
  INVITE (new Call-ID, the caller's SDP as it is) goes to the callee's browser
  along its Path, back through Wedge. Responses, re-INVITEs (hold), INFO, BYE and
  CANCEL cross over.

Every call's legs are answered, checked on and ended the same way
(:mod:`gateway.demo.calls`): each answered leg gets an in-dialog OPTIONS every
:attr:`~gateway.demo.settings.PbxSettings.keepalive` seconds, and a browser that
went away without BYE (tab closed, network gone) makes Wedge answer 430 Flow
Failed; the PBX then ends the call for the other party with a Reason saying why and
forgets the dead browser's registration.

This module is the core those parts hang from: it takes the inputs, reads the
transaction layer's events and hands each request to the part whose job it is;
the parts act through one shared :class:`~gateway.demo.wire.Wire`.

Interface, in the shape of the proxy core: :meth:`DemoPbx.receive` (bytes, flow,
``now``), :meth:`DemoPbx.handle_timer`; out come :meth:`DemoPbx.datagrams_to_send`,
:meth:`DemoPbx.get_timer` and :meth:`DemoPbx.media_requests` (what the shell's media
players must do, :mod:`gateway.demo.media_requests`), whose results come back
through :meth:`DemoPbx.media_opened`, :meth:`DemoPbx.media_failed` and
:meth:`DemoPbx.read_back`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.demo.auth import DigestAuth
from gateway.demo.bridge import Bridge
from gateway.demo.calls import Call, Calls, Leg
from gateway.demo.dialog import Dialog
from gateway.demo.media_requests import CloseMedia, MediaRequest
from gateway.demo.players import SERVICES
from gateway.demo.registrar import Registrar
from gateway.demo.registration import Registration
from gateway.demo.services import Services
from gateway.demo.settings import PbxSettings
from gateway.demo.wire import ALLOW, Wire
from gateway.sip import Flow, ParseError, Request, SipUri, parse_message
from gateway.sip.flow import Address
from gateway.transaction import (
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from sdp import SdpError

__all__ = ["DemoPbx"]

logger = logging.getLogger("wedge.demo")


class DemoPbx:
    """See the module docstring.

    Args:
        local: the address of the PBX's UDP socket (Via, Contact, SDP).
        settings: users, timers.
        ids: unique tokens for tags, branches, Call-IDs and nonces.
    """

    def __init__(self, local: Address, settings: PbxSettings, ids: Callable[[], str]) -> None:
        self.local = local
        self.settings = settings
        self.layer = TransactionLayer(settings.timers)
        self.registrar = Registrar(frozenset(SERVICES))
        self.auth = (
            DigestAuth(settings.realm, settings.users, ids) if settings.users is not None else None
        )
        self._wire = wire = Wire(local, self.layer, ids)
        self._registration = Registration(wire, self.registrar, self.auth, settings.probe_timeout)
        self._calls = Calls(wire, settings, self._registration)
        self._services = Services(wire, self._calls)
        self._bridge = Bridge(wire, settings, self.registrar, self._calls)

    # -- outputs ------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        return self._wire.datagrams_to_send()

    def media_requests(self) -> list[MediaRequest]:
        return self._wire.media_requests()

    def get_timer(self) -> float | None:
        return self._wire.deadline()

    def calls(self) -> int:
        """Calls under way (for logs and tests)."""
        return self._calls.count()

    # -- inputs -------------------------------------------------------------------

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self._wire.now = now
        try:
            message = parse_message(data)
        except ParseError as exc:
            logger.info("! pbx dropped a bad message from %s: %s", flow, exc.reason)
            return
        self.layer.receive(message, flow, now)
        self._process()

    def handle_timer(self, now: float) -> None:
        self._wire.now = now
        self._wire.run_timers(now)
        self.layer.handle_timer(now)
        self._process()

    def media_opened(self, call_id: str, address: Address, now: float) -> None:
        """The player of a service call listens on ``address``: answer the INVITE."""
        self._wire.now = now
        leg = self._calls.legs.get(call_id)
        if leg is None or leg.call.offer is None or leg.call.ended:
            self._wire.media(CloseMedia(call_id))
            return
        self._services.opened(leg, address)
        self._process()

    def media_failed(self, call_id: str, now: float) -> None:
        self._wire.now = now
        leg = self._calls.legs.get(call_id)
        if leg is not None:
            self._calls.end(leg.call, 503, "no media port free on the demo PBX")
        self._process()

    def read_back(self, call_id: str, digits: str, now: float) -> None:
        """602 played ``digits`` back: tell the browser too, in an INFO."""
        self._wire.now = now
        leg = self._calls.legs.get(call_id)
        if leg is not None:
            self._services.read_back(leg, digits)
        self._process()

    # -- the transaction layer's events ---------------------------------------------

    def _process(self) -> None:
        wire = self._wire
        for event in self.layer.events():
            try:
                if isinstance(event, RequestReceived):
                    self._on_request(event)
                elif isinstance(event, ResponseReceived):
                    if event.key:
                        wire.response_received(event.key, event.response)
                elif isinstance(event, TransactionTimedOut | TransportFailed):
                    wire.transaction_failed(event.key)
                elif isinstance(event, TransactionTerminated):
                    wire.transaction_ended(event.key)
                    self._calls.servers.pop(event.key, None)
            except (ParseError, SdpError) as exc:
                logger.info("! pbx: unusable message: %s", exc)

    def _on_request(self, event: RequestReceived) -> None:
        request, flow, key = event.request, event.flow, event.key
        if key is None:
            self._calls.acked(request)
            return
        method = request.method
        reply = self._wire.reply
        if method == "CANCEL":
            self._on_cancel(request, event.cancels)
        elif request.to.tag is not None:
            self._in_dialog(request, flow)
        elif method == "REGISTER":
            self._registration.on_register(request)
        elif method == "INVITE":
            self._on_invite(request, key, flow)
        elif method == "OPTIONS":
            reply(request, 200, extra=(("Allow", ALLOW), ("Accept", "application/sdp")))
        else:
            reply(request, 405, extra=(("Allow", ALLOW),))

    # -- INVITE: a new call ------------------------------------------------------------

    def _on_invite(self, invite: Request, key: TransactionKey, flow: Flow) -> None:
        """Who calls whom; the caller's leg, then the service or the bridge takes it."""
        reply = self._wire.reply
        caller_uri = invite.from_.uri
        caller = caller_uri.user if isinstance(caller_uri, SipUri) else None
        ruri = invite.ruri
        target = ruri.user if isinstance(ruri, SipUri) else None
        if not caller or not target:
            reply(invite, 404, warning="call sip:NAME@host or sip:600@host")
            return
        if not self._registration.authenticated(invite, caller, "Proxy-Authorization", 407):
            return
        if invite.content_type is None or invite.content_type.mime != "application/sdp":
            reply(invite, 488, "Offer Required", warning="the demo PBX needs an SDP offer")
            return
        call = Call()
        leg = Leg(call, True, caller, invite.call_id, invite, self._wire.new_id(), flow, server=key)
        leg.dialog = Dialog.as_uas(invite, leg.local_tag, flow)
        if leg.dialog is None:
            reply(invite, 400, "Bad Contact", warning="the INVITE needs a SIP Contact")
            return
        call.caller = leg
        self._calls.add(leg)
        if target in SERVICES:
            self._services.start(call, target)
        else:
            self._bridge.start(call, target)

    # -- CANCEL, and requests in a dialog ------------------------------------------------

    def _on_cancel(self, cancel: Request, cancels: TransactionKey | None) -> None:
        leg = self._calls.servers.get(cancels) if cancels is not None else None
        self._wire.reply(cancel, 481 if leg is None else 200)
        if leg is None or leg.call.answered or leg.call.ended:
            return
        leg.call.cancelled = True
        self._calls.end(leg.call, 487, "the caller cancelled", "Request Terminated")

    def _in_dialog(self, request: Request, flow: Flow) -> None:
        reply = self._wire.reply
        leg = self._calls.legs.get(request.call_id)
        dialog = leg.dialog if leg is not None else None
        if leg is None or dialog is None or (leg.caller and request.to.tag != leg.local_tag):
            reply(request, 481)
            return
        dialog.remote_cseq = max(dialog.remote_cseq, request.cseq.number)
        method = request.method
        if method == "BYE":
            reply(request, 200)
            logger.info("hang-up by=%s call-id=%s", leg.user, request.call_id)
            self._calls.end(leg.call, 0, f"{leg.user} hung up", exclude=leg)
        elif method == "OPTIONS":
            reply(request, 200, extra=(("Allow", ALLOW),))
        elif leg.call.extension is not None:
            self._services.request(leg, request, flow)
        elif method == "REFER":
            reply(request, 501, warning="the demo PBX does not transfer calls")
        else:
            self._bridge.relay(leg, request, flow)
