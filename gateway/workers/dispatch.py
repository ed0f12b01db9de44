"""Which SIP worker handles a message, and the frames workers pass each other. Pure.

With ``[wedge] workers = N``, N processes share the listeners (each UDP listener is
one socket they all read; stream listeners share a port, SO_REUSEPORT): the kernel
hands a datagram or a new connection to any of them. A proxy's state (transactions,
dialogs, a call's media) must live in one place, so each message has an *owner*,
and a worker that receives a message it does not own passes it to the owner, with
the flow it came on.

The owner of a call is the worker that handled its first request, and that worker
writes its number into what comes back to it: the branch of its Via (which
every response carries back) and its Record-Route and Path entries (which the
dialog's later requests, and requests toward a registered client, carry in
their Route). So a marked message names its owner (:func:`message_owner`). An
unmarked one starts something new: on a WebSocket connection its owner is the
worker holding that connection, so a browser's calls live where its socket is
and its messages never cross between workers; otherwise it is the worker
numbered ``crc32(Call-ID) % N`` (a trunk's one connection carries the calls of
every worker). Every message of a call carries its Call-ID, so a CANCEL or a
retransmission of an unmarked request finds the same worker.

A connection belongs to the worker that accepted or opened it; its id says which
(:func:`connection_owner`). The call's owner sends on such a flow by asking the
connection's worker to (a ``send`` frame). When a connection fails, its worker tells
the others (a ``failed`` frame), so their transactions on it end at once.

A frame is a header line of space-separated fields, then the payload (the SIP
message, or the reason a flow failed). What a worker has for another in one turn
of its loop travels as one datagram on a local socket, each frame after its length
(:func:`pack_frames`): under load that is one system call for many messages.
"""

from __future__ import annotations

import re
import zlib
from enum import Enum

from gateway.memo import remember
from gateway.proxy.routing import BRANCH_PREFIX, WORKER_PARAM
from gateway.sip.flow import Flow

__all__ = [
    "Frame",
    "FrameError",
    "FrameKind",
    "connection_owner",
    "decode_frame",
    "encode_frame",
    "message_owner",
    "pack_frames",
    "unpack_frames",
]

_CALL_ID = re.compile(rb"\r\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_CALL_ID_LINE = b"\r\nCall-ID:"
"""The header as RFC 3261 writes it, which nearly every peer sends."""


# Every worker runs these on every message it reads: one scan each, in C. A
# response names its owner in its top Via, which is ours (the first branch of
# ours in it): the prefix, the loop hash, ".", the worker, ".". A request names it
# in the Route entries of ours it carries (;wk=N), which are the top ones, and
# are in every request of the dialog, whichever side sends it.
_MARKED_BRANCH = re.compile(
    rb";branch=" + re.escape(BRANCH_PREFIX.encode()) + rb"[0-9a-f]*\.([0-9]{1,3})\."
)
_MARKED_ROUTE = re.compile(
    rb"\r\nroute[ \t]*:[^\r]*?;" + WORKER_PARAM.encode() + rb"=([0-9]{1,3})[;>,\s]",
    re.IGNORECASE,
)
_WEBSOCKETS = frozenset({"ws", "wss"})


def message_owner(data: bytes, flow: Flow, workers: int) -> int | None:
    """The worker that handles the SIP message ``data``, which came on ``flow``; None
    when nothing names one (no mark, no Call-ID): whoever received it answers it,
    with a 400 if it is a request."""
    marked = (_MARKED_BRANCH if data.startswith(b"SIP/2.0 ") else _MARKED_ROUTE).search(data)
    if marked is not None:
        owner = int(marked.group(1))
        if owner < workers:
            return owner
    if flow.connection and flow.transport in _WEBSOCKETS:
        return connection_owner(flow.connection, workers)
    return _call_id_owner(data, workers)


def _call_id_owner(data: bytes, workers: int) -> int | None:
    # A plain search for the usual spelling costs a fraction of the case-blind
    # pattern, which stays for the others (compact ``i``, other cases, space
    # before the colon) and reads the header section only. The value ends at the
    # first CR or LF, as the pattern's does.
    at = data.find(_CALL_ID_LINE)
    if at >= 0 and data.find(b"\r\n\r\n", 0, at) < 0:  # not in a body
        start = at + len(_CALL_ID_LINE)
        stop = data.find(b"\r", start)
        if stop < 0:
            stop = len(data)
        feed = data.find(b"\n", start, stop)
        if feed >= 0:
            stop = feed
        call_id = data[start:stop].strip()
    else:
        end = data.find(b"\r\n\r\n")
        found = _CALL_ID.search(data, 0, len(data) if end < 0 else end + 2)
        if found is None:
            return None
        call_id = found.group(1).strip()
    if not call_id:
        return None
    return zlib.crc32(call_id) % workers


def connection_owner(connection: int, workers: int) -> int:
    """The worker holding connection ``connection`` (ids are dealt out round-robin:
    worker ``k`` numbers its connections ``k + 1``, ``k + 1 + N``, ...)."""
    return (connection - 1) % workers


class FrameKind(Enum):
    MESSAGE = "M"
    """A SIP message for its owner: handle it as received on the flow."""
    SEND = "S"
    """Send the payload on the flow (a connection the receiving worker holds)."""
    FAILED = "F"
    """The flow failed; the payload is the reason."""


class FrameError(ValueError):
    """A frame that does not decode (a bug or a stranger on the socket)."""


Frame = tuple[FrameKind, Flow, bytes]
"""A decoded frame: its kind, the flow it names and its payload."""

_KINDS = {kind.value.encode(): kind for kind in FrameKind}
_KIND_BYTES = {kind: kind.value.encode() for kind in FrameKind}
_MEMO_SIZE = 4096
"""Flows whose header text each worker keeps, both ways; the oldest go first."""
# The same few flows (the trunk, the busy connections) head frame after frame:
# their text is written and read once, not per frame.
_FLOW_TEXT: dict[Flow, bytes] = {}
_TEXT_FLOW: dict[bytes, Flow] = {}


def encode_frame(kind: FrameKind, flow: Flow, payload: bytes) -> bytes:
    text = _FLOW_TEXT.get(flow)
    if text is None:
        text = (
            f" {flow.transport} {flow.local[0]} {flow.local[1]} "
            f"{flow.remote[0]} {flow.remote[1]} {flow.connection}\n"
        ).encode()
        remember(_FLOW_TEXT, flow, text, _MEMO_SIZE)
    return b"".join((_KIND_BYTES[kind], text, payload))


_LENGTH = 4


def pack_frames(frames: list[bytes]) -> bytes:
    """Frames in one datagram, each after its length (4 bytes, big-endian)."""
    return b"".join([len(frame).to_bytes(_LENGTH, "big") + frame for frame in frames])


def unpack_frames(data: bytes) -> list[bytes]:
    """Raises:
    FrameError: a length that runs past the end of ``data``."""
    frames = []
    at = 0
    while at < len(data):
        end = at + _LENGTH + int.from_bytes(data[at : at + _LENGTH], "big")
        if end > len(data) or at + _LENGTH > len(data):
            raise FrameError(f"a frame of {len(data)} bytes cut short at {at}")
        frames.append(data[at + _LENGTH : end])
        at = end
    return frames


def decode_frame(data: bytes) -> Frame:
    """Raises:
    FrameError: not a frame :func:`encode_frame` makes."""
    end = data.find(b"\n")
    kind = _KINDS.get(data[:1])
    if end < 2 or kind is None:
        raise FrameError(f"bad frame header {data[:80]!r}")
    text = data[1 : end + 1]
    flow = _TEXT_FLOW.get(text)
    if flow is None:
        flow = remember(_TEXT_FLOW, text, _flow(text), _MEMO_SIZE)
    return kind, flow, data[end + 1 :]


def _flow(text: bytes) -> Flow:
    fields = text[1:-1].split(b" ")
    if len(fields) != 6 or text[:1] != b" ":
        raise FrameError(f"bad frame header {text[:80]!r}")
    transport, local_host, local_port, remote_host, remote_port, connection = fields
    try:
        return Flow(
            transport.decode(),
            (local_host.decode(), int(local_port)),
            (remote_host.decode(), int(remote_port)),
            int(connection),
        )
    except (UnicodeDecodeError, ValueError):
        raise FrameError(f"bad frame header {text[:80]!r}") from None
