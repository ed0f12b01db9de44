"""The TCP shell: framing, keep-alives, limits, timeouts and outbound connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.sip import Flow, PongReceived
from gateway.transport.admission import ConnectionLimiter
from gateway.transport.stream import StreamTransport, open_stream

from ..conftest import MS, TIMEOUT, RecordingReceiver, request
from .clients import ListeningPeer, StreamPeer, closed_port


@contextlib.asynccontextmanager
async def tcp(receiver: RecordingReceiver, **options: Any) -> AsyncIterator[StreamTransport]:
    stream = await open_stream("tcp", "tcp", "127.0.0.1", 0, receiver, **options)
    try:
        yield stream
    finally:
        async with asyncio.timeout(TIMEOUT):
            await stream.close()


async def test_message_whole_and_reply(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        client = await StreamPeer.connect(stream.local)
        await client.send(request(1, b"v=0\r\n"))
        [(data, flow)] = await receiver.wait_messages(1)
        assert data == request(1, b"v=0\r\n")
        assert flow.transport == "tcp" and flow.local == stream.local
        assert flow.remote == client.address and flow.connection > 0

        stream.send(request(2), flow)
        assert await client.message() == request(2)
        await client.close()
        assert await receiver.wait_failure(flow) == "closed by peer"


async def test_message_split_across_reads(receiver: RecordingReceiver) -> None:
    message = request(1, b"o=- 1 1 IN IP4 192.0.2.10\r\n")
    async with tcp(receiver) as stream:
        client = await StreamPeer.connect(stream.local)
        # Cuts inside the start line, inside a header, inside the body.
        pieces = [message[:5], message[5:60], message[60:-3], message[-3:]]
        for piece in pieces:
            await client.send(piece)
            await asyncio.sleep(10 * MS)  # separate segments, so separate reads
        [(data, _)] = await receiver.wait_messages(1)
        assert data == message
        await client.close()


async def test_pipelined_messages(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        client = await StreamPeer.connect(stream.local)
        await client.send(request(1) + b"\r\n" + request(2, b"body") + request(3))
        received = await receiver.wait_messages(3)
        assert [data for data, _ in received] == [request(1), request(2, b"body"), request(3)]
        assert len({flow for _, flow in received}) == 1
        await client.close()


async def test_ping_gets_pong(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        client = await StreamPeer.connect(stream.local)
        await client.send(b"\r\n\r\n")
        assert isinstance(await client.event(), PongReceived)
        assert receiver.messages == []
        await client.close()


async def test_framing_failure_closes_only_that_connection(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        good = await StreamPeer.connect(stream.local)
        bad = await StreamPeer.connect(stream.local)
        await bad.send(b"OPTIONS sip:bob@192.0.2.20 SIP/2.0\r\nVia: x\r\n\r\n")  # no length
        assert await bad.closed_by_other_end()
        [(flow, reason)] = receiver.failures
        assert flow.remote == bad.address
        assert reason == "framing failed: missing Content-Length on a stream"

        await good.send(request(1))
        [(_, flow)] = await receiver.wait_messages(1)
        assert flow.remote == good.address
        stream.send(request(2), flow)
        assert await good.message() == request(2)
        await good.close()
        await bad.close()


async def test_idle_timeout(receiver: RecordingReceiver) -> None:
    idle = 300 * MS
    async with tcp(receiver, idle_timeout=idle) as stream:
        client = await StreamPeer.connect(stream.local)
        # Pings keep it alive past the timeout: any received byte counts.
        for _ in range(4):
            await asyncio.sleep(idle / 3)
            await client.send(b"\r\n\r\n")
            assert isinstance(await client.event(), PongReceived)
        assert await client.closed_by_other_end(timeout=idle + TIMEOUT)
        [(flow, reason)] = receiver.failures
        assert (flow.remote, reason) == (client.address, "idle")
        await client.close()


async def test_per_ip_cap(receiver: RecordingReceiver) -> None:
    cap = 8
    async with tcp(receiver, max_per_ip=cap) as stream:
        clients = [await StreamPeer.connect(stream.local) for _ in range(cap + 10)]
        for client in clients:
            with contextlib.suppress(ConnectionError):
                await client.send(b"\r\n\r\n")
        alive = [not await client.closed_by_other_end() for client in clients]
        # The refused ones were closed at once; the admitted ones answered the ping.
        assert alive == [True] * cap + [False] * 10
        assert stream.limiter.total == cap
        assert receiver.failures == []  # refused connections never became flows

        other = await StreamPeer.connect(stream.local, local_host="127.0.0.2")
        await other.send(request(1))
        [(_, flow)] = await receiver.wait_messages(1)
        assert flow.remote[0] == "127.0.0.2"
        stream.send(request(2), flow)
        assert await other.message() == request(2)

        for client in [*clients, other]:
            await client.close()
        await receiver.wait_for(lambda: stream.limiter.total == 0)


async def test_total_cap(receiver: RecordingReceiver) -> None:
    async with tcp(receiver, max_connections=3) as stream:
        clients = [await StreamPeer.connect(stream.local) for _ in range(5)]
        closed = [await client.closed_by_other_end(timeout=200 * MS) for client in clients]
        assert closed == [False, False, False, True, True]
        for client in clients:
            await client.close()


def test_refusals_are_logged_at_a_limited_rate(caplog: pytest.LogCaptureFixture) -> None:
    limiter = ConnectionLimiter("tcp", max_per_ip=1, max_total=10)
    caplog.set_level(logging.WARNING, logger="wedge.transport")
    assert limiter.admit("192.0.2.1", now=0.0) is not None
    for second in range(5):
        assert limiter.admit("192.0.2.1", now=float(second)) is None
    assert limiter.admit("192.0.2.1", now=100.0) is None
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "refused=1" in lines[0] and "refused=5" in lines[1]
    # IPv6 hosts are counted per /64.
    assert limiter.admit("2001:db8::1", now=0.0) is not None
    assert limiter.admit("2001:db8::2", now=0.0) is None
    assert limiter.admit("2001:db8:0:1::1", now=0.0) is not None


async def test_outbound_reuse_and_reconnect(receiver: RecordingReceiver) -> None:
    peer = await ListeningPeer().start()
    try:
        async with tcp(receiver) as stream:
            to_peer = Flow("tcp", stream.local, peer.address)
            stream.send(request(1), to_peer)  # queued while connecting
            stream.send(request(2), to_peer)
            first = await peer.accepted()
            assert [await first.message(), await first.message()] == [request(1), request(2)]
            stream.send(request(3), to_peer)  # reuses the open connection
            assert await first.message() == request(3)

            await first.send(request(4))  # the peer answers on that connection
            [(_, flow)] = await receiver.wait_messages(1)
            assert flow.remote == peer.address and flow.connection > 0
            assert len(peer.connections) == 1

            await first.close()  # the peer goes away: both flows fail
            assert await receiver.wait_failure(flow) == "closed by peer"
            assert await receiver.wait_failure(to_peer) == "closed by peer"

            stream.send(request(5), to_peer)  # reconnects
            second = await peer.accepted()
            assert await second.message() == request(5)
            assert len(peer.connections) == 2
    finally:
        await peer.stop()


async def test_send_to_peer_reuses_an_accepted_connection(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        client = await StreamPeer.connect(stream.local)
        await client.send(request(1))
        await receiver.wait_messages(1)
        stream.send(request(2), Flow("tcp", stream.local, client.address))
        assert await client.message() == request(2)
        await client.close()


async def test_connect_failure(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        to_nowhere = Flow("tcp", stream.local, closed_port())
        stream.send(request(1), to_nowhere)
        reason = await receiver.wait_failure(to_nowhere)
        assert reason == "connect failed: connection refused"


async def test_send_on_a_gone_connection(receiver: RecordingReceiver) -> None:
    async with tcp(receiver) as stream:
        gone = Flow("tcp", stream.local, ("127.0.0.1", 5060), connection=10**9)
        stream.send(request(1), gone)
        assert await receiver.wait_failure(gone) == "gone"


async def test_peer_that_does_not_read_is_cut_off(receiver: RecordingReceiver) -> None:
    peer = await ListeningPeer().start()
    try:
        async with tcp(receiver, max_write_buffer=64 * 1024) as stream:
            to_peer = Flow("tcp", stream.local, peer.address)
            stream.send(request(1), to_peer)
            connection = await peer.accepted()
            assert await connection.message() == request(1)
            # The peer reads no more; the kernel's buffers fill, then ours.
            chunk = b"x" * 60_000
            async with asyncio.timeout(TIMEOUT):
                while not receiver.failures:
                    stream.send(chunk, to_peer)
                    await asyncio.sleep(0)
            flow, reason = receiver.failures[0]
            assert (flow.connection > 0, reason) == (True, "peer not reading")
            assert await receiver.wait_failure(to_peer) == "peer not reading"
    finally:
        await peer.stop()


async def test_close_stops_everything(receiver: RecordingReceiver) -> None:
    stream = await open_stream("tcp", "tcp", "127.0.0.1", 0, receiver)
    client = await StreamPeer.connect(stream.local)
    await client.send(request(1))
    await receiver.wait_messages(1)
    stream.send(request(2), Flow("tcp", stream.local, closed_port()))  # a dial under way
    async with asyncio.timeout(TIMEOUT):
        await stream.close()
    assert await client.closed_by_other_end()
    with pytest.raises(OSError):
        await StreamPeer.connect(stream.local)
    stream.send(request(3), Flow("tcp", stream.local, ("127.0.0.1", 9)))
    assert receiver.failures[-1][1] == "transport closed"
    await client.close()
