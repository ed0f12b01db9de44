"""A small SIP user agent for the tests, and its SIP-over-TLS connection.

:class:`UserAgent` speaks SIP over one connection (a :class:`Channel`): it sends
an INVITE, follows the dialog the 2xx sets up (route set = the Record-Route
reversed, remote target = the Contact; RFC 3261 12.1.2) to send ACK, re-INVITE
and BYE, and answers the requests the other side sends. It keeps every message
it sent and received, so tests can assert on them. It is not a full UA: one
dialog, no retransmissions (the connection is reliable), no authentication.

:func:`connect_tls` opens the TLS connection (trusting the test CA), framed by
Wedge's own :class:`~gateway.sip.framing.StreamFramer`; ``tests/e2e/sipws.py``
does the same over WebSocket.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gateway.sip import Request, Response, parse_message
from gateway.sip.framing import PONG, FramingFailed, MessageFramed, PingReceived, StreamFramer

__all__ = ["Channel", "TlsChannel", "UserAgent", "client_context", "connect_tls"]

TIMEOUT = 5.0
"""The longest any single wait of these clients may take."""

SDP = (
    "v=0\r\n"
    "o=alice {version} {version} IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)


class Channel(Protocol):
    """One connection that carries whole SIP messages both ways."""

    transport: str
    """As written in Via: ``TLS``, ``WSS``..."""
    local: tuple[str, int]

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None: ...


def client_context(ca_file: str | Path) -> ssl.SSLContext:
    """A TLS client context that trusts only the test CA and checks the host name."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class TlsChannel:
    """SIP over TLS: a byte stream cut into messages by the StreamFramer."""

    transport = "TLS"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = StreamFramer()
        self.pending: list[bytes] = []
        host, port = writer.get_extra_info("sockname")[:2]
        self.local = (host, port)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self) -> bytes:
        """The next whole message; CRLFCRLF keep-alives are answered on the way."""
        while not self.pending:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise EOFError("the server closed the TLS connection")
            for event in self.framer.receive_data(chunk):
                if isinstance(event, MessageFramed):
                    self.pending.append(event.data)
                elif isinstance(event, PingReceived):
                    await self.send(PONG)
                elif isinstance(event, FramingFailed):
                    raise ValueError(f"unframeable stream: {event.reason}")
        return self.pending.pop(0)

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass


async def connect_tls(
    host: str, port: int, ca_file: str | Path, server_hostname: str | None = None
) -> TlsChannel:
    """A TLS connection to ``host:port``, the certificate checked against the test CA."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=client_context(ca_file), server_hostname=server_hostname or host
        )
    return TlsChannel(reader, writer)


def _tag() -> str:
    return secrets.token_hex(4)


def _branch() -> str:
    return f"z9hG4bK-ua{secrets.token_hex(6)}"


class UserAgent:
    """A caller (``alice``) on one :class:`Channel`, with one dialog at a time.

    Args:
        channel: the connection.
        via_host: the sent-by host of our Via (``x.invalid`` for a browser).
        contact: our Contact URI.
    """

    def __init__(self, channel: Channel, *, via_host: str | None = None, contact: str) -> None:
        self.channel = channel
        host, port = channel.local
        self.via_sent_by = via_host or f"{host}:{port}"
        self.contact = contact
        self.sent: list[Request | Response] = []
        self.received: list[Request | Response] = []
        self._backlog: list[Request | Response] = []
        # The dialog (RFC 3261 12): filled in by invite() and the 2xx.
        self.call_id = f"{secrets.token_hex(8)}@wedge.test"
        self.local_tag = _tag()
        self.local_uri = "sip:alice@wedge.test"
        self.remote_uri = ""
        self.remote_tag: str | None = None
        self.remote_target = ""
        self.route_set: list[str] = []
        self.cseq = 0

    # -- wire ----------------------------------------------------------------

    async def send(self, message: Request | Response) -> None:
        self.sent.append(message)
        await self.channel.send(bytes(message))

    async def receive(self, timeout: float = TIMEOUT) -> Request | Response:
        """The next message (one put back by an ``expect_*`` first)."""
        if self._backlog:
            return self._backlog.pop(0)
        async with asyncio.timeout(timeout):
            message = parse_message(await self.channel.receive())
        self.received.append(message)
        return message

    async def expect_response(
        self, status: int, method: str = "INVITE", timeout: float = TIMEOUT
    ) -> Response:
        """The next response to ``method`` with ``status``, skipping provisional ones.

        A final response with another status is an AssertionError; requests that
        arrive meanwhile are kept for :meth:`expect_request`.
        """
        skipped: list[Request | Response] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self.receive()
                    if isinstance(message, Response) and message.cseq.method == method:
                        if message.status == status:
                            return message
                        assert message.status < 200, (
                            f"expected {status} to {method}, got {message.status} "
                            f"{message.reason}:\n{bytes(message).decode(errors='replace')}"
                        )
                    elif isinstance(message, Request):
                        skipped.append(message)
        finally:
            self._backlog = skipped + self._backlog

    async def expect_request(self, method: str, timeout: float = TIMEOUT) -> Request:
        """The next request of ``method``; AssertionError if another request comes first."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.receive()
                if isinstance(message, Request):
                    assert message.method == method, (
                        f"expected {method}, got {message.method}:\n"
                        f"{bytes(message).decode(errors='replace')}"
                    )
                    return message

    # -- building messages ---------------------------------------------------

    def _request(
        self,
        method: str,
        uri: str,
        cseq: int,
        *,
        routes: Sequence[str] = (),
        body: str = "",
        branch: str | None = None,
        to_tag: str | None = None,
    ) -> Request:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.channel.transport} {self.via_sent_by};"
            f"branch={branch or _branch()};rport",
            "Max-Forwards: 70",
        ]
        lines += [f"Route: {route}" for route in routes]
        to = f"<{self.remote_uri}>" + (f";tag={to_tag}" if to_tag else "")
        lines += [
            f"From: <{self.local_uri}>;tag={self.local_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        if method in ("INVITE", "SUBSCRIBE", "REFER"):
            lines.append(f"Contact: <{self.contact}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return parse_message(("\r\n".join(lines) + "\r\n\r\n" + body).encode())  # type: ignore[return-value]

    def invite(self, uri: str, sdp: str | None = None) -> Request:
        """The initial INVITE of a new dialog to ``uri``, offering ``sdp`` (or a PCMU
        stream that nothing listens to)."""
        self.remote_uri = uri
        self.remote_target = uri
        self.cseq = 1
        return self._request("INVITE", uri, 1, body=sdp or SDP.format(version=1))

    def establish(self, response: Response) -> None:
        """Take the dialog from a 2xx to our INVITE: the callee's tag and Contact, and
        the route set, which is the Record-Route in reverse (RFC 3261 12.1.2)."""
        self.remote_tag = response.to.tag
        self.remote_target = response.contacts[0].uri_text
        self.route_set = [str(entry) for entry in reversed(response.record_routes)]

    def ack(self, response: Response) -> Request:
        """The ACK for a 2xx: a new transaction, along the route set (RFC 3261 13.2.2.4)."""
        return self._request(
            "ACK",
            self.remote_target,
            response.cseq.number,
            routes=self.route_set,
            to_tag=self.remote_tag,
        )

    def in_dialog(self, method: str, body: str = "") -> Request:
        """A new request in the dialog: re-INVITE, BYE..."""
        self.cseq += 1
        return self._request(
            method,
            self.remote_target,
            self.cseq,
            routes=self.route_set,
            body=body,
            to_tag=self.remote_tag,
        )

    def reply(self, request: Request, status: int, reason: str, body: str = "") -> Response:
        """A response to a request of the other side: Via, From, To, Call-ID and CSeq
        copied (RFC 3261 8.2.6.2); a Contact on a 2xx to INVITE."""
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {value}" for value in request.headers.get_all("via")]
        lines += [
            f"From: {request.headers.get('from')}",
            f"To: {request.headers.get('to')}",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.cseq}",
        ]
        if request.method == "INVITE" and 200 <= status < 300:
            lines.append(f"Contact: <{self.contact}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return parse_message(("\r\n".join(lines) + "\r\n\r\n" + body).encode())  # type: ignore[return-value]

    # -- the steps a test runs ------------------------------------------------

    async def call(self, uri: str, timeout: float = TIMEOUT, sdp: str | None = None) -> Response:
        """INVITE ``uri``, wait for the 200, ACK it. Returns the 200."""
        await self.send(self.invite(uri, sdp))
        ok = await self.expect_response(200, "INVITE", timeout)
        self.establish(ok)
        await self.send(self.ack(ok))
        return ok

    async def answer_reinvite(self, timeout: float = TIMEOUT) -> tuple[Request, Request]:
        """Answer the other side's re-INVITE with 200 and wait for its ACK."""
        reinvite = await self.expect_request("INVITE", timeout)
        await self.send(self.reply(reinvite, 200, "OK", SDP.format(version=2)))
        ack = await self.expect_request("ACK", timeout)
        return reinvite, ack

    async def answer_bye(self, timeout: float = TIMEOUT) -> Request:
        """Answer the other side's BYE with 200."""
        bye = await self.expect_request("BYE", timeout)
        await self.send(self.reply(bye, 200, "OK"))
        return bye

    async def hang_up(self, timeout: float = TIMEOUT) -> Response:
        """Send BYE and wait for its 200."""
        await self.send(self.in_dialog("BYE"))
        return await self.expect_response(200, "BYE", timeout)

    async def close(self) -> None:
        await self.channel.close()
