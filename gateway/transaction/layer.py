"""The SIP transaction layer (RFC 3261 §17, RFC 6026): matching, timers, retransmissions.

:class:`TransactionLayer` is pure. Three things drive it, as in aioquic:

- messages from the network: :meth:`~TransactionLayer.receive` (already parsed,
  with the :class:`~gateway.sip.flow.Flow` they came on and ``now``);
- its user, the proxy core (RFC 3261's TU): :meth:`~TransactionLayer.send_request`,
  :meth:`~TransactionLayer.send_response`, :meth:`~TransactionLayer.send_stateless`,
  :meth:`~TransactionLayer.terminate`, and the shell's
  :meth:`~TransactionLayer.transport_failed`;
- time: :meth:`~TransactionLayer.handle_timer` at the deadline
  :meth:`~TransactionLayer.get_timer` named.

After each call the caller drains :meth:`~TransactionLayer.datagrams_to_send`
(``(bytes, Flow)`` pairs) and :meth:`~TransactionLayer.events`, and re-arms its
one timer from :meth:`~TransactionLayer.get_timer`.

The state machines themselves are tables in :mod:`gateway.transaction.states`;
this module matches messages to transactions, turns them into table inputs and
carries out the actions: bytes out, events up, deadlines on a heap.

Design decisions, with the RFC text behind them:

- **Matching.** A response belongs to the client transaction whose request had
  the same top Via branch and CSeq method (§17.1.3). A request belongs to the
  server transaction with the same branch, sent-by and method, an ACK to the
  INVITE's (§17.2.3). A request whose branch lacks the ``z9hG4bK`` cookie comes
  from an RFC 2543 element and is matched on Request-URI (compared by §19.1.4),
  To tag, From tag, Call-ID, CSeq and top Via instead; for an ACK the To tag
  must be that of the response we sent. A CANCEL is a transaction of its own,
  and is matched to the INVITE it cancels by the same rules with the method
  taken as INVITE (§9.2).
- **Stray responses are dropped.** RFC 3261 §16.7 and §18.1.2 passed a response
  matching no client transaction to the core, which would forward it
  statelessly. RFC 6026 reversed that for every element but a stateless proxy:
  with the Accepted state, a late 2xx to an INVITE still finds its transaction
  for 64*T1, and forwarding any response that matches nothing lets anyone
  bounce traffic through the proxy. So a stray response is logged and dropped;
  ``report_stray_responses=True`` passes it up instead, with key None, for a
  core that wants to decide itself.
- **100 Trying at once.** An INVITE server transaction answers 100 as soon as it
  exists (§17.2.1: the transaction MUST unless it knows the TU answers within
  200 ms, and a proxy waiting on the next hop cannot know). The 100 follows
  §8.2.6 and carries no To tag (§17.2.1 downgrades adding one to SHOULD NOT).
- **Responses go back on the request's flow.** The flow names the connection or
  the source address and port the request came from, which is where RFC 3581
  symmetric response routing and §18.2.2 (reliable transports: the same
  connection) send them.
- **The ACK for a non-2xx** is the INVITE client transaction's to build and to
  repeat on each retransmitted final response (§17.1.1.3). The ACK for a 2xx is
  the TU's, a transaction of its own that the layer only carries:
  :meth:`~TransactionLayer.send_stateless`.
- **Time.** Every deadline is ``now`` plus a duration from :class:`TimerConfig`,
  kept on a heap; cancelling a timer only forgets its token, and the stale heap
  entry is skipped when it surfaces (or swept when stale entries outnumber live
  ones). A late :meth:`~TransactionLayer.handle_timer` fires each due timer
  once and re-arms from ``now``: no bursts of catch-up retransmissions.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from gateway.sip.errors import LocalProtocolError, ParseError
from gateway.sip.flow import Flow
from gateway.sip.headers import Headers, Uri
from gateway.sip.message import Request, Response, trying_bytes
from gateway.transaction.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from gateway.transaction.states import (
    INITIAL,
    LIVE_TIMERS,
    RETRANSMIT_TIMER,
    TERMINATED,
    TIMEOUT_TIMER,
    TRANSITIONS,
    WAIT_TIMER,
    Action,
    Input,
    Machine,
    State,
    Timer,
    Transition,
    transition,
)

__all__ = ["MAGIC_COOKIE", "TimerConfig", "TransactionLayer"]

logger = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: a branch that starts with it is unique per transaction."""

# Sweep the timer heap once stale entries pass this many and outnumber the live
# ones: below it, skipping them as they surface is cheaper than a rebuild.
_SWEEP_MIN = 1024

_NO_TIMERS: frozenset[Timer] = frozenset()
_RESEND_TIMERS = frozenset(RETRANSMIT_TIMER.values())


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The three constants RFC 3261's timers derive from (§17.1.1.1, Table 4).

    The defaults are the RFC's; a test or a LAN deployment may shrink them. Every
    lettered timer is computed from them by :meth:`duration`.
    """

    t1: float = 0.5
    """RTT estimate: the first retransmission interval (Timers A, E, G), and 64*T1
    is how long a transaction waits for an answer (B, F, H) or lingers (J, L, M)."""
    t2: float = 4.0
    """The longest retransmission interval for non-INVITE requests and for INVITE
    final responses (E, G)."""
    t4: float = 5.0
    """The longest a message stays in the network: how long a completed
    transaction absorbs retransmissions on an unreliable flow (I, K)."""

    _durations: dict[tuple[Timer, bool], float] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0:
            raise ValueError("need 0 < t1 <= t2 and t4 > 0")
        # Looked up for every timer armed; a table, since each Enum member named
        # in a comparison costs an attribute lookup on Python 3.11.
        for timer in Timer:
            for reliable in (False, True):
                self._durations[timer, reliable] = self._compute(timer, reliable)

    def duration(self, timer: Timer, reliable: bool) -> float:
        """The initial duration of ``timer`` on a flow; 0 means "do not wait"."""
        return self._durations[timer, reliable]

    def _compute(self, timer: Timer, reliable: bool) -> float:
        """Table 4: D, I, J and K absorb retransmissions, which a reliable
        transport never delivers, so they are zero there. D is "> 32s": it must
        outlast a server's Timer H at the RFC's T1 even when ours is shorter."""
        t1 = self.t1
        if timer in (Timer.A, Timer.E, Timer.G):
            return t1
        if timer is Timer.D:
            return 0.0 if reliable else max(32.0, 64 * t1)
        if timer in (Timer.I, Timer.K):
            return 0.0 if reliable else self.t4
        if timer is Timer.J:
            return 0.0 if reliable else 64 * t1
        return 64 * t1  # B, F, H, L, M


class _AckTemplate:
    """What §17.1.1.3 copies from an INVITE into the ACK for a non-2xx response.

    Taken when the INVITE is sent, so the TU may reuse the Request object.
    """

    __slots__ = ("call_id", "cseq", "from_", "routes", "uri", "via")

    def __init__(
        self, uri: str, via: str, from_: str, call_id: str, cseq: int, routes: tuple[str, ...]
    ) -> None:
        self.uri: Final = uri
        self.via: Final = via
        self.from_: Final = from_
        self.call_id: Final = call_id
        self.cseq: Final = cseq
        self.routes: Final = routes


class _Transaction:
    """One transaction's state: the table state plus what its actions need."""

    __slots__ = (
        "ack",
        "ack_bytes",
        "cancels",
        "end_timer",
        "end_token",
        "flow",
        "interval",
        "key",
        "machine",
        "request_bytes",
        "resend_timer",
        "resend_token",
        "response_bytes",
        "response_to_tag",
        "ruri",
        "state",
        "to_tag",
    )

    def __init__(self, key: TransactionKey, machine: Machine, flow: Flow) -> None:
        self.key = key
        self.machine = machine
        self.state: State = INITIAL[machine].next
        # No parsed request is kept: a transaction outlives its answer by up to
        # 32 s (Timers J, L, M), and thousands of parsed requests held that long
        # are what the cyclic garbage collector would spend its passes scanning.
        self.flow = flow
        # Running timers, two at most: one that resends (A, E, G) and one that ends
        # a state (B, F, H give up; D, I, J, K, L, M linger); each with the token of
        # its live heap entry (0: none). Not a dict: one more object per lingering
        # transaction is one more for the garbage collector to scan.
        self.resend_timer: Timer | None = None
        self.resend_token = 0
        self.end_timer: Timer | None = None
        self.end_token = 0
        # The current interval of the retransmit timer (A, E or G).
        self.interval = 0.0
        # Client: the request, serialized once; the ACK template and bytes (ICT).
        self.request_bytes = b""
        self.ack: _AckTemplate | None = None
        self.ack_bytes: bytes | None = None
        # Server: the last response sent, serialized once, and (RFC 2543 matching
        # only) its To tag.
        self.response_bytes: bytes | None = None
        self.response_to_tag: str | None = None
        # Server, RFC 2543 matching only: the request's Request-URI and To tag.
        self.ruri: Uri | None = None
        self.to_tag: str | None = None
        # NIST of a CANCEL: the INVITE server transaction it matched (§9.2).
        self.cancels: TransactionKey | None = None


# The states in which a transaction still owes (server) or awaits (client) a
# final response: Calling, Trying and Proceeding in all four machines.
_WAITING = frozenset({"Calling", "Trying", "Proceeding"})

_Handler = Callable[[_Transaction, float, Request | Response | None, Flow | None], None]
_HeapEntry = tuple[float, int, _Transaction, Timer]


class TransactionLayer:
    """All the client and server transactions of one SIP element.

    Args:
        config: the timer constants; RFC 3261's defaults when omitted.
        report_stray_responses: pass a response that matches no client
            transaction up as ``ResponseReceived(response, None)`` instead of
            dropping it (RFC 6026 allows forwarding them to a stateless proxy only).
    """

    def __init__(
        self, config: TimerConfig | None = None, *, report_stray_responses: bool = False
    ) -> None:
        self.config = config if config is not None else TimerConfig()
        self._report_stray = report_stray_responses
        self._client: dict[TransactionKey, _Transaction] = {}
        self._server: dict[TransactionKey, _Transaction] = {}
        # Transactions by the flow they send on, for transport_failed(); dicts
        # rather than sets so failures are reported in a stable order.
        self._by_flow: dict[Flow, dict[_Transaction, None]] = {}
        self._heap: list[_HeapEntry] = []
        self._stale = 0
        self._tokens = itertools.count(1)
        self._datagrams: list[tuple[bytes, Flow]] = []
        self._events: list[Event] = []
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._actions: dict[Action, _Handler] = {
            Action.SEND_REQUEST: self._send_request,
            Action.SEND_RESPONSE: self._send_response,
            Action.SEND_TRYING: self._send_trying,
            Action.RESEND_RESPONSE: self._resend_response,
            Action.SEND_ACK: self._send_ack,
            Action.PASS_TO_TU: self._pass_to_tu,
            Action.REPORT_TIMEOUT: self._report_timeout,
            Action.REPORT_TRANSPORT_ERROR: self._report_transport_error,
            Action.START_RETRANSMIT: self._start_retransmit,
            Action.DOUBLE: self._double,
            Action.DOUBLE_UP_TO_T2: self._double_up_to_t2,
            Action.HOLD_AT_T2: self._hold_at_t2,
            Action.START_TIMEOUT: self._start_timeout,
            Action.START_WAIT: self._start_wait,
        }

    # -- outputs -----------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        """The messages to send since the last call, in order, as ``(bytes, flow)``."""
        datagrams, self._datagrams = self._datagrams, []
        return datagrams

    def events(self) -> list[Event]:
        """What happened since the last call, in order."""
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` has work, or None."""
        heap = self._heap
        while heap:
            _, token, txn, _ = heap[0]
            if token == txn.resend_token or token == txn.end_token:
                return heap[0][0]
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def __len__(self) -> int:
        """How many transactions are alive."""
        return len(self._client) + len(self._server)

    def unfinished(self) -> int:
        """How many transactions still wait for a final response.

        The others (Completed, Accepted, Confirmed) only absorb retransmissions
        and can be dropped by a stopping process without losing a call.
        """
        return sum(
            txn.state.value in _WAITING
            for table in (self._client, self._server)
            for txn in table.values()
        )

    def state(self, key: TransactionKey) -> State | None:
        """The state of a live transaction; None once it is forgotten."""
        txn = (self._server if key.is_server else self._client).get(key)
        return None if txn is None else txn.state

    # -- inputs from the network and the clock -------------------------------

    def receive(self, message: Request | Response, flow: Flow, now: float) -> None:
        """Take one message that arrived on ``flow``.

        Does not raise: a message that cannot be used is logged and dropped.
        Produces output: call :meth:`datagrams_to_send` and :meth:`events`.
        """
        try:
            if isinstance(message, Request):
                self._receive_request(message, flow, now)
            else:
                self._receive_response(message, now)
        except ParseError as exc:
            # A typed view the parser did not check (e.g. on a message a test
            # or an extension built by hand) failed: the message is unusable.
            self._drop(message, exc.reason)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first.

        Produces output: call :meth:`datagrams_to_send` and :meth:`events`.
        """
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, txn, timer = heapq.heappop(heap)
            if token == txn.resend_token:
                txn.resend_timer, txn.resend_token = None, 0
            elif token == txn.end_token:
                txn.end_timer, txn.end_token = None, 0
            else:
                self._stale -= 1
                continue
            if self._debug:
                logger.debug("- %s %s Timer %s", txn.machine.value, txn.key, timer.value)
            self._peer_input(txn, timer.input, now, None, None)

    def transport_failed(self, flow: Flow, now: float) -> None:
        """The shell could not send on, or connect to, ``flow`` (RFC 3261 §17.1.4, §17.2.4).

        Every transaction that sends on ``flow`` takes a transport error: those
        still waiting on it end with TransportFailed.
        Produces output: call :meth:`events`.
        """
        if self._debug:
            logger.debug("! transport failed on %s", flow)
        for txn in list(self._by_flow.get(flow, ())):
            self._peer_input(txn, Input.TRANSPORT_ERROR, now, None, None)

    # -- inputs from the TU ----------------------------------------------------

    def send_request(self, request: Request, flow: Flow, now: float) -> TransactionKey:
        """Start a client transaction that sends ``request`` on ``flow``.

        The caller has put its own top Via, with a fresh ``z9hG4bK`` branch.
        Produces output: call :meth:`datagrams_to_send`.

        Raises:
            LocalProtocolError: the request is an ACK (use :meth:`send_stateless`),
                has no such Via, or its branch names a live transaction.
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("an ACK starts no transaction: use send_stateless()")
        try:
            branch = request.via.branch if "via" in request.headers else None
            cseq = request.cseq
        except ParseError as exc:
            raise LocalProtocolError(f"cannot send this request: {exc.reason}") from exc
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("the top Via needs a branch starting with z9hG4bK")
        if cseq.method != method:
            raise LocalProtocolError("CSeq method differs from the request method")
        key = TransactionKey(branch, method)
        if key in self._client:
            raise LocalProtocolError(f"client transaction {branch} {method} already exists")
        machine = Machine.ICT if method == "INVITE" else Machine.NICT
        txn = _Transaction(key, machine, flow)
        txn.request_bytes = bytes(request)
        if machine is Machine.ICT:
            txn.ack = _ack_template(request)
        self._client[key] = txn
        self._start(txn, now, None, None)
        return key

    def send_response(
        self, response: Response, now: float, key: TransactionKey | None = None
    ) -> None:
        """Send ``response`` through the server transaction it answers.

        The transaction is ``key``, the one the TU was given with the request,
        or else the one named by the response's top Via and CSeq (the Via and
        CSeq of the request, §8.2.6.2). While an INVITE server transaction is
        Accepted, each 2xx passes through: the TU retransmits 2xx responses
        itself (§13.3.1.4, RFC 6026).
        Produces output: call :meth:`datagrams_to_send`.

        Raises:
            LocalProtocolError: no live server transaction matches, or its state
                does not allow this response (e.g. a second final response).
        """
        if key is None:
            try:
                key = _server_key(response, response.cseq.method)
            except (ParseError, IndexError) as exc:
                raise LocalProtocolError(f"cannot match this response: {exc}") from exc
        txn = self._server.get(key)
        if txn is None:
            raise LocalProtocolError(f"no server transaction for {response.status} ({key})")
        row = transition(txn.machine, txn.state, _response_input(response.status))
        self._step(txn, row, now, response, None)

    def send_stateless(self, message: Request | Response, flow: Flow) -> None:
        """Send ``message`` on ``flow`` outside any transaction.

        For the ACK to a 2xx (§13.2.2.4, §17.1.1.3: a transaction of its own,
        which nothing retransmits or answers) and for anything else the TU sends
        statelessly. Produces output: call :meth:`datagrams_to_send`.
        """
        self._datagrams.append((bytes(message), flow))

    def terminate(self, key: TransactionKey, now: float) -> None:
        """Forget a transaction now, without sending anything.

        For a transaction no timer ends: an INVITE client transaction in
        Proceeding whose CANCEL went unanswered when the proxy's Timer C fired
        (§16.8 lets the proxy "terminate the client transaction"). Unknown keys
        are ignored. Produces output: call :meth:`events`.
        """
        txn = (self._server if key.is_server else self._client).get(key)
        if txn is not None:
            self._set_state(txn, TERMINATED[txn.machine])
            self._forget(txn)

    # -- matching ----------------------------------------------------------------

    def _receive_request(self, request: Request, flow: Flow, now: float) -> None:
        if "via" not in request.headers:
            self._drop(request, "no Via")
            return
        method = request.method
        is_ack = method == "ACK"
        key = _server_key(request, "INVITE" if is_ack else method)
        txn = self._server.get(key)
        if txn is not None and not _legacy_match(txn, request):
            if not is_ack:
                # RFC 2543 fields equal but Request-URI or To tag not: a
                # different request under the same name; we cannot hold both.
                self._drop(request, f"collides with {txn.machine.value} {key}")
                return
            txn = None
        if is_ack:
            if txn is None:
                # The ACK for a 2xx, or one whose transaction is gone: the TU's.
                self._events.append(RequestReceived(request, flow, None))
            else:
                self._peer_input(txn, Input.ACK, now, request, flow)
        elif txn is not None:
            self._peer_input(txn, Input.REQUEST, now, request, flow)
        else:
            self._new_server_transaction(request, flow, key, now)

    def _new_server_transaction(
        self, request: Request, flow: Flow, key: TransactionKey, now: float
    ) -> None:
        method = request.method
        txn = _Transaction(key, Machine.IST if method == "INVITE" else Machine.NIST, flow)
        if key.legacy:
            # Kept, not read later from the request: the TU edits that to forward it.
            txn.ruri = request.ruri
            txn.to_tag = request.to.tag
        if method == "CANCEL":
            txn.cancels = self._cancelled(request)
        self._server[key] = txn
        self._start(txn, now, request, flow)

    def _cancelled(self, cancel: Request) -> TransactionKey | None:
        """The INVITE server transaction a CANCEL matches (§9.2), if it is alive."""
        invite = self._server.get(_server_key(cancel, "INVITE"))
        if invite is None or not _legacy_match(invite, cancel):
            return None
        return invite.key

    def _receive_response(self, response: Response, now: float) -> None:
        branch = response.via.branch if "via" in response.headers else None
        txn = None
        if branch is not None:
            txn = self._client.get(TransactionKey(branch, response.cseq.method))
        if txn is None:
            if self._report_stray:
                self._events.append(ResponseReceived(response, None))
            else:
                self._drop(response, "matches no client transaction (RFC 6026: not forwarded)")
            return
        self._peer_input(txn, _response_input(response.status), now, response, None)

    # -- running the tables ------------------------------------------------------

    def _start(
        self, txn: _Transaction, now: float, message: Request | None, flow: Flow | None
    ) -> None:
        self._by_flow.setdefault(txn.flow, {})[txn] = None
        if self._debug:
            logger.debug("= %s %s new %s", txn.machine.value, txn.key, txn.state.value)
        self._step(txn, INITIAL[txn.machine], now, message, flow)

    def _peer_input(
        self,
        txn: _Transaction,
        input_: Input,
        now: float,
        message: Request | Response | None,
        flow: Flow | None,
    ) -> None:
        """Apply an input from the network, the shell or the clock: never raises."""
        row = TRANSITIONS[txn.machine].get((txn.state, input_))
        if row is None:  # the tables cover every peer input; this is a safety net
            if self._debug:
                logger.debug(
                    "! %s %s %s: no transition for %s",
                    txn.machine.value,
                    txn.key,
                    txn.state.value,
                    input_.value,
                )
            return
        self._step(txn, row, now, message, flow)

    def _step(
        self,
        txn: _Transaction,
        row: Transition,
        now: float,
        message: Request | Response | None,
        flow: Flow | None,
    ) -> None:
        self._set_state(txn, row.next)
        for action in row.actions:
            self._actions[action](txn, now, message, flow)
        if txn.state is TERMINATED[txn.machine]:
            self._forget(txn)

    def _set_state(self, txn: _Transaction, state: State) -> None:
        """The one place a state changes: log it, stop the timers it does not run."""
        if state is txn.state:
            return
        if self._debug:
            logger.debug("= %s %s %s->%s", txn.machine.value, txn.key, txn.state.value, state.value)
        txn.state = state
        live = LIVE_TIMERS.get(state, _NO_TIMERS)
        if txn.resend_timer is not None and txn.resend_timer not in live:
            txn.resend_timer, txn.resend_token = None, 0
            self._stale += 1
        if txn.end_timer is not None and txn.end_timer not in live:
            txn.end_timer, txn.end_token = None, 0
            self._stale += 1
        self._sweep()

    def _forget(self, txn: _Transaction) -> None:
        """Drop a Terminated transaction from every index; nothing of it remains."""
        table = self._server if txn.key.is_server else self._client
        if table.get(txn.key) is txn:
            del table[txn.key]
        on_flow = self._by_flow.get(txn.flow)
        if on_flow is not None:
            on_flow.pop(txn, None)
            if not on_flow:
                del self._by_flow[txn.flow]
        self._stale += (txn.resend_token != 0) + (txn.end_token != 0)
        txn.resend_timer, txn.resend_token = None, 0
        txn.end_timer, txn.end_token = None, 0
        self._sweep()
        self._events.append(TransactionTerminated(txn.key))

    # -- timers ------------------------------------------------------------------

    def _arm(self, txn: _Transaction, timer: Timer, delay: float, now: float) -> None:
        """Start ``timer``, in place of the one running in its slot, if any."""
        token = next(self._tokens)
        if timer in _RESEND_TIMERS:
            if txn.resend_token:
                self._stale += 1
            txn.resend_timer, txn.resend_token = timer, token
        else:
            if txn.end_token:
                self._stale += 1
            txn.end_timer, txn.end_token = timer, token
        heapq.heappush(self._heap, (now + delay, token, txn, timer))

    def _sweep(self) -> None:
        """Rebuild the heap without stale entries once they dominate it."""
        heap = self._heap
        if self._stale > _SWEEP_MIN and 2 * self._stale > len(heap):
            # In place: handle_timer() may be iterating over this very list.
            heap[:] = [
                entry
                for entry in heap
                if entry[1] == entry[2].resend_token or entry[1] == entry[2].end_token
            ]
            heapq.heapify(heap)
            self._stale = 0

    # -- actions (one handler per states.Action) ------------------------------

    def _send_request(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        self._datagrams.append((txn.request_bytes, txn.flow))

    def _send_response(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        assert isinstance(message, Response)
        data = bytes(message)
        txn.response_bytes = data
        if message.status >= 200 and txn.key.legacy:
            # RFC 2543 ACK matching compares with the To tag of this response.
            txn.response_to_tag = message.to.tag
        self._datagrams.append((data, txn.flow))

    def _send_trying(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        assert isinstance(message, Request)  # the INVITE that starts the transaction
        data = trying_bytes(message)
        txn.response_bytes = data
        self._datagrams.append((data, txn.flow))

    def _resend_response(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        if txn.response_bytes is not None:
            self._datagrams.append((txn.response_bytes, txn.flow))

    def _send_ack(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        if txn.ack_bytes is None:
            assert isinstance(message, Response) and txn.ack is not None
            txn.ack_bytes = bytes(_ack(txn.ack, message))
        self._datagrams.append((txn.ack_bytes, txn.flow))

    def _pass_to_tu(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        if isinstance(message, Response):
            self._events.append(ResponseReceived(message, txn.key))
        elif isinstance(message, Request) and flow is not None:
            if message.method == "ACK":
                self._events.append(RequestReceived(message, flow, None))
            else:
                self._events.append(RequestReceived(message, flow, txn.key, txn.cancels))

    def _report_timeout(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        self._events.append(TransactionTimedOut(txn.key))

    def _report_transport_error(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        self._events.append(TransportFailed(txn.key))

    def _start_retransmit(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        # §17.1.1.2, §17.1.2.2, §17.2.1: retransmit timers run only where the
        # transport itself is unreliable.
        if not txn.flow.reliable:
            txn.interval = self.config.t1
            self._arm(txn, RETRANSMIT_TIMER[txn.machine], txn.interval, now)

    def _double(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        txn.interval *= 2
        self._arm(txn, RETRANSMIT_TIMER[txn.machine], txn.interval, now)

    def _double_up_to_t2(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        txn.interval = min(2 * txn.interval, self.config.t2)
        self._arm(txn, RETRANSMIT_TIMER[txn.machine], txn.interval, now)

    def _hold_at_t2(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        txn.interval = self.config.t2
        self._arm(txn, RETRANSMIT_TIMER[txn.machine], txn.interval, now)

    def _start_timeout(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        timer = TIMEOUT_TIMER[txn.machine]
        self._arm(txn, timer, self.config.duration(timer, txn.flow.reliable), now)

    def _start_wait(
        self, txn: _Transaction, now: float, message: Request | Response | None, flow: Flow | None
    ) -> None:
        timer = WAIT_TIMER[txn.state]
        delay = self.config.duration(timer, txn.flow.reliable)
        if delay > 0:
            self._arm(txn, timer, delay, now)
        else:
            # Table 4: "0s for reliable transports" - nothing to absorb, end now.
            self._set_state(txn, TERMINATED[txn.machine])

    # -- logging -------------------------------------------------------------------

    def _drop(self, message: Request | Response, reason: str) -> None:
        if self._debug:
            logger.debug("! drop %r: %s", message, reason)


# -- keys and matching (§17.1.3, §17.2.3) ---------------------------------------


def _server_key(message: Request | Response, method: str) -> TransactionKey:
    """The server transaction a message belongs to, ``method`` being the INVITE's
    for an ACK or a CANCEL's target (§17.2.3, §9.2). Raises ParseError without Via."""
    via = message.via
    branch = via.branch
    host = via.host.lower()
    sent_by = host if via.port is None else f"{host}:{via.port}"
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return TransactionKey(branch, method, sent_by)
    # RFC 2543 (§17.2.3): the branch, if any, is not unique. The key holds the
    # fields a response repeats too (so send_response finds the transaction):
    # Call-ID, From tag, CSeq number and the top Via's transport; Request-URI
    # and To tag, which a response does not carry, are checked by _legacy_match.
    legacy = (message.call_id, message.from_.tag or "", str(message.cseq.number), via.transport)
    return TransactionKey(branch or "", method, sent_by, legacy)


def _legacy_match(txn: _Transaction, request: Request) -> bool:
    """The rest of RFC 2543 matching: Request-URI (by §19.1.4) and To tag.

    "The ACK request matches a transaction if [...] the To tag of the ACK
    matches the To tag of the response sent by the server transaction"; any
    other request (a retransmission, or a CANCEL against the INVITE, §9.2) must
    carry the To tag of the request that created the transaction.
    """
    if not txn.key.legacy:
        return True
    if request.ruri != txn.ruri:
        return False
    expected = txn.response_to_tag if request.method == "ACK" else txn.to_tag
    return request.to.tag == expected


def _response_input(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    if status < 300:
        return Input.SUCCESS
    return Input.FAILURE


# -- messages the layer builds itself --------------------------------------------


def _ack_template(invite: Request) -> _AckTemplate:
    return _AckTemplate(
        uri=invite.uri,
        via=invite.headers.values("via")[0],
        from_=str(invite.from_),
        call_id=invite.call_id,
        cseq=invite.cseq.number,
        routes=tuple(invite.headers.get_all("route")),
    )


def _ack(template: _AckTemplate, response: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, CSeq method
    ACK, To from the response (it carries the UAS's tag), the INVITE's top Via
    only (the ACK is hop-by-hop and shares the INVITE's branch), and the
    INVITE's Route headers so it follows the same path. Max-Forwards is not in
    §17.1.1.3's list, but every request carries one (§8.1.1).
    """
    pairs = [("Via", template.via), ("Max-Forwards", "70")]
    pairs.extend(("Route", route) for route in template.routes)
    pairs += [
        ("From", template.from_),
        ("To", str(response.to)),
        ("Call-ID", template.call_id),
        ("CSeq", f"{template.cseq} ACK"),
        ("Content-Length", "0"),
    ]
    return Request("ACK", template.uri, Headers.of(pairs))
