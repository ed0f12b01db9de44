"""Wedge as the edge proxy in front of a registrar: Path (RFC 3327) and flow tokens.

The network, all on loopback::

    browsers (WebSocket UAs,         Wedge                    Kamailio (registrar + "PBX",
    .invalid Via and Contact)                                 tests/e2e/kamailio/registrar.cfg)
       alice, bob  -- wss -->  browsers 127.0.0.1:S
       carol, dave -- ws  -->  plain    127.0.0.1:W
                               core     127.0.0.1:U  <- udp ->  127.0.0.1:K  <- udp -  SIPp UAC

Clients register through Wedge, which adds ``Path: <sip:TOKEN@127.0.0.1:U;lr;ob>``
(the token names the client's WebSocket) and forwards the REGISTER to Kamailio.
SIPp calls a user at Kamailio, which looks it up and sends the INVITE along the
stored Path to Wedge; Wedge sends it on the flow the token names: the client's
own WebSocket, though the client's Contact is a ``.invalid`` host. A closed
WebSocket makes that 430 Flow Failed; a forged token 403; a client on a
connection without ``Supported: path`` 421.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import time
from dataclasses import dataclass

import pytest

from gateway.sip import Request, Response, parse_message
from tests.e2e.conftest import (
    Kamailio,
    KamailioFactory,
    ListenerSpec,
    Pki,
    Policy,
    Sipp,
    SippFactory,
    SippResult,
    Wedge,
    WedgeFactory,
    free_port,
)
from tests.e2e.siptls import SDP, UserAgent
from tests.e2e.sipws import WsChannel, connect_ws
from tests.helpers.messages import answer

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
DOMAIN = "wedge.test"
TOKEN = r"[A-Za-z0-9_-]+"
TEST_TIMEOUT = 25.0
"""The longest one test's body may take (every step inside has its own bound too)."""
CALL_TIMEOUT = 10.0
"""The longest a client waits for an INVITE SIPp sends via Kamailio and Wedge."""


# -- the network ---------------------------------------------------------------------


@dataclass
class Net:
    wedge: Wedge
    kamailio: Kamailio
    core: int
    """U: Wedge's UDP listener, facing Kamailio (the Path and Record-Route host)."""
    wss: int
    ws: int

    @property
    def kamailio_address(self) -> str:
        return f"{LOCAL}:{self.kamailio.port}"

    def path_pattern(self) -> str:
        """Wedge's Path entry, as the registrar stores and echoes it."""
        return rf"<sip:({TOKEN})@{LOCAL}:{self.core};lr;ob>"

    def record_route_patterns(self) -> list[str]:
        """The Record-Route of a call to a browser: Wedge's two entries (RFC 5658,
        browser side on top), then Kamailio's."""
        return [
            rf"<sip:{TOKEN}@{LOCAL}:{self.wss};transport=wss;r2=on;lr>",
            rf"<sip:{TOKEN}@{LOCAL}:{self.core};r2=on;lr>",
            rf"<sip:{LOCAL}:{self.kamailio.port};lr>",
        ]


def start_network(kamailio: KamailioFactory, wedge: WedgeFactory) -> Net:
    """Kamailio and Wedge on free ports. A port free_port() found can be taken by
    another process (an ephemeral port of a concurrent load test) before the
    server binds it; a server that exits at start is retried on new ports."""
    for attempt in range(3):
        try:
            return _start_network(kamailio, wedge)
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_network(kamailio: KamailioFactory, wedge: WedgeFactory) -> Net:
    registrar = kamailio(host=LOCAL, port=free_port(LOCAL))
    core, wss, ws = free_port(LOCAL), free_port(LOCAL), free_port(LOCAL)
    policy = Policy(
        listeners=[
            ListenerSpec("core", "udp", LOCAL, core),
            ListenerSpec("browsers", "wss", LOCAL, wss),
            ListenerSpec("plain", "ws", LOCAL, ws),
        ],
        trunks=[
            {
                "name": "registrar",
                "uri": registrar.uri,
                "transport": "udp",
                "listener": "core",
            }
        ],
        routes=[{"name": "to-registrar", "to_trunk": "registrar"}],
    )
    return Net(wedge(policy), registrar, core, wss, ws)


# -- a browser-like client: registers, answers calls, hangs up -------------------------


def _text(message: Request | Response) -> str:
    return bytes(message).decode("utf-8", "replace")


class Client:
    """A SIP-over-WebSocket UA for user ``user``: Via and Contact on a ``.invalid``
    host (RFC 7118 §5), so a request can only reach it over its own connection."""

    def __init__(self, user: str, channel: WsChannel) -> None:
        self.user = user
        self.host = f"{secrets.token_hex(6)}.invalid"
        self.ua = UserAgent(
            channel, via_host=self.host, contact=f"sip:{user}@{self.host};transport=ws"
        )
        self.tag = secrets.token_hex(4)
        self.invite: Request | None = None
        self.cseq = 0

    @property
    def contact(self) -> str:
        return self.ua.contact

    def _via(self) -> str:
        return (
            f"Via: SIP/2.0/{self.ua.channel.transport} {self.host}"
            f";branch=z9hG4bK-{secrets.token_hex(6)};rport"
        )

    def register_request(
        self,
        *,
        supported_path: bool = True,
        contact: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> Request:
        self.cseq += 1
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            self._via(),
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={self.tag}",
            f"To: <sip:{self.user}@{DOMAIN}>",
            f"Call-ID: reg-{self.user}-{self.tag}@{self.host}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <{contact or self.contact}>;expires=600",
        ]
        if supported_path:
            lines.append("Supported: path")
        lines += [*extra, "Content-Length: 0"]
        message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert isinstance(message, Request)
        return message

    async def final_response(self, method: str, timeout: float = 5.0) -> Response:
        """The next final response to ``method`` (provisional ones skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ua.receive(timeout)
                if isinstance(message, Response) and message.cseq.method == method:
                    if message.status >= 200:
                        return message
                else:
                    raise AssertionError(f"{self.user}: unexpected message:\n{_text(message)}")

    async def register(self, **options: object) -> Response:
        await self.ua.send(self.register_request(**options))  # type: ignore[arg-type]
        return await self.final_response("REGISTER")

    # -- as the called party ---------------------------------------------------------

    def _answer(self, invite: Request, status: int, reason: str, body: str = "") -> Response:
        """A response to the INVITE: Via, From, Call-ID, CSeq copied, our To tag, the
        Record-Route echoed (RFC 3261 §12.1.1), our Contact."""
        message = parse_message(
            answer(invite, status, reason, to_tag=self.tag, contact=self.contact, body=body)
        )
        assert isinstance(message, Response)
        return message

    async def answer_call(self) -> tuple[Request, Request]:
        """Wait for an INVITE, answer 180 then 200, wait for the ACK."""
        invite = await self.ua.expect_request("INVITE", CALL_TIMEOUT)
        self.invite = invite
        await self.ua.send(self._answer(invite, 180, "Ringing"))
        await self.ua.send(self._answer(invite, 200, "OK", SDP.format(version=1)))
        ack = await self.ua.expect_request("ACK", CALL_TIMEOUT)
        return invite, ack

    async def hang_up(self) -> Response:
        """BYE as the callee: to the caller's Contact, along the Record-Route in
        order (the UAS's route set, RFC 3261 §12.1.1)."""
        invite = self.invite
        assert invite is not None
        lines = [
            f"BYE {invite.contacts[0].uri_text} SIP/2.0",
            self._via(),
            "Max-Forwards: 70",
        ]
        lines += [f"Route: {entry}" for entry in invite.record_routes]
        lines += [
            f"From: {invite.headers.get('to')};tag={self.tag}",
            f"To: {invite.headers.get('from')}",
            f"Call-ID: {invite.call_id}",
            "CSeq: 1 BYE",
            "Content-Length: 0",
        ]
        bye = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert isinstance(bye, Request)
        await self.ua.send(bye)
        return await self.final_response("BYE", CALL_TIMEOUT)

    async def answer_bye(self) -> Request:
        bye = await self.ua.expect_request("BYE", CALL_TIMEOUT)
        await self.ua.send(self.ua.reply(bye, 200, "OK"))
        return bye

    async def nothing_more(self, wait: float = 0.3) -> None:
        """Nothing else arrives on this connection for ``wait`` seconds."""
        with contextlib.suppress(TimeoutError):
            message = await self.ua.receive(wait)
            raise AssertionError(f"{self.user} got an unexpected message:\n{_text(message)}")

    async def close(self) -> None:
        await self.ua.close()


async def ws_client(user: str, url: str, pki: Pki | None = None) -> Client:
    return Client(user, await connect_ws(url, pki.ca if pki else None))


async def registered(net: Net, user: str, pki: Pki) -> tuple[Client, str]:
    """A client on the WSS listener, registered; and the token of its Path."""
    client = await ws_client(user, f"wss://{LOCAL}:{net.wss}/", pki)
    ok = await client.register()
    assert ok.status == 200, _text(ok)
    # The registrar stored Wedge's Path and echoes it (path_mode 1, Supported: path).
    paths = [str(entry).strip() for entry in ok.paths]
    assert len(paths) == 1, paths
    match = re.fullmatch(net.path_pattern(), paths[0])
    assert match, f"Path {paths[0]!r} is not Wedge's {net.path_pattern()}"
    assert [c.uri_text for c in ok.contacts] == [client.contact], _text(ok)
    return client, match[1]


def kamailio_routed(net: Net, user: str, token: str) -> bool:
    """Kamailio's log says it sent an INVITE for ``user`` to Wedge along the Path."""
    dst = f"dst sip:{token}@{LOCAL}:{net.core};lr;ob"
    return any(
        f"INVITE to {user}:" in line and dst in line for line in net.kamailio.log.splitlines()
    )


def kamailio_register_arrivals(net: Net, user: str) -> list[tuple[int, int, str]]:
    """The REGISTERs for ``user`` Kamailio received: size, Path count, top Path."""
    pattern = re.compile(
        rf"REGISTER of sip:{user}@\S+ arrived: (\d+) bytes, (\d+) Path headers, top Path (.*)$"
    )
    found = []
    for line in net.kamailio.log.splitlines():
        match = pattern.search(line)
        if match:
            found.append((int(match[1]), int(match[2]), match[3].strip()))
    return found


def call(sipp: SippFactory, net: Net, scenario: str, user: str) -> Sipp:
    """SIPp calls ``user`` at Kamailio (over UDP); started, not waited for."""
    return sipp(
        scenario,
        transport="udp",
        local_port=free_port(LOCAL),
        remote=net.kamailio_address,
        service=user,
    )


async def finished(process: Sipp) -> SippResult:
    return await asyncio.to_thread(process.wait)


def check_invite_at_client(net: Net, client: Client, invite: Request, caller: SippResult) -> None:
    """The INVITE SIPp sent reached ``client``: its Call-ID, retargeted by Kamailio
    to the client's Contact, Wedge's Route entry gone, Record-Route of three."""
    sent = caller.first("sent", method="INVITE").request
    assert invite.call_id == sent.call_id, "another call's INVITE reached this client"
    assert invite.uri == client.contact
    assert "route" not in invite.headers, invite.headers.get_all("route")
    entries = [str(entry).strip() for entry in invite.record_routes]
    patterns = net.record_route_patterns()
    assert len(entries) == len(patterns), entries
    for entry, pattern in zip(entries, patterns, strict=True):
        assert re.fullmatch(pattern, entry), f"Record-Route {entry!r} vs {pattern}"
    ok = caller.first("received", status=200, cseq_method="INVITE").response
    assert [str(e).strip() for e in ok.record_routes] == entries


# -- the tests -----------------------------------------------------------------------


async def test_register_and_receive_calls(
    sipp: SippFactory, wedge: WedgeFactory, kamailio: KamailioFactory, pki: Pki
) -> None:
    net = start_network(kamailio, wedge)
    async with asyncio.timeout(TEST_TIMEOUT):
        alice, alice_token = await registered(net, "alice", pki)
        bob, bob_token = await registered(net, "bob", pki)
        try:
            assert alice_token != bob_token

            # Call 1: SIPp -> Kamailio -> Wedge -> alice's WebSocket; SIPp hangs up.
            caller = call(sipp, net, "reg_uac_call.xml", "alice")
            invite, _ = await alice.answer_call()
            bye = await alice.answer_bye()
            first = await finished(caller)
            assert first.returncode == 0, first.describe()
            check_invite_at_client(net, alice, invite, first)
            assert bye.uri == alice.contact and bye.call_id == invite.call_id
            assert "route" not in bye.headers
            assert kamailio_routed(net, "alice", alice_token), net.kamailio.log
            await bob.nothing_more(0.1)

            # Call 2: to bob, on his own connection; bob hangs up, SIPp gets the BYE.
            caller = call(sipp, net, "reg_uac_callee_bye.xml", "bob")
            invite, _ = await bob.answer_call()
            bye_ok = await bob.hang_up()
            assert bye_ok.status == 200, _text(bye_ok)
            second = await finished(caller)
            assert second.returncode == 0, second.describe()
            check_invite_at_client(net, bob, invite, second)
            got_bye = second.first("received", method="BYE").request
            assert got_bye.call_id == invite.call_id
            assert got_bye.uri == invite.contacts[0].uri_text
            # Kamailio's Via, Wedge's (core side), bob's own.
            vias = got_bye.vias
            assert len(vias) == 3, [str(v) for v in vias]
            assert (vias[1].host, vias[1].port) == (LOCAL, net.core), str(vias[1])
            assert vias[2].host == bob.host, str(vias[2])
            assert kamailio_routed(net, "bob", bob_token), net.kamailio.log
            await alice.nothing_more(0.1)

            # alice's WebSocket goes away; her registration stays at Kamailio, so
            # the next INVITE comes to Wedge with her token: 430 Flow Failed.
            await alice.close()
            await asyncio.sleep(0.2)
            caller = call(sipp, net, "reg_uac_430.xml", "alice")
            third = await finished(caller)
            assert third.returncode == 0, third.describe()
            failed = third.first("received", status=430).response
            assert failed.reason == "Flow Failed", _text(failed)
            await bob.nothing_more(0.2)
        finally:
            await alice.close()
            await bob.close()


async def test_register_without_path_support_gets_421(
    wedge: WedgeFactory, kamailio: KamailioFactory
) -> None:
    net = start_network(kamailio, wedge)
    async with asyncio.timeout(TEST_TIMEOUT):
        dave = await ws_client("dave", f"ws://{LOCAL}:{net.ws}/")
        try:
            refused = await dave.register(supported_path=False)
            assert refused.status == 421, _text(refused)
            assert refused.headers.get_all("require") == ["path"], _text(refused)
            # With path support the same client registers.
            ok = await dave.register()
            assert ok.status == 200, _text(ok)
        finally:
            await dave.close()
    arrived = kamailio_register_arrivals(net, "dave")
    assert len(arrived) == 1, f"the 421 REGISTER reached Kamailio:\n{net.kamailio.log}"
    assert arrived[0][1] == 1, arrived  # Wedge's Path, added to the second one


def udp_request(port: int, text: str, timeout: float = 5.0) -> Response:
    """Send one request over UDP to Wedge at ``port``; its final response.

    ``text`` has ``{via}`` where the Via goes. Retransmitted every 0.5 s (T1 is
    short in the test policy, but nothing is lost on loopback anyway).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCAL, 0))
        sock.settimeout(0.5)
        branch = f"z9hG4bK-{secrets.token_hex(6)}"
        via = f"SIP/2.0/UDP {LOCAL}:{sock.getsockname()[1]};branch={branch};rport"
        data = text.format(via=via).replace("\n", "\r\n").encode()
        deadline = time.monotonic() + timeout
        sock.sendto(data, (LOCAL, port))
        while time.monotonic() < deadline:
            try:
                reply, _ = sock.recvfrom(65535)
            except TimeoutError:
                sock.sendto(data, (LOCAL, port))
                continue
            message = parse_message(reply)
            if isinstance(message, Response) and message.status >= 200:
                return message
        raise TimeoutError(f"no final response from Wedge in {timeout} s to:\n{text}")


def routed_invite(route: str) -> str:
    """An initial INVITE as a registrar would send it along a Path: Route first."""
    call_id = secrets.token_hex(8)
    return (
        "INVITE sip:alice@x.invalid;transport=ws SIP/2.0\n"
        "Via: {via}\n"
        "Max-Forwards: 70\n"
        f"Route: {route}\n"
        f"From: <sip:mallory@{DOMAIN}>;tag=m1\n"
        f"To: <sip:alice@{DOMAIN}>\n"
        f"Call-ID: {call_id}@forger\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:mallory@127.0.0.1:9>\n"
        "Content-Length: 0\n\n"
    )


async def test_forged_path_token_gets_403(
    wedge: WedgeFactory, kamailio: KamailioFactory, pki: Pki
) -> None:
    net = start_network(kamailio, wedge)
    async with asyncio.timeout(TEST_TIMEOUT):
        alice, token = await registered(net, "alice", pki)
        try:
            # A made-up token on Wedge's core listener.
            forged = await asyncio.to_thread(
                udp_request, net.core, routed_invite(f"<sip:AAAAforged@{LOCAL}:{net.core};lr>")
            )
            assert forged.status == 403, _text(forged)
            # alice's real token with one character changed: the HMAC fails.
            flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
            tampered = await asyncio.to_thread(
                udp_request,
                net.core,
                routed_invite(f"<sip:{flipped}@{LOCAL}:{net.core};lr;ob>"),
            )
            assert tampered.status == 403, _text(tampered)
            await alice.nothing_more(0.3)
        finally:
            await alice.close()


async def test_oversized_register_leaves_other_registrations_alone(
    sipp: SippFactory, wedge: WedgeFactory, kamailio: KamailioFactory, pki: Pki
) -> None:
    """50 Path headers and a 10 KB Contact from one client: Wedge answers it or
    forwards it (with its own Path on top), and bob's registration still works."""
    net = start_network(kamailio, wedge)
    async with asyncio.timeout(TEST_TIMEOUT):
        bob, bob_token = await registered(net, "bob", pki)
        carol = await ws_client("carol", f"ws://{LOCAL}:{net.ws}/")
        try:
            paths = tuple(f"Path: <sip:hop{i}.example.net;lr>" for i in range(50))
            huge = f"sip:carol@{carol.host};transport=ws;pad={'a' * 10_240}"
            request = carol.register_request(contact=huge, extra=paths)
            assert len(bytes(request)) > 12_000
            await carol.ua.send(request)
            answer = await carol.final_response("REGISTER")
            own = answer.headers.get("server") == "Wedge"
            print(f"oversized REGISTER: {answer.status} {answer.reason} (from Wedge: {own})")
            assert 200 <= answer.status < 700, _text(answer)
            arrived = kamailio_register_arrivals(net, "carol")
            if own:
                assert not arrived, "Wedge answered the REGISTER and forwarded it too"
            else:
                # Forwarded (RFC 3327 §5.2): Wedge's own Path on top of the 50 it got.
                assert len(arrived) == 1, net.kamailio.log
                size, count, top = arrived[0]
                print(f"forwarded to the registrar over UDP: {size} bytes, {count} Path")
                assert count == 51, count
                assert re.fullmatch(net.path_pattern(), top), top

            # bob is still reachable on his own connection.
            caller = call(sipp, net, "reg_uac_call.xml", "bob")
            invite, _ = await bob.answer_call()
            await bob.answer_bye()
            result = await finished(caller)
            assert result.returncode == 0, result.describe()
            check_invite_at_client(net, bob, invite, result)
            assert kamailio_routed(net, "bob", bob_token), net.kamailio.log
            await carol.nothing_more(0.2)
            assert net.wedge.process is not None and net.wedge.process.poll() is None
        finally:
            await carol.close()
            await bob.close()
