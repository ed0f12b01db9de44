"""gateway.policy: the configured routes and trunk targets, as the proxy core asks for them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gateway.config import parse_config
from gateway.policy import PolicyRouter, TrunkDirectory, health_settings
from gateway.proxy.routing import Listener
from gateway.sip import Request, parse_message
from gateway.transport.dns import TrunkResolver

POLICY = """\
    [[listener]]
    name = "edge"
    transport = "udp"
    bind = "192.0.2.5:5060"

    [[trunk]]
    name = "pbx"
    uri = "sip:pbx.example.test"
    targets = [
      { address = "192.0.2.10:5060", priority = 10, weight = 3 },
      { address = "192.0.2.11:5060", priority = 10, weight = 1 },
      { address = "192.0.2.12:5060", priority = 20 },
    ]
    options_interval = 15
    down_after = 2

    [[trunk]]
    name = "carrier"
    uri = "sip:198.51.100.1:5070"

    [[route]]
    name = "from-pbx"
    from_trunk = "pbx"
    to_trunk = "carrier"
    strip_prefix = "00"
    e164 = true

    [[route]]
    name = "rest"
    to_trunk = "pbx"
    """
EDGE = Listener("edge", "udp", ("192.0.2.5", 5060), ("192.0.2.5", 5060))


def router(random: float = 0.0) -> PolicyRouter:
    config = parse_config(textwrap.dedent(POLICY), "p.toml", Path("."))
    return PolicyRouter(config, TrunkDirectory(config.trunks, TrunkResolver(), lambda: random))


def invite(uri: str) -> Request:
    message = parse_message(
        (
            f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bK1\r\n"
            "From: <sip:a@example.test>;tag=1\r\nTo: <sip:b@example.test>\r\n"
            "Call-ID: p1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def test_listed_targets_by_priority_then_weight() -> None:
    # random 0.0 picks the first weighted target, 0.9 the second (RFC 2782).
    low = router(0.0).route(invite("sip:600@example.test"), EDGE, ("192.0.2.99", 5060))
    assert low is not None and low.name == "pbx"
    assert [low.address, *(a for _, a in low.alternatives)] == [
        ("192.0.2.10", 5060),
        ("192.0.2.11", 5060),
        ("192.0.2.12", 5060),
    ]
    high = router(0.9).route(invite("sip:600@example.test"), EDGE, ("192.0.2.99", 5060))
    assert high is not None and high.address == ("192.0.2.11", 5060)
    assert str(high.uri) == "sip:pbx.example.test"


def test_a_request_from_a_trunk_target_matches_from_trunk_and_is_normalised() -> None:
    target = router().route(invite("sip:0044207946@example.test"), EDGE, ("192.0.2.11", 5060))
    assert target is not None and target.name == "carrier"
    assert target.address == ("198.51.100.1", 5070)
    assert target.user == "+44207946"


def test_unknown_scheme_has_no_route() -> None:
    assert router().route(invite("urn:service:sos"), EDGE, ("192.0.2.99", 5060)) is None


def test_health_settings_follow_the_trunk() -> None:
    config = parse_config(textwrap.dedent(POLICY), "p.toml", Path("."))
    settings = health_settings(config.trunk("pbx"))
    assert (settings.interval, settings.down_after, settings.up_after) == (15.0, 2, 2)
    assert health_settings(config.trunk("carrier")).interval == 0.0


def test_directory_knows_which_trunks_need_dns() -> None:
    config = parse_config(textwrap.dedent(POLICY), "p.toml", Path("."))
    directory = TrunkDirectory(config.trunks, TrunkResolver())
    assert directory.resolved_by_dns() == []  # pbx lists targets, carrier is an address
    assert ("carrier", "udp", ("198.51.100.1", 5070)) in directory.all_targets()
