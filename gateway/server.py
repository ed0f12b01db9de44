"""Run Wedge from a validated configuration: open the listeners, build the core, serve.

This is wiring, not protocol: everything that decides something lives in the
pure core; here it is only put together and started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import socket
from dataclasses import dataclass

from certs.context import server_context
from gateway.config import Config, Trunk, choose_route
from gateway.config import Listener as ListenerSpec
from gateway.engine import Engine
from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import DEFAULT_PORTS, Listener, RouteStamp, Target, is_ip
from gateway.sip import Request, SipUri, TelUri, parse_uri
from gateway.sip.flow import Address
from gateway.transaction import TimerConfig
from gateway.transport.base import Transport
from gateway.transport.loop import install_uvloop
from gateway.transport.stream import open_stream
from gateway.transport.udp import open_udp
from gateway.transport.ws import open_ws

__all__ = ["PolicyRouter", "Server", "resolve_trunk", "serve_forever", "start"]

logger = logging.getLogger("wedge")

DRAIN_TIMEOUT = 5.0
"""Seconds a stopping Wedge waits for transactions under way to finish."""


class PolicyRouter:
    """The configured routes, as the proxy core's :class:`~gateway.proxy.routing.Router`."""

    def __init__(self, config: Config, targets: dict[str, Target]) -> None:
        self.config = config
        self.targets = targets
        self._trunk_by_address = {target.address: name for name, target in targets.items()}

    def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
        ruri = request.ruri
        if isinstance(ruri, SipUri):
            user, host = ruri.user, ruri.host
        elif isinstance(ruri, TelUri):
            user, host = ruri.number, ""
        else:
            return None
        route = choose_route(
            self.config, listener.name, self._trunk_by_address.get(source), user, host, source[0]
        )
        if route is None:
            return None
        logger.debug("route=%s trunk=%s call-id=%s", route.name, route.to_trunk, request.call_id)
        target = self.targets[route.to_trunk]
        if user is not None and (route.strip_prefix or route.add_prefix or route.e164):
            target = dataclasses.replace(target, user=route.normalise(user))
        return target


async def resolve_trunk(trunk: Trunk) -> Target:
    """Where a trunk's requests go. A host name is looked up once, at start.

    RFC 3263 NAPTR/SRV resolution, several targets and failover come with the
    trunk-health work; a static address or an A/AAAA record serves until then.
    """
    uri = parse_uri(trunk.uri)
    assert isinstance(uri, SipUri)  # the config loader accepts sip: and sips: only
    transport = str(trunk.transport)
    port = uri.port or DEFAULT_PORTS[transport]
    host = uri.host.strip("[]")
    if not is_ip(host):
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        )
        if not infos:
            raise OSError(f"trunk {trunk.name}: {host} has no address")
        host = str(infos[0][4][0])
    return Target(transport, (host, port), trunk.listener, uri, trunk.name)


@dataclass
class Server:
    """A running Wedge: its engine and transports."""

    engine: Engine
    transports: list[Transport]
    listeners: list[Listener]

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
        await asyncio.gather(*(transport.close() for transport in self.transports))
        logger.info("stopped")


async def start(config: Config) -> Server:
    """Open every listener of ``config`` and start serving."""
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
        targets = {trunk.name: await resolve_trunk(trunk) for trunk in config.trunks}
    except BaseException:
        await asyncio.gather(*(transport.close() for transport in transports))
        raise
    stamp = RouteStamp(listeners, FlowTokens(os.urandom(32)), ids=lambda: secrets.token_hex(5))
    timers = TimerConfig(config.wedge.t1, config.wedge.t2, config.wedge.t4)
    core = ProxyCore(
        listeners,
        PolicyRouter(config, targets),
        stamp,
        ProxySettings(timers=timers),
        ids=lambda: secrets.token_hex(6),
    )
    engine.attach(core)
    for listener in listeners:
        logger.info(
            "listening listener=%s transport=%s local=%s:%d advertise=%s:%d",
            listener.name,
            listener.transport,
            *listener.local,
            *listener.advertise,
        )
    for name, target in targets.items():
        logger.info("trunk=%s transport=%s address=%s:%d", name, target.transport, *target.address)
    return Server(engine, transports, listeners)


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
    logger.info("wedge running; Ctrl-C or SIGTERM stops it")
    await stop.wait()
    logger.info("stopping: draining transactions (up to %.0f s)", DRAIN_TIMEOUT)
    await server.stop()
