"""The WebSocket shell: SIP over WS and WSS (RFC 7118) on ``websockets``' asyncio server.

Theory of operation
-------------------

``websockets`` does the HTTP upgrade, framing, masking, ping/pong and closing
handshake; this module adds what RFC 7118 and an SBC need on top:

- the ``sip`` subprotocol is required (RFC 7118 §4): a handshake that does not
  offer it gets a 400 saying so, and the 101 response names it;
- one SIP message per frame, text or binary (RFC 7118 §5), each handed to the
  receiver with the connection's :class:`~gateway.sip.Flow`;
- frames over ``MAX_MESSAGE_SIZE`` close that connection with 1009;
- the per-address and total connection caps of the stream shell
  (:class:`~gateway.transport.stream.ConnectionLimiter`), applied as soon as the
  TCP connection (and, for WSS, the TLS handshake) is made;
- an idle timeout on received bytes; WebSocket pongs count, so a browser that
  answers our pings stays connected however rarely it sends SIP.

Wedge never dials out over WebSocket: browsers connect to it, and a send on a
connection that is gone fails the flow, which turns into 430 Flow Failed upstream.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHeader, WebSocketException
from websockets.frames import CloseCode
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol

from gateway.sip import Flow
from gateway.sip.flow import Address
from gateway.sip.message import MAX_MESSAGE_SIZE
from gateway.transport.base import Receiver
from gateway.transport.stream import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_WRITE_BUFFER,
    ConnectionLimiter,
    next_connection_id,
)

if TYPE_CHECKING:
    from gateway.transport.base import Transport

__all__ = ["OPEN_TIMEOUT", "PING_INTERVAL", "SUBPROTOCOL", "WsTransport", "open_ws"]

logger = logging.getLogger("wedge.transport")

SUBPROTOCOL = Subprotocol("sip")
"""The WebSocket subprotocol of SIP (RFC 7118 §4, IANA registry)."""
PING_INTERVAL = 30.0
"""Seconds between our WebSocket pings. Browser NATs and proxies drop silent TCP
after a minute or two; 30 s keeps the path open and finds a dead peer quickly."""
PING_TIMEOUT = 20.0
"""Seconds a pong may take before the connection is deemed dead and closed."""
OPEN_TIMEOUT = 10.0
"""Seconds for the TLS handshake and, separately, the HTTP upgrade."""
CLOSE_TIMEOUT = 5.0
"""Seconds to wait for the peer's close frame before dropping the TCP connection."""

ProcessRequest = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]
"""A ``websockets`` ``process_request`` hook: return a Response to answer a plain
HTTP request (the web demo's files) instead of upgrading, or None to go on."""

_REFUSED_NO_SIP = (
    "This is a SIP over WebSocket endpoint (RFC 7118): the handshake must offer "
    "the subprotocol 'sip' (Sec-WebSocket-Protocol: sip).\n"
)


class _SipConnection(ServerConnection):
    """A ``websockets`` server connection that knows its Flow and its idle time."""

    owner: ClassVar[WsTransport]  # set on the subclass each WsTransport makes

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        super().__init__(protocol, server, **kwargs)
        self.flow: Flow | None = None  # stays None if refused by the limiter
        self.failure_reason: str | None = None  # why *we* closed it, if we did
        self.last_received = 0.0
        self._limit_key: str | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # starts websockets' handshake task
        owner = self.owner
        peer = transport.get_extra_info("peername")
        self._limit_key = owner.limiter.admit(peer[0], self.loop.time())
        if self._limit_key is None:
            # The handshake task sees the connection lost and ends without a word.
            cast(asyncio.Transport, transport).abort()
            return
        self.flow = Flow(owner.transport, owner.local, (peer[0], peer[1]), next_connection_id())
        self.last_received = self.loop.time()

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.stop_idle_timer()
        if self._limit_key is not None:
            self.owner.limiter.release(self._limit_key)
            self._limit_key = None

    def start_idle_timer(self) -> None:
        if self.owner.idle_timeout is not None:
            self._arm_idle_timer(self.last_received + self.owner.idle_timeout)

    def stop_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _arm_idle_timer(self, deadline: float) -> None:
        self._idle_timer = self.loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        # Re-armed lazily from the last read, as in stream.py: no timer per frame.
        idle_timeout = self.owner.idle_timeout
        assert idle_timeout is not None
        deadline = self.last_received + idle_timeout
        if self.loop.time() < deadline:
            self._arm_idle_timer(deadline)
            return
        self._idle_timer = None
        logger.info("- idle timeout flow=%s seconds=%g", self.flow, idle_timeout)
        self.failure_reason = "idle"
        self.owner._spawn(self.close(CloseCode.GOING_AWAY, "idle timeout"))


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
        self.idle_timeout = idle_timeout
        self.max_write_buffer = max_write_buffer
        self.limiter = ConnectionLimiter(name, max_per_ip, max_connections)
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self._server: Server | None = None
        self._connections: dict[int, _SipConnection] = {}
        self._unsent: dict[_SipConnection, Flow] = {}  # frames made, not yet written
        self._tasks: set[asyncio.Task[None]] = set()
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
        owner = self

        class Connection(_SipConnection):
            pass

        Connection.owner = owner
        hook = process_request

        async def check_request(connection: ServerConnection, request: Request) -> Response | None:
            if hook is not None:
                response = hook(connection, request)
                if isinstance(response, Awaitable):
                    response = await response
                if response is not None:
                    return response
            return _require_sip(connection, request)

        extra: dict[str, Any] = {}
        if ssl_server is not None:
            extra = {"ssl": ssl_server, "ssl_handshake_timeout": open_timeout}
        self._server = await serve(
            self._handle,
            host,
            port,
            origins=[Origin(origin) for origin in origins] if origins else None,
            subprotocols=[SUBPROTOCOL],
            process_request=check_request,
            server_header="Wedge",
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=PING_TIMEOUT if ping_interval is not None else None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_MESSAGE_SIZE,
            logger=logging.getLogger("wedge.transport.websockets"),
            create_connection=Connection,
            reuse_port=reuse_port,
            **extra,
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
        (RFC 7118 §5). Framed straight through websockets' Sans-I/O protocol so
        that sends keep their order without a task each, and written at the end of
        this turn of the loop with the connection's other frames: under load one
        system call (and one TLS record) carries several messages.
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
            asyncio.get_running_loop().call_soon(self._write_unsent)
        self._unsent[connection] = flow

    def _write_unsent(self) -> None:
        unsent, self._unsent = self._unsent, {}
        for connection, flow in unsent.items():
            try:
                connection.send_data()
            except (OSError, WebSocketException) as exc:
                logger.warning("! send failed flow=%s error=%s", flow, exc)
                self.receiver.flow_failed(flow, "no WebSocket connection")
                continue
            size = connection.transport.get_write_buffer_size()
            if size > self.max_write_buffer:
                logger.warning("! peer not reading flow=%s buffered=%d", flow, size)
                connection.failure_reason = "peer not reading"
                connection.transport.abort()

    async def close(self) -> None:
        """Stop listening and close every connection (1001 going away)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    # Internals

    async def _handle(self, server_connection: ServerConnection) -> None:
        """websockets' handler: runs from the end of the handshake to the close."""
        connection = cast(_SipConnection, server_connection)
        flow = connection.flow
        assert flow is not None  # refused connections never finish the handshake
        self._connections[flow.connection] = connection
        connection.start_idle_timer()
        if self.debug:
            logger.debug("= connection accepted flow=%s", flow)
        code: int = CloseCode.ABNORMAL_CLOSURE
        try:
            while True:
                data = await connection.recv(decode=False)
                if self.debug:
                    logger.debug("< %d bytes flow=%s", len(data), flow)
                self.receiver.message_received(data, flow)
        except ConnectionClosed as exc:
            code = _close_code(exc)
        finally:
            self._connections.pop(flow.connection, None)
            connection.stop_idle_timer()
        if self._closing:
            return
        reason = connection.failure_reason or f"closed {code}"
        if self.debug:
            logger.debug("x connection closed flow=%s reason=%s", flow, reason)
        self.receiver.flow_failed(flow, reason)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _require_sip(connection: ServerConnection, request: Request) -> Response | None:
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
        "! handshake refused reason=no-sip-subprotocol remote=%s offered=%s",
        connection.remote_address,
        ",".join(offered) or "-",
    )
    return connection.respond(http.HTTPStatus.BAD_REQUEST, _REFUSED_NO_SIP)


def _close_code(exc: ConnectionClosed) -> int:
    # The code of whoever closed first: ours (1009 for a frame too big) when we
    # started the closing handshake, else the peer's; 1006 when nobody sent one.
    if exc.sent is not None and not exc.rcvd_then_sent:
        return exc.sent.code
    if exc.rcvd is not None:
        return exc.rcvd.code
    return exc.sent.code if exc.sent is not None else CloseCode.ABNORMAL_CLOSURE


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
