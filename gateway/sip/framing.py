"""Cut a TCP or TLS byte stream into SIP messages.

A stream carries messages back to back; each one's end is found from its
Content-Length, which RFC 3261 §18.3 makes mandatory on streams. Between messages
a peer may send keep-alives (RFC 5626 §4.4.1): a double CRLF "ping", which we answer
with a single CRLF "pong", and single CRLFs, which are pongs or padding and need no
answer. UDP datagrams and WebSocket frames carry exactly one message each and need
no framer.

The framer is pure: feed it bytes, read back events. It never raises to the caller
(STYLE.md convention 8): a stream it cannot frame becomes a :class:`FramingFailed`
event, after which it ignores further input and the shell closes the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.sip.message import MAX_BODY_SIZE, MAX_HEADER_SIZE

__all__ = [
    "MAX_STREAM_BUFFER",
    "FramingFailed",
    "MessageFramed",
    "PingReceived",
    "PongReceived",
    "StreamEvent",
    "StreamFramer",
]

MAX_STREAM_BUFFER = MAX_HEADER_SIZE + MAX_BODY_SIZE + 4
"""Most bytes held for one flow: one complete message at the size limits."""

PONG = b"\r\n"
"""What the shell writes back on :class:`PingReceived`."""

# Content-Length or its compact form "l" at the start of a header line. A fold
# between the name and the number is not worth handling here: the full parser,
# which runs next, handles it, and a stream peer that folds Content-Length gets
# its message cut wrongly and a 400 from that parser.
_CONTENT_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([0-9]+)[ \t]*\r", re.I)


@dataclass(frozen=True, slots=True)
class MessageFramed:
    """One whole message's bytes, ready for :func:`gateway.sip.parse_message`."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A CRLFCRLF keep-alive ping arrived; answer it with :data:`PONG`."""


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A lone CRLF arrived between messages: a pong to our ping, or padding."""


@dataclass(frozen=True, slots=True)
class FramingFailed:
    """The stream cannot be framed any further; close the connection.

    ``status`` is the response a request that caused it deserves (400, or 513 for
    sizes over the limits), should the shell want to send one before closing.
    """

    reason: str
    status: int


StreamEvent = MessageFramed | PingReceived | PongReceived | FramingFailed


class StreamFramer:
    """Frames one connection's byte stream. Does not raise."""

    __slots__ = ("_buffer", "_failed", "_scanned", "max_buffer")

    def __init__(self, max_buffer: int = MAX_STREAM_BUFFER) -> None:
        self.max_buffer = max_buffer
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already searched for the head's end
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> list[StreamEvent]:
        """Feed bytes from the stream; return the events they complete."""
        if self._failed:
            return []
        self._buffer += data
        events: list[StreamEvent] = []
        while self._buffer and not self._failed:
            event = self._next_event()
            if event is None:
                break
            events.append(event)
        if not self._failed and len(self._buffer) > self.max_buffer:
            events.append(self._fail("message too large", 513))
        return events

    def _fail(self, reason: str, status: int) -> FramingFailed:
        self._failed = True
        self._buffer.clear()
        return FramingFailed(reason, status)

    def _next_event(self) -> StreamEvent | None:
        buffer = self._buffer
        if buffer[:1] == b"\r":
            return self._keep_alive()
        end_of_head = buffer.find(b"\r\n\r\n", max(self._scanned - 3, 0))
        if end_of_head < 0:
            self._scanned = len(buffer)
            if len(buffer) > MAX_HEADER_SIZE:
                return self._fail("header block too large", 513)
            return None
        match = _CONTENT_LENGTH.search(buffer, 0, end_of_head + 2)
        if match is None:
            return self._fail("missing Content-Length on a stream", 400)
        digits = match.group(1)
        if len(digits) > 10 or int(digits) > MAX_BODY_SIZE:
            return self._fail("Content-Length too large", 513)
        end = end_of_head + 4 + int(digits)
        if len(buffer) < end:
            self._scanned = end_of_head
            return None
        data = bytes(buffer[:end])
        del buffer[:end]
        self._scanned = 0
        return MessageFramed(data)

    def _keep_alive(self) -> StreamEvent | None:
        buffer = self._buffer
        if buffer.startswith(b"\r\n\r\n"):
            del buffer[:4]
            return PingReceived()
        if buffer.startswith(b"\r\n"):
            # A CRLF that might be the first half of a ping split across reads is
            # taken as a pong: peers send a ping in one write, and taking it as a
            # pong only costs one missed answer, never a stalled stream.
            del buffer[:2]
            return PongReceived()
        if len(buffer) == 1:
            return None  # a lone CR: wait for its LF
        return self._fail("stray CR between messages", 400)
