"""The UDP shell: datagrams in and out, keep-alives dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.sip import Flow
from gateway.transport.udp import open_udp

from ..conftest import TIMEOUT, RecordingReceiver, request


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received.put_nowait(data)


async def test_round_trip_and_keep_alives(receiver: RecordingReceiver) -> None:
    udp = await open_udp("udp", "127.0.0.1", 0, receiver)
    loop = asyncio.get_running_loop()
    client_transport, client = await loop.create_datagram_endpoint(
        _Client, local_addr=("127.0.0.1", 0), remote_addr=udp.local
    )
    try:
        client_address = client_transport.get_extra_info("sockname")[:2]
        client_transport.sendto(b"\r\n\r\n")  # CRLF ping: dropped
        client_transport.sendto(b"\r\n")
        client_transport.sendto(request(1))
        client_transport.sendto(request(2))

        (first, flow), (second, again) = await receiver.wait_messages(2)
        assert (first, second) == (request(1), request(2))
        assert flow == Flow("udp", udp.local, client_address)
        assert again is flow  # one Flow per peer, shared by its messages
        assert udp.local[0] == "127.0.0.1" and udp.local[1] != 0

        udp.send(b"SIP/2.0 200 OK\r\n\r\n", flow)
        async with asyncio.timeout(TIMEOUT):
            assert await client.received.get() == b"SIP/2.0 200 OK\r\n\r\n"
        assert len(receiver.messages) == 2
        assert receiver.failures == []
    finally:
        client_transport.close()
        await udp.close()


async def test_send_to_bad_address_does_not_raise(receiver: RecordingReceiver) -> None:
    udp = await open_udp("udp", "127.0.0.1", 0, receiver)
    try:
        udp.send(b"x", Flow("udp", udp.local, ("not an address", -1)))
    finally:
        await udp.close()
    udp.send(b"x", Flow("udp", udp.local, ("127.0.0.1", 9)))  # closed: logged only


async def test_a_turns_datagrams_leave_in_order_and_close_sends_what_is_queued(
    receiver: RecordingReceiver,
) -> None:
    udp = await open_udp("udp", "127.0.0.1", 0, receiver)
    loop = asyncio.get_running_loop()
    client_transport, client = await loop.create_datagram_endpoint(
        _Client, local_addr=("127.0.0.1", 0), remote_addr=udp.local
    )
    try:
        flow = Flow("udp", udp.local, client_transport.get_extra_info("sockname")[:2])
        for n in range(3):
            udp.send(request(n), flow)
        async with asyncio.timeout(TIMEOUT):
            assert [await client.received.get() for _ in range(3)] == [request(n) for n in range(3)]
        udp.send(request(3), flow)
        await udp.close()  # before the turn ends: still sent
        async with asyncio.timeout(TIMEOUT):
            assert await client.received.get() == request(3)
    finally:
        client_transport.close()
