"""Trunk targets: failover (RFC 3263 §4.3), health, OPTIONS probes. Bytes and `now` only."""

from __future__ import annotations

import itertools

from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import Listener, RouteStamp, Target
from gateway.proxy.timers import Timers
from gateway.proxy.trunks import HealthSettings, TrunkHealth
from gateway.sip import Flow, Request, Response, SipUri, parse_message, parse_uri
from gateway.sip.flow import Address
from tests.unit.gateway.proxy.test_core import BROWSER, UDP, WSS, answer, browser_invite

A = ("192.0.2.21", 5060)
B = ("192.0.2.22", 5060)
C = ("192.0.2.23", 5060)
TRUNK_URI = parse_uri("sip:pbx.example.com")
assert isinstance(TRUNK_URI, SipUri)


class ThreeTargets:
    def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
        return Target("udp", A, uri=TRUNK_URI, name="pbx", alternatives=(("udp", B), ("udp", C)))


def make(settings: HealthSettings | None = None) -> ProxyCore:
    counter = itertools.count()
    stamp = RouteStamp([WSS, UDP], FlowTokens(b"k" * 32), lambda: str(next(counter)))
    health = TrunkHealth({"pbx": settings or HealthSettings(down_after=1)})
    return ProxyCore(ThreeTargets(), stamp, ProxySettings(answer_timeout=0.5), health=health)


def another_call(number: int) -> bytes:
    return (
        browser_invite()
        .replace(b"Call-ID: c1", f"Call-ID: c{number}".encode())
        .replace(b"branch=z9hG4bK1", f"branch=z9hG4bK1-{number}".encode())
    )


def out(proxy: ProxyCore) -> list[tuple[Request | Response, Flow]]:
    return [(parse_message(data), flow) for data, flow in proxy.datagrams_to_send()]


def invites(sent: list[tuple[Request | Response, Flow]]) -> list[tuple[Request, Address]]:
    return [(m, f.remote) for m, f in sent if isinstance(m, Request) and m.method == "INVITE"]


def test_no_answer_moves_to_the_next_target_within_t1() -> None:
    proxy = make()
    proxy.receive(browser_invite(), BROWSER, 0.0)
    ((first, to),) = invites(out(proxy))
    assert to == A and first.uri == "sip:600@pbx.example.com"
    assert proxy.get_timer() == 0.5
    proxy.handle_timer(0.5)
    ((second, to),) = invites(out(proxy))
    assert to == B
    assert second.via.branch != first.via.branch  # a new client transaction
    # A is down now (down_after=1): the next call goes straight to B.
    proxy.receive(another_call(2), BROWSER, 1.0)
    ((_, to),) = invites(out(proxy))
    assert to == B


def test_503_with_retry_after_moves_on_and_rests_the_target() -> None:
    proxy = make(HealthSettings(down_after=5))
    proxy.receive(browser_invite(), BROWSER, 0.0)
    ((first, _),) = invites(out(proxy))
    busy = answer(first, 503, "Service Unavailable").replace(
        b"Content-Length", b"Retry-After: 120\r\nContent-Length"
    )
    proxy.receive(busy, Flow("udp", UDP.local, A), 0.1)
    sent = out(proxy)
    assert [f.remote for m, f in sent if isinstance(m, Request)] == [A, B]  # ACK to A, INVITE to B
    assert not any(isinstance(m, Response) and m.status == 503 for m, _ in sent)
    proxy.receive(another_call(2), BROWSER, 60.0)
    ((_, to),) = invites(out(proxy))
    assert to == B  # A rests for 120 s
    proxy.receive(another_call(3), BROWSER, 121.0)
    ((_, to),) = invites(out(proxy))
    assert to == A


def test_a_target_that_rang_is_not_failed_over() -> None:
    proxy = make()
    proxy.receive(browser_invite(), BROWSER, 0.0)
    ((first, _),) = invites(out(proxy))
    proxy.receive(answer(first, 180, "Ringing"), Flow("udp", UDP.local, A), 0.1)
    out(proxy)
    proxy.receive(answer(first, 503, "Service Unavailable"), Flow("udp", UDP.local, A), 0.2)
    statuses = [m.status for m, f in out(proxy) if isinstance(m, Response)]
    assert statuses == [503]


def test_the_last_target_is_left_to_timer_b_and_stays_in_use() -> None:
    """No answer within T1 moves on while there is somewhere to move to; the last
    target keeps the request (Timer B decides) and is not taken out for lateness."""
    proxy = make()
    proxy.receive(browser_invite(), BROWSER, 0.0)
    for now in (0.5, 1.0):
        proxy.handle_timer(now)
    assert [to for _, to in invites(out(proxy))] == [A, B, C]
    assert proxy.get_timer() == 1.5  # C's Timer A retransmission, no failover timer
    proxy.receive(another_call(9), BROWSER, 2.0)
    assert [to for _, to in invites(out(proxy))] == [C]


def test_all_targets_resting_gives_503() -> None:
    proxy = make()
    for key in ((A,), (B,), (C,)):
        proxy.health.failed(("pbx", "udp", key[0]), 0.0, "test", retry_after=60)
    proxy.receive(browser_invite(), BROWSER, 1.0)
    statuses = [(m.status, m.reason) for m, _ in out(proxy) if isinstance(m, Response)]
    assert statuses[-1] == (503, "Trunk pbx Unavailable")


def test_probes_take_a_target_down_and_bring_it_back() -> None:
    proxy = make(HealthSettings(interval=10, timeout=1, down_after=2, up_after=2))
    proxy.health.watch([("pbx", "udp", A)], 0.0)
    assert proxy.get_timer() == 10
    for now in (10, 20):
        proxy.handle_timer(now)
        ((probe, flow),) = out(proxy)
        assert isinstance(probe, Request) and probe.method == "OPTIONS" and flow.remote == A
        assert probe.uri == "sip:192.0.2.21:5060"
        proxy.handle_timer(now + 1)  # unanswered
        out(proxy)
    assert not proxy.health.is_up(("pbx", "udp", A))
    for now in (30, 40):
        proxy.handle_timer(now)
        ((probe, _),) = out(proxy)
        assert isinstance(probe, Request)
        proxy.receive(answer(probe, 200, "OK"), Flow("udp", UDP.local, A), now + 0.1)
        out(proxy)
    assert proxy.health.is_up(("pbx", "udp", A))


def test_garbage_answer_to_a_probe_counts_as_no_answer() -> None:
    proxy = make(HealthSettings(interval=10, timeout=1, down_after=1))
    proxy.health.watch([("pbx", "udp", A)], 0.0)
    proxy.handle_timer(10)
    out(proxy)
    proxy.receive(b"SIP/2.0 200 OK\r\nthis is not SIP\r\n\r\n", Flow("udp", UDP.local, A), 10.1)
    proxy.handle_timer(11)
    assert not proxy.health.is_up(("pbx", "udp", A))


def test_unprobed_target_rests_then_is_tried_again() -> None:
    health = TrunkHealth({"pbx": HealthSettings(down_after=1)})
    key = ("pbx", "udp", A)
    health.failed(key, 0.0, "no answer")
    assert health.usable([key], 1.0) == []
    assert health.usable([key], 31.0) == [key]


def test_timers_run_in_order_and_cancel() -> None:
    timers = Timers()
    ran: list[str] = []
    timers.add(2.0, lambda: ran.append("b"))
    token = timers.add(1.5, lambda: ran.append("x"))
    timers.add(1.0, lambda: ran.append("a"))
    timers.cancel(token)
    assert timers.get_timer() == 1.0
    timers.run_due(5.0)
    assert ran == ["a", "b"] and timers.get_timer() is None
