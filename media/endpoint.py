"""The built-in relay's shell: UDP sockets from a port range, and one periodic timer.

Each relay port is a UDP socket bound synchronously, so an offer gets its ports
without waiting. Where Wedge was built with the relay's C fast path
(:mod:`media.fastpath`), the port's :class:`~media.fastpath.Forwarder` is the
socket's reader: it forwards established streams itself and hands every other
datagram to the port's pure :meth:`~media.relay.RelayPort.receive`. Without it the
socket is a datagram endpoint of the loop whose ``datagram_received`` is ``receive``
itself: with uvloop the receive loop runs in C, which measured faster with
``bench/relay.py`` than draining the socket from Python on ``add_reader`` readiness
(that pays a Python exception for every empty read); datagrams that arrive before the
endpoint is attached wait in the socket's buffer.

The port sends with the socket's ``sendto`` and reads ``time.monotonic``, the
relay's one clock (the fast path's too): as cheap as ``loop.time()``, which uvloop
keeps in whole milliseconds, too coarse for the jitter of 8 kHz audio.

Ports are taken from the configured range by a cursor that moves on, so a port just
freed is the last to be used again and late packets of an ended call do not reach
a new one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from media import fastpath
from media.builtin import BuiltinRelay, RelaySettings
from media.control import MediaError
from media.dtls import DtlsCertificate
from media.relay import RelayPort
from media.session import SessionSettings

if TYPE_CHECKING:  # only built with a C compiler: see media.fastpath
    from media._forward import Forwarder

__all__ = ["PortPool", "start_builtin"]

logger = logging.getLogger("wedge.media")

SOCKET_BUFFER = 256 * 1024
"""Per port: a few hundred packets of burst, without a megabyte per call."""
TICK = 0.1
"""Seconds between the relay's periodic calls (DTLS retransmission, timeouts)."""


class PortPool:
    """Binds relay ports from ``first..last`` on ``bind`` and feeds them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bind: str, first: int, last: int) -> None:
        if not 0 < first <= last <= 65535:
            raise ValueError(f"bad media port range {first}-{last}")
        self.loop = loop
        self.bind = bind
        self.first = first + first % 2  # RTP on even ports (RFC 3550 §11)
        self.last = last
        self._cursor = self.first
        self._family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._sockets: dict[int, socket.socket] = {}
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._forwarders: dict[int, Forwarder] = {}

    @property
    def in_use(self) -> int:
        return len(self._sockets)

    def allocate(self, pair: bool) -> tuple[RelayPort, RelayPort | None]:
        """An even port, and with ``pair`` the odd one after it for RTCP.

        Raises:
            MediaError: 503 when no port (pair) in the range is free.
        """
        span = self.last - self.first + 1
        for _ in range(0, span, 2):
            number = self._cursor
            self._cursor += 2
            if self._cursor + (1 if pair else 0) > self.last:
                self._cursor = self.first
            if number in self._sockets or (pair and number + 1 > self.last):
                continue
            first = self._open(number)
            if first is None:
                continue
            if not pair:
                return first, None
            second = self._open(number + 1)
            if second is not None:
                return first, second
            self.release(first)
        raise MediaError(f"no free media port in {self.first}-{self.last}", 503)

    def release(self, port: RelayPort) -> None:
        self._close(port.number)

    def close(self) -> None:
        for number in list(self._sockets):
            self._close(number)

    def _close(self, number: int) -> None:
        sock = self._sockets.pop(number, None)
        transport = self._transports.pop(number, None)
        forwarder = self._forwarders.pop(number, None)
        if forwarder is not None and sock is not None:
            # Before the socket closes: its descriptor number may soon be another's.
            forwarder.close()
            self.loop.remove_reader(sock.fileno())
        if transport is not None:
            transport.close()  # closes the socket too
        elif sock is not None:
            sock.close()

    def _open(self, number: int) -> RelayPort | None:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.bind((self.bind, number))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        port = RelayPort(number, sock.sendto, time.monotonic)
        self._sockets[number] = sock
        if fastpath.NATIVE:
            port.fast = self._forwarders[number] = fastpath.Forwarder(sock.fileno(), port.receive)
            self.loop.add_reader(sock.fileno(), port.fast.drain)
        else:
            self.loop.create_task(self._attach(number, sock, port))
        return port

    async def _attach(self, number: int, sock: socket.socket, port: RelayPort) -> None:
        if self._sockets.get(number) is not sock:
            return  # released (and closed) before its turn came
        protocol = _Protocol(port, self._family == socket.AF_INET6)
        transport, _ = await self.loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        if self._sockets.get(number) is sock:
            self._transports[number] = transport
        else:
            transport.close()  # released while it was being attached


class _Protocol(asyncio.BaseProtocol):
    """Gives the loop the port's own :meth:`~media.relay.RelayPort.receive` as its
    ``datagram_received``: a Python frame less per packet than a method that calls on.
    The port catches its own exceptions, so the loop never closes the socket over one."""

    def __init__(self, port: RelayPort, v6: bool) -> None:
        self.datagram_received: Callable[[bytes, Any], None] = port.receive
        if v6:
            # (host, port, flowinfo, scope_id): the relay compares (host, port) pairs.
            self.datagram_received = lambda data, addr: port.receive(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier send: media is lossy anyway


async def start_builtin(
    *,
    bind: str,
    advertise: str | None,
    ports: tuple[int, int],
    settings: RelaySettings | None = None,
) -> tuple[BuiltinRelay, Callable[[], None]]:
    """Start the built-in relay; returns it and the function that stops its shell."""
    loop = asyncio.get_running_loop()
    pool = PortPool(loop, bind, *ports)
    certificate = DtlsCertificate.generate(datetime.now(UTC))
    address = advertise or bind
    if address in ("0.0.0.0", "::"):
        raise ValueError("media bound to a wildcard address needs an advertised address")
    relay = BuiltinRelay(
        SessionSettings(address, certificate, os.urandom),
        pool.allocate,
        pool.release,
        time.monotonic,
        settings,
    )
    stopped = False

    def tick() -> None:
        if stopped:
            return
        try:
            relay.tick(time.monotonic())
        except Exception:
            logger.exception("! media relay tick failed")
        loop.call_later(TICK, tick)

    loop.call_later(TICK, tick)

    def stop() -> None:
        nonlocal stopped
        stopped = True
        pool.close()

    logger.info(
        "media relay built-in bind=%s advertise=%s ports=%d-%d dtls-fingerprint=%s",
        bind,
        address,
        ports[0],
        ports[1],
        certificate.fingerprint,
    )
    return relay, stop
