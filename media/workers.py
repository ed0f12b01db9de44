"""The built-in relay on several cores: worker processes behind one ``MediaControl``.

Python runs one thread of bytecode at a time, so one relay process forwards what
one core can. :class:`RelayWorkers` starts N worker processes
(:mod:`media.worker`), gives each its own slice of the port range, and places each
new call on the worker with the fewest calls; a call stays on its worker for its
life. Orders and replies are JSON lines over the workers' pipes; a reply that does
not come within :data:`REPLY_TIMEOUT` is a 503, so a stuck worker delays a call's
setup by a bounded time, never forever. A worker that dies takes its calls' media
with it, and the death is logged with the worker's exit status; new calls go to
the others, and so does a lost call's next offer (a re-INVITE), which sets its
media up again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from media.control import CallStats, MediaError, Negotiation, TimeoutHandler
from media.worker import decode_sdp, encode_sdp, stats_from_json

__all__ = ["REPLY_TIMEOUT", "RelayWorkers", "split_ports", "start_workers"]

logger = logging.getLogger("wedge.media")

REPLY_TIMEOUT = 2.0
"""Seconds a worker may take to answer one order (it needs microseconds)."""


def split_ports(first: int, last: int, count: int) -> list[tuple[int, int]]:
    """``first..last`` in ``count`` slices of whole even/odd pairs (RTP, RTCP)."""
    pairs = (last - first + 1) // 2
    if pairs < count * 2:
        raise ValueError(f"ports {first}-{last} are too few for {count} relay workers")
    share = pairs // count
    slices = []
    for index in range(count):
        start = first + index * share * 2
        end = start + share * 2 - 1 if index < count - 1 else last
        slices.append((start, end))
    return slices


@dataclass(eq=False)
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    calls: set[str] = field(default_factory=set)
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    alive: bool = True
    reader: asyncio.Task[None] | None = None


class RelayWorkers:
    """N relay worker processes as one :class:`~media.control.MediaControl`."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers
        self._by_call: dict[str, _Worker] = {}
        self._ids = itertools.count(1)
        self._timeout_handler: TimeoutHandler | None = None
        for worker in workers:
            worker.reader = asyncio.get_running_loop().create_task(self._read(worker))

    # -- MediaControl --------------------------------------------------------------

    async def offer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        worker = self._by_call.get(negotiation.call_id)
        if worker is None:
            live = [w for w in self._workers if w.alive]
            if not live:
                raise MediaError("no media relay worker is running", 503)
            worker = min(live, key=lambda w: len(w.calls))
            worker.calls.add(negotiation.call_id)
            self._by_call[negotiation.call_id] = worker
        return await self._negotiate(worker, "offer", negotiation, sdp)

    async def answer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        worker = self._by_call.get(negotiation.call_id)
        if worker is None:
            raise MediaError("answer for a call without media", 500)
        return await self._negotiate(worker, "answer", negotiation, sdp)

    async def delete(self, call_id: str) -> CallStats | None:
        worker = self._by_call.pop(call_id, None)
        if worker is None:
            return None
        worker.calls.discard(call_id)
        reply = await self._order(worker, {"op": "delete", "call": call_id})
        return stats_from_json(reply.get("stats"))

    async def stats(self, call_id: str) -> CallStats | None:
        worker = self._by_call.get(call_id)
        if worker is None:
            return None
        reply = await self._order(worker, {"op": "stats", "call": call_id})
        return stats_from_json(reply.get("stats"))

    def on_timeout(self, handler: TimeoutHandler) -> None:
        self._timeout_handler = handler

    async def close(self) -> None:
        for worker in self._workers:
            worker.alive = False
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 5)
            except TimeoutError:
                worker.process.kill()
            if worker.reader is not None:
                worker.reader.cancel()

    async def ready(self) -> None:
        """Return once every worker answers (its relay is up); MediaError if one fails."""
        for worker in self._workers:
            await self._order(worker, {"op": "stats", "call": ""})

    # -- the pipes ---------------------------------------------------------------------

    async def _negotiate(
        self, worker: _Worker, op: str, negotiation: Negotiation, sdp: bytes
    ) -> bytes:
        reply = await self._order(
            worker,
            {
                "op": op,
                "call": negotiation.call_id,
                "from": negotiation.from_tag,
                "to": negotiation.to_tag,
                "source": negotiation.source.name,
                "destination": negotiation.destination.name,
                "codecs": list(negotiation.codecs),
                "sdp": encode_sdp(sdp),
            },
        )
        return decode_sdp(reply["sdp"])

    async def _order(self, worker: _Worker, order: dict[str, Any]) -> dict[str, Any]:
        stdin = worker.process.stdin
        if not worker.alive or stdin is None:
            raise MediaError(f"media relay worker {worker.index} is not running", 503)
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.waiting[ident] = future
        stdin.write((json.dumps({"id": ident, **order}) + "\n").encode())
        try:
            reply = await asyncio.wait_for(future, REPLY_TIMEOUT)
        except TimeoutError:
            raise MediaError(
                f"media relay worker {worker.index} did not answer in {REPLY_TIMEOUT:g} s", 503
            ) from None
        finally:
            worker.waiting.pop(ident, None)
        if "error" in reply:
            raise MediaError(str(reply["error"]), int(reply.get("status", 500)))
        return reply

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        while line := await stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                logger.warning("! media worker %d wrote %r", worker.index, line[:200])
                continue
            if message.get("event") == "timeout":
                call_id = str(message.get("call"))
                worker.calls.discard(call_id)
                self._by_call.pop(call_id, None)
                if self._timeout_handler is not None:
                    self._timeout_handler(call_id)
                continue
            future = worker.waiting.get(message.get("id"))
            if future is not None and not future.done():
                future.set_result(message)
        if worker.alive:
            worker.alive = False
            code = await worker.process.wait()
            logger.error(
                "! media worker %d exited (status %s); its %d calls lost their media",
                worker.index,
                code,
                len(worker.calls),
            )
        for future in worker.waiting.values():
            if not future.done():
                future.set_result({"error": "media relay worker stopped", "status": 503})
        for call_id in worker.calls:
            self._by_call.pop(call_id, None)
        worker.calls.clear()


async def start_workers(
    count: int,
    *,
    bind: str,
    advertise: str | None,
    ports: tuple[int, int],
    timeout: float,
    hold_timeout: float,
    log_level: str = "WARNING",
) -> RelayWorkers:
    """Start ``count`` relay workers sharing ``ports``; each is ready when it returns."""
    workers = []
    for index, (first, last) in enumerate(split_ports(*ports, count)):
        args = [
            "-m",
            "media.worker",
            "--bind",
            bind,
            "--ports",
            f"{first}-{last}",
            "--timeout",
            str(timeout),
            "--hold-timeout",
            str(hold_timeout),
            "--log-level",
            log_level,
        ]
        if advertise is not None:
            args += ["--advertise", advertise]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        workers.append(_Worker(index, process))
        logger.info("media worker %d pid=%d ports=%d-%d", index, process.pid, first, last)
    relay = RelayWorkers(workers)
    await relay.ready()
    return relay
