"""Calls through Wedge, end to end: SIPp (or the TLS / WebSocket test UAs) on each side.

The network, all on loopback::

    caller (SIPp UAC, TLS UA, WSS UA)                       callee (SIPp UAS, "the PBX")
        127.0.0.1:uac  ----->  edge-udp / edge-tcp  127.0.0.1:E
                               edge-tls  127.0.0.1:T         pbx-udp / pbx-tcp
                               edge-wss  127.0.0.1:W         127.0.0.2:P  ----->  127.0.0.1:U

Each test starts its own Wedge (T1 = 50 ms, so Timer B is 3.2 s) and checks what
each side saw, from SIPp's -trace_msg logs or the UA's own records:

- the initial INVITE at the PBX: Wedge's Via on top, the caller's Via with rport
  filled in, Max-Forwards 69, the Request-URI retargeted to the trunk, and
  exactly two Record-Route entries (RFC 5658: PBX side on top, caller side below,
  ``transport=`` only for non-UDP, ``r2=on``, ``lr``, a flow token each);
- responses reach the caller with Wedge's Via gone and the same Record-Route;
- in-dialog requests (ACK, re-INVITE, BYE) in either direction arrive without a
  Route header and with exactly one Wedge Via (the one for this hop), on the
  other side's own transport;
- CANCEL, 486, 503 (Retry-After kept), 408 from a silent PBX, 503 from an
  unreachable TCP PBX.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gateway.sip import Request, Response, Via
from tests.e2e.conftest import (
    T1,
    ListenerSpec,
    Pki,
    Policy,
    Sipp,
    SippFactory,
    SippResult,
    WedgeFactory,
    free_port,
)
from tests.e2e.siptls import UserAgent, connect_tls
from tests.e2e.sipws import browser_user_agent, connect_ws

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
PBX_SIDE = "127.0.0.2"
SERVICE = "600"
TIMER_B = 64 * T1

TRANSPORTS = ["udp", "tcp"]
# With several workers, the worker's number between the loop hash and the id.
WEDGE_BRANCH = re.compile(r"z9hG4bK-w[0-9a-f]+\.(?:[0-9]+\.)?[0-9a-f]+")
TOKEN = r"[A-Za-z0-9_-]+"


# -- the network ---------------------------------------------------------------------


@dataclass
class Net:
    """Ports and the policy of one test."""

    uac: str
    """The caller's transport (udp, tcp, tls, wss)."""
    pbx: str
    """The trunk's transport (udp, tcp)."""
    edge: int
    """E: edge-udp and edge-tcp on 127.0.0.1."""
    pbx_port: int
    """P: pbx-udp and pbx-tcp on 127.0.0.2."""
    uas: int
    """U: the PBX (SIPp UAS) on 127.0.0.1."""
    uac_port: int
    tls: int
    wss: int
    policy: Policy

    @classmethod
    def make(cls, uac: str, pbx: str) -> Net:
        edge, pbx_port, uas, uac_port = (
            free_port(LOCAL),
            free_port(PBX_SIDE),
            free_port(LOCAL),
            free_port(LOCAL),
        )
        listeners = [
            ListenerSpec("edge-udp", "udp", LOCAL, edge),
            ListenerSpec("edge-tcp", "tcp", LOCAL, edge),
            ListenerSpec("pbx-udp", "udp", PBX_SIDE, pbx_port),
            ListenerSpec("pbx-tcp", "tcp", PBX_SIDE, pbx_port),
        ]
        tls = wss = 0
        if uac == "tls":
            tls = free_port(LOCAL)
            listeners.append(ListenerSpec("edge-tls", "tls", LOCAL, tls))
        if uac == "wss":
            wss = free_port(LOCAL)
            listeners.append(ListenerSpec("edge-wss", "wss", LOCAL, wss))
        policy = Policy(
            listeners=listeners,
            trunks=[
                {
                    "name": "pbx",
                    "uri": f"sip:{LOCAL}:{uas}",
                    "transport": pbx,
                    "listener": f"pbx-{pbx}",
                }
            ],
            routes=[{"name": "all", "to_trunk": "pbx"}],
        )
        return cls(uac, pbx, edge, pbx_port, uas, uac_port, tls, wss, policy)

    @property
    def caller_port(self) -> int:
        """The Wedge port the caller talks to."""
        return {"tls": self.tls, "wss": self.wss}.get(self.uac, self.edge)

    @property
    def remote(self) -> str:
        return f"{LOCAL}:{self.edge}"

    def caller_rr(self) -> str:
        """The pattern of the caller-side Record-Route entry (RFC 5658 r2=on)."""
        transport = "" if self.uac == "udp" else f";transport={self.uac}"
        return rf"<sip:{TOKEN}@{LOCAL}:{self.caller_port}{transport};r2=on;lr{self._worker}>"

    def pbx_rr(self) -> str:
        transport = "" if self.pbx == "udp" else f";transport={self.pbx}"
        return rf"<sip:{TOKEN}@{PBX_SIDE}:{self.pbx_port}{transport};r2=on;lr{self._worker}>"

    @property
    def _worker(self) -> str:
        """With several workers, our entries name the one that wrote them."""
        return r";wk=[0-9]+" if self.policy.workers > 1 else ""


def run_call(
    sipp: SippFactory,
    wedge: WedgeFactory,
    net: Net,
    uac_scenario: str,
    uas_scenario: str | None,
) -> tuple[SippResult, SippResult | None]:
    """Start Wedge, the UAS (if any), then the UAC; wait for both; both must pass."""
    wedge(net.policy)
    callee = (
        sipp(uas_scenario, transport=net.pbx, local_port=net.uas)
        if uas_scenario is not None
        else None
    )
    caller = sipp(
        uac_scenario, transport=net.uac, local_port=net.uac_port, remote=net.remote
    ).wait()
    callee_result = callee.wait() if callee is not None else None
    assert caller.returncode == 0, f"caller failed: {caller.describe()}"
    if callee_result is not None:
        assert callee_result.returncode == 0, f"callee failed: {callee_result.describe()}"
    return caller, callee_result


# -- what a header must look like ----------------------------------------------------


def rr_entries(message: Request | Response) -> list[str]:
    return [str(entry).strip() for entry in message.record_routes]


def route_entries(message: Request | Response) -> list[str]:
    return [str(entry).strip() for entry in message.routes]


def via_texts(message: Request | Response) -> list[str]:
    return [str(via) for via in message.vias]


def assert_wedge_via(via: Via, transport: str, host: str, port: int) -> None:
    """Wedge's own Via: its listener's transport and address, a z9hG4bK-w branch, nothing else."""
    assert (via.transport, via.host, via.port) == (transport.upper(), host, port), str(via)
    assert [name for name, _ in via.params] == ["branch"], str(via)
    assert WEDGE_BRANCH.fullmatch(via.branch or ""), str(via)


def assert_caller_via(seen: Via, sent: Via, rport: int | None) -> None:
    """The caller's Via as Wedge passed it on: as sent, with rport filled in (RFC 3581)
    and no received (the sent-by host is the source address, RFC 3261 18.2.1)."""
    assert (seen.transport, seen.host, seen.port, seen.branch) == (
        sent.transport,
        sent.host,
        sent.port,
        sent.branch,
    ), f"{seen} vs sent {sent}"
    assert seen.received is None, str(seen)
    assert seen.rport is not None, f"rport not filled in: {seen}"
    if rport is not None:
        assert seen.rport == rport, str(seen)
    others = [(n, v) for n, v in seen.params if n not in ("rport", "received")]
    assert others == [(n, v) for n, v in sent.params if n not in ("rport", "received")]


def assert_initial_invite(invite: Request, sent: Request, net: Net, rport: int | None) -> None:
    """The INVITE as the PBX got it."""
    assert invite.uri == f"sip:{SERVICE}@{LOCAL}:{net.uas}", "Request-URI not retargeted"
    assert invite.max_forwards == 69
    assert "route" not in invite.headers
    vias = invite.vias
    assert len(vias) == 2, via_texts(invite)
    assert_wedge_via(vias[0], net.pbx, PBX_SIDE, net.pbx_port)
    assert_caller_via(vias[1], sent.via, rport)
    entries = rr_entries(invite)
    assert len(entries) == 2, entries
    assert re.fullmatch(net.pbx_rr(), entries[0]), f"top Record-Route {entries[0]!r}"
    assert re.fullmatch(net.caller_rr(), entries[1]), f"second Record-Route {entries[1]!r}"
    assert entries[0] != entries[1]
    assert invite.body == sent.body


def assert_upstream_response(response: Response, sent: Request, rport: int | None) -> None:
    """A response as the caller got it: Wedge's Via gone, the caller's own left."""
    assert len(response.vias) == 1, via_texts(response)
    assert_caller_via(response.via, sent.via, rport)


def assert_in_dialog(
    request: Request,
    sent: Request,
    transport: str,
    host: str,
    port: int,
    *,
    target: str,
) -> None:
    """An in-dialog request as the far end got it: to the remote target, no Route left
    (Wedge took its own entries out), no Record-Route added, exactly one Wedge Via
    on top of the sender's own, Max-Forwards one less."""
    assert request.uri == target
    assert "route" not in request.headers, route_entries(request)
    assert "record-route" not in request.headers, rr_entries(request)
    vias = request.vias
    assert len(vias) == len(sent.vias) + 1, via_texts(request)
    assert_wedge_via(vias[0], transport, host, port)
    assert all(not WEDGE_BRANCH.match(via.branch or "") for via in vias[1:]), via_texts(request)
    assert [(v.transport, v.host, v.port, v.branch) for v in vias[1:]] == [
        (v.transport, v.host, v.port, v.branch) for v in sent.vias
    ]
    assert request.max_forwards == (sent.max_forwards or 70) - 1
    assert (request.call_id, str(request.cseq)) == (sent.call_id, str(sent.cseq))


def uac_rport(net: Net) -> int | None:
    """The source port Wedge sees from a SIPp caller: its -p over UDP; an ephemeral
    port over TCP (SIPp connects from one), so not known in advance."""
    return net.uac_port if net.uac == "udp" else None


def only_transport(result: SippResult, transport: str) -> None:
    seen = {item.transport for item in result.messages}
    assert seen == {transport.upper()}, f"messages on {seen}, expected {transport.upper()} only"


# -- the calls -----------------------------------------------------------------------

combos = pytest.mark.parametrize(
    ("uac", "pbx"),
    [(u, p) for u in TRANSPORTS for p in TRANSPORTS],
    ids=[f"{u}-to-{p}" for u in TRANSPORTS for p in TRANSPORTS],
)


@combos
def test_basic_call(sipp: SippFactory, wedge: WedgeFactory, uac: str, pbx: str) -> None:
    net = Net.make(uac, pbx)
    caller, callee = run_call(sipp, wedge, net, "uac_call.xml", "uas_call.xml")
    assert callee is not None
    only_transport(caller, uac)
    only_transport(callee, pbx)
    sent_invite = caller.first("sent", method="INVITE").request

    invite = callee.first("received", method="INVITE").request
    assert_initial_invite(invite, sent_invite, net, uac_rport(net))
    record_route = rr_entries(invite)
    assert rr_entries(callee.first("sent", status=200, cseq_method="INVITE").response) == (
        record_route
    ), "the UAS scenario must echo the Record-Route"

    for status in (180, 200):
        response = caller.first("received", status=status, cseq_method="INVITE").response
        assert_upstream_response(response, sent_invite, uac_rport(net))
        assert rr_entries(response) == record_route, f"Record-Route of the {status}"
    for trying in caller.find("received", status=100):
        assert len(trying.response.vias) == 1, "Wedge's own 100 carries only the caller's Via"

    pbx_contact = callee.first("sent", status=200, cseq_method="INVITE").response.contacts[0]
    for method in ("ACK", "BYE"):
        sent = caller.first("sent", method=method).request
        assert route_entries(sent) == record_route[::-1], "SIPp's route set (rrs)"
        got = callee.first("received", method=method).request
        assert_in_dialog(got, sent, pbx, PBX_SIDE, net.pbx_port, target=pbx_contact.uri_text)
    bye_ok = caller.first("received", status=200, cseq_method="BYE").response
    assert_upstream_response(bye_ok, caller.first("sent", method="BYE").request, uac_rport(net))


@combos
def test_cancel(sipp: SippFactory, wedge: WedgeFactory, uac: str, pbx: str) -> None:
    net = Net.make(uac, pbx)
    caller, callee = run_call(sipp, wedge, net, "uac_cancel.xml", "uas_cancel.xml")
    assert callee is not None
    sent_invite = caller.first("sent", method="INVITE").request
    invite = callee.first("received", method="INVITE").request
    assert_initial_invite(invite, sent_invite, net, uac_rport(net))

    # Wedge answers the CANCEL itself and cancels its own INVITE (RFC 3261 16.10, 9.1):
    # same Request-URI and top Via (branch) as the INVITE it forwarded, no caller Via.
    cancel = callee.first("received", method="CANCEL").request
    assert cancel.uri == invite.uri
    assert via_texts(cancel) == [str(invite.via)]
    assert str(cancel.cseq) == f"{invite.cseq.number} CANCEL"
    assert "route" not in cancel.headers

    cancel_ok = caller.first("received", status=200, cseq_method="CANCEL").response
    assert_upstream_response(cancel_ok, caller.first("sent", method="CANCEL").request, None)
    terminated = caller.first("received", status=487, cseq_method="INVITE").response
    assert_upstream_response(terminated, sent_invite, uac_rport(net))

    # The ACK of the 487 is hop by hop: Wedge's own, in the INVITE's transaction.
    acks = callee.find("received", method="ACK")
    assert acks
    for ack in acks:
        assert via_texts(ack.request) == [str(invite.via)], "the caller's ACK leaked through"
        assert ack.request.uri == invite.uri


@combos
@pytest.mark.parametrize(
    ("uac_scenario", "uas_scenario", "status"),
    [("uac_busy.xml", "uas_busy.xml", 486), ("uac_503.xml", "uas_503.xml", 503)],
    ids=["486", "503"],
)
def test_rejected(
    sipp: SippFactory,
    wedge: WedgeFactory,
    uac: str,
    pbx: str,
    uac_scenario: str,
    uas_scenario: str,
    status: int,
) -> None:
    net = Net.make(uac, pbx)
    caller, callee = run_call(sipp, wedge, net, uac_scenario, uas_scenario)
    assert callee is not None
    sent_invite = caller.first("sent", method="INVITE").request
    invite = callee.first("received", method="INVITE").request
    assert_initial_invite(invite, sent_invite, net, uac_rport(net))

    rejected = caller.first("received", status=status).response
    assert_upstream_response(rejected, sent_invite, uac_rport(net))
    sent_rejection = callee.first("sent", status=status).response
    assert rejected.to.tag == sent_rejection.to.tag
    if status == 503:
        assert rejected.headers.get("Retry-After") == "30", "503 forwarded as it is"
    for ack in callee.find("received", method="ACK"):
        assert via_texts(ack.request) == [str(invite.via)], "ACK of a non-2xx is hop by hop"


class SilentPbx:
    """A PBX that takes the INVITE and never answers: a bound UDP socket, or a TCP
    listener whose connections the kernel accepts and nobody reads."""

    def __init__(self, transport: str, port: int) -> None:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.socket = socket.socket(socket.AF_INET, kind)
        self.socket.bind((LOCAL, port))
        if transport == "tcp":
            self.socket.listen(8)
        self.transport = transport

    def received(self) -> list[bytes]:
        """What reached it (datagrams, or the bytes of the first connection)."""
        self.socket.settimeout(0.2)
        got: list[bytes] = []
        try:
            if self.transport == "udp":
                while True:
                    got.append(self.socket.recv(65536))
            else:
                connection, _ = self.socket.accept()
                with connection:
                    connection.settimeout(0.2)
                    got.append(connection.recv(65536))
        except OSError:
            pass
        return got

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def silent_pbx() -> Iterator[list[SilentPbx]]:
    made: list[SilentPbx] = []
    yield made
    for pbx in made:
        pbx.close()


def invite_to_408_seconds(caller: SippResult) -> float:
    start = caller.first("sent", method="INVITE").time
    end = caller.first("received", status=408).time
    assert start is not None and end is not None
    return end - start


@combos
def test_silent_pbx_gives_408(
    sipp: SippFactory,
    wedge: WedgeFactory,
    silent_pbx: list[SilentPbx],
    uac: str,
    pbx: str,
) -> None:
    net = Net.make(uac, pbx)
    silent = SilentPbx(pbx, net.uas)
    silent_pbx.append(silent)
    caller, _ = run_call(sipp, wedge, net, "uac_timeout.xml", None)

    timeout = caller.first("received", status=408, cseq_method="INVITE").response
    assert_upstream_response(timeout, caller.first("sent", method="INVITE").request, uac_rport(net))
    assert timeout.to.tag, "Wedge's own 408 needs a To tag"
    elapsed = invite_to_408_seconds(caller)
    assert TIMER_B - 0.3 <= elapsed <= TIMER_B + 3.0, f"408 after {elapsed:.2f} s"

    got = silent.received()
    assert got and got[0].startswith(b"INVITE "), got
    if pbx == "udp":
        # Timer A retransmits over UDP: 50, 100, 200 ... ms until Timer B.
        assert len(got) >= 3, f"{len(got)} INVITE(s) reached the silent PBX"


@pytest.mark.parametrize("uac", TRANSPORTS)
def test_unreachable_tcp_pbx_gives_503(sipp: SippFactory, wedge: WedgeFactory, uac: str) -> None:
    """Nothing listens at the trunk's address: the connect fails, the caller gets 503
    at once (not after Timer B)."""
    net = Net.make(uac, "tcp")
    caller, _ = run_call(sipp, wedge, net, "uac_503.xml", None)
    unavailable = caller.first("received", status=503, cseq_method="INVITE")
    assert_upstream_response(
        unavailable.response, caller.first("sent", method="INVITE").request, uac_rport(net)
    )
    start = caller.first("sent", method="INVITE").time
    assert start is not None and unavailable.time is not None
    assert unavailable.time - start < TIMER_B, "503 should not wait for Timer B"


@pytest.mark.parametrize("uac", TRANSPORTS)
def test_unreachable_udp_pbx_gives_408(sipp: SippFactory, wedge: WedgeFactory, uac: str) -> None:
    """Nothing listens at the trunk's UDP address: ICMP port-unreachable names no
    transaction (gateway/transport/udp.py), so the INVITE times out with 408."""
    net = Net.make(uac, "udp")
    caller, _ = run_call(sipp, wedge, net, "uac_timeout.xml", None)
    elapsed = invite_to_408_seconds(caller)
    assert TIMER_B - 0.3 <= elapsed <= TIMER_B + 3.0, f"408 after {elapsed:.2f} s"


@combos
def test_reinvite_from_caller(sipp: SippFactory, wedge: WedgeFactory, uac: str, pbx: str) -> None:
    net = Net.make(uac, pbx)
    caller, callee = run_call(sipp, wedge, net, "uac_reinvite.xml", "uas_reinvite.xml")
    assert callee is not None
    only_transport(caller, uac)
    only_transport(callee, pbx)
    invites = callee.find("received", method="INVITE")
    assert_initial_invite(
        invites[0].request, caller.first("sent", method="INVITE").request, net, uac_rport(net)
    )
    record_route = rr_entries(invites[0].request)
    pbx_contact = callee.first("sent", status=200, cseq_method="INVITE").response.contacts[0]

    sent = [item.request for item in caller.find("sent", method="INVITE")]
    reinvite_sent = next(r for r in sent if r.cseq.number == 2)
    assert route_entries(reinvite_sent) == record_route[::-1]
    reinvite = next(i.request for i in invites if i.request.cseq.number == 2)
    assert_in_dialog(
        reinvite, reinvite_sent, pbx, PBX_SIDE, net.pbx_port, target=pbx_contact.uri_text
    )
    assert reinvite.body == reinvite_sent.body

    answers = caller.find("received", status=200, cseq_method="INVITE")
    answer = next(a.response for a in answers if a.response.cseq.number == 2)
    assert_upstream_response(answer, reinvite_sent, uac_rport(net))
    acks = [a.request for a in callee.find("received", method="ACK")]
    ack_sent = next(
        a.request for a in caller.find("sent", method="ACK") if a.request.cseq.number == 2
    )
    ack = next(a for a in acks if a.cseq.number == 2)
    assert_in_dialog(ack, ack_sent, pbx, PBX_SIDE, net.pbx_port, target=pbx_contact.uri_text)


def check_request_from_callee(
    net: Net, caller: SippResult, callee: SippResult, method: str, cseq: int
) -> tuple[Request, Request]:
    """A request the PBX sends in the dialog, as it sent it and as the caller got it."""
    invite = callee.first("received", method="INVITE").request
    record_route = rr_entries(invite)
    sent = next(
        item.request
        for item in callee.find("sent", method=method)
        if item.request.cseq.number == cseq
    )
    assert route_entries(sent) == record_route, "the callee's route set is the Record-Route"
    got = next(
        item.request
        for item in caller.find("received", method=method)
        if item.request.cseq.number == cseq
    )
    caller_contact = caller.first("sent", method="INVITE").request.contacts[0].uri_text
    assert_in_dialog(got, sent, net.uac, LOCAL, net.edge, target=caller_contact)
    return sent, got


@combos
def test_reinvite_from_callee(sipp: SippFactory, wedge: WedgeFactory, uac: str, pbx: str) -> None:
    net = Net.make(uac, pbx)
    caller, callee = run_call(
        sipp, wedge, net, "uac_reinvite_callee.xml", "uas_reinvite_callee.xml"
    )
    assert callee is not None
    only_transport(caller, uac)
    only_transport(callee, pbx)
    sent, got = check_request_from_callee(net, caller, callee, "INVITE", 101)
    assert got.body == sent.body
    # The 200 goes back to the PBX with only the PBX's own Via.
    answer = next(
        item.response
        for item in callee.find("received", status=200, cseq_method="INVITE")
        if item.response.cseq.number == 101
    )
    assert via_texts(answer) == via_texts(sent)
    check_request_from_callee(net, caller, callee, "ACK", 101)


@combos
def test_bye_from_callee(sipp: SippFactory, wedge: WedgeFactory, uac: str, pbx: str) -> None:
    net = Net.make(uac, pbx)
    caller, callee = run_call(
        sipp, wedge, net, "uac_bye_from_callee.xml", "uas_bye_from_callee.xml"
    )
    assert callee is not None
    only_transport(caller, uac)  # the BYE came on the caller's own transport
    only_transport(callee, pbx)
    sent, _ = check_request_from_callee(net, caller, callee, "BYE", 101)
    bye_ok = callee.first("received", status=200, cseq_method="BYE").response
    assert via_texts(bye_ok) == via_texts(sent)


# -- TLS and WebSocket callers ---------------------------------------------------------


async def secure_call(ua: UserAgent, net: Net, callee: Sipp) -> SippResult:
    """Call the PBX, answer its re-INVITE and its BYE; the PBX's result."""
    ok = await ua.call(f"sip:{SERVICE}@{LOCAL}:{net.caller_port}")
    assert ok.status == 200
    await ua.answer_reinvite()
    await ua.answer_bye()
    return await asyncio.to_thread(callee.wait)


def check_secure_call(ua: UserAgent, callee: SippResult, net: Net) -> None:
    assert callee.returncode == 0, callee.describe()
    sent_invite = next(m for m in ua.sent if isinstance(m, Request) and m.method == "INVITE")
    invite = callee.first("received", method="INVITE").request

    # At the PBX: the caller's Via as sent, plus received (a .invalid host is not
    # the source address) and rport.
    assert invite.uri == f"sip:{SERVICE}@{LOCAL}:{net.uas}"
    assert invite.max_forwards == 69
    assert len(invite.vias) == 2, via_texts(invite)
    assert_wedge_via(invite.vias[0], net.pbx, PBX_SIDE, net.pbx_port)
    caller_via = invite.vias[1]
    local_port = ua.channel.local[1]
    sent_via = sent_invite.via
    assert (caller_via.transport, caller_via.host, caller_via.port, caller_via.branch) == (
        net.uac.upper(),
        sent_via.host,
        sent_via.port,
        sent_via.branch,
    )
    expected_params = {"branch": sent_invite.via.branch, "rport": str(local_port)}
    if net.uac == "wss":
        expected_params["received"] = LOCAL
    assert dict(caller_via.params) == expected_params, str(caller_via)
    entries = rr_entries(invite)
    assert len(entries) == 2, entries
    assert re.fullmatch(net.pbx_rr(), entries[0]), entries[0]
    assert re.fullmatch(net.caller_rr(), entries[1]), entries[1]

    # At the caller: the 200 with the same Record-Route and only the caller's Via.
    ok = next(
        m
        for m in ua.received
        if isinstance(m, Response) and m.status == 200 and m.cseq.method == "INVITE"
    )
    assert rr_entries(ok) == entries
    assert len(ok.vias) == 1 and ok.via.branch == sent_invite.via.branch, via_texts(ok)
    ack = next(m for m in ua.sent if isinstance(m, Request) and m.method == "ACK")
    assert route_entries(ack) == entries[::-1]

    # The PBX's re-INVITE, its ACK and its BYE, routed by the flow token to the
    # caller's own connection: no Route left, Wedge's one Via for this hop.
    for method, cseq in (("INVITE", 101), ("ACK", 101), ("BYE", 102)):
        sent = next(
            item.request
            for item in callee.find("sent", method=method)
            if item.request.cseq.number == cseq
        )
        assert route_entries(sent) == entries
        got = next(
            m
            for m in ua.received
            if isinstance(m, Request) and m.method == method and m.cseq.number == cseq
        )
        assert_in_dialog(got, sent, net.uac, LOCAL, net.caller_port, target=ua.contact)
    for status_method in ("INVITE", "BYE"):
        answer = next(
            item.response
            for item in callee.find("received", status=200, cseq_method=status_method)
            if item.response.cseq.number >= 101
        )
        assert len(answer.vias) == 1, via_texts(answer)


@pytest.mark.parametrize("pbx", TRANSPORTS)
async def test_tls_caller(sipp: SippFactory, wedge: WedgeFactory, pki: Pki, pbx: str) -> None:
    net = Net.make("tls", pbx)
    wedge(net.policy)
    callee = sipp("uas_callee_reinvite_bye.xml", transport=pbx, local_port=net.uas)
    channel = await connect_tls(LOCAL, net.tls, pki.ca)
    host, port = channel.local
    ua = UserAgent(channel, contact=f"sip:alice@{host}:{port};transport=tls")
    try:
        async with asyncio.timeout(25):
            result = await secure_call(ua, net, callee)
    finally:
        await ua.close()
    check_secure_call(ua, result, net)


@pytest.mark.parametrize("pbx", TRANSPORTS)
async def test_wss_caller(sipp: SippFactory, wedge: WedgeFactory, pki: Pki, pbx: str) -> None:
    net = Net.make("wss", pbx)
    wedge(net.policy)
    callee = sipp("uas_callee_reinvite_bye.xml", transport=pbx, local_port=net.uas)
    channel = await connect_ws(f"wss://{LOCAL}:{net.wss}/", pki.ca)
    ua = browser_user_agent(channel)
    try:
        async with asyncio.timeout(25):
            result = await secure_call(ua, net, callee)
    finally:
        await ua.close()
    check_secure_call(ua, result, net)
