"""The UDP shell: one bound socket, one datagram per SIP message (RFC 3261 §18.1).

Thin on purpose: a datagram becomes ``receiver.message_received(data, flow)`` and
``send`` becomes ``sendto``. UDP has no connections, so every Flow here has
connection id 0 and no flow ever fails at this layer: a lost datagram is the
transaction layer's business (Timers A and E retransmit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any, cast

from gateway.memo import remember
from gateway.sip import Flow
from gateway.sip.flow import Address
from gateway.transport.base import Receiver

if TYPE_CHECKING:
    from gateway.transport.base import Transport

__all__ = ["UdpTransport", "open_udp"]

logger = logging.getLogger("wedge.transport")

_KEEP_ALIVE_BYTES = b"\r\n"


FLOWS_KEPT = 4096
"""Peer addresses whose Flow a UDP listener keeps; the oldest go first."""

SOCKET_BUFFER = 4 * 1024 * 1024
"""Bytes of kernel buffer asked for each way on a UDP listener."""


class UdpTransport(asyncio.DatagramProtocol):
    """A UDP listener; also the socket requests and responses to UDP peers leave from."""

    transport: str = "udp"

    def __init__(self, name: str, receiver: Receiver) -> None:
        self.name = name
        self.local: Address = ("", 0)
        self._receiver = receiver
        # One Flow per peer address, shared by every message and transaction of
        # that peer: a trunk's thousands of live transactions hold one object, not
        # thousands for the garbage collector to scan.
        self._flows: dict[tuple[Any, ...], Flow] = {}
        self._endpoint: asyncio.DatagramTransport | None = None
        self._unsent: list[tuple[bytes, Flow]] = []
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._debug = logger.isEnabledFor(logging.DEBUG)

    # asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A burst arriving while the loop is busy (a garbage collection, a
            # slow callback) waits in the kernel instead of being dropped; the
            # default ~200 KB holds a few hundred INVITEs, this several thousand.
            # The kernel caps it at net.core.rmem_max.
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        self._endpoint = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # CRLF keep-alives: RFC 5626 §4.4.1 defines them for streams and §4.4.2 uses
        # STUN over UDP, but phones send CRLF on UDP anyway. Nothing to answer.
        if not data.strip(_KEEP_ALIVE_BYTES):
            return
        flow = self._flows.get(addr)
        if flow is None:
            remote: Address = (addr[0], addr[1])  # IPv6 adds flowinfo and scope id
            flow = remember(self._flows, addr, Flow("udp", self.local, remote), FLOWS_KEPT)
        if self._debug:
            logger.debug("< %d bytes flow=%s", len(data), flow)
        self._receiver.message_received(data, flow)

    def error_received(self, exc: Exception) -> None:
        # Linux reports an ICMP port-unreachable for an earlier sendto here, with no
        # address attached: nothing can be failed, and a stale registration makes
        # these common, so they stay at debug.
        if self._debug:
            logger.debug("! udp error listener=%s error=%s", self.name, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    # Transport

    def send(self, data: bytes, flow: Flow) -> None:
        """Send one datagram to ``flow.remote``; never raises.

        Sent at the end of this turn of the loop, with the turn's other datagrams:
        under load a peer then reads several per wakeup instead of one (SIPp as a
        UAS behind Wedge spent 30 % less CPU per call).
        """
        endpoint = self._endpoint
        if endpoint is None or endpoint.is_closing():
            logger.warning("! send on a closed listener=%s flow=%s", self.name, flow)
            return
        if self._debug:
            logger.debug("> %d bytes flow=%s", len(data), flow)
        if not self._unsent:
            self._loop.call_soon(self._send_unsent, endpoint)
        self._unsent.append((data, flow))

    def _send_unsent(self, endpoint: asyncio.DatagramTransport) -> None:
        unsent, self._unsent = self._unsent, []
        if endpoint.is_closing():  # lost since they were queued: nothing can carry them
            logger.warning("! %d datagrams unsent: listener=%s closed", len(unsent), self.name)
            return
        for data, flow in unsent:
            try:
                endpoint.sendto(data, flow.remote)
            except (OSError, ValueError, TypeError) as exc:  # a malformed address in the Flow
                logger.warning("! sendto failed flow=%s error=%s", flow, exc)

    async def close(self) -> None:
        """Send what this turn has queued, close the socket and wait until asyncio
        has released it."""
        if self._endpoint is not None:
            if self._unsent:
                self._send_unsent(self._endpoint)
            self._endpoint.close()
            await self._closed


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``host:port``, for :func:`open_udp` in other processes.

    SIP workers read one such socket together rather than one each on a shared port
    (SO_REUSEPORT): the kernel hashes a datagram's addresses to choose among sockets,
    so a peer that sends from one address (a PBX, a trunk) would load one worker
    with all its traffic; from one socket, whichever worker is free takes the next
    datagram.

    Raises:
        OSError: the address is taken or not ours.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def open_udp(
    name: str, host: str, port: int, receiver: Receiver, *, sock: socket.socket | None = None
) -> UdpTransport:
    """Bind a UDP listener on ``host:port`` (port 0: any free port, see ``.local``), or
    serve ``sock``, bound by :func:`bind_udp` (``host`` and ``port`` then name it)."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpTransport(name, receiver), sock=sock
        )
    else:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpTransport(name, receiver), local_addr=(host, port)
        )
    logger.info("= listening listener=%s transport=udp local=%s:%d", name, *protocol.local)
    return protocol


if TYPE_CHECKING:

    def _conforms(transport: UdpTransport) -> Transport:
        return transport
