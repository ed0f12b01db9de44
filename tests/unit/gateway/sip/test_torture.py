"""Every message of RFC 4475 and RFC 5118, with the verdict and meaning the RFC gives it.

The fixtures and their expected meaning are in tests/data/sip (torture.toml).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.sip import ParseError, Request, Response, SipUri, parse_message

DATA = Path(__file__).parents[3] / "data" / "sip"
CASES: list[dict[str, Any]] = tomllib.loads((DATA / "torture.toml").read_text())["message"]


def _cases(verdict: str) -> list[Any]:
    return [
        pytest.param(case, id=case["file"].split("/")[-1][:-4])
        for case in CASES
        if case["verdict"] == verdict
    ]


def _short_body(case: dict[str, Any], data: bytes) -> bool:
    """RFC 5118 §4.6 declares a Content-Length its own body does not reach.

    RFC 3261 §18.3 then says the datagram is to be discarded, whatever the
    section's verdict; torture.toml records this as a caveat.
    """
    declared = case.get("expect", {}).get("content_length")
    return declared is not None and declared > len(data) - data.index(b"\r\n\r\n") - 4


def test_every_section_is_here() -> None:
    counts = {
        rfc: sum(case["rfc"].startswith(rfc) for case in CASES) for rfc in ("RFC 4475", "RFC 5118")
    }
    assert counts == {"RFC 4475": 49, "RFC 5118": 12}


@pytest.mark.parametrize("case", _cases("invalid"))
def test_invalid_message_is_refused_with_a_reason(case: dict[str, Any]) -> None:
    data = (DATA / case["file"]).read_bytes()
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    reason = caught.value.reason.lower().replace("-", " ")
    assert any(word.replace("-", " ") in reason for word in case["wrong"]), reason
    # The RFC's code where it names one; 400 is what RFC 4475 §3.1.2.18 also allows
    # for an unknown method, and a response (status 0 in the manifest) is dropped.
    if case["status"] not in (0, 501):
        assert caught.value.status == case["status"]
    else:
        assert caught.value.status == 400


@pytest.mark.parametrize("case", _cases("valid"))
def test_valid_message_means_what_the_rfc_says(case: dict[str, Any]) -> None:
    data = (DATA / case["file"]).read_bytes()
    if _short_body(case, data):
        with pytest.raises(ParseError, match="Content-Length"):
            parse_message(data)
        return
    message = parse_message(data)
    expect = case["expect"]
    if case["kind"] == "request":
        assert isinstance(message, Request)
        assert message.method == expect["method"]
        assert message.uri == expect["request_uri"]
        ruri = message.ruri
        if "request_uri_host" in expect:
            assert isinstance(ruri, SipUri)
            assert ruri.host == expect["request_uri_host"]
            assert ruri.port == expect.get("request_uri_port")
    else:
        assert isinstance(message, Response)
        assert message.status == expect["status"]
        assert message.reason == expect["reason"]
    assert message.call_id == expect["call_id"]
    assert message.cseq.number == expect["cseq_number"]
    assert message.cseq.method == expect["cseq_method"]
    assert message.from_.tag == expect.get("from_tag")
    assert message.to.tag == expect.get("to_tag")
    assert message.max_forwards == expect.get("max_forwards")
    assert len(message.vias) == expect["via_count"]
    via = message.via
    assert via.branch == expect.get("top_via_branch")
    assert via.host == expect["top_via_host"]
    assert via.transport == expect["top_via_transport"]
    if "top_via_port" in expect:
        assert via.port == expect["top_via_port"]
    if "top_via_received" in expect:
        assert via.received == expect["top_via_received"]
    assert message.content_length == expect.get("content_length")
    assert len(message.body) == expect["body_length"]
    if "contact_count" in expect:
        assert len(message.contacts) == expect["contact_count"]
    assert len(message.headers) == expect["header_count"]
    # The URIs of From, To and Contact are read in full on first use.
    for name_addr in (message.from_, message.to, *message.contacts):
        assert name_addr.uri is not None


@pytest.mark.parametrize("case", _cases("valid"))
def test_valid_message_serializes_byte_for_byte(case: dict[str, Any]) -> None:
    data = (DATA / case["file"]).read_bytes()
    if _short_body(case, data):
        return
    # Octets past Content-Length are not part of the message (RFC 3261 §18.3).
    end = data.index(b"\r\n\r\n") + 4 + case["expect"]["body_length"]
    assert bytes(parse_message(data)) == data[:end]


@pytest.mark.parametrize("case", _cases("valid"))
def test_valid_message_survives_an_edit(case: dict[str, Any]) -> None:
    """Adding a Via changes the message by exactly that line."""
    data = (DATA / case["file"]).read_bytes()
    if _short_body(case, data):
        return
    message = parse_message(data)
    original = bytes(message)
    message.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKwedge")
    edited = bytes(message)
    assert len(edited) == len(original) + len(
        "Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKwedge\r\n"
    )
    reparsed = parse_message(edited)
    assert reparsed.via.branch == "z9hG4bKwedge"
    assert len(reparsed.vias) == len(message.vias)
    assert reparsed.body == message.body
