"""Test peers for the stream shells: a framing client and a listening peer."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque

from gateway.sip.flow import Address
from gateway.sip.framing import MessageFramed, StreamEvent, StreamFramer

from ..conftest import TIMEOUT


def closed_port() -> Address:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
    return (host, port)


class StreamPeer:
    """One end of a TCP/TLS connection that frames what it reads like Wedge does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._framer = StreamFramer()
        self._events: deque[StreamEvent] = deque()

    @classmethod
    async def connect(
        cls,
        address: Address,
        *,
        local_host: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> StreamPeer:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                address[0],
                address[1],
                local_addr=(local_host, 0) if local_host else None,
                ssl=ssl_context,
                server_hostname=server_hostname,
            )
        return cls(reader, writer)

    @property
    def address(self) -> Address:
        """This end's address, as the other end sees it."""
        host, port = self.writer.get_extra_info("sockname")[:2]
        return (host, port)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def event(self, timeout: float = TIMEOUT) -> StreamEvent:
        """The next framed event; EOFError when the other end closed first."""
        async with asyncio.timeout(timeout):
            while not self._events:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise EOFError
                self._events.extend(self._framer.receive_data(chunk))
        return self._events.popleft()

    async def message(self, timeout: float = TIMEOUT) -> bytes:
        event = await self.event(timeout)
        assert isinstance(event, MessageFramed), event
        return event.data

    async def closed_by_other_end(self, timeout: float = TIMEOUT) -> bool:
        """True once the other end has closed; False if it sent data or stayed
        silent and open for ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(65536)
        except (ConnectionResetError, ssl.SSLError):
            return True
        except TimeoutError:
            return False
        return not data

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


class ListeningPeer:
    """A server Wedge connects to (a PBX, a trunk); keeps every accepted connection."""

    def __init__(self) -> None:
        self.connections: list[StreamPeer] = []
        self._accepted: asyncio.Queue[StreamPeer] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self.address: Address = ("", 0)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> ListeningPeer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=ssl_context)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = (host, port)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = StreamPeer(reader, writer)
        self.connections.append(peer)
        self._accepted.put_nowait(peer)

    async def accepted(self, timeout: float = TIMEOUT) -> StreamPeer:
        async with asyncio.timeout(timeout):
            return await self._accepted.get()

    async def stop(self) -> None:
        for peer in self.connections:
            peer.writer.close()
        if self._server is not None:
            self._server.close()
            async with asyncio.timeout(TIMEOUT):
                await self._server.wait_closed()
