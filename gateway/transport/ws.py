"""The WebSocket shell: SIP over WS and WSS (RFC 7118) on ``websockets``' Sans-I/O protocol.

Theory of operation
-------------------

``websockets``' :class:`~websockets.server.ServerProtocol` parses the HTTP upgrade
and the frames, answers pings, checks Origin and runs the closing handshake; this
module is its asyncio shell and adds what RFC 7118 and an SBC need on top:

- the ``sip`` subprotocol is required (RFC 7118 §4): a handshake that does not
  offer it gets a 400 saying so, and the 101 response names it;
- one SIP message per WebSocket message, text or binary (RFC 7118 §5), each handed
  to the receiver with the connection's :class:`~gateway.sip.Flow` straight from
  ``data_received``: no task and no queue per connection;
- messages over ``MAX_MESSAGE_SIZE`` close that connection with 1009;
- the per-address and total connection caps
  (:class:`~gateway.transport.admission.ConnectionLimiter`), applied as soon as
  the TCP connection is accepted. WSS connections are accepted by a
  :class:`~gateway.transport.admission.TlsAcceptor`, as TLS ones are: counted
  before their TLS handshake, and every failed handshake logged with its reason;
- timeouts: for the opening handshake (TLS, then HTTP), for idling (on received
  bytes: pongs count, so a browser that answers our pings stays however rarely it
  sends SIP), for a ping left unanswered until the next one, and for the peer's
  half of the closing handshake;
- plain HTTP requests (no upgrade) go to a ``process_request`` hook, which may
  answer them (the web demo's files) from the port the SIP uses.

Wedge never dials out over WebSocket: browsers connect to it, and a send on a
connection that is gone fails the flow, which turns into 430 Flow Failed upstream.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from websockets.exceptions import InvalidHeader, WebSocketException
from websockets.frames import DATA_OPCODES, CloseCode, Frame, Opcode
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol

from gateway.sip import Flow
from gateway.sip.flow import Address
from gateway.sip.message import MAX_MESSAGE_SIZE
from gateway.transport.admission import (
    AdmittedProtocol,
    ConnectionLimiter,
    RateLimitedLog,
    TlsAcceptor,
)
from gateway.transport.base import Receiver
from gateway.transport.stream import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_WRITE_BUFFER,
    next_connection_id,
)

if TYPE_CHECKING:
    from gateway.transport.base import Transport

__all__ = [
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "SUBPROTOCOL",
    "ProcessRequest",
    "WsTransport",
    "open_ws",
]

logger = logging.getLogger("wedge.transport")

SUBPROTOCOL = Subprotocol("sip")
"""The WebSocket subprotocol of SIP (RFC 7118 §4, IANA registry)."""
PING_INTERVAL = 30.0
"""Seconds between our WebSocket pings. Browser NATs and proxies drop silent TCP
after a minute or two; 30 s keeps the path open, and a peer that has not answered
one ping by the next is deemed gone."""
OPEN_TIMEOUT = 10.0
"""Seconds from the TCP connection to the end of the HTTP upgrade (for WSS, the TLS
handshake has as long again before that)."""
CLOSE_TIMEOUT = 5.0
"""Seconds to wait for the peer's close frame before dropping the TCP connection."""
SERVER_HEADER = "Wedge"

ProcessRequest = Callable[[ServerProtocol, Request], Response | None]
"""A hook for plain HTTP requests: return a Response (``protocol.reject(status,
text)`` makes a short one) to answer instead of upgrading, or None to go on."""

_REFUSED_NO_SIP = (
    "This is a SIP over WebSocket endpoint (RFC 7118): the handshake must offer "
    "the subprotocol 'sip' (Sec-WebSocket-Protocol: sip).\n"
)


class _WsConnection(AdmittedProtocol):
    """One WS or WSS connection: bytes through websockets' ServerProtocol, events out."""

    def __init__(self, owner: WsTransport, accepted: tuple[Address, str] | None = None) -> None:
        super().__init__(owner.limiter, accepted)
        self._owner = owner
        self.protocol = ServerProtocol(
            origins=owner.origins,
            subprotocols=[SUBPROTOCOL],
            max_size=MAX_MESSAGE_SIZE,
            logger=owner.websockets_logger,
        )
        self.flow: Flow | None = None  # set once admitted; stays None if refused
        self.open = False  # the upgrade is done and the connection is in the table
        self.failure_reason: str | None = None  # why *we* closed it, if we did
        self.lost: asyncio.Future[None] = owner.loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []
        self._last_received = 0.0
        self._timer: asyncio.TimerHandle | None = None  # the open, then the idle timeout
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_unanswered = False
        self._close_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = stream = cast(asyncio.Transport, transport)
        owner = self._owner
        if not self.counted and not self.admit(stream, owner.loop.time()):
            return
        self.flow = Flow(owner.transport, owner.local, self.remote, next_connection_id())
        self._last_received = owner.loop.time()
        self._timer = owner.loop.call_later(owner.open_timeout, self._open_timed_out)

    def data_received(self, data: bytes) -> None:
        if self.flow is None:
            return
        self._last_received = self._owner.loop.time()
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request):
                self._upgrade(event)
        if protocol.state is State.CONNECTING and protocol.handshake_exc is not None:
            # Garbage, a request too big, a bad upgrade: the protocol has answered it
            # (or not, for garbage) and closes; the operator gets the reason.
            self._owner._handshake_refused(self.remote, protocol.handshake_exc)
            protocol.handshake_exc = None  # once
        self.flush()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        if not self.lost.done():
            self.lost.set_result(None)
        self.release()
        if self.open:
            self.open = False
            self._owner._connection_lost(self, self.failure_reason or f"closed {self.close_code}")

    # Used by WsTransport

    @property
    def close_code(self) -> int:
        """The code of whoever closed first: ours (1009 for a message too big) when we
        started the closing handshake, else the peer's; 1006 when nobody sent one."""
        protocol = self.protocol
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None and not protocol.close_rcvd_then_sent:
            return sent.code
        if received is not None:
            return received.code
        return sent.code if sent is not None else CloseCode.ABNORMAL_CLOSURE

    def flush(self) -> None:
        """Write what the protocol has to send; close the TCP connection at its end."""
        stream = self._transport
        if stream is None:
            return
        writes = self.protocol.data_to_send()
        if not writes:
            return
        eof = writes[-1] == SEND_EOF
        if eof:
            writes.pop()
        if writes and not stream.is_closing():
            stream.write(writes[0] if len(writes) == 1 else b"".join(writes))
            size = stream.get_write_buffer_size()
            if size > self._owner.max_write_buffer:
                logger.warning("! peer not reading flow=%s buffered=%d", self.flow, size)
                self.abort("peer not reading")
                return
        if eof:
            stream.close()  # after the buffered bytes; a TLS stream has no half-close
        elif self.protocol.close_expected() and self._close_timer is None:
            self._close_timer = self._owner.loop.call_later(CLOSE_TIMEOUT, self.abort)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the peer has CLOSE_TIMEOUT to finish it."""
        if self.failure_reason is None:
            self.failure_reason = reason
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self.flush()
        elif self._transport is not None:
            self._transport.close()

    def abort(self, reason: str | None = None) -> None:
        if self.failure_reason is None:
            self.failure_reason = reason
        if self._transport is not None:
            self._transport.abort()

    # Internals

    def _upgrade(self, request: Request) -> None:
        owner = self._owner
        protocol = self.protocol
        response = owner.process_request(protocol, request) if owner.process_request else None
        if response is None:
            response = _require_sip(protocol, request, self.remote)
        if response is None:
            response = protocol.accept(request)
        response.headers["Server"] = SERVER_HEADER
        protocol.send_response(response)
        if protocol.state is not State.OPEN:
            return
        if self._timer is not None:
            self._timer.cancel()
        if owner.idle_timeout is not None:
            self._arm_idle_timer(self._last_received + owner.idle_timeout)
        if owner.ping_interval is not None:
            self._ping_timer = owner.loop.call_later(owner.ping_interval, self._ping)
        self.open = True
        owner._connection_made(self)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode in DATA_OPCODES:
            data = bytes(frame.data)
            if not frame.fin:
                self._fragments.append(data)
                return
            if self._fragments:
                self._fragments.append(data)
                data = b"".join(self._fragments)
                self._fragments = []
            owner = self._owner
            if owner.debug:
                logger.debug("< %d bytes flow=%s", len(data), self.flow)
            owner.receiver.message_received(data, cast(Flow, self.flow))
        elif opcode is Opcode.PONG:
            self._ping_unanswered = False
        # Pings are answered and close frames echoed by the protocol itself.

    def _open_timed_out(self) -> None:
        self._timer = None
        if self.protocol.state is State.CONNECTING:
            self._owner._handshake_refused(self.remote, TimeoutError("timed out"))
            self.abort("handshake timed out")

    def _arm_idle_timer(self, deadline: float) -> None:
        self._timer = self._owner.loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        # Re-armed lazily from the last read, as in stream.py: no timer per frame.
        idle_timeout = self._owner.idle_timeout
        assert idle_timeout is not None
        deadline = self._last_received + idle_timeout
        if self._owner.loop.time() < deadline:
            self._arm_idle_timer(deadline)
            return
        self._timer = None
        logger.info("- idle timeout flow=%s seconds=%g", self.flow, idle_timeout)
        self.close(CloseCode.GOING_AWAY, "idle")

    def _ping(self) -> None:
        owner = self._owner
        assert owner.ping_interval is not None
        self._ping_timer = None
        if self.protocol.state is not State.OPEN:
            return
        if self._ping_unanswered:
            # The peer is gone or stuck: no closing handshake to wait for.
            logger.info("- ping unanswered flow=%s seconds=%g", self.flow, owner.ping_interval)
            self.failure_reason = "ping unanswered"
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "ping unanswered")
            self.flush()
            return
        self._ping_unanswered = True
        self.protocol.send_ping(b"")
        self.flush()
        self._ping_timer = owner.loop.call_later(owner.ping_interval, self._ping)


class WsTransport:
    """A WS or WSS listener and its connections; see the module docstring."""

    def __init__(
        self,
        name: str,
        transport: str,
        receiver: Receiver,
        *,
        idle_timeout: float | None = IDLE_TIMEOUT,
        max_per_ip: int = MAX_CONNECTIONS_PER_IP,
        max_connections: int = MAX_CONNECTIONS,
        max_write_buffer: int = MAX_WRITE_BUFFER,
    ) -> None:
        if transport not in ("ws", "wss"):
            raise ValueError(f"a WebSocket transport is ws or wss, not {transport!r}")
        self.name = name
        self.transport = transport
        self.local: Address = ("", 0)
        self.receiver = receiver
        self.loop = asyncio.get_running_loop()
        self.idle_timeout = idle_timeout
        self.max_write_buffer = max_write_buffer
        self.limiter = ConnectionLimiter(name, max_per_ip, max_connections)
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self.websockets_logger = logging.getLogger("wedge.transport.websockets")
        self.origins: list[Origin | None] | None = None
        self.ping_interval: float | None = PING_INTERVAL
        self.open_timeout = OPEN_TIMEOUT
        self.process_request: ProcessRequest | None = None
        self._server: asyncio.Server | None = None
        self._acceptor: TlsAcceptor | None = None
        self._connections: dict[int, _WsConnection] = {}
        self._unsent: dict[_WsConnection, Flow] = {}  # frames made, not yet written
        self._refusal_log = RateLimitedLog()
        self._closing = False

    async def listen(
        self,
        host: str,
        port: int,
        *,
        ssl_server: ssl.SSLContext | None,
        origins: Sequence[str] | None,
        ping_interval: float | None,
        open_timeout: float,
        process_request: ProcessRequest | None,
        reuse_port: bool = False,
    ) -> None:
        """Start accepting connections on ``host:port`` (``reuse_port``: shared with
        other processes that set it too, SO_REUSEPORT)."""
        if (self.transport == "wss") != (ssl_server is not None):
            raise ValueError("wss needs ssl_server, and only wss takes one")
        self.origins = [Origin(origin) for origin in origins] if origins else None
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.process_request = process_request
        if ssl_server is not None:
            context = ssl_server
            self._acceptor = TlsAcceptor(
                self.name,
                self.limiter,
                lambda remote: context,
                lambda remote, key: _WsConnection(self, accepted=(remote, key)),
                open_timeout,
            )
            self.local = self._acceptor.listen(host, port, reuse_port)
        else:
            self._server = await self.loop.create_server(
                lambda: _WsConnection(self), host, port, reuse_port=reuse_port
            )
            sockname = self._server.sockets[0].getsockname()
            self.local = (sockname[0], sockname[1])
        logger.info(
            "= listening listener=%s transport=%s local=%s:%d",
            self.name,
            self.transport,
            *self.local,
        )

    # Transport

    def send(self, data: bytes, flow: Flow) -> None:
        """Send one message as one frame; never blocks, never raises.

        Text frame when ``data`` is UTF-8 (nearly always: SIP is text), else binary
        (RFC 7118 §5). Written at the end of this turn of the loop with the
        connection's other frames: under load one system call (and one TLS record)
        carries several messages.
        """
        connection = self._connections.get(flow.connection) if flow.connection else None
        if connection is None or connection.protocol.state is not State.OPEN:
            self.receiver.flow_failed(flow, "no WebSocket connection")
            return
        if self.debug:
            logger.debug("> %d bytes flow=%s", len(data), flow)
        try:
            if _is_utf8(data):
                connection.protocol.send_text(data)
            else:
                connection.protocol.send_binary(data)
        except WebSocketException as exc:
            logger.warning("! send failed flow=%s error=%s", flow, exc)
            self.receiver.flow_failed(flow, "no WebSocket connection")
            return
        if not self._unsent:
            self.loop.call_soon(self._write_unsent)
        self._unsent[connection] = flow

    def _write_unsent(self) -> None:
        unsent, self._unsent = self._unsent, {}
        for connection in unsent:
            connection.flush()

    async def close(self) -> None:
        """Stop listening and close every connection (1001 going away)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._acceptor is not None:
            await self._acceptor.close()
        connections = list(self._connections.values())
        for connection in connections:
            connection.close(CloseCode.GOING_AWAY, "shutdown")
        waiters = [connection.lost for connection in connections]
        if waiters:
            # Bounded: a peer that does not answer the close is cut off.
            _, pending = await asyncio.wait(waiters, timeout=1.0)
            if pending:
                for connection in connections:
                    connection.abort()
                await asyncio.wait(waiters, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()

    # Called by _WsConnection

    def _connection_made(self, connection: _WsConnection) -> None:
        flow = cast(Flow, connection.flow)
        self._connections[flow.connection] = connection
        if self.debug:
            logger.debug("= connection accepted flow=%s", flow)

    def _connection_lost(self, connection: _WsConnection, reason: str) -> None:
        flow = cast(Flow, connection.flow)
        self._connections.pop(flow.connection, None)
        self._unsent.pop(connection, None)
        if self._closing:
            return
        if self.debug:
            logger.debug("x connection closed flow=%s reason=%s", flow, reason)
        self.receiver.flow_failed(flow, reason)

    def _handshake_refused(self, remote: Address, exc: BaseException) -> None:
        """An upgrade that failed: garbage, a bad or timed-out HTTP request, an Origin
        not allowed. Logged with the reason, at a limited rate (a scan is many)."""
        log = self._refusal_log
        if not log.allow(self.loop.time()):
            return
        reason = str(exc) or type(exc).__name__
        if exc.__cause__ is not None:
            reason = f"{reason}: {exc.__cause__}"
        logger.info(
            "! websocket handshake refused listener=%s peer=%s:%d reason=%s%s",
            self.name,
            *remote,
            reason,
            log.take_suppressed(),
        )


def _require_sip(protocol: ServerProtocol, request: Request, remote: Address) -> Response | None:
    # Only WebSocket upgrades are checked: a plain GET the hook did not answer gets
    # websockets' own 426, which tells a browser user more than a 400 would.
    if "websocket" not in ",".join(request.headers.get_all("Upgrade")).lower():
        return None
    offered: list[str] = []
    try:
        for value in request.headers.get_all("Sec-WebSocket-Protocol"):
            offered += parse_subprotocol(value)
    except InvalidHeader:
        offered = []
    if SUBPROTOCOL in offered:
        return None
    logger.info(
        "! handshake refused reason=no-sip-subprotocol remote=%s:%d offered=%s",
        *remote,
        ",".join(offered) or "-",
    )
    return protocol.reject(http.HTTPStatus.BAD_REQUEST, _REFUSED_NO_SIP)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def open_ws(
    name: str,
    transport: str,
    host: str,
    port: int,
    receiver: Receiver,
    *,
    ssl_server: ssl.SSLContext | None = None,
    origins: Sequence[str] | None = None,
    idle_timeout: float | None = IDLE_TIMEOUT,
    ping_interval: float | None = PING_INTERVAL,
    max_per_ip: int = MAX_CONNECTIONS_PER_IP,
    max_connections: int = MAX_CONNECTIONS,
    max_write_buffer: int = MAX_WRITE_BUFFER,
    open_timeout: float = OPEN_TIMEOUT,
    process_request: ProcessRequest | None = None,
    reuse_port: bool = False,
) -> WsTransport:
    """Listen for SIP over WebSocket (``"ws"``) or secure WebSocket (``"wss"``, needs
    ``ssl_server``). ``origins``: the Origin values accepted (None or empty: any).
    ``process_request`` answers plain HTTP requests on the same port."""
    ws = WsTransport(
        name,
        transport,
        receiver,
        idle_timeout=idle_timeout,
        max_per_ip=max_per_ip,
        max_connections=max_connections,
        max_write_buffer=max_write_buffer,
    )
    await ws.listen(
        host,
        port,
        ssl_server=ssl_server,
        origins=origins,
        ping_interval=ping_interval,
        open_timeout=open_timeout,
        process_request=process_request,
        reuse_port=reuse_port,
    )
    return ws


if TYPE_CHECKING:

    def _conforms(transport: WsTransport) -> Transport:
        return transport
