"""The routing policy of a configuration, as the proxy core asks for it.

:class:`PolicyRouter` answers the core's "where does this initial request go?"
from the configured routes, and :class:`TrunkDirectory` knows where each trunk's
targets are right now: listed in the policy (chosen by priority and weight for
every call, as SRV records are), or resolved from its URI by RFC 3263 and kept
fresh in the background.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable

from gateway.config import Config, Trunk, choose_route
from gateway.memo import remember
from gateway.proxy.locate import SrvRecord, order_srv
from gateway.proxy.routing import DEFAULT_PORTS, Listener, Target, is_ip
from gateway.proxy.trunks import HealthSettings, TargetKey
from gateway.sip import Request, SipUri, TelUri, parse_uri
from gateway.sip.flow import Address
from gateway.transport.dns import TrunkResolver

__all__ = ["PolicyRouter", "TrunkDirectory", "health_settings"]

logger = logging.getLogger("wedge.policy")

_TARGETS_KEPT = 1024
"""Targets each router keeps made: every order of every trunk's targets, bounded."""


def health_settings(trunk: Trunk) -> HealthSettings:
    return HealthSettings(
        interval=trunk.options_interval or 0.0,
        timeout=trunk.options_timeout,
        down_after=trunk.down_after,
        up_after=trunk.up_after,
    )


class TrunkDirectory:
    """Each trunk's targets, in the order to try them for the next request.

    Args:
        trunks: the configured trunks.
        resolver: resolves the URIs of trunks given by host name (RFC 3263).
        random: the uniform source for weighted choices (RFC 2782).
    """

    def __init__(
        self,
        trunks: tuple[Trunk, ...],
        resolver: TrunkResolver,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.trunks = {trunk.name: trunk for trunk in trunks}
        self.resolver = resolver
        self._random = random
        self._uris: dict[str, SipUri] = {}
        for trunk in trunks:
            uri = parse_uri(trunk.uri)
            assert isinstance(uri, SipUri)  # the config loader accepts sip: and sips: only
            self._uris[trunk.name] = uri
            if trunk.name in self.resolved_by_dns():
                resolver.add(trunk.name, uri)

    def uri(self, trunk: str) -> SipUri:
        return self._uris[trunk]

    def resolved_by_dns(self) -> list[str]:
        """The trunks with no listed targets and a host name in their URI."""
        return [
            name
            for name, uri in self._uris.items()
            if not self.trunks[name].targets and not is_ip(uri.host.strip("[]"))
        ]

    def targets(self, trunk: str) -> list[tuple[str, Address]]:
        """(transport, address) pairs for the next request to ``trunk``, best first."""
        spec = self.trunks[trunk]
        transport = str(spec.transport)
        if spec.targets:
            records = [
                SrvRecord(target.priority, target.weight, target.port, target.host)
                for target in spec.targets
            ]
            return [(transport, (r.target, r.port)) for r in order_srv(records, self._random)]
        uri = self._uris[trunk]
        host = uri.host.strip("[]")
        if is_ip(host):
            return [(transport, (host, uri.port or DEFAULT_PORTS[transport]))]
        return [(d.transport, d.address) for d in self.resolver.cached(trunk)]

    def all_targets(self) -> list[TargetKey]:
        """Every target known now, for health watching."""
        return [
            (name, transport, address)
            for name in self.trunks
            for transport, address in self.targets(name)
        ]


class PolicyRouter:
    """The configured routes, as the proxy core's :class:`~gateway.proxy.routing.Router`."""

    def __init__(self, config: Config, directory: TrunkDirectory) -> None:
        self.config = config
        self.directory = directory
        # (trunk, its targets in order) -> the Target: made once, not per call (a
        # forward keeps its Target as long as its transactions linger).
        self._made: dict[tuple[str, tuple[tuple[str, Address], ...]], Target] = {}

    def _source_trunk(self, source: Address) -> str | None:
        for name in self.directory.trunks:
            if any(address[0] == source[0] for _, address in self.directory.targets(name)):
                return name
        return None

    def route(self, request: Request, listener: Listener, source: Address) -> Target | None:
        ruri = request.ruri
        if isinstance(ruri, SipUri):
            user, host = ruri.user, ruri.host
        elif isinstance(ruri, TelUri):
            user, host = ruri.number, ""
        else:
            return None
        route = choose_route(
            self.config, listener.name, self._source_trunk(source), user, host, source[0]
        )
        if route is None:
            return None
        trunk = self.directory.trunks[route.to_trunk]
        targets = self.directory.targets(trunk.name)
        if not targets:
            logger.warning("trunk=%s has no target (DNS gave nothing)", trunk.name)
            return None
        logger.debug("route=%s trunk=%s call-id=%s", route.name, trunk.name, request.call_id)
        ordered = tuple(targets)
        target = self._made.get((trunk.name, ordered))
        if target is None:
            (transport, address), *rest = ordered
            target = Target(
                transport,
                address,
                trunk.listener,
                self.directory.uri(trunk.name),
                trunk.name,
                alternatives=tuple(rest),
                media_profile=trunk.media_profile.value,
                codecs=trunk.codecs,
                media_flags=trunk.rtpengine_flags,
            )
            remember(self._made, (trunk.name, ordered), target, _TARGETS_KEPT)
        if user is not None and (route.strip_prefix or route.add_prefix or route.e164):
            target = dataclasses.replace(target, user=route.normalise(user))
        return target
