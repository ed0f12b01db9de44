"""The DNS shell against a tiny authoritative server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from gateway.proxy.locate import Answer, Destination, DnsError, Failure, Query, RecordType
from gateway.sip import SipUri, parse_uri
from gateway.transport.dns import TrunkResolver, make_resolver, query, resolve
from tests.helpers.dns import AuthoritativeServer

from .conftest import MS, TIMEOUT

NOW = 1000.0
ZONE = "example.test."
SOA = "ns.example.test. hostmaster.example.test. 1 3600 600 86400 60"
"""The zone's SOA; its minimum, 60, is the negative TTL (RFC 2308 §5)."""

RECORDS = [
    # owner (under ZONE), TTL, type, data
    ("trunk", 600, "NAPTR", '10 50 "s" "SIPS+D2T" "" _sips._tcp.trunk.example.test.'),
    ("trunk", 600, "NAPTR", '20 50 "s" "SIP+D2U" "" _sip._udp.trunk.example.test.'),
    ("trunk", 600, "NAPTR", '30 50 "s" "SIP+D2T" "" _sip._tcp.trunk.example.test.'),
    ("_sips._tcp.trunk", 300, "SRV", "0 0 5061 a.trunk.example.test."),
    # One record per priority: the order an RRset comes in is the server's choice,
    # so weighted choices are left to the unit tests.
    ("_sip._udp.trunk", 300, "SRV", "10 60 5060 a.trunk.example.test."),
    ("_sip._udp.trunk", 300, "SRV", "15 20 5062 b.trunk.example.test."),
    ("_sip._udp.trunk", 300, "SRV", "20 0 5064 c.trunk.example.test."),
    ("a.trunk", 120, "A", "192.0.2.1"),
    ("b.trunk", 120, "A", "192.0.2.2"),
    ("c.trunk", 120, "A", "192.0.2.3"),
    ("c.trunk", 120, "AAAA", "2001:db8::3"),
    ("trunk", 120, "A", "192.0.2.9"),
    ("plain", 90, "A", "192.0.2.20"),
]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def brief(destinations: list[Destination]) -> list[str]:
    return [str(d) for d in destinations]


@pytest.fixture
async def server() -> AsyncIterator[AuthoritativeServer]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: AuthoritativeServer(ZONE, SOA, RECORDS), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol
    finally:
        transport.close()


def resolver_for(
    server: AuthoritativeServer, timeout: float = 1000 * MS
) -> dns.asyncresolver.Resolver:
    return make_resolver(["127.0.0.1"], port=server.port, timeout=timeout)


# -- resolve() ----------------------------------------------------------------------


async def test_naptr_srv_a_chain_in_order(server: AuthoritativeServer) -> None:
    async with asyncio.timeout(TIMEOUT):
        destinations = await resolve(
            sip("sip:trunk.example.test"),
            resolver=resolver_for(server),
            supported=("udp", "tcp", "tls"),
            now=Clock(),
            random=lambda: 0.0,
        )
    assert brief(destinations) == [
        "tls:192.0.2.1:5061",  # NAPTR order 10
        "udp:192.0.2.1:5060",  # order 20: SRV priorities 10, 15, 20
        "udp:192.0.2.2:5062",
        "udp:192.0.2.3:5064",
        "udp:[2001:db8::3]:5064",
    ]  # order 30, _sip._tcp, has no SRV records: nothing for TCP
    assert {d.server_name for d in destinations} == {"trunk.example.test"}
    # The shortest TTL along each chain: NAPTR 600, SRV 300, A 120.
    assert {d.expires for d in destinations} == {NOW + 120}
    assert ("trunk.example.test", "NAPTR") in server.questions
    assert ("_sip._tcp.trunk.example.test", "SRV") in server.questions


async def test_name_with_port_asks_addresses_only(server: AuthoritativeServer) -> None:
    destinations = await resolve(
        sip("sip:trunk.example.test:5080"), resolver=resolver_for(server), now=Clock()
    )
    assert brief(destinations) == ["udp:192.0.2.9:5080"]
    assert sorted(server.questions) == [
        ("trunk.example.test", "A"),
        ("trunk.example.test", "AAAA"),
    ]


async def test_no_naptr_no_srv_falls_back_to_a(server: AuthoritativeServer) -> None:
    clock = Clock()
    destinations = await resolve(
        sip("sips:plain.example.test"), resolver=resolver_for(server), now=clock
    )
    assert brief(destinations) == ["tls:192.0.2.20:5061"]
    # NAPTR and SRV NODATA carry the negative TTL (60) and bound the A's 90.
    assert destinations[0].expires == NOW + 60


async def test_unknown_name_gives_nothing(server: AuthoritativeServer) -> None:
    destinations = await resolve(
        sip("sip:missing.example.test"), resolver=resolver_for(server), now=Clock()
    )
    assert destinations == []


async def test_query_converts_answers_and_failures(server: AuthoritativeServer) -> None:
    resolver = resolver_for(server)
    answer = await query(resolver, Query("c.trunk.example.test", RecordType.AAAA))
    assert answer == Answer(("2001:db8::3",), 120)
    nodata = await query(resolver, Query("plain.example.test", RecordType.NAPTR))
    assert nodata == Answer((), 60)
    missing = await query(resolver, Query("missing.example.test", RecordType.A))
    assert missing == Failure(DnsError.NXDOMAIN, 60)


async def test_failing_server_gives_nothing(server: AuthoritativeServer) -> None:
    server.servfail = True
    resolver = resolver_for(server)
    assert await query(resolver, Query("trunk.example.test", RecordType.NAPTR)) == Failure(
        DnsError.SERVFAIL
    )
    assert await resolve(sip("sip:trunk.example.test"), resolver=resolver, now=Clock()) == []


async def test_unanswered_server_gives_nothing_within_the_timeout(
    server: AuthoritativeServer,
) -> None:
    server.silent = True
    per_query = 200 * MS
    started = time.monotonic()
    async with asyncio.timeout(TIMEOUT):
        destinations = await resolve(
            sip("sip:trunk.example.test"),
            resolver=resolver_for(server, per_query),
            now=Clock(),
            timeout=per_query,
        )
    assert destinations == []
    # Three rounds (NAPTR; the SRV names; A and AAAA), each asked in parallel.
    assert time.monotonic() - started < 3 * per_query + 1000 * MS
    assert {q for _, q in server.questions} == {"NAPTR", "SRV", "A", "AAAA"}


# -- TrunkResolver --------------------------------------------------------------------


async def test_trunk_resolver_caches_by_ttl_and_logs(
    server: AuthoritativeServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    trunks = TrunkResolver(
        resolver=resolver_for(server), supported=("udp",), now=clock, random=lambda: 0.0
    )
    uri = sip("sip:trunk.example.test")
    with caplog.at_level(logging.INFO, logger="wedge.dns"):
        first = await trunks.lookup("pbx", uri)
    assert brief(first)[:2] == ["udp:192.0.2.1:5060", "udp:192.0.2.2:5062"]
    assert (
        "trunk=pbx resolved=udp:192.0.2.1:5060,udp:192.0.2.2:5062,udp:192.0.2.3:5064,"
        "udp:[2001:db8::3]:5064 ttl=60" in caplog.messages
    )
    asked = len(server.questions)

    clock.now = NOW + 59  # the shortest answer (AAAA NODATA, 60 s) still holds
    assert await trunks.lookup("pbx") == first
    assert trunks.cached("pbx") == first
    assert len(server.questions) == asked

    clock.now = NOW + 61
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wedge.dns"):
        again = await trunks.lookup("pbx")
    assert brief(again) == brief(first)
    assert again[0].expires == NOW + 61 + 120
    assert len(server.questions) > asked  # looked up again
    assert caplog.messages == []  # unchanged: logged at debug only
    await trunks.close()


async def test_trunk_resolver_failure_is_logged_and_stale_answer_kept(
    server: AuthoritativeServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    trunks = TrunkResolver(
        resolver=resolver_for(server, 200 * MS), now=clock, timeout=200 * MS, retry=10
    )
    with caplog.at_level(logging.WARNING, logger="wedge.dns"):
        assert await trunks.lookup("gone", sip("sip:missing.example.test")) == []
        assert any(
            "trunk=gone" in m and "cannot resolve" in m and "503" in m for m in caplog.messages
        )
        good = await trunks.lookup("plain", sip("sip:plain.example.test"))
        assert brief(good) == ["udp:192.0.2.20:5060"]

        server.silent = True
        caplog.clear()
        clock.now = NOW + 120  # past every TTL
        assert await trunks.lookup("plain") == good  # served stale while DNS is down
        assert any("keeping=udp:192.0.2.20:5060" in m for m in caplog.messages)
        assert any("timeout" in m for m in caplog.messages)
    await trunks.close()


async def test_concurrent_lookups_share_one_resolution(server: AuthoritativeServer) -> None:
    trunks = TrunkResolver(resolver=resolver_for(server), now=Clock())
    uri = sip("sip:trunk.example.test:5080")
    results = await asyncio.gather(*(trunks.lookup("pbx", uri) for _ in range(5)))
    assert all(brief(r) == ["udp:192.0.2.9:5080"] for r in results)
    assert server.questions.count(("trunk.example.test", "A")) == 1
    await trunks.close()


async def test_background_refresh_fills_the_cache(server: AuthoritativeServer) -> None:
    trunks = TrunkResolver(
        {"pbx": sip("sip:trunk.example.test:5080"), "ip": sip("sip:192.0.2.50")},
        resolver=resolver_for(server),
        now=Clock(),
    )
    assert trunks.cached("pbx") == []
    trunks.start()
    try:
        async with asyncio.timeout(TIMEOUT):
            while not trunks.cached("pbx") or not trunks.cached("ip"):
                await asyncio.sleep(10 * MS)
        assert brief(trunks.cached("pbx")) == ["udp:192.0.2.9:5080"]
        assert brief(trunks.cached("ip")) == ["udp:192.0.2.50:5060"]
        trunks.add("plain", sip("sip:plain.example.test"))
        async with asyncio.timeout(TIMEOUT):
            while not trunks.cached("plain"):
                await asyncio.sleep(10 * MS)
    finally:
        await trunks.close()
