"""The demo PBX behind ``wedge demo``, as a pure state machine.

Wedge reaches it over real SIP on loopback UDP, exactly as it would reach Asterisk
or FreeSWITCH: browsers register through Wedge (which adds its Path), call through
Wedge, and are called back along the Path they registered with. The PBX has:

- a registrar (:mod:`gateway.demo.registrar`): any name, or the users of a users
  file with Digest passwords (:mod:`gateway.demo.auth`); one browser per name;
- service extensions, answered by the PBX itself with plain RTP
  (:mod:`gateway.demo.offer`; the shell runs a :mod:`~gateway.demo.players`
  player per call): ``600`` echo, ``601`` a chime and tone, ``602`` DTMF readback
  (the keys are also sent back to the browser in an INFO, ``text/plain``);
- calls between registered users, bridged as a back-to-back user agent: the
  caller's INVITE is answered on one leg and a new INVITE (new Call-ID, the
  caller's SDP as it is) goes to the callee's browser along its Path, back
  through Wedge. Responses, re-INVITEs (hold), INFO, BYE and CANCEL cross over.

It checks on every answered leg with an in-dialog OPTIONS every
:attr:`PbxSettings.keepalive` seconds: a browser that went away without BYE (tab
closed, network gone) makes Wedge answer 430 Flow Failed, and the PBX ends the
call for the other party with a Reason saying why and forgets the dead browser's
registration.

Interface, in the shape of the proxy core: :meth:`DemoPbx.receive` (bytes, flow,
``now``), :meth:`DemoPbx.handle_timer`; out come :meth:`DemoPbx.datagrams_to_send`,
:meth:`DemoPbx.get_timer` and :meth:`DemoPbx.media_requests` (what the shell's media
players must do), whose results come back through :meth:`DemoPbx.media_opened`,
:meth:`DemoPbx.media_failed` and :meth:`DemoPbx.read_back`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.demo.auth import DigestAuth, Verdict
from gateway.demo.dialog import USER_AGENT, Dialog, uri_address
from gateway.demo.offer import ServiceOffer, answer, read_offer
from gateway.demo.players import SERVICES
from gateway.demo.registrar import (
    Binding,
    Outcome,
    Refused,
    Registered,
    Registrar,
    Unregistered,
)
from gateway.proxy.timers import Timers
from gateway.sip import (
    Flow,
    Headers,
    ParseError,
    Request,
    Response,
    SipUri,
    make_response,
    parse_message,
)
from gateway.sip.flow import Address
from gateway.transaction import (
    RequestReceived,
    ResponseReceived,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from sdp import SdpError

__all__ = [
    "CloseMedia",
    "DemoPbx",
    "KeyPressed",
    "MediaRequest",
    "OpenMedia",
    "PbxSettings",
    "UpdateMedia",
]

logger = logging.getLogger("wedge.demo")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
GONE = frozenset({408, 430, 481, 503})
"""Final responses that say the browser is not there any more: no answer (408),
its WebSocket closed (430 Flow Failed, RFC 5626), the dialog unknown to it (481),
Wedge cannot reach it (503)."""


@dataclass(frozen=True, slots=True)
class PbxSettings:
    users: Mapping[str, str] | None = None
    """name -> password: only these may register and call, with Digest auth.
    None: any name, no password."""
    realm: str = "wedge-demo"
    ring_timeout: float = 45.0
    """Seconds a callee's browser may ring before the caller gets 480 No Answer."""
    keepalive: float = 5.0
    """Seconds between the in-dialog OPTIONS that check each answered leg."""
    probe_timeout: float = 2.0
    """Seconds a registered browser has to answer the OPTIONS that checks on it."""
    timers: TimerConfig = field(default_factory=TimerConfig)


# -- what the shell's media players must do -----------------------------------------


@dataclass(frozen=True, slots=True)
class OpenMedia:
    """Start the player of ``extension``; answer with :meth:`DemoPbx.media_opened`."""

    call_id: str
    extension: str
    offer: ServiceOffer


@dataclass(frozen=True, slots=True)
class UpdateMedia:
    """A re-INVITE changed the far end's address or direction (hold, resume)."""

    call_id: str
    offer: ServiceOffer


@dataclass(frozen=True, slots=True)
class CloseMedia:
    call_id: str


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """A key sent in SIP INFO (``application/dtmf-relay``) rather than in RTP."""

    call_id: str
    key: str


MediaRequest = OpenMedia | UpdateMedia | CloseMedia | KeyPressed

# A handler for the responses to one request the PBX sent: every response, then
# None if the transaction ended without a final one (timeout, transport failure).
Handler = Callable[[Response | None], None]


@dataclass(slots=True, eq=False)
class _Leg:
    """One side of a call: the caller's browser (we are its UAS) or the callee's
    (we are its UAC)."""

    call: _Call
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
class _Call:
    caller: _Leg | None = None
    callee: _Leg | None = None
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

    def legs(self) -> list[_Leg]:
        return [leg for leg in (self.caller, self.callee) if leg is not None]

    def other(self, leg: _Leg) -> _Leg | None:
        return self.callee if leg is self.caller else self.caller


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
        self._ids = ids
        self.layer = TransactionLayer(settings.timers)
        self.registrar = Registrar(frozenset(SERVICES))
        self.auth = (
            DigestAuth(settings.realm, settings.users, ids) if settings.users is not None else None
        )
        self._timers = Timers()
        self._now = 0.0
        self._out: list[tuple[bytes, Flow]] = []
        self._media: list[MediaRequest] = []
        self._legs: dict[str, _Leg] = {}
        self._handlers: dict[TransactionKey, Handler] = {}
        self._servers: dict[TransactionKey, _Leg] = {}
        self._calls_of: dict[str, set[_Call]] = {}
        self._sessions = itertools.count(1)

    # -- outputs ------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        out = self._out + self.layer.datagrams_to_send()
        self._out = []
        return out

    def media_requests(self) -> list[MediaRequest]:
        requests, self._media = self._media, []
        return requests

    def get_timer(self) -> float | None:
        deadlines = (self.layer.get_timer(), self._timers.get_timer())
        return min((d for d in deadlines if d is not None), default=None)

    def calls(self) -> int:
        """Calls under way (for logs and tests)."""
        return len({leg.call for leg in self._legs.values()})

    # -- inputs -------------------------------------------------------------------

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self._now = now
        try:
            message = parse_message(data)
        except ParseError as exc:
            logger.info("! pbx dropped a bad message from %s: %s", flow, exc.reason)
            return
        self.layer.receive(message, flow, now)
        self._process()

    def handle_timer(self, now: float) -> None:
        self._now = now
        self._timers.run_due(now)
        self.layer.handle_timer(now)
        self._process()

    def media_opened(self, call_id: str, address: Address, now: float) -> None:
        """The player of a service call listens on ``address``: answer the INVITE."""
        self._now = now
        leg = self._legs.get(call_id)
        if leg is None or leg.call.offer is None or leg.call.ended:
            self._media.append(CloseMedia(call_id))
            return
        call = leg.call
        call.media = address
        self._answer(leg, 200, body=self._service_answer(call), content_type="application/sdp")
        self._process()

    def media_failed(self, call_id: str, now: float) -> None:
        self._now = now
        leg = self._legs.get(call_id)
        if leg is not None:
            self._end(leg.call, 503, "no media port free on the demo PBX")
        self._process()

    def read_back(self, call_id: str, digits: str, now: float) -> None:
        """602 played ``digits`` back: tell the browser too, in an INFO."""
        self._now = now
        leg = self._legs.get(call_id)
        if leg is not None and leg.up and leg.dialog is not None:
            self._send(
                leg.dialog.request(
                    "INFO", self._via(), body=digits.encode(), content_type="text/plain"
                ),
                leg.dialog.flow,
            )
        self._process()

    # -- the transaction layer's events ---------------------------------------------

    def _process(self) -> None:
        for event in self.layer.events():
            try:
                if isinstance(event, RequestReceived):
                    self._on_request(event)
                elif isinstance(event, ResponseReceived):
                    # Kept until the transaction ends: a 2xx to an INVITE comes
                    # again while the ACK is lost, and must be ACKed again.
                    handler = self._handlers.get(event.key) if event.key else None
                    if handler is not None:
                        handler(event.response)
                elif isinstance(event, TransactionTimedOut | TransportFailed):
                    handler = self._handlers.pop(event.key, None)
                    if handler is not None:
                        handler(None)
                elif isinstance(event, TransactionTerminated):
                    self._handlers.pop(event.key, None)
                    self._servers.pop(event.key, None)
            except (ParseError, SdpError) as exc:
                logger.info("! pbx: unusable message: %s", exc)

    def _on_request(self, event: RequestReceived) -> None:
        request, flow, key = event.request, event.flow, event.key
        if key is None:
            self._on_ack(request)
            return
        method = request.method
        if method == "CANCEL":
            self._on_cancel(request, event.cancels)
        elif request.to.tag is not None:
            self._in_dialog(request, flow)
        elif method == "REGISTER":
            self._on_register(request)
        elif method == "INVITE":
            self._on_invite(request, key, flow)
        elif method == "OPTIONS":
            self._reply(request, 200, extra=(("Allow", ALLOW), ("Accept", "application/sdp")))
        else:
            self._reply(request, 405, extra=(("Allow", ALLOW),))

    # -- REGISTER --------------------------------------------------------------------

    def _on_register(self, request: Request) -> None:
        to = request.to.uri
        user = to.user if isinstance(to, SipUri) else None
        if not user:
            self._reply(request, 400, "No User", warning="register a name, as sip:name@host")
            return
        if not self._authenticated(request, user, "Authorization", 401):
            return
        self._registered(request, self.registrar.register(request, user, self._now))

    def _registered(self, request: Request, outcome: Outcome, asked: bool = False) -> None:
        if isinstance(outcome, Registered):
            binding = outcome.binding
            logger.info("registered user=%s contact=%s", binding.user, binding.contact)
            extra = [("Contact", f"<{binding.contact}>;expires={outcome.expires}")]
            extra += [("Path", path) for path in binding.path]
            self._reply(request, 200, extra=tuple(extra))
        elif isinstance(outcome, Unregistered):
            logger.info("unregistered user=%s", outcome.user)
            self._reply(request, 200)
        elif isinstance(outcome, Refused):
            logger.info(
                "registration refused user=%s status=%d reason=%r",
                request.to.uri,
                outcome.status,
                outcome.reason,
            )
            self._reply(request, outcome.status, outcome.reason, warning=outcome.warning)
        elif asked:  # contested twice over: someone else took the name meanwhile
            self._reply(request, 403, "Name In Use", warning="the name was taken meanwhile")
        else:
            contest = outcome
            self._probe(
                contest.holder,
                lambda alive: self._registered(
                    request, self.registrar.settle(contest, alive, self._now), asked=True
                ),
            )

    def _probe(self, binding: Binding, done: Callable[[bool], None]) -> None:
        """Ask the browser of ``binding`` (OPTIONS along its Path) whether it is there;
        ``done(alive)`` once it answers, or not within ``probe_timeout``."""
        address = uri_address(binding.path[0] if binding.path else binding.contact)
        if address is None:
            done(False)
            return
        pairs = [("Via", self._via()), ("Max-Forwards", "70")]
        pairs += [("Route", path) for path in binding.path]
        pairs += [
            ("From", f"<sip:pbx@{self._host()}>;tag={self._ids()}"),
            ("To", f"<sip:{binding.user}@{self._host()}>"),
            ("Call-ID", self._ids()),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", USER_AGENT),
            ("Content-Length", "0"),
        ]
        settled = False

        def settle(alive: bool) -> None:
            nonlocal settled
            if not settled:
                settled = True
                self._timers.cancel(timer)
                if not alive:
                    logger.info("browser gone user=%s contact=%s", binding.user, binding.contact)
                    self.registrar.remove(binding)
                done(alive)

        def answered(response: Response | None) -> None:
            if response is None or response.status >= 200:
                settle(response is not None and response.status not in GONE)

        timer = self._timers.add(self._now + self.settings.probe_timeout, lambda: settle(False))
        request = Request("OPTIONS", binding.contact, Headers.of(pairs))
        self._send(request, Flow("udp", self.local, address), answered)

    # -- INVITE: a new call ------------------------------------------------------------

    def _on_invite(self, invite: Request, key: TransactionKey, flow: Flow) -> None:
        caller_uri = invite.from_.uri
        caller = caller_uri.user if isinstance(caller_uri, SipUri) else None
        ruri = invite.ruri
        target = ruri.user if isinstance(ruri, SipUri) else None
        if not caller or not target:
            self._reply(invite, 404, warning="call sip:NAME@host or sip:600@host")
            return
        if not self._authenticated(invite, caller, "Proxy-Authorization", 407):
            return
        if invite.content_type is None or invite.content_type.mime != "application/sdp":
            self._reply(invite, 488, "Offer Required", warning="the demo PBX needs an SDP offer")
            return
        call = _Call()
        leg = _Leg(call, True, caller, invite.call_id, invite, self._ids(), flow, server=key)
        leg.dialog = Dialog.as_uas(invite, leg.local_tag, flow)
        if leg.dialog is None:
            self._reply(invite, 400, "Bad Contact", warning="the INVITE needs a SIP Contact")
            return
        call.caller = leg
        self._legs[invite.call_id] = leg
        self._servers[key] = leg
        if target in SERVICES:
            self._service(call, target)
        else:
            self._bridge(call, target)

    def _service(self, call: _Call, extension: str) -> None:
        leg = call.caller
        assert leg is not None
        try:
            offer = read_offer(leg.invite.body)
        except SdpError as exc:
            self._end(call, 488, f"the offer has no usable audio: {exc}")
            return
        logger.info("call from=%s to=%s (service)", leg.user, extension)
        call.extension, call.offer = extension, offer
        self._busy(call, leg.user, True)
        self._media.append(OpenMedia(leg.call_id, extension, offer))

    def _bridge(self, call: _Call, target: str) -> None:
        leg = call.caller
        assert leg is not None
        binding = self.registrar.lookup(target, self._now)
        if binding is None:
            if self.settings.users is not None and target in self.settings.users:
                self._end(call, 480, f"{target} is not online", "Offline")
            elif target.isdigit():
                self._end(call, 404, f"there is no extension {target}: try 600, 601 or 602")
            else:
                self._end(call, 404, f"nobody called {target} is registered")
            return
        if target == leg.user:
            self._end(call, 486, "that is you: call someone else, or 600")
            return
        if self._calls_of.get(target):
            self._end(call, 486, f"{target} is in another call")
            return
        self._busy(call, leg.user, True)
        self._busy(call, target, True)
        invite = leg.invite
        host = self._host()
        display = invite.from_.display
        name = f'"{display}" ' if display else f'"{leg.user}" '
        call_id = self._ids()
        pairs = [("Via", self._via()), ("Max-Forwards", "70")]
        pairs += [("Route", path) for path in binding.path]
        pairs += [
            ("From", f"{name}<sip:{leg.user}@{host}>;tag={self._ids()}"),
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
            self._end(call, 480, f"{target} cannot be reached")
            return
        callee = _Leg(call, False, target, call_id, outgoing, "")
        call.callee = callee
        self._legs[call_id] = callee
        logger.info("call from=%s to=%s", leg.user, target)
        callee.client = self._send(
            outgoing,
            Flow("udp", self.local, address),
            lambda response: self._callee_answered(callee, binding, response),
        )
        call.ring_timer = self._timers.add(
            self._now + self.settings.ring_timeout,
            lambda: self._end(call, 480, f"{target} did not answer", "No Answer"),
        )

    def _callee_answered(self, leg: _Leg, binding: Binding, response: Response | None) -> None:
        call = leg.call
        status = 408 if response is None else response.status
        if status == 100:
            return
        if status < 200:
            leg.provisional = True
            if call.ended:
                self._cancel(leg)
            elif call.caller is not None and not call.answered:
                body = response.body if response is not None else b""
                self._answer(
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
            self.registrar.remove(binding)
            self._end(call, 480, f"{leg.user}'s browser is not reachable any more")
        elif status in (486, 600):
            self._end(call, 486, f"{leg.user} is busy")
        elif status in (603, 403):
            self._end(call, 603, f"{leg.user} declined the call", "Decline")
        elif status == 480:
            self._end(call, 480, f"{leg.user} did not answer", "No Answer")
        else:
            reason = response.reason if response is not None else None
            self._end(call, status, f"{leg.user}'s browser answered {status}", reason)

    def _callee_confirmed(self, leg: _Leg, response: Response) -> None:
        """A 2xx to our INVITE: ACK it (again, if it is a retransmission), then
        answer the caller with the callee's SDP."""
        call = leg.call
        if leg.dialog is None:
            leg.dialog = Dialog.as_uac(leg.invite, response, self.local)
            if leg.dialog is None:
                self._end(call, 502, f"{leg.user}'s browser answered without a Contact")
                return
        if leg.ack is None:
            ack = leg.dialog.request("ACK", self._via(), cseq=leg.invite.cseq.number)
            leg.ack = bytes(ack)
        self._out.append((leg.ack, leg.dialog.flow))
        if leg.up:
            return
        leg.up = True
        caller = call.caller
        if call.ended or caller is None:
            self._bye(leg, "the caller hung up")
            return
        self._timers.cancel(call.ring_timer)
        call.answered = True
        self._answer(caller, 200, body=response.body, content_type="application/sdp")
        self._keepalive(leg)

    # -- CANCEL and ACK -------------------------------------------------------------

    def _on_cancel(self, cancel: Request, cancels: TransactionKey | None) -> None:
        leg = self._servers.get(cancels) if cancels is not None else None
        self._reply(cancel, 481 if leg is None else 200)
        if leg is None or leg.call.answered or leg.call.ended:
            return
        leg.call.cancelled = True
        self._end(leg.call, 487, "the caller cancelled", "Request Terminated")

    def _on_ack(self, ack: Request) -> None:
        leg = self._legs.get(ack.call_id)
        if leg is None or leg.ok is None:
            return
        if ack.cseq.number == leg.ok[0].cseq.number:
            leg.ok = None
            self._timers.cancel(leg.ok_timer)

    # -- requests in a dialog ------------------------------------------------------------

    def _in_dialog(self, request: Request, flow: Flow) -> None:
        leg = self._legs.get(request.call_id)
        dialog = leg.dialog if leg is not None else None
        if leg is None or dialog is None or (leg.caller and request.to.tag != leg.local_tag):
            self._reply(request, 481)
            return
        dialog.remote_cseq = max(dialog.remote_cseq, request.cseq.number)
        method = request.method
        if method == "BYE":
            self._reply(request, 200)
            logger.info("hang-up by=%s call-id=%s", leg.user, request.call_id)
            self._end(leg.call, 0, f"{leg.user} hung up", exclude=leg)
        elif method == "OPTIONS":
            self._reply(request, 200, extra=(("Allow", ALLOW),))
        elif leg.call.extension is not None:
            self._service_request(leg, request, flow)
        elif method == "REFER":
            self._reply(request, 501, warning="the demo PBX does not transfer calls")
        else:
            self._relay(leg, request, flow)

    def _service_request(self, leg: _Leg, request: Request, flow: Flow) -> None:
        call = leg.call
        if request.method == "INVITE":
            if leg.ok is not None:
                self._reply(request, 500, extra=(("Retry-After", "1"),))
                return
            try:
                offer = read_offer(request.body) if request.body else call.offer
            except SdpError as exc:
                self._reply(request, 488, warning=f"no usable audio: {exc}")
                return
            assert offer is not None
            call.offer = offer
            self._media.append(UpdateMedia(leg.call_id, offer))
            self._answer(
                leg,
                200,
                body=self._service_answer(call),
                content_type="application/sdp",
                request=(request, flow),
            )
        elif request.method == "INFO":
            self._reply(request, 200)
            content = request.content_type
            if content is not None and content.mime == "application/dtmf-relay":
                for line in request.body.decode("utf-8", "replace").splitlines():
                    name, _, value = line.partition("=")
                    if name.strip().lower() == "signal" and value.strip():
                        self._media.append(KeyPressed(leg.call_id, value.strip()[:1].upper()))
        else:
            self._reply(request, 200 if request.method == "UPDATE" and not request.body else 501)

    def _relay(self, leg: _Leg, request: Request, flow: Flow) -> None:
        """A request from one browser of a bridged call goes to the other; its final
        response comes back."""
        other = leg.call.other(leg)
        if other is None or other.dialog is None or not other.up:
            self._reply(request, 491 if request.method == "INVITE" else 481)
            return
        if request.method == "INVITE" and (leg.busy or other.busy or leg.ok or other.ok):
            self._reply(request, 491)  # RFC 3261 §14.2: an offer is already under way
            return
        content_type = request.headers.get("content-type")
        relayed = other.dialog.request(
            request.method, self._via(), body=request.body, content_type=content_type
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
                    ack = other.dialog.request("ACK", self._via(), cseq=response.cseq.number)
                    other.ack = bytes(ack)
                if other.ack is not None:
                    self._out.append((other.ack, other.dialog.flow))
            if done:
                return
            done = True
            leg.busy = False
            if leg.call.ended:
                return
            body = response.body if response is not None else b""
            reason = response.reason if response is not None else None
            ctype = response.headers.get("content-type") if response is not None else None
            self._answer(
                leg, status, reason, body=body, content_type=ctype, request=(request, flow)
            )
            if status in (408, 481):  # RFC 3261 §12.2.1.2: the dialog is gone
                self._end(leg.call, 0, f"{other.user}'s browser lost the call")

        self._send(relayed, other.dialog.flow, answered)

    # -- answering, ending -------------------------------------------------------------

    def _answer(
        self,
        leg: _Leg,
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
            extra += [("Contact", f"<sip:pbx@{self._host()}>"), ("Allow", ALLOW)]
        if warning:
            extra.append(("Warning", f'399 wedge-demo "{_quoted(warning)}"'))
        extra.append(("User-Agent", USER_AGENT))
        if content_type and body:
            extra.append(("Content-Type", content_type))
        response = make_response(
            answering, status, reason, to_tag=leg.local_tag, extra=tuple(extra)
        )
        if body:
            response.body = body
        self.layer.send_response(response, self._now)
        if status < 200:
            return
        if initial:
            if leg.server is not None:
                self._servers.pop(leg.server, None)
            leg.server = None
        if status < 300 and answering.method == "INVITE":
            assert leg.dialog is not None
            if initial:
                leg.up = True
                leg.call.answered = True
                self._keepalive(leg)
            assert flow is not None
            leg.ok = (response, flow)
            self._retransmit_ok(leg, self.settings.timers.t1)

    def _retransmit_ok(self, leg: _Leg, interval: float, elapsed: float = 0.0) -> None:
        timers = self.settings.timers

        def again() -> None:
            if leg.ok is None:
                return
            if elapsed + interval >= 64 * timers.t1:
                leg.ok = None
                self._end(leg.call, 0, f"{leg.user}'s browser never confirmed the call")
                return
            self._out.append((bytes(leg.ok[0]), leg.ok[1]))
            self._retransmit_ok(leg, min(2 * interval, timers.t2), elapsed + interval)

        leg.ok_timer = self._timers.add(self._now + interval, again)

    def _end(
        self,
        call: _Call,
        status: int,
        why: str,
        reason: str | None = None,
        *,
        exclude: _Leg | None = None,
    ) -> None:
        """End ``call``: a final ``status`` to an unanswered caller, CANCEL to a
        ringing callee, BYE (with ``why`` as its Reason) to every leg that is up
        but ``exclude`` (which hung up itself)."""
        if call.ended:
            return
        call.ended = True
        self._timers.cancel(call.ring_timer)
        if call.extension is not None and call.caller is not None:
            self._media.append(CloseMedia(call.caller.call_id))
        for leg in call.legs():
            self._timers.cancel(leg.keepalive_timer)
            self._timers.cancel(leg.ok_timer)
            leg.ok = None
            self._busy(call, leg.user, False)
            self._legs.pop(leg.call_id, None)
            if leg is exclude:
                continue
            if leg.caller and not leg.up:
                self._answer(leg, status or 480, reason, warning=why)
            elif not leg.caller and not leg.up:
                self._cancel(leg)
            else:
                self._bye(leg, why)

    def _bye(self, leg: _Leg, why: str) -> None:
        if leg.dialog is None:
            return
        reason = ("Reason", f'SIP;cause=200;text="{_quoted(why)}"')  # RFC 3326
        self._send(leg.dialog.request("BYE", self._via(), extra=(reason,)), leg.dialog.flow)

    def _cancel(self, leg: _Leg) -> None:
        """CANCEL the INVITE to a callee (§9.1), once it answered 1xx; before that,
        the 1xx handler cancels it when it comes."""
        if not leg.provisional or leg.client is None:
            return
        invite = leg.invite
        headers = invite.headers
        pairs = [("Via", headers.values("via")[0]), ("Max-Forwards", "70")]
        pairs += [("Route", value) for value in headers.get_all("route")]
        pairs += [
            ("From", headers.get("from") or ""),
            ("To", headers.get("to") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.number} CANCEL"),
            ("Content-Length", "0"),
        ]
        address = uri_address(headers.values("route")[0] if "route" in headers else invite.uri)
        if address is not None:
            cancel = Request("CANCEL", invite.uri, Headers.of(pairs))
            self._send(cancel, Flow("udp", self.local, address))
        leg.client = None

    def _keepalive(self, leg: _Leg) -> None:
        """Check on ``leg``'s browser every ``keepalive`` seconds (module docstring)."""

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
                    self._end(leg.call, 0, f"{leg.user}'s browser went away")
                    self._forget_if_gone(leg.user)
                else:
                    self._keepalive(leg)

            self._send(dialog.request("OPTIONS", self._via()), dialog.flow, answered)

        leg.keepalive_timer = self._timers.add(self._now + self.settings.keepalive, probe)

    def _forget_if_gone(self, user: str) -> None:
        binding = self.registrar.lookup(user, self._now)
        if binding is not None:
            self._probe(binding, lambda alive: None)

    # -- helpers ---------------------------------------------------------------------

    def _authenticated(self, request: Request, user: str, header: str, challenge: int) -> bool:
        """Digest auth when there is a users file; answers the request when it fails."""
        if self.auth is None:
            return True
        verdict, username = self.auth.check(request, header, self._now)
        if verdict is Verdict.OK and username == user:
            return True
        ask = "WWW-Authenticate" if challenge == 401 else "Proxy-Authenticate"
        if verdict in (Verdict.MISSING, Verdict.STALE):
            value = self.auth.challenge(self._now, stale=verdict is Verdict.STALE)
            self._reply(request, challenge, extra=((ask, value),))
        elif verdict is Verdict.UNKNOWN:
            self._reply(request, 404, "Unknown User", warning=f"there is no user {username} here")
        elif verdict is Verdict.OK:
            self._reply(request, 403, "Wrong User", warning=f"you are {username}, not {user}")
        else:
            self._reply(request, 403, "Wrong Password", warning=f"wrong password for {user}")
        return False

    def _service_answer(self, call: _Call) -> bytes:
        assert call.offer is not None and call.media is not None
        if not call.sdp_session:
            call.sdp_session = next(self._sessions)
        call.sdp_version += 1
        return answer(call.offer, call.media[0], call.media[1], call.sdp_session, call.sdp_version)

    def _busy(self, call: _Call, user: str, busy: bool) -> None:
        calls = self._calls_of.setdefault(user, set())
        if busy:
            calls.add(call)
        else:
            calls.discard(call)
            if not calls:
                del self._calls_of[user]

    def _reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        warning: str | None = None,
    ) -> None:
        pairs = list(extra)
        if warning:
            pairs.append(("Warning", f'399 wedge-demo "{_quoted(warning)}"'))
        pairs.append(("User-Agent", USER_AGENT))
        response = make_response(request, status, reason, to_tag=self._ids(), extra=tuple(pairs))
        self.layer.send_response(response, self._now)

    def _send(self, request: Request, flow: Flow, handler: Handler | None = None) -> TransactionKey:
        key = self.layer.send_request(request, flow, self._now)
        if handler is not None:
            self._handlers[key] = handler
        return key

    def _via(self) -> str:
        return f"SIP/2.0/UDP {self._host()};branch=z9hG4bK{self._ids()};rport"

    def _host(self) -> str:
        host, port = self.local
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
