"""One SIP worker's link to the others: where each message is handled, and sends on
connections another worker holds (the rules are in :mod:`gateway.workers.dispatch`).

The link stands between the transports and the engine: the transports hand it what
they receive, and it gives the engine what this worker owns and passes the rest on.
Each worker reads its own inbox, one end of a local datagram socket pair made before
the workers started; the other ends are every worker's way to it. Frames for a
worker wait for the end of the loop's turn and leave together, in one datagram. An
inbox that is full (its worker stalled) loses the datagram, as a full UDP buffer
would: a warning says so, and SIP's retransmissions recover over UDP.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from gateway.engine import Engine
from gateway.sip import Flow
from gateway.workers.dispatch import (
    FrameError,
    FrameKind,
    connection_owner,
    decode_frame,
    encode_frame,
    message_owner,
    pack_frames,
    unpack_frames,
)

__all__ = ["INBOX_BUFFER", "Inboxes", "WorkerLink"]

logger = logging.getLogger("wedge.workers")

INBOX_BUFFER = 4 * 1024 * 1024
"""Bytes of kernel buffer for each inbox: thousands of messages of a stalled worker."""
_BATCH = 256 * 1024
"""Bytes of frames that leave at once, at most (then a datagram leaves early)."""
_MAX_DATAGRAM = _BATCH + 70 * 1024  # a batch, plus the one frame that filled it


@dataclass(frozen=True)
class Inboxes:
    """The workers' inboxes: ``readers[k]`` is read by worker ``k``; ``writers[k]``
    reaches it from any worker."""

    readers: tuple[socket.socket, ...]
    writers: tuple[socket.socket, ...]

    @classmethod
    def make(cls, count: int) -> Inboxes:
        readers, writers = [], []
        for _ in range(count):
            reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            for sock, option in ((reader, socket.SO_RCVBUF), (writer, socket.SO_SNDBUF)):
                sock.setsockopt(socket.SOL_SOCKET, option, INBOX_BUFFER)
                sock.setblocking(False)
            readers.append(reader)
            writers.append(writer)
        return cls(tuple(readers), tuple(writers))

    def keep_only(self, index: int) -> None:
        """In worker ``index``: close the other workers' readers (theirs to read)."""
        for k, reader in enumerate(self.readers):
            if k != index:
                reader.close()

    def close(self) -> None:
        for sock in (*self.readers, *self.writers):
            sock.close()


class WorkerLink:
    """Worker ``index`` of ``count``: the transports' receiver, in front of ``engine``."""

    def __init__(self, index: int, count: int, inboxes: Inboxes, engine: Engine) -> None:
        self.index = index
        self.count = count
        self.engine = engine
        self._inbox = inboxes.readers[index]
        self._writers = inboxes.writers
        self._lost = 0
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._outbox: list[list[bytes]] = [[] for _ in range(count)]
        self._outbox_bytes = [0] * count
        self._flush_due = False

    def start(self) -> None:
        """Read the inbox; the engine sends through :meth:`send` from now on."""
        self._loop.add_reader(self._inbox.fileno(), self._read)
        self._reading = True
        self.engine.link = self

    def close(self) -> None:
        self._flush()
        if self._reading:
            self._loop.remove_reader(self._inbox.fileno())
            self._reading = False

    # -- Receiver (for the transports) --------------------------------------------------

    def message_received(self, data: bytes, flow: Flow) -> None:
        owner = message_owner(data, flow, self.count)
        if owner is None or owner == self.index:
            self.engine.message_received(data, flow)
        else:
            self._post(owner, FrameKind.MESSAGE, flow, data)

    def flow_failed(self, flow: Flow, reason: str) -> None:
        self.engine.flow_failed(flow, reason)
        if flow.connection:  # others may have transactions on this connection
            frame = encode_frame(FrameKind.FAILED, flow, reason.encode("utf-8", "replace"))
            for k in range(self.count):
                if k != self.index:
                    self._queue(k, frame)

    # -- for the engine -----------------------------------------------------------------

    def holds(self, flow: Flow) -> bool:
        """This worker can send on ``flow`` itself (UDP, dials, its own connections)."""
        return not flow.connection or connection_owner(flow.connection, self.count) == self.index

    def send(self, data: bytes, flow: Flow) -> None:
        """Have the worker holding ``flow``'s connection send ``data`` on it."""
        self._post(connection_owner(flow.connection, self.count), FrameKind.SEND, flow, data)

    # -- the inbox ---------------------------------------------------------------------

    def _post(self, worker: int, kind: FrameKind, flow: Flow, data: bytes) -> None:
        self._queue(worker, encode_frame(kind, flow, data))

    def _queue(self, worker: int, frame: bytes) -> None:
        self._outbox[worker].append(frame)
        self._outbox_bytes[worker] += len(frame)
        if self._outbox_bytes[worker] >= _BATCH:
            self._send(worker)
        elif not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        for worker, frames in enumerate(self._outbox):
            if frames:
                self._send(worker)

    def _send(self, worker: int) -> None:
        frames = self._outbox[worker]
        self._outbox[worker] = []
        self._outbox_bytes[worker] = 0
        try:
            self._writers[worker].send(pack_frames(frames))
        except OSError as exc:
            self._lost += len(frames)
            if self._lost & (self._lost - 1) == 0:  # 1st, 2nd, 4th, 8th...: bounded noise
                logger.warning(
                    "! worker=%d unreachable (%s): %d frames lost so far", worker, exc, self._lost
                )

    def _read(self) -> None:
        recv = self._inbox.recv
        for _ in range(64):  # then let the loop serve the sockets too
            try:
                data = recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            try:
                frames = unpack_frames(data)
            except FrameError as exc:
                logger.error("! bad datagram from a worker: %s", exc)
                continue
            for frame in frames:
                try:
                    self._handle(frame)
                except FrameError as exc:
                    logger.error("! bad frame from a worker: %s", exc)
                except Exception:  # one message must never stop the inbox
                    logger.exception("! frame from a worker failed")

    def _handle(self, data: bytes) -> None:
        kind, flow, payload = decode_frame(data)
        if kind is FrameKind.MESSAGE:
            self.engine.message_received(payload, flow)
        elif kind is FrameKind.SEND:
            self.engine.send(payload, flow)
        else:
            self.engine.flow_failed(flow, payload.decode("utf-8", "replace"))
