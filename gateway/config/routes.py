"""[[route]] tables, which pick the trunk an initial request goes to, and
choose_route, which applies them: the first route that matches wins."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from gateway.config.locator import KeyPath
from gateway.config.schema import Config, Route
from gateway.config.tables import Report, Table, quote, show, suggest
from gateway.config.values import host_key, is_host, network

_ROUTE_KEYS = (
    "name",
    "from_listener",
    "from_trunk",
    "from_source",
    "user_prefix",
    "domain",
    "to_trunk",
    "strip_prefix",
    "add_prefix",
    "e164",
)

# A user-part prefix: RFC 3261 §25.1 user characters (unreserved, escaped,
# user-unreserved), plus '#' as gateway.sip.uri accepts it.
_USER_PREFIX_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/#]|%[0-9A-Fa-f]{2})+")


def read_routes(
    report: Report,
    entries: Sequence[tuple[KeyPath, dict[str, object]]],
    listeners: Sequence[str],
    trunks: Sequence[str],
) -> list[Route]:
    """The valid routes. ``listeners`` and ``trunks``: every name a route may give."""
    routes: list[Route] = []
    for position, (path, entry) in enumerate(entries):
        route = _route(report, path, entry, listeners, trunks)
        if route is None:
            continue
        routes.append(route)
        later = len(entries) - 1 - position
        if later and not (
            route.from_listener
            or route.from_trunk
            or route.user_prefix
            or route.domain
            or route.from_source
        ):
            report.error(
                path,
                f"matches every request, so the {_count(later, 'route')} after it never "
                "match; move it last",
            )
    return routes


def _route(
    report: Report,
    path: KeyPath,
    data: dict[str, object],
    listeners: Sequence[str],
    trunks: Sequence[str],
) -> Route | None:
    table = Table(report, path, data, _ROUTE_KEYS)
    errors = len(report.errors)
    name = table.name()
    references = (
        ("from_listener", "listener", listeners, False),
        ("from_trunk", "trunk", trunks, False),
        ("to_trunk", "trunk", trunks, True),
    )
    found: dict[str, str | None] = {}
    for key, kind, names, required in references:
        value = found[key] = table.name(key, required=required)
        if value is not None and value not in names:
            table.error(key, f"no {kind} named {quote(value)}" + suggest(value, names))
    user_prefix = table.string("user_prefix")
    if user_prefix is not None and _USER_PREFIX_RE.fullmatch(user_prefix) is None:
        table.error(
            "user_prefix", f"expected characters of a SIP user part, got {show(user_prefix)}"
        )
    domain = table.string("domain")
    if domain is not None and not is_host(domain):
        table.error("domain", f"expected a host name or IP address, got {show(domain)}")
    sources = table.strings("from_source", network)
    rewrites = {key: table.string(key) for key in ("strip_prefix", "add_prefix")}
    for key, value in rewrites.items():
        if value is not None and _USER_PREFIX_RE.fullmatch(value) is None:
            table.error(key, f"expected characters of a SIP user part, got {show(value)}")
    e164 = table.raw("e164", False)
    if e164 is not None and not isinstance(e164, bool):
        table.error("e164", f"expected true or false, got {show(e164)}")
    table.finish()

    if len(report.errors) > errors:
        return None
    assert name is not None and found["to_trunk"] is not None
    return Route(
        name=name,
        from_listener=found["from_listener"],
        from_trunk=found["from_trunk"],
        user_prefix=user_prefix,
        domain=None if domain is None else host_key(domain),
        from_source=tuple(ipaddress.ip_network(text) for text in sources),
        to_trunk=found["to_trunk"],
        strip_prefix=rewrites["strip_prefix"],
        add_prefix=rewrites["add_prefix"],
        e164=e164 is True,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def choose_route(
    config: Config,
    listener_name: str,
    source_trunk: str | None,
    ruri_user: str | None,
    ruri_host: str,
    source_ip: str | None = None,
) -> Route | None:
    """The first route, in file order, whose every condition holds; None if none.

    Args:
        listener_name: the listener the request came in on.
        source_trunk: the trunk whose address the request came from, or None.
        ruri_user: the Request-URI's user part as written (escapes kept), or None
            when it has none; a route with ``user_prefix`` never matches None.
        ruri_host: the Request-URI's host as written (IPv6 bracketed or not);
            compared case-insensitively, as an address for IP literals.
        source_ip: the address the request came from, for ``from_source``; a
            route with ``from_source`` never matches None.
    """
    ruri_key: str | None = None
    for route in config.routes:
        if route.from_listener is not None and route.from_listener != listener_name:
            continue
        if route.from_trunk is not None and route.from_trunk != source_trunk:
            continue
        if route.from_source and (
            source_ip is None
            or not any(ipaddress.ip_address(source_ip) in net for net in route.from_source)
        ):
            continue
        if route.user_prefix is not None and (
            ruri_user is None or not ruri_user.startswith(route.user_prefix)
        ):
            continue
        if route.domain is not None:
            if ruri_key is None:
                ruri_key = host_key(ruri_host)
            if route.domain != ruri_key:
                continue
        return route
    return None
