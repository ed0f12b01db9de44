"""Run Wedge from a validated configuration: open the listeners, build the core, serve.

This is wiring, not protocol: everything that decides something lives in the
pure core; here it is only put together and started.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.nameserver

from certs.context import server_context
from gateway.config import Config, MediaRelay
from gateway.config import Listener as ListenerSpec
from gateway.engine import Engine
from gateway.policy import PolicyRouter, TrunkDirectory, health_settings
from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import Listener, RouteStamp
from gateway.proxy.trunks import TrunkHealth
from gateway.transaction import TimerConfig
from gateway.transport.base import Transport
from gateway.transport.dns import TrunkResolver, make_resolver
from gateway.transport.loop import install_uvloop
from gateway.transport.stream import open_stream
from gateway.transport.udp import open_udp
from gateway.transport.ws import open_ws
from media.builtin import RelaySettings
from media.control import MediaControl
from media.endpoint import start_builtin

__all__ = ["Server", "serve_forever", "start"]

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
        self.engine.close()
        if self.media is not None:
            await self.media.close()
        self.stop_media()
        await self.resolver.close()
        await asyncio.gather(*(transport.close() for transport in self.transports))
        logger.info("stopped")


async def start(config: Config) -> Server:
    """Open every listener of ``config`` and start serving."""
    loop = asyncio.get_running_loop()
    engine = Engine()
    transports: list[Transport] = []
    listeners: list[Listener] = []
    try:
        for spec in config.listeners:
            transport = await _open(spec, engine)
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
        for name in directory.resolved_by_dns():
            await resolver.lookup(name)
        resolver.start()
        media, stop_media = await _start_media(config)
    except BaseException:
        await asyncio.gather(*(transport.close() for transport in transports))
        raise
    stamp = RouteStamp(listeners, FlowTokens(os.urandom(32)), ids=lambda: secrets.token_hex(5))
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
        ),
        ids=lambda: secrets.token_hex(6),
        health=health,
        media=media is not None,
    )
    engine.attach(core, media)
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
    return Server(engine, transports, listeners, resolver, media, stop_media)


async def _start_media(config: Config) -> tuple[MediaControl | None, Callable[[], None]]:
    settings = config.media
    if settings.relay is MediaRelay.NONE:
        logger.info("media relay none: SDP and media pass untouched")
        return None, lambda: None
    assert settings.bind is not None
    return await start_builtin(
        bind=settings.bind,
        advertise=settings.advertise,
        ports=settings.ports,
        settings=RelaySettings(settings.timeout, settings.hold_timeout),
    )


def _resolver(config: Config) -> dns.asyncresolver.Resolver | None:
    """The DNS servers the policy names, or None for the system's."""
    servers = config.wedge.dns_servers
    if not servers:
        return None
    resolver = make_resolver([host for host, _ in servers])
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    return resolver


async def _open(spec: ListenerSpec, engine: Engine) -> Transport:
    transport = str(spec.transport)
    tls = None
    if transport in ("tls", "wss"):
        assert spec.cert is not None and spec.key is not None  # the loader requires them
        tls = server_context(str(spec.cert), str(spec.key))
    if transport == "udp":
        return await open_udp(spec.name, spec.bind_host, spec.bind_port, engine)
    if transport in ("tcp", "tls"):
        return await open_stream(
            spec.name,
            transport,
            spec.bind_host,
            spec.bind_port,
            engine,
            ssl_server=tls,
            idle_timeout=spec.idle_timeout,
        )
    return await open_ws(
        spec.name,
        transport,
        spec.bind_host,
        spec.bind_port,
        engine,
        ssl_server=tls,
        origins=spec.origins or None,
        idle_timeout=spec.idle_timeout,
    )


def _tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector from pausing the loop under load.

    Wedge's per-message objects hold no reference cycles, so reference counting
    frees them; the collector only has to scan. Its default (a young-generation
    pass every 700 allocations, full passes over every live transaction) costs
    pauses of tens of milliseconds at a few hundred calls a second, during which
    datagrams pile up. Everything alive at start (modules, configuration) is
    frozen out of its view, and passes are made rarer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve_forever(config: Config) -> int:
    """Serve until SIGINT or SIGTERM, then drain and stop. Returns the exit status."""
    install_uvloop()
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        logger.error("cannot start: %s", exc)
        return 1
    return 0


async def _serve(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await start(config)
    _tune_garbage_collector()
    logger.info("wedge running; Ctrl-C or SIGTERM stops it")
    await stop.wait()
    logger.info("stopping: draining transactions (up to %.0f s)", DRAIN_TIMEOUT)
    await server.stop()
