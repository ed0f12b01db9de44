"""SIP, SIPS and tel URIs, and any other absoluteURI (RFC 3261 §19.1, §25.1; RFC 3966).

:func:`parse_uri` turns the text of a Request-URI or of the URI inside a
name-addr/addr-spec into one of three immutable values:

- :class:`SipUri` for ``sip:`` and ``sips:`` (RFC 3261 §19.1),
- :class:`TelUri` for ``tel:`` (RFC 3966),
- :class:`AbsoluteUri` for every other scheme. RFC 3261 §25.1 allows any
  ``absoluteURI`` in a Request-URI and in a name-addr, and §8.2.2.1 wants such a
  request answered with 416, which needs the message to parse first (RFC 4475
  §3.3.2-§3.3.4).

Text that is none of these raises :class:`~gateway.sip.errors.ParseError`.

Theory of operation:

- **One pass.** A SIP URI is matched by a single compiled expression built from
  the ABNF below, rule by rule. The groups are the raw (still escaped) components;
  nothing is decoded or split at parse time except the port. Parameters and
  headers are split on first use, comparison keys are built on first comparison.
- **Round trip.** Every value keeps the text it was parsed from, and ``str()``
  returns exactly that text. A value made by :meth:`SipUri.replace`,
  :meth:`SipUri.with_param` and friends is rendered canonically instead:
  ``scheme:user:password@host:port;params?headers`` with the lower-case scheme and
  the other components as given.
- **Raw components.** ``user``, ``password``, parameter and header values are kept
  as written, escapes included, because unescaping loses information (``%3B`` and
  ``;`` differ in a user part). Use :func:`unescape` to decode one, and
  :func:`escape` with one of the ``*_SAFE`` sets to build one.
- **Comparison** follows RFC 3261 §19.1.4 for SIP (see :meth:`SipUri.__eq__`) and
  RFC 3966 §4 for tel. SIP URI equality is not transitive (the RFC says so), so
  :func:`hash` covers only the components that must always match.

Deliberate decisions, each explained where it is made:

- ``#`` is accepted unescaped in a SIP user part (RFC 3261 ``userinfo`` allows a
  ``telephone-subscriber``, whose RFC 2806 ``dtmf-digit`` includes ``#``).
- The RFC 3261 ABNF's three-colon IPv6 form ``[2001:db8:::192.0.2.1]`` is
  tolerated as RFC 5118 §4.10 asks; every other IPv6 reference must be an
  RFC 4291 address.
- IPv4 octets above 255 are rejected (RFC 3986 §3.2.2 ``dec-octet``; RFC 3261's
  ``1*3DIGIT`` is looser than any address), leading zeros are allowed.
- A tel URI with a local number must carry ``phone-context`` (RFC 3966 §5.1.5).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import unquote as _unquote

from gateway.sip.errors import LocalProtocolError, ParseError

__all__ = [
    "HEADER_SAFE",
    "PARAM_SAFE",
    "PASSWORD_SAFE",
    "USER_SAFE",
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "escape",
    "parse_uri",
    "unescape",
]

# ---------------------------------------------------------------------------
# Grammar: RFC 3261 §25.1 (and RFC 3966 §3 for tel), rule by rule.
#
# Character sets are written as the inside of a regex character class so rules
# can be combined; "%" escapes are never part of a set, they are added by
# _escaped_run() below.
# ---------------------------------------------------------------------------

# alphanum = ALPHA / DIGIT
_ALPHANUM = "A-Za-z0-9"
# mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
_MARK = r"\-_.!~*'()"
# unreserved = alphanum / mark
_UNRESERVED = _ALPHANUM + _MARK
# reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
_RESERVED_CHARS = ";/?:@&=+$,"
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
_USER_UNRESERVED = "&=+$,;?/"
# user = 1*( unreserved / escaped / user-unreserved )
# ... plus "#": userinfo = ( user / telephone-subscriber ) [ ":" password ] "@",
# and RFC 2806's telephone-subscriber has dtmf-digit = "*" / "#" / "A" / ... so a
# dialled "*67#" is legal unescaped there. Nothing else of RFC 2806 falls outside
# the user set except quoted future-extensions, which nobody sends.
_USER_CHARS = _UNRESERVED + _USER_UNRESERVED + "#"
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_CHARS = _UNRESERVED + "&=+$,"
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
# paramchar = param-unreserved / unreserved / escaped
_PARAM_CHARS = r"\[\]/:&+$" + _UNRESERVED
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
# hname = 1*( hnv-unreserved / unreserved / escaped )
# hvalue = *( hnv-unreserved / unreserved / escaped )
_HEADER_CHARS = r"\[\]/?:+$" + _UNRESERVED
# uric = reserved / unreserved / escaped, with "[" and "]" added to reserved by
# RFC 2732 §3 (IPv6 literals in URLs), which RFC 3261 relies on.
_URIC_CHARS = _RESERVED_CHARS + r"\[\]" + _UNRESERVED

# escaped = "%" HEXDIG HEXDIG
_ESCAPED = "%[0-9A-Fa-f]{2}"


def _escaped_run(chars: str, *, at_least_one: bool) -> str:
    """``*( chars / escaped )``, or ``1*( ... )`` with *at_least_one*.

    Written as an unrolled loop (a run of plain characters, then any number of
    escape-plus-run) so the regex engine scans plain text in one step instead of
    trying an alternation at every character. The quantifiers are possessive
    (Python 3.11): wherever a run is used, the next character is a delimiter
    that is not in *chars*, so giving characters back can never help a match,
    and not trying halves the time of a failing ``userinfo`` attempt.
    """
    body = f"[{chars}]*+(?:{_ESCAPED}[{chars}]*+)*+"
    if at_least_one:
        # The lookahead makes the run non-empty; a lone "%" that is not an escape
        # passes it but then matches nothing, so the surrounding rule fails.
        return f"(?=[{chars}%]){body}"
    return body


_USER = _escaped_run(_USER_CHARS, at_least_one=True)
_PASSWORD = _escaped_run(_PASSWORD_CHARS, at_least_one=False)

# dec-octet, RFC 3986 §3.2.2, but with RFC 3261's leading zeros ("1*3DIGIT")
_DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})"
# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
# IPv6reference = "[" IPv6address "]"; the address itself is checked with the
# ipaddress module (RFC 5954 §3 replaced RFC 3261's IPv6address with RFC 3986's,
# which is what ipaddress implements).
_IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]+\]"
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# i.e. alphanumerics with inner hyphens; atomic, so that when the last label of
# a name fails to be followed by "." it is not re-tried shorter.
_DOMAINLABEL = "(?>[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*)"
# toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
_TOPLABEL = "[A-Za-z][A-Za-z0-9]*(?:-+[A-Za-z0-9]+)*"
# hostname = *( domainlabel "." ) toplabel [ "." ]
_HOSTNAME = rf"(?:{_DOMAINLABEL}\.)*{_TOPLABEL}\.?"
# host = hostname / IPv4address / IPv6reference
# (IPv4 first: "192.0.2.4" is not a hostname, as a toplabel starts with ALPHA.)
_HOST = rf"(?:{_IPV4}|{_IPV6_REFERENCE}|{_HOSTNAME})"
# port = 1*DIGIT
_PORT = "[0-9]+"

# pname = 1*paramchar ; pvalue = 1*paramchar
_PNAME = _escaped_run(_PARAM_CHARS, at_least_one=True)
_PVALUE = _PNAME
# uri-parameters = *( ";" uri-parameter)
# uri-parameter = transport-param / user-param / method-param / ttl-param /
#                 maddr-param / lr-param / other-param
# other-param = pname [ "=" pvalue ]
# Every specific uri-parameter is also an other-param, so only the general rule
# is checked; the specific ones are interpreted on use.
_URI_PARAMETERS = rf"(?:;{_PNAME}(?:={_PVALUE})?)*"
# header = hname "=" hvalue
_HNAME = _escaped_run(_HEADER_CHARS, at_least_one=True)
_HVALUE = _escaped_run(_HEADER_CHARS, at_least_one=False)
_HEADER = f"{_HNAME}={_HVALUE}"
# headers = "?" header *( "&" header )   (the "?" is outside the group)
_HEADERS = f"{_HEADER}(?:&{_HEADER})*"

# SIP-URI  = "sip:"  [ userinfo ] hostport uri-parameters [ headers ]
# SIPS-URI = "sips:" [ userinfo ] hostport uri-parameters [ headers ]
# userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
# hostport = host [ ":" port ]
# Schemes are case-insensitive (RFC 3261 §19.1.4, RFC 3986 §3.1).
# No unescaped "@" can follow the userinfo, so the optional group cannot steal
# part of the host, parameters or headers.
_SIP_URI = re.compile(
    rf"((?i:sips?)):(?:({_USER})(?::({_PASSWORD}))?@)?({_HOST})(?::({_PORT}))?"
    rf"({_URI_PARAMETERS})(?:\?({_HEADERS}))?"
)

_USER_RE = re.compile(_USER)
_PASSWORD_RE = re.compile(_PASSWORD)
_HOST_RE = re.compile(_HOST)
_IPV4_RE = re.compile(_IPV4)
_PNAME_RE = re.compile(_PNAME)
_HNAME_RE = re.compile(_HNAME)
_HVALUE_RE = re.compile(_HVALUE)

# --- RFC 3966 §3, tel ------------------------------------------------------
# visual-separator = "-" / "." / "(" / ")"
_VISUAL = r"\-.()"
# phonedigit = DIGIT / [ visual-separator ]
_PHONEDIGIT = f"[0-9{_VISUAL}]"
# phonedigit-hex = HEXDIG / "*" / "#" / [ visual-separator ]
_PHONEDIGIT_HEX = f"[0-9A-Fa-f*#{_VISUAL}]"
# global-number-digits = "+" *phonedigit DIGIT *phonedigit
_GLOBAL_DIGITS = rf"\+{_PHONEDIGIT}*[0-9]{_PHONEDIGIT}*"
# local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
_LOCAL_DIGITS = f"{_PHONEDIGIT_HEX}*[0-9A-Fa-f*#]{_PHONEDIGIT_HEX}*"
# RFC 3966 pname = 1*( alphanum / "-" )
_TEL_PNAME = "[A-Za-z0-9-]+"
# RFC 3966 pvalue = 1*paramchar (paramchar as in RFC 3261, escapes are pct-encoded)
_TEL_PVALUE = _PVALUE
# isdn-subaddress = ";isub=" 1*uric
# uric includes ";", which would swallow every later parameter; like every
# implementation we end the value at the next ";".
_ISUB = _escaped_run(_URIC_CHARS.replace(";", ""), at_least_one=True)
# extension = ";ext=" 1*phonedigit
# context = ";phone-context=" descriptor ; descriptor = domainname / global-number-digits
# (domainname has the same ABNF as RFC 3261 hostname)
# parameter = ";" pname ["=" pvalue ]
# Parameter names are case-insensitive (RFC 3966 §4: "URI comparisons are
# case-insensitive"). The general rule must not accept the three named ones
# with a value their own rule rejects, hence the negative lookahead.
_TEL_PAR = (
    rf";(?:(?i:isub)={_ISUB}|(?i:ext)={_PHONEDIGIT}+"
    rf"|(?i:phone-context)=(?:{_HOSTNAME}|{_GLOBAL_DIGITS})"
    rf"|(?!(?i:isub|ext|phone-context)(?:[=;]|\Z)){_TEL_PNAME}(?:={_TEL_PVALUE})?)"
)
# telephone-uri = "tel:" telephone-subscriber
# telephone-subscriber = global-number / local-number
# global-number = global-number-digits *par
# local-number = local-number-digits *par context *par
_TEL_URI = re.compile(rf"(?i:tel):({_GLOBAL_DIGITS}|{_LOCAL_DIGITS})((?:{_TEL_PAR})*)")

# --- RFC 3261 §25.1 absoluteURI ---------------------------------------------
# absoluteURI   = scheme ":" ( hier-part / opaque-part )
# hier-part     = ( net-path / abs-path ) [ "?" query ]
# opaque-part   = uric-no-slash *uric
# scheme        = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
# Every string of uric that starts with "/" is an abs-path [ "?" query ] (a
# segment may be empty and holds every uric but "/" and "?", which the path and
# query rules supply), and every one that does not is an opaque-part, so the
# rule is exactly: scheme ":" 1*uric.
_SCHEME = "[A-Za-z][A-Za-z0-9+.-]*"
_ABSOLUTE_URI = re.compile(rf"({_SCHEME}):({_escaped_run(_URIC_CHARS, at_least_one=True)})")

# A bad "%" sequence, for unescape(): in a URI "%" is always an escape.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE_RE = re.compile("%([0-9A-Fa-f]{2})")
_VISUAL_RE = re.compile(f"[{_VISUAL}]")
# RFC 5118 §4.10: RFC 3261's IPv6address (inherited from RFC 2373) derives
# "hexseq :: : IPv4address", three colons before a dotted quad, and "an
# implementation must tolerate both" that and the RFC 4291 form. Only that
# position is rewritten.
_THREE_COLONS = re.compile(r":::(?=[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\Z)")

# ---------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------

_UNRESERVED_SET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()"
#: Characters :func:`escape` may leave alone in a user part (RFC 3261 ``user``).
USER_SAFE = _UNRESERVED_SET + _USER_UNRESERVED
#: ... in a password (RFC 3261 ``password``).
PASSWORD_SAFE = _UNRESERVED_SET + "&=+$,"
#: ... in a parameter name or value (RFC 3261 ``paramchar``).
PARAM_SAFE = _UNRESERVED_SET + "[]/:&+$"
#: ... in a header name or value (RFC 3261 ``hname`` / ``hvalue``).
HEADER_SAFE = _UNRESERVED_SET + "[]/?:+$"


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes (RFC 3261 §25.1 ``escaped``).

    The octets are read as UTF-8 (RFC 3261 §7.3.1); octets that are not UTF-8
    come back as lone surrogates (``surrogateescape``), so ``escape`` can restore
    them. In a URI "%" always starts an escape, so a "%" not followed by two hex
    digits is a :class:`ParseError`. (RFC 4475 §3.1.1.5 "esc02": a "%" in a
    method token is not an escape; this function is not for tokens.)
    """
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text) is not None:
        raise ParseError("bad escape in URI")
    return _unquote(text, encoding="utf-8", errors="surrogateescape")


@functools.lru_cache(maxsize=64)
def _safe_set(allowed: str) -> frozenset[str]:
    return frozenset(allowed)


def escape(text: str, allowed: str) -> str:
    """Percent-encode every character of *text* that is not in *allowed*.

    *allowed* is the complete set kept as is, normally one of :data:`USER_SAFE`,
    :data:`PASSWORD_SAFE`, :data:`PARAM_SAFE` or :data:`HEADER_SAFE`. Characters
    are encoded as UTF-8 with upper-case hex digits (RFC 3986 §2.1); lone
    surrogates from :func:`unescape` become the octets they stood for.
    """
    safe = _safe_set(allowed)
    if all(char in safe for char in text):
        return text
    out: list[str] = []
    for char in text:
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{octet:02X}" for octet in char.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _norm_escape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    char = chr(code)
    # RFC 3261 §19.1.4: "Characters other than those in the 'reserved' set (see
    # RFC 2396) are equivalent to their '"%" HEX HEX' encoding." A reserved
    # character keeps its escape (";" and "%3B" differ); so does "%" itself, so
    # that "%2541" (the text "%41") cannot collide with "%41" ("A"); so do
    # non-ASCII octets, which are never legal unescaped.
    if code < 0x80 and char != "%" and char not in _RESERVED_CHARS:
        return char
    return "%" + match.group(1).upper()


def _norm(text: str) -> str:
    """The comparison form of an escaped component (case kept)."""
    if "%" not in text:
        return text
    return _ESCAPE_RE.sub(_norm_escape, text)


def _norm_lower(text: str | None) -> str | None:
    return None if text is None else _norm(text).lower()


# ---------------------------------------------------------------------------
# Hosts
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    """The address inside an IPv6 reference, or None if it is not one.

    Cached: a proxy sees the same few IPv6 peers over and over, and
    ``ipaddress`` is the slow part of parsing such a URI.
    """
    if ":::" in text:
        text = _THREE_COLONS.sub("::", text, count=1)
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _host_key(host: str) -> str:
    """The comparison form of a host (or of an maddr value, which may be anything).

    RFC 3261 §19.1.4 compares hosts case-insensitively; RFC 5954 §4 adds that
    textual IP addresses match when they are the same binary address, so
    ``[2001:db8::1]`` equals ``[2001:DB8:0::1]`` and ``192.0.2.01`` equals
    ``192.0.2.1``. A name never equals an address, even one it resolves to.
    """
    if host.startswith("[") and host.endswith("]"):
        address = _ipv6(host[1:-1])
        if address is not None:
            return f"[{address.compressed}]"
    elif _IPV4_RE.fullmatch(host) is not None:
        return ".".join(str(int(octet)) for octet in host.split("."))
    return host.lower()


def _check_host(host: str) -> str:
    """Validate a host given by our own code; bare IPv6 addresses get brackets."""
    if ":" in host and not host.startswith("["):
        # RFC 5118 §4.2: an IPv6 address in a URI is always an IPv6reference.
        host = f"[{host}]"
    if _HOST_RE.fullmatch(host) is None or (host[0] == "[" and _ipv6(host[1:-1]) is None):
        raise LocalProtocolError(f"not a SIP URI host: {host!r}")
    return host


# ---------------------------------------------------------------------------
# SIP and SIPS
# ---------------------------------------------------------------------------


class _Missing(enum.Enum):
    MISSING = enum.auto()


_MISSING = _Missing.MISSING

Param = tuple[str, str | None]
Header = tuple[str, str]

# RFC 3261 §19.1.4: "A URI omitting any component with a default value will not
# match a URI explicitly containing that component with its default value ...
# The same is true for the transport-parameter, ttl-parameter, user-parameter,
# and method components", and "A URI that includes an maddr parameter will not
# match a URI that contains no maddr parameter." Other parameters are compared
# only when both URIs have them.
_MUST_MATCH = frozenset({"transport", "ttl", "user", "method", "maddr"})


def _split_params(raw: str) -> tuple[Param, ...]:
    # The grammar admits neither ";" nor "=" inside a pname or pvalue.
    out: list[Param] = []
    for item in raw[1:].split(";"):
        name, eq, value = item.partition("=")
        out.append((name, value if eq else None))
    return tuple(out)


def _render_params(params: Iterable[Param]) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _split_headers(raw: str) -> tuple[Header, ...]:
    out: list[Header] = []
    for item in raw.split("&"):
        name, _, value = item.partition("=")
        out.append((name, value))
    return tuple(out)


def _check_params(params: Iterable[Param]) -> tuple[Param, ...]:
    checked = tuple((name, value) for name, value in params)
    for name, value in checked:
        if _PNAME_RE.fullmatch(name) is None or (
            value is not None and _PNAME_RE.fullmatch(value) is None
        ):
            raise LocalProtocolError(f"not a SIP URI parameter: {name!r}={value!r}")
    return checked


def _check_headers(headers: Iterable[Header]) -> tuple[Header, ...]:
    checked = tuple((name, value) for name, value in headers)
    for name, value in checked:
        if _HNAME_RE.fullmatch(name) is None or _HVALUE_RE.fullmatch(value) is None:
            raise LocalProtocolError(f"not a SIP URI header: {name!r}={value!r}")
    return checked


class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1). Immutable.

    Components are kept as written: ``user``, ``password``, parameter values and
    header values still carry their ``%HH`` escapes, ``host`` keeps the brackets
    of an IPv6 reference. ``str()`` gives back the parsed text unchanged.

    Build one with :func:`parse_uri`, with :meth:`build` (components are
    validated and a :class:`LocalProtocolError` names a bad one), or from another
    with :meth:`replace`, :meth:`with_param` and :meth:`without_param`. The
    constructor itself takes components already checked, by the parser or by
    :meth:`build`, and checks nothing.
    """

    __slots__ = (
        "_cmp",
        "_headers",
        "_headers_raw",
        "_host",
        "_params",
        "_params_raw",
        "_password",
        "_port",
        "_scheme",
        "_text",
        "_user",
    )

    _cmp: tuple[tuple[object, ...], dict[str, str | None]] | None
    _headers: tuple[Header, ...] | None
    _headers_raw: str
    _host: str
    _params: tuple[Param, ...] | None
    _params_raw: str
    _password: str | None
    _port: int | None
    _scheme: str
    _text: str
    _user: str | None

    @classmethod
    def build(
        cls,
        host: str,
        *,
        scheme: str = "sip",
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: Iterable[Param] = (),
        headers: Iterable[Header] = (),
    ) -> SipUri:
        """A URI from its components, each checked against RFC 3261's grammar."""
        scheme = scheme.lower()
        if scheme not in ("sip", "sips"):
            raise LocalProtocolError(f"not a SIP URI scheme: {scheme!r}")
        if user is not None and _USER_RE.fullmatch(user) is None:
            raise LocalProtocolError(f"not a SIP URI user: {user!r}")
        if password is not None:
            if user is None:
                raise LocalProtocolError("a SIP URI password needs a user")
            if _PASSWORD_RE.fullmatch(password) is None:
                raise LocalProtocolError("not a SIP URI password")
        host = _check_host(host)
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
        ):
            raise LocalProtocolError(f"not a port: {port!r}")
        params_t = _check_params(params)
        headers_t = _check_headers(headers)
        return SipUri(
            scheme,
            user,
            password,
            host,
            port,
            _render_params(params_t),
            params_t,
            "&".join(f"{n}={v}" for n, v in headers_t),
            headers_t,
            None,
        )

    def __init__(
        self,
        scheme: str,
        user: str | None,
        password: str | None,
        host: str,
        port: int | None,
        params_raw: str,
        params: tuple[Param, ...] | None,
        headers_raw: str,
        headers: tuple[Header, ...] | None,
        text: str | None,
    ) -> None:
        """Components already checked: use :func:`parse_uri` or :meth:`build`.

        ``params`` and ``headers`` may be None (split from the raw text when first
        read); ``text`` None renders the URI canonically.
        """
        self._scheme = scheme
        self._user = user
        self._password = password
        self._host = host
        self._port = port
        self._params_raw = params_raw
        self._params = params
        self._headers_raw = headers_raw
        self._headers = headers
        self._cmp = None
        if text is None:
            # Canonical rendering: scheme:user:password@host:port;params?headers
            parts = [scheme, ":"]
            if user is not None:
                parts.append(user)
                if password is not None:
                    parts += (":", password)
                parts.append("@")
            parts.append(host)
            if port is not None:
                parts += (":", str(port))
            parts.append(params_raw)
            if headers_raw:
                parts += ("?", headers_raw)
            text = "".join(parts)
        self._text = text

    # --- components ------------------------------------------------------

    @property
    def scheme(self) -> str:
        """``"sip"`` or ``"sips"``, lower case whatever the text said."""
        return self._scheme

    @property
    def user(self) -> str | None:
        """The user part as written (escapes kept), None if absent."""
        return self._user

    @property
    def password(self) -> str | None:
        """The password as written; ``""`` for ``user:@host``, None if absent."""
        return self._password

    @property
    def host(self) -> str:
        """The host as written: a name, an IPv4 address or ``[IPv6]``."""
        return self._host

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def params(self) -> tuple[Param, ...]:
        """The uri-parameters in order, as (name, value) with None for a flag."""
        params = self._params
        if params is None:
            params = self._params = _split_params(self._params_raw) if self._params_raw else ()
        return params

    @property
    def headers(self) -> tuple[Header, ...]:
        """The ``?name=value&...`` headers in order, escapes kept."""
        headers = self._headers
        if headers is None:
            headers = self._headers = _split_headers(self._headers_raw) if self._headers_raw else ()
        return headers

    def param(self, name: str) -> str | None:
        """The value of the first parameter called *name* (case-insensitive).

        None both for an absent parameter and for a flag such as ``lr``; use
        :meth:`has_param` to tell them apart.
        """
        if not self._params_raw:
            return None
        key = name.lower()
        for pname, value in self.params:
            if pname.lower() == key or ("%" in pname and _norm(pname).lower() == key):
                return value
        return None

    def has_param(self, name: str) -> bool:
        if not self._params_raw:
            return False
        key = name.lower()
        return any(
            pname.lower() == key or ("%" in pname and _norm(pname).lower() == key)
            for pname, _ in self.params
        )

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower case (RFC 3261 §19.1.1), or None."""
        value = self.param("transport")
        return None if value is None else unescape(value).lower()

    @property
    def lr(self) -> bool:
        """True if the URI has the ``lr`` parameter (RFC 3261 §19.1.1, §16.12)."""
        return self.has_param("lr")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def user_param(self) -> str | None:
        """The ``user`` parameter (``phone``, ``ip``, ...), lower case, or None."""
        value = self.param("user")
        return None if value is None else unescape(value).lower()

    @property
    def host_port(self) -> str:
        """``host`` or ``host:port``, as a Via sent-by or a log line wants it."""
        return self._host if self._port is None else f"{self._host}:{self._port}"

    @property
    def is_secure(self) -> bool:
        return self._scheme == "sips"

    # --- derived URIs ----------------------------------------------------

    def replace(
        self,
        *,
        scheme: str | _Missing = _MISSING,
        user: str | _Missing | None = _MISSING,
        password: str | _Missing | None = _MISSING,
        host: str | _Missing = _MISSING,
        port: int | _Missing | None = _MISSING,
        params: Iterable[Param] | _Missing = _MISSING,
        headers: Iterable[Header] | _Missing = _MISSING,
    ) -> SipUri:
        """A copy with the given components replaced, rendered canonically.

        New components are validated like the constructor's. Setting ``user``
        to None drops the password too.
        """
        new_user = self._user if user is _MISSING else user
        if password is _MISSING:
            new_password = self._password if new_user is not None else None
        else:
            new_password = password
        return SipUri.build(
            self._host if host is _MISSING else host,
            scheme=self._scheme if scheme is _MISSING else scheme,
            user=new_user,
            password=new_password,
            port=self._port if port is _MISSING else port,
            params=self.params if params is _MISSING else params,
            headers=self.headers if headers is _MISSING else headers,
        )

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with parameter *name* set to *value* (None: a flag like ``lr``).

        An existing parameter of that name (case-insensitive) keeps its place and
        loses any duplicates; a new one goes last. *value* must already be
        escaped (``escape(text, PARAM_SAFE)``).
        """
        (checked,) = _check_params(((name, value),))
        key = name.lower()
        out: list[Param] = []
        replaced = False
        for item in self.params:
            if _norm(item[0]).lower() == key:
                if not replaced:
                    out.append(checked)
                    replaced = True
            else:
                out.append(item)
        if not replaced:
            out.append(checked)
        return self._with_params(tuple(out))

    def without_param(self, name: str) -> SipUri:
        """A copy without any parameter called *name*; self if there is none."""
        key = name.lower()
        kept = tuple(item for item in self.params if _norm(item[0]).lower() != key)
        if len(kept) == len(self.params):
            return self
        return self._with_params(kept)

    def _with_params(self, params: tuple[Param, ...]) -> SipUri:
        # Everything else is already valid: skip build()'s checks.
        return SipUri(
            self._scheme,
            self._user,
            self._password,
            self._host,
            self._port,
            _render_params(params),
            params,
            self._headers_raw,
            self._headers,
            None,
        )

    # --- comparison ------------------------------------------------------

    def _compare_form(self) -> tuple[tuple[object, ...], dict[str, str | None]]:
        cmp = self._cmp
        if cmp is None:
            # Names are case-insensitive; the first of duplicate names counts.
            values: dict[str, str | None] = {}
            for name, value in self.params:
                key = _norm(name).lower()
                if key in values:
                    continue
                if value is None:
                    values[key] = None
                elif key == "maddr":
                    values[key] = _host_key(_norm(value))
                elif key == "method":
                    # RFC 3261 §7.1: method names are case-sensitive, so
                    # method=register does not name REGISTER.
                    values[key] = _norm(value)
                else:
                    values[key] = _norm(value).lower()
            must = tuple(sorted((k, v) for k, v in values.items() if k in _MUST_MATCH))
            others = {k: v for k, v in values.items() if k not in _MUST_MATCH}
            # Header names are case-insensitive; their values follow RFC 3261
            # §7.3.1's default ("field values ... are case-insensitive") since
            # §19.1.4 defers to per-header rules we cannot apply to opaque text.
            headers = tuple(sorted((_norm(n).lower(), _norm(v).lower()) for n, v in self.headers))
            key_tuple: tuple[object, ...] = (
                self._scheme,
                # userinfo is compared case-sensitively (RFC 3261 §19.1.4)
                None if self._user is None else _norm(self._user),
                None if self._password is None else _norm(self._password),
                _host_key(self._host),
                self._port,
                must,
                headers,
            )
            cmp = self._cmp = (key_tuple, others)
        return cmp

    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 URI equivalence.

        sip and sips never match; userinfo is case-sensitive, the rest is not;
        escapes of unreserved characters equal the characters; a port and the
        transport, ttl, user, method and maddr parameters must be in both or
        neither and match; other parameters are compared only when both have
        them; headers must all be in both and match, in any order. Not
        transitive: ``sip:c@h`` equals both ``sip:c@h;security=on`` and
        ``sip:c@h;security=off``, which differ from each other.
        """
        if not isinstance(other, SipUri):
            return NotImplemented
        mine, my_others = self._compare_form()
        theirs, their_others = other._compare_form()
        if mine != theirs:
            return False
        for name, value in my_others.items():
            if name in their_others and their_others[name] != value:
                return False
        return True

    def __hash__(self) -> int:
        # Only what must match on both sides: equal URIs always hash the same.
        return hash(self._compare_form()[0])

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"SipUri({self._text!r})"


def _parse_sip(match: re.Match[str], text: str) -> SipUri:
    scheme, user, password, host, port_text, params_raw, headers_raw = match.groups()
    port: int | None = None
    # The length is checked first: int() of a huge digit string is slow and,
    # past 4300 digits, an error of its own.
    if port_text is not None and (len(port_text) > 5 or (port := int(port_text)) > 65535):
        raise ParseError("port out of range")
    if host[0] == "[" and _ipv6(host[1:-1]) is None:
        raise ParseError("bad IPv6 reference")
    return SipUri(
        scheme.lower(), user, password, host, port, params_raw, None, headers_raw or "", None, text
    )


# ---------------------------------------------------------------------------
# tel
# ---------------------------------------------------------------------------


class TelUri:
    """A ``tel:`` URI (RFC 3966). Immutable; ``str()`` gives back the parsed text.

    ``number`` is the telephone-subscriber's digits as written, visual
    separators included; ``params`` are the parameters in order (``isub``,
    ``ext``, ``phone-context`` and any others), escapes kept.
    """

    __slots__ = ("_key", "_number", "_params", "_params_raw", "_text")

    _key: tuple[object, ...] | None
    _number: str
    _params: tuple[Param, ...] | None
    _params_raw: str
    _text: str

    @classmethod
    def build(cls, number: str, params: Iterable[Param] = ()) -> TelUri:
        """A tel URI from its number and parameters, checked against RFC 3966."""
        params_t = tuple(params)
        try:
            parsed = parse_uri("tel:" + number + _render_params(params_t))
        except ParseError as exc:
            raise LocalProtocolError(f"not a tel URI: {exc.reason}") from None
        # Re-parsing alone would let a ";" inside a value add a parameter.
        if not isinstance(parsed, TelUri) or parsed.number != number or parsed.params != params_t:
            raise LocalProtocolError(f"not a tel URI number/params: {number!r}")
        return parsed

    def __init__(self, number: str, params_raw: str, text: str) -> None:
        """Components already checked: use :func:`parse_uri` or :meth:`build`."""
        self._number = number
        self._params_raw = params_raw
        self._params = None
        self._key = None
        self._text = text

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def number(self) -> str:
        return self._number

    @property
    def is_global(self) -> bool:
        """True for a global number (``+`` and an E.164 number, RFC 3966 §5.1.4)."""
        return self._number[0] == "+"

    @property
    def digits(self) -> str:
        """The number without visual separators (``+1-212-555`` gives ``+1212555``)."""
        return _VISUAL_RE.sub("", self._number)

    @property
    def params(self) -> tuple[Param, ...]:
        params = self._params
        if params is None:
            params = self._params = _split_params(self._params_raw) if self._params_raw else ()
        return params

    def param(self, name: str) -> str | None:
        """The value of parameter *name* (case-insensitive), None if absent or a flag."""
        key = name.lower()
        for pname, value in self.params:
            if pname.lower() == key:
                return value
        return None

    def has_param(self, name: str) -> bool:
        key = name.lower()
        return any(pname.lower() == key for pname, _ in self.params)

    def _compare_form(self) -> tuple[object, ...]:
        key = self._key
        if key is None:
            params: list[tuple[str, str | None]] = []
            for name, value in self.params:
                lname = name.lower()
                if value is not None:
                    if (lname == "phone-context" and value.startswith("+")) or lname == "ext":
                        # RFC 3966 §4: digits compared after removing visual
                        # separators; a domainname as a host name.
                        value = _VISUAL_RE.sub("", value)
                    value = _norm(value).lower()
                params.append((lname, value))
            key = self._key = (self.digits.lower(), tuple(sorted(params, key=_param_sort)))
        return key

    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4: same kind of number, same digits ignoring visual
        separators, same parameters in any order (a parameter in only one
        side never matches), all case-insensitive."""
        if not isinstance(other, TelUri):
            return NotImplemented
        # The digits keep their "+", so global never equals local.
        return self._compare_form() == other._compare_form()

    def __hash__(self) -> int:
        return hash(self._compare_form())

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"TelUri({self._text!r})"


def _param_sort(item: tuple[str, str | None]) -> tuple[str, str]:
    return (item[0], "" if item[1] is None else "=" + item[1])


def _parse_tel(match: re.Match[str], text: str) -> TelUri:
    number, params_raw = match.groups()
    uri = TelUri(number, params_raw, text)
    # RFC 3966 §5.1.5: "local numbers MUST have a 'phone-context' parameter".
    if number[0] != "+" and not uri.has_param("phone-context"):
        raise ParseError("tel URI local number without phone-context")
    return uri


# ---------------------------------------------------------------------------
# Any other scheme
# ---------------------------------------------------------------------------


class AbsoluteUri:
    """A URI in a scheme this module does not interpret (RFC 3261 ``absoluteURI``).

    ``scheme`` is lower case; ``opaque`` is everything after the first ``:``,
    exactly as written. Equal when the schemes match case-insensitively and the
    opaque parts match exactly.
    """

    __slots__ = ("_opaque", "_scheme", "_text")

    _opaque: str
    _scheme: str
    _text: str

    @classmethod
    def build(cls, scheme: str, opaque: str) -> AbsoluteUri:
        """An absolute URI from its scheme and the rest, checked against RFC 3261."""
        try:
            parsed = parse_uri(f"{scheme}:{opaque}")
        except ParseError as exc:
            raise LocalProtocolError(f"not an absolute URI: {exc.reason}") from None
        if not isinstance(parsed, AbsoluteUri):
            raise LocalProtocolError(f"use SipUri or TelUri for {scheme!r}")
        if parsed._scheme != scheme.lower() or parsed._opaque != opaque:
            raise LocalProtocolError(f"not a URI scheme: {scheme!r}")
        return parsed

    def __init__(self, scheme: str, opaque: str, text: str) -> None:
        """Components already checked: use :func:`parse_uri` or :meth:`build`."""
        self._scheme = scheme
        self._opaque = opaque
        self._text = text

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def opaque(self) -> str:
        return self._opaque

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteUri):
            return NotImplemented
        return self._scheme == other._scheme and self._opaque == other._opaque

    def __hash__(self) -> int:
        return hash((self._scheme, self._opaque))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"AbsoluteUri({self._text!r})"


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> SipUri | TelUri | AbsoluteUri:
    """Parse a SIP, SIPS, tel or other absolute URI.

    The text is the URI alone: no angle brackets, no surrounding whitespace, no
    header parameters. A ``sip``/``sips``/``tel`` URI must follow its own
    grammar; any other scheme need only be an RFC 3261 ``absoluteURI``.

    Raises:
        ParseError: (status 400) the text is not a URI, or a sip/sips/tel URI
            breaks its grammar (bad host, IPv6 address without brackets per
            RFC 5118 §4.2, port above 65535, bad escape ...).
    """
    match = _SIP_URI.fullmatch(text)
    if match is not None:
        return _parse_sip(match, text)
    scheme = text.partition(":")[0]
    lower = scheme.lower()
    if lower == "sip" or lower == "sips":
        raise ParseError("malformed SIP URI")
    if lower == "tel":
        tel = _TEL_URI.fullmatch(text)
        if tel is None:
            raise ParseError("malformed tel URI")
        return _parse_tel(tel, text)
    absolute = _ABSOLUTE_URI.fullmatch(text)
    if absolute is None:
        raise ParseError("malformed URI")
    return AbsoluteUri(lower, absolute.group(2), text)
