"""A UDP client behind a NAT registers through Wedge and receives a call.

The network: three network namespaces this test makes (names end in the test's
pid) and removes at teardown; nothing in the root namespace is touched::

    wedge-lan-PID               wedge-rtr-PID                  wedge-srv-PID
    client (Python UA)          router: MASQUERADE,            Wedge  lan  10.98.0.1:5060
    10.99.0.2:5060  ---veth---  10.99.0.1 | 10.98.0.2 ---veth---        core 127.0.0.1:5062
                                ports 40000-40999                Kamailio   127.0.0.1:5070
                                                                 SIPp UAC   127.0.0.1:5090

The client's Via and Contact say 10.99.0.2:5060, a private address: the server
namespace has no route to 10.99.0.0/24 at all, so Wedge and Kamailio can reach
the client only through the NAT binding its REGISTER opened (10.98.0.2 and a
translated port in 40000-40999). Wedge learns that binding from the source
address (Via received/rport, RFC 3581) and writes it into its Path token;
Kamailio stores the Path and sends the INVITE for the client along it; Wedge
sends it to the binding, not to the Contact.

Needs root (CAP_NET_ADMIN) and nft or iptables: without them the test fails
and says so (it is not skipped).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.sip import Request, Response, parse_message
from tests.e2e.conftest import (
    ROOT,
    SIPP,
    KamailioFactory,
    ListenerSpec,
    Policy,
    Sipp,
    WedgeFactory,
    _attach,
    netns_socket,
)
from tests.helpers.messages import answer

pytestmark = pytest.mark.e2e

SERVER_IP = "10.98.0.1"
ROUTER_WAN_IP = "10.98.0.2"
ROUTER_LAN_IP = "10.99.0.1"
CLIENT_IP = "10.99.0.2"
CLIENT_PORT = 5060
NAT_PORTS = (40000, 40999)
WEDGE_LAN_PORT = 5060
WEDGE_CORE_PORT = 5062
KAMAILIO_PORT = 5070
SIPP_PORT = 5090
LOOPBACK = "127.0.0.1"
DOMAIN = "wedge.test"
TOKEN = r"[A-Za-z0-9_-]+"
COMMAND_TIMEOUT = 10.0


# -- the namespaces ------------------------------------------------------------------


@dataclass
class NatNet:
    server: str
    router: str
    lan: str
    log: list[str] = field(default_factory=list)
    """The commands run and their output, for the report of a failed test."""


def _run(net: NatNet, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = shlex.join(args)
    try:
        done = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        net.log.append(f"$ {command}\n{exc!r}")
        raise
    net.log.append(f"$ {command}\nexit {done.returncode} {done.stdout}{done.stderr}".rstrip())
    return done


def _must(net: NatNet, *args: str, stdin: str | None = None) -> None:
    done = _run(net, *args, stdin=stdin)
    if done.returncode != 0:
        pytest.fail(
            f"building the NAT test network failed: {shlex.join(args)} exited "
            f"{done.returncode}: {done.stderr.strip()}\n(this test needs root or "
            "CAP_NET_ADMIN + CAP_SYS_ADMIN to create network namespaces, veth pairs and NAT)",
            pytrace=False,
        )


def _masquerade(net: NatNet, wan: str) -> None:
    """Source NAT on the router's WAN side, to a port range (so the port changes)."""
    low, high = NAT_PORTS
    if shutil.which("nft"):
        rules = (
            "table ip wedgenat {\n"
            "  chain post {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{wan}" meta l4proto udp masquerade to :{low}-{high};\n'
            "  }\n"
            "}\n"
        )
        _must(net, "ip", "netns", "exec", net.router, "nft", "-f", "-", stdin=rules)
    elif shutil.which("iptables"):
        _must(
            net, "ip", "netns", "exec", net.router,
            "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", wan, "-p", "udp",
            "-j", "MASQUERADE", "--to-ports", f"{low}-{high}",
        )  # fmt: skip
    else:
        pytest.fail(
            "the NAT test needs nft or iptables to build its NAT (apt-get install nftables)",
            pytrace=False,
        )


@pytest.fixture
def nat_net(request: pytest.FixtureRequest) -> Iterator[NatNet]:
    """The three namespaces, their veth pairs, addresses, routes and the NAT."""
    if shutil.which("ip") is None:
        pytest.fail("the NAT test needs iproute2 ('ip')", pytrace=False)
    pid = os.getpid()
    net = NatNet(f"wedge-srv-{pid}", f"wedge-rtr-{pid}", f"wedge-lan-{pid}")
    _attach(request, lambda: ("NAT network", "\n".join(net.log)))
    namespaces = (net.server, net.router, net.lan)
    for name in namespaces:  # left over by an earlier run killed with this pid
        if Path(f"/run/netns/{name}").exists():
            _run(net, "ip", "netns", "del", name)
    try:
        for name in namespaces:
            _must(net, "ip", "netns", "add", name)
        # veth ends made directly inside their namespaces (never in the root one).
        server_if, wan_if = f"ws{pid}", f"wr{pid}"
        lan_if, client_if = f"wl{pid}", f"wc{pid}"
        _must(net, "ip", "link", "add", server_if, "netns", net.server,
              "type", "veth", "peer", "name", wan_if, "netns", net.router)  # fmt: skip
        _must(net, "ip", "link", "add", lan_if, "netns", net.router,
              "type", "veth", "peer", "name", client_if, "netns", net.lan)  # fmt: skip
        for name, interface, address in (
            (net.server, server_if, f"{SERVER_IP}/24"),
            (net.router, wan_if, f"{ROUTER_WAN_IP}/24"),
            (net.router, lan_if, f"{ROUTER_LAN_IP}/24"),
            (net.lan, client_if, f"{CLIENT_IP}/24"),
        ):
            _must(net, "ip", "-n", name, "addr", "add", address, "dev", interface)
            _must(net, "ip", "-n", name, "link", "set", interface, "up")
        for name in namespaces:
            _must(net, "ip", "-n", name, "link", "set", "lo", "up")
        _must(net, "ip", "-n", net.lan, "route", "add", "default", "via", ROUTER_LAN_IP)
        _must(net, "ip", "netns", "exec", net.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _masquerade(net, wan_if)
        yield net
    finally:
        for name in namespaces:
            if Path(f"/run/netns/{name}").exists():
                _run(net, "ip", "netns", "del", name)
        left = [name for name in namespaces if Path(f"/run/netns/{name}").exists()]
        assert not left, f"network namespaces not removed: {left}"


# -- processes in the server namespace -------------------------------------------------


@pytest.fixture
def netns_sipp(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Sipp]]:
    """``netns_sipp(netns, scenario, **options) -> Sipp``: a SIPp client run with
    ``ip netns exec``; killed at teardown. Fails without SIPp (the NAT test
    already needs root; it should not vanish quietly)."""
    if SIPP is None:
        pytest.fail("SIPp is not installed (no 'sipp' on PATH)", pytrace=False)
    started: list[Sipp] = []

    def start(netns: str, scenario: str, **options: object) -> Sipp:
        process = Sipp(scenario, workdir=tmp_path, **options)  # type: ignore[arg-type]
        assert process.remote is not None, "only clients: servers are waited for by port"
        process.args = ["ip", "netns", "exec", netns, *process.args]
        started.append(process)
        _attach(request, process.diagnostics)
        return process.start()

    yield start
    for process in started:
        process.stop()


def wedge_in(netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``wedge`` fixture start Wedge inside ``netns`` (``ip netns exec``
    execs the command: the pid, and so SIGTERM at teardown, are Wedge's own)."""
    override = os.environ.get("WEDGE_E2E_COMMAND")
    if override:
        command = override
    else:
        venv_python = ROOT / ".venv" / "bin" / "python"
        python = str(venv_python) if venv_python.exists() else sys.executable
        command = shlex.join([python, "-m", "gateway.cli", "run"])
    monkeypatch.setenv("WEDGE_E2E_COMMAND", f"ip netns exec {shlex.quote(netns)} {command}")


# -- the client behind the NAT -----------------------------------------------------------


class UdpClient:
    """A SIP UA on one UDP socket in the LAN namespace, 10.99.0.2:5060."""

    def __init__(self, sock: socket.socket, user: str) -> None:
        self.sock = sock
        self.user = user
        self.contact = f"sip:{user}@{CLIENT_IP}:{CLIENT_PORT}"
        self.tag = secrets.token_hex(4)
        self.received: list[tuple[Request | Response, tuple[str, int]]] = []

    def _via(self) -> str:
        return f"SIP/2.0/UDP {CLIENT_IP}:{CLIENT_PORT};branch=z9hG4bK-{secrets.token_hex(6)};rport"

    def send(self, message: Request | Response | str, to: tuple[str, int]) -> None:
        data = message.encode() if isinstance(message, str) else bytes(message)
        self.sock.sendto(data, to)

    def receive(self, wait: float) -> tuple[Request | Response, tuple[str, int]] | None:
        self.sock.settimeout(max(wait, 0.001))
        try:
            data, source = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        message = parse_message(data)
        self.received.append((message, source))
        return message, source

    def register(self, server: tuple[str, int], timeout: float = 5.0) -> Response:
        """REGISTER (Supported: path), retransmitted every 0.5 s; the final response."""
        request = "\r\n".join(
            [
                f"REGISTER sip:{DOMAIN} SIP/2.0",
                f"Via: {self._via()}",
                "Max-Forwards: 70",
                f"From: <sip:{self.user}@{DOMAIN}>;tag={self.tag}",
                f"To: <sip:{self.user}@{DOMAIN}>",
                f"Call-ID: reg-{self.tag}@{CLIENT_IP}",
                "CSeq: 1 REGISTER",
                f"Contact: <{self.contact}>;expires=600",
                "Supported: path",
                "Content-Length: 0",
                "",
                "",
            ]
        )
        deadline = time.monotonic() + timeout
        self.send(request, server)
        while time.monotonic() < deadline:
            got = self.receive(min(0.5, deadline - time.monotonic()))
            if got is None:
                self.send(request, server)
                continue
            message, _ = got
            if isinstance(message, Response) and message.status >= 200:
                return message
        raise TimeoutError(f"no final response to REGISTER in {timeout} s")

    def _answer(self, invite: Request, status: int, reason: str, body: str = "") -> str:
        return answer(
            invite, status, reason, to_tag=self.tag, contact=self.contact, body=body
        ).decode()

    def answer_call(self, timeout: float = 10.0) -> tuple[Request, tuple[str, int]]:
        """Wait for an INVITE; 180 and 200 (the 200 resent every 0.5 s, RFC 3261
        §13.3.1.4) until its ACK; then wait for the BYE and answer it 200."""
        deadline = time.monotonic() + timeout
        invite: Request | None = None
        source: tuple[str, int] | None = None
        while invite is None:
            got = self.receive(deadline - time.monotonic())
            if got is None:
                raise TimeoutError(f"no INVITE reached the client behind the NAT in {timeout} s")
            message, source = got
            if isinstance(message, Request) and message.method == "INVITE":
                invite = message
        assert source is not None
        sdp = (
            "v=0\r\no=carol 1 1 IN IP4 10.99.0.2\r\ns=-\r\nc=IN IP4 10.99.0.2\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        ringing = self._answer(invite, 180, "Ringing")
        ok = self._answer(invite, 200, "OK", sdp)
        self.send(ringing, source)
        self.send(ok, source)
        last_sent = time.monotonic()
        acked = False
        while time.monotonic() < deadline:
            got = self.receive(min(0.5, deadline - time.monotonic()))
            if got is None:
                if not acked and time.monotonic() - last_sent >= 0.5:
                    self.send(ok, source)
                    last_sent = time.monotonic()
                continue
            message, came_from = got
            if not isinstance(message, Request):
                continue
            if message.method == "INVITE":  # a retransmission: our answer again
                self.send(ok, came_from)
            elif message.method == "ACK":
                acked = True
            elif message.method == "BYE":
                reply = "\r\n".join(
                    [
                        "SIP/2.0 200 OK",
                        *[f"Via: {value}" for value in message.headers.get_all("via")],
                        f"From: {message.headers.get('from')}",
                        f"To: {message.headers.get('to')}",
                        f"Call-ID: {message.call_id}",
                        f"CSeq: {message.cseq}",
                        "Content-Length: 0",
                        "",
                        "",
                    ]
                )
                self.send(reply, came_from)
                assert acked, "BYE before the ACK"
                return invite, source
        raise TimeoutError(f"the call to the client behind the NAT did not end in {timeout} s")


# -- the test --------------------------------------------------------------------------


def test_client_behind_nat_registers_and_receives_a_call(
    nat_net: NatNet,
    netns_sipp: Callable[..., Sipp],
    kamailio: KamailioFactory,
    wedge: WedgeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = nat_net
    # Wedge and Kamailio cannot reach the client's own address: no route at all.
    with netns_socket(net.server) as probe, pytest.raises(OSError) as unreachable:
        probe.sendto(b"\r\n\r\n", (CLIENT_IP, CLIENT_PORT))
    assert unreachable.value.errno == 101, unreachable.value  # ENETUNREACH

    registrar = kamailio(host=LOOPBACK, port=KAMAILIO_PORT, netns=net.server)
    wedge_in(net.server, monkeypatch)
    wedge(
        Policy(
            listeners=[
                ListenerSpec("lan", "udp", SERVER_IP, WEDGE_LAN_PORT),
                ListenerSpec("core", "udp", LOOPBACK, WEDGE_CORE_PORT),
            ],
            trunks=[
                {"name": "registrar", "uri": registrar.uri, "transport": "udp", "listener": "core"}
            ],
            routes=[{"name": "clients", "from_listener": "lan", "to_trunk": "registrar"}],
        )
    )

    with netns_socket(net.lan) as sock:
        sock.bind((CLIENT_IP, CLIENT_PORT))
        client = UdpClient(sock, "carol")
        ok = client.register((SERVER_IP, WEDGE_LAN_PORT))
        assert ok.status == 200, bytes(ok).decode(errors="replace")
        # Wedge saw the REGISTER from the NAT's address and a translated port.
        via = ok.via
        assert (via.host, via.port) == (CLIENT_IP, CLIENT_PORT), str(via)
        assert via.received == ROUTER_WAN_IP, str(via)
        assert via.rport is not None and NAT_PORTS[0] <= via.rport <= NAT_PORTS[1], str(via)
        # Kamailio stored Wedge's Path, whose token names that binding.
        paths = [str(entry).strip() for entry in ok.paths]
        assert len(paths) == 1, paths
        path = re.fullmatch(rf"<sip:({TOKEN})@{LOOPBACK}:{WEDGE_CORE_PORT};lr;ob>", paths[0])
        assert path, paths[0]
        assert [c.uri_text for c in ok.contacts] == [client.contact]

        caller = netns_sipp(
            net.server,
            "reg_uac_call.xml",
            transport="udp",
            local_port=SIPP_PORT,
            remote=f"{LOOPBACK}:{KAMAILIO_PORT}",
            service="carol",
        )
        try:
            invite, source = client.answer_call()
        except BaseException:
            caller.stop()  # do not wait for SIPp's own timeout
            raise
        result = caller.wait()
    assert result.returncode == 0, result.describe()

    # The INVITE came from Wedge's LAN listener, through the NAT binding.
    assert source == (SERVER_IP, WEDGE_LAN_PORT), source
    assert invite.call_id == result.first("sent", method="INVITE").request.call_id
    assert invite.uri == client.contact
    assert "route" not in invite.headers, invite.headers.get_all("route")
    record_route = [str(entry).strip() for entry in invite.record_routes]
    assert len(record_route) == 3, record_route
    assert re.fullmatch(rf"<sip:{TOKEN}@{SERVER_IP}:{WEDGE_LAN_PORT};r2=on;lr>", record_route[0])
    assert re.fullmatch(rf"<sip:{TOKEN}@{LOOPBACK}:{WEDGE_CORE_PORT};r2=on;lr>", record_route[1])
    # Kamailio sent it along the stored Path, to the client's private Contact.
    dst = f"ruri {client.contact} dst sip:{path[1]}@{LOOPBACK}:{WEDGE_CORE_PORT};lr;ob"
    assert any("INVITE to carol:" in line and dst in line for line in registrar.log.splitlines()), (
        registrar.log
    )
    # The BYE (SIPp hung up) took the same way and was answered.
    assert result.find("received", status=200, cseq_method="BYE"), result.log
    # Every message the client got came through the NAT from Wedge's LAN listener.
    assert {came_from for _, came_from in client.received} == {(SERVER_IP, WEDGE_LAN_PORT)}
