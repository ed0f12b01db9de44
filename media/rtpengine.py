"""rtpengine as the relay: an ng client over UDP for a set of instances, as a
:class:`~media.control.MediaControl`.

The pure half is :mod:`media.ng` (bencode, cookies, requests, replies); this is the
shell that owns the sockets and the clock.

- **Requests.** Each request gets a cookie of its own (a random prefix per process,
  so a restarted Wedge never hits rtpengine's reply cache with an old cookie, and a
  counter). It is sent again, with the same cookie, after 0.2 s, 0.4 s, 0.8 s ...
  until :attr:`Settings.request_timeout`; rtpengine answers a retransmission from
  its cache, so a command never runs twice. A reply whose cookie is not waited for
  (a late answer to a request given up on) is ignored; one that is not ng, or too
  large, is logged and fails the request whose cookie it carries.
- **Instances** (like a Kamailio rtpengine set): each has a weight, and a health
  state kept by a ping every :attr:`Settings.ping_interval`. A new call goes to a
  live instance chosen by weight; if it does not answer, or answers that it is out
  of resources (ports, load limit), the next live one is tried, all within
  :attr:`Settings.new_call_timeout`. After that the call goes to the fallback relay
  (the built-in one) if policy has one, else the offer fails with 503, which the
  proxy answers with Retry-After.
- **Calls stay put.** The instance that took a call's first offer gets every later
  offer, answer, query and delete of it (re-INVITEs, forks' answers), whatever the
  health state says: rtpengine keeps a call's state in the instance's memory. If
  that instance stops answering, the call's next request fails with 503.
- **Media timeouts.** rtpengine ends a call whose media stopped (its ``--timeout``);
  every :attr:`Settings.sweep_interval` each call is queried, and a call rtpengine
  no longer knows is reported to the :meth:`~RtpengineRelay.on_timeout` handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from media import ng
from media.control import CallStats, MediaControl, MediaError, Negotiation, TimeoutHandler

__all__ = [
    "Instance",
    "InstanceSpec",
    "RtpengineRelay",
    "RtpengineUnavailable",
    "Settings",
    "choose",
    "start_rtpengine",
]

logger = logging.getLogger("wedge.media")

FIRST_RETRANSMIT = 0.2
"""Seconds before a request is first sent again; the wait doubles after each send."""
LAST_RETRANSMIT = 0.8
"""The longest wait between two sends of a request."""


class RtpengineUnavailable(ConnectionError):
    """No rtpengine instance answered at start, and policy allows no fallback."""


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """Where one rtpengine listens for ng over UDP (``--listen-ng``), and its share of
    new calls."""

    host: str
    port: int
    weight: int = 1

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Timeouts of the rtpengine client, in seconds."""

    request_timeout: float = 1.5
    """How long one request to one instance is sent again before it counts as silent."""
    new_call_timeout: float = 3.0
    """How long a new call's offer may try instances before fallback or 503."""
    ping_interval: float = 2.0
    """Between two health pings of an instance."""
    ping_timeout: float = 1.0
    """How long a health ping (and the first one, at start) waits for its pong."""
    sweep_interval: float = 10.0
    """Between two queries of a call, to learn that rtpengine ended it (0: never)."""
    max_reply: int = ng.MAX_MESSAGE
    """Replies larger than this are refused (logged, and the request fails)."""


class _Silent(Exception):
    """The instance did not answer in time (or cannot be reached at all)."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.instance.received(data)

    def error_received(self, exc: Exception) -> None:
        self.instance.unreachable(exc)


class Instance:
    """One rtpengine: its UDP socket, the requests waiting for a reply, its health."""

    def __init__(self, spec: InstanceSpec, cookies: Callable[[], str], settings: Settings) -> None:
        self.spec = spec
        self.weight = spec.weight
        self.up = False
        self.settings = settings
        self._cookies = cookies
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[str, asyncio.Future[ng.Reply]] = {}

    def __str__(self) -> str:
        return str(self.spec)

    async def open(self) -> None:
        """Make the socket (resolving a host name once); failures leave it closed."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), remote_addr=(self.spec.host, self.spec.port)
            )
        except OSError as exc:
            logger.warning("! rtpengine %s: cannot open a socket to it: %s", self, exc)
            return
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_Silent("closed"))
        self._pending.clear()

    async def request(self, message: ng.Message, timeout: float) -> ng.Reply:
        """Send ``message`` until its reply comes or ``timeout`` passes.

        Raises:
            _Silent: no reply in time, or the instance cannot be reached.
            MediaError: 500 for a reply that is not ng or too large.
        """
        transport = self._transport
        if transport is None:
            raise _Silent("no socket")
        loop = asyncio.get_running_loop()
        cookie = self._cookies()
        data = ng.frame(cookie, message)
        future: asyncio.Future[ng.Reply] = loop.create_future()
        self._pending[cookie] = future
        deadline = loop.time() + timeout
        wait = FIRST_RETRANSMIT
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise _Silent(f"no reply in {timeout:g} s")
                try:
                    transport.sendto(data)
                except OSError as exc:  # an ICMP error reported on this send
                    raise _Silent(str(exc)) from None
                await asyncio.wait((future,), timeout=min(wait, remaining))
                if future.done():
                    return future.result()
                wait = min(wait * 2, LAST_RETRANSMIT)
        finally:
            self._pending.pop(cookie, None)
            if not future.done():
                future.cancel()

    def received(self, data: bytes) -> None:
        cookie: str | None = None
        try:
            cookie, body = ng.unframe(data, self.settings.max_reply)
            reply = ng.parse_reply(body)
        except ng.NgError as exc:
            logger.warning(
                "! rtpengine %s: bad reply of %d bytes dropped: %s", self, len(data), exc.reason
            )
            cookie = cookie or exc.cookie
            future = self._pending.get(cookie) if cookie else None
            if future is not None and not future.done():
                future.set_exception(MediaError(f"rtpengine {self}: {exc.reason}", 500))
            return
        future = self._pending.get(cookie)
        if future is None or future.done():
            logger.debug("rtpengine %s: reply with unknown cookie %s ignored", self, cookie)
            return
        future.set_result(reply)

    def unreachable(self, exc: Exception) -> None:
        """An ICMP error (port unreachable): nobody listens there now."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_Silent(str(exc)))

    async def ping(self) -> bool:
        """One health ping; updates and returns :attr:`up`."""
        try:
            reply = await self.request(ng.ping(), self.settings.ping_timeout)
            ng.check(reply, "ping")
        except (_Silent, MediaError) as exc:
            self.mark_down(str(exc))
            return False
        if not self.up:
            logger.info("rtpengine %s up", self)
        self.up = True
        return True

    def mark_down(self, why: str) -> None:
        if self.up:
            logger.warning("! rtpengine %s down: %s", self, why)
        self.up = False


def choose(instances: Sequence[Instance], draw: float) -> Instance | None:
    """A live instance, each with a chance proportional to its weight; ``draw`` is a
    number in [0, 1). None when no instance is up."""
    live = [instance for instance in instances if instance.up and instance.weight > 0]
    total = sum(instance.weight for instance in live)
    if not live:
        return None
    point = draw * total
    for instance in live:
        point -= instance.weight
        if point < 0:
            return instance
    return live[-1]


@dataclass(slots=True, eq=False)
class _Call:
    instance: Instance | None
    """Where the call's media is; None: the fallback relay."""
    caller: str
    """The from-tag of its first offer: what delete and query name it by."""
    checked: float = 0.0
    """When rtpengine last said it still has the call."""
    busy: int = 0
    """Requests under way for it (the sweep leaves a busy call alone)."""
    bundled: dict[str, bool] = field(default_factory=dict)
    """Party -> whether its last offer had a BUNDLE group (see :func:`ng.restore_bundle`)."""


@dataclass(slots=True, eq=False)
class _Tasks:
    health: asyncio.Task[None] | None = None
    sweep: asyncio.Task[None] | None = None


class RtpengineRelay:
    """Calls' media on a set of rtpengine instances (a :class:`MediaControl`).

    Args:
        instances: the instances, opened (see :func:`start_rtpengine`).
        fallback: the relay new calls go to when no instance answers; None: 503.
        draw: a number in [0, 1) for each weighted choice.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        settings: Settings | None = None,
        fallback: MediaControl | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.instances = list(instances)
        self.settings = settings or Settings()
        self.fallback = fallback
        self._draw = draw
        self.calls: dict[str, _Call] = {}
        self._timeout_handler: TimeoutHandler | None = None
        self._tasks = _Tasks()
        if fallback is not None:
            fallback.on_timeout(self._fallback_timeout)

    # -- MediaControl ------------------------------------------------------------------

    async def offer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        call = self.calls.get(negotiation.call_id)
        if call is None:
            return await self._new_call(negotiation, sdp)
        if call.instance is None:
            assert self.fallback is not None
            return await self.fallback.offer(negotiation, sdp)
        message = ng.offer(negotiation, sdp, extra_flags=negotiation.flags)
        reply = await self._on(call, message, "offer")
        call.bundled[negotiation.from_tag] = ng.has_bundle(sdp)
        return ng.restore_bundle(ng.sdp_of(reply, "offer"), negotiation.destination)

    async def answer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        call = self.calls.get(negotiation.call_id)
        if call is None:
            raise MediaError("answer for a call without media", 500)
        if call.instance is None:
            assert self.fallback is not None
            return await self.fallback.answer(negotiation, sdp)
        message = ng.answer(negotiation, sdp, extra_flags=negotiation.flags)
        reply = await self._on(call, message, "answer")
        offered = call.bundled.get(negotiation.to_tag or "", False)
        return ng.restore_bundle(
            ng.sdp_of(reply, "answer"), negotiation.destination, offered=offered
        )

    async def delete(self, call_id: str) -> CallStats | None:
        call = self.calls.pop(call_id, None)
        if call is None:
            return None
        if call.instance is None:
            assert self.fallback is not None
            return await self.fallback.delete(call_id)
        try:
            reply = await self._on(call, ng.delete(call_id, call.caller), "delete")
            ng.check(reply, "delete")
        except MediaError as exc:
            logger.warning("! rtpengine delete call-id=%s: %s", call_id, exc.reason)
            return None
        if reply.warning:
            logger.info("rtpengine delete call-id=%s: %s", call_id, reply.warning)
        return ng.call_stats(call_id, reply, call.caller)

    async def stats(self, call_id: str) -> CallStats | None:
        call = self.calls.get(call_id)
        if call is None:
            return None
        if call.instance is None:
            assert self.fallback is not None
            return await self.fallback.stats(call_id)
        try:
            reply = ng.check(await self._on(call, ng.query(call_id), "query"), "query")
        except MediaError:
            return None
        return ng.call_stats(call_id, reply, call.caller)

    def on_timeout(self, handler: TimeoutHandler) -> None:
        self._timeout_handler = handler

    async def close(self) -> None:
        """Stop the health pings and the sweep, delete every call (briefly), close."""
        for task in (self._tasks.health, self._tasks.sweep):
            if task is not None:
                task.cancel()
        calls = list(self.calls)
        if calls:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.request_timeout):
                    await asyncio.gather(*(self.delete(c) for c in calls), return_exceptions=True)
        if self.fallback is not None:
            await self.fallback.close()
        self.stop()

    def stop(self) -> None:
        """Close the sockets (what :meth:`close` ends with; safe to call again)."""
        for task in (self._tasks.health, self._tasks.sweep):
            if task is not None:
                task.cancel()
        for instance in self.instances:
            instance.close()

    # -- internals ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the health pings and the sweep (in the running loop)."""
        loop = asyncio.get_running_loop()
        self._tasks.health = loop.create_task(self._health())
        if self.settings.sweep_interval > 0:
            self._tasks.sweep = loop.create_task(self._sweep())

    async def _new_call(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        message = ng.offer(negotiation, sdp, extra_flags=negotiation.flags)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.new_call_timeout
        tried: list[Instance] = []
        why = "no rtpengine instance is up"
        while True:
            remaining = deadline - loop.time()
            candidates = [i for i in self.instances if i not in tried]
            instance = choose(candidates, self._draw())
            if instance is None or remaining <= 0:
                break
            tried.append(instance)
            try:
                reply = await instance.request(
                    message, min(self.settings.request_timeout, remaining)
                )
                sdp_out = ng.sdp_of(reply, "offer")
            except _Silent as exc:
                instance.mark_down(str(exc))
                why = f"rtpengine {instance} did not answer ({exc})"
                continue
            except MediaError as exc:
                if exc.status != 503:
                    logger.warning(
                        "! rtpengine %s refused the offer call-id=%s: %s",
                        instance,
                        negotiation.call_id,
                        exc.reason,
                    )
                    raise
                why = exc.reason
                continue
            call = _Call(instance, negotiation.from_tag, loop.time())
            call.bundled[negotiation.from_tag] = ng.has_bundle(sdp)
            self.calls[negotiation.call_id] = call
            return ng.restore_bundle(sdp_out, negotiation.destination)
        if self.fallback is not None:
            logger.warning("! media call-id=%s on the built-in relay: %s", negotiation.call_id, why)
            sdp_out = await self.fallback.offer(negotiation, sdp)
            self.calls[negotiation.call_id] = _Call(None, negotiation.from_tag, loop.time())
            return sdp_out
        raise MediaError(why, 503)

    async def _on(self, call: _Call, message: ng.Message, command: str) -> ng.Reply:
        """``message`` for a call, on the call's own instance.

        Raises:
            MediaError: 503 when the instance does not answer; 500 for a bad reply.
        """
        instance = call.instance
        assert instance is not None
        call.busy += 1
        try:
            return await instance.request(message, self.settings.request_timeout)
        except _Silent as exc:
            instance.mark_down(str(exc))
            raise MediaError(
                f"rtpengine {instance} did not answer {command} ({exc})", 503
            ) from None
        finally:
            call.busy -= 1

    async def _health(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval)
            try:
                await asyncio.gather(*(self._ping(instance) for instance in self.instances))
            except Exception:  # a bug must not end the pings for good
                logger.exception("! rtpengine health pings failed")

    async def _ping(self, instance: Instance) -> None:
        await instance.open()
        await instance.ping()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.sweep_interval
        while True:
            await asyncio.sleep(interval / 4)
            now = loop.time()
            due = [
                (call_id, call)
                for call_id, call in self.calls.items()
                if call.instance is not None
                and call.instance.up  # a silent instance would stall the sweep
                and not call.busy
                and now - call.checked > interval
            ]
            for call_id, call in due:
                try:
                    await self._check(call_id, call)
                except Exception:  # a bug must not end the sweep for good
                    logger.exception("! rtpengine query failed call-id=%s", call_id)

    async def _check(self, call_id: str, call: _Call) -> None:
        assert call.instance is not None
        try:
            reply = await call.instance.request(ng.query(call_id), self.settings.request_timeout)
        except (_Silent, MediaError):
            return  # the instance's health is the pings' business
        call.checked = asyncio.get_running_loop().time()
        reason = (reply.error_reason or "").lower()
        if reply.result != "error" or "unknown call" not in reason:
            return
        if self.calls.get(call_id) is not call or call.busy:
            return  # deleted, or busy again, while we asked
        del self.calls[call_id]
        logger.warning("! media timeout call-id=%s: rtpengine %s ended it", call_id, call.instance)
        if self._timeout_handler is not None:
            self._timeout_handler(call_id)

    def _fallback_timeout(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.instance is None:
            del self.calls[call_id]
            if self._timeout_handler is not None:
                self._timeout_handler(call_id)


async def start_rtpengine(
    specs: Sequence[InstanceSpec],
    *,
    settings: Settings | None = None,
    fallback: MediaControl | None = None,
    draw: Callable[[], float] = random.random,
) -> RtpengineRelay:
    """Open a socket to each instance, ping them all, and start the health pings.

    Raises:
        RtpengineUnavailable: no instance answered and there is no ``fallback``.
    """
    settings = settings or Settings()
    prefix = secrets.token_hex(4)
    counter = itertools.count(1)
    instances = [Instance(spec, lambda: f"{prefix}_{next(counter)}", settings) for spec in specs]
    relay = RtpengineRelay(instances, settings, fallback, draw)
    await asyncio.gather(*(relay._ping(instance) for instance in instances))
    live = [str(instance) for instance in instances if instance.up]
    if not live and fallback is None:
        relay.stop()
        names = ", ".join(str(spec) for spec in specs)
        raise RtpengineUnavailable(
            f"no rtpengine instance answered a ping within {settings.ping_timeout:g} s "
            f'({names}); start rtpengine, or set [media] fallback = "builtin"'
        )
    if not live:
        logger.warning(
            "! no rtpengine instance answered (%s): calls use the built-in relay until one does",
            ", ".join(str(spec) for spec in specs),
        )
    relay.start()
    logger.info(
        "media relay rtpengine instances=%s up=%s fallback=%s",
        ",".join(f"{spec}*{spec.weight}" for spec in specs),
        ",".join(live) or "none",
        "builtin" if fallback is not None else "none",
    )
    return relay
