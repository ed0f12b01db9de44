"""The transaction-stateful proxy (RFC 3261 §16), as a pure state machine.

Theory of operation. :class:`ProxyCore` owns a
:class:`~gateway.transaction.TransactionLayer` and is its transaction user. Bytes
come in with the :class:`~gateway.sip.Flow` they arrived on
(:meth:`ProxyCore.receive`); bytes go out as ``(data, flow)`` pairs
(:meth:`ProxyCore.datagrams_to_send`); time comes in as ``now`` and goes out as
the next deadline (:meth:`ProxyCore.get_timer`). Nothing here touches a socket
or a clock.

A request that starts a server transaction is validated (§16.3), its Route
header processed (§16.4), its next hop chosen (§16.5: our own Route entries and
the flow tokens in them, then any further Route, then policy for an initial
request) and it is forwarded (§16.6) on a client transaction, with our Via and,
on dialog-creating requests, one or two Record-Route entries (RFC 5658). Every
response to it comes back through the client transaction, loses our Via and is
forwarded on the server transaction (§16.7), so it leaves on the flow the
request came in on. CANCEL is answered hop by hop and passed on (§16.10); the
ACK for a 2xx is routed like any in-dialog request, without a transaction.

One request forwarded downstream is one :class:`_Forward`: Wedge is an edge
proxy and never forks, so each has one server and one client transaction.

Things RFC 3261 leaves to the implementer, decided here:

- A 503 from the next hop is forwarded as it is, Retry-After included. §16.7
  step 6 says a proxy SHOULD NOT, but at the edge the caller is an end point
  that benefits from the hint, and choosing another target (the point of that
  rule) happens before any response goes upstream.
- Every Record-Route entry carries a flow token naming the flow on its side, and
  a request that comes back along the route goes out on that flow: the browser's
  WebSocket, the trunk's TLS connection, the address a NATed UDP client sends
  from. A leg keeps its transport and its connection for the whole dialog.
- An initial request routed to a trunk takes the trunk's host and port in its
  Request-URI, and the trunk's transport in its ``transport`` parameter if it
  had one, so the next hop sees a request addressed to itself.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.proxy.call import CallMedia, MediaJob, profile_for
from gateway.proxy.dialogs import Dialogs
from gateway.proxy.peering import X_MS_SBC, restore_target, rewrite_contacts
from gateway.proxy.routing import Listener, OwnRoute, Router, RouteStamp, Target, uri_target
from gateway.proxy.timers import Timers
from gateway.proxy.trunks import TargetKey, TrunkHealth
from gateway.sip import (
    Flow,
    Headers,
    ParseError,
    Request,
    Response,
    SipUri,
    TelUri,
    make_cancel,
    make_response,
    parse_message,
)
from gateway.sip.headers import header_key
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
from media.control import MediaError

__all__ = ["ProxyCore", "ProxySettings"]

logger = logging.getLogger("wedge.proxy")
calls = logging.getLogger("wedge.calls")

# Requests that may create a dialog, and so get Record-Route (RFC 3261 §12.1,
# RFC 6665 for SUBSCRIBE/NOTIFY, RFC 3515 for REFER).
DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
MAX_TRACKED_CALLS = 100_000
"""Answered calls remembered for their duration log line; the oldest go first."""
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE"
SUPPORTED = "path, outbound"
"""The extensions Wedge itself implements (RFC 3327 Path, RFC 5626 flows), as its
answer to an OPTIONS says; end-to-end ones (replaces, timer) are the UAs' to say."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """What the proxy core needs to know beyond its listeners and router."""

    timers: TimerConfig = field(default_factory=TimerConfig)
    """RFC 3261 T1/T2/T4."""
    timer_c: float = 180.0
    """RFC 3261 §16.8 Timer C: how long an INVITE may ring; "MUST be greater than 3 minutes"
    is the RFC's advice, 180 s is what proxies use."""
    server: str = "Wedge"
    """Server header on the responses Wedge makes itself."""
    nat_keepalive: float = 0.0
    """Seconds between keep-alives (a CRLFCRLF datagram) sent to each UDP client
    with a live registration through Wedge, so its NAT binding stays open; 0: none."""
    answer_timeout: float = 0.5
    """Seconds a trunk target may take to answer anything (a 100 Trying will do)
    before Wedge tries the trunk's next target: one retransmission interval (T1)."""
    x_ms_sbc: Mapping[str, str] = field(default_factory=dict)
    """By listener name: the ``X-MS-SBC`` value written on messages leaving it."""
    rewrite_contact: frozenset[str] = frozenset()
    """Listener names whose outgoing Contacts name the listener (see peering.py)."""
    probe_name: Callable[[TargetKey], str | None] | None = None
    """The host name an OPTIONS probe of a trunk target addresses (its certificate's
    name, for a TLS trunk); None, or no name: the target's address."""


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a request cannot be forwarded: the final response Wedge answers with."""

    status: int
    reason: str


_Hop = tuple[Flow, Listener]


class _Forward:
    """One request proxied downstream: its server side and its client side.

    Attributes:
        server: the server transaction it came in on.
        request: the request as received (what Wedge's own responses are built
            from), until a final response goes upstream; None after that.
        method, call_id, starts_call: what is still read of the request after that
            (an INVITE's forward outlives its answer by 32 s, for 2xx retransmissions).
        source: the flow it came in on.
        started: when it came in.
        outgoing: the request as forwarded (what a CANCEL is built from).
        flow: the flow it was forwarded on.
        client: the client transaction it went out on.
        by_token: it was sent on the flow a token named: if that flow is gone,
            430 (RFC 5626).
        provisional: a provisional response came back, so a CANCEL may be sent (§9.1).
        cancelled, cancel_sent: the caller cancelled it; a CANCEL went downstream.
        timer_c: token of the live Timer C (0: none).
        trunk_target: the trunk target it went to, when policy sent it to a trunk.
        alternatives: the trunk's further targets, in failover order.
        template: the request routed but not yet stamped: what a failover sends again.
        in_listener, loop_hash: the listener it came in on, and its §16.6 loop hash.
        answer_timer: token of the timer that moves to the next target if nothing
            answers (0: none).
        media_profile: the media profile policy names for the trunk it went to
            (None: by transport).
        trunk: what policy chose, when it chose a trunk: its codecs and media flags.
    """

    # Written out rather than a dataclass: one is made per request, and the
    # __init__ ``dataclasses`` generates stays interpreted in the compiled build.
    __slots__ = (
        "alternatives",
        "answer_timer",
        "by_token",
        "call_id",
        "cancel_sent",
        "cancelled",
        "client",
        "flow",
        "in_listener",
        "loop_hash",
        "media_profile",
        "method",
        "outgoing",
        "provisional",
        "request",
        "server",
        "source",
        "started",
        "starts_call",
        "template",
        "timer_c",
        "trunk",
        "trunk_target",
    )

    def __init__(
        self, server: TransactionKey, request: Request, source: Flow, started: float
    ) -> None:
        self.server = server
        self.request: Request | None = request
        self.method = request.method
        self.call_id = request.call_id
        self.starts_call = self.method == "INVITE" and request.to.tag is None
        self.source = source
        self.started = started
        self.outgoing: Request | None = None
        self.flow: Flow | None = None
        self.client: TransactionKey | None = None
        self.by_token = False
        self.provisional = False
        self.cancelled = False
        self.cancel_sent = False
        self.timer_c = 0
        self.trunk_target: TargetKey | None = None
        self.alternatives: tuple[TargetKey, ...] = ()
        self.template: Request | None = None
        self.in_listener: Listener | None = None
        self.loop_hash = ""
        self.answer_timer = 0
        self.media_profile: str | None = None
        self.trunk: Target | None = None

    @property
    def answered(self) -> bool:
        """A final response went upstream."""
        return self.request is None

    def answer(self) -> None:
        """A final response went upstream: nothing will be cancelled or sent again.

        The request and its copies for a CANCEL and a failover go now. An INVITE's
        forward stays for 2xx retransmissions as long as its transactions (32 s),
        and parsed requests held that long are what the garbage collector spends
        its passes on.
        """
        self.request = None
        self.outgoing = None
        self.template = None


class ProxyCore:
    """A stateful edge proxy: bytes and time in, bytes and deadlines out. Does not raise.

    Args:
        router: the routing policy for initial requests.
        stamp: writes and recognises our Via, Record-Route and Route entries.
        settings: timers and names.
        ids: a source of unique tokens for To tags (random in production).
        health: the state of the trunks' targets, and their probe schedule.
        media: relay the media of calls (the engine runs :meth:`media_jobs`); without
            it SDP passes untouched and media flows end to end.
    """

    def __init__(
        self,
        router: Router,
        stamp: RouteStamp,
        settings: ProxySettings | None = None,
        ids: Callable[[], str] | None = None,
        health: TrunkHealth | None = None,
        media: bool = False,
    ) -> None:
        self.settings = settings or ProxySettings()
        self.health = health or TrunkHealth()
        self.layer = TransactionLayer(self.settings.timers)
        self.router = router
        self.stamp = stamp
        counter = itertools.count(1)
        self._ids = ids or (lambda: f"{next(counter):x}")
        self._by_server: dict[TransactionKey, _Forward] = {}
        self._by_client: dict[TransactionKey, _Forward] = {}
        self._timers = Timers()
        # OPTIONS probes under way: their client transaction -> (target, timeout token).
        self._probes: dict[TransactionKey, tuple[TargetKey, int]] = {}
        self._out: list[tuple[bytes, Flow]] = []
        # UDP clients registered through Wedge: flow -> when the registration ends.
        self._registered: dict[Flow, float] = {}
        self._keepalive = 0
        # Call-ID -> when its INVITE was answered, for the duration logged at BYE.
        self._calls: dict[str, float] = {}
        self._now = 0.0
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self.media = CallMedia() if media else None
        self.dialogs = Dialogs(stamp) if media else None

    # -- outputs --------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        """Messages to send, in order, as ``(bytes, flow)``."""
        out = self._out + self.layer.datagrams_to_send()
        self._out = []
        return out

    def media_jobs(self) -> list[MediaJob]:
        """Work for the media relay, in order; report each with :meth:`media_done`."""
        return self.media.jobs() if self.media is not None else []

    def get_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` has work, or None."""
        earliest = self.layer.get_timer()
        for deadline in (self._timers.get_timer(), self.health.get_timer()):
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    # -- inputs ---------------------------------------------------------------

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        """One whole message from ``flow``. Produces output: call :meth:`datagrams_to_send`."""
        self._now = now
        try:
            message = parse_message(data)
        except ParseError as exc:
            self._refuse(data, flow, exc)
            return
        if self._debug:
            logger.debug("< %s flow=%s call-id=%s", _first_line(message), flow, message.call_id)
        if isinstance(message, Request):
            _mark_received(message, flow)
        self.layer.receive(message, flow, now)
        self._process_events()

    def flow_failed(self, flow: Flow, now: float) -> None:
        """A flow is gone: transactions on it fail (a request waiting on it gets 503)."""
        self._now = now
        self.layer.transport_failed(flow, now)
        self._process_events()

    def media_done(self, ticket: int, result: bytes | MediaError | None, now: float) -> None:
        """The relay finished a :class:`MediaJob`: the rewritten SDP, or why not."""
        self._now = now
        if self.media is not None:
            self.media.done(ticket, result)
        self._process_events()

    def media_timeout(self, call_id: str, now: float) -> None:
        """The relay saw the call's media stop: end the call with a BYE to each party."""
        self._now = now
        if self.dialogs is None:
            return
        byes = self.dialogs.byes(call_id, "Media Timeout", self._own_via)
        for bye, flow in byes:
            self.layer.send_request(bye, flow, now)
        if self.media is not None:
            self.media.end(call_id)
        answered = self._calls.pop(call_id, None)
        if byes:
            calls.info(
                "call ended call-id=%s duration_s=%.1f by=media-timeout",
                call_id,
                now - (answered or now),
            )
        self._process_events()

    def _own_via(self, flow: Flow) -> str | None:
        listener = self.stamp.listener_of(flow)
        return None if listener is None else str(self.stamp.via(listener, "0"))

    def handle_timer(self, now: float) -> None:
        self._now = now
        # Ours first: a target that failed to answer is left before the layer
        # retransmits to it at the same instant.
        self._timers.run_due(now)
        self.layer.handle_timer(now)
        for target in self.health.due(now):
            self._probe(target)
        self._process_events()

    # -- the layer's events -----------------------------------------------------

    def _process_events(self) -> None:
        for event in self.layer.events():
            try:
                if isinstance(event, RequestReceived):
                    self._on_request(event)
                elif isinstance(event, ResponseReceived):
                    self._on_response(event)
                elif isinstance(event, TransactionTimedOut | TransportFailed):
                    self._on_failure(event)
                elif isinstance(event, TransactionTerminated):
                    self._forget(event.key)
            except ParseError as exc:
                # A URI that passed the parser's shape check but not the full
                # grammar, read only now: treat as the parse error it is.
                logger.warning("! dropped: %s", exc.reason)

    def _on_request(self, event: RequestReceived) -> None:
        request, flow, key = event.request, event.flow, event.key
        if key is None:
            self._forward_ack(request, flow)
        elif request.method == "CANCEL":
            self._on_cancel(request, key, event.cancels)
        else:
            self._on_new_request(request, flow, key)

    # -- requests ---------------------------------------------------------------

    def _on_new_request(self, request: Request, flow: Flow, key: TransactionKey) -> None:
        if self.dialogs is not None and request.to.tag is not None:
            if request.method == "BYE":
                self.dialogs.end(request.call_id)
            else:
                self.dialogs.saw(request)
        forward = _Forward(key, request, flow, self._now)
        self._by_server[key] = forward
        listener = self.stamp.listener_of(flow)
        if listener is None:  # cannot happen with a consistent engine; never crash on it
            self._reply(forward, 500, "Unknown listener")
            return
        refusal = self._validate(request)
        if refusal is not None:
            extra = (
                (("Unsupported", ", ".join(request.proxy_require)),)
                if refusal.status == 420
                else ()
            )
            self._reply(forward, refusal.status, refusal.reason, extra)
            return
        loop_hash = self.stamp.loop_hash(request)
        if self.stamp.has_looped(request, loop_hash):
            self._reply(forward, 482)
            return
        if request.method == "OPTIONS" and self._for_us(request):
            self._reply(
                forward,
                200,
                extra=(("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", SUPPORTED)),
            )
            return
        # The request as received stays as it is, for the responses Wedge may make.
        outgoing = request.copy()
        hop = self._next_hop(outgoing, flow, listener, forward)
        if isinstance(hop, _Refusal):
            self._reply(forward, hop.status, hop.reason)
            return
        out_flow, out_listener = hop
        # Only a flow token names one connection; every other hop is "any
        # connection to that address".
        forward.by_token = out_flow.connection != 0
        if request.method == "REGISTER":
            refusal = self._add_path(outgoing, flow, out_listener)
            if refusal is not None:
                self._reply(forward, refusal.status, refusal.reason, (("Require", "path"),))
                return
        forward.in_listener, forward.loop_hash = listener, loop_hash
        if forward.alternatives:  # what a failover sends: only where it can happen
            forward.template = outgoing.copy()
        self._forward(forward, outgoing, out_flow, out_listener)

    def _validate(self, request: Request) -> _Refusal | None:
        """RFC 3261 §16.3 steps 2, 3 and 5; step 1 was the parser's, step 4 is the loop check."""
        if not isinstance(request.ruri, SipUri | TelUri):
            return _Refusal(416, "Unsupported URI Scheme")
        if request.max_forwards == 0:
            return _Refusal(483, "Too Many Hops")
        # Wedge needs no extension of its own (§16.3 step 5).
        if request.proxy_require:
            return _Refusal(420, "Bad Extension")
        return None

    def _next_hop(
        self, request: Request, flow: Flow, listener: Listener, forward: _Forward | None = None
    ) -> _Hop | _Refusal:
        """Route processing (§16.4) and the choice of the next hop (§16.5)."""
        if self.settings.rewrite_contact:
            # A Request-URI that is a Contact we rewrote: its own target again.
            restore_target(request, self.stamp.is_ours)
        routes = request.routes
        # §16.4: a strict router put our address in the Request-URI and the
        # remote target in the last Route entry; undo that.
        ruri = request.ruri
        if routes and isinstance(ruri, SipUri) and self.stamp.is_ours(ruri):
            request.uri = routes[-1].uri_text
            _remove_last(request.headers, "route")
            routes = request.routes
        own: list[OwnRoute] = []
        while routes and len(own) < 2:
            mine = self.stamp.own_route(routes[0])
            if mine is None:
                break
            own.append(mine)
            request.headers.pop_first_value("route")
            routes = routes[1:]
        if routes:
            uri = routes[0].uri
            if not isinstance(uri, SipUri):
                return _Refusal(416, "Unsupported URI Scheme in Route")
            return self._to(uri_target(uri))
        if any(entry.forged for entry in own):
            # RFC 5626 §5.3: a flow token that fails its check is answered 403.
            return _Refusal(403, "Invalid Flow Token")
        back = self._flow_back(own, flow) if own else None
        if back is not None:
            out = self.stamp.listener_of(back)
            return _Refusal(430, "Flow Failed") if out is None else (back, out)
        if request.to.tag is None:
            return self._by_policy(request, flow, listener, forward)
        ruri = request.ruri
        if not isinstance(ruri, SipUri) or self.stamp.is_ours(ruri):
            return _Refusal(404, "Not Found")
        return self._to(uri_target(ruri))

    def _flow_back(self, own: list[OwnRoute], flow: Flow) -> Flow | None:
        """The flow our own Route entries send this request on, if they name one.

        Two entries (RFC 5658): the one not on the arrival side names the way
        out. One entry names the caller's flow: a request from elsewhere goes
        there; a request from the caller goes by its Request-URI.
        """
        if len(own) == 2:
            first, second = own
            return (second if first.listener == self.stamp.listener_of(flow) else first).flow
        token = own[0].flow
        if token is None or token.remote == flow.remote:
            return None
        return token

    def _to(self, target: tuple[str, tuple[str, int]] | None) -> _Hop | _Refusal:
        if target is None:
            return _Refusal(503, "Cannot Resolve Next Hop")
        transport, address = target
        out = self.stamp.listener_for(transport, address, None)
        if out is None:
            return _Refusal(503, f"No {transport.upper()} Listener")
        return Flow(transport, out.local, address), out

    def _by_policy(
        self, request: Request, flow: Flow, listener: Listener, forward: _Forward | None
    ) -> _Hop | _Refusal:
        target = self.router.route(request, listener, flow.remote)
        if target is None:
            return _Refusal(404, "No Route")
        _retarget(request, target)
        keys = [(target.name, target.transport, target.address)]
        keys += [(target.name, transport, address) for transport, address in target.alternatives]
        usable = self.health.usable(keys, self._now)
        if not usable:
            return _Refusal(503, f"Trunk {target.name} Unavailable")
        if forward is not None:
            forward.trunk_target, forward.alternatives = usable[0], tuple(usable[1:])
            forward.media_profile = target.media_profile
            forward.trunk = target
        return self._trunk_hop(usable[0], target.listener)

    def _trunk_hop(self, key: TargetKey, listener: str | None) -> _Hop | _Refusal:
        _, transport, address = key
        out = self.stamp.listener_for(transport, address, listener)
        if out is None:
            return _Refusal(503, f"No {transport.upper()} Listener")
        return Flow(transport, out.local, address), out

    def _add_path(self, request: Request, flow: Flow, out: Listener) -> _Refusal | None:
        """RFC 3327 §5.2: put Wedge on the path back to the client on ``flow``.

        A client on a connection (WebSocket, TLS, TCP) can only be reached over
        that connection, so Wedge needs Path and answers 421 to a client that does
        not support it. A UDP client without path support is registered as it
        asked, with its Contact as written.
        """
        if "path" not in request.supported:
            return _Refusal(421, "Extension Required") if flow.reliable else None
        request.headers.prepend("Path", self.stamp.path(out, flow))
        return None

    def _for_us(self, request: Request) -> bool:
        """Addressed to Wedge itself: our address, no user part, no Route beyond us.

        An OPTIONS like that is a keep-alive or capability query (RFC 3261 §11),
        answered here rather than routed.
        """
        ruri = request.ruri
        return (
            isinstance(ruri, SipUri)
            and ruri.user is None
            and self.stamp.is_ours(ruri)
            and all(self.stamp.own_route(route) is not None for route in request.routes)
        )

    def _forward(
        self, forward: _Forward, request: Request, out_flow: Flow, out_listener: Listener
    ) -> None:
        """RFC 3261 §16.6: stamp the copy and send it on a new client transaction."""
        in_listener = forward.in_listener
        assert in_listener is not None
        headers = request.headers
        _decrement_max_forwards(request)
        if request.method in DIALOG_METHODS and request.to.tag is None:
            stamp = self.stamp.record_route
            if in_listener != out_listener:
                headers.prepend("Record-Route", stamp(in_listener, forward.source, double=True))
                headers.prepend("Record-Route", stamp(out_listener, out_flow, double=True))
            else:
                headers.prepend("Record-Route", stamp(in_listener, forward.source, double=False))
        request.add_via(self.stamp.via(out_listener, forward.loop_hash))
        self._dress(request, out_listener)
        forward.outgoing = request
        forward.flow = out_flow
        if self.media is None:
            self._send_forward(forward, request, out_flow)
            return
        if request.method == "INVITE" and request.to.tag is None:
            self.media.start(
                request.call_id,
                request.from_.tag or "",
                profile_for(forward.source.transport),
                profile_for(out_flow.transport, forward.media_profile),
                forward.trunk.codecs if forward.trunk is not None else (),
                forward.trunk.media_flags if forward.trunk is not None else (),
            )
        self.media.carry(
            request,
            lambda: self._send_forward(forward, request, out_flow),
            lambda error: self._media_refused(forward, error),
        )
        if request.method == "BYE":
            self.media.end(request.call_id)

    def _send_forward(self, forward: _Forward, request: Request, out_flow: Flow) -> None:
        if forward.answered or forward.outgoing is not request:
            return  # answered (or failed over) while the relay worked on its SDP
        if forward.cancelled and not forward.provisional and request.method == "INVITE":
            # Cancelled before it left: it never reaches the callee.
            self._reply(forward, 487, "Request Terminated")
            return
        forward.client = self.layer.send_request(request, out_flow, self._now)
        self._by_client[forward.client] = forward
        if request.method == "INVITE":
            self._arm_timer_c(forward)
        if forward.trunk_target is not None and forward.alternatives:
            # Only where there is another target to move to: a lone target that
            # answers late is still the only way there (Timer B decides then).
            forward.answer_timer = self._timers.add(
                self._now + self.settings.answer_timeout, lambda: self._no_answer(forward)
            )

    def _forward_ack(self, ack: Request, flow: Flow) -> None:
        """The ACK for a 2xx: a request of its own, routed like any in-dialog one (§16.6)."""
        listener = self.stamp.listener_of(flow)
        if listener is None or ack.method != "ACK" or ack.max_forwards == 0:
            return
        hop = self._next_hop(ack, flow, listener)
        if isinstance(hop, _Refusal):
            logger.info("! ACK dropped call-id=%s reason=%r", ack.call_id, hop.reason)
            return
        out_flow, out_listener = hop
        _decrement_max_forwards(ack)
        # An ACK is never answered, so no loop check (hash 0): its branch only has to be new.
        ack.add_via(self.stamp.via(out_listener, "0"))
        self._dress(ack, out_listener)
        if self.media is None:
            self.layer.send_stateless(ack, out_flow)
            return
        self.media.carry(
            ack,
            lambda: self.layer.send_stateless(ack, out_flow),
            lambda error: self._media_failed(
                ack, error, lambda: self.layer.send_stateless(ack, out_flow)
            ),
        )

    def _on_cancel(
        self, cancel: Request, key: TransactionKey, cancels: TransactionKey | None
    ) -> None:
        """RFC 3261 §16.10: answer the CANCEL here, then cancel the forwarded INVITE."""
        forward = self._by_server.get(cancels) if cancels is not None else None
        self.layer.send_response(
            make_response(cancel, 481 if forward is None else 200, to_tag=self._ids()),
            self._now,
            key,
        )
        if forward is None or forward.answered:
            return
        forward.cancelled = True
        if forward.provisional:
            self._send_cancel(forward)

    def _send_cancel(self, forward: _Forward) -> None:
        """§9.1: a CANCEL copies the forwarded INVITE's Request-URI, top Via, Call-ID,
        From, To, CSeq number and Route."""
        invite, flow = forward.outgoing, forward.flow
        if invite is None or flow is None or forward.cancel_sent:
            return
        forward.cancel_sent = True
        cancel = make_cancel(invite)
        self.layer.send_request(cancel, flow, self._now)

    # -- responses and failures -------------------------------------------------

    def _on_response(self, event: ResponseReceived) -> None:
        if event.key in self._probes:
            probed, timeout = self._probes.pop(event.key)
            self._timers.cancel(timeout)
            if event.response.status == 503:
                self.health.failed(probed, self._now, "OPTIONS 503", _retry_after(event.response))
            else:
                self.health.succeeded(probed, self._now, probe=True)
            return
        forward = self._by_client.get(event.key) if event.key is not None else None
        if forward is None:
            return  # the answer to a CANCEL of ours: nothing to pass on
        response = event.response
        request = forward.request  # None from the second final response on
        self._timers.cancel(forward.answer_timer)
        status = response.status
        target = forward.trunk_target
        if target is not None:
            if status == 503 and not forward.provisional:
                retry_after = _retry_after(response)
                self.health.failed(target, self._now, "503", retry_after)
                if self._fail_over(forward):
                    return
            else:
                self.health.succeeded(target, self._now)
        response.headers.pop_first_value("via")
        if not response.headers.get("via"):
            return  # addressed to us, not to forward
        if status < 200:
            forward.provisional = True
            if forward.cancelled:
                self._send_cancel(forward)
            elif forward.method == "INVITE":
                self._arm_timer_c(forward)
            if status == 100:
                return  # hop by hop (§16.7 step 3): ours went upstream already
        else:
            self._timers.cancel(forward.timer_c)
            if request is not None:
                self._log_call(forward, request, status)
                self._track_call(request, status)
                if status < 300 and request.method == "REGISTER":
                    self._track_registration(forward.source, response)
            forward.answer()
        listener = self.stamp.listener_of(forward.source)
        if listener is not None:
            self._dress(response, listener)
        if self.media is None:
            self.layer.send_response(response, self._now, forward.server)
            return
        dialogs = self.dialogs
        if dialogs is not None and status < 300 and forward.starts_call and request is not None:
            # The first 2xx makes the dialog; a retransmission or another fork's 2xx
            # does not replace it (a caller keeps one dialog and ends the others,
            # RFC 3261 §13.2.2.4).
            assert forward.flow is not None
            dialogs.answered(request, response, forward.source, forward.flow)
        send = lambda: self.layer.send_response(response, self._now, forward.server)  # noqa: E731
        self.media.carry(response, send, lambda error: self._media_failed(response, error, send))
        if status >= 300 and forward.starts_call:
            self.media.end(response.call_id)

    def _on_failure(self, event: TransactionTimedOut | TransportFailed) -> None:
        probe = self._probes.pop(event.key, None)
        if probe is not None:
            self._timers.cancel(probe[1])
            self.health.failed(probe[0], self._now, "OPTIONS " + type(event).__name__)
            return
        forward = self._by_client.get(event.key)
        if forward is None or forward.answered:
            return
        if forward.trunk_target is not None and not forward.provisional:
            self.health.failed(forward.trunk_target, self._now, type(event).__name__)
            if self._fail_over(forward):
                return
        if forward.cancelled:
            status, reason = 487, "Request Terminated"
        elif isinstance(event, TransactionTimedOut):
            status, reason = 408, "Request Timeout"
        elif forward.by_token:
            status, reason = 430, "Flow Failed"  # RFC 5626 §5.3: the client's flow is gone
        else:
            status, reason = 503, "Service Unavailable"
        self._reply(forward, status, reason)

    def _timer_c_fired(self, forward: _Forward) -> None:
        """§16.8: an INVITE rang too long: cancel it if it rang, else give up with 408."""
        forward.timer_c = 0
        if forward.answered:
            return
        if forward.provisional:
            forward.cancelled = True
            self._send_cancel(forward)
        else:
            if forward.client is not None:
                self.layer.terminate(forward.client, self._now)
            self._reply(forward, 408, "Request Timeout")

    def _arm_timer_c(self, forward: _Forward) -> None:
        self._timers.cancel(forward.timer_c)
        forward.timer_c = self._timers.add(
            self._now + self.settings.timer_c, lambda: self._timer_c_fired(forward)
        )

    # -- trunk targets: failover and probes -----------------------------------------

    def _no_answer(self, forward: _Forward) -> None:
        """Nothing at all came back from a trunk target in time: try the next one."""
        forward.answer_timer = 0
        if forward.trunk_target is None or forward.answered:
            return
        self.health.failed(
            forward.trunk_target, self._now, f"no answer in {self.settings.answer_timeout:g} s"
        )
        self._fail_over(forward)

    def _fail_over(self, forward: _Forward) -> bool:
        """Send the request to the trunk's next usable target (RFC 3263 §4.3).

        Only before anything but a 100 came back: a call that rang stays where
        it rang. Returns False when there is no target left to try.
        """
        alternatives = self.health.usable(forward.alternatives, self._now)
        if forward.provisional or forward.cancelled or not alternatives or forward.template is None:
            return False
        previous = forward.client
        forward.client = None
        if previous is not None:
            self._by_client.pop(previous, None)
            self.layer.terminate(previous, self._now)
        key, forward.alternatives = alternatives[0], tuple(alternatives[1:])
        hop = self._trunk_hop(key, None)
        if isinstance(hop, _Refusal):
            return False
        old = forward.trunk_target or key
        logger.info(
            "failover call-id=%s trunk=%s from=%s:%s:%d to=%s:%s:%d",
            forward.call_id,
            key[0],
            old[1],
            *old[2],
            key[1],
            *key[2],
        )
        forward.trunk_target = key
        self._timers.cancel(forward.timer_c)
        self._forward(forward, forward.template.copy(), *hop)
        return True

    def _probe(self, target: TargetKey) -> None:
        """An OPTIONS to one trunk target; any answer but 503 shows it alive."""
        hop = self._trunk_hop(target, None)
        if isinstance(hop, _Refusal):
            return
        flow, listener = hop
        host, port = listener.advertise
        name = self.settings.probe_name(target) if self.settings.probe_name else None
        address = name or (f"[{target[2][0]}]" if ":" in target[2][0] else target[2][0])
        uri = f"sip:{address}:{target[2][1]}"
        # Microsoft's Direct Routing wants the SBC's FQDN, port and transport as the
        # Contact (and in From and Via) of the keep-alive OPTIONS it counts.
        contact = f"sip:{host}:{port}"
        if target[1] != "udp":
            uri += f";transport={_URI_TRANSPORT[target[1]]}"
        if listener.transport != "udp":
            contact += f";transport={_URI_TRANSPORT[listener.transport]}"
        tag = self._ids()
        options = Request(
            "OPTIONS",
            uri,
            Headers.of(
                [
                    ("Via", str(self.stamp.via(listener, "0"))),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:wedge@{host}:{port}>;tag={tag}"),
                    ("To", f"<{uri}>"),
                    ("Call-ID", f"probe-{tag}@{host}"),
                    ("CSeq", "1 OPTIONS"),
                    ("Contact", f"<{contact}>"),
                    ("User-Agent", self.settings.server),
                    *self._identity(flow),
                    ("Content-Length", "0"),
                ]
            ),
        )
        key = self.layer.send_request(options, flow, self._now)
        timeout = self._timers.add(
            self._now + self.health.probe_timeout(target[0]), lambda: self._probe_timed_out(key)
        )
        self._probes[key] = (target, timeout)

    def _probe_timed_out(self, key: TransactionKey) -> None:
        probe = self._probes.pop(key, None)
        if probe is not None:
            self.health.failed(probe[0], self._now, "OPTIONS unanswered")
            self.layer.terminate(key, self._now)

    # -- helpers ------------------------------------------------------------------

    def _dress(self, message: Request | Response, listener: Listener) -> None:
        """What a message leaving ``listener`` carries for its peer (peering.py)."""
        identity = self.settings.x_ms_sbc.get(listener.name)
        if identity is not None:
            message.headers.set(X_MS_SBC, identity)
        if listener.name in self.settings.rewrite_contact and not (
            isinstance(message, Response) and message.status >= 300
        ):
            # A 3xx's Contacts are where to go instead, not us: never rewritten.
            rewrite_contacts(message, listener)

    def _identity(self, flow: Flow) -> tuple[tuple[str, str], ...]:
        """``X-MS-SBC`` for a message of our own on ``flow``, if its listener says so."""
        if not self.settings.x_ms_sbc:
            return ()
        listener = self.stamp.listener_of(flow)
        identity = self.settings.x_ms_sbc.get(listener.name) if listener is not None else None
        return ((X_MS_SBC, identity),) if identity is not None else ()

    def _reply(
        self,
        forward: _Forward,
        status: int,
        reason: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer the request of ``forward`` with a final response of our own."""
        request = forward.request
        if request is None:
            return  # answered already
        forward.answer()
        self._timers.cancel(forward.timer_c)
        self._timers.cancel(forward.answer_timer)
        identity = self._identity(forward.source)
        response = make_response(
            request,
            status,
            reason,
            to_tag=self._ids(),
            extra=(("Server", self.settings.server), *identity, *extra),
        )
        if status >= 300:
            self._log_call(forward, request, status)
            if self.media is not None and forward.starts_call:
                self.media.end(forward.call_id)
        self.layer.send_response(response, self._now, forward.server)

    def _media_refused(self, forward: _Forward, error: MediaError) -> None:
        """The relay cannot serve a request's offer: refuse the request, with why."""
        logger.warning(
            "! media refused call-id=%s status=%d reason=%r",
            forward.call_id,
            error.status,
            error.reason,
        )
        extra = [("Warning", f'399 wedge "{_quoted(error.reason)}"')]
        if error.status == 503:
            extra.append(("Retry-After", "5"))
        self._reply(forward, error.status, None, tuple(extra))

    def _media_failed(
        self, message: Request | Response, error: MediaError, send: Callable[[], None]
    ) -> None:
        """The relay cannot serve the SDP of a response or an ACK. The dialog exists by
        now, so the message goes on as it came and the call may lack media."""
        logger.error(
            "! media: SDP passed unrelayed call-id=%s message=%s reason=%r",
            message.call_id,
            _first_line(message),
            error.reason,
        )
        send()

    def _log_call(self, forward: _Forward, request: Request, status: int) -> None:
        if not forward.starts_call:
            return
        calls.info(
            "call call-id=%s from=%s to=%s in=%s out=%s result=%d setup_ms=%d",
            request.call_id,
            request.from_.uri_text,
            request.to.uri_text,
            forward.source,
            forward.flow or "-",
            status,
            round((self._now - forward.started) * 1000),
        )

    def _track_registration(self, flow: Flow, ok: Response) -> None:
        """Keep a NATed UDP client's binding open while its registration lasts."""
        if self.settings.nat_keepalive <= 0 or flow.reliable:
            return
        expires = max(
            (
                _expires(contact.param("expires") or ok.headers.get("expires"))
                for contact in ok.contacts
            ),
            default=0,
        )
        if expires <= 0:
            self._registered.pop(flow, None)
            return
        self._registered[flow] = self._now + expires
        if not self._keepalive:
            self._keepalive = self._timers.add(
                self._now + self.settings.nat_keepalive, self._send_keepalives
            )

    def _send_keepalives(self) -> None:
        """RFC 5626 §4.4.1's CRLFCRLF, toward the client: UAs ignore it, NATs see traffic."""
        self._keepalive = 0
        for flow, until in list(self._registered.items()):
            if until <= self._now:
                del self._registered[flow]
            else:
                self._out.append((b"\r\n\r\n", flow))
        if self._registered:
            self._keepalive = self._timers.add(
                self._now + self.settings.nat_keepalive, self._send_keepalives
            )

    def _track_call(self, request: Request, status: int) -> None:
        """Remember when a call was answered; log its duration when a BYE ends it."""
        if request.method == "INVITE" and 200 <= status < 300 and request.to.tag is None:
            self._calls[request.call_id] = self._now
            if len(self._calls) > MAX_TRACKED_CALLS:
                # A call whose BYE never came: forget the oldest (dicts keep order).
                del self._calls[next(iter(self._calls))]
        elif request.method == "BYE":
            answered = self._calls.pop(request.call_id, None)
            if answered is not None:
                calls.info(
                    "call ended call-id=%s duration_s=%.1f by=%s",
                    request.call_id,
                    self._now - answered,
                    request.from_.uri_text,
                )

    def _forget(self, key: TransactionKey) -> None:
        forward = self._by_server.pop(key, None) or self._by_client.pop(key, None)
        if forward is None:
            return
        self._timers.cancel(forward.timer_c)
        self._timers.cancel(forward.answer_timer)
        self._by_server.pop(forward.server, None)
        if forward.client is not None:
            self._by_client.pop(forward.client, None)

    def _refuse(self, data: bytes, flow: Flow, error: ParseError) -> None:
        """A message that does not parse: a request gets 400 (or the status the
        error names) if enough of it survives to address a response; a response is
        dropped (RFC 3261 §18.1.2)."""
        response = _salvaged_response(data, error)
        logger.warning(
            "! bad message flow=%s reason=%r action=%s",
            flow,
            error.reason,
            "dropped" if response is None else f"answered {error.status}",
        )
        if response is not None:
            self._out.append((response, flow))


# -- pure helpers ---------------------------------------------------------------


def _first_line(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} {message.uri}"
    return f"{message.status} {message.reason}"


def _mark_received(request: Request, flow: Flow) -> None:
    """RFC 3261 §18.2.1 and RFC 3581 §4: record where the request really came from.

    ``received`` when the top Via's host is not the source address, ``rport``
    filled in when the client asked for it, so responses go back through NAT.
    """
    via = request.via
    host, port = flow.remote
    changed = via
    if via.host.strip("[]") != host:
        changed = changed.with_param("received", host)
    if via.has_param("rport") and via.rport is None:
        changed = changed.with_param("rport", str(port))
    if changed is not via:
        request.replace_via(changed)


def _quoted(text: str) -> str:
    """``text`` safe inside a quoted-string (RFC 3261 §25.1)."""
    return "".join(ch if ch.isprintable() and ch not in '"\\' else "?" for ch in text)


def _expires(value: str | None) -> int:
    """An Expires value (RFC 3261 §20.19) in seconds; 0 for none or nonsense."""
    if value is None or not value.isdigit() or len(value) > 10:
        return 0
    return int(value)


def _retry_after(response: Response) -> float | None:
    """RFC 3261 §20.33: ``Retry-After: 120 (comment);duration=...``, seconds only."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    digits = value.split(None, 1)[0].split(";", 1)[0]
    return float(digits) if digits.isdigit() and len(digits) < 10 else None


def _decrement_max_forwards(request: Request) -> None:
    """§16.6 step 3: one less, or 70 where a (RFC 2543) peer sent none."""
    max_forwards = request.max_forwards
    request.headers.set("Max-Forwards", str(70 if max_forwards is None else max_forwards - 1))


def _remove_last(headers: Headers, name: str) -> None:
    values = headers.values(name)
    headers.remove(name)
    for value in values[:-1]:
        headers.append(name.title(), value)


# The Request-URI's transport parameter for each leg: RFC 7118 §5.2 writes "ws"
# for WebSocket whether secure or not.
_URI_TRANSPORT = {"udp": "udp", "tcp": "tcp", "tls": "tls", "ws": "ws", "wss": "ws"}


def _retarget(request: Request, target: Target) -> None:
    """An initial request to a trunk takes the trunk's host and port in its
    Request-URI, and the trunk's transport in its ``transport`` parameter where
    it had one. In-dialog requests keep their remote target (RFC 3261 §16.6)."""
    ruri = request.ruri
    if target.uri is None or not isinstance(ruri, SipUri):
        return
    ruri = ruri.replace(host=target.uri.host, port=target.uri.port)
    if target.user is not None:
        ruri = ruri.replace(user=target.user)
    if ruri.has_param("transport"):
        ruri = ruri.with_param("transport", _URI_TRANSPORT[target.transport])
    request.uri = str(ruri)


_SALVAGED = ("via", "from", "to", "call-id", "cseq")


def _salvaged_response(data: bytes, error: ParseError) -> bytes | None:
    """A response to a request that did not parse, from what of it can be read.

    The Via lines, From, To, Call-ID and CSeq are copied as they are; without a
    Via there is nowhere to send a response, and an ACK is never answered.
    """
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)
    if not lines or lines[0][:4].upper() == "SIP/" or lines[0].startswith("ACK "):
        return None
    kept = [line for line in lines[1:] if header_key(line.partition(":")[0]) in _SALVAGED]
    if not any(header_key(line.partition(":")[0]) == "via" for line in kept):
        return None
    reason = "".join(ch if ch.isprintable() and ch != '"' else "?" for ch in error.reason)
    status = error.status if 400 <= error.status < 600 else 400
    phrase = {505: "Version Not Supported", 513: "Message Too Large"}.get(status, "Bad Request")
    out = [
        f"SIP/2.0 {status} {phrase}",
        *kept,
        f'Warning: 399 wedge "{reason}"',
        "Content-Length: 0",
    ]
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8", "replace")
