"""The engine: the one place where sockets, the clock and the pure proxy core meet.

Every input takes the same three steps (STYLE.md §3.3): call the core with
``now``, hand each ``(bytes, flow)`` it wants sent to the flow's transport, and
move the single timer to the core's next deadline. The core's media jobs are the
one other thing the engine starts: each awaits the relay and reports back to the
core, which is then pumped like after any input.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gateway.proxy.call import MediaJob
from gateway.proxy.core import ProxyCore
from gateway.sip import Flow
from gateway.sip.flow import Address
from gateway.transport.base import Transport
from media.control import MediaControl, MediaError

__all__ = ["Engine", "Link"]

logger = logging.getLogger("wedge.engine")
media_logger = logging.getLogger("wedge.media")


class Link(Protocol):
    """The way to the other SIP workers (:class:`gateway.workers.link.WorkerLink`)."""

    def holds(self, flow: Flow) -> bool:
        """This process can send on ``flow``."""

    def send(self, data: bytes, flow: Flow) -> None:
        """Have the process holding ``flow`` send ``data`` on it."""


class Engine:
    """Drives a :class:`ProxyCore` from the transports and one timer.

    It is the :class:`~gateway.transport.base.Receiver` of every transport.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.core: ProxyCore | None = None
        self.loop = loop or asyncio.get_running_loop()
        self.transports: dict[tuple[str, Address], Transport] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._pumping = False
        self._failed: list[tuple[Flow, str]] = []
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self.media: MediaControl | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self.link: Link | None = None
        """With SIP workers: how to send on a connection another worker holds."""

    def attach(self, core: ProxyCore, media: MediaControl | None = None) -> None:
        """Start feeding ``core``; until then (while listeners open) input is dropped.

        ``media`` runs the core's media jobs; it is needed when the core relays media.
        """
        self.core = core
        self.media = media

    def add(self, transport: Transport) -> None:
        """Serve the flows of ``transport`` (named by its transport and bound address)."""
        self.transports[(transport.transport, transport.local)] = transport

    def poke(self) -> None:
        """Arm the timer for work the core has without any input (trunk probes)."""
        self._pump()

    # -- Receiver ---------------------------------------------------------------

    def message_received(self, data: bytes, flow: Flow) -> None:
        if self.core is None:
            logger.info("message before start dropped flow=%s", flow)
            return
        try:
            self.core.receive(data, flow, self.loop.time())
        except Exception:
            # A bug of ours loses this one message, not the connection it came on
            # (an exception out of data_received closes it) nor the calls on it.
            end = data.find(b"\r\n")
            logger.exception(
                "! message dropped: internal error flow=%s first-line=%r",
                flow,
                data[: end if 0 <= end < 120 else 120],
            )
        self._pump()

    def media_timeout(self, call_id: str) -> None:
        """The relay ended a call's media for silence: the core ends the call."""
        if self.core is not None:
            self.core.media_timeout(call_id, self.loop.time())
            self._pump()

    def flow_failed(self, flow: Flow, reason: str) -> None:
        logger.info("flow failed flow=%s reason=%r", flow, reason)
        if self.core is None:
            return
        if self._pumping:
            # A transport may report a failure from inside send(): finish the
            # current flush first, so the core sees one input at a time.
            self._failed.append((flow, reason))
            return
        self.core.flow_failed(flow, self.loop.time())
        self._pump()

    # -- the pump ---------------------------------------------------------------

    def _pump(self) -> None:
        core = self.core
        assert core is not None
        self._pumping = True
        try:
            while True:
                for data, flow in core.datagrams_to_send():
                    self.send(data, flow)
                if not self._failed:
                    break
                flow, _ = self._failed.pop(0)
                core.flow_failed(flow, self.loop.time())
        finally:
            self._pumping = False
        for job in core.media_jobs():
            task = self.loop.create_task(self._run(job))
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)
        self._rearm()

    def send(self, data: bytes, flow: Flow) -> None:
        """Send ``data`` on ``flow``, through the worker holding it if not this one."""
        link = self.link
        if link is not None and not link.holds(flow):
            link.send(data, flow)
            return
        transport = self.transports.get((flow.transport, flow.local))
        if transport is None:
            logger.error("! no transport for flow=%s; message dropped", flow)
            return
        if self._debug:
            first = data[: data.find(b"\r\n")].decode("utf-8", "replace")
            logger.debug("> %s flow=%s", first, flow)
        transport.send(data, flow)

    async def _run(self, job: MediaJob) -> None:
        """One media job: await the relay, then give the core its result."""
        media = self.media
        result: bytes | MediaError | None = None
        try:
            if media is None:
                raise MediaError("no media relay configured", 500)
            negotiation = job.negotiation
            if job.kind == "delete":
                stats = await media.delete(job.call_id)
                if stats is not None:
                    media_logger.info("media ended call-id=%s %s", job.call_id, stats.summary())
            elif negotiation is None:
                raise MediaError(f"{job.kind} without a negotiation", 500)
            elif job.kind == "offer":
                result = await media.offer(negotiation, job.sdp)
            else:
                result = await media.answer(negotiation, job.sdp)
        except MediaError as exc:
            result = exc
        except Exception:
            media_logger.exception("! media %s failed call-id=%s", job.kind, job.call_id)
            result = MediaError("media relay failure", 500)
        core = self.core
        if core is not None:
            core.media_done(job.ticket, result, self.loop.time())
            self._pump()

    def _rearm(self) -> None:
        assert self.core is not None
        deadline = self.core.get_timer()
        armed = self._deadline
        # Most messages move the core's next deadline later (a new transaction's
        # timers) or leave it: a timer already set for sooner stays, and when it
        # fires for nothing the pump sets the next one. Only a sooner deadline
        # costs a new loop timer.
        if deadline is None or (armed is not None and armed <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._deadline = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline, self._deadline = self._deadline, None
        now = self.loop.time()
        assert self.core is not None
        try:
            self.core.handle_timer(max(deadline or now, now))
        except Exception:
            # The pump below re-arms the timer: one bad deadline must not stop them all.
            logger.exception("! timer work failed: internal error")
        self._pump()

    def close(self) -> None:
        for task in self._jobs:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
