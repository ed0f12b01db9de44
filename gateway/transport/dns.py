"""The DNS shell: asks dnspython what :class:`gateway.proxy.locate.Resolution` needs.

Thin on purpose: every query a resolution hands out is asked at once (they are
independent within a phase), each answer is converted to plain data and fed back
with the time it arrived, and exceptions become :class:`~gateway.proxy.locate.Failure`
values, so :func:`resolve` never raises for anything DNS does.

:class:`TrunkResolver` keeps each trunk's destinations for as long as their TTL
allows, refreshes them before they expire (in the background, or on demand), and
logs what each trunk resolved to. When a refresh fails it keeps serving the last
good answer for a while (RFC 8767's serve-stale): a trunk whose DNS server has a
bad minute should not start answering 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.resolver
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV

from gateway.proxy.locate import (
    SUPPORTED_TRANSPORTS,
    Answer,
    Destination,
    DestinationCache,
    DnsError,
    Failure,
    NaptrRecord,
    Query,
    Record,
    Resolution,
    SrvRecord,
)
from gateway.sip import SipUri

__all__ = [
    "MAX_STALE",
    "MIN_REFRESH",
    "QUERY_TIMEOUT",
    "RETRY_AFTER_FAILURE",
    "TrunkResolver",
    "make_resolver",
    "query",
    "resolve",
    "run",
]

logger = logging.getLogger("wedge.dns")

QUERY_TIMEOUT = 2.0
"""Seconds one query may take, retries included: a call waits on up to three rounds."""

MIN_REFRESH = 5.0
"""Seconds between two lookups of one trunk at least, whatever the TTL (TTL 0 exists)."""

RETRY_AFTER_FAILURE = 10.0
"""Seconds before a trunk that could not be resolved is tried again."""

MAX_STALE = 3600.0
"""Seconds past its expiry a trunk's last good answer is still used while DNS fails."""


def make_resolver(
    nameservers: Sequence[str] | None = None, *, port: int = 53, timeout: float = QUERY_TIMEOUT
) -> dns.asyncresolver.Resolver:
    """A resolver for :func:`resolve`: the system's, or one asking only ``nameservers``.

    Raises:
        dns.resolver.NoResolverConfiguration: no nameservers given and the system
            has none configured.
    """
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = list(nameservers)
        resolver.port = port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _records(rrset: Iterable[dns.rdata.Rdata]) -> tuple[Record, ...]:
    records: list[Record] = []
    for rdata in rrset:
        if isinstance(rdata, NAPTR):
            records.append(
                NaptrRecord(
                    rdata.order,
                    rdata.preference,
                    rdata.flags.decode("ascii", "replace"),
                    rdata.service.decode("ascii", "replace"),
                    rdata.replacement.to_text(omit_final_dot=True),
                )
            )
        elif isinstance(rdata, SRV):
            records.append(
                SrvRecord(
                    rdata.priority,
                    rdata.weight,
                    rdata.port,
                    rdata.target.to_text(omit_final_dot=True),
                )
            )
        elif isinstance(rdata, A | AAAA):
            records.append(str(rdata.address))
    return tuple(records)


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> float | None:
    """RFC 2308 §5: the negative TTL from the SOA of an NXDOMAIN response."""
    responses: dict[object, object] = exc.kwargs.get("responses") or {}
    for response in responses.values():
        if isinstance(response, dns.message.QueryMessage):
            with contextlib.suppress(dns.exception.DNSException):
                return float(response.resolve_chaining().minimum_ttl)
    return None


async def query(
    resolver: dns.asyncresolver.Resolver, question: Query, timeout: float = QUERY_TIMEOUT
) -> Answer | Failure:
    """Ask one question; the answer as plain data, or why there is none. Never raises
    (except CancelledError)."""
    try:
        name = dns.name.from_text(question.name)
        answer = await resolver.resolve(
            name,
            dns.rdatatype.from_text(question.type.value),
            raise_on_no_answer=False,
            lifetime=timeout,
            search=False,
        )
    except dns.resolver.NXDOMAIN as exc:
        return Failure(DnsError.NXDOMAIN, _negative_ttl(exc))
    except dns.exception.Timeout:
        return Failure(DnsError.TIMEOUT)
    except (dns.exception.DNSException, OSError, ValueError):
        # NoNameservers (every server said SERVFAIL or REFUSED), a malformed
        # name or reply, a network error: all mean "no answer from DNS".
        return Failure(DnsError.SERVFAIL)
    ttl = float(answer.chaining_result.minimum_ttl)
    if answer.rrset is None:
        return Answer((), ttl)
    return Answer(_records(answer.rrset), ttl)


async def run(
    resolution: Resolution,
    resolver: dns.asyncresolver.Resolver,
    now: Callable[[], float],
    timeout: float = QUERY_TIMEOUT,
) -> None:
    """Drive ``resolution`` to its end, asking every query it hands out in parallel."""
    pending: dict[asyncio.Task[Answer | Failure], Query] = {}
    try:
        while not resolution.done:
            while (question := resolution.next_query()) is not None:
                pending[asyncio.create_task(query(resolver, question, timeout))] = question
            if not pending:  # cannot happen: a phase always hands out its queries
                break
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                resolution.feed(pending.pop(task), task.result(), now())
    finally:
        for task in pending:
            task.cancel()


@functools.cache
def _system_resolver() -> dns.asyncresolver.Resolver:
    return make_resolver()


async def resolve(
    uri: SipUri,
    *,
    resolver: dns.asyncresolver.Resolver | None = None,
    supported: Iterable[str] = SUPPORTED_TRANSPORTS,
    now: Callable[[], float],
    random: Callable[[], float] = _random.random,
    timeout: float = QUERY_TIMEOUT,
) -> list[Destination]:
    """RFC 3263 §4 for ``uri``: the destinations to try, in order; [] if none (503).

    Args:
        uri: the SIP or SIPS URI to locate.
        resolver: dnspython's async resolver; the system's by default. Use
            :func:`make_resolver` for given nameservers.
        supported: the transports we can send over.
        now: the clock the destinations' ``expires`` are on.
        random: uniform numbers in [0, 1) for SRV weights.
        timeout: seconds per query.
    """
    resolution = Resolution(uri, supported, random=random)
    await run(resolution, resolver or _system_resolver(), now, timeout)
    return resolution.result()


def _describe(destinations: Iterable[Destination]) -> str:
    return ",".join(str(d) for d in destinations) or "none"


def _ttl_text(expires: float, now: float) -> str:
    return "inf" if math.isinf(expires) else str(max(0, round(expires - now)))


class TrunkResolver:
    """Each trunk's destinations, kept as long as DNS allows and refreshed in time.

    Call :meth:`lookup` to get a trunk's destinations (cached or resolved now),
    :meth:`cached` from synchronous code (the router), and :meth:`start` to keep
    every known trunk fresh in the background. Logs each trunk's result at info
    when it is new or changed (debug when a refresh finds the same), and every
    failure at warning.

    Args:
        trunks: trunk name → URI, refreshed by the background task.
        resolver: dnspython's async resolver (see :func:`make_resolver`); the
            system's if None.
        supported: the transports we can send over.
        now: a monotonic clock, the one ``expires`` values are on.
        random: uniform numbers in [0, 1) for SRV weights.
        timeout: seconds per DNS query.
        min_refresh: seconds between two lookups of one trunk at least.
        retry: seconds before a failed trunk is looked up again.
        max_stale: seconds past expiry the last good answer is used while DNS fails.
    """

    def __init__(
        self,
        trunks: Mapping[str, SipUri] | None = None,
        *,
        resolver: dns.asyncresolver.Resolver | None = None,
        supported: Iterable[str] = SUPPORTED_TRANSPORTS,
        now: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        timeout: float = QUERY_TIMEOUT,
        min_refresh: float = MIN_REFRESH,
        retry: float = RETRY_AFTER_FAILURE,
        max_stale: float = MAX_STALE,
    ) -> None:
        self._trunks: dict[str, SipUri] = dict(trunks or {})
        self._resolver = resolver or _system_resolver()
        self._supported = tuple(supported)
        self._now = now
        self._random = random
        self._timeout = timeout
        self._min_refresh = min_refresh
        self._retry = retry
        self._max_stale = max_stale
        self._cache = DestinationCache()
        # Keyed by URI text, so two trunks with one URI share everything.
        self._good: dict[str, tuple[list[Destination], float]] = {}
        """The last non-empty result and when it expired."""
        self._refresh_at: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[list[Destination]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def add(self, trunk: str, uri: SipUri) -> None:
        """Know ``trunk`` (or change its URI); the background task resolves it next."""
        self._trunks[trunk] = uri
        self._wake.set()

    def cached(self, trunk: str) -> list[Destination]:
        """What ``trunk`` resolved to last, without waiting: fresh, else stale but
        within ``max_stale``, else []."""
        uri = self._trunks.get(trunk)
        if uri is None:
            return []
        key = str(uri)
        now = self._now()
        fresh = self._cache.get(key, now)
        if fresh is not None:
            return fresh
        good = self._good.get(key)
        if good is not None and now - good[1] < self._max_stale:
            return list(good[0])
        return []

    async def lookup(self, trunk: str, uri: SipUri | None = None) -> list[Destination]:
        """The trunk's destinations: from the cache while fresh, else resolved now.

        ``uri`` adds the trunk or changes its URI. Concurrent lookups of one URI
        share a single resolution. Never raises.
        """
        if uri is not None and self._trunks.get(trunk) != uri:
            self.add(trunk, uri)
        known = self._trunks.get(trunk)
        if known is None:
            return []
        fresh = self._cache.get(str(known), self._now())
        if fresh is not None:
            return fresh
        return await self._refresh(trunk, known)

    def start(self) -> None:
        """Start refreshing every known trunk shortly before its answer expires."""
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="wedge-dns")

    async def close(self) -> None:
        """Stop the background task and any lookup it has under way."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for shared in list(self._inflight.values()):
            shared.cancel()

    # -- internals ------------------------------------------------------------

    async def _refresh(self, trunk: str, uri: SipUri) -> list[Destination]:
        key = str(uri)
        shared = self._inflight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._resolve(trunk, uri))
            self._inflight[key] = shared
            shared.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one caller giving up does not cancel the others' lookup.
        return list(await asyncio.shield(shared))

    async def _resolve(self, trunk: str, uri: SipUri) -> list[Destination]:
        key = str(uri)
        resolution = Resolution(uri, self._supported, random=self._random)
        try:
            await run(resolution, self._resolver, self._now, self._timeout)
        except Exception:
            # A bug, not DNS (query() turns every DNS problem into a Failure): log
            # it and carry on as for a failed lookup, so the refresh task lives.
            logger.exception("! trunk=%s uri=%s lookup crashed", trunk, uri)
        now = self._now()
        destinations = resolution.result()
        if destinations:
            expires = max(resolution.expires, now + self._min_refresh)
            previous = self._good.get(key)
            changed = previous is None or _describe(previous[0]) != _describe(destinations)
            logger.log(
                logging.INFO if changed else logging.DEBUG,
                "trunk=%s resolved=%s ttl=%s",
                trunk,
                _describe(destinations),
                _ttl_text(resolution.expires, now),
            )
            self._good[key] = (destinations, expires)
        else:
            expires = now + self._retry
            failures = ",".join(f"{q}:{error}" for q, error in resolution.failures) or "none"
            good = self._good.get(key)
            if good is not None and now - good[1] < self._max_stale:
                destinations = list(good[0])
                outcome = f"keeping={_describe(destinations)}"
            else:
                outcome = "requests get 503"
            logger.warning(
                "! trunk=%s uri=%s cannot resolve failures=%s %s", trunk, uri, failures, outcome
            )
        self._cache.put(key, destinations, expires)
        self._refresh_at[key] = self._refresh_time(expires, now)
        self._wake.set()
        return destinations

    def _refresh_time(self, expires: float, now: float) -> float:
        """Shortly before ``expires`` (a tenth of the TTL, at most two query
        timeouts), so the background refresh lands before a caller has to wait."""
        if math.isinf(expires):
            return math.inf
        ahead = min((expires - now) / 10, 2 * self._timeout)
        return max(expires - ahead, now + self._min_refresh)

    async def _refresh_loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._now()
            by_uri = {str(uri): (trunk, uri) for trunk, uri in self._trunks.items()}
            due = [
                pair for key, pair in by_uri.items() if self._refresh_at.get(key, -math.inf) <= now
            ]
            if due:
                await asyncio.gather(*(self._refresh(trunk, uri) for trunk, uri in due))
                continue
            next_at = min(
                (self._refresh_at.get(key, -math.inf) for key in by_uri), default=math.inf
            )
            delay = None if math.isinf(next_at) else max(next_at - now, 0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
