"""The TCP and TLS shell (RFC 3261 §18, RFC 5626 keep-alives, RFC 5630 over TLS).

Theory of operation
-------------------

A :class:`StreamTransport` is one listener plus every connection it accepted or
opened. Each connection is a :class:`_Connection` (an ``asyncio.Protocol``) with a
process-wide unique id, so its :class:`~gateway.sip.Flow` names that connection and
no other, even after a new connection from the same address. Bytes go through a
pure :class:`~gateway.sip.framing.StreamFramer`; the connection only carries out
what the framer says: hand a message to the receiver, answer a ping with a pong,
close on a framing failure.

The shell owns the timeouts: an idle timeout per connection (any received byte,
keep-alives included, resets it), the TLS handshake timeout, a connect timeout for
connections we open. It also owns the limits that protect the process from one
peer: connections per source address, connections in total, and the write buffer
of a peer that does not read.

Sending on ``connection == 0`` means "to this peer, however": an open connection we
opened to ``flow.remote`` is preferred (RFC 3261 §18.1.1: reuse), else one the peer
opened from exactly that address, else a new one is dialled and messages queue
until it is up. A connection we opened that dies reports ``flow_failed`` for its
own flow and for the peer's connection-0 flow, since requests sent "to the peer"
were waiting on it; the next send dials again.

Every end of a connection is reported once, from ``connection_lost``, except the
ones :meth:`StreamTransport.close` causes: the engine is shutting down then.

TLS. A TLS listener accepts TCP connections with a
:class:`~gateway.transport.admission.TlsAcceptor`, so it knows the peer before the
handshake (a trunk's address gets the trunk's context: its CA bundle, client
certificate required) and logs every failed handshake with its reason. After a
handshake, in either direction, a :class:`TlsPeers` policy may still refuse the
peer (a pin that does not match); the connection is then closed before it
carries a byte of SIP. Without a policy, one server context and one client
context serve everything (``ssl_server``/``ssl_client``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import TYPE_CHECKING, Protocol, cast

from gateway.sip import Flow
from gateway.sip.flow import Address
from gateway.sip.framing import PONG, FramingFailed, MessageFramed, PingReceived, StreamFramer
from gateway.transport.admission import (
    AdmittedProtocol,
    ConnectionLimiter,
    TlsAcceptor,
    describe_error,
)
from gateway.transport.base import Receiver

if TYPE_CHECKING:
    from gateway.transport.base import Transport

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_WRITE_BUFFER",
    "SSL_HANDSHAKE_TIMEOUT",
    "FixedTls",
    "StreamTransport",
    "TlsPeers",
    "next_connection_id",
    "number_connections",
    "open_stream",
]

logger = logging.getLogger("wedge.transport")

MAX_CONNECTIONS_PER_IP = 256
"""Accepted connections from one source address (an IPv6 /64 counts as one).

A whole office behind one NAT shares an address, and each phone or browser tab
holds one connection: 256 leaves room for that, while one host opening thousands of
idle connections cannot use up the process's file descriptors or the global cap
and lock every other client out."""
MAX_CONNECTIONS = 10_000
"""Accepted connections in total per listener: below a typical 65,536 file
descriptor limit with room for media sockets and outbound connections."""
MAX_WRITE_BUFFER = 4 * 1024 * 1024
"""Bytes queued toward one peer before it is deemed not to read and is cut off:
some sixty maximum-size messages, far beyond any burst a live peer lets pile up."""
IDLE_TIMEOUT = 300.0
"""Seconds without a received byte before a connection is closed. RFC 5626 §4.4.1
clients ping every 95-120 s and browsers every 30 s, so live peers never hit it."""
SSL_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS handshake may take, so a client that never sends its ClientHello
does not hold a socket forever."""
CONNECT_TIMEOUT = 10.0
"""Seconds to open an outbound connection (TCP and TLS handshakes included): less
than Timer B/F (32 s), so the transaction learns of the failure before it times out."""
_connection_ids = itertools.count(1)


def next_connection_id() -> int:
    """A connection id unique in this process, shared by the stream and WS shells."""
    return next(_connection_ids)


def number_connections(first: int, step: int) -> None:
    """Deal connection ids ``first``, ``first + step``, ...: SIP worker ``k`` of ``N``
    takes ``k + 1`` and step ``N``, so an id names its worker across processes."""
    global _connection_ids
    _connection_ids = itertools.count(first, step)


class TlsPeers(Protocol):
    """Who gets which TLS context, and who is refused after the handshake."""

    def server_context(self, remote: Address) -> ssl.SSLContext:
        """The context for a handshake with a peer that connected from ``remote``."""
        ...

    def client_context(self, remote: Address) -> tuple[ssl.SSLContext, str | None]:
        """The context for a connection Wedge opens to ``remote``, and the name to
        send as SNI and check in its certificate (None: check the address)."""
        ...

    def refuse(self, ssl_object: ssl.SSLObject, remote: Address, inbound: bool) -> str | None:
        """Why a peer whose handshake succeeded is refused (a log-ready
        ``key=value`` text), or None to accept it."""
        ...


class FixedTls:
    """One server context and one client context for every peer; nobody refused."""

    def __init__(
        self,
        server: ssl.SSLContext | None,
        client: ssl.SSLContext | None,
        names: dict[Address, str],
    ) -> None:
        self.server = server
        self.client = client
        self.names = names

    def server_context(self, remote: Address) -> ssl.SSLContext:
        assert self.server is not None
        return self.server

    def client_context(self, remote: Address) -> tuple[ssl.SSLContext, str | None]:
        return self.client or _default_client_context(), self.names.get(remote)

    def refuse(self, ssl_object: ssl.SSLObject, remote: Address, inbound: bool) -> str | None:
        return None


class _Connection(AdmittedProtocol):
    """One TCP or TLS connection, accepted (``remote`` None) or opened by us."""

    def __init__(
        self,
        owner: StreamTransport,
        remote: Address | None = None,
        *,
        accepted: tuple[Address, str] | None = None,
    ) -> None:
        super().__init__(owner.limiter, accepted)
        self._owner = owner
        self.outbound = remote is not None
        if remote is not None:
            self.remote = remote
        self.flow: Flow | None = None  # None until connected; stays None if refused
        self.close_reason: str | None = None  # why *we* closed it, if we did
        self.lost: asyncio.Future[None] = owner.loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer()
        self._last_received = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._pending: list[bytes] = []

    @property
    def closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = stream = cast(asyncio.Transport, transport)
        owner = self._owner
        if not self.outbound and not self.counted and not self.admit(stream, owner.loop.time()):
            return
        ssl_object = stream.get_extra_info("ssl_object")
        if ssl_object is not None and owner.tls is not None:
            refusal = owner.tls.refuse(ssl_object, self.remote, inbound=not self.outbound)
            if refusal is not None:
                self.close_reason = "refused"
                owner._tls_refused(self, refusal)
                stream.abort()
                return
        self.flow = Flow(owner.transport, owner.local, self.remote, next_connection_id())
        self._last_received = owner.loop.time()
        if owner.idle_timeout is not None:
            self._arm_idle_timer(self._last_received + owner.idle_timeout)
        owner._connection_made(self)

    def data_received(self, data: bytes) -> None:
        flow = self.flow
        if flow is None or self.close_reason is not None:
            return
        owner = self._owner
        self._last_received = owner.loop.time()
        for event in self._framer.receive_data(data):
            if isinstance(event, MessageFramed):
                if owner.debug:
                    logger.debug("< %d bytes flow=%s", len(event.data), flow)
                owner.receiver.message_received(event.data, flow)
            elif isinstance(event, PingReceived):
                self.write(PONG)
            elif isinstance(event, FramingFailed):
                # No 400 back: the stream is out of step, so whatever follows the bad
                # message cannot be trusted to be a request we could answer.
                logger.warning("! framing failed flow=%s reason=%s", flow, event.reason)
                self.close(f"framing failed: {event.reason}")
            # PongReceived: an answer to our ping or padding; receiving it was enough.

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if not self.lost.done():
            self.lost.set_result(None)
        self.release()
        if self.flow is None:
            return  # refused at once: it was never reported
        if self.close_reason is not None:
            reason = self.close_reason
        elif isinstance(exc, ssl.SSLError):
            # A TLS alert or a record that does not decrypt, after the handshake: a
            # renegotiation attempt refused (RFC 5746 aside, Wedge never renegotiates),
            # a peer that gave up, or tampering. Worth a line, unlike a plain close.
            reason = f"tls error: {exc.reason or exc}"
            logger.warning("! tls error flow=%s reason=%s", self.flow, exc.reason or exc)
        elif exc is not None:
            reason = f"reset: {exc}"
        else:
            reason = "closed by peer"
        self._owner._connection_lost(self, reason)

    # Used by StreamTransport

    def write(self, data: bytes) -> None:
        """Send ``data`` at the end of this turn of the loop, with whatever else is
        written to this connection meanwhile: under load one system call (and one
        TLS record) carries several messages instead of one each."""
        stream = self._transport
        if stream is None or stream.is_closing():
            return
        pending = self._pending
        pending.append(data)
        if len(pending) == 1:
            self._owner.loop.call_soon(self._flush)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        stream = self._transport
        if not pending or stream is None or stream.is_closing():
            return
        stream.write(pending[0] if len(pending) == 1 else b"".join(pending))
        size = stream.get_write_buffer_size()
        if size > self._owner.max_write_buffer:
            logger.warning("! peer not reading flow=%s buffered=%d", self.flow, size)
            self.abort("peer not reading")

    def close(self, reason: str) -> None:
        """Close after flushing what is already written."""
        if self.close_reason is None:
            self.close_reason = reason
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def abort(self, reason: str) -> None:
        """Close now, dropping what is buffered."""
        if self.close_reason is None:
            self.close_reason = reason
        if self._transport is not None:
            self._transport.abort()

    def _arm_idle_timer(self, deadline: float) -> None:
        self._idle_timer = self._owner.loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        # The timer is not moved on every read (a TimerHandle per packet is costly);
        # when it fires early, it is re-armed for the deadline the last read set.
        idle_timeout = self._owner.idle_timeout
        assert idle_timeout is not None
        deadline = self._last_received + idle_timeout
        if self._owner.loop.time() < deadline:
            self._arm_idle_timer(deadline)
            return
        logger.info("- idle timeout flow=%s seconds=%g", self.flow, idle_timeout)
        self.close("idle")


class _Dial:
    """A connection being opened, and the messages waiting for it."""

    __slots__ = ("queue", "queued", "task")

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.queued = 0
        self.task: asyncio.Task[None] | None = None


class StreamTransport:
    """A TCP or TLS listener and its connections; see the module docstring."""

    def __init__(
        self,
        name: str,
        transport: str,
        receiver: Receiver,
        *,
        ssl_client: ssl.SSLContext | None = None,
        idle_timeout: float | None = IDLE_TIMEOUT,
        max_per_ip: int = MAX_CONNECTIONS_PER_IP,
        max_connections: int = MAX_CONNECTIONS,
        max_write_buffer: int = MAX_WRITE_BUFFER,
        connect_timeout: float = CONNECT_TIMEOUT,
        ssl_handshake_timeout: float = SSL_HANDSHAKE_TIMEOUT,
        tls: TlsPeers | None = None,
    ) -> None:
        if transport not in ("tcp", "tls"):
            raise ValueError(f"a stream transport is tcp or tls, not {transport!r}")
        self.name = name
        self.transport = transport
        self.local: Address = ("", 0)
        self.receiver = receiver
        self.loop = asyncio.get_running_loop()
        self.idle_timeout = idle_timeout
        self.max_write_buffer = max_write_buffer
        self.connect_timeout = connect_timeout
        self.ssl_handshake_timeout = ssl_handshake_timeout
        self.limiter = ConnectionLimiter(name, max_per_ip, max_connections)
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self._ssl_client = ssl_client
        self._server: asyncio.Server | None = None
        self._connections: dict[int, _Connection] = {}
        self._outbound: dict[Address, _Connection] = {}  # ours, one per peer
        self._inbound: dict[Address, _Connection] = {}  # theirs, latest per address
        self._dials: dict[Address, _Dial] = {}
        self._peer_names: dict[Address, str] = {}
        self._closing = False
        self.tls: TlsPeers | None = tls
        if tls is None and transport == "tls":
            self.tls = FixedTls(None, ssl_client, self._peer_names)
        self._acceptor: TlsAcceptor | None = None

    async def listen(
        self, host: str, port: int, ssl_server: ssl.SSLContext | None, *, reuse_port: bool = False
    ) -> None:
        """Start accepting connections on ``host:port``.

        TLS needs ``ssl_server``, or a :class:`TlsPeers` given at construction
        (which then chooses the context per peer). ``reuse_port``: the port is
        shared with other processes that set it too (SO_REUSEPORT).
        """
        if self.transport == "tls":
            if isinstance(self.tls, FixedTls):
                if ssl_server is None:
                    raise ValueError("tls needs ssl_server (or a TlsPeers policy)")
                self.tls.server = ssl_server
            assert self.tls is not None
            self._acceptor = TlsAcceptor(
                self.name,
                self.limiter,
                self.tls.server_context,
                lambda remote, key: _Connection(self, accepted=(remote, key)),
                self.ssl_handshake_timeout,
            )
            self.local = self._acceptor.listen(host, port, reuse_port)
        else:
            if ssl_server is not None:
                raise ValueError("only tls takes ssl_server")
            self._server = await self.loop.create_server(
                lambda: _Connection(self), host, port, reuse_port=reuse_port
            )
            sockname = self._server.sockets[0].getsockname()
            self.local = (sockname[0], sockname[1])
        logger.info(
            "= listening listener=%s transport=%s local=%s:%d",
            self.name,
            self.transport,
            *self.local,
        )

    def _tls_refused(self, connection: _Connection, refusal: str) -> None:
        """A peer whose handshake succeeded is refused by the TLS policy."""
        remote = connection.remote
        logger.warning(
            "! tls peer refused listener=%s peer=%s:%d direction=%s %s",
            self.name,
            *remote,
            "out" if connection.outbound else "in",
            refusal,
        )
        if connection.outbound:
            dial = self._dials.pop(remote, None)
            if dial is not None and dial.task is not None:
                dial.task.cancel()
            self._fail(Flow(self.transport, self.local, remote), f"peer refused: {refusal}")

    def set_peer_name(self, remote: Address, name: str) -> None:
        """The host name to expect from ``remote``'s certificate (and send as SNI)
        on connections we open to it; without one the address itself is checked."""
        self._peer_names[remote] = name

    # Transport

    def send(self, data: bytes, flow: Flow) -> None:
        """Send one message on ``flow``; never blocks, never raises (see base.Transport)."""
        if flow.connection:
            connection = self._connections.get(flow.connection)
            if connection is None or connection.closing:
                self._fail(flow, "gone")
                return
        else:
            found = self._outbound.get(flow.remote) or self._inbound.get(flow.remote)
            connection = found if found is not None and not found.closing else None
            if connection is None:
                self._queue(data, flow)
                return
        if self.debug:
            logger.debug("> %d bytes flow=%s", len(data), connection.flow)
        connection.write(data)

    async def close(self) -> None:
        """Stop listening, abandon connections being opened, close every connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._acceptor is not None:
            await self._acceptor.close()
        tasks = [dial.task for dial in self._dials.values() if dial.task is not None]
        for task in tasks:
            task.cancel()
        connections = list(self._connections.values())
        for connection in connections:
            connection.close("shutdown")
        waiters = [connection.lost for connection in connections]
        if tasks or waiters:
            # Bounded: a peer that does not read keeps close() flushing; abort it then.
            _, pending = await asyncio.wait([*tasks, *waiters], timeout=1.0)
            if pending:
                for connection in connections:
                    connection.abort("shutdown")
                await asyncio.wait(waiters, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()

    # Outbound connections

    def _queue(self, data: bytes, flow: Flow) -> None:
        if self._closing:
            self._fail(flow, "transport closed")
            return
        remote = flow.remote
        dial = self._dials.get(remote)
        if dial is None:
            dial = self._dials[remote] = _Dial()
            dial.task = self.loop.create_task(self._dial(remote, dial))
        if dial.queued + len(data) > self.max_write_buffer:
            # The transactions behind the dropped messages time out on their own.
            logger.warning("! queue full, message dropped flow=%s", flow)
            return
        dial.queue.append(data)
        dial.queued += len(data)

    async def _dial(self, remote: Address, dial: _Dial) -> None:
        context: ssl.SSLContext | None = None
        server_hostname: str | None = None
        if self.tls is not None:
            # server_hostname None: the address itself is checked.
            context, server_hostname = self.tls.client_context(remote)
        local_host = self.local[0]
        local_addr = None if local_host in ("", "0.0.0.0", "::") else (local_host, 0)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.loop.create_connection(
                    lambda: _Connection(self, remote),
                    remote[0],
                    remote[1],
                    ssl=context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=self.ssl_handshake_timeout if context else None,
                    local_addr=local_addr,
                )
        except (OSError, ValueError) as exc:  # TimeoutError and ssl.SSLError are OSErrors
            if self._dials.get(remote) is not dial:
                return  # connected, then lost: connection_lost has reported it
            del self._dials[remote]
            reason = f"connect failed: {describe_error(exc)}"
            logger.warning(
                "! connect failed listener=%s transport=%s remote=%s:%d reason=%s",
                self.name,
                self.transport,
                *remote,
                reason,
            )
            self._fail(Flow(self.transport, self.local, remote), reason)

    # Called by _Connection

    def _connection_made(self, connection: _Connection) -> None:
        flow = connection.flow
        assert flow is not None
        self._connections[flow.connection] = connection
        if connection.outbound:
            self._outbound[flow.remote] = connection
            # Flush here, not after create_connection returns: the peer's first bytes
            # may reach the receiver, which may send, before that await resumes.
            dial = self._dials.pop(flow.remote, None)
            if dial is not None:
                for data in dial.queue:
                    if self.debug:
                        logger.debug("> %d bytes flow=%s (queued)", len(data), flow)
                    connection.write(data)
        else:
            self._inbound[flow.remote] = connection
        if self.debug:
            direction = "opened" if connection.outbound else "accepted"
            logger.debug("= connection %s flow=%s", direction, flow)

    def _connection_lost(self, connection: _Connection, reason: str) -> None:
        flow = connection.flow
        assert flow is not None
        self._connections.pop(flow.connection, None)
        table = self._outbound if connection.outbound else self._inbound
        if table.get(flow.remote) is connection:
            del table[flow.remote]
        if self._closing:
            return
        if self.debug:
            logger.debug("x connection closed flow=%s reason=%s", flow, reason)
        self._fail(flow, reason)
        if connection.outbound:
            self._fail(Flow(self.transport, self.local, flow.remote), reason)

    def _fail(self, flow: Flow, reason: str) -> None:
        self.receiver.flow_failed(flow, reason)


def _default_client_context() -> ssl.SSLContext:
    # Imported late: only TLS listeners that dial out without a context need it.
    from certs.context import client_context

    return client_context()


async def open_stream(
    name: str,
    transport: str,
    host: str,
    port: int,
    receiver: Receiver,
    *,
    ssl_server: ssl.SSLContext | None = None,
    ssl_client: ssl.SSLContext | None = None,
    idle_timeout: float | None = IDLE_TIMEOUT,
    max_per_ip: int = MAX_CONNECTIONS_PER_IP,
    max_connections: int = MAX_CONNECTIONS,
    max_write_buffer: int = MAX_WRITE_BUFFER,
    connect_timeout: float = CONNECT_TIMEOUT,
    ssl_handshake_timeout: float = SSL_HANDSHAKE_TIMEOUT,
    tls: TlsPeers | None = None,
    reuse_port: bool = False,
) -> StreamTransport:
    """Listen for TCP (``transport="tcp"``) or TLS (``"tls"``, needs ``ssl_server``
    or ``tls``) on ``host:port``; ``ssl_client`` verifies peers we connect to
    (default: the system trust store); ``tls`` instead chooses contexts per peer and
    may refuse peers after their handshake. ``idle_timeout=None`` keeps idle
    connections forever."""
    stream = StreamTransport(
        name,
        transport,
        receiver,
        ssl_client=ssl_client,
        idle_timeout=idle_timeout,
        max_per_ip=max_per_ip,
        max_connections=max_connections,
        max_write_buffer=max_write_buffer,
        connect_timeout=connect_timeout,
        ssl_handshake_timeout=ssl_handshake_timeout,
        tls=tls,
    )
    await stream.listen(host, port, ssl_server, reuse_port=reuse_port)
    return stream


if TYPE_CHECKING:

    def _conforms(transport: StreamTransport) -> Transport:
        return transport
