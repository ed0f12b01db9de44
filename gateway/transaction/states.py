"""The four transaction state machines of RFC 3261 §17, with RFC 6026's Accepted state.

Theory of operation
===================

A SIP transaction is one request and the responses to it (RFC 3261 §17). Each
side of it runs one of four small machines:

- **ICT**, the INVITE client transaction (§17.1.1, Figure 5);
- **NICT**, the non-INVITE client transaction (§17.1.2, Figure 6);
- **IST**, the INVITE server transaction (§17.2.1, Figure 7);
- **NIST**, the non-INVITE server transaction (§17.2.2, Figure 8).

Two rules, borrowed from h11's ``_state.py``:

1. Everything that decides a transition lives in this file, as data: the
   ``*_TRANSITIONS`` tables map ``(state, input)`` to ``(next state, actions)``,
   :data:`INITIAL` says how each machine starts, :data:`LIVE_TIMERS` which timers
   run in which state. :mod:`gateway.transaction.layer` only looks rows up and
   carries the actions out; it never tests a state itself.
2. This file knows nothing of messages, bytes, flows or clocks. The layer turns a
   message into an :class:`Input` (a response's class, a retransmitted request,
   an ACK, a timer that fired, a transport failure) and an :class:`Action` back
   into bytes, events and deadlines.

Inputs
------

The same :class:`Input` means "arrived from the peer" on the client side and
"handed down by the TU" for a server transaction's responses: ``PROVISIONAL``
is a 1xx received by an ICT, and a 1xx the proxy asks an IST to send. Which
inputs come from the network is listed in :data:`PEER_INPUTS`; every table has a
row for each of them in every live state (a test checks it), so nothing a peer
sends can be an illegal input. A row missing for a TU input is the TU's mistake
and :func:`transition` raises :class:`~gateway.sip.errors.LocalProtocolError`.

Timers
------

Every timer belongs to the states listed in :data:`LIVE_TIMERS`; entering a state
cancels the running timers it does not list, which is how "Timer B only counts
while Calling" or "Timer G stops once the ACK came" are written. The timers are
roles, one letter each (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2, RFC 6026):

==============  =====  =====  =====  =====
role            ICT    NICT   IST    NIST
==============  =====  =====  =====  =====
retransmit      A      E      G      --
give up         B      F      H      --
linger          D, M   K      I, L   J
==============  =====  =====  =====  =====

Retransmit timers run only on unreliable flows; a linger timer whose duration is
zero (D, I, J and K on a reliable flow, RFC 3261 Table 4) ends the transaction at
once. Durations come from :class:`~gateway.transaction.layer.TimerConfig`.

The Accepted state (RFC 6026)
-----------------------------

RFC 3261 ended an INVITE transaction on a 2xx, so a retransmitted INVITE looked
like a new request and a retransmitted 2xx matched nothing. RFC 6026 keeps both
INVITE machines alive in **Accepted** for 64*T1 (Timer L on the server, Timer M
on the client): the IST absorbs INVITE retransmissions and passes through the
2xx retransmissions the TU sends (the TU, not the transaction, makes a 2xx
reliable, §13.3.1.4); the ICT hands every 2xx to the TU, so a proxy forwards
each one upstream.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from gateway.sip.errors import LocalProtocolError

__all__ = [
    "ICT_TRANSITIONS",
    "INITIAL",
    "IST_TRANSITIONS",
    "LIVE_TIMERS",
    "NICT_TRANSITIONS",
    "NIST_TRANSITIONS",
    "PEER_INPUTS",
    "RETRANSMIT_TIMER",
    "TERMINATED",
    "TIMEOUT_TIMER",
    "TRANSITIONS",
    "WAIT_TIMER",
    "Action",
    "IctState",
    "Input",
    "IstState",
    "Machine",
    "NictState",
    "NistState",
    "State",
    "Timer",
    "Transition",
    "transition",
]


class _Enum(Enum):
    """An Enum hashed by identity: members are singletons, and the transition
    tables are looked up for every message, where Enum's own ``__hash__`` (a
    Python-level hash of the name) showed up in profiles."""

    __hash__ = object.__hash__


class Machine(_Enum):
    """Which of the four §17 machines a transaction runs."""

    ICT = "ICT"
    NICT = "NICT"
    IST = "IST"
    NIST = "NIST"


class IctState(_Enum):
    """INVITE client transaction (RFC 3261 Figure 5, with RFC 6026's Accepted)."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class NictState(_Enum):
    """Non-INVITE client transaction (RFC 3261 Figure 6)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class IstState(_Enum):
    """INVITE server transaction (RFC 3261 Figure 7, with RFC 6026's Accepted)."""

    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class NistState(_Enum):
    """Non-INVITE server transaction (RFC 3261 Figure 8)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


State = IctState | NictState | IstState | NistState


class Input(_Enum):
    """What can happen to a transaction."""

    REQUEST = "request"
    """Server: the request again (a retransmission, §17.2.3 matched it)."""
    ACK = "ACK"
    """IST: an ACK that matched the transaction."""
    PROVISIONAL = "1xx"
    """Client: a 1xx arrived. Server: the TU sends a 1xx."""
    SUCCESS = "2xx"
    """Client: a 2xx arrived. Server: the TU sends a 2xx."""
    FAILURE = "3xx-6xx"
    """Client: a final non-2xx arrived. Server: the TU sends one."""
    TRANSPORT_ERROR = "transport error"
    """The flow the transaction sends on failed (§17.1.4, §17.2.4)."""
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"


class Timer(_Enum):
    """The timers of RFC 3261 Table 4 and RFC 6026 (L and M), by letter."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"

    @property
    def input(self) -> Input:
        """The input a transaction sees when this timer fires."""
        return _TIMER_INPUTS[self]


_TIMER_INPUTS = {timer: Input[f"TIMER_{timer.name}"] for timer in Timer}


class Action(_Enum):
    """What the layer does on a transition, in the order a row lists them."""

    SEND_REQUEST = "send request"
    """Client: (re)send the request's bytes, serialized once."""
    SEND_RESPONSE = "send response"
    """Server: send the TU's response; it becomes the one to resend."""
    SEND_TRYING = "send 100 Trying"
    """IST: build a 100 from the INVITE (§8.2.6) and send it at once (§17.2.1)."""
    RESEND_RESPONSE = "resend last response"
    """Server: send the last response again (§17.2.1, §17.2.2)."""
    SEND_ACK = "send ACK"
    """ICT: send the ACK for the non-2xx final response (built once, §17.1.1.3)."""
    PASS_TO_TU = "pass to TU"
    """Report the message: ResponseReceived (client) or RequestReceived (server)."""
    REPORT_TIMEOUT = "report timeout"
    """Report TransactionTimedOut."""
    REPORT_TRANSPORT_ERROR = "report transport error"
    """Report TransportFailed."""
    START_RETRANSMIT = "start A/E/G at T1"
    """Start the machine's retransmit timer at T1 (unreliable flows only)."""
    DOUBLE = "double A"
    """Restart Timer A at twice its last value: no cap for INVITE (§17.1.1.2)."""
    DOUBLE_UP_TO_T2 = "double E/G up to T2"
    """Restart Timer E or G at min(2 * last value, T2) (§17.1.2.2, §17.2.1)."""
    HOLD_AT_T2 = "restart E at T2"
    """Restart Timer E at T2: a provisional came, so retransmit slowly (§17.1.2.2)."""
    START_TIMEOUT = "start B/F/H"
    """Start the machine's give-up timer, 64*T1."""
    START_WAIT = "start D/I/J/K/L/M"
    """Start the linger timer of the state just entered; zero ends the transaction."""


class Transition(NamedTuple):
    """One table row's result."""

    next: State
    actions: tuple[Action, ...]


Table = dict[tuple[State, Input], Transition]

_I = IctState
_N = NictState
_S = IstState
_T = NistState
A = Action


# ICT: RFC 3261 §17.1.1.2 and Figure 5; Accepted from RFC 6026.
ICT_TRANSITIONS: Table = {
    # Calling: the INVITE is out, Timer A retransmits it (unreliable flows only).
    (_I.CALLING, Input.TIMER_A): Transition(_I.CALLING, (A.SEND_REQUEST, A.DOUBLE)),
    # "If the client transaction is still in the Calling state when Timer B
    # fires, [it] SHOULD inform the TU that a timeout has occurred."
    (_I.CALLING, Input.TIMER_B): Transition(_I.TERMINATED, (A.REPORT_TIMEOUT,)),
    # A provisional stops retransmission: from here on the proxy's Timer C
    # (§16.8), not Timer B, bounds the wait.
    (_I.CALLING, Input.PROVISIONAL): Transition(_I.PROCEEDING, (A.PASS_TO_TU,)),
    (_I.CALLING, Input.SUCCESS): Transition(_I.ACCEPTED, (A.PASS_TO_TU, A.START_WAIT)),
    # The ACK goes out before the TU hears of the response: §17.1.1.3 makes the
    # ACK the transaction's job, whatever the TU does next.
    (_I.CALLING, Input.FAILURE): Transition(_I.COMPLETED, (A.SEND_ACK, A.PASS_TO_TU, A.START_WAIT)),
    (_I.CALLING, Input.TRANSPORT_ERROR): Transition(_I.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (_I.PROCEEDING, Input.PROVISIONAL): Transition(_I.PROCEEDING, (A.PASS_TO_TU,)),
    (_I.PROCEEDING, Input.SUCCESS): Transition(_I.ACCEPTED, (A.PASS_TO_TU, A.START_WAIT)),
    (_I.PROCEEDING, Input.FAILURE): Transition(
        _I.COMPLETED, (A.SEND_ACK, A.PASS_TO_TU, A.START_WAIT)
    ),
    # Figure 5 draws no transport error out of Proceeding because nothing is sent
    # there; but on a connection-oriented flow the responses ride the failed
    # connection, so waiting for Timer C would be pointless (§17.1.4).
    (_I.PROCEEDING, Input.TRANSPORT_ERROR): Transition(_I.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # Completed: "Any retransmissions of the final response that are received
    # while in the Completed state MUST cause the ACK to be re-passed to the
    # transport layer for retransmission, but the newly received response MUST
    # NOT be passed up to the TU." Late 1xx/2xx are absorbed.
    (_I.COMPLETED, Input.FAILURE): Transition(_I.COMPLETED, (A.SEND_ACK,)),
    (_I.COMPLETED, Input.PROVISIONAL): Transition(_I.COMPLETED, ()),
    (_I.COMPLETED, Input.SUCCESS): Transition(_I.COMPLETED, ()),
    (_I.COMPLETED, Input.TIMER_D): Transition(_I.TERMINATED, ()),
    (_I.COMPLETED, Input.TRANSPORT_ERROR): Transition(_I.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # Accepted (RFC 6026): every 2xx goes up, so a proxy forwards the 2xx
    # retransmissions of a UAS whose first 2xx or whose ACK was lost.
    (_I.ACCEPTED, Input.SUCCESS): Transition(_I.ACCEPTED, (A.PASS_TO_TU,)),
    (_I.ACCEPTED, Input.PROVISIONAL): Transition(_I.ACCEPTED, ()),
    (_I.ACCEPTED, Input.FAILURE): Transition(_I.ACCEPTED, ()),
    (_I.ACCEPTED, Input.TIMER_M): Transition(_I.TERMINATED, ()),
    # The TU already holds a 2xx; a 2xx retransmission may still come on another
    # connection (responses match by branch, not flow), so Accepted stays.
    (_I.ACCEPTED, Input.TRANSPORT_ERROR): Transition(_I.ACCEPTED, ()),
}

# NICT: RFC 3261 §17.1.2.2 and Figure 6.
NICT_TRANSITIONS: Table = {
    (_N.TRYING, Input.TIMER_E): Transition(_N.TRYING, (A.SEND_REQUEST, A.DOUBLE_UP_TO_T2)),
    (_N.TRYING, Input.TIMER_F): Transition(_N.TERMINATED, (A.REPORT_TIMEOUT,)),
    (_N.TRYING, Input.PROVISIONAL): Transition(_N.PROCEEDING, (A.PASS_TO_TU,)),
    (_N.TRYING, Input.SUCCESS): Transition(_N.COMPLETED, (A.PASS_TO_TU, A.START_WAIT)),
    (_N.TRYING, Input.FAILURE): Transition(_N.COMPLETED, (A.PASS_TO_TU, A.START_WAIT)),
    (_N.TRYING, Input.TRANSPORT_ERROR): Transition(_N.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # "If Timer E fires while in the Proceeding state, the request MUST be
    # passed to the transport layer for retransmission, and Timer E MUST be
    # reset with a value of T2 seconds."
    (_N.PROCEEDING, Input.TIMER_E): Transition(_N.PROCEEDING, (A.SEND_REQUEST, A.HOLD_AT_T2)),
    (_N.PROCEEDING, Input.TIMER_F): Transition(_N.TERMINATED, (A.REPORT_TIMEOUT,)),
    (_N.PROCEEDING, Input.PROVISIONAL): Transition(_N.PROCEEDING, (A.PASS_TO_TU,)),
    (_N.PROCEEDING, Input.SUCCESS): Transition(_N.COMPLETED, (A.PASS_TO_TU, A.START_WAIT)),
    (_N.PROCEEDING, Input.FAILURE): Transition(_N.COMPLETED, (A.PASS_TO_TU, A.START_WAIT)),
    (_N.PROCEEDING, Input.TRANSPORT_ERROR): Transition(_N.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # Completed "buffer[s] any additional response retransmissions"; Timer K
    # (T4 on unreliable flows, zero on reliable ones) ends it.
    (_N.COMPLETED, Input.PROVISIONAL): Transition(_N.COMPLETED, ()),
    (_N.COMPLETED, Input.SUCCESS): Transition(_N.COMPLETED, ()),
    (_N.COMPLETED, Input.FAILURE): Transition(_N.COMPLETED, ()),
    (_N.COMPLETED, Input.TIMER_K): Transition(_N.TERMINATED, ()),
    # Figure 6 has no transport error in Completed: nothing is sent there.
    (_N.COMPLETED, Input.TRANSPORT_ERROR): Transition(_N.COMPLETED, ()),
}

# IST: RFC 3261 §17.2.1 and Figure 7; Accepted from RFC 6026.
IST_TRANSITIONS: Table = {
    # "If a request retransmission is received while in the Proceeding state,
    # the most recent provisional response that was received from the TU MUST be
    # passed to the transport layer for retransmission." There always is one:
    # the 100 Trying the transaction sent itself.
    (_S.PROCEEDING, Input.REQUEST): Transition(_S.PROCEEDING, (A.RESEND_RESPONSE,)),
    # An ACK before any final response acknowledges nothing.
    (_S.PROCEEDING, Input.ACK): Transition(_S.PROCEEDING, ()),
    (_S.PROCEEDING, Input.PROVISIONAL): Transition(_S.PROCEEDING, (A.SEND_RESPONSE,)),
    (_S.PROCEEDING, Input.SUCCESS): Transition(_S.ACCEPTED, (A.SEND_RESPONSE, A.START_WAIT)),
    (_S.PROCEEDING, Input.FAILURE): Transition(
        _S.COMPLETED, (A.SEND_RESPONSE, A.START_RETRANSMIT, A.START_TIMEOUT)
    ),
    (_S.PROCEEDING, Input.TRANSPORT_ERROR): Transition(_S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # Completed: the final response is resent on each INVITE retransmission and
    # on Timer G, until the ACK comes or Timer H gives up.
    (_S.COMPLETED, Input.REQUEST): Transition(_S.COMPLETED, (A.RESEND_RESPONSE,)),
    (_S.COMPLETED, Input.TIMER_G): Transition(_S.COMPLETED, (A.RESEND_RESPONSE, A.DOUBLE_UP_TO_T2)),
    # "If an ACK is received while the server transaction is in the Completed
    # state, the server transaction MUST transition to the Confirmed state."
    # The ACK for a non-2xx is hop-by-hop: it is absorbed, never passed up.
    (_S.COMPLETED, Input.ACK): Transition(_S.CONFIRMED, (A.START_WAIT,)),
    (_S.COMPLETED, Input.TIMER_H): Transition(_S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (_S.COMPLETED, Input.TRANSPORT_ERROR): Transition(_S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # Confirmed exists "to absorb any additional ACK messages that arrive,
    # triggered from retransmissions of the final response"; Timer I ends it.
    (_S.CONFIRMED, Input.REQUEST): Transition(_S.CONFIRMED, ()),
    (_S.CONFIRMED, Input.ACK): Transition(_S.CONFIRMED, ()),
    (_S.CONFIRMED, Input.TIMER_I): Transition(_S.TERMINATED, ()),
    (_S.CONFIRMED, Input.TRANSPORT_ERROR): Transition(_S.CONFIRMED, ()),
    # Accepted (RFC 6026 §8.7): INVITE retransmissions are absorbed (the TU
    # retransmits its 2xx itself), each 2xx the TU sends goes out, an ACK that
    # matches (one from an RFC 2543 peer, or a UA that reuses the INVITE's
    # branch) is the ACK for the 2xx and goes up.
    (_S.ACCEPTED, Input.REQUEST): Transition(_S.ACCEPTED, ()),
    (_S.ACCEPTED, Input.ACK): Transition(_S.ACCEPTED, (A.PASS_TO_TU,)),
    (_S.ACCEPTED, Input.SUCCESS): Transition(_S.ACCEPTED, (A.SEND_RESPONSE,)),
    (_S.ACCEPTED, Input.TIMER_L): Transition(_S.TERMINATED, ()),
    (_S.ACCEPTED, Input.TRANSPORT_ERROR): Transition(_S.ACCEPTED, ()),
}

# NIST: RFC 3261 §17.2.2 and Figure 8.
NIST_TRANSITIONS: Table = {
    # "Once in the Trying state, any further request retransmissions are
    # discarded": there is no response yet to resend, and RFC 4320 forbids
    # a transaction-generated 100 to a non-INVITE.
    (_T.TRYING, Input.REQUEST): Transition(_T.TRYING, ()),
    (_T.TRYING, Input.PROVISIONAL): Transition(_T.PROCEEDING, (A.SEND_RESPONSE,)),
    (_T.TRYING, Input.SUCCESS): Transition(_T.COMPLETED, (A.SEND_RESPONSE, A.START_WAIT)),
    (_T.TRYING, Input.FAILURE): Transition(_T.COMPLETED, (A.SEND_RESPONSE, A.START_WAIT)),
    (_T.TRYING, Input.TRANSPORT_ERROR): Transition(_T.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (_T.PROCEEDING, Input.REQUEST): Transition(_T.PROCEEDING, (A.RESEND_RESPONSE,)),
    (_T.PROCEEDING, Input.PROVISIONAL): Transition(_T.PROCEEDING, (A.SEND_RESPONSE,)),
    (_T.PROCEEDING, Input.SUCCESS): Transition(_T.COMPLETED, (A.SEND_RESPONSE, A.START_WAIT)),
    (_T.PROCEEDING, Input.FAILURE): Transition(_T.COMPLETED, (A.SEND_RESPONSE, A.START_WAIT)),
    (_T.PROCEEDING, Input.TRANSPORT_ERROR): Transition(_T.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    (_T.COMPLETED, Input.REQUEST): Transition(_T.COMPLETED, (A.RESEND_RESPONSE,)),
    (_T.COMPLETED, Input.TIMER_J): Transition(_T.TERMINATED, ()),
    (_T.COMPLETED, Input.TRANSPORT_ERROR): Transition(_T.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
}

TRANSITIONS: dict[Machine, Table] = {
    Machine.ICT: ICT_TRANSITIONS,
    Machine.NICT: NICT_TRANSITIONS,
    Machine.IST: IST_TRANSITIONS,
    Machine.NIST: NIST_TRANSITIONS,
}

INITIAL: dict[Machine, Transition] = {
    # "The initial state, Calling, MUST be entered when the TU initiates a new
    # client transaction with an INVITE request" (§17.1.1.2); likewise Trying.
    Machine.ICT: Transition(_I.CALLING, (A.SEND_REQUEST, A.START_RETRANSMIT, A.START_TIMEOUT)),
    Machine.NICT: Transition(_N.TRYING, (A.SEND_REQUEST, A.START_RETRANSMIT, A.START_TIMEOUT)),
    # §17.2.1: the IST "MUST generate a 100 (Trying) response unless it knows
    # that the TU will generate a provisional or final response within 200 ms".
    # A proxy forwards first and hears back later, so it never knows: send now.
    Machine.IST: Transition(_S.PROCEEDING, (A.SEND_TRYING, A.PASS_TO_TU)),
    Machine.NIST: Transition(_T.TRYING, (A.PASS_TO_TU,)),
}

TERMINATED: dict[Machine, State] = {
    Machine.ICT: _I.TERMINATED,
    Machine.NICT: _N.TERMINATED,
    Machine.IST: _S.TERMINATED,
    Machine.NIST: _T.TERMINATED,
}

PEER_INPUTS: dict[Machine, frozenset[Input]] = {
    Machine.ICT: frozenset(
        {Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE, Input.TRANSPORT_ERROR}
    ),
    Machine.NICT: frozenset(
        {Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE, Input.TRANSPORT_ERROR}
    ),
    Machine.IST: frozenset({Input.REQUEST, Input.ACK, Input.TRANSPORT_ERROR}),
    Machine.NIST: frozenset({Input.REQUEST, Input.TRANSPORT_ERROR}),
}
"""The inputs that come from the network (or the shell), never from the TU."""

RETRANSMIT_TIMER: dict[Machine, Timer] = {
    Machine.ICT: Timer.A,
    Machine.NICT: Timer.E,
    Machine.IST: Timer.G,
}
TIMEOUT_TIMER: dict[Machine, Timer] = {
    Machine.ICT: Timer.B,
    Machine.NICT: Timer.F,
    Machine.IST: Timer.H,
}
WAIT_TIMER: dict[State, Timer] = {
    _I.COMPLETED: Timer.D,
    _I.ACCEPTED: Timer.M,
    _N.COMPLETED: Timer.K,
    _S.CONFIRMED: Timer.I,
    _S.ACCEPTED: Timer.L,
    _T.COMPLETED: Timer.J,
}
"""The linger timer :attr:`Action.START_WAIT` starts, by the state just entered."""

LIVE_TIMERS: dict[State, frozenset[Timer]] = {
    _I.CALLING: frozenset({Timer.A, Timer.B}),
    _I.COMPLETED: frozenset({Timer.D}),
    _I.ACCEPTED: frozenset({Timer.M}),
    _N.TRYING: frozenset({Timer.E, Timer.F}),
    _N.PROCEEDING: frozenset({Timer.E, Timer.F}),
    _N.COMPLETED: frozenset({Timer.K}),
    _S.COMPLETED: frozenset({Timer.G, Timer.H}),
    _S.CONFIRMED: frozenset({Timer.I}),
    _S.ACCEPTED: frozenset({Timer.L}),
    _T.COMPLETED: frozenset({Timer.J}),
}
"""The timers that may run in each state; a state not listed runs none."""


def transition(machine: Machine, state: State, input_: Input) -> Transition:
    """The row for ``input_`` in ``state``.

    Raises:
        LocalProtocolError: the table has no such row. Peer inputs always have
            one, so this means the TU asked for something the machine forbids,
            e.g. a second final response.
    """
    try:
        return TRANSITIONS[machine][state, input_]
    except KeyError:
        raise LocalProtocolError(
            f"{machine.value} in state {state.value} cannot take {input_.value}"
        ) from None


# The short aliases only make the tables above readable; they are not API.
del _I, _N, _S, _T, A
