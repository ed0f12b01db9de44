"""gateway.sip.message: parsing, typed views, narrow edits, limits."""

from __future__ import annotations

import pytest

from gateway.sip import (
    Headers,
    ParseError,
    Request,
    Response,
    SipUri,
    make_cancel,
    make_response,
    parse_message,
    trying_bytes,
)
from gateway.sip.message import (
    _REMEMBERED_LONGEST,
    _REMEMBERED_MAX,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    MAX_VIAS,
    _Remembered,
)
from tests.helpers.messages import SDP, invite, response


def test_invite_parses_with_its_meaning() -> None:
    message = parse_message(invite())
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert message.uri == "sip:bob@biloxi.example.com"
    assert isinstance(message.ruri, SipUri)
    assert message.ruri.user == "bob"
    assert message.call_id == "3848276298220188511@192.0.2.10"
    assert (message.cseq.number, message.cseq.method) == (1, "INVITE")
    assert message.via.branch == "z9hG4bK74bf9"
    assert message.via.sent_by == ("192.0.2.10", 5060)
    assert message.via.has_param("rport") and message.via.rport is None
    assert message.from_.tag == "9fxced76sl"
    assert message.from_.display == "Alice"
    assert message.to.tag is None
    assert message.max_forwards == 70
    assert message.content_type is not None and message.content_type.mime == "application/sdp"
    assert message.content_length == len(SDP)
    assert message.body == SDP
    assert message.supported == ["replaces", "timer", "outbound", "path"]
    (contact,) = message.contacts
    assert isinstance(contact.uri, SipUri) and contact.uri.transport == "udp"
    assert contact.param("+sip.instance") == '"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'


def test_response_parses() -> None:
    message = parse_message(response(180, "Ringing"))
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (180, "Ringing")
    assert message.via.received == "192.0.2.10"
    assert message.via.rport == 5060
    assert message.to.tag == "8321234356"


def test_untouched_message_is_the_input() -> None:
    data = invite()
    message = parse_message(data)
    assert bytes(message) == data


def test_leading_crlfs_are_ignored() -> None:
    """RFC 3261 §7.5: CRLFs before the start line are not part of the message."""
    data = invite()
    assert bytes(parse_message(b"\r\n\r\n" + data)) == data


def test_edit_changes_only_the_edited_lines() -> None:
    data = invite()
    message = parse_message(data)
    message.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.w1")
    message.headers.prepend("Record-Route", "<sip:198.51.100.1;lr>")
    message.headers.set("Max-Forwards", "69")
    out = bytes(message)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    expected = [
        lines[0],
        b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.w1",
        lines[1],
        b"Max-Forwards: 69",
        *lines[3:],
    ]
    # Record-Route had no line yet, so it goes on top of the header block.
    expected.insert(1, b"Record-Route: <sip:198.51.100.1;lr>")
    assert out == b"\r\n".join(expected) + b"\r\n\r\n" + body
    reparsed = parse_message(out)
    assert [via.branch for via in reparsed.vias] == ["z9hG4bK.w1", "z9hG4bK74bf9"]
    assert reparsed.max_forwards == 69
    assert str(reparsed.record_routes[0]) == "<sip:198.51.100.1;lr>"


def test_typed_view_follows_an_edit() -> None:
    message = parse_message(invite())
    assert message.via.branch == "z9hG4bK74bf9"
    message.headers.prepend("Via", "SIP/2.0/TCP 198.51.100.1;branch=z9hG4bK.new")
    assert message.via.branch == "z9hG4bK.new"
    assert len(message.vias) == 2
    popped = message.headers.pop_first_value("Via")
    assert popped == "SIP/2.0/TCP 198.51.100.1;branch=z9hG4bK.new"
    assert message.via.branch == "z9hG4bK74bf9"


def test_pop_first_value_keeps_the_rest_of_a_shared_line() -> None:
    data = response().replace(
        b"Via: SIP/2.0/UDP",
        b"Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK.ours, SIP/2.0/UDP",
    )
    message = parse_message(data)
    assert len(message.vias) == 2
    assert message.headers.pop_first_value("v") == "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK.ours"
    out = bytes(message)
    assert b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9" in out
    assert parse_message(out).via.branch == "z9hG4bK74bf9"


def test_replace_first_value_sets_received_and_rport() -> None:
    message = parse_message(invite())
    via = message.via.with_param("received", "203.0.113.7").with_param("rport", "40000")
    message.headers.replace_first_value("Via", str(via))
    again = parse_message(bytes(message))
    assert again.via.received == "203.0.113.7"
    assert again.via.rport == 40000
    # rport was present as a flag, so it is filled in where it stood.
    assert str(again.via).endswith(";rport=40000;received=203.0.113.7")


def test_new_body_updates_content_length() -> None:
    message = parse_message(invite())
    message.body = b"v=0\r\n"
    again = parse_message(bytes(message))
    assert again.content_length == 5
    assert again.body == b"v=0\r\n"


def test_compact_forms_and_case_are_the_same_header() -> None:
    data = (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"f: <sip:b@example.com>;tag=1\r\n"
        b"t: sip:a@example.com\r\n"
        b"i: abc\r\n"
        b"CSEQ: 2 OPTIONS\r\n"
        b"k: path, outbound\r\n"
        b"l: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert message.headers.get("Call-ID") == "abc"
    assert message.headers.get("call-id") == message.headers.get("I") == "abc"
    assert message.cseq.number == 2
    assert message.supported == ["path", "outbound"]
    assert "Supported" in message.headers and "X-Unknown" not in message.headers
    assert bytes(message) == data


def test_contact_star() -> None:
    data = (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
        b"Call-ID: r1\r\nCSeq: 3 REGISTER\r\nContact: *\r\nExpires: 0\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert message.is_star_contact
    assert message.contacts == []
    with pytest.raises(ParseError, match="Contact"):
        parse_message(data.replace(b"Contact: *", b"Contact: *, <sip:a@192.0.2.1>"))


def test_route_must_be_a_name_addr() -> None:
    base = invite(extra="Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n")
    assert [str(route.uri) for route in parse_message(base).routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    with pytest.raises(ParseError, match="Route"):
        parse_message(invite(extra="Route: sip:p1.example.com\r\n"))


def test_a_value_accepted_by_one_grammar_is_not_taken_by_a_stricter_one() -> None:
    # A bare addr-spec is a good From (and is remembered as one), never a Route entry.
    bare = "sip:p1.example.com"
    from_line = b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl'
    assert from_line in invite()
    parse_message(invite().replace(from_line, f"From: {bare};tag=1".encode()))
    with pytest.raises(ParseError, match="Route"):
        parse_message(invite(extra=f"Route: {bare}\r\n"))


def test_accepted_values_are_checked_once_and_the_memory_is_bounded() -> None:
    checked: list[str] = []

    def check(value: str) -> bool:
        checked.append(value)
        return value.startswith("ok")

    accepted = _Remembered(check)
    assert accepted("ok-1") and accepted("ok-1")
    assert not accepted("bad") and not accepted("bad")
    assert checked == ["ok-1", "bad", "bad"]  # refusals are never remembered
    long = "ok" + "x" * _REMEMBERED_LONGEST
    assert accepted(long) and accepted(long)
    assert checked.count(long) == 2  # too long to keep
    for n in range(_REMEMBERED_MAX):
        accepted(f"ok{n}")
    assert accepted("ok-1")
    assert checked.count("ok-1") == 2  # the full set was emptied, and it came back


def test_a_repeated_via_line_is_parsed_once_and_still_counted() -> None:
    first = parse_message(invite(branch="z9hG4bKmemo1"))
    again = parse_message(invite(branch="z9hG4bKmemo1", cseq=2))
    # The same line: one parse, shared (a Via is never edited, only replaced).
    assert again.via is first.via
    assert again.via.branch == "z9hG4bKmemo1"
    line = "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKmemo1;rport\r\n"
    with pytest.raises(ParseError, match="too many Via") as caught:
        parse_message(invite(branch="z9hG4bKmemo1", extra=line * 70))
    assert caught.value.status == 513


def test_a_refused_via_line_is_refused_every_time() -> None:
    bad = invite().replace(b"192.0.2.10:5060;branch", b"192.0.2.10:99999;branch")
    for _ in range(2):
        with pytest.raises(ParseError, match="Via port out of range"):
            parse_message(bad)


@pytest.mark.parametrize(
    ("change", "reason", "status"),
    [
        ((b"SIP/2.0\r\n", b"SIP/3.0\r\n"), "version", 505),
        ((b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), "CSeq method", 400),
        ((b"CSeq: 1 INVITE", b"CSeq: 4294967296 INVITE"), "CSeq number", 400),
        ((b"Max-Forwards: 70", b"Max-Forwards: 256"), "Max-Forwards", 400),
        ((b"Max-Forwards: 70", b"Max-Forwards: seventy"), "Max-Forwards", 400),
        ((b"Call-ID: 3848276298220188511@192.0.2.10\r\n", b""), "missing Call-ID", 400),
        ((b"Via: SIP/2.0/UDP 192.0.2.10:5060", b"Via: SIP/2.0/UDP 192.0.2.10:99999"), "Via", 400),
        ((b"User-Agent: Wedge", b"User Agent: Wedge"), "header name", 400),
        ((b"User-Agent: Wedge test phone 1.0", b"User-Agent Wedge"), "colon", 400),
        ((b"Content-Type: application/sdp", b"Content-Type: sdp"), "Content-Type", 400),
        ((b"sip:bob@biloxi.example.com SIP", b"sip:bob@[::1 SIP"), "Request-URI", 400),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    change: tuple[bytes, bytes], reason: str, status: int
) -> None:
    data = invite().replace(*change)
    with pytest.raises(ParseError, match=reason) as caught:
        parse_message(data)
    assert caught.value.status == status


def test_bad_status_line() -> None:
    with pytest.raises(ParseError, match="status code"):
        parse_message(response().replace(b"200 OK", b"2000 OK"))
    with pytest.raises(ParseError, match="Status-Line"):
        parse_message(response().replace(b"SIP/2.0 200 OK", b"SIP/2.0  200"))


def test_body_shorter_than_content_length() -> None:
    with pytest.raises(ParseError, match="Content-Length larger"):
        parse_message(invite()[:-1])


def test_octets_past_content_length_are_not_the_message() -> None:
    data = invite()
    message = parse_message(data + b"garbage")
    assert bytes(message) == data


def test_datagram_without_content_length_takes_the_rest_as_body() -> None:
    """RFC 3261 §18.3: on UDP the body runs to the end of the datagram."""
    data = invite().replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"")
    assert parse_message(data).body == SDP


@pytest.mark.parametrize(
    ("data", "reason", "status"),
    [
        (b"", "empty line", 400),
        (b"INVITE sip:a@b SIP/2.0", "empty line", 400),
        (b"\x00\xff\x10garbage\r\n\r\n", "Request-Line", 400),
        (b" Via: x\r\n\r\n", "Request-Line", 400),
        (b"A" * (MAX_MESSAGE_SIZE + 1), "too large", 513),
    ],
)
def test_garbage(data: bytes, reason: str, status: int) -> None:
    with pytest.raises(ParseError, match=reason) as caught:
        parse_message(data)
    assert caught.value.status == status


def test_too_many_headers() -> None:
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(MAX_HEADERS))
    with pytest.raises(ParseError, match="too many header") as caught:
        parse_message(invite(extra=extra))
    assert caught.value.status == 513


def test_too_many_vias() -> None:
    extra = "Via: " + ", ".join(
        f"SIP/2.0/UDP 192.0.2.{i % 250}:5060;branch=z9hG4bK{i}" for i in range(MAX_VIAS)
    )
    with pytest.raises(ParseError, match="too many Via") as caught:
        parse_message(invite(extra=extra + "\r\n"))
    assert caught.value.status == 513


def test_folded_header_keeps_its_bytes_and_reads_unfolded() -> None:
    data = invite().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards:\r\n   70\r\n")
    message = parse_message(data)
    assert message.max_forwards == 70
    assert bytes(message) == data
    message.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK2")
    assert b"Max-Forwards:\r\n   70\r\n" in bytes(message)


def test_built_request_serializes() -> None:
    request = Request(
        "OPTIONS",
        "sip:pbx.example.com",
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.o1"),
                ("max-forwards", "70"),
                ("From", "<sip:wedge@198.51.100.1>;tag=a1"),
                ("To", "<sip:pbx.example.com>"),
                ("call-id", "o1@198.51.100.1"),
                ("CSeq", "1 OPTIONS"),
                ("Content-Length", "0"),
            ]
        ),
    )
    data = bytes(request)
    assert data.startswith(b"OPTIONS sip:pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP")
    assert b"\r\nMax-Forwards: 70\r\n" in data and b"\r\nCall-ID: o1@198.51.100.1\r\n" in data
    assert bytes(parse_message(data)) == data


def test_request_uri_can_be_rewritten() -> None:
    message = parse_message(invite())
    assert isinstance(message, Request)
    message.uri = "sip:bob@192.0.2.20:5060;transport=tcp"
    again = parse_message(bytes(message))
    assert isinstance(again, Request)
    assert isinstance(again.ruri, SipUri) and again.ruri.transport == "tcp"


def test_make_cancel_copies_what_rfc_3261_9_1_says() -> None:
    invite = parse_message(
        b"INVITE sip:bob@192.0.2.20 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-w1\r\n"
        b"Via: SIP/2.0/WSS a.invalid;branch=z9hG4bK2\r\n"
        b"Route: <sip:192.0.2.9;lr>\r\n"
        b"Max-Forwards: 68\r\n"
        b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
        b"Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:a@a.invalid>\r\n"
        b"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
    )
    assert isinstance(invite, Request)
    cancel = make_cancel(invite)
    assert (cancel.method, cancel.uri) == ("CANCEL", "sip:bob@192.0.2.20")
    assert [str(via) for via in cancel.vias] == ["SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-w1"]
    assert [r.uri_text for r in cancel.routes] == ["sip:192.0.2.9;lr"]
    assert (cancel.call_id, str(cancel.cseq), cancel.body) == ("c1", "7 CANCEL", b"")
    assert cancel.headers.get("to") == "<sip:bob@example.com>"
    assert "contact" not in cancel.headers


def test_a_100_trying_is_written_as_make_response_writes_it() -> None:
    # Two Via lines (one with two values), compact forms, a Timestamp to echo.
    data = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa, SIP/2.0/TCP h;branch=z9hG4bKb\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKc\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\nt: <sip:bob@example.com>\r\n"
        b"i: trying-1\r\nCSeq: 7 INVITE\r\nTimestamp: 54.0 0.2\r\nMax-Forwards: 70\r\n"
        b"l: 0\r\n\r\n"
    )
    request = parse_message(data)
    assert isinstance(request, Request)
    written = trying_bytes(request)
    assert written == bytes(make_response(request, 100))
    trying = parse_message(written)
    assert isinstance(trying, Response) and (trying.status, trying.reason) == (100, "Trying")
    assert [str(via) for via in trying.vias] == [str(via) for via in request.vias]
    assert trying.to.tag is None and trying.call_id == "trying-1"
    assert trying.headers.get("timestamp") == "54.0 0.2"
