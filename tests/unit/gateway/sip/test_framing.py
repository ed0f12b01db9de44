"""gateway.sip.framing: whole, byte by byte, with trailing bytes, pipelined, keep-alives."""

from __future__ import annotations

from gateway.sip import FramingFailed, MessageFramed, PingReceived, PongReceived, StreamFramer
from gateway.sip.framing import MAX_STREAM_BUFFER, StreamEvent
from gateway.sip.message import MAX_BODY_SIZE
from tests.helpers.messages import invite, response


def feed(framer: StreamFramer, chunks: list[bytes]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(framer.receive_data(chunk))
    return events


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_one_message_whole_bytewise_and_with_trailing_bytes() -> None:
    data = invite()
    assert feed(StreamFramer(), [data]) == [MessageFramed(data)]
    assert feed(StreamFramer(), byte_by_byte(data)) == [MessageFramed(data)]
    framer = StreamFramer()
    assert feed(framer, [data + b"SIP/2.0 1"]) == [MessageFramed(data)]
    assert framer.buffered == len(b"SIP/2.0 1")


def test_pipelined_messages() -> None:
    first, second = invite(), response()
    expected = [MessageFramed(first), MessageFramed(second), MessageFramed(first)]
    stream = first + second + first
    assert feed(StreamFramer(), [stream]) == expected
    assert feed(StreamFramer(), byte_by_byte(stream)) == expected
    # Split at every point between the two.
    for cut in range(1, len(stream)):
        assert feed(StreamFramer(), [stream[:cut], stream[cut:]]) == expected


def test_keep_alive_ping_and_pong() -> None:
    """RFC 5626 §4.4.1: CRLFCRLF is a ping, a lone CRLF a pong."""
    data = invite()
    events = feed(StreamFramer(), [b"\r\n\r\n" + data + b"\r\n" + data])
    assert events == [PingReceived(), MessageFramed(data), PongReceived(), MessageFramed(data)]
    assert feed(StreamFramer(), [b"\r", b"\n\r\n"]) == [PingReceived()]
    assert feed(StreamFramer(), [b"\r"]) == []


def test_content_length_is_required_on_a_stream() -> None:
    data = invite().replace(b"Content-Length", b"X-Length")
    events = feed(StreamFramer(), [data])
    assert events == [FramingFailed("missing Content-Length on a stream", 400)]


def test_compact_content_length() -> None:
    data = response().replace(b"Content-Length: 0", b"l:0")
    assert feed(StreamFramer(), [data]) == [MessageFramed(data)]


def test_oversized_content_length_fails_at_once() -> None:
    data = response().replace(b"Content-Length: 0", f"Content-Length: {MAX_BODY_SIZE + 1}".encode())
    assert feed(StreamFramer(), [data]) == [FramingFailed("Content-Length too large", 513)]


def test_endless_header_block_fails_and_frees_memory() -> None:
    framer = StreamFramer()
    events = feed(
        framer, [b"INVITE sip:a@b SIP/2.0\r\n"] + [b"X-Junk: " + b"a" * 1000 + b"\r\n"] * 20
    )
    assert events == [FramingFailed("header block too large", 513)]
    assert framer.buffered == 0
    # A failed framer stays failed and holds nothing, whatever comes next.
    assert framer.receive_data(invite()) == []
    assert framer.buffered == 0


def test_buffer_never_exceeds_its_cap() -> None:
    framer = StreamFramer()
    head = response().replace(b"Content-Length: 0", f"Content-Length: {MAX_BODY_SIZE}".encode())
    body = b"x" * MAX_BODY_SIZE
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    assert feed(framer, [head, *chunks]) == [MessageFramed(head + body)]
    assert framer.buffered == 0
    # What follows a message is the next message's head, and that has a cap too.
    assert feed(framer, [b"x" * 4096] * 5) == [FramingFailed("header block too large", 513)]
    assert len(head) + len(body) <= MAX_STREAM_BUFFER


def test_stray_cr_fails() -> None:
    assert feed(StreamFramer(), [b"\rX"]) == [FramingFailed("stray CR between messages", 400)]
