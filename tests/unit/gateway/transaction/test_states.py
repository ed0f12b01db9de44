"""The §17 transition tables: complete for peer input, closed, and as the RFC draws them."""

from __future__ import annotations

from enum import Enum

import pytest

from gateway.sip.errors import LocalProtocolError
from gateway.transaction.states import (
    INITIAL,
    LIVE_TIMERS,
    PEER_INPUTS,
    RETRANSMIT_TIMER,
    TERMINATED,
    TIMEOUT_TIMER,
    TRANSITIONS,
    WAIT_TIMER,
    Action,
    IctState,
    Input,
    IstState,
    Machine,
    NictState,
    NistState,
    State,
    Timer,
    transition,
)

STATES: dict[Machine, type[Enum]] = {
    Machine.ICT: IctState,
    Machine.NICT: NictState,
    Machine.IST: IstState,
    Machine.NIST: NistState,
}
TIMER_INPUTS = {timer.input for timer in Timer}
RETRANSMIT_ACTIONS = {
    Action.START_RETRANSMIT,
    Action.DOUBLE,
    Action.DOUBLE_UP_TO_T2,
    Action.HOLD_AT_T2,
}
MACHINES = pytest.mark.parametrize("machine", list(Machine))


def live_states(machine: Machine) -> list[State]:
    states: list[State] = list(STATES[machine])
    return [state for state in states if state is not TERMINATED[machine]]


@MACHINES
def test_every_peer_input_has_a_row_in_every_live_state(machine: Machine) -> None:
    # Peer input never raises: nothing the network sends can be an illegal input.
    table = TRANSITIONS[machine]
    for state in live_states(machine):
        for input_ in PEER_INPUTS[machine]:
            assert (state, input_) in table, (state, input_)


@MACHINES
def test_every_running_timer_has_a_row(machine: Machine) -> None:
    table = TRANSITIONS[machine]
    for state in live_states(machine):
        for timer in LIVE_TIMERS.get(state, frozenset()):
            assert (state, timer.input) in table, (state, timer)


@MACHINES
def test_timer_rows_only_where_the_timer_runs(machine: Machine) -> None:
    for state, input_ in TRANSITIONS[machine]:
        if input_ in TIMER_INPUTS:
            assert input_ in {t.input for t in LIVE_TIMERS.get(state, frozenset())}


@MACHINES
def test_rows_stay_inside_their_machine(machine: Machine) -> None:
    kind = STATES[machine]
    for (state, _), row in TRANSITIONS[machine].items():
        assert isinstance(state, kind)
        assert isinstance(row.next, kind)
        assert state is not TERMINATED[machine]
    assert isinstance(INITIAL[machine].next, kind)


@MACHINES
def test_timer_actions_have_a_timer_to_start(machine: Machine) -> None:
    rows = [*TRANSITIONS[machine].values(), INITIAL[machine]]
    for row in rows:
        actions = set(row.actions)
        if actions & RETRANSMIT_ACTIONS:
            assert RETRANSMIT_TIMER[machine] in LIVE_TIMERS[row.next]
        if Action.START_TIMEOUT in actions:
            assert TIMEOUT_TIMER[machine] in LIVE_TIMERS[row.next]
        if Action.START_WAIT in actions:
            assert WAIT_TIMER[row.next] in LIVE_TIMERS[row.next]
            assert row.actions[-1] is Action.START_WAIT  # it may end the transaction


@MACHINES
def test_every_state_is_reachable(machine: Machine) -> None:
    seen = {INITIAL[machine].next}
    frontier = list(seen)
    while frontier:
        state = frontier.pop()
        for (source, _), row in TRANSITIONS[machine].items():
            if source is state and row.next not in seen:
                seen.add(row.next)
                frontier.append(row.next)
    assert seen == set(STATES[machine])


def test_tu_misuse_is_a_local_protocol_error() -> None:
    # A second final response, a 1xx after a 2xx: the TU's mistakes.
    with pytest.raises(LocalProtocolError, match="IST in state Completed cannot take 2xx"):
        transition(Machine.IST, IstState.COMPLETED, Input.SUCCESS)
    with pytest.raises(LocalProtocolError):
        transition(Machine.IST, IstState.ACCEPTED, Input.PROVISIONAL)
    with pytest.raises(LocalProtocolError):
        transition(Machine.NIST, NistState.COMPLETED, Input.FAILURE)


def test_ict_rows_follow_figure_5_and_rfc_6026() -> None:
    assert transition(Machine.ICT, IctState.CALLING, Input.TIMER_B) == (
        IctState.TERMINATED,
        (Action.REPORT_TIMEOUT,),
    )
    assert transition(Machine.ICT, IctState.CALLING, Input.SUCCESS).next is IctState.ACCEPTED
    assert transition(Machine.ICT, IctState.ACCEPTED, Input.SUCCESS).actions == (Action.PASS_TO_TU,)
    assert transition(Machine.ICT, IctState.COMPLETED, Input.FAILURE).actions == (Action.SEND_ACK,)
    # Timer B is not counted in Proceeding (Timer C is the proxy's).
    assert LIVE_TIMERS.get(IctState.PROCEEDING, frozenset()) == frozenset()


def test_ist_rows_follow_figure_7_and_rfc_6026() -> None:
    assert INITIAL[Machine.IST].actions == (Action.SEND_TRYING, Action.PASS_TO_TU)
    assert transition(Machine.IST, IstState.COMPLETED, Input.ACK).next is IstState.CONFIRMED
    assert transition(Machine.IST, IstState.ACCEPTED, Input.REQUEST).actions == ()
    assert transition(Machine.IST, IstState.ACCEPTED, Input.SUCCESS).actions == (
        Action.SEND_RESPONSE,
    )


def test_nict_backs_off_to_t2_and_holds_there_after_a_provisional() -> None:
    assert (
        Action.DOUBLE_UP_TO_T2 in transition(Machine.NICT, NictState.TRYING, Input.TIMER_E).actions
    )
    assert (
        Action.HOLD_AT_T2 in transition(Machine.NICT, NictState.PROCEEDING, Input.TIMER_E).actions
    )
    # INVITE: "without cap" (§17.1.1.2).
    assert Action.DOUBLE in transition(Machine.ICT, IctState.CALLING, Input.TIMER_A).actions


def test_timer_inputs_by_letter() -> None:
    assert Timer.A.input is Input.TIMER_A
    assert Timer.M.input is Input.TIMER_M
