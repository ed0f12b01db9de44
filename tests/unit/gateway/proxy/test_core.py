"""gateway.proxy.core: a browser on WSS, a PBX on UDP, bytes in and bytes out."""

from __future__ import annotations

import gc
import itertools
import types
from collections.abc import Callable

import pytest

from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import Listener, RouteStamp, Target
from gateway.sip import Flow, Request, Response, SipUri, parse_message, parse_uri
from gateway.sip.flow import Address
from gateway.transaction import TimerConfig
from tests.helpers.messages import answer

WSS = Listener("browsers", "wss", ("127.0.0.1", 8443), ("sbc.example.com", 443))
UDP = Listener("pbx-side", "udp", ("192.0.2.5", 5060), ("192.0.2.5", 5060))
BROWSER = Flow("wss", WSS.local, ("198.51.100.7", 50000), 7)
PBX = Flow("udp", UDP.local, ("192.0.2.20", 5060))
PHONE = Flow("udp", UDP.local, ("192.0.2.30", 5062))
PBX_URI = parse_uri("sip:192.0.2.20:5060")
assert isinstance(PBX_URI, SipUri)


class ToPbx:
    """Every initial request goes to the PBX."""

    def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
        if request.uri.startswith("sip:nowhere"):
            return None
        return Target("udp", PBX.remote, uri=PBX_URI, name="pbx")


@pytest.fixture
def proxy() -> ProxyCore:
    counter = itertools.count(1)
    stamp = RouteStamp([WSS, UDP], FlowTokens(b"k" * 32), ids=lambda: f"b{next(counter)}")
    settings = ProxySettings(timers=TimerConfig(t1=0.5))
    return ProxyCore(ToPbx(), stamp, settings, ids=lambda: "tag1")


def browser_invite(
    method: str = "INVITE", uri: str = "sip:600@sbc.example.com", extra: str = ""
) -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK1;rport\r\n"
        "Max-Forwards: 69\r\n"
        "To: <sip:600@sbc.example.com>\r\n"
        'From: "alice" <sip:alice@sbc.example.com>;tag=abc\r\n'
        "Call-ID: c1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:x@df7jal23ls0d.invalid;transport=ws;ob>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def sent(proxy: ProxyCore) -> list[tuple[Request | Response, Flow]]:
    return [(parse_message(data), flow) for data, flow in proxy.datagrams_to_send()]


def forwarded_invite(proxy: ProxyCore) -> Request:
    proxy.receive(browser_invite(), BROWSER, 0.0)
    out = sent(proxy)
    assert [(m.status if isinstance(m, Response) else m.method, f) for m, f in out] == [
        (100, BROWSER),
        ("INVITE", PBX),
    ]
    invite = out[1][0]
    assert isinstance(invite, Request)
    return invite


def test_initial_invite_is_stamped_for_the_pbx(proxy: ProxyCore) -> None:
    invite = forwarded_invite(proxy)
    assert invite.uri == "sip:600@192.0.2.20:5060"
    assert invite.max_forwards == 68
    top, browser_via = invite.vias
    assert str(top).startswith("SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-w")
    assert browser_via.received == "198.51.100.7"
    assert browser_via.rport == 50000
    outer, inner = invite.record_routes
    assert isinstance(outer.uri, SipUri) and isinstance(inner.uri, SipUri)
    # RFC 5658: the PBX side on top, then the browser side, each with its transport.
    assert (outer.uri.host, outer.uri.port, outer.uri.transport) == ("192.0.2.5", 5060, None)
    assert (inner.uri.host, inner.uri.port, inner.uri.transport) == ("sbc.example.com", 443, "wss")
    for entry in (outer, inner):
        assert entry.uri.has_param("r2") and entry.uri.lr
    tokens = FlowTokens(b"k" * 32)
    assert tokens.decode(inner.uri.user or "") == BROWSER
    assert tokens.decode(outer.uri.user or "") == PBX


def test_call_flows_both_ways_on_each_legs_own_flow(
    proxy: ProxyCore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wedge.calls")
    invite = forwarded_invite(proxy)
    for status, reason in ((100, "Trying"), (180, "Ringing"), (200, "OK")):
        proxy.receive(answer(invite, status, reason), PBX, 0.1)
        out = sent(proxy)
        if status == 100:
            assert out == []  # hop by hop
            continue
        ((response, flow),) = out
        assert isinstance(response, Response) and response.status == status
        assert flow == BROWSER
        assert len(response.vias) == 1 and response.via.branch == "z9hG4bK1"
        assert len(response.record_routes) == 2
    # The browser's route set is the Record-Route reversed (RFC 3261 §12.1.2).
    route = ", ".join(str(rr) for rr in reversed(invite.record_routes))
    ack = (
        "ACK sip:600@192.0.2.20:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK2\r\n"
        f"Route: {route}\r\n"
        "Max-Forwards: 69\r\nTo: <sip:600@sbc.example.com>;tag=pbx1\r\n"
        'From: "alice" <sip:alice@sbc.example.com>;tag=abc\r\n'
        "Call-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    proxy.receive(ack, BROWSER, 0.2)
    ((forwarded, flow),) = sent(proxy)
    assert isinstance(forwarded, Request) and forwarded.method == "ACK"
    assert flow == PBX and forwarded.routes == [] and len(forwarded.vias) == 2
    # The PBX hangs up: its route set is the Record-Route as it is.
    pbx_route = ", ".join(str(rr) for rr in invite.record_routes)
    bye = (
        "BYE sip:x@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpbx2\r\n"
        f"Route: {pbx_route}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:600@sbc.example.com>;tag=pbx1\r\n"
        'To: "alice" <sip:alice@sbc.example.com>;tag=abc\r\n'
        "Call-ID: c1\r\nCSeq: 10 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    proxy.receive(bye, PBX, 1.0)
    ((bye_out, flow),) = sent(proxy)
    assert isinstance(bye_out, Request) and bye_out.method == "BYE"
    assert flow == BROWSER  # the browser's own WebSocket, though its Contact is .invalid
    assert str(bye_out.via).startswith("SIP/2.0/WSS sbc.example.com:443;branch=z9hG4bK-w")
    proxy.receive(answer(bye_out, 200, "OK", to_tag="abc"), BROWSER, 1.1)
    ((ok, flow),) = sent(proxy)
    assert isinstance(ok, Response) and ok.status == 200 and flow == PBX
    assert ok.via.branch == "z9hG4bKpbx2"
    # One line when the call was answered, one when it ended.
    lines = [record.getMessage() for record in caplog.records if record.name == "wedge.calls"]
    assert lines[0].startswith("call call-id=c1 from=sip:alice@sbc.example.com")
    assert "result=200" in lines[0] and f"in={BROWSER}" in lines[0]
    assert lines[1] == "call ended call-id=c1 duration_s=1.0 by=sip:600@sbc.example.com"


def test_cancel_before_answer(proxy: ProxyCore) -> None:
    invite = forwarded_invite(proxy)
    proxy.receive(answer(invite, 180, "Ringing"), PBX, 0.1)
    sent(proxy)
    cancel = (
        browser_invite().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    )
    proxy.receive(cancel, BROWSER, 0.2)
    out = sent(proxy)
    kinds = [(m.status if isinstance(m, Response) else m.method, f) for m, f in out]
    assert kinds == [(200, BROWSER), ("CANCEL", PBX)]
    cancel_out = out[1][0]
    assert isinstance(cancel_out, Request)
    assert cancel_out.via.branch == invite.via.branch and cancel_out.uri == invite.uri
    proxy.receive(answer(invite, 487, "Request Terminated"), PBX, 0.3)
    out = sent(proxy)
    assert [(m.status if isinstance(m, Response) else m.method, f) for m, f in out] == [
        ("ACK", PBX),
        (487, BROWSER),
    ]


def test_cancel_for_nothing_gets_481(proxy: ProxyCore) -> None:
    cancel = browser_invite("CANCEL")
    proxy.receive(cancel, BROWSER, 0.0)
    ((response, flow),) = sent(proxy)
    assert isinstance(response, Response) and response.status == 481 and flow == BROWSER


def test_silent_pbx_gets_408_after_timer_b(proxy: ProxyCore) -> None:
    forwarded_invite(proxy)
    deadline = proxy.get_timer()
    assert deadline == 0.5  # Timer A: the first retransmission on UDP
    proxy.handle_timer(64 * 0.5)
    out = sent(proxy)
    assert (out[-1][1], getattr(out[-1][0], "status", None)) == (BROWSER, 408)


def test_unreachable_pbx_gets_503(proxy: ProxyCore) -> None:
    forwarded_invite(proxy)
    proxy.flow_failed(PBX, 0.1)
    ((response, flow),) = sent(proxy)
    assert isinstance(response, Response) and (response.status, flow) == (503, BROWSER)


def test_pbx_failure_is_forwarded_and_acked(proxy: ProxyCore) -> None:
    invite = forwarded_invite(proxy)
    proxy.receive(answer(invite, 486, "Busy Here"), PBX, 0.1)
    out = sent(proxy)
    assert [(m.status if isinstance(m, Response) else m.method, f) for m, f in out] == [
        ("ACK", PBX),
        (486, BROWSER),
    ]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (browser_invite().replace(b"Max-Forwards: 69", b"Max-Forwards: 0"), 483),
        (browser_invite(uri="http://example.com/x"), 416),
        (browser_invite(extra="Proxy-Require: foo\r\n"), 420),
        (browser_invite(uri="sip:nowhere@example.com"), 404),
    ],
)
def test_requests_refused_with_the_rfc_status(proxy: ProxyCore, data: bytes, status: int) -> None:
    proxy.receive(data, BROWSER, 0.0)
    final = [m for m, _ in sent(proxy) if isinstance(m, Response) and m.status >= 200]
    assert [m.status for m in final] == [status]
    assert final[0].to.tag == "tag1"


def test_options_to_wedge_itself_is_answered() -> None:
    proxy = ProxyCore(ToPbx(), RouteStamp([WSS, UDP], FlowTokens(b"k" * 32), str))
    data = browser_invite("OPTIONS", uri="sip:192.0.2.5:5060").replace(
        b"To: <sip:600@sbc.example.com>", b"To: <sip:192.0.2.5>;tag=x"
    )
    proxy.receive(data, PHONE, 0.0)
    ((response, _),) = sent(proxy)
    assert isinstance(response, Response) and response.status == 200
    assert "REFER" in (response.headers.get("Allow") or "")


def test_loop_is_detected() -> None:
    """A request that comes back to Wedge unchanged has looped (RFC 3261 §16.3 step 4)."""

    class BackToUs:
        def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
            return Target("udp", UDP.local)

    ids = itertools.count()
    stamp = RouteStamp([UDP], FlowTokens(b"k" * 32), lambda: str(next(ids)))
    proxy = ProxyCore(BackToUs(), stamp)
    proxy.receive(browser_invite("MESSAGE"), PHONE, 0.0)
    ((looped, flow),) = sent(proxy)
    assert flow.remote == UDP.local
    proxy.receive(bytes(looped), Flow("udp", UDP.local, UDP.local), 0.1)
    statuses = [m.status for m, _ in sent(proxy) if isinstance(m, Response)]
    assert statuses == [482]


def test_single_record_route_on_one_socket(proxy: ProxyCore) -> None:
    proxy.receive(browser_invite(), PHONE, 0.0)
    invite = next(m for m, _ in sent(proxy) if isinstance(m, Request))
    (entry,) = invite.record_routes
    assert str(entry).endswith("@192.0.2.5:5060;lr>")
    # The PBX's in-dialog request finds the phone through the token.
    bye = (
        "BYE sip:x@10.0.0.9:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpbx3\r\n"
        f"Route: {entry}\r\nMax-Forwards: 70\r\n"
        "From: <sip:600@sbc.example.com>;tag=pbx1\r\nTo: <sip:alice@x>;tag=abc\r\n"
        "Call-ID: c1\r\nCSeq: 11 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    proxy.receive(bye, PBX, 1.0)
    ((_, flow),) = sent(proxy)
    assert flow == PHONE  # where the phone sends from, not its private Contact


def test_bad_request_gets_400_with_the_reason(proxy: ProxyCore) -> None:
    proxy.receive(browser_invite().replace(b"Call-ID: c1\r\n", b""), BROWSER, 0.0)
    ((data, flow),) = proxy.datagrams_to_send()
    assert flow == BROWSER
    assert data.startswith(b"SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid")
    assert b'Warning: 399 wedge "missing Call-ID"' in data
    assert (
        parse_message(
            data.replace(b"Warning", b"X-W").replace(
                b"Content-Length", b"Call-ID: x\r\nContent-Length"
            )
        )
        is not None
    )


def test_bad_response_and_garbage_are_dropped(proxy: ProxyCore) -> None:
    proxy.receive(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", PBX, 0.0)
    proxy.receive(b"\x00\x01garbage", PBX, 0.0)
    assert proxy.datagrams_to_send() == []


def register(supported: str = "path, outbound", expires: str = "600") -> bytes:
    return (
        (
            "REGISTER sip:sbc.example.com SIP/2.0\r\n"
            "Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKr1\r\n"
            "Max-Forwards: 69\r\nTo: <sip:alice@sbc.example.com>\r\n"
            "From: <sip:alice@sbc.example.com>;tag=r1\r\nCall-ID: reg1\r\nCSeq: 1 REGISTER\r\n"
            f"Supported: {supported}\r\n"
            '<CONTACT>;reg-id=1;+sip.instance="<urn:uuid:1>";expires=' + expires + "\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        .replace("<CONTACT>", "Contact: <sip:x@df7jal23ls0d.invalid;transport=ws;ob>")
        .encode()
    )


def test_register_gets_a_path_to_the_browsers_flow(proxy: ProxyCore) -> None:
    proxy.receive(register(), BROWSER, 0.0)
    ((forwarded, flow),) = sent(proxy)
    assert isinstance(forwarded, Request) and flow == PBX
    assert forwarded.record_routes == []
    (path,) = forwarded.paths
    assert str(path).endswith("@192.0.2.5:5060;lr;ob>")
    assert isinstance(path.uri, SipUri)
    assert FlowTokens(b"k" * 32).decode(path.uri.user or "") == BROWSER
    # The registrar's 200 goes back to the browser.
    proxy.receive(answer(forwarded, 200, "OK"), PBX, 0.1)
    ((ok, flow),) = sent(proxy)
    assert isinstance(ok, Response) and (ok.status, flow) == (200, BROWSER)
    # A call for alice comes from the PBX with the Path as its Route.
    invite = (
        "INVITE sip:x@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpbx9\r\n"
        f"Route: {path}\r\nMax-Forwards: 70\r\n"
        "From: <sip:bob@pbx.example.com>;tag=b1\r\nTo: <sip:alice@sbc.example.com>\r\n"
        "Call-ID: in1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    proxy.receive(invite, PBX, 1.0)
    out = sent(proxy)
    ((call, flow),) = [(m, f) for m, f in out if isinstance(m, Request)]
    assert flow == BROWSER  # the browser's own WebSocket, found from the token alone
    assert call.uri == "sip:x@df7jal23ls0d.invalid;transport=ws;ob"
    outer, inner = (str(rr) for rr in call.record_routes)
    assert "@sbc.example.com:443;transport=wss;r2=on;lr>" in outer
    assert "@192.0.2.5:5060;r2=on;lr>" in inner


def test_register_over_a_connection_without_path_support_gets_421(proxy: ProxyCore) -> None:
    proxy.receive(register(supported="outbound"), BROWSER, 0.0)
    ((response, flow),) = sent(proxy)
    assert isinstance(response, Response) and (response.status, flow) == (421, BROWSER)
    assert response.headers.get("Require") == "path"


def test_forged_token_gets_403(proxy: ProxyCore) -> None:
    bye = (
        b"BYE sip:x@df7jal23ls0d.invalid SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpbx7\r\n"
        b"Route: <sip:AAAAforgedtokenAAAA@192.0.2.5:5060;lr>\r\nMax-Forwards: 70\r\n"
        b"From: <sip:bob@pbx.example.com>;tag=b1\r\nTo: <sip:alice@sbc.example.com>;tag=a\r\n"
        b"Call-ID: f1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    proxy.receive(bye, PBX, 0.0)
    ((response, flow),) = sent(proxy)
    assert isinstance(response, Response) and (response.status, flow) == (403, PBX)


def test_request_to_a_flow_that_is_gone_gets_430(proxy: ProxyCore) -> None:
    proxy.receive(register(), BROWSER, 0.0)
    ((forwarded, _),) = sent(proxy)
    assert isinstance(forwarded, Request)
    (path,) = forwarded.paths
    invite = (
        "INVITE sip:x@df7jal23ls0d.invalid;transport=ws SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpbx8\r\n"
        f"Route: {path}\r\nMax-Forwards: 70\r\n"
        "From: <sip:bob@pbx.example.com>;tag=b1\r\nTo: <sip:alice@sbc.example.com>\r\n"
        "Call-ID: in2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    proxy.receive(invite, PBX, 1.0)
    sent(proxy)
    proxy.flow_failed(BROWSER, 1.1)  # the WebSocket is closed: the transport says so
    statuses = [(m.status, f) for m, f in sent(proxy) if isinstance(m, Response)]
    assert statuses == [(430, PBX)]


def test_route_normalises_the_number_in_the_request_uri() -> None:
    class Normalising:
        def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
            return Target("udp", PBX.remote, uri=PBX_URI, user="+442079460000")

    counter = itertools.count()
    stamp = RouteStamp([WSS, UDP], FlowTokens(b"k" * 32), lambda: str(next(counter)))
    proxy = ProxyCore(Normalising(), stamp)
    proxy.receive(browser_invite(uri="sip:0044-20-7946-0000@sbc.example.com"), BROWSER, 0.0)
    invite = next(m for m, _ in sent(proxy) if isinstance(m, Request))
    assert invite.uri == "sip:+442079460000@192.0.2.20:5060"


def test_registered_udp_client_gets_keepalives_while_registered() -> None:
    counter = itertools.count()
    stamp = RouteStamp([WSS, UDP], FlowTokens(b"k" * 32), lambda: str(next(counter)))
    proxy = ProxyCore(ToPbx(), stamp, ProxySettings(nat_keepalive=25))
    phone_register = register().replace(b"SIP/2.0/WSS", b"SIP/2.0/UDP")
    proxy.receive(phone_register, PHONE, 0.0)
    ((forwarded, _),) = sent(proxy)
    assert isinstance(forwarded, Request)
    ok = answer(forwarded, 200, "OK").replace(
        b"Contact: <sip:600@192.0.2.20:5060>", b"Contact: <sip:x@10.0.0.9:5062>;expires=60"
    )
    proxy.receive(ok, PBX, 0.1)
    sent(proxy)
    keepalives = []
    for now in (25.1, 50.1, 75.1, 100.1):
        proxy.handle_timer(now)
        keepalives += [(data, flow) for data, flow in proxy.datagrams_to_send()]
    # Two while the 60 s registration lasts, then none.
    assert keepalives == [(b"\r\n\r\n", PHONE), (b"\r\n\r\n", PHONE)]


def test_a_response_whose_upstream_via_was_mangled_still_goes_back_its_way(
    proxy: ProxyCore,
) -> None:
    # The PBX answers with the browser's Via changed (a broken ALG, say): the
    # response still belongs to Wedge's client transaction, so it goes back through
    # the server transaction it answers, to the browser's own flow, as received.
    invite = forwarded_invite(proxy)
    ringing = answer(invite, 180, "Ringing").replace(b"branch=z9hG4bK1", b"branch=z9hG4bKmangled")
    proxy.receive(ringing, PBX, 0.1)
    ((response, flow),) = sent(proxy)
    assert isinstance(response, Response) and response.status == 180
    assert flow == BROWSER and response.via.branch == "z9hG4bKmangled"


def parsed_requests_held_by(proxy: ProxyCore) -> int:
    """The parsed requests the core holds on to, however deep (not via classes or modules)."""
    seen: set[int] = set()
    todo: list[object] = [proxy]
    found = 0
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, type | types.ModuleType | Callable):
            continue
        seen.add(id(item))
        found += isinstance(item, Request)
        todo.extend(gc.get_referents(item))
    return found


def test_a_retransmitted_2xx_goes_upstream_again(proxy: ProxyCore) -> None:
    # RFC 6026: the callee resends its 2xx until the ACK comes; each copy is the
    # caller's to see, after the forward has let go of the INVITE.
    ok = answer(forwarded_invite(proxy), 200, "OK")
    for now in (0.1, 0.6, 1.6):
        proxy.receive(ok, PBX, now)
        out = sent(proxy)
        assert [(m.status, f) for m, f in out if isinstance(m, Response)] == [(200, BROWSER)]


def test_an_answered_call_keeps_no_parsed_request_while_its_transactions_linger(
    proxy: ProxyCore,
) -> None:
    # The INVITE's transactions wait 32 s after the 2xx (RFC 6026), the BYE's
    # server transaction as long (Timer J): what they hold that long is what the
    # garbage collector scans over and over, thousands of calls' worth.
    invite = forwarded_invite(proxy)
    assert parsed_requests_held_by(proxy) >= 2  # the INVITE as received, and as forwarded
    proxy.receive(answer(invite, 200, "OK"), PBX, 0.1)
    sent(proxy)
    # Left: none. A retransmitted 2xx needs only what the forward noted of the INVITE.
    assert parsed_requests_held_by(proxy) == 0
    route = ", ".join(str(rr) for rr in reversed(invite.record_routes))
    bye = browser_invite("BYE", uri="sip:600@192.0.2.20:5060", extra=f"Route: {route}\r\n")
    bye = bye.replace(b"sbc.example.com>\r\n", b"sbc.example.com>;tag=pbx1\r\n", 1)
    proxy.receive(bye, BROWSER, 0.2)
    ((forwarded, _),) = sent(proxy)
    assert isinstance(forwarded, Request)
    proxy.receive(answer(forwarded, 200, "OK"), PBX, 0.3)
    assert [m.status for m, _ in sent(proxy) if isinstance(m, Response)] == [200]
    proxy.handle_timer(0.3)  # the BYE's server transaction ends (Timer J is 0 on a WebSocket)
    assert parsed_requests_held_by(proxy) == 0
