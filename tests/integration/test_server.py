"""Wedge in-process on 127.0.0.1: a browser on WSS calls a PBX on UDP, and back."""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from gateway.config import Flags, config_with_flags
from gateway.server import start
from gateway.sip import Request, Response, parse_message
from gateway.transport.stream import MAX_CONNECTIONS_PER_IP, StreamTransport
from tests.helpers.messages import answer
from tests.integration.conftest import TIMEOUT, Pki


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Pbx(asyncio.DatagramProtocol):
    """A UDP PBX that records what reaches it."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    async def next_request(self, method: str) -> tuple[Request, tuple[str, int]]:
        while True:
            data, addr = await asyncio.wait_for(self.received.get(), TIMEOUT)
            message = parse_message(data)
            if isinstance(message, Request) and message.method == method:
                return message, addr


async def test_browser_call_through_wedge(pki: Pki, tmp_path: Path) -> None:
    wss_port, edge_port, pbx_port = free_port(socket.SOCK_STREAM), free_port(), free_port()
    config = config_with_flags(
        None,
        Flags(
            listen=(
                f"wss:127.0.0.1:{wss_port};advertise=sip.wedge.test",
                f"udp:127.0.0.1:{edge_port}",
            ),
            pbx=f"sip:127.0.0.1:{pbx_port}",
            cert=str(pki.server_cert),
            key=str(pki.server_key),
        ),
    )
    server = await start(config)
    loop = asyncio.get_running_loop()
    pbx_transport, pbx = await loop.create_datagram_endpoint(
        Pbx, local_addr=("127.0.0.1", pbx_port)
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        async with connect(
            f"wss://localhost:{wss_port}",
            subprotocols=["sip"],
            ssl=context,  # type: ignore[list-item]
        ) as ws:
            await ws.send(
                "INVITE sip:600@sbc.wedge.test SIP/2.0\r\n"
                "Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK-b1\r\n"
                "Max-Forwards: 70\r\nTo: <sip:600@sbc.wedge.test>\r\n"
                "From: <sip:alice@sbc.wedge.test>;tag=a1\r\nCall-ID: it-1\r\nCSeq: 1 INVITE\r\n"
                "Contact: <sip:alice@abc.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
            )
            invite, wedge_addr = await pbx.next_request("INVITE")
            assert wedge_addr == ("127.0.0.1", edge_port)
            assert invite.uri == f"sip:600@127.0.0.1:{pbx_port}"
            outer, inner = (str(rr) for rr in invite.record_routes)
            assert outer.endswith(f"@127.0.0.1:{edge_port};r2=on;lr>")
            assert inner.endswith(f"@sip.wedge.test:{wss_port};transport=wss;r2=on;lr>")
            pbx_transport.sendto(
                answer(invite, 200, "OK", to_tag="pbx", contact="sip:600@127.0.0.1"), wedge_addr
            )
            responses = []
            while not responses or responses[-1].status < 200:
                message = parse_message((await asyncio.wait_for(ws.recv(), TIMEOUT)).encode())
                assert isinstance(message, Response)
                responses.append(message)
            assert [r.status for r in responses] == [100, 200]
            assert responses[-1].via.branch == "z9hG4bK-b1" and len(responses[-1].vias) == 1
            # The PBX hangs up along the route it was given.
            route = ", ".join(str(rr) for rr in invite.record_routes)
            pbx_transport.sendto(
                (
                    "BYE sip:alice@abc.invalid;transport=ws SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{pbx_port};branch=z9hG4bK-p2\r\n"
                    f"Route: {route}\r\nMax-Forwards: 70\r\n"
                    "From: <sip:600@sbc.wedge.test>;tag=pbx\r\n"
                    "To: <sip:alice@sbc.wedge.test>;tag=a1\r\n"
                    "Call-ID: it-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
                ).encode(),
                wedge_addr,
            )
            bye = parse_message((await asyncio.wait_for(ws.recv(), TIMEOUT)).encode())
            assert isinstance(bye, Request) and bye.method == "BYE"
            assert bye.routes == []
            assert str(bye.via).startswith(
                f"SIP/2.0/WSS sip.wedge.test:{wss_port};branch=z9hG4bK-w"
            )
    finally:
        pbx_transport.close()
        await server.stop(drain=0)


async def test_garbage_gets_400_and_the_next_call_still_works(tmp_path: Path) -> None:
    edge_port, pbx_port = free_port(), free_port()
    server = await start(
        config_with_flags(
            None, Flags(listen=(f"udp:127.0.0.1:{edge_port}",), pbx=f"sip:127.0.0.1:{pbx_port}")
        )
    )
    loop = asyncio.get_running_loop()
    client_transport, client = await loop.create_datagram_endpoint(Pbx, local_addr=("127.0.0.1", 0))
    try:
        bad = (
            b"OPTIONS sip:600@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-x\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        client_transport.sendto(bad, ("127.0.0.1", edge_port))
        data, _ = await asyncio.wait_for(client.received.get(), TIMEOUT)
        assert data.startswith(b"SIP/2.0 400 Bad Request\r\n")
        assert b'Warning: 399 wedge "missing Call-ID"' in data
        client_transport.sendto(b"\x16\x03\x01 not sip at all", ("127.0.0.1", edge_port))
        # A well-formed OPTIONS to Wedge itself is answered by Wedge.
        good = bad.replace(b"CSeq", b"Call-ID: ok\r\nCSeq").replace(b"sip:600@", b"sip:")
        client_transport.sendto(
            good.replace(b"127.0.0.1 SIP", f"127.0.0.1:{edge_port} SIP".encode()),
            ("127.0.0.1", edge_port),
        )
        data, _ = await asyncio.wait_for(client.received.get(), TIMEOUT)
        assert data.startswith(b"SIP/2.0 200 OK\r\n")
    finally:
        client_transport.close()
        await server.stop(drain=0)


async def test_thousands_of_idle_connections_from_one_address_do_not_stop_others() -> None:
    """5,000 connections from 127.0.0.1 hold only the per-address cap; 127.0.0.2 still calls."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 12_000)), hard))
    port = free_port(socket.SOCK_STREAM)
    server = await start(
        config_with_flags(None, Flags(listen=(f"tcp:127.0.0.1:{port}",), pbx="sip:127.0.0.1:9"))
    )
    idle: list[asyncio.StreamWriter] = []
    try:
        for _ in range(50):
            batch = await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", port) for _ in range(100)),
                return_exceptions=True,
            )
            idle.extend(
                writer for item in batch if isinstance(item, tuple) for _, writer in (item,)
            )
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)), TIMEOUT
        )
        writer.write(
            f"OPTIONS sip:127.0.0.1:{port};transport=tcp SIP/2.0\r\n"
            "Via: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bK-o1\r\nMax-Forwards: 70\r\n"
            "From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode()
        )
        status = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert status == b"SIP/2.0 200 OK\r\n"
        writer.close()
        # Wedge kept no more than its cap of connections from 127.0.0.1 open.
        (transport,) = server.transports
        assert isinstance(transport, StreamTransport)
        assert 0 < transport.limiter.count("127.0.0.1") <= MAX_CONNECTIONS_PER_IP
    finally:
        for writer in idle:
            writer.close()
        await server.stop(drain=0)


def test_a_port_in_use_stops_the_start_with_the_reason() -> None:
    """With and without workers: exit status 1, and a log line naming the address
    and why, rather than a traceback."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        for workers in ("1", "2"):
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "run",
                    "--listen",
                    f"udp:127.0.0.1:{port}",
                    "--pbx",
                    "sip:127.0.0.1:5080",
                    "--media",
                    "none",
                    "--workers",
                    workers,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 1, run.stderr
            assert f"cannot start: could not bind to local_addr ('127.0.0.1', {port}): " in (
                run.stderr
            ), run.stderr
            assert "Address already in use" in run.stderr
            assert "Traceback" not in run.stderr
    finally:
        taken.close()
