"""gateway.proxy.core with media: the relay's jobs, refusals and clean-up, pure."""

from __future__ import annotations

import itertools

import pytest

from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import RouteStamp
from gateway.sip import Request, Response, parse_message
from gateway.transaction import TimerConfig
from media.control import MediaError
from sdp.rewrite import AVP, WEBRTC
from tests.helpers.messages import SDP, answer
from tests.unit.gateway.proxy.test_core import BROWSER, PBX, UDP, WSS, ToPbx, browser_invite

pytestmark = pytest.mark.unit


@pytest.fixture
def proxy() -> ProxyCore:
    counter = itertools.count(1)
    stamp = RouteStamp([WSS, UDP], FlowTokens(b"k" * 32), ids=lambda: f"b{next(counter)}")
    settings = ProxySettings(timers=TimerConfig(t1=0.5))
    return ProxyCore(ToPbx(), stamp, settings, ids=lambda: "tag1", media=True)


def with_sdp(data: bytes, body: bytes = SDP) -> bytes:
    head = data.replace(b"Content-Length: 0\r\n\r\n", b"")
    return (
        head
        + b"Content-Type: application/sdp\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def kinds(proxy: ProxyCore) -> list[tuple[object, object]]:
    return [
        (m.status if isinstance(m, Response) else m.method, flow)
        for m, flow in ((parse_message(data), flow) for data, flow in proxy.datagrams_to_send())
    ]


def offered(proxy: ProxyCore) -> int:
    proxy.receive(with_sdp(browser_invite()), BROWSER, 0.0)
    assert kinds(proxy) == [(100, BROWSER)]  # the INVITE waits for the relay
    (job,) = proxy.media_jobs()
    assert job.kind == "offer" and job.negotiation is not None
    assert (job.negotiation.source, job.negotiation.destination) == (WEBRTC, AVP)
    return job.ticket


def test_the_invite_leaves_with_the_relays_offer(proxy: ProxyCore) -> None:
    ticket = offered(proxy)
    proxy.media_done(ticket, SDP.replace(b"192.0.2.10", b"203.0.113.5"), 0.01)
    out = [(parse_message(d), f) for d, f in proxy.datagrams_to_send()]
    ((invite, flow),) = out
    assert isinstance(invite, Request) and flow == PBX
    assert b"203.0.113.5" in invite.body


def test_a_refused_offer_is_answered_with_its_status_and_reason(proxy: ProxyCore) -> None:
    ticket = offered(proxy)
    proxy.media_done(ticket, MediaError("no usable a=crypto", 488), 0.01)
    ((response, flow),) = [(parse_message(d), f) for d, f in proxy.datagrams_to_send()]
    assert isinstance(response, Response) and (response.status, flow) == (488, BROWSER)
    assert response.headers.get("warning") == '399 wedge "no usable a=crypto"'
    (delete,) = proxy.media_jobs()
    assert (delete.kind, delete.call_id) == ("delete", "c1")


def test_an_unavailable_relay_is_a_503_with_retry_after(proxy: ProxyCore) -> None:
    ticket = offered(proxy)
    proxy.media_done(ticket, MediaError("no free media port", 503), 0.01)
    ((response, _),) = [(parse_message(d), f) for d, f in proxy.datagrams_to_send()]
    assert isinstance(response, Response) and response.status == 503
    assert response.headers.get("retry-after") == "5"


def test_cancelled_while_the_relay_works_never_reaches_the_pbx(proxy: ProxyCore) -> None:
    ticket = offered(proxy)
    cancel = (
        browser_invite().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    )
    proxy.receive(cancel, BROWSER, 0.005)
    assert kinds(proxy) == [(200, BROWSER)]
    proxy.media_done(ticket, SDP, 0.01)
    assert kinds(proxy) == [(487, BROWSER)]
    assert [job.kind for job in proxy.media_jobs()] == ["delete"]


def test_a_failed_call_frees_its_media(proxy: ProxyCore) -> None:
    proxy.media_done(offered(proxy), SDP, 0.01)
    ((invite, _),) = [(parse_message(d), f) for d, f in proxy.datagrams_to_send()]
    assert isinstance(invite, Request)
    proxy.receive(answer(invite, 486, "Busy Here"), PBX, 0.1)
    assert kinds(proxy) == [("ACK", PBX), (486, BROWSER)]
    assert [job.kind for job in proxy.media_jobs()] == ["delete"]


def test_a_media_timeout_sends_bye_to_both_parties(proxy: ProxyCore) -> None:
    proxy.media_done(offered(proxy), SDP, 0.01)
    ((invite, _),) = [(parse_message(d), f) for d, f in proxy.datagrams_to_send()]
    assert isinstance(invite, Request)
    proxy.receive(answer(invite, 200, "OK", body=SDP.decode()), PBX, 0.1)
    (job,) = proxy.media_jobs()
    assert job.kind == "answer"
    proxy.media_done(job.ticket, SDP, 0.11)
    assert kinds(proxy) == [(200, BROWSER)]
    proxy.media_timeout("c1", 60.0)
    byes = [(parse_message(d), f) for d, f in proxy.datagrams_to_send()]
    assert [(m.method, f) for m, f in byes if isinstance(m, Request)] == [
        ("BYE", PBX),
        ("BYE", BROWSER),
    ]
    to_pbx, to_browser = (m for m, _ in byes)
    assert isinstance(to_pbx, Request) and isinstance(to_browser, Request)
    assert to_pbx.uri == "sip:600@192.0.2.20:5060"  # the PBX's Contact
    assert (to_pbx.from_.tag, to_pbx.to.tag) == ("abc", "pbx1")
    assert to_pbx.cseq.number == 2 and to_pbx.routes == []
    assert to_browser.uri == "sip:x@df7jal23ls0d.invalid;transport=ws;ob"
    assert (to_browser.from_.tag, to_browser.to.tag) == ("pbx1", "abc")
    assert [job.kind for job in proxy.media_jobs()] == ["delete"]
