"""gateway.proxy.locate: RFC 3263 §4 over DNS answers given as data."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.proxy.locate import (
    ERROR_TTL,
    MAX_TARGETS,
    Answer,
    Destination,
    DestinationCache,
    DnsError,
    Failure,
    NaptrRecord,
    Query,
    RecordType,
    Resolution,
    SrvRecord,
    order_srv,
)
from gateway.sip import SipUri, parse_uri

NOW = 1000.0
DOMAIN = "example.com"
ALL = ("udp", "tcp", "tls", "ws", "wss")
NX = Failure(DnsError.NXDOMAIN, 3600)

Zone = dict[Query, Answer | Failure]


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def sequence(*values: float) -> Callable[[], float]:
    """A random source giving ``values`` in turn, then 0."""
    pending = list(values)
    return lambda: pending.pop(0) if pending else 0.0


def naptr(name: str, *records: NaptrRecord, ttl: float = 3600) -> Zone:
    return {Query(name, RecordType.NAPTR): Answer(records, ttl)}


def srv(name: str, *records: tuple[int, int, int, str], ttl: float = 3600) -> Zone:
    return {Query(name, RecordType.SRV): Answer(tuple(SrvRecord(*r) for r in records), ttl)}


def a(name: str, *addresses: str, ttl: float = 3600) -> Zone:
    return {Query(name, RecordType.A): Answer(addresses, ttl)}


def aaaa(name: str, *addresses: str, ttl: float = 3600) -> Zone:
    return {Query(name, RecordType.AAAA): Answer(addresses, ttl)}


def zone(*parts: Zone) -> Zone:
    merged: Zone = {}
    for part in parts:
        merged.update(part)
    return merged


def drive(
    uri: str,
    answers: Zone,
    supported: Iterable[str] = ALL,
    random: Callable[[], float] | None = None,
    *,
    reverse: bool = False,
    now: float = NOW,
) -> tuple[Resolution, list[Query]]:
    """Run a resolution against ``answers`` (NXDOMAIN for anything else).

    Each round takes every query the resolution hands out before answering any,
    as a parallel shell does; ``reverse`` answers them last first.
    """
    resolution = Resolution(sip(uri), supported, random=random or sequence())
    asked: list[Query] = []
    while not resolution.done:
        batch = []
        while (query := resolution.next_query()) is not None:
            batch.append(query)
        assert batch, "a resolution that is not done must have queries to ask"
        asked.extend(batch)
        for query in reversed(batch) if reverse else batch:
            resolution.feed(query, answers.get(query, NX), now)
    return resolution, asked


def brief(destinations: Sequence[Destination]) -> list[str]:
    return [str(d) for d in destinations]


# -- no DNS at all -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:192.0.2.1", "udp:192.0.2.1:5060"),
        ("sip:alice@192.0.2.1:5070", "udp:192.0.2.1:5070"),
        ("sip:192.0.2.1;transport=tcp", "tcp:192.0.2.1:5060"),
        ("sip:192.0.2.1;transport=TLS", "tls:192.0.2.1:5061"),
        ("sip:192.0.2.1;transport=ws", "ws:192.0.2.1:80"),
        ("sips:192.0.2.1", "tls:192.0.2.1:5061"),
        ("sips:192.0.2.1;transport=tcp", "tls:192.0.2.1:5061"),
        ("sips:192.0.2.1:5555;transport=ws", "wss:192.0.2.1:5555"),
        ("sip:[2001:db8::1]:5062", "udp:[2001:db8::1]:5062"),
        ("sip:trunk.example.com;maddr=192.0.2.9", "udp:192.0.2.9:5060"),
    ],
)
def test_ip_literal_needs_no_dns(uri: str, expected: str) -> None:
    resolution, asked = drive(uri, {})
    assert asked == []
    (destination,) = resolution.result()
    assert str(destination) == expected
    assert destination.expires == math.inf and resolution.expires == math.inf
    assert destination.server_name == destination.address[0]


@pytest.mark.parametrize(
    ("uri", "supported"),
    [
        ("sips:192.0.2.1;transport=udp", ALL),  # SIPS over UDP does not exist
        ("sip:192.0.2.1;transport=sctp", ALL),
        ("sip:192.0.2.1;transport=tcp", ("udp",)),
        ("sip:192.0.2.1", ("tcp", "tls")),
        ("sips:trunk.example.com", ("udp", "tcp")),
        ("sip:trunk.example.com:5080;transport=sctp", ALL),
    ],
)
def test_unusable_transport_gives_nothing(uri: str, supported: tuple[str, ...]) -> None:
    resolution, _ = drive(uri, {}, supported)
    assert resolution.result() == [] and resolution.done


# -- host name with an explicit port or transport: RFC 3263 §4.2 ---------------


def test_name_with_port_asks_only_addresses() -> None:
    answers = zone(
        a("trunk.example.com", "192.0.2.1", "192.0.2.2"), aaaa("trunk.example.com", "2001:db8::5")
    )
    resolution, asked = drive("sip:trunk.example.com:5080", answers)
    assert asked == [
        Query("trunk.example.com", RecordType.A),
        Query("trunk.example.com", RecordType.AAAA),
    ]
    assert brief(resolution.result()) == [
        "udp:192.0.2.1:5080",
        "udp:192.0.2.2:5080",
        "udp:[2001:db8::5]:5080",
    ]
    assert {d.server_name for d in resolution.result()} == {"trunk.example.com"}


def test_sips_name_with_port_is_tls() -> None:
    resolution, _ = drive("sips:Trunk.Example.com.:5081", a("trunk.example.com", "192.0.2.1"))
    assert brief(resolution.result()) == ["tls:192.0.2.1:5081"]
    assert resolution.result()[0].server_name == "trunk.example.com"


def test_name_with_transport_asks_that_srv_only() -> None:
    answers = zone(
        srv("_sip._tcp.example.com", (0, 0, 5070, "pbx.example.com")),
        a("pbx.example.com", "192.0.2.7"),
    )
    resolution, asked = drive("sip:example.com;transport=tcp", answers)
    assert asked[0] == Query("_sip._tcp.example.com", RecordType.SRV)
    assert all(q.type is not RecordType.NAPTR for q in asked)
    assert brief(resolution.result()) == ["tcp:192.0.2.7:5070"]


def test_sips_with_transport_tcp_asks_sips_srv() -> None:
    resolution, asked = drive("sips:example.com;transport=tcp", a("example.com", "192.0.2.8"))
    assert asked[0] == Query("_sips._tcp.example.com", RecordType.SRV)
    # No SRV: the domain's addresses with TLS's default port.
    assert brief(resolution.result()) == ["tls:192.0.2.8:5061"]


def test_ws_transport_without_port_uses_default_port() -> None:
    resolution, asked = drive("sip:example.com;transport=ws", a("example.com", "192.0.2.8"))
    assert [q.type for q in asked] == [RecordType.A, RecordType.AAAA]
    assert brief(resolution.result()) == ["ws:192.0.2.8:80"]


# -- NAPTR → SRV → A: RFC 3263 §4.1 ---------------------------------------------

RFC3263_NAPTR = naptr(
    DOMAIN,
    NaptrRecord(50, 50, "s", "SIPS+D2T", "_sips._tcp.example.com."),
    NaptrRecord(90, 50, "s", "SIP+D2T", "_sip._tcp.example.com"),
    NaptrRecord(100, 50, "s", "SIP+D2U", "_sip._udp.example.com."),
)
RFC3263_ZONE = zone(
    RFC3263_NAPTR,
    srv("_sips._tcp.example.com", (0, 0, 5061, "tls.example.com")),
    srv(
        "_sip._tcp.example.com",
        (0, 1, 5060, "server1.example.com"),
        (0, 2, 5060, "server2.example.com"),
    ),
    srv("_sip._udp.example.com", (0, 0, 5060, "server1.example.com")),
    a("tls.example.com", "192.0.2.10"),
    a("server1.example.com", "192.0.2.11"),
    a("server2.example.com", "192.0.2.12"),
)


def test_rfc3263_example_client_with_tcp_and_udp() -> None:
    # "If the client supports TCP and UDP, TCP will be used, targeted to a host
    # determined by an SRV lookup of _sip._tcp.example.com."
    resolution, asked = drive("sip:example.com", RFC3263_ZONE, ("udp", "tcp"), sequence(0.0))
    assert asked[:3] == [
        Query(DOMAIN, RecordType.NAPTR),
        Query("_sip._tcp.example.com", RecordType.SRV),
        Query("_sip._udp.example.com", RecordType.SRV),
    ]
    # random 0 within priority 0: the weight-1 record (running sum 1 >= 0) first.
    assert brief(resolution.result()) == [
        "tcp:192.0.2.11:5060",
        "tcp:192.0.2.12:5060",
        "udp:192.0.2.11:5060",
    ]
    assert {d.server_name for d in resolution.result()} == {DOMAIN}


def test_rfc3263_example_client_with_tls_prefers_it() -> None:
    resolution, _ = drive("sip:example.com", RFC3263_ZONE, ALL, sequence(0.9))
    assert brief(resolution.result()) == [
        "tls:192.0.2.10:5061",
        "tcp:192.0.2.12:5060",  # 0.9 * 3 = 2.7 > 1: the weight-2 record first
        "tcp:192.0.2.11:5060",
        "udp:192.0.2.11:5060",
    ]


def test_naptr_preference_breaks_ties_within_an_order() -> None:
    answers = zone(
        naptr(
            DOMAIN,
            NaptrRecord(10, 20, "S", "SIP+D2U", "_sip._udp.example.com"),
            NaptrRecord(10, 10, "S", "sip+d2t", "_sip._tcp.example.com"),
        ),
        srv("_sip._udp.example.com", (0, 0, 5060, "u.example.com")),
        srv("_sip._tcp.example.com", (0, 0, 5060, "t.example.com")),
        a("u.example.com", "192.0.2.1"),
        a("t.example.com", "192.0.2.2"),
    )
    resolution, _ = drive("sip:example.com", answers)
    assert brief(resolution.result()) == ["tcp:192.0.2.2:5060", "udp:192.0.2.1:5060"]


def test_sips_keeps_only_sips_services() -> None:
    answers = zone(
        naptr(
            DOMAIN,
            NaptrRecord(10, 10, "s", "SIP+D2U", "_sip._udp.example.com"),
            NaptrRecord(20, 10, "s", "SIPS+D2W", "_sips._ws.example.com"),
            NaptrRecord(30, 10, "s", "SIPS+D2T", "_sips._tcp.example.com"),
        ),
        srv("_sip._udp.example.com", (0, 0, 5060, "u.example.com")),
        srv("_sips._ws.example.com", (0, 0, 443, "w.example.com")),
        srv("_sips._tcp.example.com", (0, 0, 5061, "t.example.com")),
        a("u.example.com", "192.0.2.1"),
        a("w.example.com", "192.0.2.2"),
        a("t.example.com", "192.0.2.3"),
    )
    secure, asked = drive("sips:example.com", answers)
    assert brief(secure.result()) == ["wss:192.0.2.2:443", "tls:192.0.2.3:5061"]
    assert Query("_sip._udp.example.com", RecordType.SRV) not in asked
    # A SIP URI may use the SIPS services too (RFC 3263 §4.1).
    plain, _ = drive("sip:example.com", answers)
    assert brief(plain.result()) == [
        "udp:192.0.2.1:5060",
        "wss:192.0.2.2:443",
        "tls:192.0.2.3:5061",
    ]


def test_unsupported_naptr_services_are_filtered() -> None:
    answers = zone(
        naptr(
            DOMAIN,
            NaptrRecord(10, 10, "s", "SIP+D2S", "_sip._sctp.example.com"),  # SCTP
            NaptrRecord(20, 10, "s", "SIP+D2W", "_sip._ws.example.com"),  # ws: not supported
            NaptrRecord(30, 10, "a", "SIP+D2T", "t.example.com"),  # not an SRV pointer
            NaptrRecord(40, 10, "", "SIP+D2T", "other.example.com"),  # non-terminal
            NaptrRecord(50, 10, "s", "SIP+D2U", "_sip._udp.example.com"),
            NaptrRecord(60, 10, "s", "E2U+sip", "_sip._tcp.example.com"),  # ENUM, not ours
        ),
        srv("_sip._ws.example.com", (0, 0, 80, "w.example.com")),
        srv("_sip._udp.example.com", (0, 0, 5060, "u.example.com")),
        a("u.example.com", "192.0.2.1"),
        a("w.example.com", "192.0.2.2"),
    )
    resolution, asked = drive("sip:example.com", answers, ("udp", "tcp", "tls"))
    assert brief(resolution.result()) == ["udp:192.0.2.1:5060"]
    assert [q.name for q in asked if q.type is RecordType.SRV] == ["_sip._udp.example.com"]


def test_naptr_with_only_unsupported_services_falls_back_to_srv() -> None:
    answers = zone(
        naptr(DOMAIN, NaptrRecord(10, 10, "s", "SIP+D2S", "_sip._sctp.example.com")),
        srv("_sip._tcp.example.com", (0, 0, 5060, "t.example.com")),
        a("t.example.com", "192.0.2.2"),
    )
    resolution, _ = drive("sip:example.com", answers)
    assert brief(resolution.result()) == ["tcp:192.0.2.2:5060"]


def test_naptr_pointing_at_missing_srv_falls_back() -> None:
    answers = zone(
        naptr(DOMAIN, NaptrRecord(10, 10, "s", "SIP+D2U", "_sip._udp.gone.example.com")),
        a(DOMAIN, "192.0.2.4"),
    )
    resolution, asked = drive("sip:example.com", answers)
    assert [q.name for q in asked if q.type is RecordType.SRV] == [
        "_sip._udp.gone.example.com",
        "_sip._udp.example.com",
        "_sip._tcp.example.com",
        "_sips._tcp.example.com",
    ]
    assert brief(resolution.result()) == ["udp:192.0.2.4:5060"]


# -- no NAPTR: SRV, then A ------------------------------------------------------


def test_no_naptr_queries_srv_for_each_transport() -> None:
    answers = zone(
        srv("_sip._udp.example.com", (0, 0, 5060, "u.example.com")),
        srv("_sips._tcp.example.com", (0, 0, 5061, "t.example.com")),
        a("u.example.com", "192.0.2.1"),
        a("t.example.com", "192.0.2.3"),
    )
    resolution, asked = drive("sip:example.com", answers)
    assert asked[:4] == [
        Query(DOMAIN, RecordType.NAPTR),
        Query("_sip._udp.example.com", RecordType.SRV),
        Query("_sip._tcp.example.com", RecordType.SRV),
        Query("_sips._tcp.example.com", RecordType.SRV),
    ]
    assert brief(resolution.result()) == ["udp:192.0.2.1:5060", "tls:192.0.2.3:5061"]


def test_sips_without_naptr_asks_only_sips_srv() -> None:
    resolution, asked = drive("sips:example.com", a(DOMAIN, "192.0.2.5"))
    assert [q for q in asked if q.type is RecordType.SRV] == [
        Query("_sips._tcp.example.com", RecordType.SRV)
    ]
    assert brief(resolution.result()) == ["tls:192.0.2.5:5061"]


@pytest.mark.parametrize(
    ("uri", "supported", "expected"),
    [
        ("sip:example.com", ALL, ["udp:192.0.2.5:5060", "udp:[2001:db8::5]:5060"]),
        ("sips:example.com", ALL, ["tls:192.0.2.5:5061", "tls:[2001:db8::5]:5061"]),
        ("sip:example.com", ("tcp",), ["tcp:192.0.2.5:5060", "tcp:[2001:db8::5]:5060"]),
    ],
)
def test_nothing_but_addresses_uses_default_port(
    uri: str, supported: tuple[str, ...], expected: list[str]
) -> None:
    answers = zone(a(DOMAIN, "192.0.2.5"), aaaa(DOMAIN, "2001:db8::5"))
    resolution, asked = drive(uri, answers, supported)
    assert asked[-2:] == [Query(DOMAIN, RecordType.A), Query(DOMAIN, RecordType.AAAA)]
    assert brief(resolution.result()) == expected


def test_ipv4_only_node_asks_no_aaaa() -> None:
    resolution = Resolution(
        sip("sip:example.com:5060"), random=sequence(), address_types=[RecordType.A]
    )
    (query,) = [resolution.next_query()]
    assert query == Query(DOMAIN, RecordType.A) and resolution.next_query() is None
    resolution.feed(Query(DOMAIN, RecordType.A), Answer(("192.0.2.1",), 60), NOW)
    assert resolution.done and brief(resolution.result()) == ["udp:192.0.2.1:5060"]


# -- SRV ordering: RFC 2782 -----------------------------------------------------


def test_srv_priority_then_weight_with_fixed_random() -> None:
    records = [
        SrvRecord(20, 0, 5060, "d"),
        SrvRecord(10, 10, 5060, "a"),
        SrvRecord(10, 30, 5060, "b"),
        SrvRecord(10, 0, 5060, "c"),
    ]
    # Priority 10 is arranged c(0), a(10), b(30): sum 40. 0.5 * 40 = 20 → b;
    # then c(0), a(10): 0.0 → c (running sum 0 reaches 0); then a; then d.
    assert [r.target for r in order_srv(records, sequence(0.5, 0.0))] == ["b", "c", "a", "d"]
    # 0.1 * 40 = 4 → a (running sum 10); then c(0), b(30): 0.99 → b.
    assert [r.target for r in order_srv(records, sequence(0.1, 0.99))] == ["a", "b", "c", "d"]


def test_srv_weights_share_first_place_in_proportion() -> None:
    records = [SrvRecord(0, 10, 5060, "a"), SrvRecord(0, 30, 5060, "b")]
    firsts = [order_srv(records, sequence(i / 1000))[0].target for i in range(1000)]
    assert firsts.count("a") == 251  # [0, 0.25] of the unit interval
    assert firsts.count("b") == 749


def test_srv_all_zero_weights_keep_server_order() -> None:
    records = [SrvRecord(0, 0, 5060, n) for n in "xyz"]
    assert [r.target for r in order_srv(records, sequence(0.7, 0.7, 0.7))] == ["x", "y", "z"]


def test_out_of_range_random_is_clamped() -> None:
    records = [SrvRecord(0, 10, 5060, "a"), SrvRecord(0, 30, 5060, "b")]
    assert [r.target for r in order_srv(records, sequence(-3.0))] == ["a", "b"]
    assert [r.target for r in order_srv(records, sequence(7.0))] == ["b", "a"]
    assert [r.target for r in order_srv(records, sequence(math.nan))] == ["a", "b"]


def test_srv_order_through_a_resolution_keeps_every_target() -> None:
    answers = zone(
        srv(
            "_sip._udp.example.com",
            (1, 10, 5060, "a.example.com"),
            (1, 30, 5062, "b.example.com"),
            (2, 5, 5064, "c.example.com"),
        ),
        a("a.example.com", "192.0.2.1"),
        a("b.example.com", "192.0.2.2"),
        a("c.example.com", "192.0.2.3"),
    )
    resolution, _ = drive("sip:example.com", answers, ("udp",), sequence(0.5))
    assert brief(resolution.result()) == [
        "udp:192.0.2.2:5062",
        "udp:192.0.2.1:5060",
        "udp:192.0.2.3:5064",
    ]


def test_srv_dot_target_means_not_available() -> None:
    answers = zone(srv("_sip._udp.example.com", (0, 0, 0, ".")), a(DOMAIN, "192.0.2.1"))
    resolution, asked = drive("sip:example.com", answers, ("udp",))
    assert resolution.result() == []
    assert all(q.type is not RecordType.A for q in asked)


def test_same_address_twice_is_kept_once() -> None:
    answers = zone(
        srv(
            "_sip._udp.example.com",
            (0, 0, 5060, "a.example.com"),
            (1, 0, 5060, "b.example.com"),
            (2, 0, 5060, "a.example.com"),
        ),
        a("a.example.com", "192.0.2.1"),
        a("b.example.com", "192.0.2.1", "192.0.2.2"),
    )
    resolution, asked = drive("sip:example.com", answers, ("udp",))
    assert brief(resolution.result()) == ["udp:192.0.2.1:5060", "udp:192.0.2.2:5060"]
    assert asked.count(Query("a.example.com", RecordType.A)) == 1


def test_srv_target_count_is_bounded() -> None:
    many = [(0, 1, 5060, f"h{i}.example.com") for i in range(100)]
    answers = zone(srv("_sip._udp.example.com", *many))
    for i in range(100):
        answers.update(a(f"h{i}.example.com", f"192.0.2.{i + 1}"))
    resolution, asked = drive("sip:example.com", answers, ("udp",))
    address_queries = [q for q in asked if q.type in (RecordType.A, RecordType.AAAA)]
    assert len({q.name for q in address_queries}) <= MAX_TARGETS
    assert 0 < len(resolution.result()) <= MAX_TARGETS


# -- TTLs -----------------------------------------------------------------------


def test_expiry_is_the_shortest_ttl_along_each_chain() -> None:
    answers = zone(
        naptr(DOMAIN, NaptrRecord(1, 1, "s", "SIP+D2U", "_sip._udp.example.com"), ttl=600),
        srv(
            "_sip._udp.example.com",
            (0, 0, 5060, "short.example.com"),
            (1, 0, 5060, "long.example.com"),
            ttl=300,
        ),
        a("short.example.com", "192.0.2.1", ttl=60),
        a("long.example.com", "192.0.2.2", ttl=7200),
        aaaa("short.example.com", ttl=900),  # NODATA, negative TTL 900
        aaaa("long.example.com", ttl=900),
    )
    resolution, _ = drive("sip:example.com", answers)
    short, long = resolution.result()
    assert short.expires == NOW + 60
    assert long.expires == NOW + 300  # the SRV's TTL bounds it
    assert resolution.expires == NOW + 60


def test_expiry_counts_from_when_each_answer_arrived() -> None:
    resolution = Resolution(sip("sip:example.com:5060"), ("udp",), random=sequence())
    first, second = resolution.next_query(), resolution.next_query()
    assert first is not None and second is not None
    resolution.feed(first, Answer(("192.0.2.1",), 100), NOW)
    resolution.feed(second, Answer((), 30), NOW + 80)
    (destination,) = resolution.result()
    assert destination.expires == NOW + 100
    assert resolution.expires == NOW + 100  # 80 + 30 = 110 is later


def test_failures_count_for_error_ttl_and_move_on() -> None:
    servfail = Failure(DnsError.SERVFAIL)
    answers = zone(
        {Query(DOMAIN, RecordType.NAPTR): servfail},
        {Query("_sip._udp.example.com", RecordType.SRV): Failure(DnsError.TIMEOUT)},
        a(DOMAIN, "192.0.2.1"),
    )
    resolution, asked = drive("sip:example.com", answers, ("udp",))
    assert asked[:2] == [
        Query(DOMAIN, RecordType.NAPTR),
        Query("_sip._udp.example.com", RecordType.SRV),
    ]
    (destination,) = resolution.result()
    assert str(destination) == "udp:192.0.2.1:5060"
    assert destination.expires == NOW + ERROR_TTL
    assert [e for _, e in resolution.failures] == [
        DnsError.SERVFAIL,
        DnsError.TIMEOUT,
        DnsError.NXDOMAIN,  # the AAAA
    ]


def test_nxdomain_negative_ttl_bounds_the_fallback() -> None:
    answers = zone(
        {Query(DOMAIN, RecordType.NAPTR): Failure(DnsError.NXDOMAIN, 120)},
        a(DOMAIN, "192.0.2.1", ttl=3600),
        aaaa(DOMAIN, ttl=3600),
    )
    resolution, _ = drive("sip:example.com", answers)
    (destination,) = resolution.result()
    assert destination.expires == NOW + 120


def test_ttls_are_held_to_sane_values() -> None:
    answers = zone(a(DOMAIN, "192.0.2.1", ttl=-5), aaaa(DOMAIN, "2001:db8::1", ttl=10**9))
    resolution, _ = drive("sip:example.com:5060", answers)
    first, second = resolution.result()
    assert first.expires == NOW
    assert second.expires == NOW + 86400


def test_everything_failing_gives_nothing() -> None:
    timeout = Failure(DnsError.TIMEOUT)
    resolution = Resolution(sip("sip:example.com"), random=sequence())
    while not resolution.done:
        query = resolution.next_query()
        assert query is not None
        resolution.feed(query, timeout, NOW)
    assert resolution.result() == []
    assert resolution.expires == NOW + ERROR_TTL
    assert len(resolution.failures) == 6  # NAPTR, 3 SRV, A, AAAA


# -- feeding is robust ------------------------------------------------------------


def test_parallel_answers_in_any_order_give_the_same_result() -> None:
    forward, _ = drive("sip:example.com", RFC3263_ZONE, ALL, sequence(0.3))
    backward, _ = drive("sip:example.com", RFC3263_ZONE, ALL, sequence(0.3), reverse=True)
    assert forward.result() == backward.result()


def test_a_phase_hands_out_all_its_queries_at_once() -> None:
    resolution = Resolution(sip("sip:example.com"), random=sequence())
    naptr_query = resolution.next_query()
    assert naptr_query == Query(DOMAIN, RecordType.NAPTR)
    assert resolution.next_query() is None  # waiting for the NAPTR answer
    resolution.feed(naptr_query, NX, NOW)
    srv_queries = [resolution.next_query() for _ in range(3)]
    assert all(q is not None and q.type is RecordType.SRV for q in srv_queries)
    assert resolution.next_query() is None


def test_unknown_duplicate_and_late_answers_are_ignored() -> None:
    resolution = Resolution(sip("sip:example.com:5060"), ("udp",), random=sequence())
    query_a = resolution.next_query()
    query_aaaa = resolution.next_query()
    assert query_a is not None and query_aaaa is not None
    resolution.feed(Query("elsewhere.example.com", RecordType.A), Answer(("192.0.2.9",), 60), NOW)
    resolution.feed(query_a, Answer(("192.0.2.1",), 60), NOW)
    resolution.feed(query_a, Answer(("192.0.2.2",), 60), NOW)  # answered already
    assert not resolution.done and resolution.result() == []
    resolution.feed(query_aaaa, NX, NOW)
    resolution.feed(query_aaaa, Answer(("2001:db8::1",), 60), NOW)  # done already
    assert brief(resolution.result()) == ["udp:192.0.2.1:5060"]


def test_malformed_records_are_ignored() -> None:
    answers = zone(
        naptr(
            DOMAIN,
            NaptrRecord(1, 1, "s", "SIP+D2U", "."),  # no replacement
            NaptrRecord(2, 1, "s", "SIP+D2U", "_sip._udp.example.com"),
        ),
        {
            Query("_sip._udp.example.com", RecordType.SRV): Answer(
                (
                    SrvRecord(0, 0, 0, "zero-port.example.com"),
                    SrvRecord(0, 0, 70000, "big-port.example.com"),
                    "192.0.2.99",  # an address in an SRV answer
                    SrvRecord(1, 0, 5060, "host.example.com"),
                ),
                60,
            )
        },
        a("host.example.com", "2001:db8::1", "not-an-ip", "192.0.2.1", "192.0.2.300"),
        aaaa("host.example.com", "192.0.2.2", "2001:DB8:0::7"),
    )
    resolution, _ = drive("sip:example.com", answers)
    assert brief(resolution.result()) == ["udp:192.0.2.1:5060", "udp:[2001:db8::7]:5060"]


def test_srv_target_given_as_address() -> None:
    answers = srv("_sip._udp.example.com", (0, 0, 5070, "192.0.2.44"))
    resolution, asked = drive("sip:example.com", answers, ("udp",))
    assert brief(resolution.result()) == ["udp:192.0.2.44:5070"]
    assert all(q.type is RecordType.NAPTR or q.type is RecordType.SRV for q in asked)


# -- DestinationCache -----------------------------------------------------------


def destination(n: int, expires: float = NOW + 60) -> Destination:
    return Destination("udp", (f"192.0.2.{n}", 5060), "example.com", expires)


def test_cache_keeps_until_expiry() -> None:
    cache = DestinationCache()
    cache.put("sip:example.com", [destination(1), destination(2)], NOW + 60)
    got = cache.get("sip:example.com", NOW + 59.9)
    assert got == [destination(1), destination(2)]
    got.clear()  # the caller's copy
    assert cache.get("sip:example.com", NOW) == [destination(1), destination(2)]
    assert cache.get("sip:example.com", NOW + 60) is None
    assert len(cache) == 0
    assert cache.get("sip:other.example.com", NOW) is None


def test_cache_keeps_negative_entries() -> None:
    cache = DestinationCache()
    cache.put("sip:gone.example.com", [], NOW + 10)
    assert cache.get("sip:gone.example.com", NOW) == []


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = DestinationCache(max_entries=2)
    cache.put("one", [destination(1)], NOW + 60)
    cache.put("two", [destination(2)], NOW + 60)
    assert cache.get("one", NOW) is not None  # "two" is now the oldest
    cache.put("three", [destination(3)], NOW + 60)
    assert len(cache) == 2
    assert cache.get("two", NOW) is None
    assert cache.get("one", NOW) == [destination(1)]
    cache.expire(NOW + 61)
    assert len(cache) == 0
    with pytest.raises(ValueError, match="at least one"):
        DestinationCache(0)


# -- properties -------------------------------------------------------------------

HOSTS = ["example.com", "a.example.com", "b.example.com", "."]
SRV_NAMES = [
    "_sip._udp.example.com",
    "_sip._tcp.example.com",
    "_sips._tcp.example.com",
    "_sips._ws.example.com",
    "x.example.com",
]
URIS = [
    "sip:example.com",
    "sips:example.com",
    "sip:example.com:5070",
    "sips:example.com:5071",
    "sip:example.com;transport=tcp",
    "sip:example.com;transport=ws",
    "sips:example.com;transport=tcp",
    "sip:192.0.2.1",
    "sips:[2001:db8::1];transport=ws",
]
ADDRESSES = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2", "bogus"]

ttls = st.integers(-10, 100_000)
naptr_records = st.builds(
    NaptrRecord,
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(["s", "s", "S", "a", ""]),
    st.sampled_from(["SIP+D2U", "SIP+D2T", "SIPS+D2T", "SIP+D2W", "SIPS+D2W", "SIP+D2S", "x"]),
    st.sampled_from([*SRV_NAMES, "."]),
)
srv_records = st.builds(
    SrvRecord,
    st.integers(0, 3),
    st.integers(-1, 20),
    st.integers(-1, 70000),
    st.sampled_from([*HOSTS, "192.0.2.7"]),
)
records = st.one_of(naptr_records, srv_records, st.sampled_from(ADDRESSES))
failures = st.builds(Failure, st.sampled_from(list(DnsError)), st.none() | ttls)


def typed_answers(rtype: RecordType) -> st.SearchStrategy[Answer | Failure]:
    """Mostly records of the type asked for, sometimes anything."""
    right = {
        RecordType.NAPTR: naptr_records,
        RecordType.SRV: srv_records,
        RecordType.A: st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1", "bogus"]),
        RecordType.AAAA: st.sampled_from(["2001:db8::1", "2001:db8::2", "192.0.2.1", "bogus"]),
    }[rtype]
    listed = st.lists(st.one_of(right, right, right, records), min_size=1, max_size=5)
    answer = st.builds(Answer, listed.map(tuple), ttls)
    return st.one_of(answer, answer, answer, failures)


# The questions a resolution of these URIs can ask, each answered (or failed),
# and a few arbitrary ones on top.
LIKELY = (
    [Query(DOMAIN, RecordType.NAPTR)]
    + [Query(name, RecordType.SRV) for name in SRV_NAMES]
    + [Query(h, t) for h in HOSTS[:3] for t in (RecordType.A, RecordType.AAAA)]
)
queries = st.builds(Query, st.sampled_from([*HOSTS, *SRV_NAMES]), st.sampled_from(list(RecordType)))
zones = st.tuples(
    st.fixed_dictionaries({q: typed_answers(q.type) for q in LIKELY}),
    st.dictionaries(
        queries,
        st.one_of(st.builds(Answer, st.lists(records, max_size=4).map(tuple), ttls), failures),
        max_size=4,
    ),
).map(lambda pair: {**pair[1], **pair[0]})
transports = st.one_of(st.just(set(ALL)), st.sets(st.sampled_from(ALL), min_size=1))


def check_consistent(
    uri_text: str, answers: Zone, supported: set[str], result: list[Destination]
) -> None:
    uri = sip(uri_text)
    host = (uri.maddr or uri.host).strip("[]").lower()
    literal = host[0].isdigit() or ":" in host
    listed = {
        str(ipaddress.ip_address(r))
        for answer in answers.values()
        if isinstance(answer, Answer)
        for r in answer.records
        if isinstance(r, str) and r != "bogus"
    } | {"192.0.2.7"}
    ports = {
        r.port
        for answer in answers.values()
        if isinstance(answer, Answer)
        for r in answer.records
        if isinstance(r, SrvRecord)
    }
    max_ttl = max(
        [answer.ttl for answer in answers.values() if answer.ttl is not None] + [ERROR_TTL, 3600],
    )
    keys = [(d.transport, d.address) for d in result]
    assert len(keys) == len(set(keys))
    for d in result:
        assert d.transport in supported
        if uri.is_secure:
            assert d.transport in ("tls", "wss")
        assert d.server_name == host
        ip, port = d.address
        if literal:
            assert ipaddress.ip_address(ip) == ipaddress.ip_address(host)
            assert d.expires == math.inf
        else:
            assert ip in listed
            assert NOW <= d.expires <= NOW + max_ttl
        assert port in ports or port == uri.port or port in (5060, 5061, 80, 443)
        assert 0 < port <= 65535


@settings(max_examples=400, deadline=None)
@given(
    uri=st.sampled_from(URIS),
    answers=zones,
    supported=transports,
    randoms=st.lists(st.floats(allow_nan=True), max_size=10),
    reverse=st.booleans(),
)
def test_random_answers_never_raise_and_stay_consistent(
    uri: str, answers: Zone, supported: set[str], randoms: list[float], reverse: bool
) -> None:
    resolution, asked = drive(uri, answers, supported, sequence(*randoms), reverse=reverse)
    assert resolution.done
    assert len(asked) == len(set(asked))  # nothing asked twice
    check_consistent(uri, answers, supported, resolution.result())


@settings(max_examples=200, deadline=None)
@given(uri=st.sampled_from(URIS), answers=zones, supported=transports)
def test_answer_order_does_not_matter(uri: str, answers: Zone, supported: set[str]) -> None:
    forward, _ = drive(uri, answers, supported, sequence())
    backward, _ = drive(uri, answers, supported, sequence(), reverse=True)
    assert forward.result() == backward.result()
