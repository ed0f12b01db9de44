"""SIP requests and responses: parse from bytes, edit narrowly, serialize.

``parse_message(data)`` checks the start line and the grammar of every header field
a proxy acts on (Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length,
Content-Type, Contact, Route, Record-Route, Path, Date); a message it refuses gets a
:class:`ParseError` whose reason says what is wrong. Other headers are kept as text
(RFC 3261 §16.3: components a proxy does not use "SHOULD be ignored and remain
unchanged").

Checking and reading are separate on purpose, for speed: the check is one
possessive regular expression per value, and the typed views (``message.via``,
``message.from_`` ...) are built on first use and cached. Two are read on every
message a proxy receives, to match it to a transaction: the top Via and CSeq,
which their checks build from what they matched. URIs inside header
values are checked for their shape at parse time and parsed in full on first use
of ``.uri``, which raises :class:`ParseError` if the shape hid a bad URI.

``bytes(message)`` of a message nobody edited is the input, byte for byte (less
any octets past Content-Length, which RFC 3261 §18.3 says to discard). An edited
message is rebuilt from its lines: the lines nobody touched keep their raw bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from gateway.sip import grammar
from gateway.sip.errors import ParseError
from gateway.sip.headers import (
    FAST_KEYS,
    CSeq,
    Headers,
    MediaType,
    NameAddr,
    Uri,
    Via,
    View,
    field_key,
)
from gateway.sip.uri import SipUri, parse_uri

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_HEADERS",
    "MAX_HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "MAX_VIAS",
    "Message",
    "Request",
    "Response",
    "make_response",
    "parse_message",
    "trying_bytes",
]

T = TypeVar("T")

# Limits on what one peer can make us hold. Each is generous for real traffic: a
# browser INVITE with video SDP is under 8 KB, a proxied one has a handful of Vias.
MAX_MESSAGE_SIZE = 65_535
"""Largest message accepted (UDP's own limit; RFC 3261 §18.1.1 keeps UDP under MTU)."""
MAX_HEADER_SIZE = 16_384
"""Largest header block, start line included; above it the request gets 513."""
MAX_HEADERS = 256
"""Most header field lines; RFC 4475's longest message has 20 or so."""
MAX_VIAS = 70
"""Most Via values: one per hop, and Max-Forwards starts at 70 (RFC 3261 §8.1.1.6)."""
MAX_BODY_SIZE = 60_000
"""Largest body (Content-Length) accepted: a few SDPs in a multipart fit easily."""

SIP_VERSION = "SIP/2.0"


class Message:
    """What requests and responses share: headers, body and the typed views."""

    __slots__ = ("_body", "_raw", "_start_edited", "headers", "version")

    def __init__(self, headers: Headers, body: bytes, version: str = SIP_VERSION) -> None:
        self.headers = headers
        self._body = body
        self.version = version
        self._raw: bytes | None = None
        self._start_edited = False

    # -- body ------------------------------------------------------------

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, body: bytes) -> None:
        """Replace the body and keep Content-Length true."""
        self._body = body
        self._raw = None
        self.headers.set("Content-Length", str(len(body)))

    # -- serialization ---------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def _copy_into(self, other: Message) -> None:
        other._raw = self._raw if not self.headers.edited and not self._start_edited else None
        other._start_edited = self._start_edited

    def __bytes__(self) -> bytes:
        raw = self._raw
        if raw is not None and not self._start_edited and not self.headers.edited:
            return raw
        lines = [self.start_line(), *self.headers.raw_lines(), "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self._body

    # -- typed views (parsed once, cached until that header is edited) -----

    @property
    def vias(self) -> list[Via]:
        return self.headers.typed(_VIEW_VIAS)

    @property
    def via(self) -> Via:
        """The top Via: the one that names the transaction (RFC 3261 §17.1.3)."""
        return self.headers.typed(_VIEW_FIRST_VIA)

    def add_via(self, via: Via) -> None:
        """Put ``via`` on top, as a proxy does with its own (RFC 3261 §16.6 step 8)."""
        self.headers.prepend("Via", str(via))
        self.headers.remember(_VIEW_FIRST_VIA, via)

    def replace_via(self, via: Via) -> None:
        """Replace the top Via (with ``received``, ``rport`` filled in, say)."""
        self.headers.replace_first_value("via", str(via))
        self.headers.remember(_VIEW_FIRST_VIA, via)

    @property
    def call_id(self) -> str:
        return self.headers.typed(_VIEW_CALL_ID)

    @property
    def cseq(self) -> CSeq:
        return self.headers.typed(_VIEW_CSEQ)

    @property
    def from_(self) -> NameAddr:
        return self.headers.typed(_VIEW_FROM)

    @property
    def to(self) -> NameAddr:
        return self.headers.typed(_VIEW_TO)

    @property
    def max_forwards(self) -> int | None:
        return self.headers.typed(_VIEW_MAX_FORWARDS)

    @property
    def content_length(self) -> int | None:
        return self.headers.typed(_VIEW_CONTENT_LENGTH)

    @property
    def content_type(self) -> MediaType | None:
        return self.headers.typed(_VIEW_CONTENT_TYPE)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; empty for ``Contact: *`` (see :attr:`is_star_contact`)."""
        return self.headers.typed(_VIEW_CONTACTS)

    @property
    def is_star_contact(self) -> bool:
        """``Contact: *``, the REGISTER that removes every binding (RFC 3261 §10.2.2)."""
        return self.headers.get("contact") == "*"

    @property
    def routes(self) -> list[NameAddr]:
        return self.headers.typed(_VIEW_ROUTES)

    @property
    def record_routes(self) -> list[NameAddr]:
        return self.headers.typed(_VIEW_RECORD_ROUTES)

    @property
    def paths(self) -> list[NameAddr]:
        return self.headers.typed(_VIEW_PATHS)

    @property
    def supported(self) -> list[str]:
        return self.headers.typed(_VIEW_SUPPORTED)

    @property
    def require(self) -> list[str]:
        return self.headers.typed(_VIEW_REQUIRE)

    @property
    def proxy_require(self) -> list[str]:
        return self.headers.typed(_VIEW_PROXY_REQUIRE)


class Request(Message):
    """A SIP request. ``uri`` is the Request-URI as text; ``ruri`` its parsed form."""

    __slots__ = ("_method", "_ruri", "_uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self._method = method
        self._uri = uri
        self._ruri: Uri | None = None

    @property
    def method(self) -> str:
        return self._method

    @property
    def uri(self) -> str:
        return self._uri

    @uri.setter
    def uri(self, uri: str) -> None:
        self._uri = uri
        self._ruri = None
        self._start_edited = True

    @property
    def ruri(self) -> Uri:
        """The Request-URI, parsed (RFC 3261 §25: SIP-URI / SIPS-URI / absoluteURI).

        Raises:
            ParseError: the Request-URI had a URI's shape but is not a valid URI.
        """
        if self._ruri is None:
            self._ruri = _request_uri(self._uri)
        return self._ruri

    def start_line(self) -> str:
        return f"{self._method} {self._uri} {self.version}"

    def copy(self) -> Request:
        """A copy to edit without touching this one; cheap, since lines are shared."""
        other = Request(self._method, self._uri, self.headers.copy(), self._body, self.version)
        other._ruri = self._ruri
        self._copy_into(other)
        return other

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("_reason", "_status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers if headers is not None else Headers(), body, version)
        self._status = status
        self._reason = reason

    @property
    def status(self) -> int:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason

    def start_line(self) -> str:
        return f"{self.version} {self._status} {self._reason}"

    def copy(self) -> Response:
        """A copy to edit without touching this one; cheap, since lines are shared."""
        other = Response(self._status, self._reason, self.headers.copy(), self._body, self.version)
        self._copy_into(other)
        return other

    def __repr__(self) -> str:
        return f"<Response {self._status} {self._reason}>"


# Reason phrases of the codes Wedge itself answers with (RFC 3261 §21, RFC 5626 §11).
REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    430: "Flow Failed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
    513: "Message Too Large",
}


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> Response:
    """A response to ``request`` built as RFC 3261 §8.2.6 says.

    Every Via line (in order), From, To, Call-ID and CSeq are copied, and a
    Timestamp is echoed (§8.2.6.1). ``to_tag`` is added to To when To has no tag
    yet, which §8.2.6.2 requires of every response but a 100. ``extra`` headers
    come before Content-Length, which is 0: the responses Wedge makes have no body.
    """
    pairs = _response_pairs(request, status, to_tag, extra)
    return Response(status, reason or REASONS.get(status, "Unknown"), Headers.of(pairs))


def trying_bytes(request: Request) -> bytes:
    """``bytes(make_response(request, 100))``, written straight from the request.

    Every INVITE a proxy receives gets a 100 at once (RFC 3261 §16.2), and only
    its bytes are ever needed: no Response object is built for it.
    """
    lines = ["SIP/2.0 100 Trying"]
    lines += [f"{name}: {value}" for name, value in _response_pairs(request, 100, None, ())]
    lines += ["", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def _response_pairs(
    request: Request, status: int, to_tag: str | None, extra: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    headers = request.headers
    pairs = [("Via", value) for value in headers.get_all("via")]
    pairs.extend(("From", value) for value in headers.get_all("from"))
    to = headers.get("to") or ""
    if to_tag is not None and status > 100 and request.to.tag is None:
        to = f"{to};tag={to_tag}"
    pairs.append(("To", to))
    for name in ("Call-ID", "CSeq", "Timestamp"):
        pairs.extend((name, value) for value in headers.get_all(name))
    pairs.extend(extra)
    pairs.append(("Content-Length", "0"))
    return pairs


def make_cancel(invite: Request) -> Request:
    """The CANCEL of an INVITE a client sent, as RFC 3261 §9.1 says: the same
    Request-URI, top Via (so it matches the INVITE's transaction), Route, From, To,
    Call-ID and CSeq number."""
    headers = invite.headers
    pairs = [("Via", headers.values("via")[0]), ("Max-Forwards", "70")]
    pairs += [("Route", value) for value in headers.get_all("route")]
    pairs += [
        ("From", headers.get("from") or ""),
        ("To", headers.get("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} CANCEL"),
        ("Content-Length", "0"),
    ]
    return Request("CANCEL", invite.uri, Headers.of(pairs))


# ---------------------------------------------------------------------------
# Parsing


def parse_message(data: bytes) -> Request | Response:
    """Parse one SIP message (a UDP datagram, a WebSocket frame, a framed stream message).

    Raises:
        ParseError: the bytes are not a valid SIP message; ``reason`` says why and
            ``status`` is the code to answer a request with.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise ParseError("message too large", 513)
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end_of_head = data.find(b"\r\n\r\n", start)
    if end_of_head < 0:
        if not data.endswith(b"\r\n"):
            raise ParseError("missing empty line after the header fields")
        # A datagram that ends after its last header line, without the empty line:
        # read it as a message with no body, so a real error in it is still named.
        # Never before ``start`` (nothing but CRLFs): compiled by mypyc, a reversed
        # bytes slice raises instead of giving b"".
        end_of_head = max(len(data) - 2, start)
    if end_of_head - start > MAX_HEADER_SIZE:
        raise ParseError("header block too large", 513)
    lines = data[start:end_of_head].decode("utf-8", "surrogateescape").split("\r\n")
    if len(lines) > MAX_HEADERS:
        raise ParseError("too many header fields", 513)
    headers = _headers(lines)
    message = _start(lines[0], headers)
    groups = headers.grouped()
    _check(groups, message)
    body = data[end_of_head + 4 :]
    if "content-length" in groups:
        length = int(groups["content-length"][0])
        if length > len(body):
            raise ParseError("Content-Length larger than the message")
        body = body[:length]
    message._body = body
    if end_of_head + 4 <= len(data):
        message._raw = data[start : end_of_head + 4 + len(body)]
    return message


def _headers(lines: list[str], folded: bool = False) -> Headers:
    """The header fields of ``lines`` (the start line first), keyed and grouped.

    Folded lines are rare, so they are found on the slow path of the key lookup,
    and the block is then read again with its continuations joined.
    """
    fields = []
    # Tuples, not lists: the collector stops scanning a tuple of strings after
    # its first pass, and the requests a call keeps live for seconds.
    groups: dict[str, tuple[str, ...]] = {}
    fast_key = FAST_KEYS.get
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = fast_key(name)
        if key is None:
            if line[:1] in (" ", "\t") and not folded:
                return _headers(_unfold(lines), folded=True)
            if not colon:
                raise ParseError("header line without a colon")
            key = field_key(name)
        if folded and "\r\n" in value:
            value = value.replace("\r\n", " ")
        value = value.strip(" \t")
        fields.append((key, value, line))
        known = groups.get(key)
        groups[key] = (value,) if known is None else (*known, value)
    return Headers(fields, groups)


def _unfold(lines: list[str]) -> list[str]:
    """Join each continuation line to the line above it, keeping the CRLF.

    RFC 3261 §7.3.1: a line that starts with SP or HTAB continues the one above.
    The joined line keeps its CRLFs, so it serializes as received; the value the
    grammar sees has each fold reduced to a space.
    """
    joined: list[str] = [lines[0]]
    for line in lines[1:]:
        if line[:1] not in (" ", "\t"):
            joined.append(line)
        elif len(joined) > 1:
            joined[-1] = f"{joined[-1]}\r\n{line}"
        else:
            raise ParseError("header block starts with a continuation line")
    return joined


def _start(line: str, headers: Headers) -> Request | Response:
    if line[:4].upper() == "SIP/":
        match = grammar.status_line_re.fullmatch(line)
        if match is None:
            raise ParseError("malformed Status-Line")
        version, code, reason = match.groups()
        _check_version(version)
        if len(code) != 3 or not "100" <= code <= "699":
            raise ParseError("status code out of range")
        return Response(int(code), reason, headers, version=version)
    match = grammar.request_line_re.fullmatch(line)
    if match is None:
        raise ParseError(_request_line_problem(line))
    method, uri, version = match.groups()
    if version != SIP_VERSION:
        _check_version(version)
    request = Request(method, uri, headers, version=version)
    # The Request-URI is parsed in full at once: every request is routed on it.
    try:
        ruri = request.ruri
    except ParseError as exc:
        raise ParseError(f"bad Request-URI: {exc.reason}") from None
    # RFC 3261 §19.1.1: headers "are not allowed in a Request-URI" (RFC 4475 §3.1.2.11).
    if isinstance(ruri, SipUri) and ruri.headers:
        raise ParseError("Request-URI must not have headers")
    return request


def _request_line_problem(line: str) -> str:
    """Say what is wrong with a Request-Line the grammar refused (RFC 3261 §7.1)."""
    parts = line.split(" ")
    if "" in parts:
        return "Request-Line has extra spaces"
    if len(parts) != 3:
        return "Request-Line needs a method, a Request-URI and a version"
    method, uri, version = parts
    if grammar.token_re.fullmatch(method) is None:
        return "bad method in the Request-Line"
    if uri.startswith("<") or uri.endswith(">"):
        return "Request-URI must not be in <>"
    if "\t" in line:
        return "Request-Line has a tab"
    return f"bad SIP version {version[:16]!r} in the Request-Line"


def _check_version(version: str) -> None:
    if version.upper() != SIP_VERSION:
        raise ParseError("SIP version not supported", 505)


# -- checks: the grammar of each header a proxy acts on, run at parse time -----
#
# Each takes the values of every line of its header. Most build nothing: the typed
# readers further down do that on first use. The Via and CSeq checks return the
# value every receiver reads (the top Via, the CSeq), cached as if read (_HANDED_OVER).


def _check(groups: dict[str, tuple[str, ...]], message: Message) -> None:
    if not groups.keys() >= _REQUIRED_KEYS:
        missing = next(key for key in _REQUIRED if key not in groups)
        raise ParseError(f"missing {_NAMES[missing]}")
    headers = message.headers
    for key, values in groups.items():
        check = _CHECKS.get(key)
        if check is not None:
            checked = check(values)
            if checked is not None:
                headers.remember(_HANDED_OVER[key], checked)
    # RFC 3261 §8.1.1.5: the CSeq method MUST match that of the request.
    if isinstance(message, Request) and message.cseq.method != message.method:
        raise ParseError("CSeq method does not match the Request-Line")


def _one(values: tuple[str, ...], key: str) -> str:
    if len(values) != 1:
        raise ParseError(f"{_NAMES[key]} must appear once")
    return values[0]


def _check_vias(values: tuple[str, ...]) -> Via:
    """Check every Via value; return the top one."""
    count = 0
    top: _ViaLine | None = None
    for line in values:
        checked = _via_line(line)
        if top is None:
            top = checked
        count += checked.count
    if count > MAX_VIAS:
        raise ParseError("too many Via values", 513)
    assert top is not None  # a Via line has at least one value, or did not match
    return top.first()


class _ViaLine:
    """A Via header line that passed its check: how many values it has, and the
    first of them, parsed only when it is the top Via of a message."""

    __slots__ = ("_first", "_match", "count")

    def __init__(self, count: int, match: re.Match[str]) -> None:
        self.count = count
        self._match = match
        self._first: Via | None = None

    def first(self) -> Via:
        via = self._first
        if via is None:
            via = self._first = Via.from_match(self._match)
        return via


def _check_via_line(line: str) -> _ViaLine:
    parts = grammar.split_commas(line) if "," in line else [line]
    match = grammar.via_re.fullmatch
    first = None
    for value in parts:
        via = match(value)
        if via is None:
            raise ParseError("malformed Via")
        if via[5] is not None and int(via[5]) > 65535:
            raise ParseError("Via port out of range")
        if first is None:
            first = via
    assert first is not None  # split_commas returns at least one value
    return _ViaLine(len(parts), first)


class _Remembered(Generic[T]):
    """What one check gave for values it passed lately, so it runs once per value,
    not per message.

    The messages of a dialog repeat their Call-ID, From, To, Contact and route set,
    the responses of a transaction its requests' Via lines, and a dictionary lookup
    costs a small fraction of a grammar match. A refusal (a false result, or an
    exception) is never remembered. Bounded: emptied when full, so values that never
    repeat (a flood of new calls, garbage) cost one insertion each, and values longer
    than any usual header are checked every time instead of being kept. What it
    remembers is shared by every message that repeats the value: never changed
    (Via, like every parsed header, is replaced rather than edited).
    """

    __slots__ = ("_check", "_seen")

    def __init__(self, check: Callable[[str], T]) -> None:
        self._check = check
        self._seen: dict[str, T] = {}

    def __call__(self, value: str) -> T:
        seen = self._seen
        result = seen.get(value)
        if result is not None:
            return result
        result = self._check(value)
        if result and len(value) <= _REMEMBERED_LONGEST:
            if len(seen) >= _REMEMBERED_MAX:
                seen.clear()
            seen[value] = result
        return result


_REMEMBERED_MAX = 4096
"""Values each :class:`_Remembered` keeps: a few thousand dialogs' worth."""
_REMEMBERED_LONGEST = 256
"""The longest value kept, so each :class:`_Remembered` holds about 1 MB at most."""

_via_line = _Remembered(_check_via_line)
# A URI is immutable: a dialog's requests, and the calls to one number, share it.
_request_uri = _Remembered(parse_uri)
_is_call_id = _Remembered(lambda value: grammar.call_id_re.fullmatch(value) is not None)
_is_name_addr = _Remembered(lambda value: grammar.name_addr_re.fullmatch(value) is not None)


def _is_bracketed_name_addr(value: str) -> bool:
    match = grammar.name_addr_re.fullmatch(value)
    return match is not None and match[2] is not None


_is_route_entry = _Remembered(_is_bracketed_name_addr)


def _check_call_id(values: tuple[str, ...]) -> None:
    if not _is_call_id(_one(values, "call-id")):
        raise ParseError("malformed Call-ID")


def _check_cseq(values: tuple[str, ...]) -> CSeq:
    return CSeq.parse(_one(values, "cseq"))


def _checker_name_addr(key: str) -> Callable[[tuple[str, ...]], None]:
    """A check for From or To: exactly one name-addr or addr-spec."""
    name = _NAMES[key]

    def check(values: tuple[str, ...]) -> None:
        value = _one(values, key)
        if not _is_name_addr(value):
            raise ParseError(_name_addr_problem(value, name))

    return check


def _name_addr_problem(value: str, name: str) -> str:
    """Say what is wrong with a name-addr the grammar refused (RFC 3261 §20.10)."""
    quotes = len(re.findall(r'(?<!\\)"', value))
    if quotes % 2:
        return f"unterminated quote in {name}"
    display, bracket, _ = value.partition("<")
    if bracket and not display.startswith('"') and "," in display:
        return f"unquoted display name with a comma in {name}"
    if bracket and re.search(r"<\s|\s>", value):
        return f"spaces inside <> in {name}"
    if not bracket and ("?" in value or "," in value):
        return f"{name} URI with headers or commas must be in <>"
    return f"malformed {name}"


def _checker_number(key: str, maximum: int) -> Callable[[tuple[str, ...]], None]:
    name = _NAMES[key]

    def check(values: tuple[str, ...]) -> None:
        value = _one(values, key)
        if grammar.digits_re.fullmatch(value) is None:
            raise ParseError(f"malformed {name}")
        # Short-circuit on length so a thousand digits cost nothing.
        if len(value) > 10 or int(value) > maximum:
            raise ParseError(f"{name} too large")

    return check


def _check_content_type(values: tuple[str, ...]) -> None:
    if grammar.media_type_re.fullmatch(_one(values, "content-type")) is None:
        raise ParseError("malformed Content-Type")


def _check_contacts(values: tuple[str, ...]) -> None:
    if values == ("*",):
        return
    for line in values:
        for value in grammar.split_commas(line) if "," in line else (line,):
            if value == "*":
                raise ParseError("Contact * must stand alone")
            if not _is_name_addr(value):
                raise ParseError(_name_addr_problem(value, "Contact"))


def _checker_route_list(key: str) -> Callable[[tuple[str, ...]], None]:
    """Route, Record-Route and Path hold name-addrs only (RFC 3261 §20.30, §20.34)."""
    name = _NAMES[key]

    def check(values: tuple[str, ...]) -> None:
        for line in values:
            for value in grammar.split_commas(line):
                if not _is_route_entry(value):
                    raise ParseError(f"malformed {name}")

    return check


def _check_date(values: tuple[str, ...]) -> None:
    # RFC 3261 §20.17: rfc1123-date, and "SIP only supports recent dates" in GMT.
    if grammar.date_re.fullmatch(_one(values, "date")) is None:
        raise ParseError("malformed Date")


_NAMES = {
    "via": "Via",
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "from": "From",
    "to": "To",
    "max-forwards": "Max-Forwards",
    "content-length": "Content-Length",
    "content-type": "Content-Type",
    "contact": "Contact",
    "route": "Route",
    "record-route": "Record-Route",
    "path": "Path",
    "date": "Date",
}

# RFC 3261 §8.1.1: "the minimum set of header fields" every request and response
# carries. Max-Forwards is left out on purpose: RFC 2543 peers omit it (RFC 4475
# §3.4.1), and a proxy treats a missing one as 70.
_REQUIRED = ("via", "call-id", "cseq", "from", "to")
_REQUIRED_KEYS = frozenset(_REQUIRED)

_CHECKS: dict[str, Callable[[tuple[str, ...]], object]] = {
    "via": _check_vias,
    "call-id": _check_call_id,
    "cseq": _check_cseq,
    "from": _checker_name_addr("from"),
    "to": _checker_name_addr("to"),
    # Max-Forwards is 1*DIGIT, but RFC 3261 §20.22 gives it a range of 0-255.
    "max-forwards": _checker_number("max-forwards", 255),
    "content-length": _checker_number("content-length", MAX_BODY_SIZE),
    "content-type": _check_content_type,
    "contact": _check_contacts,
    "route": _checker_route_list("route"),
    "record-route": _checker_route_list("record-route"),
    "path": _checker_route_list("path"),
    "date": _check_date,
}


# -- typed readers, run on first use of a view and cached --------------------


def _vias(headers: Headers) -> list[Via]:
    return [Via.parse(value) for value in headers.values("via")]


def _first_via(headers: Headers) -> Via:
    values = headers.values("via")
    if not values:
        raise ParseError("missing Via")
    return Via.parse(values[0])


def _call_id(headers: Headers) -> str:
    value = headers.get("call-id")
    if value is None:
        raise ParseError("missing Call-ID")
    return value


def _cseq(headers: Headers) -> CSeq:
    value = headers.get("cseq")
    if value is None:
        raise ParseError("missing CSeq")
    return CSeq.parse(value)


# The readers below share what they parse among the messages that repeat a value
# (a dialog's From, To, Contact and route set): a NameAddr is never changed, only
# replaced, and so is the URI it parses on first use.


def _reader_name_addr(key: str) -> Callable[[Headers], NameAddr]:
    name = _NAMES[key]
    parse = _Remembered(lambda value: NameAddr.parse(value, name))

    def read(headers: Headers) -> NameAddr:
        value = headers.get(key)
        if value is None:
            raise ParseError(f"missing {name}")
        return parse(value)

    return read


def _reader_number(key: str) -> Callable[[Headers], int | None]:
    def read(headers: Headers) -> int | None:
        value = headers.get(key)
        return int(value) if value is not None and value.isdigit() else None

    return read


def _content_type(headers: Headers) -> MediaType | None:
    value = headers.get("content-type")
    return None if value is None else MediaType.parse(value)


_contact = _Remembered(lambda value: NameAddr.parse(value, "Contact"))


def _contacts(headers: Headers) -> list[NameAddr]:
    values = headers.values("contact")
    if values == ["*"]:
        return []
    return [_contact(value) for value in values]


def _reader_route_list(key: str) -> Callable[[Headers], list[NameAddr]]:
    name = _NAMES[key]
    parse = _Remembered(lambda value: NameAddr.parse(value, name, require_brackets=True))

    def read(headers: Headers) -> list[NameAddr]:
        return [parse(value) for value in headers.values(key)]

    return read


def _reader_options(key: str) -> Callable[[Headers], list[str]]:
    def read(headers: Headers) -> list[str]:
        return [value.lower() for value in headers.values(key) if value]

    return read


_from = _reader_name_addr("from")
_to = _reader_name_addr("to")
_max_forwards = _reader_number("max-forwards")
_content_length = _reader_number("content-length")
_routes = _reader_route_list("route")
_record_routes = _reader_route_list("record-route")
_paths = _reader_route_list("path")
_supported = _reader_options("supported")
_require = _reader_options("require")
_proxy_require = _reader_options("proxy-require")


# The typed views, each with the header it reads.
_VIEW_VIAS = View("via", _vias)
_VIEW_FIRST_VIA = View("via", _first_via)
_VIEW_CALL_ID = View("call-id", _call_id)
_VIEW_CSEQ = View("cseq", _cseq)
_VIEW_FROM = View("from", _from)
_VIEW_TO = View("to", _to)
_VIEW_MAX_FORWARDS = View("max-forwards", _max_forwards)
_VIEW_CONTENT_LENGTH = View("content-length", _content_length)
_VIEW_CONTENT_TYPE = View("content-type", _content_type)
_VIEW_CONTACTS = View("contact", _contacts)
_VIEW_ROUTES = View("route", _routes)
_VIEW_RECORD_ROUTES = View("record-route", _record_routes)
_VIEW_PATHS = View("path", _paths)
_VIEW_SUPPORTED = View("supported", _supported)
_VIEW_REQUIRE = View("require", _require)
_VIEW_PROXY_REQUIRE = View("proxy-require", _proxy_require)

# The views whose value a check returns (see _check).
_HANDED_OVER: dict[str, View[Any]] = {"via": _VIEW_FIRST_VIA, "cseq": _VIEW_CSEQ}
