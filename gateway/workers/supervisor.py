"""The parent of the SIP workers: starts them, restarts one that dies, stops them all.

``[wedge] workers = N`` (or ``--workers N``) forks N workers; each serves every
listener, UDP ones on the socket the parent bound for all of them
(:func:`gateway.transport.udp.bind_udp`), stream ones on ports it shares with the
others (SO_REUSEPORT), and passes messages it does not own to their owner
(:mod:`gateway.workers.dispatch`). The parent keeps no sockets of its own but those
UDP sockets, which it never reads, and the workers' inboxes, so a restarted worker
finds both where the others left them, and datagrams wait for it meanwhile. It
forwards SIGTERM and SIGINT (drain and stop) and SIGHUP (reload certificates) to
every worker.

A worker that fails to start stops the start of all: the error is in its log lines.
One that dies later is logged with its exit status and started again; its calls
under way are lost (the others' are not). More than :data:`MAX_RESTARTS` deaths
within :data:`RESTART_WINDOW` seconds stop Wedge: something is wrong that
restarting does not cure.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from gateway.workers.link import Inboxes

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW", "WorkerPlace", "run_workers"]

logger = logging.getLogger("wedge.workers")

START_TIMEOUT = 30.0
"""Seconds a worker may take to open its listeners and its media relay."""
STOP_TIMEOUT = 10.0
"""Seconds the workers get to drain after SIGTERM before they are killed."""
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
_POLL = 0.1


@dataclass(frozen=True)
class WorkerPlace:
    """What a worker needs to know about itself and its siblings."""

    index: int
    count: int
    inboxes: Inboxes
    flow_secret: bytes
    """The key of flow tokens (RFC 5626): one for all, so any worker reads any token."""
    ready: int
    """A pipe's write end: one byte on it says the worker is serving."""
    generation: int = 0
    """How many times worker ``index`` was restarted: its connection ids start
    afresh above the last incarnation's, so a flow token naming a connection of the
    dead one never finds a new connection."""

    @property
    def first_connection(self) -> int:
        """The first connection id this worker deals (then every ``count``-th)."""
        return self.index + 1 + self.count * (self.generation << 32)


Serve = Callable[[WorkerPlace], int]
"""Runs one worker until it is told to stop; returns its exit status."""


def run_workers(count: int, serve: Serve) -> int:
    """Run ``count`` workers of ``serve`` until SIGTERM or SIGINT; the exit status."""
    inboxes = Inboxes.make(count)
    secret = os.urandom(32)
    ready_read, ready_write = os.pipe()
    children: dict[int, int] = {}  # pid -> worker index
    generations = [0] * count
    stopping = False
    stop_deadline = 0.0

    def spawn(index: int) -> None:
        place = WorkerPlace(index, count, inboxes, secret, ready_write, generations[index])
        generations[index] += 1
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                os.close(ready_read)
                inboxes.keep_only(index)
                status = serve(place)
            except BaseException:
                logger.exception("! worker=%d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)
        children[pid] = index

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping, stop_deadline
        if signum != signal.SIGHUP and not stopping:
            stopping = True
            stop_deadline = time.monotonic() + STOP_TIMEOUT
        for pid in children:
            os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for index in range(count):
        spawn(index)
    logger.info("started %d workers pids=%s", count, ",".join(map(str, children)))

    status = _await_ready(ready_read, count, children, lambda: stopping)
    if status is not None:
        forward(signal.SIGTERM, None)
    restarts: deque[float] = deque()
    while children:
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stopping and time.monotonic() > stop_deadline:
                logger.warning("workers did not stop in %.0f s: killing them", STOP_TIMEOUT)
                for child in children:
                    os.kill(child, signal.SIGKILL)
                stop_deadline = float("inf")
            time.sleep(_POLL)
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:
            logger.info("worker=%d stopped status=%d", index, code)
            continue
        now = time.monotonic()
        restarts.append(now)
        while restarts and restarts[0] < now - RESTART_WINDOW:
            restarts.popleft()
        if len(restarts) > MAX_RESTARTS:
            logger.error(
                "! worker=%d exited status=%d: %d deaths in %.0f s; stopping Wedge",
                index,
                code,
                len(restarts),
                RESTART_WINDOW,
            )
            status = 1
            forward(signal.SIGTERM, None)
            continue
        logger.warning(
            "! worker=%d exited status=%d: restarting it; its calls under way are lost",
            index,
            code,
        )
        spawn(index)
    os.close(ready_read)
    os.close(ready_write)
    inboxes.close()
    logger.info("stopped")
    return status or 0


def _await_ready(
    ready: int, count: int, children: dict[int, int], stopping: Callable[[], bool]
) -> int | None:
    """None once every worker said it is serving (or a stop was asked for); 1 if one
    died or took too long."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = count
    while waiting and not stopping():
        readable, _, _ = select.select([ready], [], [], _POLL)
        if readable:
            waiting -= len(os.read(ready, waiting))
            continue
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        if pid:
            index = children.pop(pid)
            logger.error(
                "! worker=%d exited status=%d while starting; stopping Wedge",
                index,
                os.waitstatus_to_exitcode(wait_status),
            )
            return 1
        if time.monotonic() > deadline:
            logger.error("! workers not serving after %.0f s; stopping Wedge", START_TIMEOUT)
            return 1
    return None
