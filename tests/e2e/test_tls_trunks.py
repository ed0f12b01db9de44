"""TLS trunks end to end: mutual TLS and pins with Kamailio, Teams-style keep-alives and
failover with TLS peers of the test, openssl s_client, hot reload, bad files at start.

The network, all on loopback (the trunk peers on their own addresses, since Wedge
tells a trunk's connections by their source address)::

    SIPp UAC --udp--> Kamailio 127.0.0.2 --tls (client cert, SNI sbc.wedge.test)--+
                                                                                  v
    SIPp UAC --udp--> Wedge edge-udp 127.0.0.1:U      Wedge carrier-tls 127.0.0.1:T
                          |                               |
                          +--tls (our client cert, SNI)-->+ Kamailio 127.0.0.2:KT
                      Wedge --udp--> SIPp UAS 127.0.0.1:S <-- udp -- Kamailio

    Teams-style peers of the test (ssl servers): sip/sip2/sip3.trunk.wedge.test on
    127.0.0.3-5, a peer with another host's certificate on 127.0.0.6, one with a
    key nobody pinned on 127.0.0.7.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certs.generate import (
    cert_pem,
    key_pem,
    make_ca,
    make_certificate,
    spki_pin_sha256,
    write_pem,
)
from gateway.sip import Request, Response, parse_message
from gateway.sip.framing import MessageFramed, StreamFramer
from tests.e2e.conftest import (
    SCALE,
    KamailioFactory,
    ListenerSpec,
    Policy,
    SippFactory,
    Wedge,
    WedgeFactory,
    free_port,
    port_bound,
    wedge_command,
)
from tests.e2e.siptls import UserAgent, connect_tls
from tests.helpers.messages import answer

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
KAMAILIO_IP = "127.0.0.2"
FQDN = "sbc.wedge.test"
TRUNK_NAME = "trunk.wedge.test"
OPENSSL = shutil.which("openssl")
WAIT = 10.0 * SCALE


# -- certificates ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrunkPki:
    folder: Path
    wedge_ca: Path
    wedge_cert: Path
    wedge_key: Path
    tenant_cert: Path
    tenant_key: Path
    carrier_ca: Path
    kam_cert: Path
    kam_key: Path
    kam_pin: str
    peers_cert: Path
    peers_key: Path
    rogue_cert: Path
    rogue_key: Path
    unpinned_cert: Path
    unpinned_key: Path
    unpinned_pin: str
    wrong_host_cert: Path
    wrong_host_key: Path


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> TrunkPki:
    now = datetime.now(UTC)
    folder = tmp_path_factory.mktemp("trunk-pki")

    def save(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        write_pem(folder / f"{name}.pem", cert_pem(cert))
        write_pem(folder / f"{name}.key", key_pem(key))

    wedge_ca, wedge_ca_key = make_ca("Wedge E2E CA", now=now)
    carrier_ca, carrier_ca_key = make_ca("Carrier E2E CA", now=now)
    rogue_ca, rogue_ca_key = make_ca("Rogue E2E CA", now=now)
    save("wedge-ca", wedge_ca, wedge_ca_key)
    save("carrier-ca", carrier_ca, carrier_ca_key)
    server, server_key = make_certificate(
        wedge_ca, wedge_ca_key, FQDN, [FQDN], [LOCAL], now=now, also_client=True
    )
    save("wedge", server, server_key)
    tenant, tenant_key = make_certificate(wedge_ca, wedge_ca_key, "tenant-b.wedge.test", now=now)
    save("tenant", tenant, tenant_key)
    kam, kam_key = make_certificate(
        carrier_ca, carrier_ca_key, TRUNK_NAME, [TRUNK_NAME], [KAMAILIO_IP], now=now,
        also_client=True,
    )  # fmt: skip
    save("kam", kam, kam_key)
    peers, peers_key = make_certificate(
        carrier_ca, carrier_ca_key, "*.trunk.wedge.test", ["*.trunk.wedge.test"], now=now
    )
    save("peers", peers, peers_key)
    rogue, rogue_key = make_certificate(
        rogue_ca, rogue_ca_key, TRUNK_NAME, [TRUNK_NAME], now=now, also_client=True
    )
    save("rogue", rogue, rogue_key)
    unpinned, unpinned_key = make_certificate(
        carrier_ca, carrier_ca_key, TRUNK_NAME, [TRUNK_NAME], now=now, also_client=True
    )
    save("unpinned", unpinned, unpinned_key)
    wrong, wrong_key = make_certificate(carrier_ca, carrier_ca_key, "other.wedge.test", now=now)
    save("wrong", wrong, wrong_key)
    return TrunkPki(
        folder,
        folder / "wedge-ca.pem",
        folder / "wedge.pem",
        folder / "wedge.key",
        folder / "tenant.pem",
        folder / "tenant.key",
        folder / "carrier-ca.pem",
        folder / "kam.pem",
        folder / "kam.key",
        spki_pin_sha256(kam),
        folder / "peers.pem",
        folder / "peers.key",
        folder / "rogue.pem",
        folder / "rogue.key",
        folder / "unpinned.pem",
        folder / "unpinned.key",
        spki_pin_sha256(unpinned),
        folder / "wrong.pem",
        folder / "wrong.key",
    )


# -- Wedge with a policy written here ---------------------------------------------------


@dataclass
class TextPolicy(Policy):
    """A policy written here as TOML text (the fields only tell when Wedge is ready)."""

    text: str = ""

    def toml(self) -> str:
        return self.text


WedgeRunner = Callable[[str, list[ListenerSpec]], Wedge]


@pytest.fixture
def run_wedge(wedge: WedgeFactory) -> WedgeRunner:
    """``run_wedge(toml, listeners)``: Wedge with this policy text, started and ready."""
    return lambda text, listeners: wedge(TextPolicy(listeners=listeners, text=text))


async def wait_for_log(wedge: Wedge, pattern: str, timeout: float = WAIT) -> re.Match[str]:
    """The first match of ``pattern`` in Wedge's log, once there. Waits without
    blocking the loop: the test's own peers must keep answering meanwhile."""
    async with asyncio.timeout(timeout):
        while (match := re.search(pattern, wedge.stderr)) is None:
            await asyncio.sleep(0.02)
    return match


# -- peers of the test -------------------------------------------------------------------


class TlsSipPeer:
    """A TLS trunk peer: answers OPTIONS 200, INVITE with ``invite_status``, BYE 200;
    or nothing at all while ``answering`` is False. Records requests and SNI."""

    def __init__(self, host: str, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.host = host
        self.port = 0
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.sni: list[str | None] = []
        self.context.sni_callback = lambda _obj, name, _ctx: self.sni.append(name)
        self.requests: list[Request] = []
        self.client_subjects: list[str] = []
        self.answering = True
        self.invite_status = 480
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(self) -> TlsSipPeer:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def invites(self) -> list[Request]:
        return [r for r in self.requests if r.method == "INVITE"]

    def options(self) -> list[Request]:
        return [r for r in self.requests if r.method == "OPTIONS"]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.append(writer)
        cert = writer.get_extra_info("peercert") or {}
        self.client_subjects += [
            value for ((key, value),) in cert.get("subject", ()) if key == "commonName"
        ]
        framer = StreamFramer()
        try:
            while chunk := await reader.read(65536):
                for event in framer.receive_data(chunk):
                    if isinstance(event, MessageFramed):
                        self._handle(parse_message(event.data), writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _handle(self, message: Request | Response, writer: asyncio.StreamWriter) -> None:
        if not isinstance(message, Request):
            return
        self.requests.append(message)
        if not self.answering or message.method == "ACK":
            return
        status = self.invite_status if message.method == "INVITE" else 200
        reason = {480: "Temporarily Unavailable", 503: "Service Unavailable", 603: "Decline"}
        data = answer(message, status, reason.get(status, "OK"), contact=f"sip:peer@{self.host}")
        if status == 503:
            data = data.replace(b"Content-Length", b"Retry-After: 30\r\nContent-Length")
        writer.write(data)

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()


class UdpCaller(asyncio.DatagramProtocol):
    """A caller on UDP: INVITE, wait for the final response, ACK it if not 2xx."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            self.queue.put_nowait(message)

    async def call(self, user: str, edge: tuple[str, int]) -> Response:
        assert self.transport is not None
        port = self.transport.get_extra_info("sockname")[1]
        branch, tag, call_id = (secrets.token_hex(4) for _ in range(3))
        head = (
            f"sip:{user}@{edge[0]}:{edge[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOCAL}:{port};branch=z9hG4bK-{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:caller@{LOCAL}>;tag={tag}\r\n"
        )
        invite = (
            f"INVITE {head}To: <sip:{user}@{edge[0]}>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:caller@{LOCAL}:{port}>\r\nContent-Length: 0\r\n\r\n"
        )
        self.transport.sendto(invite.encode(), edge)
        async with asyncio.timeout(WAIT):
            while (response := await self.queue.get()).status < 200 or (
                response.call_id != call_id
            ):
                pass
        if response.status >= 300:
            to = response.headers.get("to")
            ack = (
                f"ACK {head}To: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            self.transport.sendto(ack.encode(), edge)
        return response


async def udp_caller() -> UdpCaller:
    loop = asyncio.get_running_loop()
    transport, caller = await loop.create_datagram_endpoint(UdpCaller, local_addr=(LOCAL, 0))
    caller.transport = transport
    return caller


async def tls_client(
    port: int, pki: TrunkPki, cert: Path | None, key: Path | None
) -> tuple[bool, str]:
    """Connect from Kamailio's address as the trunk would, send an OPTIONS, and say
    whether Wedge answered it (and how the connection ended)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.wedge_ca))
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    try:
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(
                LOCAL, port, ssl=context, server_hostname=FQDN, local_addr=(KAMAILIO_IP, 0)
            )
            writer.write(
                (
                    f"OPTIONS sip:{FQDN}:{port};transport=tls SIP/2.0\r\n"
                    f"Via: SIP/2.0/TLS {KAMAILIO_IP}:5061;branch=z9hG4bK-{secrets.token_hex(4)}\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:probe@trunk.wedge.test>;tag=x\r\n"
                    f"To: <sip:{FQDN}>\r\nCall-ID: {secrets.token_hex(6)}\r\n"
                    "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                ).encode()
            )
            data = await reader.read(65536)
            writer.close()
    except (ssl.SSLError, ConnectionError) as exc:
        return False, type(exc).__name__
    return data.startswith(b"SIP/2.0 200"), "closed" if not data else "answered"


def s_client(port: int, pki: TrunkPki, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(OPENSSL or "openssl", "s_client", "-brief", "-connect", f"{LOCAL}:{port}"),
            *("-CAfile", str(pki.wedge_ca), *options),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


# -- 1. mutual TLS and pins with Kamailio, and openssl s_client ---------------------------


def kamailio_tls_cfg(folder: Path, pki: TrunkPki) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    chain = folder / "kam-chain.pem"
    chain.write_bytes(pki.kam_cert.read_bytes() + pki.carrier_ca.read_bytes())
    profile = (
        "method = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n"
        f"private_key = {pki.kam_key}\ncertificate = {chain}\nca_list = {pki.wedge_ca}\n"
    )
    path = folder / "tls.cfg"
    path.write_text(f"[server:default]\n{profile}\n[client:default]\n{profile}")
    return path


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
async def test_mutual_tls_trunk_with_kamailio_pins_and_s_client(
    run_wedge: WedgeRunner,
    kamailio: KamailioFactory,
    sipp: SippFactory,
    tls_pki: TrunkPki,
    tmp_path: Path,
) -> None:
    edge, tls, uas = free_port(), free_port(), free_port()
    kam_udp, kam_tls = free_port(KAMAILIO_IP), free_port(KAMAILIO_IP)
    pki = tls_pki
    peer = kamailio(
        host=KAMAILIO_IP,
        port=kam_udp,
        config="tls-peer.cfg",
        defines={
            "KAM_TLS_PORT": str(kam_tls),
            "TLS_CFG": f'"{kamailio_tls_cfg(tmp_path / "kam-tls", pki)}"',
            "WEDGE_TLS": f'"sip:{LOCAL}:{tls};transport=tls"',
            "WEDGE_NAME": f'"{FQDN}"',
            "UAS": f'"sip:{LOCAL}:{uas}"',
        },
    )
    wedge = run_wedge(
        f"""
[wedge]
fqdn = "{FQDN}"
t1 = 0.05
t4 = 0.5
cert_watch = 0
[media]
relay = "none"
[[listener]]
name = "edge-udp"
transport = "udp"
bind = "{LOCAL}:{edge}"
[[listener]]
name = "carrier-tls"
transport = "tls"
bind = "{LOCAL}:{tls}"
cert = "{pki.wedge_cert}"
key = "{pki.wedge_key}"
sni = [{{ cert = "{pki.tenant_cert}", key = "{pki.tenant_key}" }}]
ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
x_ms_sbc = true
[[trunk]]
name = "carrier"
uri = "sip:{KAMAILIO_IP}:{kam_tls};transport=tls"
listener = "carrier-tls"
tls_ca = "{pki.carrier_ca}"
tls_name = "{TRUNK_NAME}"
require_client_cert = true
pin_sha256 = ["{pki.kam_pin}"]
options_interval = 0.5
[[trunk]]
name = "pbx"
uri = "sip:{LOCAL}:{uas}"
[[route]]
name = "from-carrier"
from_trunk = "carrier"
to_trunk = "pbx"
[[route]]
name = "to-carrier"
to_trunk = "carrier"
""",
        [
            ListenerSpec("edge-udp", "udp", LOCAL, edge),
            ListenerSpec("carrier-tls", "tls", LOCAL, tls),
        ],
    )
    callee = sipp("uas_call.xml", local_port=uas, calls=2)

    # Inbound: Kamailio connects with its pinned client certificate: accepted, the call
    # goes through Wedge to the PBX.
    inbound = sipp("uac_call.xml", local_port=free_port(), remote=f"{KAMAILIO_IP}:{kam_udp}")
    result = await asyncio.to_thread(inbound.wait)
    assert result.returncode == 0, result.describe()
    # Outbound: Wedge connects to Kamailio with its client certificate and SNI, and
    # checks the pin of Kamailio's server certificate.
    outbound = sipp("uac_call.xml", local_port=free_port(), remote=f"{LOCAL}:{edge}")
    result = await asyncio.to_thread(outbound.wait)
    assert result.returncode == 0, result.describe()
    assert (await asyncio.to_thread(callee.wait)).returncode == 0

    log = peer.log
    invite = re.search(r"INVITE over tls from 127\.0\.0\.1 (.*)", log)
    assert invite is not None, log
    assert f"sni=[{TRUNK_NAME}] client=[{FQDN}] verified=[1]" in invite.group(1)
    assert "rr=[<sip:" in invite.group(1) and f"@{FQDN}:{tls};transport=tls;r2=on;lr>" in (
        invite.group(1)
    )
    assert re.search(r"x-ms-sbc=\[Wedge/SBC/[^\]]+\]", invite.group(1))
    # The keep-alive OPTIONS, Teams style: the FQDN in Contact, From and Via.
    options = re.search(r"OPTIONS over tls from 127\.0\.0\.1 (.*)", log)
    assert options is not None, log
    assert f"contact=[<sip:{FQDN}:{tls};transport=tls>]" in options.group(1)
    assert f"from=[sip:wedge@{FQDN}:{tls}]" in options.group(1)
    assert f"via=[SIP/2.0/TLS {FQDN}:{tls};branch=" in options.group(1)
    assert "refused" not in wedge.stderr

    # The trunk's address with a certificate from another CA, with a valid chain but a
    # key nobody pinned, and with no certificate at all: each refused and logged.
    answered, _ = await tls_client(tls, pki, pki.rogue_cert, pki.rogue_key)
    assert not answered
    await wait_for_log(wedge, r"tls handshake failed listener=carrier-tls peer=127\.0\.0\.2:\d+ "
                 r"reason=certificate verify failed")  # fmt: skip
    answered, _ = await tls_client(tls, pki, pki.unpinned_cert, pki.unpinned_key)
    assert not answered
    refusal = await wait_for_log(
        wedge,
        r"tls peer refused listener=carrier-tls peer=127\.0\.0\.2:\d+ direction=in "
        r"trunk=carrier reason='pin mismatch' (.*)",
    )
    assert refusal.group(1) == f"presented={pki.unpinned_pin} expected={pki.kam_pin}"
    answered, _ = await tls_client(tls, pki, None, None)
    assert not answered
    await wait_for_log(
        wedge, r"peer=127\.0\.0\.2:\d+ reason=tls error: PEER_DID_NOT_RETURN_A_CERTIFICATE"
    )

    # openssl s_client from elsewhere: TLS 1.1 refused, the configured 1.2 ciphers only,
    # 1.3, and the certificate SNI chooses.
    assert s_client(tls, pki, "-tls1_1").returncode != 0
    brief = s_client(tls, pki, "-tls1_2", "-servername", FQDN)
    assert brief.returncode == 0, brief.stderr
    assert "Protocol version: TLSv1.2" in brief.stderr
    assert "Ciphersuite: ECDHE-ECDSA-AES256-GCM-SHA384" in brief.stderr
    assert f"Peer certificate: CN = {FQDN}" in brief.stderr
    refused = s_client(tls, pki, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert refused.returncode != 0
    brief = s_client(tls, pki, "-tls1_3", "-servername", "tenant-b.wedge.test")
    assert brief.returncode == 0, brief.stderr
    assert "Protocol version: TLSv1.3" in brief.stderr
    assert "Peer certificate: CN = tenant-b.wedge.test" in brief.stderr


# -- 2. Teams-style keep-alives, failover, and peers refused on the way out ---------------


async def test_keepalives_failover_and_refused_peers(
    run_wedge: WedgeRunner, tls_pki: TrunkPki
) -> None:
    pki = tls_pki
    sip, sip2, sip3 = [
        await TlsSipPeer(host, pki.peers_cert, pki.peers_key, pki.wedge_ca).start()
        for host in ("127.0.0.3", "127.0.0.4", "127.0.0.5")
    ]
    wrong_host = await TlsSipPeer("127.0.0.6", pki.wrong_host_cert, pki.wrong_host_key).start()
    unpinned = await TlsSipPeer("127.0.0.7", pki.unpinned_cert, pki.unpinned_key).start()
    peers = [sip, sip2, sip3, wrong_host, unpinned]
    edge, tls = free_port(), free_port()
    targets = ", ".join(
        f'{{ address = "{peer.host}:{peer.port}", priority = {10 * n}, '
        f'tls_name = "{name}.trunk.wedge.test" }}'
        for n, (peer, name) in enumerate(((sip, "sip"), (sip2, "sip2"), (sip3, "sip3")), 1)
    )
    wedge = run_wedge(
        f"""
[wedge]
fqdn = "{FQDN}"
t1 = 0.05
t4 = 0.5
cert_watch = 0
[media]
relay = "none"
[[listener]]
name = "edge-udp"
transport = "udp"
bind = "{LOCAL}:{edge}"
[[listener]]
name = "teams"
transport = "tls"
bind = "{LOCAL}:{tls}"
cert = "{pki.wedge_cert}"
key = "{pki.wedge_key}"
x_ms_sbc = "Wedge/E2E/{{version}}"
[[trunk]]
name = "teams"
uri = "sip:sip.trunk.wedge.test:5061;transport=tls"
targets = [{targets}]
tls_ca = "{pki.carrier_ca}"
options_interval = 0.3
options_timeout = 0.3
down_after = 2
up_after = 1
[[trunk]]
name = "wrong-host"
uri = "sip:{wrong_host.host}:{wrong_host.port};transport=tls"
tls_ca = "{pki.carrier_ca}"
tls_name = "{TRUNK_NAME}"
[[trunk]]
name = "unpinned"
uri = "sip:{unpinned.host}:{unpinned.port};transport=tls"
tls_ca = "{pki.carrier_ca}"
tls_name = "{TRUNK_NAME}"
pin_sha256 = ["{pki.kam_pin}"]
[[route]]
name = "wrong-host"
user_prefix = "wrong"
to_trunk = "wrong-host"
[[route]]
name = "unpinned"
user_prefix = "unpinned"
to_trunk = "unpinned"
[[route]]
name = "teams"
to_trunk = "teams"
""",
        [ListenerSpec("edge-udp", "udp", LOCAL, edge), ListenerSpec("teams", "tls", LOCAL, tls)],
    )
    caller = await udp_caller()
    to_edge = (LOCAL, edge)
    try:
        # Keep-alives reach every target, Teams style, over mutual TLS with SNI.
        await poll(lambda: all(peer.options() for peer in (sip, sip2, sip3)))
        options = sip.options()[0]
        assert options.uri == f"sip:sip.trunk.wedge.test:{sip.port};transport=tls"
        assert options.headers.get("contact") == f"<sip:{FQDN}:{tls};transport=tls>"
        assert options.from_.uri_text == f"sip:wedge@{FQDN}:{tls}"
        assert str(options.via).startswith(f"SIP/2.0/TLS {FQDN}:{tls};branch=")
        assert re.fullmatch(r"Wedge/E2E/\S+", options.headers.get("x-ms-sbc") or "")
        assert (options.headers.get("user-agent") or "").startswith("Wedge/")
        assert sip.sni[0] == "sip.trunk.wedge.test" and sip2.sni[0] == "sip2.trunk.wedge.test"
        assert sip.client_subjects == [FQDN]  # our client certificate, verified by the peer

        # sip answers: the call goes there.
        assert (await caller.call("100", to_edge)).status == 480
        assert len(sip.invites()) == 1 and not sip2.invites()
        # sip stops answering: its keep-alives fail, it goes down, the next call
        # goes to sip2 without trying sip.
        sip.answering = False
        await wait_for_log(
            wedge, rf"trunk target down trunk=teams target=tls:{sip.host}:{sip.port}"
        )
        assert (await caller.call("101", to_edge)).status == 480
        assert len(sip.invites()) == 1 and len(sip2.invites()) == 1
        # sip answers again: back up, used again.
        sip.answering = True
        await wait_for_log(wedge, rf"trunk target up trunk=teams target=tls:{sip.host}:{sip.port}")
        assert (await caller.call("102", to_edge)).status == 480
        assert len(sip.invites()) == 2 and len(sip2.invites()) == 1
        # 503 with Retry-After at sip: on to sip2; 603 there is final, sip3 never asked.
        sip.invite_status, sip2.invite_status = 503, 603
        assert (await caller.call("103", to_edge)).status == 603
        assert len(sip.invites()) == 3 and len(sip2.invites()) == 2 and not sip3.invites()
        await wait_for_log(wedge, rf"trunk target resting trunk=teams target=tls:{sip.host}:\d+ "
                     r"seconds=30 reason='503'")  # fmt: skip

        # A peer whose certificate names another host: refused, 503, and the log says why.
        assert (await caller.call("wrong1", to_edge)).status == 503
        await wait_for_log(
            wedge,
            rf"connect failed listener=teams transport=tls remote={wrong_host.host}:"
            rf"{wrong_host.port} reason=connect failed: certificate verify failed: Hostname "
            rf"mismatch, certificate is not valid for '{TRUNK_NAME}'",
        )
        # A peer with a valid chain but a key nobody pinned: refused after the handshake.
        assert (await caller.call("unpinned1", to_edge)).status == 503
        refusal = await wait_for_log(
            wedge,
            rf"tls peer refused listener=teams peer={unpinned.host}:{unpinned.port} "
            r"direction=out trunk=unpinned reason='pin mismatch' (.*)",
        )
        assert refusal.group(1) == f"presented={pki.unpinned_pin} expected={pki.kam_pin}"
        assert not wrong_host.requests and not unpinned.requests
    finally:
        assert caller.transport is not None
        caller.transport.close()
        for peer in peers:
            await peer.stop()


async def poll(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# -- 3. hot reload ------------------------------------------------------------------------


def server_pin(channel: object) -> str:
    writer = getattr(channel, "writer")  # noqa: B009 - TlsChannel's stream writer
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return spki_pin_sha256(x509.load_der_x509_certificate(der))


def replace(path: Path, data: bytes) -> None:
    """Replace a file the way renewal tools do: write beside it, then rename over it."""
    fresh = path.with_suffix(".new")
    write_pem(fresh, data)
    os.replace(fresh, path)


async def test_sighup_reloads_certificates_and_calls_up_stay_up(
    run_wedge: WedgeRunner, sipp: SippFactory, tls_pki: TrunkPki, tmp_path: Path
) -> None:
    pki = tls_pki
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "server.pem", live / "server.key"
    shutil.copy(pki.wedge_cert, cert)
    shutil.copy(pki.wedge_key, key)
    tls, pbx_side, uas = free_port(), free_port(), free_port()
    wedge = run_wedge(
        f"""
[wedge]
fqdn = "{FQDN}"
t1 = 0.05
t4 = 0.5
cert_watch = 0
[media]
relay = "none"
[[listener]]
name = "edge-tls"
transport = "tls"
bind = "{LOCAL}:{tls}"
cert = "{cert}"
key = "{key}"
[[listener]]
name = "pbx-side"
transport = "udp"
bind = "{LOCAL}:{pbx_side}"
[[trunk]]
name = "pbx"
uri = "sip:{LOCAL}:{uas}"
[[route]]
name = "all"
to_trunk = "pbx"
""",
        [
            ListenerSpec("edge-tls", "tls", LOCAL, tls),
            ListenerSpec("pbx-side", "udp", LOCAL, pbx_side),
        ],
    )
    assert wedge.process is not None
    callee = sipp("uas_call.xml", local_port=uas)
    channel = await connect_tls(LOCAL, tls, pki.wedge_ca, server_hostname=FQDN)
    old_pin = server_pin(channel)
    host, port = channel.local
    ua = UserAgent(channel, contact=f"sip:alice@{host}:{port};transport=tls")
    await ua.call(f"sip:600@{FQDN}:{tls};transport=tls")

    # A renewed certificate (new key, same names): SIGHUP, and new handshakes get it.
    renewed_ca, renewed_ca_key = make_ca("Wedge E2E CA (renewal)", now=datetime.now(UTC))
    renewed, renewed_key = make_certificate(
        renewed_ca, renewed_ca_key, FQDN, [FQDN], [LOCAL], now=datetime.now(UTC)
    )
    replace(key, key_pem(renewed_key))
    replace(cert, cert_pem(renewed) + cert_pem(renewed_ca))
    bundle = tmp_path / "both-cas.pem"
    bundle.write_bytes(pki.wedge_ca.read_bytes() + cert_pem(renewed_ca))
    os.kill(wedge.process.pid, signal.SIGHUP)
    await wait_for_log(wedge, r"tls reloaded why=SIGHUP result=ok")
    fresh = await connect_tls(LOCAL, tls, bundle, server_hostname=FQDN)
    assert server_pin(fresh) == spki_pin_sha256(renewed) != old_pin
    await fresh.close()

    # The call set up before the reload ends normally, on its old connection.
    bye_ok = await ua.hang_up()
    assert bye_ok.status == 200
    assert (await asyncio.to_thread(callee.wait)).returncode == 0
    await ua.close()

    # A damaged file: the reload is refused, says why, and the certificate in use stays.
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    os.kill(wedge.process.pid, signal.SIGHUP)
    refused = await wait_for_log(
        wedge, r"tls reload refused what=(\S+ \S+) file=(\S+) reason='([^']*)'"
    )
    assert refused.groups()[:2] == ('listener "edge-tls"', str(cert))
    assert refused.group(3).startswith("garbled PEM certificate")
    again = await connect_tls(LOCAL, tls, bundle, server_hostname=FQDN)
    assert server_pin(again) == spki_pin_sha256(renewed)
    await again.close()


# -- 4. bad certificate files at start ------------------------------------------------------


def test_bad_certificate_files_stop_the_start_naming_each(
    tls_pki: TrunkPki, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    ca, ca_key = make_ca("CA", now=now - timedelta(days=400))
    expired, expired_key = make_certificate(
        ca, ca_key, FQDN, [FQDN], now=now - timedelta(days=400), days=30
    )
    write_pem(tmp_path / "expired.pem", cert_pem(expired))
    write_pem(tmp_path / "expired.key", key_pem(expired_key))
    (tmp_path / "garbled.pem").write_bytes(tls_pki.wedge_cert.read_bytes()[:200])
    shutil.copy(tls_pki.wedge_key, tmp_path / "garbled.key")
    a, b = free_port(), free_port()
    config = tmp_path / "bad.toml"
    config.write_text(
        f"""
[wedge]
fqdn = "{FQDN}"
[media]
relay = "none"
[[listener]]
name = "one"
transport = "tls"
bind = "{LOCAL}:{a}"
cert = "expired.pem"
key = "expired.key"
[[listener]]
name = "two"
transport = "wss"
bind = "{LOCAL}:{b}"
cert = "garbled.pem"
key = "garbled.key"
"""
    )
    run = subprocess.run(
        wedge_command(config), capture_output=True, text=True, timeout=WAIT, cwd=tmp_path
    )
    assert run.returncode == 1
    assert (
        f"cannot start: {tmp_path / 'expired.pem'}: the certificate (CN={FQDN}) expired on "
        in run.stderr
    )
    assert f"cannot start: {tmp_path / 'garbled.pem'}: garbled PEM certificate" in run.stderr
    assert not port_bound("tcp", a) and not port_bound("tcp", b)
