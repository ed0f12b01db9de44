"""TransactionLayer: two layers wired in memory, time driven only through ``now``."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.errors import LocalProtocolError
from gateway.sip.flow import Flow
from gateway.sip.headers import CSeq, Headers
from gateway.sip.message import Request, Response, parse_message
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
from gateway.transaction.states import IctState, IstState, NictState, NistState, Timer
from tests.helpers.pairs import (
    BRANCH,
    CALL_ID,
    TO_TAG,
    UAC_ADDR,
    UAS_ADDR,
    Pair,
    ack_for_2xx,
    client_and_server,
    discard,
    lose_all,
    loss_pattern,
    mirror,
    parsed,
    request,
    response_to,
    start_lines,
    transfer,
)

T1, T2, T4 = 0.5, 4.0, 5.0
SENT_BY = f"{UAC_ADDR[0]}:{UAC_ADDR[1]}"
INVITE_LINE = "INVITE sip:bob@biloxi.example.com SIP/2.0"


def start_invite(
    p: Pair, inv: Request | None = None, now: float = 0.0
) -> tuple[TransactionKey, RequestReceived]:
    """UAC sends an INVITE, the UAS receives it and its 100 reaches the UAC."""
    key = p.uac.send_request(inv or request(), p.uac_flow, now)
    assert start_lines(p.to_uas(now)) == [INVITE_LINE]
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    assert start_lines(p.to_uac(now)) == ["SIP/2.0 100 Trying"]
    assert [e.response.status for e in p.uac.events() if isinstance(e, ResponseReceived)] == [100]
    return key, received


def server_key(event: RequestReceived) -> TransactionKey:
    assert event.key is not None
    return event.key


def statuses(layer: TransactionLayer) -> list[int]:
    return [e.response.status for e in layer.events() if isinstance(e, ResponseReceived)]


def run_timers(layer: TransactionLayer, until: float = 1e9) -> list[float]:
    """Fire every timer in turn; return the deadline of each datagram sent."""
    times = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        times += [deadline] * len(discard(layer))
    return times


# -- INVITE: 2xx, Accepted, Timers L and M ---------------------------------------


def test_invite_2xx_happy_path_through_accepted_on_both_sides() -> None:
    p = client_and_server()
    inv = request()
    ckey, received = start_invite(p, inv)
    skey = server_key(received)
    assert skey == TransactionKey(BRANCH, "INVITE", SENT_BY)
    assert ckey == TransactionKey(BRANCH, "INVITE")
    assert received.flow == p.uas_flow and received.cancels is None
    assert p.uac.state(ckey) is IctState.PROCEEDING
    assert p.uac.get_timer() is None  # Proceeding runs no timer: Timer C is the proxy's

    p.uas.send_response(response_to(received.request, 180), 0.1)
    p.to_uac(0.1)
    assert statuses(p.uac) == [180]

    ok = response_to(received.request, 200)
    p.uas.send_response(ok, 0.2)
    assert p.uas.state(skey) is IstState.ACCEPTED
    p.to_uac(0.2)
    [ok_event] = p.uac.events()
    assert isinstance(ok_event, ResponseReceived)
    assert ok_event.key == ckey and ok_event.response.status == 200
    assert p.uac.state(ckey) is IctState.ACCEPTED

    # RFC 6026: the TU retransmits its 2xx; Accepted passes it through, and the
    # client side hands every 2xx up so a proxy forwards each one.
    p.uas.send_response(ok, 0.7)
    assert start_lines(p.to_uac(0.7)) == ["SIP/2.0 200 OK"]
    assert statuses(p.uac) == [200]

    # The ACK for a 2xx is a transaction of its own: sent statelessly, reported
    # with key None, and the IST stays Accepted.
    ack = ack_for_2xx(inv, ok)
    p.uac.send_stateless(ack, p.uac_flow)
    p.to_uas(0.8)
    [ack_event] = p.uas.events()
    assert isinstance(ack_event, RequestReceived)
    assert ack_event.request.method == "ACK" and ack_event.key is None
    assert p.uas.state(skey) is IstState.ACCEPTED

    # Timer M (client) and Timer L (server): 64*T1 after the 2xx.
    assert p.uac.get_timer() == 0.2 + 64 * T1
    assert p.uas.get_timer() == 0.2 + 64 * T1
    p.uac.handle_timer(0.2 + 64 * T1 - 0.01)
    assert p.uac.events() == [] and len(p.uac) == 1
    p.uac.handle_timer(0.2 + 64 * T1)
    p.uas.handle_timer(0.2 + 64 * T1)
    assert p.uac.events() == [TransactionTerminated(ckey)]
    assert p.uas.events() == [TransactionTerminated(skey)]
    assert len(p.uac) == len(p.uas) == 0
    assert p.uac.get_timer() is None and p.uas.get_timer() is None
    assert p.uac.state(ckey) is None


def test_first_2xx_is_reported_with_the_client_key() -> None:
    p = client_and_server()
    ckey, received = start_invite(p)
    p.uas.send_response(response_to(received.request, 200), 0.1)
    p.to_uac(0.1)
    [event] = p.uac.events()
    assert isinstance(event, ResponseReceived)
    assert event.key == ckey and event.response.status == 200


def test_2xx_straight_from_calling_goes_to_accepted() -> None:
    p = client_and_server()
    key = p.uac.send_request(request(), p.uac_flow, 0.0)
    p.to_uas(0.0)
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    discard(p.uas)  # the 100 Trying is lost
    p.uas.send_response(response_to(received.request, 200), 0.1)
    p.to_uac(0.1)
    assert statuses(p.uac) == [200]
    assert p.uac.state(key) is IctState.ACCEPTED
    assert p.uac.get_timer() == 0.1 + 64 * T1  # Timers A and B were cancelled


def test_invite_retransmission_resends_last_provisional_then_is_absorbed() -> None:
    p = client_and_server()
    inv = request()
    _, received = start_invite(p, inv)
    p.uas.send_response(response_to(received.request, 180), 0.1)
    discard(p.uas)

    # §17.2.1: in Proceeding the most recent provisional goes out again.
    p.uas.receive(parsed(inv), p.uas_flow, 1.0)
    assert start_lines(discard(p.uas)) == ["SIP/2.0 180 Ringing"]
    assert p.uas.events() == []

    # RFC 6026: in Accepted a retransmitted INVITE is absorbed entirely.
    p.uas.send_response(response_to(received.request, 200), 1.1)
    discard(p.uas)
    p.uas.receive(parsed(inv), p.uas_flow, 1.5)
    assert discard(p.uas) == [] and p.uas.events() == []


# -- INVITE: non-2xx final, the ACK ----------------------------------------------


def test_non_2xx_final_is_acked_by_the_client_transaction() -> None:
    p = client_and_server()
    route = "<sip:p1.example.com;lr>"
    inv = request(routes=(route,))
    ckey, received = start_invite(p, inv)
    skey = server_key(received)
    p.uas.send_response(response_to(received.request, 486), 0.1)
    p.to_uac(0.1)
    assert statuses(p.uac) == [486]
    assert p.uac.state(ckey) is IctState.COMPLETED

    [(data, flow)] = p.uac.datagrams_to_send()
    assert flow == p.uac_flow
    ack = parse_message(data)
    assert isinstance(ack, Request)
    # §17.1.1.3: same Request-URI, Call-ID, From, CSeq number; To from the
    # response; only the INVITE's top Via; the INVITE's Route headers.
    assert ack.method == "ACK" and ack.uri == inv.uri
    assert [str(v) for v in ack.vias] == [str(inv.via)]
    assert ack.cseq == CSeq(1, "ACK")
    assert ack.call_id == CALL_ID
    assert str(ack.from_) == str(inv.from_)
    assert ack.to.tag == TO_TAG
    assert ack.headers.get_all("route") == [route]
    assert ack.content_length == 0

    # The IST absorbs the ACK: Completed -> Confirmed, nothing reported.
    p.uas.receive(ack, mirror(flow), 0.2)
    assert p.uas.events() == [] and discard(p.uas) == []
    assert p.uas.state(skey) is IstState.CONFIRMED
    assert p.uas.get_timer() == 0.2 + T4  # Timer I
    p.uas.handle_timer(0.2 + T4)
    assert p.uas.events() == [TransactionTerminated(skey)]

    # Timer D on the client: > 32 s on UDP.
    assert p.uac.get_timer() == 0.1 + 32.0
    p.uac.handle_timer(0.1 + 32.0)
    assert p.uac.events() == [TransactionTerminated(ckey)]


def test_retransmitted_final_response_is_re_acked_not_passed_up() -> None:
    p = client_and_server()
    ckey, received = start_invite(p)
    busy = response_to(received.request, 486)
    p.uas.send_response(busy, 0.1)
    p.to_uac(0.1)
    p.uac.events()
    [(first_ack, _)] = p.uac.datagrams_to_send()

    p.uac.receive(parsed(busy), p.uac_flow, 1.0)
    assert p.uac.events() == []
    [(second_ack, _)] = p.uac.datagrams_to_send()
    assert second_ack is first_ack  # built and serialized once
    assert p.uac.state(ckey) is IctState.COMPLETED


def test_lost_ack_is_recovered_by_timer_g() -> None:
    p = client_and_server()
    _, received = start_invite(p)
    skey = server_key(received)
    p.uas.send_response(response_to(received.request, 486), 0.0)
    [busy] = p.to_uac(0.0)
    p.uac.events()
    assert p.to_uas(0.0, drop=lose_all) == []  # the ACK is lost

    # Timer G: the 486 again after T1, the very same bytes; the UAC re-ACKs.
    assert p.uas.get_timer() == T1
    p.uas.handle_timer(T1)
    assert p.to_uac(T1) == [busy]
    assert p.uac.events() == []
    assert start_lines(p.to_uas(T1)) == ["ACK sip:bob@biloxi.example.com SIP/2.0"]
    assert p.uas.state(skey) is IstState.CONFIRMED
    assert p.uas.events() == []


def test_timer_g_doubles_up_to_t2_and_timer_h_gives_up() -> None:
    p = client_and_server()
    _, received = start_invite(p)
    skey = server_key(received)
    p.uas.send_response(response_to(received.request, 486), 0.0)
    discard(p.uas)
    times = run_timers(p.uas)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    # Timer H: the ACK never came.
    assert p.uas.events() == [
        TransactionTimedOut(skey),
        TransactionTerminated(skey),
    ]


# -- client timers: A, B, E, F ------------------------------------------------------


def test_timer_a_doubles_without_cap_until_timer_b() -> None:
    p = client_and_server()
    inv = request()
    key = p.uac.send_request(inv, p.uac_flow, 0.0)
    discard(p.uac)
    assert run_timers(p.uac) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert p.uac.events() == [TransactionTimedOut(key), TransactionTerminated(key)]


def test_timer_b_is_one_handle_timer_call() -> None:
    p = client_and_server()
    inv = request()
    key = p.uac.send_request(inv, p.uac_flow, 0.0)
    p.uac.handle_timer(0.0 + 64 * T1)
    assert p.uac.events() == [TransactionTimedOut(key), TransactionTerminated(key)]
    assert len(p.uac) == 0 and p.uac.get_timer() is None


def test_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    p = client_and_server()
    options = request("OPTIONS")
    key = p.uac.send_request(options, p.uac_flow, 0.0)
    discard(p.uac)
    assert run_timers(p.uac) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert p.uac.events() == [TransactionTimedOut(key), TransactionTerminated(key)]


def test_timer_e_is_t2_after_a_provisional() -> None:
    p = client_and_server()
    key = p.uac.send_request(request("OPTIONS"), p.uac_flow, 0.0)
    p.to_uas(0.0)
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    p.uas.send_response(response_to(received.request, 100), 0.1)
    p.to_uac(0.1)
    assert p.uac.state(key) is NictState.PROCEEDING
    # §17.1.2.2: Timer E, already armed at T1, then retransmits every T2.
    assert run_timers(p.uac) == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert isinstance(p.uac.events()[1], TransactionTimedOut)


def test_timer_f_times_out_a_non_invite() -> None:
    p = client_and_server("tcp")
    bye = request("BYE", to_tag=TO_TAG)
    key = p.uac.send_request(bye, p.uac_flow, 0.0)
    p.uac.handle_timer(64 * T1)
    assert discard(p.uac) == [bytes(bye)]  # only the first transmission: reliable flow
    assert p.uac.events() == [TransactionTimedOut(key), TransactionTerminated(key)]


def test_a_late_tick_fires_each_timer_once_and_rearms_from_now() -> None:
    p = client_and_server()
    p.uac.send_request(request("OPTIONS"), p.uac_flow, 0.0)
    discard(p.uac)
    p.uac.handle_timer(10.0)  # E was due at 0.5: one retransmission, not five
    assert len(discard(p.uac)) == 1
    assert p.uac.get_timer() == 10.0 + 2 * T1


# -- loss ----------------------------------------------------------------------------


def test_lost_request_is_recovered_by_retransmission() -> None:
    p = client_and_server()
    key = p.uac.send_request(request(), p.uac_flow, 0.0)
    assert p.to_uas(0.0, drop=lose_all) == []
    assert p.uas.events() == []
    p.uac.handle_timer(T1)
    assert start_lines(p.to_uas(T1)) == [INVITE_LINE]
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    p.to_uac(T1)
    assert statuses(p.uac) == [100]
    assert p.uac.state(key) is IctState.PROCEEDING
    assert p.uac.get_timer() is None  # no more retransmissions


def test_loss_pattern_every_other_datagram() -> None:
    p = client_and_server()
    p.uac.send_request(request("OPTIONS"), p.uac_flow, 0.0)
    drop = loss_pattern([True, False])
    assert p.to_uas(0.0, drop=drop) == []
    p.uac.handle_timer(T1)
    assert len(p.to_uas(T1, drop=drop)) == 1
    p.uac.handle_timer(3 * T1)
    assert p.to_uas(3 * T1, drop=drop) == []
    # The UAS saw the request once and absorbed nothing else.
    assert len(p.uas.events()) == 1


def test_lost_final_response_is_resent_on_request_retransmission() -> None:
    p = client_and_server()
    bye = request("BYE", to_tag=TO_TAG)
    ckey = p.uac.send_request(bye, p.uac_flow, 0.0)
    p.to_uas(0.0)
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    p.uas.send_response(response_to(received.request, 200), 0.1)
    [ok] = [data for data, _ in p.uas.datagrams_to_send()]  # lost on the way

    p.uac.handle_timer(T1)
    p.to_uas(T1)
    assert p.uas.events() == []  # absorbed: the TU sees the BYE once
    [(again, _)] = p.uas.datagrams_to_send()
    assert again is ok  # the stored bytes, not a new serialization
    p.uas.receive(parse_message(ok), p.uas_flow, T1)  # (no-op: a stray 200 at the UAS)
    p.uac.receive(parse_message(again), p.uac_flow, T1)
    assert statuses(p.uac) == [200]
    assert p.uac.state(ckey) is NictState.COMPLETED
    assert p.uac.get_timer() == T1 + T4  # Timer K
    assert p.uas.get_timer() == 0.1 + 64 * T1  # Timer J


def test_request_bytes_are_serialized_once() -> None:
    p = client_and_server()
    p.uac.send_request(request(), p.uac_flow, 0.0)
    [(first, _)] = p.uac.datagrams_to_send()
    p.uac.handle_timer(T1)
    [(second, _)] = p.uac.datagrams_to_send()
    assert second is first


def test_nist_absorbs_retransmissions_while_trying() -> None:
    p = client_and_server()
    options = request("OPTIONS")
    p.uac.send_request(options, p.uac_flow, 0.0)
    p.to_uas(0.0)
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    assert discard(p.uas) == []  # no automatic 100 to a non-INVITE (RFC 4320)
    p.uas.receive(parsed(options), p.uas_flow, 0.5)
    assert discard(p.uas) == [] and p.uas.events() == []
    assert p.uas.state(server_key(received)) is NistState.TRYING
    p.uas.send_response(response_to(received.request, 100), 0.6)
    discard(p.uas)
    p.uas.receive(parsed(options), p.uas_flow, 1.0)
    assert start_lines(discard(p.uas)) == ["SIP/2.0 100 Trying"]


# -- reliable flows ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_reliable_flow_no_retransmissions_and_zero_d_i(transport: str) -> None:
    p = client_and_server(transport)
    ckey = p.uac.send_request(request(transport=transport.upper()), p.uac_flow, 0.0)
    assert p.uac.get_timer() == 64 * T1  # Timer B only, no Timer A
    p.to_uas(0.0)
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    skey = server_key(received)
    p.to_uac(0.0)
    p.uac.events()
    p.uas.send_response(response_to(received.request, 486), 0.1)
    assert p.uas.get_timer() == 0.1 + 64 * T1  # Timer H only, no Timer G
    p.to_uac(0.1)
    # Timer D is zero: the ICT ends as soon as it has sent the ACK.
    assert statuses_and_ends(p.uac) == ([486], [ckey])
    assert len(p.uac) == 0
    p.to_uas(0.2)
    # Timer I is zero: the ACK confirms and ends the IST at once.
    assert p.uas.events() == [TransactionTerminated(skey)]
    assert len(p.uas) == 0 and p.uas.get_timer() is None


def test_reliable_flow_zero_j_k() -> None:
    p = client_and_server("tcp")
    ckey = p.uac.send_request(request("OPTIONS", transport="TCP"), p.uac_flow, 0.0)
    p.to_uas(0.0)
    [received] = p.uas.events()
    assert isinstance(received, RequestReceived)
    p.uas.send_response(response_to(received.request, 200), 0.1)
    assert p.uas.events() == [TransactionTerminated(server_key(received))]  # J = 0
    p.to_uac(0.1)
    assert statuses_and_ends(p.uac) == ([200], [ckey])  # K = 0
    assert len(p.uac) == len(p.uas) == 0


def statuses_and_ends(layer: TransactionLayer) -> tuple[list[int], list[TransactionKey]]:
    events = layer.events()
    return (
        [e.response.status for e in events if isinstance(e, ResponseReceived)],
        [e.key for e in events if isinstance(e, TransactionTerminated)],
    )


# -- timer configuration ---------------------------------------------------------------


def test_timer_durations_follow_table_4() -> None:
    config = TimerConfig()
    unreliable = {timer: config.duration(timer, False) for timer in Timer}
    assert unreliable == {
        Timer.A: T1,
        Timer.B: 32.0,
        Timer.D: 32.0,
        Timer.E: T1,
        Timer.F: 32.0,
        Timer.G: T1,
        Timer.H: 32.0,
        Timer.I: T4,
        Timer.J: 32.0,
        Timer.K: T4,
        Timer.L: 32.0,
        Timer.M: 32.0,
    }
    for timer in (Timer.D, Timer.I, Timer.J, Timer.K):
        assert config.duration(timer, True) == 0.0
    fast = TimerConfig(t1=0.1, t2=1.0, t4=2.0)
    assert fast.duration(Timer.B, False) == pytest.approx(6.4)
    assert fast.duration(Timer.D, False) == 32.0  # "> 32 s" whatever T1 is


def test_timer_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TimerConfig(t1=0.0)
    with pytest.raises(ValueError):
        TimerConfig(t1=5.0, t2=4.0)
    with pytest.raises(ValueError):
        TimerConfig(t4=-1.0)


def test_custom_t1_scales_the_timers() -> None:
    p = client_and_server(config=TimerConfig(t1=0.1, t2=0.4, t4=1.0))
    p.uac.send_request(request("OPTIONS"), p.uac_flow, 0.0)
    discard(p.uac)
    times = run_timers(p.uac)
    assert times[:4] == pytest.approx([0.1, 0.3, 0.7, 1.1])
    assert p.uac.get_timer() is None and len(p.uac) == 0


# -- 100 Trying ------------------------------------------------------------------------


def test_ist_sends_100_trying_at_once_built_per_8_2_6() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    inv = request(extra=(("Timestamp", "54"),))
    inv.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKproxy")
    layer.receive(parsed(inv), flow, 0.0)
    [(data, out)] = layer.datagrams_to_send()  # before the TU has done anything
    assert out == flow
    trying = parse_message(data)
    assert isinstance(trying, Response)
    assert (trying.status, trying.reason) == (100, "Trying")
    assert [str(v) for v in trying.vias] == [str(v) for v in inv.vias]
    assert trying.to.tag is None  # §17.2.1: SHOULD NOT add a tag to a 100
    assert str(trying.from_) == str(inv.from_)
    assert trying.call_id == inv.call_id and trying.cseq == inv.cseq
    assert trying.headers.get("timestamp") == "54"
    assert trying.content_length == 0 and trying.body == b""
    assert "contact" not in trying.headers


# -- CANCEL -------------------------------------------------------------------------------


def test_cancel_matches_the_invite_server_transaction() -> None:
    p = client_and_server()
    ikey, received = start_invite(p)
    # §9.1: the CANCEL has the INVITE's branch, Call-ID, To, From, CSeq number.
    cancel = request("CANCEL")
    ckey = p.uac.send_request(cancel, p.uac_flow, 1.0)
    assert ckey == TransactionKey(BRANCH, "CANCEL") != ikey
    p.to_uas(1.0)
    [event] = p.uas.events()
    assert isinstance(event, RequestReceived)
    assert event.key == TransactionKey(BRANCH, "CANCEL", SENT_BY)
    assert event.cancels == received.key

    # The proxy answers 200 to the CANCEL and 487 to the INVITE.
    p.uas.send_response(response_to(event.request, 200), 1.1)
    p.uas.send_response(response_to(received.request, 487), 1.1)
    p.to_uac(1.1)
    events = p.uac.events()
    assert [(e.key, e.response.status) for e in events if isinstance(e, ResponseReceived)] == [
        (ckey, 200),
        (ikey, 487),
    ]
    assert start_lines(p.to_uas(1.1)) == ["ACK sip:bob@biloxi.example.com SIP/2.0"]
    assert p.uas.state(server_key(received)) is IstState.CONFIRMED


def test_cancel_matching_nothing_has_cancels_none() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(parsed(request("CANCEL", branch="z9hG4bKunknown")), flow, 0.0)
    [event] = layer.events()
    assert isinstance(event, RequestReceived)
    assert event.key is not None and event.cancels is None  # the proxy answers 481
    # A CANCEL is non-INVITE: no automatic 100.
    assert layer.datagrams_to_send() == []


def test_cancel_from_another_sender_does_not_match() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(parsed(request()), flow, 0.0)
    layer.events()
    other = request("CANCEL")
    other.headers.set("Via", f"SIP/2.0/UDP 192.0.2.99:5060;branch={BRANCH}")
    layer.receive(parsed(other), flow, 0.1)
    [event] = layer.events()
    assert isinstance(event, RequestReceived) and event.cancels is None


# -- RFC 2543 matching -----------------------------------------------------------------


@pytest.mark.parametrize("branch", [None, "1234abcd"])
def test_rfc2543_invite_retransmission_response_and_ack(branch: str | None) -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    inv = request(branch=branch)
    layer.receive(parsed(inv), flow, 0.0)
    [received] = layer.events()
    assert isinstance(received, RequestReceived) and received.key is not None
    key = received.key
    assert key.legacy and key.branch == (branch or "")
    assert start_lines(discard(layer)) == ["SIP/2.0 100 Trying"]

    layer.receive(parsed(inv), flow, 0.5)  # a retransmission: same fields
    assert layer.events() == []
    assert start_lines(discard(layer)) == ["SIP/2.0 100 Trying"]

    # The TU's response finds the transaction by Via, Call-ID, From tag, CSeq.
    layer.send_response(response_to(received.request, 486), 1.0)
    assert start_lines(discard(layer)) == ["SIP/2.0 486 Busy Here"]

    # An ACK with another To tag is not for this transaction: it goes up.
    stray = request("ACK", branch=branch, cseq_method="ACK", to_tag="other")
    layer.receive(parsed(stray), flow, 1.1)
    [event] = layer.events()
    assert isinstance(event, RequestReceived) and event.key is None
    assert layer.state(key) is IstState.COMPLETED

    # The ACK with the To tag of our 486 is absorbed.
    ack = request("ACK", branch=branch, to_tag=TO_TAG)
    layer.receive(parsed(ack), flow, 1.2)
    assert layer.events() == [] and discard(layer) == []
    assert layer.state(key) is IstState.CONFIRMED


def test_rfc2543_request_uri_and_to_tag_are_part_of_the_match() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(parsed(request(branch=None)), flow, 0.0)
    [received] = layer.events()
    discard(layer)
    # Same Call-ID/From tag/CSeq/Via but another Request-URI: a different
    # request by §17.2.3, which cannot share the key; dropped, not absorbed.
    layer.receive(parsed(request(branch=None, uri="sip:carol@chicago.example.com")), flow, 0.1)
    assert layer.events() == [] and discard(layer) == []
    # URIs equal by §19.1.4 (scheme and host case) still match: absorbed.
    layer.receive(parsed(request(branch=None, uri="SIP:bob@BILOXI.example.com")), flow, 0.2)
    assert layer.events() == []
    assert start_lines(discard(layer)) == ["SIP/2.0 100 Trying"]
    assert isinstance(received, RequestReceived)


def test_rfc2543_cancel_and_ack_to_2xx() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(parsed(request(branch=None)), flow, 0.0)
    [received] = layer.events()
    assert isinstance(received, RequestReceived)
    layer.receive(parsed(request("CANCEL", branch=None)), flow, 0.1)
    [cancel] = layer.events()
    assert isinstance(cancel, RequestReceived)
    assert cancel.cancels == received.key and cancel.key != received.key

    # RFC 2543 ACKs for a 2xx reuse the INVITE's Via: it matches the IST in
    # Accepted, which passes it up (RFC 6026) with key None.
    layer.send_response(response_to(received.request, 200), 0.2)
    layer.receive(parsed(request("ACK", branch=None, to_tag=TO_TAG)), flow, 0.3)
    [ack] = layer.events()
    assert isinstance(ack, RequestReceived)
    assert ack.request.method == "ACK" and ack.key is None


# -- stray and odd input ------------------------------------------------------------------


def test_stray_response_is_dropped() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAC_ADDR, UAS_ADDR)
    layer.receive(parsed(response_to(request(branch="z9hG4bKnobody"), 200)), flow, 0.0)
    assert layer.events() == [] and layer.datagrams_to_send() == []
    assert layer.get_timer() is None


def test_response_with_other_cseq_method_is_stray() -> None:
    p = client_and_server()
    p.uac.send_request(request(), p.uac_flow, 0.0)
    discard(p.uac)
    p.uac.receive(parsed(response_to(request("CANCEL"), 200)), p.uac_flow, 0.1)
    assert p.uac.events() == []


def test_stray_response_reported_when_asked() -> None:
    layer = TransactionLayer(report_stray_responses=True)
    flow = Flow("udp", UAC_ADDR, UAS_ADDR)
    stray = parsed(response_to(request(branch="z9hG4bKnobody"), 200))
    layer.receive(stray, flow, 0.0)
    assert layer.events() == [ResponseReceived(stray, None)]  # type: ignore[arg-type]


def test_stray_ack_goes_up_with_key_none() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(parsed(request("ACK", branch="z9hG4bKlate", to_tag=TO_TAG)), flow, 0.0)
    [event] = layer.events()
    assert isinstance(event, RequestReceived) and event.key is None
    assert len(layer) == 0


def test_ack_before_a_final_response_is_ignored() -> None:
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(parsed(request()), flow, 0.0)
    [received] = layer.events()
    discard(layer)
    layer.receive(parsed(request("ACK", to_tag=TO_TAG)), flow, 0.1)
    assert layer.events() == [] and discard(layer) == []
    assert isinstance(received, RequestReceived) and received.key is not None
    assert layer.state(received.key) is IstState.PROCEEDING


def test_receive_drops_hand_built_messages_it_cannot_read() -> None:
    # parse_message refuses these; a message built in code can still reach us.
    layer = TransactionLayer()
    flow = Flow("udp", UAS_ADDR, UAC_ADDR)
    layer.receive(Request("OPTIONS", "sip:x@example.com", Headers()), flow, 0.0)
    layer.receive(Response(200, "OK", Headers()), flow, 0.0)
    via = ("Via", f"SIP/2.0/UDP 192.0.2.1;branch={BRANCH}")
    layer.receive(Response(200, "OK", Headers.of([via, ("CSeq", "x")])), flow, 0.0)
    # An RFC 2543 request needs From, Call-ID and CSeq to be matched at all.
    legacy = Headers.of([("Via", "SIP/2.0/UDP 192.0.2.1"), ("CSeq", "1 OPTIONS")])
    layer.receive(Request("OPTIONS", "sip:x@example.com", legacy), flow, 0.0)
    assert layer.events() == [] and layer.datagrams_to_send() == [] and len(layer) == 0


# -- transport failures ----------------------------------------------------------------------


def test_transport_failure_fails_client_transactions_on_that_flow() -> None:
    p = client_and_server("tcp")
    inv = request(transport="TCP")
    key = p.uac.send_request(inv, p.uac_flow, 0.0)
    other = Flow("tcp", UAC_ADDR, ("192.0.2.30", 5060), 7)
    okey = p.uac.send_request(request("OPTIONS", branch="z9hG4bKother"), other, 0.0)
    discard(p.uac)
    p.uac.transport_failed(p.uac_flow, 1.0)
    assert p.uac.events() == [TransportFailed(key), TransactionTerminated(key)]
    assert len(p.uac) == 1 and p.uac.state(okey) is NictState.TRYING
    p.uac.transport_failed(Flow("tcp", UAC_ADDR, UAS_ADDR, 99), 1.0)  # no such flow
    assert p.uac.events() == []


def test_transport_failure_spares_accepted_and_fails_waiting_servers() -> None:
    p = client_and_server("tcp")
    ikey, received = start_invite(p, request(transport="TCP"))
    p.uas.send_response(response_to(received.request, 200), 0.1)
    p.to_uac(0.1)
    p.uac.events()
    p.uac.transport_failed(p.uac_flow, 0.2)  # the 2xx is already with the TU
    assert p.uac.events() == [] and p.uac.state(ikey) is IctState.ACCEPTED

    p.uac.send_request(request("BYE", branch="z9hG4bKbye", to_tag=TO_TAG), p.uac_flow, 1.0)
    p.to_uas(1.0)
    [bye] = p.uas.events()
    assert isinstance(bye, RequestReceived) and bye.key is not None
    p.uas.transport_failed(p.uas_flow, 1.1)
    assert p.uas.events() == [TransportFailed(bye.key), TransactionTerminated(bye.key)]
    assert p.uas.state(server_key(received)) is IstState.ACCEPTED


# -- TU misuse ---------------------------------------------------------------------------------


def test_tu_misuse_raises_local_protocol_error() -> None:
    p = client_and_server()
    _, received = start_invite(p)
    with pytest.raises(LocalProtocolError, match="no server transaction"):
        p.uas.send_response(response_to(request(branch="z9hG4bKnone"), 200), 0.0)
    p.uas.send_response(response_to(received.request, 486), 0.1)
    with pytest.raises(LocalProtocolError, match="Completed"):
        p.uas.send_response(response_to(received.request, 200), 0.2)
    with pytest.raises(LocalProtocolError, match="ACK"):
        p.uac.send_request(request("ACK"), p.uac_flow, 0.0)
    with pytest.raises(LocalProtocolError, match="z9hG4bK"):
        p.uac.send_request(request(branch="1234"), p.uac_flow, 0.0)
    with pytest.raises(LocalProtocolError, match="already exists"):
        p.uac.send_request(request(), p.uac_flow, 0.0)
    with pytest.raises(LocalProtocolError, match="CSeq"):
        p.uac.send_request(request("BYE", cseq_method="INVITE"), p.uac_flow, 0.0)
    with pytest.raises(LocalProtocolError):
        p.uac.send_request(Request("OPTIONS", "sip:x@example.com", Headers()), p.uac_flow, 0.0)
    with pytest.raises(LocalProtocolError):
        p.uas.send_response(Response(200, "OK", Headers()), 0.0)


def test_provisional_after_2xx_is_refused() -> None:
    p = client_and_server()
    _, received = start_invite(p)
    p.uas.send_response(response_to(received.request, 200), 0.1)
    with pytest.raises(LocalProtocolError):
        p.uas.send_response(response_to(received.request, 180), 0.2)


def test_terminate_ends_a_proceeding_ict() -> None:
    p = client_and_server()
    key, _ = start_invite(p)
    p.uac.terminate(key, 180.0)  # the proxy's Timer C fired, the CANCEL went unanswered
    assert p.uac.events() == [TransactionTerminated(key)]
    assert len(p.uac) == 0
    p.uac.terminate(key, 181.0)  # unknown keys are ignored
    assert p.uac.events() == []


# -- logging -----------------------------------------------------------------------------------


def test_debug_lines_use_one_char_prefixes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.transaction.layer")
    p = client_and_server()
    _, received = start_invite(p)
    p.uas.send_response(response_to(received.request, 486), 0.1)
    p.uac.send_request(request("OPTIONS", branch="z9hG4bKopt"), p.uac_flow, 0.0)
    p.uac.handle_timer(T1)
    p.uac.receive(parsed(response_to(request(branch="z9hG4bKnobody"), 200)), p.uac_flow, 1.0)
    lines = [record.getMessage() for record in caplog.records]
    assert f"= IST {BRANCH} Proceeding->Completed" in lines
    assert "- NICT z9hG4bKopt Timer E" in lines
    assert any(line.startswith("! drop <Response 200 OK>") for line in lines)


def test_debug_check_is_cached(caplog: pytest.LogCaptureFixture) -> None:
    layer = TransactionLayer()  # built while DEBUG is off
    caplog.set_level(logging.DEBUG, logger="gateway.transaction.layer")
    layer.receive(parsed(request()), Flow("udp", UAS_ADDR, UAC_ADDR), 0.0)
    assert caplog.records == []


# -- bounded state -------------------------------------------------------------------------------


def test_thousands_of_transactions_leave_nothing_behind() -> None:
    p = client_and_server()
    most_heap = 0
    for n in range(3000):
        now = n * 0.01
        p.uac.send_request(request("OPTIONS", branch=f"z9hG4bK{n}"), p.uac_flow, now)
        p.to_uas(now)
        [received] = p.uas.events()
        assert isinstance(received, RequestReceived)
        p.uas.send_response(response_to(received.request, 200), now)
        p.to_uac(now)
        p.uac.handle_timer(now)
        p.uas.handle_timer(now)
        p.uac.events()
        p.uas.events()
        most_heap = max(most_heap, len(p.uac._heap))
    # Lazy deletion stays bounded: stale entries are swept once they dominate.
    assert most_heap <= 3 * len(p.uac) + 1100
    p.uac.handle_timer(1000.0)
    p.uas.handle_timer(1000.0)
    for layer in (p.uac, p.uas):
        assert len(layer) == 0 and layer.get_timer() is None
        assert layer._heap == [] and layer._by_flow == {}


def test_heap_sweep_during_handle_timer() -> None:
    # 3000 unanswered INVITEs time out in one late tick: each fires Timer A,
    # then Timer B, leaving stale entries that trigger a sweep mid-loop.
    p = client_and_server()
    keys = [
        p.uac.send_request(request(branch=f"z9hG4bK{n}"), p.uac_flow, n * 0.001)
        for n in range(3000)
    ]
    discard(p.uac)
    p.uac.handle_timer(100.0)
    events = p.uac.events()
    assert [e.key for e in events if isinstance(e, TransactionTimedOut)] == keys
    assert [e.key for e in events if isinstance(e, TransactionTerminated)] == keys
    assert len(discard(p.uac)) == 3000  # one retransmission each, not a burst
    assert len(p.uac) == 0 and p.uac.get_timer() is None
    assert p.uac._heap == [] and p.uac._stale == 0  # every stale entry accounted for


# -- property: any sequence of inputs ----------------------------------------------------

_BRANCHES = ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc", "legacy", None]
_STATUSES = [100, 180, 200, 202, 302, 486, 503]
_FLOWS = [
    Flow("udp", UAC_ADDR, UAS_ADDR),
    Flow("tcp", UAC_ADDR, UAS_ADDR, 1),
    Flow("udp", UAC_ADDR, ("192.0.2.30", 5060)),
]


@dataclass
class World:
    """A UAC-side and a UAS-side layer, a clock, and what their TUs know."""

    uac: TransactionLayer = field(default_factory=TransactionLayer)
    uas: TransactionLayer = field(default_factory=TransactionLayer)
    now: float = 0.0
    served: dict[TransactionKey, Request] = field(default_factory=dict)
    sent: list[TransactionKey] = field(default_factory=list)


@dataclass
class Send:
    method: str
    branch: str
    flow: int

    def run(self, w: World) -> None:
        # The same branch twice is the TU's mistake, refused.
        with contextlib.suppress(LocalProtocolError):
            req = request(self.method, branch=self.branch)
            w.sent.append(w.uac.send_request(req, _FLOWS[self.flow], w.now))


@dataclass
class Deliver:
    upstream: bool
    losses: list[bool]

    def run(self, w: World) -> None:
        src, dst = (w.uac, w.uas) if self.upstream else (w.uas, w.uac)
        transfer(src, dst, w.now, loss_pattern(self.losses))


@dataclass
class Respond:
    index: int
    status: int

    def run(self, w: World) -> None:
        if w.served:
            req = list(w.served.values())[self.index % len(w.served)]
            with contextlib.suppress(LocalProtocolError):  # e.g. a second final response
                w.uas.send_response(response_to(req, self.status), w.now)


@dataclass
class InjectRequest:
    method: str
    branch: str | None
    to_tag: str | None
    cseq: int

    def run(self, w: World) -> None:
        req = request(self.method, branch=self.branch, to_tag=self.to_tag, cseq=self.cseq)
        w.uas.receive(parsed(req), mirror(_FLOWS[0]), w.now)


@dataclass
class InjectResponse:
    status: int
    branch: str | None
    method: str

    def run(self, w: World) -> None:
        resp = response_to(request(self.method, branch=self.branch), self.status)
        w.uac.receive(parsed(resp), _FLOWS[0], w.now)


@dataclass
class Advance:
    seconds: float

    def run(self, w: World) -> None:
        w.now += self.seconds
        w.uac.handle_timer(w.now)
        w.uas.handle_timer(w.now)


@dataclass
class Fail:
    upstream: bool
    flow: int

    def run(self, w: World) -> None:
        if self.upstream:
            w.uac.transport_failed(_FLOWS[self.flow], w.now)
        else:
            w.uas.transport_failed(mirror(_FLOWS[self.flow]), w.now)


_flow_index = st.integers(0, len(_FLOWS) - 1)
_op = st.one_of(
    st.builds(
        Send,
        st.sampled_from(["INVITE", "OPTIONS", "CANCEL", "BYE"]),
        st.sampled_from(_BRANCHES[:3]),
        _flow_index,
    ),
    st.builds(Deliver, st.booleans(), st.lists(st.booleans(), min_size=1, max_size=3)),
    st.builds(Respond, st.integers(0, 20), st.sampled_from(_STATUSES)),
    st.builds(
        InjectRequest,
        st.sampled_from(["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]),
        st.sampled_from(_BRANCHES),
        st.sampled_from([None, TO_TAG, "x"]),
        st.integers(1, 2),
    ),
    st.builds(
        InjectResponse,
        st.sampled_from(_STATUSES),
        st.sampled_from(_BRANCHES),
        st.sampled_from(["INVITE", "OPTIONS", "CANCEL", "BYE", "ACK"]),
    ),
    st.builds(Advance, st.floats(0.0, 40.0)),
    st.builds(Fail, st.booleans(), _flow_index),
)
Op = Send | Deliver | Respond | InjectRequest | InjectResponse | Advance | Fail


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=40))
def test_any_input_sequence_keeps_the_invariants(ops: list[Op]) -> None:
    w = World()
    for op in ops:
        op.run(w)  # receive(), handle_timer() and transport_failed() never raise
        for event in w.uas.events():
            if isinstance(event, RequestReceived) and event.key is not None:
                w.served[event.key] = event.request
        w.uac.events()
        for layer in (w.uac, w.uas):
            deadline = layer.get_timer()
            assert deadline is None or deadline > w.now

    # Settle what only the TU can end: answer every server transaction still
    # waiting for a final response, abandon INVITEs stuck in Proceeding (the
    # proxy's Timer C); then, once every deadline has passed, nothing is left.
    for key, req in w.served.items():
        if w.uas.state(key) in (IstState.PROCEEDING, NistState.TRYING, NistState.PROCEEDING):
            w.uas.send_response(response_to(req, 500, "Server Internal Error"), w.now)
    for key in w.sent:
        if w.uac.state(key) is IctState.PROCEEDING:
            w.uac.terminate(key, w.now)
    Advance(200.0).run(w)
    for layer in (w.uac, w.uas):
        assert len(layer) == 0
        assert layer.get_timer() is None
        assert layer._heap == [] and layer._stale == 0 and layer._by_flow == {}
