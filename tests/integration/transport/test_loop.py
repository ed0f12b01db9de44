"""uvloop: installed on request, and the shells work on it."""

from __future__ import annotations

import asyncio
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from certs.context import client_context, server_context
from gateway.sip import Flow
from gateway.transport.loop import install_uvloop
from gateway.transport.stream import open_stream
from gateway.transport.udp import open_udp
from gateway.transport.ws import open_ws

from ..conftest import MS, SERVER_NAME, TIMEOUT, Pki, RecordingReceiver, request
from .clients import StreamPeer, closed_port

uvloop = pytest.importorskip("uvloop")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uvloop: Linux only")


def test_install_uvloop() -> None:
    try:
        assert install_uvloop() is True
        assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    finally:
        asyncio.set_event_loop_policy(None)


async def _round_trips(pki: Pki) -> None:
    receiver = RecordingReceiver()
    udp = await open_udp("udp", "127.0.0.1", 0, receiver)
    tcp = await open_stream("tcp", "tcp", "127.0.0.1", 0, receiver)
    tls = await open_stream(
        "tls",
        "tls",
        "127.0.0.1",
        0,
        receiver,
        ssl_server=server_context(pki.server_cert, pki.server_key),
        ssl_handshake_timeout=300 * MS,
    )
    ws = await open_ws("ws", "ws", "127.0.0.1", 0, receiver)
    try:
        loop = asyncio.get_running_loop()
        sender, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=udp.local
        )
        sender.sendto(request(1))
        tcp_client = await StreamPeer.connect(tcp.local)
        await tcp_client.send(request(2))
        tls_client = await StreamPeer.connect(
            tls.local, ssl_context=client_context(ca_file=pki.ca), server_hostname=SERVER_NAME
        )
        await tls_client.send(request(3))
        async with connect(
            f"ws://127.0.0.1:{ws.local[1]}/", subprotocols=[Subprotocol("sip")], ping_interval=None
        ) as ws_client:
            await ws_client.send(request(4).decode())
            messages = await receiver.wait_messages(4)
            flows = {flow.transport: flow for _, flow in messages}
            assert sorted(flows) == ["tcp", "tls", "udp", "ws"]

            tcp.send(request(5), flows["tcp"])
            assert await tcp_client.message() == request(5)
            tls.send(request(6), flows["tls"])
            assert await tls_client.message() == request(6)
            ws.send(request(7), flows["ws"])
            async with asyncio.timeout(TIMEOUT):
                assert await ws_client.recv() == request(7).decode()

        silent = await StreamPeer.connect(tls.local)  # no ClientHello: dropped
        assert await silent.closed_by_other_end()
        refused = Flow("tcp", tcp.local, closed_port())
        tcp.send(request(8), refused)
        assert (await receiver.wait_failure(refused)).startswith("connect failed")
        sender.close()
        for client in (tcp_client, tls_client, silent):
            await client.close()
    finally:
        async with asyncio.timeout(TIMEOUT):
            for listener in (udp, tcp, tls, ws):
                await listener.close()


def test_shells_on_uvloop(pki: Pki) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
        runner.run(_round_trips(pki))
