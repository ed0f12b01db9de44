"""Who gets a connection: the limits per source address, and TLS listeners' handshakes.

Shared by the stream shell (TCP, TLS) and the WebSocket shell (WS, WSS).

A :class:`ConnectionLimiter` counts a listener's accepted connections per source
address and in total, so that one host opening thousands of idle connections cannot
lock everybody else out. A :class:`TlsAcceptor` is a TLS listener's own accept loop:
it counts each connection *before* its handshake (a handshake costs CPU and buffers,
so a flood of ClientHellos is refused as cheaply as a flood of SYNs), runs each
handshake with ``loop.connect_accepted_socket`` so that it knows the peer first (a
trunk's address may get the trunk's context) and learns of every failed handshake
(garbage, an unknown CA, a certificate too big, a timeout), which it logs with the
reason at a limited rate. Behind ``create_server(ssl=...)`` those failures would
vanish: asyncio drops handshake errors that are OSErrors, as every SSLError is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
import struct
from collections.abc import Callable

from gateway.sip.flow import Address

__all__ = [
    "AdmittedProtocol",
    "ConnectionLimiter",
    "RateLimitedLog",
    "TlsAcceptor",
    "describe_error",
]

logger = logging.getLogger("wedge.transport")

REFUSAL_LOG_INTERVAL = 10.0
"""Seconds between two log lines about refused connections: a flood must not
become a log flood. The line says how many were refused since the last one."""
HANDSHAKE_LOG_BURST = 20
"""Failed handshakes logged one by one before the log is rate limited."""
HANDSHAKE_LOG_RATE = 1.0
"""Failed handshakes logged per second once the burst is spent; the next line
says how many went unlogged."""


class ConnectionLimiter:
    """Counts a listener's accepted connections per source address and in total.

    ``now`` is an argument so a test can drive the log rate limit without sleeping.
    """

    def __init__(self, name: str, max_per_ip: int, max_total: int) -> None:
        self.name = name
        self.max_per_ip = max_per_ip
        self.max_total = max_total
        self.total = 0
        self._per_source: dict[str, int] = {}
        self._refused = 0  # refusals since the last log line
        self._next_log = float("-inf")

    @staticmethod
    def source(ip: str) -> str:
        """The key a connection is counted under: the address, or its /64 for IPv6,
        since one IPv6 host commonly owns a whole /64."""
        if ":" not in ip:
            return ip
        try:
            return str(ipaddress.ip_network(f"{ip.partition('%')[0]}/64", strict=False))
        except ValueError:
            return ip

    def admit(self, ip: str, now: float) -> str | None:
        """Count a new connection from ``ip``; return its key, or None if refused."""
        key = self.source(ip)
        count = self._per_source.get(key, 0)
        if count >= self.max_per_ip:
            self._refuse(ip, "per-ip", now)
            return None
        if self.total >= self.max_total:
            self._refuse(ip, "total", now)
            return None
        self._per_source[key] = count + 1
        self.total += 1
        return key

    def count(self, ip: str) -> int:
        """How many connections from ``ip`` (or its /64) are open now."""
        return self._per_source.get(self.source(ip), 0)

    def release(self, key: str) -> None:
        """Forget a connection :meth:`admit` counted under ``key``."""
        count = self._per_source.get(key, 0) - 1
        if count > 0:
            self._per_source[key] = count
        else:
            self._per_source.pop(key, None)
        self.total -= 1

    def _refuse(self, ip: str, limit: str, now: float) -> None:
        self._refused += 1
        if now < self._next_log:
            return
        logger.warning(
            "! connections refused listener=%s ip=%s limit=%s refused=%d",
            self.name,
            ip,
            limit,
            self._refused,
        )
        self._refused = 0
        self._next_log = now + REFUSAL_LOG_INTERVAL


class RateLimitedLog:
    """A token bucket in front of a warning: ``burst`` lines at once, then
    ``rate`` a second; :attr:`suppressed` counts what it left out meanwhile."""

    def __init__(self, burst: int = HANDSHAKE_LOG_BURST, rate: float = HANDSHAKE_LOG_RATE) -> None:
        self.burst = burst
        self.rate = rate
        self._tokens = float(burst)
        self._last = float("-inf")
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> str:
        """`` unlogged=N`` for a line that follows a gap, else nothing."""
        suppressed, self.suppressed = self.suppressed, 0
        return f" unlogged={suppressed}" if suppressed else ""


def describe_error(exc: BaseException) -> str:
    """A connection error in an operator's words (for ``reason=`` in a log line)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio replaces strerror with "Connect call failed (...)"; errno is intact.
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


class AdmittedProtocol(asyncio.Protocol):
    """The protocol of an inbound connection a :class:`ConnectionLimiter` counts.

    A :class:`TlsAcceptor` counts a connection before making its protocol and hands
    over the ``accepted`` (remote, key) pair; a connection the loop accepted itself
    is counted by :meth:`admit` in ``connection_made``. Either way the protocol
    gives its count back with :meth:`release` when it ends.
    """

    def __init__(self, limiter: ConnectionLimiter, accepted: tuple[Address, str] | None) -> None:
        self._limiter = limiter
        self.remote: Address = accepted[0] if accepted is not None else ("", 0)
        self._limit_key = accepted[1] if accepted is not None else None
        self.counted = accepted is not None

    def admit(self, transport: asyncio.Transport, now: float) -> bool:
        """Count a connection the loop accepted; refused: aborted, and False."""
        peer = transport.get_extra_info("peername")
        self._limit_key = self._limiter.admit(peer[0], now)
        if self._limit_key is None:
            transport.abort()  # at once: no handshake work, no buffers for it
            return False
        self.remote = (peer[0], peer[1])
        self.counted = True
        return True

    def release(self) -> None:
        """Stop counting this connection against its source address (once, however
        often it is called)."""
        if self._limit_key is not None:
            self._limiter.release(self._limit_key)
            self._limit_key = None


class TlsAcceptor:
    """A TLS listener's socket, accept loop and handshakes; see the module docstring.

    ``context(remote)`` chooses the server context for a peer; ``protocol(remote,
    key)`` makes the connection's protocol, which holds the limiter's ``key`` from
    then on and releases it when the connection ends.
    """

    def __init__(
        self,
        name: str,
        limiter: ConnectionLimiter,
        context: Callable[[Address], ssl.SSLContext],
        protocol: Callable[[Address, str], AdmittedProtocol],
        handshake_timeout: float,
    ) -> None:
        self.name = name
        self.limiter = limiter
        self.loop = asyncio.get_running_loop()
        self._context = context
        self._protocol = protocol
        self._handshake_timeout = handshake_timeout
        self._socket: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._log = RateLimitedLog()

    def listen(self, host: str, port: int, reuse_port: bool) -> Address:
        """Bind and start accepting; return the bound address."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._accepting = self.loop.create_task(self._accept_loop(sock))
        sockname = sock.getsockname()
        return (sockname[0], sockname[1])

    async def close(self) -> None:
        """Stop accepting and abandon the handshakes under way."""
        if self._accepting is not None:
            # Out of sock_accept (which watches the socket) before the socket closes.
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
        for handshake in list(self._handshakes):
            handshake.cancel()

    async def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = await self.loop.sock_accept(sock)
            except OSError as exc:
                # Out of file descriptors, or a connection reset before we took it:
                # never a reason to stop listening. A short pause keeps EMFILE from
                # spinning the loop.
                if self._log.allow(self.loop.time()):
                    logger.warning("! accept failed listener=%s reason=%s", self.name, exc)
                await asyncio.sleep(0.05)
                continue
            remote: Address = (peer[0], peer[1])
            key = self.limiter.admit(remote[0], self.loop.time())
            if key is None:
                # At once and with a reset: no handshake work, no buffers for it.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            task = self.loop.create_task(self._handshake(conn, remote, key))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, remote: Address, key: str) -> None:
        made: AdmittedProtocol | None = None

        def make() -> AdmittedProtocol:
            nonlocal made
            made = self._protocol(remote, key)
            return made

        try:
            await self.loop.connect_accepted_socket(
                make,
                conn,
                ssl=self._context(remote),
                ssl_handshake_timeout=self._handshake_timeout,
            )
        except asyncio.CancelledError:
            conn.close()
            self._release(made, key)
            raise
        except (OSError, ValueError) as exc:  # ssl.SSLError, TimeoutError: OSErrors
            conn.close()
            self._release(made, key)
            self._failed(remote, exc)

    def _release(self, made: AdmittedProtocol | None, key: str) -> None:
        """A handshake that failed never reached connection_made: count it down."""
        if made is not None:
            made.release()
        else:
            self.limiter.release(key)

    def _failed(self, remote: Address, exc: BaseException) -> None:
        if not self._log.allow(self.loop.time()):
            return
        if isinstance(exc, ConnectionAbortedError) and "longer" in str(exc):
            reason = "timed out"  # asyncio's words for ssl_handshake_timeout
        elif isinstance(exc, ConnectionError) and not isinstance(exc, ssl.SSLError):
            reason = "closed by peer during the handshake"
        else:
            reason = describe_error(exc)
        logger.warning(
            "! tls handshake failed listener=%s peer=%s:%d reason=%s%s",
            self.name,
            *remote,
            reason,
            self._log.take_suppressed(),
        )
