"""Teams-style trunk behaviour of the proxy core: OPTIONS both ways, X-MS-SBC, the FQDN
in Record-Route and (on request) Contact, and failover on 503 but not on 603."""

from __future__ import annotations

import itertools

from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.peering import restore_target, rewrite_contacts
from gateway.proxy.routing import Listener, RouteStamp, Target
from gateway.proxy.trunks import HealthSettings, TargetKey, TrunkHealth
from gateway.sip import Flow, Request, Response, SipUri, parse_message, parse_uri
from gateway.sip.flow import Address
from tests.helpers.messages import answer

TLS = Listener("teams", "tls", ("127.0.0.1", 5061), ("sbc.example.com", 5061))
UDP = Listener("pbx-side", "udp", ("192.0.2.5", 5060), ("192.0.2.5", 5060))
SIP = ("192.0.2.11", 5061)
SIP2 = ("192.0.2.12", 5061)
PBX = Flow("udp", UDP.local, ("192.0.2.20", 5060))
_URI = parse_uri("sip:sip.pstnhub.example:5061;transport=tls")
assert isinstance(_URI, SipUri)
TEAMS_URI: SipUri = _URI


class ToTeams:
    def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
        return Target("tls", SIP, uri=TEAMS_URI, name="teams", alternatives=(("tls", SIP2),))


def names(key: TargetKey) -> str | None:
    return {SIP: "sip.pstnhub.example", SIP2: "sip2.pstnhub.example"}.get(key[2])


def make(*, rewrite: bool = False, interval: float = 0.0) -> ProxyCore:
    counter = itertools.count()
    stamp = RouteStamp([TLS, UDP], FlowTokens(b"k" * 32), lambda: f"b{next(counter)}")
    settings = ProxySettings(
        server="Wedge/9.9",
        x_ms_sbc={"teams": "Wedge/SBC/9.9"},
        rewrite_contact=frozenset({"teams"} if rewrite else ()),
        probe_name=names,
    )
    health = TrunkHealth({"teams": HealthSettings(interval=interval, down_after=1)})
    proxy = ProxyCore(ToTeams(), stamp, settings, ids=lambda: "t1", health=health)
    if interval:
        health.watch([("teams", "tls", SIP), ("teams", "tls", SIP2)], 0.0)
    return proxy


def out(proxy: ProxyCore) -> list[tuple[Request | Response, Flow]]:
    return [(parse_message(data), flow) for data, flow in proxy.datagrams_to_send()]


def pbx_invite(number: int = 1) -> bytes:
    return (
        "INVITE sip:+4420794600@192.0.2.5 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-p{number}\r\n"
        "Max-Forwards: 70\r\nTo: <sip:+4420794600@192.0.2.5>\r\n"
        f"From: <sip:100@192.0.2.20>;tag=p{number}\r\nCall-ID: call-{number}\r\n"
        "CSeq: 1 INVITE\r\nContact: <sip:100@192.0.2.20:5060>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_inbound_options_get_200_with_allow_accept_supported_and_identity() -> None:
    proxy = make()
    teams = Flow("tls", TLS.local, ("192.0.2.11", 40000), 5)
    proxy.receive(
        (
            b"OPTIONS sip:sbc.example.com:5061;transport=tls SIP/2.0\r\n"
            b"Via: SIP/2.0/TLS 192.0.2.11:40000;branch=z9hG4bK-o1\r\nMax-Forwards: 70\r\n"
            b"To: <sip:sbc.example.com>\r\nFrom: <sip:sip.pstnhub.example>;tag=o1\r\n"
            b"Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ),
        teams,
        0.0,
    )
    ((ok, flow),) = out(proxy)
    assert isinstance(ok, Response) and (ok.status, flow) == (200, teams)
    assert "REFER" in (ok.headers.get("allow") or "").split(", ")
    assert ok.headers.get("accept") == "application/sdp"
    assert ok.headers.get("supported") == "path, outbound"
    assert ok.headers.get("server") == "Wedge/9.9"
    assert ok.headers.get("x-ms-sbc") == "Wedge/SBC/9.9"


def test_keepalive_options_carry_the_fqdn_in_contact_from_and_via() -> None:
    proxy = make(interval=60.0)
    assert proxy.get_timer() == 60.0
    proxy.handle_timer(60.0)
    probes = out(proxy)
    assert sorted(flow.remote for _, flow in probes) == [SIP, SIP2]
    options, flow = next(item for item in probes if item[1].remote == SIP)
    assert isinstance(options, Request) and options.method == "OPTIONS"
    assert flow == Flow("tls", TLS.local, SIP)
    assert options.uri == "sip:sip.pstnhub.example:5061;transport=tls"
    assert options.headers.get("contact") == "<sip:sbc.example.com:5061;transport=tls>"
    assert options.from_.uri_text == "sip:wedge@sbc.example.com:5061"
    assert str(options.via).startswith("SIP/2.0/TLS sbc.example.com:5061;branch=")
    assert options.headers.get("user-agent") == "Wedge/9.9"
    assert options.headers.get("x-ms-sbc") == "Wedge/SBC/9.9"


def test_invite_toward_the_trunk_is_record_routed_by_fqdn_and_identified() -> None:
    proxy = make()
    proxy.receive(pbx_invite(), PBX, 0.0)
    _, (invite, flow) = out(proxy)
    assert isinstance(invite, Request) and flow.remote == SIP
    top, bottom = invite.record_routes
    assert isinstance(top.uri, SipUri) and isinstance(bottom.uri, SipUri)
    assert str(top).endswith("@sbc.example.com:5061;transport=tls;r2=on;lr>")
    assert bottom.uri.host == "192.0.2.5"
    assert invite.headers.get("x-ms-sbc") == "Wedge/SBC/9.9"
    assert invite.headers.get("contact") == "<sip:100@192.0.2.20:5060>"  # a proxy's default


def test_contact_rewrite_names_the_fqdn_and_comes_back() -> None:
    proxy = make(rewrite=True)
    proxy.receive(pbx_invite(), PBX, 0.0)
    _, (invite, _) = out(proxy)
    assert isinstance(invite, Request)
    (contact,) = invite.contacts
    assert isinstance(contact.uri, SipUri)
    assert (contact.uri.user, contact.uri.host, contact.uri.port) == (
        "100",
        "sbc.example.com",
        5061,
    )
    assert contact.uri.transport == "tls" and contact.uri.has_param("w-c")
    # The 200 from the trunk goes back to the PBX untouched (it leaves by udp).
    teams = Flow("tls", TLS.local, SIP, 9)
    ok = answer(invite, 200, "OK", contact="sip:callee@192.0.2.11:5061;transport=tls")
    proxy.receive(ok, teams, 0.1)
    ((response, flow),) = out(proxy)
    assert isinstance(response, Response) and flow == PBX
    assert response.headers.get("contact") == "<sip:callee@192.0.2.11:5061;transport=tls>"
    assert response.headers.get("x-ms-sbc") is None
    # Teams' BYE, addressed to the rewritten Contact along the route: the PBX gets
    # its own Contact back as the Request-URI.
    route = ", ".join(str(entry) for entry in invite.record_routes)
    bye = (
        f"BYE {contact.uri_text} SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 192.0.2.11:5061;branch=z9hG4bK-t2\r\n"
        f"Route: {route}\r\nMax-Forwards: 70\r\n"
        "From: <sip:+4420794600@sip.pstnhub.example>;tag=callee\r\n"
        "To: <sip:100@192.0.2.20>;tag=p1\r\nCall-ID: call-1\r\nCSeq: 5 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    proxy.receive(bye, teams, 0.2)
    ((forwarded, flow),) = out(proxy)
    assert isinstance(forwarded, Request) and flow.remote == PBX.remote
    assert forwarded.uri == "sip:100@192.0.2.20:5060"


def test_rewrite_and_restore_keep_transport_and_leave_others_alone() -> None:
    request = parse_message(pbx_invite().replace(b"5060>", b"5070;transport=tcp>"))
    assert isinstance(request, Request)
    rewrite_contacts(request, TLS)
    rewritten = request.contacts[0].uri_text
    request.uri = rewritten
    assert restore_target(request, lambda uri: uri.host == "sbc.example.com")
    assert request.uri == "sip:100@192.0.2.20:5070;transport=tcp"
    assert not restore_target(request, lambda uri: True)  # nothing marked any more


def test_503_fails_over_to_sip2_but_603_is_final() -> None:
    proxy = make()
    proxy.receive(pbx_invite(1), PBX, 0.0)
    _, (invite, flow) = out(proxy)
    assert isinstance(invite, Request) and flow.remote == SIP
    busy = answer(invite, 503, "Service Unavailable").replace(
        b"Content-Length", b"Retry-After: 30\r\nContent-Length"
    )
    proxy.receive(busy, Flow("tls", TLS.local, SIP, 3), 0.1)
    sent = out(proxy)
    invites = [(m, f) for m, f in sent if isinstance(m, Request) and m.method == "INVITE"]
    assert [f.remote for _, f in invites] == [SIP2]  # sip -> sip2
    # sip rests for its Retry-After: the next call starts at sip2.
    proxy.receive(pbx_invite(2), PBX, 1.0)
    second = [(m, f) for m, f in out(proxy) if isinstance(m, Request) and m.method == "INVITE"]
    assert [f.remote for _, f in second] == [SIP2]
    declined = answer(second[0][0], 603, "Decline")
    proxy.receive(declined, Flow("tls", TLS.local, SIP2, 4), 1.1)
    after = out(proxy)
    # 603: no retry anywhere; the caller gets it (and ACKs are the layer's own).
    assert not [m for m, _ in after if isinstance(m, Request) and m.method == "INVITE"]
    final = [m for m, f in after if isinstance(m, Response) and f == PBX]
    assert [m.status for m in final] == [603]
