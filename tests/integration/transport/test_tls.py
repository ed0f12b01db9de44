"""The TLS shell: handshakes, certificates, timeouts, outbound verification."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509

from certs.context import client_context, server_context
from certs.generate import spki_pin_sha256
from gateway.sip import Flow
from gateway.transport.stream import StreamTransport, open_stream

from ..conftest import MS, SERVER_NAME, TIMEOUT, Pki, RecordingReceiver, request
from .clients import ListeningPeer, StreamPeer


@contextlib.asynccontextmanager
async def tls(
    receiver: RecordingReceiver, pki: Pki, **options: Any
) -> AsyncIterator[StreamTransport]:
    options.setdefault("ssl_server", server_context(pki.server_cert, pki.server_key))
    options.setdefault("ssl_client", client_context(ca_file=pki.ca))
    stream = await open_stream("tls", "tls", "127.0.0.1", 0, receiver, **options)
    try:
        yield stream
    finally:
        async with asyncio.timeout(TIMEOUT):
            await stream.close()


async def test_handshake_and_messages_both_ways(receiver: RecordingReceiver, pki: Pki) -> None:
    async with tls(receiver, pki) as stream:
        client = await StreamPeer.connect(
            stream.local, ssl_context=client_context(ca_file=pki.ca), server_hostname=SERVER_NAME
        )
        ssl_object = client.writer.get_extra_info("ssl_object")
        assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        der = ssl_object.getpeercert(binary_form=True)
        assert spki_pin_sha256(x509.load_der_x509_certificate(der)) == pki.server_pin

        await client.send(request(1))
        [(data, flow)] = await receiver.wait_messages(1)
        assert data == request(1)
        assert (flow.transport, flow.remote) == ("tls", client.address)
        stream.send(request(2), flow)
        assert await client.message() == request(2)
        await client.close()
        assert await receiver.wait_failure(flow) == "closed by peer"


async def test_client_that_never_says_hello_is_dropped(
    receiver: RecordingReceiver, pki: Pki
) -> None:
    async with tls(receiver, pki, ssl_handshake_timeout=300 * MS) as stream:
        silent = await StreamPeer.connect(stream.local)  # plain TCP, no ClientHello
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await silent.closed_by_other_end(timeout=300 * MS + TIMEOUT)
        assert loop.time() - started >= 200 * MS
        assert receiver.failures == []  # it never became a flow
        await silent.close()


async def test_client_rejects_an_untrusted_server(receiver: RecordingReceiver, pki: Pki) -> None:
    async with tls(receiver, pki) as stream:
        with pytest.raises(ssl.SSLCertVerificationError):
            await StreamPeer.connect(
                stream.local,
                ssl_context=client_context(ca_file=pki.rogue_ca),
                server_hostname=SERVER_NAME,
            )
        with pytest.raises(ssl.SSLCertVerificationError, match="match"):
            await StreamPeer.connect(
                stream.local,
                ssl_context=client_context(ca_file=pki.ca),
                server_hostname="other.wedge.test",
            )
        assert receiver.messages == []


async def test_mutual_tls(receiver: RecordingReceiver, pki: Pki) -> None:
    server = server_context(
        pki.server_cert, pki.server_key, ca_file=pki.ca, require_client_cert=True
    )
    async with tls(receiver, pki, ssl_server=server) as stream:
        client = await StreamPeer.connect(
            stream.local,
            ssl_context=client_context(
                ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key
            ),
            server_hostname=SERVER_NAME,
        )
        await client.send(request(1))
        [(data, _)] = await receiver.wait_messages(1)
        assert data == request(1)
        await client.close()

        # Without a certificate the server ends the handshake (in TLS 1.3 the client
        # may only learn so on its first read).
        anonymous = await _connect_or_fail(stream, client_context(ca_file=pki.ca))
        if anonymous is not None:
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await anonymous.send(request(2))
            assert await anonymous.closed_by_other_end()
            await anonymous.close()
        await asyncio.sleep(50 * MS)
        assert len(receiver.messages) == 1


async def _connect_or_fail(stream: StreamTransport, context: ssl.SSLContext) -> StreamPeer | None:
    try:
        return await StreamPeer.connect(
            stream.local, ssl_context=context, server_hostname=SERVER_NAME
        )
    except (ssl.SSLError, ConnectionError):
        return None


async def test_outbound_verifies_the_peer_by_name(receiver: RecordingReceiver, pki: Pki) -> None:
    server = server_context(pki.server_cert, pki.server_key)
    sni: list[str | None] = []
    server.sni_callback = lambda _ssl, name, _context: sni.append(name)
    peer = await ListeningPeer().start(server)
    try:
        async with tls(receiver, pki) as stream:
            stream.set_peer_name(peer.address, SERVER_NAME)  # SNI and the name checked
            to_peer = Flow("tls", stream.local, peer.address)
            stream.send(request(1), to_peer)
            connection = await peer.accepted()
            assert await connection.message() == request(1)
            assert sni == [SERVER_NAME]
            await connection.send(request(2))
            [(data, flow)] = await receiver.wait_messages(1)
            assert (data, flow.transport, flow.remote) == (request(2), "tls", peer.address)
    finally:
        await peer.stop()


async def test_outbound_to_an_untrusted_peer_fails(receiver: RecordingReceiver, pki: Pki) -> None:
    peer = await ListeningPeer().start(server_context(pki.rogue_cert, pki.rogue_key))
    try:
        async with tls(receiver, pki) as stream:
            to_peer = Flow("tls", stream.local, peer.address)
            stream.send(request(1), to_peer)
            reason = await receiver.wait_failure(to_peer)
            assert reason.startswith("connect failed: certificate verify failed")
    finally:
        await peer.stop()
