"""The WebSocket shell (RFC 7118) against the ``websockets`` client."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from certs.context import client_context, server_context
from gateway.sip import Flow
from gateway.transport.ws import WsTransport, open_ws

from ..conftest import MS, TIMEOUT, Pki, RecordingReceiver, request
from .clients import StreamPeer


@contextlib.asynccontextmanager
async def ws_listener(
    receiver: RecordingReceiver, transport: str = "ws", **options: Any
) -> AsyncIterator[WsTransport]:
    listener = await open_ws("ws", transport, "127.0.0.1", 0, receiver, **options)
    try:
        yield listener
    finally:
        async with asyncio.timeout(TIMEOUT):
            await listener.close()


def uri(listener: WsTransport, path: str = "/") -> str:
    scheme = "wss" if listener.transport == "wss" else "ws"
    return f"{scheme}://{listener.local[0]}:{listener.local[1]}{path}"


@contextlib.asynccontextmanager
async def sip_client(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    options.setdefault("subprotocols", ["sip"])
    options.setdefault("ping_interval", None)
    options.setdefault("open_timeout", TIMEOUT)
    async with connect(url, **options) as client:
        yield client


async def recv(client: ClientConnection) -> str | bytes:
    async with asyncio.timeout(TIMEOUT):
        return await client.recv()


async def test_subprotocol_sip_is_required(receiver: RecordingReceiver) -> None:
    async with ws_listener(receiver) as listener:
        for offered in (None, ["chat"]):
            with pytest.raises(InvalidStatus) as refused:
                async with sip_client(uri(listener), subprotocols=offered):
                    pass
            response = refused.value.response
            assert response.status_code == 400
            assert b"Sec-WebSocket-Protocol: sip" in response.body
        async with sip_client(uri(listener), subprotocols=["chat", "sip"]) as client:
            assert client.subprotocol == "sip"
            assert client.response is not None
            assert client.response.headers["Sec-WebSocket-Protocol"] == "sip"


async def test_origin_allow_list(receiver: RecordingReceiver) -> None:
    async with ws_listener(receiver, origins=["https://phone.example.com"]) as listener:
        with pytest.raises(InvalidStatus) as refused:
            async with sip_client(uri(listener), origin="https://evil.example.net"):
                pass
        assert refused.value.response.status_code == 403
        async with sip_client(uri(listener), origin="https://phone.example.com") as client:
            await client.send(request(1).decode())
            await receiver.wait_messages(1)


async def test_messages_both_ways(receiver: RecordingReceiver) -> None:
    async with ws_listener(receiver) as listener, sip_client(uri(listener)) as client:
        await client.send(request(1).decode())  # text frame
        await client.send(request(2, b"\xff\xfe"))  # binary frame, RFC 7118 §5
        (first, flow), (second, flow2) = await receiver.wait_messages(2)
        assert (first, second) == (request(1), request(2, b"\xff\xfe"))
        assert flow == flow2
        assert (flow.transport, flow.local, flow.connection > 0) == ("ws", listener.local, True)
        assert flow.remote == client.local_address[:2]

        listener.send(request(3), flow)  # UTF-8: a text frame
        assert await recv(client) == request(3).decode()
        listener.send(request(4, b"\xff"), flow)  # not UTF-8: a binary frame
        assert await recv(client) == request(4, b"\xff")


async def test_oversized_frame_closes_only_that_connection(receiver: RecordingReceiver) -> None:
    async with (
        ws_listener(receiver) as listener,
        sip_client(uri(listener)) as good,
        sip_client(uri(listener), max_size=None) as big,
    ):
        await big.send(b"x" * 1_000_000)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(big)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await receiver.wait_for(lambda: len(receiver.failures) == 1)
        assert receiver.failures[0][1] == "closed 1009"

        await good.send(request(1).decode())
        [(_, flow)] = await receiver.wait_messages(1)
        listener.send(request(2), flow)
        assert await recv(good) == request(2).decode()


async def test_server_pings_and_answers_pings(
    receiver: RecordingReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="websockets.client")
    async with (
        ws_listener(receiver, ping_interval=100 * MS) as listener,
        sip_client(uri(listener)) as client,
    ):
        await asyncio.sleep(350 * MS)
        pings = [r for r in caplog.records if r.getMessage().startswith("< PING")]
        assert len(pings) >= 2
        async with asyncio.timeout(TIMEOUT):
            await (await client.ping())
        assert receiver.failures == []


async def test_send_on_a_closed_connection_fails_the_flow(receiver: RecordingReceiver) -> None:
    async with ws_listener(receiver) as listener:
        async with sip_client(uri(listener)) as client:
            await client.send(request(1).decode())
            [(_, flow)] = await receiver.wait_messages(1)
        assert await receiver.wait_failure(flow) == "closed 1000"
        listener.send(request(2), flow)
        assert receiver.failures[-1] == (flow, "no WebSocket connection")

        nowhere = Flow("ws", listener.local, ("127.0.0.1", 5060))  # connection 0: never dialled
        listener.send(request(3), nowhere)
        assert receiver.failures[-1] == (nowhere, "no WebSocket connection")


async def test_idle_timeout(receiver: RecordingReceiver) -> None:
    async with (
        ws_listener(receiver, idle_timeout=300 * MS, ping_interval=None) as listener,
        sip_client(uri(listener)) as client,
    ):
        await client.send(request(1).decode())
        [(_, flow)] = await receiver.wait_messages(1)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(client)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await receiver.wait_failure(flow) == "idle"


async def test_per_ip_cap(receiver: RecordingReceiver) -> None:
    async with ws_listener(receiver, max_per_ip=2) as listener:
        url = uri(listener)
        async with sip_client(url), sip_client(url):
            with pytest.raises(InvalidMessage):  # closed before any HTTP response
                async with sip_client(url):
                    pass
            async with sip_client(url, local_addr=("127.0.0.2", 0)) as other:
                await other.send(request(1).decode())
                [(_, flow)] = await receiver.wait_messages(1)
                assert flow.remote[0] == "127.0.0.2"
        await receiver.wait_for(lambda: listener.limiter.total == 0)


async def test_plain_http_through_process_request(receiver: RecordingReceiver) -> None:
    def files(protocol: ServerProtocol, request: Request) -> Response | None:
        if request.path == "/index.html":
            return protocol.reject(http.HTTPStatus.OK, "<h1>Wedge</h1>\n")
        return None

    async with ws_listener(receiver, process_request=files) as listener:
        for path, status in (("/index.html", b"200"), ("/elsewhere", b"426")):
            async with asyncio.timeout(TIMEOUT):
                reader, writer = await asyncio.open_connection(*listener.local)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                status_line = await reader.readline()
                writer.close()
                await writer.wait_closed()
            assert status_line.split()[1] == status
        async with sip_client(uri(listener)) as client:  # upgrades still work
            assert client.subprotocol == "sip"


async def test_wss(receiver: RecordingReceiver, pki: Pki) -> None:
    server = server_context(pki.server_cert, pki.server_key)
    async with (
        ws_listener(receiver, "wss", ssl_server=server) as listener,
        sip_client(uri(listener), ssl=client_context(ca_file=pki.ca)) as client,
    ):
        await client.send(request(1).decode())
        [(data, flow)] = await receiver.wait_messages(1)
        assert (data, flow.transport) == (request(1), "wss")
        listener.send(request(2), flow)
        assert await recv(client) == request(2).decode()


UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n\r\n"
)


def refusals(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def test_a_fragmented_message_is_one_message(receiver: RecordingReceiver) -> None:
    async with ws_listener(receiver) as listener, sip_client(uri(listener)) as client:
        whole = request(1).decode()
        await client.send([whole[:10], whole[10:50], whole[50:]])  # three frames
        [(data, _)] = await receiver.wait_messages(1)
        assert data == request(1)


async def test_a_ping_left_unanswered_ends_the_connection(receiver: RecordingReceiver) -> None:
    # A raw client that upgrades, then never reads: no pong comes back.
    async with ws_listener(receiver, ping_interval=100 * MS) as listener:
        peer = await StreamPeer.connect(listener.local)
        await peer.send(UPGRADE)
        async with asyncio.timeout(TIMEOUT):
            assert (await peer.reader.readline()).startswith(b"HTTP/1.1 101")
        await receiver.wait_for(lambda: bool(receiver.failures))
        [(flow, reason)] = receiver.failures
        assert (flow.transport, reason) == ("ws", "ping unanswered")
        await peer.close()


async def test_bad_upgrades_are_refused_logged_and_counted_down(
    receiver: RecordingReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wedge.transport")
    async with ws_listener(receiver, open_timeout=300 * MS) as listener:
        garbage = await StreamPeer.connect(listener.local)
        await garbage.send(b"\x16\x03\x01 not HTTP at all\r\n\r\n")
        assert await garbage.closed_by_other_end()
        silent = await StreamPeer.connect(listener.local)
        assert await silent.closed_by_other_end()  # after the open timeout
        for peer in (garbage, silent):
            await peer.close()
        lines = refusals(caplog, "websocket handshake refused")
        assert len(lines) == 2, lines
        assert "reason=did not receive a valid HTTP request" in lines[0]
        assert "reason=timed out" in lines[1]
        await receiver.wait_for(lambda: listener.limiter.total == 0)
        assert receiver.failures == []  # never upgraded: no flow to fail


async def test_wss_handshakes_are_counted_first_and_failures_logged(
    receiver: RecordingReceiver, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wedge.transport")
    server = server_context(pki.server_cert, pki.server_key)
    async with ws_listener(
        receiver, "wss", ssl_server=server, max_per_ip=3, open_timeout=500 * MS
    ) as listener:
        async with sip_client(uri(listener), ssl=client_context(ca_file=pki.ca)) as good:
            # A client that does not trust Wedge's CA: refused by the client, logged here.
            with pytest.raises(ssl.SSLCertVerificationError):
                async with sip_client(uri(listener), ssl=client_context()):
                    pass
            # Garbage where a ClientHello belongs.
            garbage = await StreamPeer.connect(listener.local)
            await garbage.send(b"\x16\x03\x01\x00\x10" + b"\xff" * 64)
            assert await garbage.closed_by_other_end()
            await garbage.close()
            await receiver.wait_for(lambda: len(refusals(caplog, "tls handshake failed")) == 2)
            # Two connections that never start TLS fill this address's cap of 3 with
            # the good one: a fourth is refused before any handshake work.
            silent = [await StreamPeer.connect(listener.local) for _ in range(2)]
            await receiver.wait_for(lambda: listener.limiter.total == 3)
            refused = await StreamPeer.connect(listener.local)
            assert await refused.closed_by_other_end()
            for peer in (*silent, refused):
                assert await peer.closed_by_other_end()  # the handshake timeout
                await peer.close()
            await good.send(request(1).decode())
            [(data, flow)] = await receiver.wait_messages(1)
            assert (data, flow.transport) == (request(1), "wss")
        lines = refusals(caplog, "tls handshake failed")
        # The client gives up on the certificate, with an alert or without one.
        assert re.search(r"reason=(tls error: TLSV1_ALERT_UNKNOWN_CA|closed by peer)", lines[0])
        assert "reason=tls error: UNEXPECTED_MESSAGE" in lines[1], lines
        assert sum("reason=timed out" in line for line in lines) == 2, lines
        await receiver.wait_for(lambda: listener.limiter.total == 0)


async def test_an_endless_upgrade_request_closes_only_that_connection(
    receiver: RecordingReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wedge.transport")
    async with ws_listener(receiver) as listener, sip_client(uri(listener)) as good:
        endless = await StreamPeer.connect(listener.local)
        filler = b"".join(f"X-Filler-{n}: {'x' * 60}\r\n".encode() for n in range(1000))
        with contextlib.suppress(ConnectionError):  # refused before it is all sent
            await endless.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n" + filler)
        # A 431 then the end, or a reset when the refusal met bytes still coming.
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(TIMEOUT):
                while await endless.reader.read(65536):
                    pass
        await endless.close()
        [line] = refusals(caplog, "websocket handshake refused")
        assert "reason=expected no more than 128 headers" in line
        await good.send(request(1).decode())
        [(data, _)] = await receiver.wait_messages(1)
        assert data == request(1)
