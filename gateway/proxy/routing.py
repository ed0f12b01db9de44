"""Where a request goes next: listeners, targets, our own Route entries, Record-Route.

The pure pieces of the proxy's routing, kept apart from the transaction
bookkeeping in :mod:`gateway.proxy.core`:

- :class:`Listener` and :class:`Target` are what the core knows of sockets and
  of trunks; the engine builds them from the configuration.
- :class:`Router` is the policy the core asks for initial requests.
- :class:`RouteStamp` writes our Via and Record-Route entries and recognises
  them when they come back as Route entries (RFC 3261 §16.4, RFC 5658).
"""

from __future__ import annotations

import functools
import ipaddress
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.memo import remember
from gateway.proxy.flowtoken import MAX_REMEMBERED, FlowTokens
from gateway.sip import Flow, NameAddr, Request, SipUri, Via
from gateway.sip.flow import Address
from gateway.sip.headers import Uri

__all__ = [
    "BRANCH_PREFIX",
    "WORKER_PARAM",
    "Listener",
    "OwnRoute",
    "RouteStamp",
    "Router",
    "Target",
    "is_ip",
    "uri_target",
]

BRANCH_PREFIX = "z9hG4bK-w"
"""Our branches: RFC 3261's magic cookie, then a mark of ours, the loop hash and an id."""
WORKER_PARAM = "wk"
"""The parameter of our Record-Route and Path URIs that names the worker which wrote
them, when there are several (:mod:`gateway.workers.dispatch`)."""

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "ws": 80, "tls": 5061, "wss": 443}


@dataclass(frozen=True, slots=True, eq=False)
class Listener:
    """One socket Wedge listens on, as the proxy core sees it.

    One object per socket, compared by identity: every initial request asks
    whether it leaves by the listener it came in on, and the ``__eq__`` that
    ``dataclasses`` writes runs as interpreted Python even in the compiled build.
    """

    name: str
    """The name the configuration gives it."""
    transport: str
    """``udp``, ``tcp``, ``tls``, ``ws`` or ``wss``."""
    local: Address
    """The bound address; a Flow's ``local`` names its listener."""
    advertise: Address
    """Host (FQDN where configured) and port written into Via and Record-Route."""

    @property
    def via_transport(self) -> str:
        return self.transport.upper()


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request is sent: a transport and address, optionally from a given listener."""

    transport: str
    address: Address
    listener: str | None = None
    """The listener to send from; None lets the core pick one of that transport."""
    uri: SipUri | None = None
    """The trunk's URI: an initial request's Request-URI takes its host and port."""
    name: str = ""
    """The trunk's name, for logs."""
    user: str | None = None
    """The Request-URI user part the route normalised the number to, if it did."""
    alternatives: tuple[tuple[str, Address], ...] = ()
    """The trunk's further (transport, address) targets, in failover order."""
    media_profile: str | None = None
    """The trunk's media profile by name (``avp``, ``savp-sdes``, ``webrtc``); None:
    the one its transport implies."""
    codecs: tuple[str, ...] = ()
    """The trunk's codec allow-list (empty: all)."""
    media_flags: tuple[str, ...] = ()
    """Raw flags for the media relay on the trunk's leg (rtpengine's ng flags)."""


class Router(Protocol):
    """Policy: where an initial request goes (a Target), or None for no route."""

    def route(self, request: Request, listener: Listener, source: Address) -> Target | None: ...


@dataclass(frozen=True, slots=True)
class OwnRoute:
    """One of our Record-Route or Path entries, come back as a Route entry."""

    listener: Listener
    flow: Flow | None
    """The flow its token names, or None for an entry without a valid token."""
    forged: bool = False
    """It has a user part that is not a token of ours: damaged, or made up."""


@functools.lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def uri_target(uri: SipUri) -> tuple[str, Address] | None:
    """The transport and address a SIP URI names when its host is an IP address.

    RFC 3263 §4.1-4.2 without DNS: ``maddr`` wins over the host, ``transport``
    picks the protocol (TLS for sips), and the port defaults per transport.
    A host name needs DNS and gives None here.
    """
    host = uri.maddr or uri.host
    if not is_ip(host):
        return None
    transport = uri.transport or ("tls" if uri.is_secure else "udp")
    if transport not in DEFAULT_PORTS:
        return None
    return transport, (host.strip("[]"), uri.port or DEFAULT_PORTS[transport])


class RouteStamp:
    """Writes and reads the marks Wedge leaves on requests: Via, Record-Route, Route.

    Args:
        listeners: every listener; their advertised addresses are "us".
        tokens: the flow-token codec.
        ids: where branch ids come from (random in production, fixed in tests).
        worker: this process's number among several SIP workers; it goes into each
            branch (after the loop hash) and each Record-Route and Path entry, so
            that responses and the dialog's later requests reach this worker.
    """

    def __init__(
        self,
        listeners: Sequence[Listener],
        tokens: FlowTokens,
        ids: Callable[[], str],
        worker: int | None = None,
    ) -> None:
        self.listeners = tuple(listeners)
        self.tokens = tokens
        self._ids = ids
        self._after_hash = "." if worker is None else f".{worker}."
        self._worker_param = "" if worker is None else f";{WORKER_PARAM}={worker}"
        self._by_local = {(lst.transport, lst.local): lst for lst in self.listeners}
        # (transport, host, port) -> listener, for the addresses we answer to.
        self._by_address = {
            (lst.transport, host.lower().strip("[]"), port): lst
            for lst in self.listeners
            for host, port in (lst.advertise, lst.local)
        }
        self._ours = {
            (host.lower().strip("[]"), port)
            for lst in self.listeners
            for host, port in (lst.advertise, lst.local)
        }
        # Route URI text -> our entry with a good token (see own_route).
        self._own_routes: dict[str, OwnRoute] = {}

    # -- our sockets ---------------------------------------------------------

    def listener_of(self, flow: Flow) -> Listener | None:
        """The listener a flow came in on or goes out from."""
        return self._by_local.get((flow.transport, flow.local))

    def listener_for(self, transport: str, remote: Address, name: str | None) -> Listener | None:
        """The listener to send to ``remote`` over ``transport`` from.

        The named one when it fits, else the first of that transport and of the
        remote address's family.
        """
        v6 = ":" in remote[0]
        fitting = [
            lst
            for lst in self.listeners
            if lst.transport == transport and (":" in lst.local[0]) == v6
        ]
        named = [lst for lst in fitting if lst.name == name]
        chosen = named or fitting
        return chosen[0] if chosen else None

    def is_ours(self, uri: SipUri) -> bool:
        """The URI names one of our listeners (advertised or bound address)."""
        port = uri.port or DEFAULT_PORTS.get(uri.transport or "udp", 5060)
        return (uri.host.lower().strip("[]"), port) in self._ours

    # -- Via -----------------------------------------------------------------

    def loop_hash(self, request: Request) -> str:
        """RFC 3261 §16.6 step 8: a hash of what routing depends on, for loop detection.

        A request that comes back with the same hash in one of our Vias has looped;
        a spiral (changed Request-URI or route) hashes differently (§16.3 step 4).
        From, To and CSeq go in as written, tags and all: no proxy edits them, and
        reading the text spares parsing headers nothing else here needs.
        """
        headers = request.headers
        parts = (
            request.uri,
            request.call_id,
            headers.get("from") or "",
            headers.get("to") or "",
            headers.get("cseq") or "",
            ",".join(headers.get_all("proxy-require")),
        )
        return f"{zlib.crc32(chr(10).join(parts).encode()):08x}"

    def has_looped(self, request: Request, loop_hash: str) -> bool:
        mark = f"{BRANCH_PREFIX}{loop_hash}."
        # Most requests carry no Via of ours: look at the text before parsing any.
        if not any(mark in line for line in request.headers.get_all("via")):
            return False
        return any(
            (via.branch or "").startswith(mark)
            and (via.host.lower().strip("[]"), via.port or 5060) in self._ours
            for via in request.vias
        )

    def via(self, listener: Listener, loop_hash: str) -> Via:
        host, port = listener.advertise
        return Via(listener.via_transport, host, port, (("branch", self.branch(loop_hash)),))

    def branch(self, loop_hash: str) -> str:
        return f"{BRANCH_PREFIX}{loop_hash}{self._after_hash}{self._ids()}"

    # -- Record-Route and Route ----------------------------------------------

    def record_route(self, listener: Listener, flow: Flow, *, double: bool) -> str:
        """Our Record-Route entry for the side of ``listener``, naming ``flow``.

        RFC 5658: when the request leaves by another socket than it came in on,
        each side gets its own entry, marked ``r2=on``, with its own transport.
        """
        host, port = listener.advertise
        transport = "" if listener.transport == "udp" else f";transport={listener.transport}"
        r2 = ";r2=on" if double else ""
        mark = self._worker_param
        return f"<sip:{self.tokens.encode(flow)}@{host}:{port}{transport}{r2};lr{mark}>"

    def path(self, listener: Listener, flow: Flow) -> str:
        """Our Path entry (RFC 3327) for a client on ``flow``, as the registrar sees us.

        ``listener`` is the socket that faces the registrar: requests for the
        client come back to it, with this URI as their Route, and the token
        names the client's flow. ``ob`` tells the registrar the edge keeps the
        flow (RFC 5626 §5.1).
        """
        host, port = listener.advertise
        transport = "" if listener.transport == "udp" else f";transport={listener.transport}"
        mark = self._worker_param
        return f"<sip:{self.tokens.encode(flow)}@{host}:{port}{transport};lr;ob{mark}>"

    def own_route(self, route: NameAddr) -> OwnRoute | None:
        """The Route entry, if it is one of ours; with the flow its token names.

        Every request of a dialog carries the same entries, so ours with a good
        token are remembered (a bounded number), as flow tokens are; any other
        entry is read anew, so made-up ones cannot push good ones out.
        """
        known = self._own_routes.get(route.uri_text)
        if known is not None:
            return known
        mine = self._own_route(route.uri)
        if mine is not None and mine.flow is not None:
            remember(self._own_routes, route.uri_text, mine, MAX_REMEMBERED)
        return mine

    def _own_route(self, uri: Uri) -> OwnRoute | None:
        if not isinstance(uri, SipUri):
            return None
        transport = uri.transport or ("tls" if uri.is_secure else "udp")
        port = uri.port or DEFAULT_PORTS.get(transport, 5060)
        listener = self._by_address.get((transport, uri.host.lower().strip("[]"), port))
        if listener is None:
            return None
        if not uri.user:
            return OwnRoute(listener, None)
        flow = self.tokens.decode(uri.user)
        if flow is None:
            return OwnRoute(listener, None, forged=True)
        return OwnRoute(listener, flow)
