"""Tests for gateway.sip.uri: RFC 3261 §19.1/§25.1, RFC 3966, RFC 4475, RFC 5118."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.errors import LocalProtocolError, ParseError
from gateway.sip.uri import (
    HEADER_SAFE,
    PARAM_SAFE,
    PASSWORD_SAFE,
    USER_SAFE,
    AbsoluteUri,
    SipUri,
    TelUri,
    escape,
    parse_uri,
    unescape,
)


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def tel(text: str) -> TelUri:
    uri = parse_uri(text)
    assert isinstance(uri, TelUri)
    return uri


# --- components and round trips ---------------------------------------------

# (text, scheme, user, password, host, port, params, headers)
COMPONENTS = [
    ("sip:alice@example.com", "sip", "alice", None, "example.com", None, (), ()),
    (
        "sip:alice@example.com;transport=udp",
        "sip",
        "alice",
        None,
        "example.com",
        None,
        (("transport", "udp"),),
        (),
    ),
    ("sip:example.com", "sip", None, None, "example.com", None, (), ()),
    ("sip:example.com.", "sip", None, None, "example.com.", None, (), ()),
    ("sip:localhost:0", "sip", None, None, "localhost", 0, (), ()),
    ("sip:h:65535", "sip", None, None, "h", 65535, (), ()),
    ("sip:h:05060", "sip", None, None, "h", 5060, (), ()),
    ("SIPS:Bob@Biloxi.COM:5061", "sips", "Bob", None, "Biloxi.COM", 5061, (), ()),
    ("sip:a:@h", "sip", "a", "", "h", None, (), ()),
    (
        "sip:*67#5551234@pbx.example.com",
        "sip",
        "*67#5551234",
        None,
        "pbx.example.com",
        None,
        (),
        (),
    ),
    ("sip:a-b.c-d.e--f:1", "sip", None, None, "a-b.c-d.e--f", 1, (), ()),
    ("sip:1a.example.com", "sip", None, None, "1a.example.com", None, (), ()),
    ("sip:1.2.3.4.example.com", "sip", None, None, "1.2.3.4.example.com", None, (), ()),
    (
        "sip:proxy.example.com;lr;r2=on;transport=TCP",
        "sip",
        None,
        None,
        "proxy.example.com",
        None,
        (("lr", None), ("r2", "on"), ("transport", "TCP")),
        (),
    ),
    (
        "sip:h;maddr=[2001:db8::1];x=a:b/c&d+e$",
        "sip",
        None,
        None,
        "h",
        None,
        (("maddr", "[2001:db8::1]"), ("x", "a:b/c&d+e$")),
        (),
    ),
    (
        "sip:h?a=&b=c?d&e=[f]/:+$",
        "sip",
        None,
        None,
        "h",
        None,
        (),
        (("a", ""), ("b", "c?d"), ("e", "[f]/:+$")),
    ),
    # RFC 3261 §19.1.3 examples
    (
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sip",
        "alice",
        "secretword",
        "atlanta.com",
        None,
        (("transport", "tcp"),),
        (),
    ),
    (
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sips",
        "alice",
        None,
        "atlanta.com",
        None,
        (),
        (("subject", "project%20x"), ("priority", "urgent")),
    ),
    (
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip",
        "+1-212-555-1212",
        "1234",
        "gateway.com",
        None,
        (("user", "phone"),),
        (),
    ),
    ("sips:1212@gateway.com", "sips", "1212", None, "gateway.com", None, (), ()),
    ("sip:alice@192.0.2.4", "sip", "alice", None, "192.0.2.4", None, (), ()),
    (
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip",
        None,
        None,
        "atlanta.com",
        None,
        (("method", "REGISTER"),),
        (("to", "alice%40atlanta.com"),),
    ),
    (
        "sip:alice;day=tuesday@atlanta.com",
        "sip",
        "alice;day=tuesday",
        None,
        "atlanta.com",
        None,
        (),
        (),
    ),
]


@pytest.mark.parametrize(
    ("text", "scheme", "user", "password", "host", "port", "params", "headers"), COMPONENTS
)
def test_components(
    text: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: tuple[tuple[str, str | None], ...],
    headers: tuple[tuple[str, str], ...],
) -> None:
    uri = sip(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert uri.params == params
    assert uri.headers == headers
    assert str(uri) == text
    assert repr(uri) == f"SipUri({text!r})"
    # The canonical rendering of the same components parses to an equal URI.
    rebuilt = uri.replace()
    assert rebuilt == uri
    assert hash(rebuilt) == hash(uri)
    assert parse_uri(str(rebuilt)) == uri


def test_canonical_rendering_lowercases_the_scheme_only() -> None:
    uri = sip("SIP:Alice@Example.COM;Transport=UDP?Subject=Hi")
    assert str(uri.replace()) == "sip:Alice@Example.COM;Transport=UDP?Subject=Hi"


def test_schemes_are_case_insensitive() -> None:
    assert sip("SiPs:a@b").scheme == "sips"
    assert tel("TEL:+1").number == "+1"
    uri = parse_uri("HTTP://www.example.com")
    assert isinstance(uri, AbsoluteUri)
    assert uri.scheme == "http"
    assert str(uri) == "HTTP://www.example.com"


# --- hosts and ports --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sip:[2001:db8::10]:5070",  # RFC 5118 §4.4
        "sip:[2001:db8::9:1]",
        "sip:user@[2001:db8::10]",  # RFC 5118 §4.1
        "sip:caller@[2001:db8::1]",
        "sip:ted@[::ffff:192.0.2.2]",  # RFC 5118 §4.9
        "sip:[::ffff:192.0.2.10]:19823",
        "sip:user@[2001:db8::192.0.2.1]",  # RFC 5118 §4.10, RFC 4291 form
        "sip:user@[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10, RFC 3261 ABNF form
        "sip:[::1]",
        "sip:[::]",
        "sip:[0:0:0:0:0:0:0:1]:1",
        "sip:[2001:DB8::A]",
        "sip:[::1];maddr=[::2]?x=[::3]",
    ],
)
def test_ipv6_references(text: str) -> None:
    uri = sip(text)
    assert str(uri) == text
    assert uri.host.startswith("[")


def test_rfc5118_port_inside_brackets_is_part_of_the_address() -> None:
    # RFC 5118 §4.3: well-formed, but the "port" is the last group of the address.
    uri = sip("sip:[2001:db8::10:5070]")
    assert uri.port is None
    assert uri.host == "[2001:db8::10:5070]"
    assert uri != sip("sip:[2001:db8::10]:5070")
    unambiguous = sip("sip:[2001:db8::10]:5070")
    assert (unambiguous.host, unambiguous.port) == ("[2001:db8::10]", 5070)
    assert unambiguous.host_port == "[2001:db8::10]:5070"
    assert sip("sip:[2001:db8::9:1]").port is None


@pytest.mark.parametrize(
    "text",
    [
        "sip:2001:db8::10",  # RFC 5118 §4.2: no brackets
        "sip:user@2001:db8::10",
        "sip:[2001:db8::10",
        "sip:2001:db8::10]",
        "sip:[2001:db8::10]]",
        "sip:[]",
        "sip:[2001:db8::g]",
        "sip:[1:2:3:4:5:6:7:8:9]",
        "sip:[2001:db8:::10]",  # three colons only tolerated before a dotted quad
        "sip:[2001:db8::::192.0.2.1]",
        "sip:[2001:db8::1%25eth0]",
        "sip:[2001:db8::1]:",
        "sip:[2001:db8::1]x",
    ],
)
def test_bad_ipv6(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@h",
        "sip:a@",
        "sip:h:",
        "sip:h:65536",
        "sip:h:123456",
        "sip:h:99999999999999999999999999999999999",
        "sip:h:-1",
        "sip:h:5060x",
        "sip:256.1.1.1",
        "sip:1.2.3.4.5",
        "sip:1.2.3",
        "sip:1234",
        "sip:-a.com",
        "sip:a-.com",
        "sip:a.-b.com",
        "sip:a_b.com",
        "sip:a..com",
        "sip:.com",
        "sip:example.123",
        "sip:h;",
        "sip:h;;lr",
        "sip:h;=a",
        "sip:h;a=",
        "sip:h;a=b=c",
        "sip:h?",
        "sip:h?a",
        "sip:h?=b",
        "sip:h?a=b&",
        "sip:h?a=b#c",
        "sip:a b@h",
        "sip:a@b@c",
        "sip:a:b:c@h",
        "sip:a[b]@h",
        "sip:a@h; lr",  # RFC 4475 §3.1.2.7 lwsruri
        " sip:a@h",
        "sip:a@h ",
        "sip:a@h\r\n",
        "<sip:user@example.com>",  # RFC 4475 §3.1.2.6 ltgtruri
        "sip:us%zzer@h",
        "sip:%Zuser@example.com",
        "sip:user%4@h",
        "sip:user@h;a=%",
        "sip:user@h?a=%4g",
        "sip:user@ex\u00e4mple.com",
        "sip:\udcff@h",
        "sip//h",
        "sip",
        "sips:",
    ],
)
def test_malformed_sip(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.status == 400
    assert info.value.reason.isascii() and info.value.reason.isprintable()


def test_port_range() -> None:
    assert sip("sip:h:0").port == 0
    assert sip("sip:h:65535").port == 65535
    with pytest.raises(ParseError, match="port"):
        parse_uri("sip:h:65536")


# --- RFC 4475 ---------------------------------------------------------------


def test_rfc4475_semiuri() -> None:
    # §3.1.1.10: the ";" belongs to the user part, there are no uri-parameters.
    uri = sip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert uri.params == ()
    assert unescape(uri.user) == "user;par=u@example.net"


def test_rfc4475_esc01() -> None:
    # §3.1.1.4: the user of the Request-URI is "sips:user@example.com".
    ruri = sip("sip:sips%3Auser%40example.com@example.net")
    assert ruri.scheme == "sip"
    assert ruri.user == "sips%3Auser%40example.com"
    assert unescape(ruri.user) == "sips:user@example.com"
    assert ruri.host == "example.net"
    assert sip("sip:%75se%72@example.com") == sip("sip:user@example.com")
    spaces = sip("sip:I%20have%20spaces@example.net")
    assert unescape(spaces.user or "") == "I have spaces"
    contact = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert contact.lr
    assert contact.param("name") == "v%61lue%25%34%31"
    assert unescape(contact.param("name") or "") == "value%41"
    assert contact == sip("sip:caller@host5.example.net;lr;name=value%2541")
    assert contact != sip("sip:caller@host5.example.net;lr;name=valueA")


def test_rfc4475_escnull() -> None:
    # §3.1.1.8: %00 is a legal escape.
    uri = sip("sip:null-%00-null@example.com")
    assert uri.user == "null-%00-null"
    assert unescape(uri.user) == "null-\x00-null"
    assert str(uri) == "sip:null-%00-null@example.com"


def test_rfc4475_intmeth_user_part() -> None:
    # §3.1.1.2: every legal user and password character.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    uri = sip(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert uri.params == () and uri.headers == ()
    assert str(uri) == text
    assert str(uri.replace()) == text


def test_rfc4475_escruri_has_a_header() -> None:
    # §3.1.2.9: a valid URI; the message is invalid because a Request-URI must
    # not carry headers, which is the message parser's business.
    uri = sip("sip:user@example.com?Route=%3Csip:example.com%3E")
    assert uri.headers == (("Route", "%3Csip:example.com%3E"),)
    assert unescape(uri.headers[0][1]) == "<sip:example.com>"


@pytest.mark.parametrize(
    "text",
    [
        "sip:vivekg@chair-dnrc.example.com;unknownparam",  # §3.1.1.1 wsinv
        "sip:j.user@example.com",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # §3.3.14 regescrt
        "sip:+19725552222@gw1.example.net;unknownparam",  # §3.3.12 cparam01
        "sip:amazinglylongcallername@host5.example.net",
        "sip:UserB@example.com",  # §3.4.1 inv2543
    ],
)
def test_rfc4475_valid_uris(text: str) -> None:
    assert str(parse_uri(text)) == text


@pytest.mark.parametrize(
    ("text", "scheme", "opaque"),
    [
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyknowsthisscheme",
            "totallyopaquecontent",
        ),
        (
            "nobodyknowsthisscheme:totallyopaque-content",
            "nobodyknowsthisscheme",
            "totallyopaque-content",
        ),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),  # §3.3.3
        ("isbn:2983792873", "isbn", "2983792873"),  # §3.3.4
        ("http://www.example.com", "http", "//www.example.com"),
        ("name:John_Smith", "name", "John_Smith"),
        ("im:alice@example.com", "im", "alice@example.com"),
        ("pres:alice@example.com", "pres", "alice@example.com"),
        ("mailto:a@b.c?subject=hi%20there", "mailto", "a@b.c?subject=hi%20there"),
        (
            "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "urn",
            "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
        ("http://[2001:db8::1]:8080/a;b/c?d=e", "http", "//[2001:db8::1]:8080/a;b/c?d=e"),
        ("x-a+b.c:/", "x-a+b.c", "/"),
    ],
)
def test_absolute_uris(text: str, scheme: str, opaque: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteUri)
    assert (uri.scheme, uri.opaque) == (scheme, opaque)
    assert str(uri) == text
    assert repr(uri) == f"AbsoluteUri({text!r})"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "foo",
        ":foo",
        "foo:",
        "1abc:foo",
        "-abc:foo",
        "foo:bar baz",
        "foo:<x>",
        "http://a#frag",
        'foo:"x"',
        "foo:a%",
        "foo:a%g0",
        "foo:\u00e9",
        "a\u00e9:b",
    ],
)
def test_not_a_uri(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_absolute_uri_comparison_and_constructor() -> None:
    a = parse_uri("IM:alice@example.com")
    assert a == parse_uri("im:alice@example.com")
    assert hash(a) == hash(parse_uri("im:alice@example.com"))
    assert a != parse_uri("im:Alice@example.com")
    built = AbsoluteUri.build("urn", "service:sos")
    assert str(built) == "urn:service:sos"
    assert built == parse_uri("URN:service:sos")
    with pytest.raises(LocalProtocolError):
        AbsoluteUri.build("sip", "alice@example.com")
    with pytest.raises(LocalProtocolError):
        AbsoluteUri.build("urn", "a b")
    with pytest.raises(LocalProtocolError):
        AbsoluteUri.build("urn:x", "y")


# --- RFC 3261 §19.1.4 comparison ----------------------------------------------

EQUAL_SETS = [
    ["sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"],
    [
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;newparam=5",
        "sip:carol@chicago.com;security=on",
    ],
    [
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ],
    [
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ],
]

NOT_EQUAL_PAIRS = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
]


@pytest.mark.parametrize("texts", EQUAL_SETS)
def test_rfc3261_equivalent_sets(texts: list[str]) -> None:
    uris = [parse_uri(text) for text in texts]
    for a in uris:
        for b in uris:
            assert a == b
            assert hash(a) == hash(b)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL_PAIRS)
def test_rfc3261_not_equivalent(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)
    assert parse_uri(b) != parse_uri(a)


def test_rfc3261_equality_is_not_transitive() -> None:
    plain = sip("sip:carol@chicago.com")
    on = sip("sip:carol@chicago.com;security=on")
    off = sip("sip:carol@chicago.com;security=off")
    assert plain == on
    assert plain == off
    assert on != off
    assert hash(on) == hash(off) == hash(plain)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("sip:a@h", "sips:a@h", False),
        ("sip:a@h", "sip:h", False),
        ("sip:a@h", "sip:a:@h", False),
        ("sip:a:x@h", "sip:a:X@h", False),
        ("sip:a:%78@h", "sip:a:x@h", True),
        ("sip:a@h", "sip:a@h;lr", True),
        ("sip:a@h;lr", "sip:a@h;lr=on", False),
        ("sip:a@h;ttl=1", "sip:a@h", False),
        ("sip:a@h;user=ip", "sip:a@h", False),
        ("sip:a@h;user=IP", "sip:a@h;USER=ip", True),
        ("sip:a@h;method=INVITE", "sip:a@h", False),
        # RFC 3261 §7.1: method names are case-sensitive.
        ("sip:a@h;method=INVITE", "sip:a@h;method=invite", False),
        ("sip:a@h;maddr=239.255.255.1", "sip:a@h", False),
        ("sip:a@h;maddr=Example.COM", "sip:a@h;maddr=example.com", True),
        ("sip:a@h;maddr=[2001:db8::1]", "sip:a@h;maddr=[2001:DB8:0::1]", True),
        ("sip:a@h;transport=tcp", "sip:a@h;transport=%74cp", True),
        ("sip:a@h;%74ransport=tcp", "sip:a@h;transport=tcp", True),
        ("sip:a@h;x=1;y=2", "sip:a@h;y=2;z=3", True),
        ("sip:a@h;x=1", "sip:a@h;x=2", False),
        ("sip:a@h;x=A", "sip:a@h;x=a", True),
        ("sip:a@h?x=1", "sip:a@h?X=1", True),
        ("sip:a@h?x=1", "sip:a@h?x=1&y=2", False),
        ("sip:a@h?x=1&x=2", "sip:a@h?x=2&x=1", True),
        # Escaped reserved characters are not their unescaped selves.
        ("sip:a%3Bb@h", "sip:a;b@h", False),
        ("sip:a%3bb@h", "sip:a%3Bb@h", True),
        ("sip:a%2541@h", "sip:a%41@h", False),
        ("sip:%41@h", "sip:A@h", True),
        ("sip:%41@h", "sip:a@h", False),
        # RFC 5954 §4: textual IP addresses compare as binary addresses.
        ("sip:[2001:db8::10]", "sip:[2001:DB8:0:0:0:0:0:10]", True),
        ("sip:[2001:db8::10]:5060", "sip:[2001:db8::10]", False),
        ("sip:[2001:db8:::192.0.2.1]", "sip:[2001:db8::192.0.2.1]", True),
        ("sip:[::ffff:192.0.2.1]", "sip:192.0.2.1", False),
        ("sip:192.0.2.01", "sip:192.0.2.1", True),
        ("sip:example.com.", "sip:example.com", False),
    ],
)
def test_comparison_rules(a: str, b: str, equal: bool) -> None:
    ua, ub = sip(a), sip(b)
    assert (ua == ub) is equal
    assert (ub == ua) is equal
    if equal:
        assert hash(ua) == hash(ub)


def test_uris_of_different_kinds_are_never_equal() -> None:
    assert parse_uri("sip:+1234@h;user=phone") != parse_uri("tel:+1234")
    assert parse_uri("tel:+1234") != parse_uri("x-tel:+1234")
    assert parse_uri("sip:a@h") != "sip:a@h"
    assert len({parse_uri("sip:a@h"), parse_uri("sip:A@h"), parse_uri("SIP:a@H")}) == 2


# --- parameters, helpers and derived URIs --------------------------------------


def test_param_helpers() -> None:
    uri = sip("sips:proxy.example.com:5061;Transport=TLS;lr;MADDR=192.0.2.1;user=Phone;x=1;x=2")
    assert uri.param("transport") == "TLS"
    assert uri.transport == "tls"
    assert uri.lr is True
    assert uri.has_param("LR") and uri.param("lr") is None
    assert uri.maddr == "192.0.2.1"
    assert uri.user_param == "phone"
    assert uri.param("x") == "1"  # the first of duplicates
    assert uri.param("missing") is None and not uri.has_param("missing")
    assert uri.host_port == "proxy.example.com:5061"
    assert uri.is_secure
    bare = sip("sip:h")
    assert bare.transport is None and not bare.lr and bare.maddr is None and bare.user_param is None
    assert bare.param("lr") is None and not bare.has_param("lr")
    assert bare.host_port == "h"
    assert not bare.is_secure


def test_with_param_and_without_param() -> None:
    original = sip("SIP:bob@Example.com;transport=UDP;lr;transport=x")
    changed = original.with_param("transport", "tcp")
    assert str(changed) == "sip:bob@Example.com;transport=tcp;lr"
    assert str(original) == "SIP:bob@Example.com;transport=UDP;lr;transport=x"
    assert (
        str(original.with_param("r2", "on"))
        == "sip:bob@Example.com;transport=UDP;lr;transport=x;r2=on"
    )
    assert str(original.with_param("ob")) == "sip:bob@Example.com;transport=UDP;lr;transport=x;ob"
    assert str(original.without_param("TRANSPORT")) == "sip:bob@Example.com;lr"
    assert original.without_param("nothing") is original
    assert changed.transport == "tcp"
    with pytest.raises(LocalProtocolError):
        original.with_param("a;b", "c")
    with pytest.raises(LocalProtocolError):
        original.with_param("ftag", "a=b")  # "=" must be escaped
    token = escape("abc+/=", PARAM_SAFE)
    assert token == "abc+/%3D"
    assert unescape(sip(str(original.with_param("ftag", token))).param("ftag") or "") == "abc+/="


def test_replace() -> None:
    uri = sip("sip:alice:pw@atlanta.com:5060;transport=udp?subject=x")
    assert (
        str(uri.replace(host="192.0.2.1", port=None))
        == "sip:alice:pw@192.0.2.1;transport=udp?subject=x"
    )
    assert str(uri.replace(user=None)) == "sip:atlanta.com:5060;transport=udp?subject=x"
    assert str(uri.replace(password=None)) == "sip:alice@atlanta.com:5060;transport=udp?subject=x"
    assert (
        str(uri.replace(scheme="SIPS", headers=()))
        == "sips:alice:pw@atlanta.com:5060;transport=udp"
    )
    assert str(uri.replace(params=[("lr", None)])) == "sip:alice:pw@atlanta.com:5060;lr?subject=x"
    # A bare IPv6 address gets its brackets (RFC 5118 §4.2).
    assert (
        str(uri.replace(host="2001:db8::1", user=None))
        == "sip:[2001:db8::1]:5060;transport=udp?subject=x"
    )
    for bad in (
        {"host": "evil.com;lr"},
        {"host": "a@b"},
        {"host": "[2001:db8::g]"},
        {"host": ""},
        {"user": "a@evil.com"},
        {"user": "a:b"},
        {"user": ""},
        {"password": "a@b"},
        {"port": 65536},
        {"port": -1},
        {"port": True},
        {"scheme": "tel"},
        {"params": [("a", "b;c")]},
        {"params": [("", None)]},
        {"headers": [("a", "b&c")]},
        {"headers": [("", "b")]},
    ):
        with pytest.raises(LocalProtocolError):
            uri.replace(**bad)
    with pytest.raises(LocalProtocolError):
        sip("sip:h").replace(password="x")


def test_constructor() -> None:
    rr = SipUri.build(
        "proxy.example.com", port=5061, params=[("transport", "tls"), ("lr", None), ("r2", "on")]
    )
    assert str(rr) == "sip:proxy.example.com:5061;transport=tls;lr;r2=on"
    assert rr == parse_uri("sip:proxy.example.com:5061;transport=tls;lr;r2=on")
    full = SipUri.build("h", scheme="SIPS", user="a%20b", password="", headers=[("x", "")])
    assert str(full) == "sips:a%20b:@h?x="
    assert str(SipUri.build("::1")) == "sip:[::1]"


# --- escaping ------------------------------------------------------------------


def test_unescape() -> None:
    assert unescape("alice") == "alice"
    assert unescape("%61lice") == "alice"
    assert unescape("%C3%A9t%C3%A9") == "\u00e9t\u00e9"
    assert unescape("%25%34%31") == "%41"
    assert unescape("%FF") == "\udcff"
    for bad in ("%", "a%", "%4", "%g1", "%%41"):
        with pytest.raises(ParseError):
            unescape(bad)


def test_escape() -> None:
    assert escape("alice", USER_SAFE) == "alice"
    assert escape("a b@c", USER_SAFE) == "a%20b%40c"
    assert escape("sips:user@example.com", USER_SAFE) == "sips%3Auser%40example.com"
    assert escape("\u00e9", USER_SAFE) == "%C3%A9"
    assert escape("100%", PASSWORD_SAFE) == "100%25"
    assert escape("a&b=c", HEADER_SAFE) == "a%26b%3Dc"
    assert escape("abc", "") == "%61%62%63"
    assert escape(unescape("%FF%00"), USER_SAFE) == "%FF%00"


# --- tel -----------------------------------------------------------------------


def test_tel_components() -> None:
    uri = tel("tel:+1-201-555-0123;ext=1234;isub=%41b:c;x-y=z;flag")
    assert uri.scheme == "tel"
    assert uri.number == "+1-201-555-0123"
    assert uri.is_global
    assert uri.digits == "+12015550123"
    assert uri.params == (("ext", "1234"), ("isub", "%41b:c"), ("x-y", "z"), ("flag", None))
    assert uri.param("EXT") == "1234"
    assert uri.param("flag") is None and uri.has_param("flag")
    assert uri.param("phone-context") is None
    assert str(uri) == "tel:+1-201-555-0123;ext=1234;isub=%41b:c;x-y=z;flag"
    assert repr(uri) == f"TelUri({str(uri)!r})"
    local = tel("tel:7042;phone-context=example.com")
    assert not local.is_global
    assert local.param("phone-context") == "example.com"
    assert tel("tel:*67#;phone-context=+1-201").number == "*67#"
    assert tel("tel:863-1234;phone-context=+1-914-555").param("phone-context") == "+1-914-555"


@pytest.mark.parametrize(
    "text",
    [
        "tel:",
        "tel:+",
        "tel:+-",
        "tel:+1 234",
        "tel:7042",  # RFC 3966 §5.1.5: local numbers need phone-context
        "tel:7042;ext=1",
        "tel:+1;ext=abc",
        "tel:+1;ext=",
        "tel:+1;phone-context=",
        "tel:+1;phone-context=-bad",
        "tel:+1;isub=",
        "tel:+1;",
        "tel:+1;a_b=c",
        "tel:+1;a=b;",
        "tel:g123;phone-context=example.com",
        "tel:+1@example.com",
    ],
)
def test_bad_tel(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123", True),
        ("tel:+1-201-555-0123", "tel:+1(201)5550123", True),
        ("tel:+12015550123", "tel:12015550123;phone-context=+1", False),
        ("tel:+1-201-555-0123", "tel:+1-201-555-0124", False),
        ("tel:7042;phone-context=example.com", "tel:7042;phone-context=EXAMPLE.com", True),
        ("tel:7042;phone-context=+1-201", "tel:7042;phone-context=+1201", True),
        ("tel:7042;phone-context=a.com", "tel:7042;phone-context=b.com", False),
        ("tel:ABC;phone-context=a.com", "tel:abc;phone-context=a.com", True),
        ("tel:+1;ext=1-2;x=1", "tel:+1;X=1;EXT=12", True),
        ("tel:+1;x=1", "tel:+1", False),  # a parameter in one only never matches
        ("tel:+1;x=1", "tel:+1;x=2", False),
        ("tel:+1;x=A", "tel:+1;x=a", True),
        ("tel:+1;isub=%41", "tel:+1;isub=A", True),
    ],
)
def test_tel_comparison(a: str, b: str, equal: bool) -> None:
    ua, ub = tel(a), tel(b)
    assert (ua == ub) is equal
    assert (ub == ua) is equal
    if equal:
        assert hash(ua) == hash(ub)


def test_tel_constructor() -> None:
    uri = TelUri.build("+1-201-555-0123", [("ext", "22")])
    assert str(uri) == "tel:+1-201-555-0123;ext=22"
    assert uri == parse_uri("tel:+12015550123;ext=22")
    with pytest.raises(LocalProtocolError):
        TelUri.build("1234")
    with pytest.raises(LocalProtocolError):
        TelUri.build("+1;ext=2")
    with pytest.raises(LocalProtocolError):
        TelUri.build("+1", [("a", "b;c=d")])


# --- properties -------------------------------------------------------------------

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_MARK = "-_.!~*'()"


def _escaped(chars: str, min_size: int) -> st.SearchStrategy[list[str]]:
    """Tokens (characters or %HH escapes) of a component."""
    escape_token = st.tuples(st.integers(0, 255), st.booleans()).map(
        lambda t: f"%{t[0]:02X}" if t[1] else f"%{t[0]:02x}"
    )
    return st.lists(st.one_of(st.sampled_from(chars), escape_token), min_size=min_size, max_size=8)


_label = st.from_regex(r"[A-Za-z0-9]{1,4}(?:-{1,2}[A-Za-z0-9]{1,3}){0,2}", fullmatch=True)
_toplabel = st.from_regex(
    r"[A-Za-z][A-Za-z0-9]{0,3}(?:-{1,2}[A-Za-z0-9]{1,3}){0,2}", fullmatch=True
)
_hostname = st.builds(
    lambda labels, top, dot: "".join(f"{label}." for label in labels) + top + dot,
    st.lists(_label, max_size=3),
    _toplabel,
    st.sampled_from(["", "."]),
)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).flatmap(
    lambda a: st.sampled_from([f"[{a}]", f"[{a.exploded}]", f"[{str(a).upper()}]"])
)
_host = st.one_of(_hostname, _ipv4, _ipv6)
_user_tokens = _escaped(_ALNUM + _MARK + "&=+$,;?/#", 1)
_password_tokens = _escaped(_ALNUM + _MARK + "&=+$,", 0)
_param_chars = _ALNUM + _MARK + "[]/:&+$"
_header_chars = _ALNUM + _MARK + "[]/?:+$"
_param = st.tuples(
    _escaped(_param_chars, 1).map("".join),
    st.one_of(st.none(), _escaped(_param_chars, 1).map("".join)),
)
_header = st.tuples(
    _escaped(_header_chars, 1).map("".join), _escaped(_header_chars, 0).map("".join)
)


@st.composite
def _sip_parts(draw: st.DrawFn) -> dict[str, object]:
    user_tokens = draw(st.one_of(st.none(), _user_tokens))
    return {
        "scheme": draw(st.sampled_from(["sip", "sips", "SIP", "Sips"])),
        "user_tokens": user_tokens,
        "password": None
        if user_tokens is None
        else draw(st.one_of(st.none(), _password_tokens.map("".join))),
        "host": draw(_host),
        "port": draw(st.one_of(st.none(), st.integers(0, 65535))),
        "params": draw(st.lists(_param, max_size=4)),
        "headers": draw(st.lists(_header, max_size=3)),
    }


def _render(parts: dict[str, object], user: str | None = None) -> str:
    text = f"{parts['scheme']}:"
    tokens = parts["user_tokens"]
    if tokens is not None:
        assert isinstance(tokens, list)
        text += user if user is not None else "".join(tokens)
        if parts["password"] is not None:
            text += f":{parts['password']}"
        text += "@"
    text += str(parts["host"])
    if parts["port"] is not None:
        text += f":{parts['port']}"
    params = parts["params"]
    assert isinstance(params, list)
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
    headers = parts["headers"]
    assert isinstance(headers, list)
    if headers:
        text += "?" + "&".join(f"{n}={v}" for n, v in headers)
    return text


@given(_sip_parts())
def test_generated_sip_uris_round_trip(parts: dict[str, object]) -> None:
    text = _render(parts)
    uri = sip(text)
    assert str(uri) == text
    tokens = parts["user_tokens"]
    assert uri.user == (None if tokens is None else "".join(tokens))  # type: ignore[arg-type]
    assert uri.password == parts["password"]
    assert uri.host == parts["host"]
    assert uri.port == parts["port"]
    assert list(uri.params) == parts["params"]
    assert list(uri.headers) == parts["headers"]
    # Canonical rendering reproduces the text up to the scheme's case.
    canonical = str(uri.replace())
    assert canonical == str(parts["scheme"]).lower() + text[len(str(parts["scheme"])) :]
    assert parse_uri(canonical) == uri
    assert hash(parse_uri(canonical)) == hash(uri)


@given(_sip_parts(), st.randoms(use_true_random=False))
def test_equivalent_spellings_are_equal_and_hash_alike(
    parts: dict[str, object], rnd: random.Random
) -> None:
    params = parts["params"]
    assert isinstance(params, list)
    # Unique names so that reordering cannot change which duplicate counts.
    seen: set[str] = set()
    unique = []
    for name, value in params:
        key = unescape(name).lower()
        if key not in seen:
            seen.add(key)
            unique.append((name, value))
    parts["params"] = unique
    text = _render(parts)
    tokens = parts["user_tokens"]
    variant_user = None
    if isinstance(tokens, list):
        # Escape the letters: they are unreserved, so the escape is equivalent.
        variant_user = "".join(
            f"%{ord(t):02X}" if len(t) == 1 and t.isalpha() and rnd.random() < 0.5 else t
            for t in tokens
        )
    shuffled = list(unique)
    rnd.shuffle(shuffled)
    variant_parts = dict(parts)
    variant_parts["scheme"] = str(parts["scheme"]).swapcase()
    variant_parts["host"] = str(parts["host"]).swapcase()
    variant_parts["params"] = [(n.swapcase(), v) for n, v in shuffled]
    headers = parts["headers"]
    assert isinstance(headers, list)
    variant_parts["headers"] = list(reversed([(n.upper(), v) for n, v in headers]))
    variant = _render(variant_parts, user=variant_user)
    a, b = sip(text), sip(variant)
    assert a == b
    assert hash(a) == hash(b)


_URI_ALPHABET = st.sampled_from(
    [*"sipSIPtel:+@;?&=%[]./-_!~*'()#$,09aAfF\"<> \t", "\u00e9", "\udcff"]
)


@given(
    st.one_of(st.text(), st.text(_URI_ALPHABET), st.text(_URI_ALPHABET).map(lambda t: "sip:" + t))
)
def test_arbitrary_text_is_a_uri_or_a_parse_error(text: str) -> None:
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        assert exc.status == 400
        assert exc.reason.isascii() and exc.reason.isprintable()
        return
    assert isinstance(uri, (SipUri, TelUri, AbsoluteUri))
    assert str(uri) == text
    assert uri == uri and hash(uri) == hash(uri)
    if isinstance(uri, SipUri):
        assert parse_uri(str(uri.replace())) == uri


@given(st.ip_addresses(v=6))
def test_every_ipv6_address_is_a_host(address: ipaddress.IPv6Address) -> None:
    uri = sip(f"sip:[{address}]:5060")
    assert uri == sip(f"sip:[{address.exploded}]:5060")
    with pytest.raises(ParseError):
        parse_uri(f"sip:{address}")
