"""Run Wedge from a validated configuration: open the listeners, build the core, serve.

This is wiring, not protocol: everything that decides something lives in the
pure core; here it is only put together and started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

import dns.asyncresolver
import dns.nameserver

import gateway.sip.message
from gateway.config import Config, MediaRelay, MediaSettings
from gateway.config import Listener as ListenerSpec
from gateway.engine import Engine
from gateway.logs import configure_logging
from gateway.policy import PolicyRouter, TrunkDirectory, health_settings
from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import Listener, RouteStamp
from gateway.proxy.trunks import TrunkHealth
from gateway.randomids import RandomIds
from gateway.tls import TlsManager, TlsSetupError
from gateway.transaction import TimerConfig
from gateway.transport.base import Receiver, Transport
from gateway.transport.dns import TrunkResolver, make_resolver
from gateway.transport.loop import install_uvloop
from gateway.transport.stream import number_connections, open_stream
from gateway.transport.udp import bind_udp, open_udp
from gateway.transport.ws import ProcessRequest, open_ws
from gateway.workers.link import WorkerLink
from gateway.workers.supervisor import WorkerPlace, run_workers
from media import fastpath
from media.builtin import RelaySettings
from media.control import MediaControl
from media.endpoint import start_builtin
from media.rtpengine import InstanceSpec, start_rtpengine
from media.workers import split_ports, start_workers

__all__ = ["Server", "serve_forever", "start", "tune_garbage_collector"]

logger = logging.getLogger("wedge")

DRAIN_TIMEOUT = 5.0
"""Seconds a stopping Wedge waits for transactions under way to finish."""


@dataclass
class Server:
    """A running Wedge: its engine and transports."""

    engine: Engine
    transports: list[Transport]
    listeners: list[Listener]
    resolver: TrunkResolver
    media: MediaControl | None = None
    stop_media: Callable[[], None] = field(default=lambda: None)
    tls: TlsManager | None = None
    """The certificates in use, reloadable (SIGHUP); None without tls/wss listeners."""
    link: WorkerLink | None = None
    """With SIP workers: this worker's way to the others."""
    _watch: asyncio.Task[None] | None = None

    def reload_tls(self, why: str = "SIGHUP") -> None:
        """Read the certificate files again (SIGHUP): new handshakes use what passes
        its checks; connections already up keep theirs."""
        if self.tls is None:
            logger.info("reload: no tls or wss listener")
            return
        self.tls.reload(why)

    def watch_tls(self, interval: float) -> None:
        """Look at the certificate files every ``interval`` seconds: a change
        reloads them, and certificates close to their end are logged daily."""
        tls = self.tls
        if tls is None or interval <= 0 or self._watch is not None:
            return

        async def watch() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    tls.tick()
                except Exception:  # a watcher must never die of one bad look
                    logger.exception("! tls watch failed")

        self._watch = asyncio.get_running_loop().create_task(watch())

    async def stop(self, drain: float = DRAIN_TIMEOUT) -> None:
        """Let transactions that wait for a final response finish (up to ``drain``
        seconds), then close."""
        core = self.engine.core
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain
        while core is not None and core.layer.unfinished() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if core is not None and core.layer.unfinished():
            logger.warning("stopping with %d transactions unfinished", core.layer.unfinished())
        if self._watch is not None:
            self._watch.cancel()
        self.engine.close()
        if self.link is not None:
            self.link.close()
        if self.media is not None:
            await self.media.close()
        self.stop_media()
        await self.resolver.close()
        await asyncio.gather(*(transport.close() for transport in self.transports))
        logger.info("stopped")


async def start(
    config: Config,
    *,
    http: Mapping[str, ProcessRequest] | None = None,
    place: WorkerPlace | None = None,
    udp: Mapping[str, socket.socket] | None = None,
) -> Server:
    """Open every listener of ``config`` and start serving.

    ``http``: by WS/WSS listener name, a hook answering plain HTTP requests on its
    port (``wedge demo`` serves the web demo this way). ``place``: this process is
    one of several SIP workers sharing the listeners. ``udp``: by UDP listener name,
    the socket the workers share (:func:`~gateway.transport.udp.bind_udp`).
    """
    loop = asyncio.get_running_loop()
    engine = Engine()
    receiver: Receiver = engine
    link: WorkerLink | None = None
    if place is not None:
        link = receiver = WorkerLink(place.index, place.count, place.inboxes, engine)
        number_connections(place.first_connection, place.count)
    transports: list[Transport] = []
    listeners: list[Listener] = []
    tls: TlsManager | None = None
    if any(spec.transport.secure for spec in config.listeners):
        # Every certificate is read and checked before any socket opens: a bad one
        # stops the start with every problem named (TlsSetupError).
        tls = TlsManager(config, now=lambda: datetime.now(UTC))
        tls.load()
    try:
        for spec in config.listeners:
            transport = await _open(
                spec,
                receiver,
                (http or {}).get(spec.name),
                tls,
                reuse_port=place is not None,
                udp=(udp or {}).get(spec.name),
            )
            transports.append(transport)
            engine.add(transport)
            port = (
                spec.advertise_port if spec.advertise_port != spec.bind_port else transport.local[1]
            )
            listeners.append(
                Listener(
                    spec.name, str(spec.transport), transport.local, (spec.advertise_host, port)
                )
            )
        resolver = TrunkResolver(resolver=_resolver(config))
        directory = TrunkDirectory(config.trunks, resolver)
        if tls is not None:
            tls.directory = directory
        for name in directory.resolved_by_dns():
            await resolver.lookup(name)
        resolver.start()
        media, stop_media = await _start_media(config, place)
    except BaseException:
        await asyncio.gather(*(transport.close() for transport in transports))
        raise
    secret = place.flow_secret if place is not None else os.urandom(32)
    stamp = RouteStamp(
        listeners,
        FlowTokens(secret),
        ids=RandomIds(5),
        worker=place.index if place is not None else None,
    )
    timers = TimerConfig(config.wedge.t1, config.wedge.t2, config.wedge.t4)
    health = TrunkHealth({trunk.name: health_settings(trunk) for trunk in config.trunks})
    health.watch(directory.all_targets(), loop.time())
    core = ProxyCore(
        PolicyRouter(config, directory),
        stamp,
        ProxySettings(
            timers=timers,
            answer_timeout=config.wedge.t1,
            nat_keepalive=config.wedge.nat_keepalive,
            server=config.wedge.user_agent.replace("{version}", wedge_version()),
            x_ms_sbc={
                spec.name: spec.x_ms_sbc.replace("{version}", wedge_version())
                for spec in config.listeners
                if spec.x_ms_sbc is not None
            },
            rewrite_contact=frozenset(
                spec.name for spec in config.listeners if spec.rewrite_contact
            ),
            probe_name=tls.probe_name if tls is not None else None,
        ),
        ids=RandomIds(6),
        health=health,
        media=media is not None,
    )
    engine.attach(core, media)
    if link is not None:
        link.start()
    if media is not None:
        media.on_timeout(engine.media_timeout)
    for listener in listeners:
        logger.info(
            "listening listener=%s transport=%s local=%s:%d advertise=%s:%d",
            listener.name,
            listener.transport,
            *listener.local,
            *listener.advertise,
        )
    for name in directory.trunks:
        found = ", ".join(f"{t}:{a[0]}:{a[1]}" for t, a in directory.targets(name)) or "none yet"
        logger.info("trunk=%s targets=%s", name, found)
    engine.poke()
    server = Server(engine, transports, listeners, resolver, media, stop_media, tls, link)
    server.watch_tls(config.wedge.cert_watch)
    return server


async def _start_media(
    config: Config, place: WorkerPlace | None
) -> tuple[MediaControl | None, Callable[[], None]]:
    settings = config.media
    if place is not None:  # each SIP worker relays its own calls, on its own ports
        ports = split_ports(*settings.ports, place.count)[place.index]
        settings = dataclasses.replace(settings, ports=ports)
    if settings.relay is MediaRelay.NONE:
        logger.info("media relay none: SDP and media pass untouched")
        return None, lambda: None
    if settings.relay is MediaRelay.BUILTIN:
        return await _start_builtin(settings)
    fallback: MediaControl | None = None
    stop_fallback: Callable[[], None] = lambda: None  # noqa: E731
    if settings.fallback is MediaRelay.BUILTIN:
        fallback, stop_fallback = await _start_builtin(settings)
    specs = [InstanceSpec(i.host, i.port, i.weight) for i in settings.rtpengine]
    try:
        relay = await start_rtpengine(specs, fallback=fallback)
    except BaseException:
        if fallback is not None:
            await fallback.close()
        stop_fallback()
        raise

    def stop() -> None:
        relay.stop()
        stop_fallback()

    return relay, stop


async def _start_builtin(settings: MediaSettings) -> tuple[MediaControl, Callable[[], None]]:
    """The built-in relay: in this process, or in ``workers`` processes."""
    assert settings.bind is not None
    if settings.workers == 1:
        return await start_builtin(
            bind=settings.bind,
            advertise=settings.advertise,
            ports=settings.ports,
            settings=RelaySettings(settings.timeout, settings.hold_timeout),
        )
    workers = await start_workers(
        settings.workers,
        bind=settings.bind,
        advertise=settings.advertise,
        ports=settings.ports,
        timeout=settings.timeout,
        hold_timeout=settings.hold_timeout,
    )
    return workers, lambda: None  # close() stops the processes


def _resolver(config: Config) -> dns.asyncresolver.Resolver | None:
    """The DNS servers the policy names, or None for the system's."""
    servers = config.wedge.dns_servers
    if not servers:
        return None
    resolver = make_resolver([host for host, _ in servers])
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    return resolver


async def _open(
    spec: ListenerSpec,
    receiver: Receiver,
    http: ProcessRequest | None = None,
    certificates: TlsManager | None = None,
    *,
    reuse_port: bool = False,
    udp: socket.socket | None = None,
) -> Transport:
    transport = str(spec.transport)
    tls = None
    if transport in ("tls", "wss"):
        assert certificates is not None  # start() builds it for every tls/wss listener
        tls = certificates.server_context(spec.name)
    if transport == "udp":
        return await open_udp(spec.name, spec.bind_host, spec.bind_port, receiver, sock=udp)
    if transport in ("tcp", "tls"):
        return await open_stream(
            spec.name,
            transport,
            spec.bind_host,
            spec.bind_port,
            receiver,
            ssl_server=tls,
            idle_timeout=spec.idle_timeout,
            tls=certificates.peers(spec.name) if certificates is not None and tls else None,
            reuse_port=reuse_port,
        )
    return await open_ws(
        spec.name,
        transport,
        spec.bind_host,
        spec.bind_port,
        receiver,
        ssl_server=tls,
        origins=spec.origins or None,
        idle_timeout=spec.idle_timeout,
        process_request=http,
        reuse_port=reuse_port,
    )


def wedge_version() -> str:
    """The installed package's version, for User-Agent, Server and X-MS-SBC."""
    try:
        return version("wedge")
    except PackageNotFoundError:
        return "0"


def core_build() -> str:
    """``compiled`` when the signalling core runs as mypyc's C extensions and the media
    relay has its fast path in C (see setup.py), ``pure`` when both run as the Python
    they are written in; ``compiled-core-only`` or ``compiled-relay-only`` (a build
    without mypyc) when only one is."""
    core = not gateway.sip.message.__file__.endswith(".py")
    if core == fastpath.NATIVE:
        return "compiled" if core else "pure"
    return "compiled-core-only" if core else "compiled-relay-only"


def tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector from pausing the loop under load.

    Wedge's per-message objects hold no reference cycles, so reference counting
    frees them; the collector only has to scan. Its default (a young-generation
    pass every 700 allocations, full passes over every live transaction) costs
    pauses of tens of milliseconds at a few hundred calls a second, during which
    datagrams pile up. Everything alive at start (modules, configuration) is
    frozen out of its view, and passes are made rarer.

    How much rarer bounds the longest pause: nearly everything a pass scans
    survives it (calls in progress, transactions waiting out Timer J or L), and a
    middle-generation pass scans all that the young passes since the last one kept.
    With 50,000 allocations between young passes and 20 young passes to a middle
    one, the middle passes took 430-620 ms at 2,250 calls/s: a 4 MB UDP buffer
    overflowed, and calls failed with the CPU not full. At 20,000 and 2 they take
    under 35 ms, for the same collector time in total (measured with gc.callbacks).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 2, 100)


def serve_forever(config: Config) -> int:
    """Serve until SIGINT or SIGTERM, then drain and stop. Returns the exit status.

    With ``[wedge] workers`` above 1, as that many worker processes, which read
    each UDP listener's one socket, bound here, together."""
    if config.wedge.workers > 1:
        udp: dict[str, socket.socket] = {}
        for spec in config.listeners:
            if str(spec.transport) != "udp":
                continue
            address = (spec.bind_host, spec.bind_port)
            try:
                udp[spec.name] = bind_udp(*address)
            except OSError as exc:
                # The words a worker's own bind failure has (see _run).
                logger.error(
                    "cannot start: could not bind to local_addr %s: %s", address, exc.strerror
                )
                return 1
        return run_workers(config.wedge.workers, lambda place: _serve_worker(config, place, udp))
    return _run(config)


def _serve_worker(config: Config, place: WorkerPlace, udp: Mapping[str, socket.socket]) -> int:
    configure_logging(str(config.wedge.log_level), str(config.wedge.log_format), place.index)
    return _run(config, place, udp)


def _run(
    config: Config,
    place: WorkerPlace | None = None,
    udp: Mapping[str, socket.socket] | None = None,
) -> int:
    install_uvloop()
    try:
        asyncio.run(_serve(config, place, udp))
    except TlsSetupError as exc:
        for problem in exc.problems:
            logger.error("cannot start: %s", problem)
        return 1
    except OSError as exc:
        # uvloop's bind error names the address and keeps the reason in __cause__.
        cause = f": {exc.__cause__.strerror}" if isinstance(exc.__cause__, OSError) else ""
        logger.error("cannot start: %s%s", exc, cause)
        return 1
    return 0


async def _serve(
    config: Config, place: WorkerPlace | None, udp: Mapping[str, socket.socket] | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await start(config, place=place, udp=udp)
    loop.add_signal_handler(signal.SIGHUP, server.reload_tls)
    tune_garbage_collector()
    if place is not None:
        os.write(place.ready, b"r")
    logger.info("wedge running build=%s; Ctrl-C or SIGTERM stops it", core_build())
    await stop.wait()
    logger.info("stopping: draining transactions (up to %.0f s)", DRAIN_TIMEOUT)
    await server.stop()
