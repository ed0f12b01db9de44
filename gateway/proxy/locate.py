"""Locating a trunk: RFC 3263 §4 client procedures over DNS answers given as data.

Pure: this module never sends a query. A :class:`Resolution` says which query
it needs next, the shell (:mod:`gateway.transport.dns`) asks DNS and feeds the
answer back, and once it is done the resolution holds an ordered list of
:class:`Destination` values, the first to try first, the others for failover
(RFC 3263 §4.3). An empty list means the URI cannot be resolved: the proxy
answers 503.

Theory of operation: a resolution moves through at most four phases, each a
batch of queries that may be asked in any order and in parallel.

=========  =============================================  ==========================
phase      queries                                        when complete
=========  =============================================  ==========================
NAPTR      NAPTR of the domain                            usable records: SRV phase
                                                          on their replacements; else
                                                          SRV phase on the default
                                                          ``_sip._udp``-style names
SRV        SRV of each name, in order                     targets: ADDRESS phase;
                                                          none: default SRV names
                                                          (after NAPTR) or the
                                                          domain's A/AAAA with the
                                                          default port
ADDRESS    A and AAAA of each SRV target (or the domain)  DONE
DONE       none                                           :meth:`Resolution.result`
=========  =============================================  ==========================

The URI decides where it starts (RFC 3263 §4.1, §4.2): a numeric IP host is done
at once; a host with an explicit port goes straight to ADDRESS; a host with an
explicit ``transport`` goes to SRV for that transport only; anything else starts
at NAPTR.

Errors are answers too: NXDOMAIN, SERVFAIL and timeouts move the procedure on to
the next step exactly like an empty answer, and each answer's TTL (the negative
TTL for a failure) bounds how long the result may be cached, so a lookup that
failed is retried soon. Feeding never raises: records of the wrong type, bad
addresses, ports out of range and unknown queries are ignored.

Deliberate decisions, each explained where it is made:

- All usable NAPTR records are kept, ordered by order then preference, not just
  those of the lowest order (RFC 3403 §4.1); the later ones only ever serve as
  failover behind the preferred ones.
- Only terminal ``S`` NAPTR records are followed; RFC 3263 uses no others.
- NAPTR records whose SRV names hold nothing fall back to the default SRV names,
  then to A/AAAA, as if there had been no NAPTR records.
- WS and WSS are found through NAPTR (``SIP+D2W``/``SIPS+D2W``, RFC 7118 §7) or an
  explicit ``transport``; the SRV fallback covers UDP, TCP and TLS.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.proxy.routing import DEFAULT_PORTS, is_ip
from gateway.sip import SipUri
from gateway.sip.flow import Address

__all__ = [
    "ERROR_TTL",
    "MAX_CACHE_ENTRIES",
    "MAX_RECORDS",
    "MAX_TARGETS",
    "MAX_TTL",
    "SUPPORTED_TRANSPORTS",
    "Answer",
    "Destination",
    "DestinationCache",
    "DnsError",
    "Failure",
    "NaptrRecord",
    "Query",
    "RecordType",
    "Resolution",
    "SrvRecord",
    "order_srv",
]

SUPPORTED_TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")

ERROR_TTL = 30.0
"""Seconds a SERVFAIL or timeout counts for: a server that failed is asked again soon."""

MAX_TTL = 86400.0
"""No answer is trusted for longer than a day, whatever its TTL says."""

MAX_RECORDS = 32
"""Records of one answer looked at; a hostile zone cannot make us walk thousands."""

MAX_TARGETS = 16
"""Distinct host names whose addresses one resolution looks up (two queries each)."""

MAX_CACHE_ENTRIES = 1024
"""URIs a :class:`DestinationCache` holds; the least recently used goes first."""


class RecordType(enum.StrEnum):
    """The record types RFC 3263 asks for; the values are DNS type mnemonics."""

    NAPTR = "NAPTR"
    SRV = "SRV"
    A = "A"
    AAAA = "AAAA"


class DnsError(enum.StrEnum):
    """Why a query has no answer."""

    NXDOMAIN = "nxdomain"
    """The name does not exist."""
    SERVFAIL = "servfail"
    """The server failed or refused; also any other error of the shell's resolver."""
    TIMEOUT = "timeout"
    """No server answered in time."""


@dataclass(frozen=True, slots=True)
class Query:
    """One DNS question: a name (lower case, no final dot) and a record type."""

    name: str
    type: RecordType

    def __str__(self) -> str:
        return f"{self.type} {self.name}"


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """A NAPTR record (RFC 3403 §4.1); the regexp is not used by RFC 3263."""

    order: int
    preference: int
    flags: str
    """``S`` for records that name SRV records, the only ones followed."""
    service: str
    """``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``, ``SIP+D2W`` or ``SIPS+D2W`` here."""
    replacement: str
    """The SRV name to look up."""


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """An SRV record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str
    """Host name; ``.`` means the service is decidedly not available."""


Record = NaptrRecord | SrvRecord | str
"""One record of an answer: a NAPTR, an SRV, or an address (text) for A/AAAA."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A DNS answer: its records (none for NODATA) and their TTL in seconds.

    For NODATA the TTL is the negative TTL (RFC 2308 §5: the SOA's TTL or its
    minimum, whichever is lower).
    """

    records: tuple[Record, ...]
    ttl: float


@dataclass(frozen=True, slots=True)
class Failure:
    """A query that got no answer: NXDOMAIN (with its negative TTL), SERVFAIL or timeout."""

    error: DnsError
    ttl: float | None = None
    """Seconds the failure holds; None for the resolution's ``error_ttl``."""


@dataclass(frozen=True, slots=True)
class Destination:
    """One place to send a request to, in failover order."""

    transport: str
    """``udp``, ``tcp``, ``tls``, ``ws`` or ``wss``."""
    address: Address
    """IP address (no brackets) and port."""
    server_name: str
    """The URI's host (its ``maddr`` if any), for TLS SNI and the certificate check.

    RFC 5922 §4: the identity to check is the SIP domain of the URI, never the
    SRV target or the address DNS led to.
    """
    expires: float
    """When the shortest-lived answer along its NAPTR → SRV → A chain expires;
    ``inf`` for an IP address in the URI."""

    def __str__(self) -> str:
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"{self.transport}:{host}:{port}"


class _Phase(enum.Enum):
    NAPTR = "naptr"
    SRV = "srv"
    ADDRESS = "address"
    DONE = "done"


# RFC 3263 §4.1 and the IANA SIP NAPTR services table (RFC 7118 adds D2W):
# service field → our transport. "SIPS" services are TLS over the transport.
_NAPTR_SERVICES = {
    "sip+d2u": "udp",
    "sip+d2t": "tcp",
    "sips+d2t": "tls",
    "sip+d2w": "ws",
    "sips+d2w": "wss",
}
_SECURE_TRANSPORTS = frozenset({"tls", "wss"})
# RFC 3263 §4.1: "_sips" for SIPS URIs (and for TLS with a SIP URI), "_sip" else.
_SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
# RFC 3263 §4.1: with no NAPTR records, "the client constructs SRV queries for
# those transport protocols it supports"; this is the order we prefer them in.
_SRV_FALLBACK = ("udp", "tcp", "tls")
_ADDRESS_TYPES = frozenset({RecordType.A, RecordType.AAAA})


@dataclass(frozen=True, slots=True)
class _Hop:
    """A host to look up and what to use its addresses with."""

    transport: str
    host: str
    port: int
    expires: float


def _name(text: str) -> str:
    """A DNS name as queries carry it: lower case, no final dot."""
    return text.strip().rstrip(".").lower()


def _unit(value: float) -> float:
    """An injected random value, held to [0, 1] (NaN counts as 0)."""
    return min(max(value, 0.0), 1.0) if value == value else 0.0


def _ttl(value: float | None, default: float) -> float:
    if value is None:
        return default
    if value != value:  # NaN
        return 0.0
    return min(max(value, 0.0), MAX_TTL)


def _address(text: str, rtype: RecordType) -> str | None:
    """The canonical text of an address of the family ``rtype`` asks for, or None."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version != (4 if rtype is RecordType.A else 6):
        return None
    return str(ip)


def order_srv(records: Iterable[SrvRecord], random: Callable[[], float]) -> list[SrvRecord]:
    """RFC 2782's ordering of the records of one SRV answer, every record kept.

    Lowest priority first; within a priority, repeatedly pick one at random with
    probability proportional to its weight: records of weight 0 are placed first
    and summed with the others, a number is chosen in [0, sum], and the first
    record whose running sum reaches it is taken out (RFC 2782, "Usage rules").
    ``random()`` gives the uniform number in [0, 1]; tests pass fixed values.
    """
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SrvRecord] = []
    for priority in sorted(by_priority):
        # Stable sort: zero weights first, the others in the order received.
        group = sorted(by_priority[priority], key=lambda r: r.weight > 0)
        while len(group) > 1:
            total = sum(max(r.weight, 0) for r in group)
            pick = _unit(random()) * total
            running = 0
            chosen = len(group) - 1
            for index, record in enumerate(group):
                running += max(record.weight, 0)
                if running >= pick:
                    chosen = index
                    break
            ordered.append(group.pop(chosen))
        ordered.extend(group)  # the last one, or none: no choice, no random number
    return ordered


def _explicit_transport(uri: SipUri) -> str | None:
    """The transport the URI's ``transport`` parameter asks for, ``""`` if unusable.

    None when there is no parameter. With a sips URI, ``transport=tcp`` means TLS
    over TCP and ``transport=ws`` WSS; SIPS over UDP does not exist (RFC 5630:
    sips asks for TLS on every hop).
    """
    param = uri.transport
    if param is None:
        return None
    secure = uri.is_secure
    mapping = {
        "udp": "" if secure else "udp",
        "tcp": "tls" if secure else "tcp",
        "tls": "tls",
        "ws": "wss" if secure else "ws",
        "wss": "wss",
    }
    return mapping.get(param, "")


class Resolution:
    """RFC 3263 §4 for one SIP URI, as a sans-I/O state machine.

    Drive it with (asking queries one by one works too)::

        while not resolution.done:
            while (query := resolution.next_query()) is not None:
                start_asking(query)
            query, answer = await_next_answer()  # an Answer or a Failure
            resolution.feed(query, answer, now)

    Queries handed out together may be asked in parallel and answered in any
    order; ``next_query()`` returns None while the rest are outstanding.

    Args:
        uri: the trunk's SIP or SIPS URI.
        supported_transports: the transports we can send over; others are
            filtered out of NAPTR and SRV choices, and a URI that names only
            others resolves to nothing.
        random: uniform numbers in [0, 1] for RFC 2782 weighted selection.
        address_types: which address records to ask for, in order of preference
            (A before AAAA by default; ``(RecordType.A,)`` for an IPv4-only node).
        error_ttl: seconds a SERVFAIL or timeout without a TTL counts for.
    """

    def __init__(
        self,
        uri: SipUri,
        supported_transports: Iterable[str] = SUPPORTED_TRANSPORTS,
        *,
        random: Callable[[], float],
        address_types: Sequence[RecordType] = (RecordType.A, RecordType.AAAA),
        error_ttl: float = ERROR_TTL,
    ) -> None:
        self.uri = uri
        self.supported = frozenset(t.lower() for t in supported_transports)
        self._random = random
        self._address_types = tuple(t for t in address_types if t in _ADDRESS_TYPES)
        self._error_ttl = _ttl(error_ttl, ERROR_TTL)
        self._secure = uri.is_secure
        # RFC 3263 §4: "TARGET" is the maddr parameter if present, else the host.
        target = uri.maddr or uri.host
        self._host = _name(target.strip("[]"))
        self.server_name = self._host
        self._answers: dict[Query, Answer | Failure] = {}
        self._expires: dict[Query, float] = {}
        self._phase = _Phase.NAPTR
        self._batch: list[Query] = []
        self._handed = 0
        self._srv_plan: list[tuple[Query, str]] = []
        self._srv_chain = math.inf
        self._srv_from_naptr = False
        self._hops: list[_Hop] = []
        self._result: list[Destination] = []
        self._start()

    # -- the shell's interface ------------------------------------------------

    @property
    def done(self) -> bool:
        """True once :meth:`result` is final; no more queries will be needed."""
        return self._phase is _Phase.DONE

    def next_query(self) -> Query | None:
        """The next query to ask, or None until outstanding answers arrive (or done)."""
        while self._handed < len(self._batch):
            query = self._batch[self._handed]
            self._handed += 1
            if query not in self._answers:
                return query
        return None

    def feed(self, query: Query, answer: Answer | Failure, now: float) -> None:
        """Give the answer (or failure) to a query handed out by :meth:`next_query`.

        Never raises: a query not currently asked, or answered twice, is ignored.
        """
        if self._phase is _Phase.DONE or query in self._answers or query not in self._batch:
            return
        default = self._error_ttl if isinstance(answer, Failure) else 0.0
        ttl = _ttl(answer.ttl, default)
        self._answers[query] = answer
        self._expires[query] = now + ttl
        self._advance()

    def result(self) -> list[Destination]:
        """The destinations in the order to try them; empty before done or if none."""
        return list(self._result)

    @property
    def expires(self) -> float:
        """When the result should be looked up again: the earliest expiry of every
        answer it was built from (``inf`` when no DNS was needed)."""
        return min(self._expires.values(), default=math.inf)

    @property
    def failures(self) -> list[tuple[Query, DnsError]]:
        """Queries that failed, for logs."""
        return [(q, a.error) for q, a in self._answers.items() if isinstance(a, Failure)]

    # -- phases ---------------------------------------------------------------

    def _start(self) -> None:
        uri = self.uri
        explicit = _explicit_transport(uri)
        if explicit is not None and explicit not in self.supported:
            self._finish([])
            return
        # RFC 3263 §4.1: "if no transport protocol is specified, but the TARGET
        # is a numeric IP address, the client SHOULD use UDP for a SIP URI, and
        # TCP for a SIPS URI"; likewise for a host name with an explicit port.
        implied = explicit or ("tls" if self._secure else "udp")
        if is_ip(self._host):
            if implied not in self.supported:
                self._finish([])
                return
            host = str(ipaddress.ip_address(self._host))
            port = uri.port or DEFAULT_PORTS[implied]
            self._finish([Destination(implied, (host, port), self.server_name, math.inf)])
        elif uri.port is not None:
            # RFC 3263 §4.2: "If the TARGET was not a numeric IP address, but a
            # port is present in the URI, the client performs an A or AAAA
            # record lookup of the domain name."
            if implied not in self.supported:
                self._finish([])
                return
            self._resolve_hops([_Hop(implied, self._host, uri.port, math.inf)])
        elif explicit is not None:
            # RFC 3263 §4.2: NAPTR processing was skipped "because a transport was
            # specified explicitly, the client performs an SRV query for that
            # specific transport".
            prefix = _SRV_PREFIXES.get(explicit)
            if prefix is None:
                self._fallback_to_address(math.inf, explicit)
            else:
                self._query_srv([(prefix + self._host, explicit)], math.inf, from_naptr=False)
        else:
            self._enter(_Phase.NAPTR, [Query(self._host, RecordType.NAPTR)])

    def _enter(self, phase: _Phase, batch: list[Query]) -> None:
        self._phase = phase
        self._batch = batch
        self._handed = 0
        self._advance()

    def _advance(self) -> None:
        """Complete the current phase if every query of its batch has an answer."""
        if self._phase is _Phase.DONE or any(q not in self._answers for q in self._batch):
            return
        if self._phase is _Phase.NAPTR:
            self._naptr_done()
        elif self._phase is _Phase.SRV:
            self._srv_done()
        else:
            self._address_done()

    def _records(self, query: Query) -> list[Record]:
        answer = self._answers.get(query)
        if not isinstance(answer, Answer):
            return []
        return list(answer.records[:MAX_RECORDS])

    def _naptr_done(self) -> None:
        (query,) = self._batch
        chain = self._expires[query]
        usable: list[tuple[int, int, str, str]] = []
        for record in self._records(query):
            if not isinstance(record, NaptrRecord) or record.flags.strip().lower() != "s":
                continue
            service = record.service.strip().lower()
            transport = _NAPTR_SERVICES.get(service)
            if transport is None or transport not in self.supported:
                continue
            # RFC 3263 §4.1: resolving a SIPS URI, the client "MUST discard any
            # services that do not contain "SIPS" as the protocol"; a SIP URI
            # may keep them if TLS is supported.
            if self._secure and transport not in _SECURE_TRANSPORTS:
                continue
            replacement = _name(record.replacement)
            if not replacement:
                continue
            usable.append((record.order, record.preference, replacement, transport))
        # RFC 3403 §4.1: lower order first, then lower preference. Stable sort
        # keeps the server's order for ties.
        usable.sort(key=lambda item: (item[0], item[1]))
        plan = list(dict.fromkeys([(name, transport) for _, _, name, transport in usable]))
        if plan:
            self._query_srv(plan, chain, from_naptr=True)
        else:
            # RFC 3263 §4.1: "If no NAPTR records are found, the client constructs
            # SRV queries for those transport protocols it supports".
            self._default_srv(chain)

    def _default_srv(self, chain: float) -> None:
        allowed = ("tls",) if self._secure else _SRV_FALLBACK
        plan = [(_SRV_PREFIXES[t] + self._host, t) for t in allowed if t in self.supported]
        if plan:
            self._query_srv(plan, chain, from_naptr=False)
        else:
            self._fallback_to_address(chain, None)

    def _query_srv(self, plan: list[tuple[str, str]], chain: float, *, from_naptr: bool) -> None:
        self._srv_plan = [(Query(name, RecordType.SRV), t) for name, t in plan]
        self._srv_chain = chain
        self._srv_from_naptr = from_naptr
        self._enter(_Phase.SRV, list(dict.fromkeys([q for q, _ in self._srv_plan])))

    def _srv_done(self) -> None:
        hops: list[_Hop] = []
        found = False
        chain = self._srv_chain
        for query, transport in self._srv_plan:
            expires = self._expires[query]
            chain = min(chain, expires)
            records = [r for r in self._records(query) if isinstance(r, SrvRecord)]
            found = found or bool(records)
            usable = [r for r in records if _name(r.target) and 0 < r.port <= 65535]
            for record in order_srv(usable, self._random):
                hop_expires = min(self._srv_chain, expires)
                hops.append(_Hop(transport, _name(record.target), record.port, hop_expires))
        if hops:
            self._resolve_hops(hops)
        elif found:
            # RFC 2782: a target of "." means "the service is decidedly not
            # available at this domain"; do not guess with A records.
            self._finish([])
        elif self._srv_from_naptr:
            self._default_srv(chain)
        else:
            self._fallback_to_address(chain, None)

    def _fallback_to_address(self, chain: float, transport: str | None) -> None:
        """RFC 3263 §4.2: "If no SRV records were found, the client performs an A
        or AAAA record lookup of the domain name", with the transport's default
        port; §4.1: UDP for a SIP URI, TLS (over TCP) for a SIPS URI."""
        if transport is None:
            preferred = ("tls",) if self._secure else _SRV_FALLBACK
            transport = next((t for t in preferred if t in self.supported), None)
            if transport is None:
                self._finish([])
                return
        self._resolve_hops([_Hop(transport, self._host, DEFAULT_PORTS[transport], chain)])

    def _resolve_hops(self, hops: list[_Hop]) -> None:
        hosts = list(dict.fromkeys([h.host for h in hops if not is_ip(h.host)]))[:MAX_TARGETS]
        allowed = set(hosts)
        self._hops = [h for h in hops if h.host in allowed or is_ip(h.host)]
        batch = [Query(host, rtype) for host in hosts for rtype in self._address_types]
        self._enter(_Phase.ADDRESS, batch)

    def _address_done(self) -> None:
        found: list[tuple[_Hop, str, float]] = []
        for hop in self._hops:
            if is_ip(hop.host):
                found.append((hop, str(ipaddress.ip_address(hop.host)), hop.expires))
                continue
            for rtype in self._address_types:
                query = Query(hop.host, rtype)
                expires = min(hop.expires, self._expires[query])
                for record in self._records(query):
                    ip = _address(record, rtype) if isinstance(record, str) else None
                    if ip is not None:
                        found.append((hop, ip, expires))
        # The same address twice (two SRV records naming one host) is tried once,
        # at its first place.
        destinations: dict[tuple[str, Address], Destination] = {}
        for hop, ip, expires in found:
            key = (hop.transport, (ip, hop.port))
            if key not in destinations:
                destinations[key] = Destination(*key, self.server_name, expires)
        self._finish(list(destinations.values()))

    def _finish(self, destinations: list[Destination]) -> None:
        self._phase = _Phase.DONE
        self._batch = []
        self._handed = 0
        self._result = destinations


class DestinationCache:
    """Resolved destinations by URI text, each until its expiry; bounded, LRU.

    Args:
        max_entries: how many URIs to keep; putting one more drops the least
            recently used.
    """

    def __init__(self, max_entries: int = MAX_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("a DestinationCache needs room for at least one entry")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[tuple[Destination, ...], float]] = OrderedDict()

    def get(self, uri_text: str, now: float) -> list[Destination] | None:
        """The destinations stored for ``uri_text``, or None if absent or expired."""
        entry = self._entries.get(uri_text)
        if entry is None:
            return None
        destinations, expires = entry
        if now >= expires:
            del self._entries[uri_text]
            return None
        self._entries.move_to_end(uri_text)
        return list(destinations)

    def put(self, uri_text: str, destinations: Iterable[Destination], expires: float) -> None:
        """Store ``destinations`` (possibly none: a negative entry) until ``expires``."""
        self._entries[uri_text] = (tuple(destinations), expires)
        self._entries.move_to_end(uri_text)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def expire(self, now: float) -> None:
        """Drop every entry that has expired by ``now``."""
        for key in [k for k, (_, expires) in self._entries.items() if now >= expires]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
