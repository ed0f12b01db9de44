"""SIP header fields: an ordered, case-insensitive store and the typed values in it.

:class:`Headers` keeps every field line as it came off the wire: ``(key, value,
raw)`` where ``key`` is the lower-case full name (compact forms expanded), ``value``
the unfolded text after the colon and ``raw`` the line exactly as received. An
untouched line goes back out as ``raw``; a line Wedge adds or changes is rendered
in canonical form. Typed views (:class:`Via`, :class:`NameAddr`, :class:`CSeq` ...)
are parsed on first use and cached until that header is edited.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from gateway.sip import grammar
from gateway.sip.errors import ParseError
from gateway.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "FAST_KEYS",
    "CSeq",
    "Headers",
    "MediaType",
    "NameAddr",
    "Params",
    "Via",
    "field_key",
    "header_key",
]

Uri = SipUri | TelUri | AbsoluteUri
Params = tuple[tuple[str, str | None], ...]
T = TypeVar("T")

# RFC 3261 §7.3.3 and the registry of compact forms (RFC 3261, 3265, 3515, 3892,
# 3841, 4028, 4474, 6086).
COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# How Wedge spells the names it writes; any other name is written as the caller gave it.
_CANONICAL = {
    key: name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "Flow-Timer",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Organization",
        "Path",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Session-Expires",
        "Subject",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
    for key in (name.lower(),)
}

# The spellings seen on nearly every message map straight to their key, so the
# parser's hot loop does one dict lookup per line instead of strip + lower + lookup.
FAST_KEYS: dict[str, str] = {}
for _name in _CANONICAL.values():
    FAST_KEYS[_name] = _name.lower()
    FAST_KEYS[_name.lower()] = _name.lower()
for _short, _full in COMPACT_FORMS.items():
    FAST_KEYS[_short] = _full
    FAST_KEYS[_short.upper()] = _full
FAST_KEYS["Call-Id"] = "call-id"
FAST_KEYS["Cseq"] = "cseq"


def header_key(name: str) -> str:
    """The lookup key of a header name: lower case, compact forms expanded."""
    key = FAST_KEYS.get(name)
    if key is not None:
        return key
    lowered = name.strip().lower()
    return COMPACT_FORMS.get(lowered, lowered)


def field_key(name: str) -> str:
    """:func:`header_key` for a name read off the wire, which must be a token."""
    key = FAST_KEYS.get(name)
    if key is not None:
        return key
    key = header_key(name)
    if grammar.token_re.fullmatch(key) is None:
        raise ParseError("bad header name")
    return key


# ---------------------------------------------------------------------------
# Parameters shared by Via, name-addr and media types


def parse_params(text: str, what: str) -> Params:
    """``*( SEMI generic-param )`` into ordered ``(name, value)`` pairs."""
    params: list[tuple[str, str | None]] = []
    match_param = grammar.param_re.match
    position = 0
    end = len(text)
    while position < end:
        match = match_param(text, position)
        if match is None:
            raise ParseError(f"bad parameters in {what}")
        params.append((match[1], match[2]))
        position = match.end()
    return tuple(params)


def find_param(params: Params, name: str) -> str | None:
    lowered = name.lower()
    for key, value in params:
        if key.lower() == lowered:
            return value
    return None


def has_param(params: Params, name: str) -> bool:
    lowered = name.lower()
    return any(key.lower() == lowered for key, _ in params)


def set_param(params: Params, name: str, value: str | None) -> Params:
    """``params`` with ``name`` set to ``value``, in place if present, else appended."""
    lowered = name.lower()
    if any(key.lower() == lowered for key, _ in params):
        return tuple((key, value) if key.lower() == lowered else (key, old) for key, old in params)
    return (*params, (name, value))


def render_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


# ---------------------------------------------------------------------------
# Typed values


class Via:
    """One via-parm (RFC 3261 §20.42), e.g. ``SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1``."""

    __slots__ = ("host", "params", "port", "protocol", "transport", "version")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Params = (),
        protocol: str = "SIP",
        version: str = "2.0",
    ) -> None:
        self.protocol = protocol
        self.version = version
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self.params = params

    @classmethod
    def parse(cls, text: str) -> Via:
        match = grammar.via_re.fullmatch(text)
        if match is None:
            raise ParseError("malformed Via")
        return cls.from_match(match)

    @classmethod
    def from_match(cls, match: re.Match[str]) -> Via:
        """The Via that ``grammar.via_re`` matched (a check that matched it already)."""
        protocol, version, transport, host, port, params = match.groups()
        return Via(
            transport,
            host,
            _port(port, "Via"),
            parse_params(params, "Via"),
            protocol,
            version,
        )

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        return Via(
            self.transport,
            self.host,
            self.port,
            set_param(self.params, name, value),
            self.protocol,
            self.version,
        )

    @property
    def branch(self) -> str | None:
        return find_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return find_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport value a proxy filled in (RFC 3581); None when absent or empty."""
        value = find_param(self.params, "rport")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def maddr(self) -> str | None:
        return find_param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        value = find_param(self.params, "ttl")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return (
            f"{self.protocol}/{self.version}/{self.transport} {self.host}{port}"
            f"{render_params(self.params)}"
        )

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"


class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Path ...

    ``display_name`` is the display name as written (quotes included). The URI is
    kept as text and parsed in full on first use of :attr:`uri` (the message parser
    has already checked its shape). A value nobody changed renders as received.
    """

    __slots__ = ("_raw", "_uri", "display_name", "params", "uri_text")

    def __init__(
        self,
        uri: Uri | str,
        display_name: str | None = None,
        params: Params = (),
        raw: str | None = None,
    ) -> None:
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: Uri | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri
        self.display_name = display_name
        self.params = params
        self._raw = raw

    @classmethod
    def parse(cls, text: str, what: str, *, require_brackets: bool = False) -> NameAddr:
        match = grammar.name_addr_re.fullmatch(text)
        if match is None:
            raise ParseError(f"malformed {what}")
        display, uri, params, _, bare_uri, bare_params = match.groups()
        if uri is None:
            if require_brackets:
                raise ParseError(f"{what} must be a name-addr in <>")
            uri, params = bare_uri, bare_params
        return NameAddr(uri, display or None, parse_params(params, what), text)

    @property
    def uri(self) -> Uri:
        """The URI, parsed on first use; raises ParseError if it is not a valid URI."""
        if self._uri is None:
            self._uri = _uri(self.uri_text, "name-addr")
        return self._uri

    @property
    def display(self) -> str | None:
        """The display name with quotes and escapes removed."""
        name = self.display_name
        if name is None:
            return None
        return grammar.unquote(name) if name.startswith('"') else name

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return find_param(self.params, "tag")

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return NameAddr(
            self._uri or self.uri_text, self.display_name, set_param(self.params, name, value)
        )

    def with_uri(self, uri: Uri) -> NameAddr:
        return NameAddr(uri, self.display_name, self.params)

    def __str__(self) -> str:
        if self._raw is not None:
            return self._raw
        name = f"{self.display_name} " if self.display_name else ""
        return f"{name}<{self.uri_text}>{render_params(self.params)}"

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"


class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16): a number below 2**31 and a method."""

    __slots__ = ("method", "number")

    def __init__(self, number: int, method: str) -> None:
        self.number = number
        self.method = method

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = grammar.cseq_re.fullmatch(text)
        if match is None:
            raise ParseError("malformed CSeq")
        number, method = match.groups()
        return CSeq(check_cseq_number(number), method)

    def __str__(self) -> str:
        return f"{self.number} {self.method}"

    def __repr__(self) -> str:
        return f"CSeq({self.number}, {self.method!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CSeq) and self.number == other.number and self.method == other.method
        )

    def __hash__(self) -> int:
        return hash((self.number, self.method))


class MediaType:
    """Content-Type (RFC 3261 §20.15): type/subtype with parameters, compared without case."""

    __slots__ = ("params", "subtype", "type")

    def __init__(self, type_: str, subtype: str, params: Params = ()) -> None:
        self.type = type_.lower()
        self.subtype = subtype.lower()
        self.params = params

    @classmethod
    def parse(cls, text: str) -> MediaType:
        match = grammar.media_type_re.fullmatch(text)
        if match is None:
            raise ParseError("malformed Content-Type")
        type_, subtype, params = match.groups()
        return MediaType(type_, subtype, parse_params(params, "Content-Type"))

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        return find_param(self.params, name)

    def __str__(self) -> str:
        return f"{self.mime}{render_params(self.params)}"

    def __repr__(self) -> str:
        return f"MediaType({str(self)!r})"


def check_cseq_number(digits: str) -> int:
    """RFC 3261 §8.1.1.5: "The sequence number MUST be expressible as a 32-bit
    unsigned integer and MUST be less than 2**31." Checked on the length first, so
    a thousand digits cost nothing."""
    if len(digits) > 10 or int(digits) >= 2**31:
        raise ParseError("CSeq number too large")
    return int(digits)


def _port(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    port = int(text)
    if port > 65535:
        raise ParseError(f"port out of range in {what}")
    return port


def _uri(text: str, what: str) -> Uri:
    try:
        return parse_uri(text)
    except ParseError as exc:
        raise ParseError(f"bad URI in {what}: {exc.reason}") from None


# ---------------------------------------------------------------------------
# The ordered store


Field = tuple[str, str, str]  # (key, value, raw line)


class View(Generic[T]):
    """A typed reading of one header (``message.via``, ``message.cseq`` ...).

    Headers cache each view's result until that header is edited. Views are made
    once, at import, and registered by header key, so an edit drops exactly the
    views of its header without looking at the others.
    """

    __slots__ = ("key", "read")

    def __init__(self, key: str, read: Callable[[Headers], T]) -> None:
        self.key = key
        self.read = read
        _VIEWS_BY_KEY.setdefault(key, []).append(self)


_VIEWS_BY_KEY: dict[str, list[View[Any]]] = {}
_UNREAD = object()  # not in the cache (a view may read None)


class Headers:
    """Header fields in wire order, looked up without regard to case or compact form.

    Besides the ordered lines, the store keeps the values grouped by key, so a
    lookup is one dict access. Every mutation marks the store edited, updates the
    group of the key it changed and drops the typed values cached for that header,
    so a reader never sees a stale parse.
    """

    __slots__ = ("_cache", "_fields", "_groups", "edited")

    def __init__(
        self, fields: list[Field] | None = None, groups: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        self._fields: list[Field] = fields if fields is not None else []
        if groups is None:
            groups = {}
            for key, value, _ in self._fields:
                known = groups.get(key)
                groups[key] = (value,) if known is None else (*known, value)
        self._groups = groups
        # view -> what it read; the views of a header are dropped when it is edited.
        self._cache: dict[View[Any], Any] = {}
        self.edited = False

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Headers built by Wedge itself from ``(name, value)`` pairs."""
        return Headers([_field(name, value) for name, value in pairs])

    def copy(self) -> Headers:
        """An independent store with the same lines (the lines themselves are immutable).

        The typed values read so far come along: they describe the same lines, and
        nobody changes a typed value in place, so sharing them is safe and spares
        the copy (the request a proxy forwards) parsing them again.
        """
        other = Headers(list(self._fields), dict(self._groups))
        other._cache = self._cache.copy()
        other.edited = self.edited
        return other

    def grouped(self) -> dict[str, tuple[str, ...]]:
        """Every key present, with the values of its lines in order. Do not modify."""
        return self._groups

    # -- reading -----------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """``(key, value)`` for every field line, in order."""
        for key, value, _ in self._fields:
            yield key, value

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._groups

    def get(self, name: str) -> str | None:
        """The value of the first field line called ``name``, or None."""
        values = self._groups.get(header_key(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """The value of every field line called ``name``, in order."""
        return list(self._groups.get(header_key(name), ()))

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of a list header, across all its lines."""
        lines = self._groups.get(header_key(name))
        if not lines:
            return []
        if len(lines) == 1:
            return grammar.split_commas(lines[0])
        result: list[str] = []
        for value in lines:
            result.extend(grammar.split_commas(value))
        return result

    def raw_lines(self) -> list[str]:
        return [field[2] for field in self._fields]

    def remember(self, view: View[T], value: T) -> None:
        """Cache ``value`` as what ``view`` reads, for an editor that just wrote it."""
        self._cache[view] = value

    def typed(self, view: View[T]) -> T:
        """What ``view`` reads from these headers, cached until its header is edited."""
        value = self._cache.get(view, _UNREAD)
        if value is _UNREAD:
            value = self._cache[view] = view.read(self)
        return value  # type: ignore[no-any-return]

    # -- editing -----------------------------------------------------------

    def _touch(self, key: str, values: tuple[str, ...]) -> None:
        """Note an edit of ``key``, whose lines now hold ``values``, in order."""
        self.edited = True
        if values:
            self._groups[key] = values
        else:
            self._groups.pop(key, None)
        cache = self._cache
        if cache:
            for view in _VIEWS_BY_KEY.get(key, ()):
                cache.pop(view, None)

    def append(self, name: str, value: str) -> None:
        """Add a field line after all others."""
        field = _field(name, value)
        key = field[0]
        self._fields.append(field)
        self._touch(key, (*self._groups.get(key, ()), value))

    def prepend(self, name: str, value: str) -> None:
        """Add a field line above the first line of the same name (or at the top).

        That is where a proxy puts its Via and Record-Route (RFC 3261 §16.6).
        """
        field = _field(name, value)
        key = field[0]
        index = next((i for i, f in enumerate(self._fields) if f[0] == key), 0)
        self._fields.insert(index, field)
        self._touch(key, (value, *self._groups.get(key, ())))

    def set(self, name: str, value: str) -> None:
        """Replace every line called ``name`` by one line, where the first one stood."""
        field = _field(name, value)
        key = field[0]
        fields = self._fields
        found = [i for i, f in enumerate(fields) if f[0] == key]
        if not found:
            fields.append(field)
        else:
            fields[found[0]] = field
            for index in reversed(found[1:]):
                del fields[index]
        self._touch(key, (value,))

    def remove(self, name: str) -> int:
        """Remove every line called ``name``; return how many there were."""
        key = header_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        removed = before - len(self._fields)
        if removed:
            self._touch(key, ())
        return removed

    def pop_first_value(self, name: str) -> str | None:
        """Remove and return the first comma-separated value of ``name``.

        A proxy pops its own Via from a response and its own Route from a request
        this way; the rest of a shared line stays as it was written.
        """
        key = header_key(name)
        for index, field in enumerate(self._fields):
            if field[0] != key:
                continue
            values = grammar.split_commas(field[1])
            rest = self._groups[key][1:]
            if len(values) == 1:
                del self._fields[index]
            else:
                kept = ", ".join(values[1:])
                self._fields[index] = _field(field[2].partition(":")[0], kept)
                rest = (kept, *rest)
            self._touch(key, rest)
            return values[0]
        return None

    def replace_first_value(self, name: str, value: str) -> None:
        """Replace the first comma-separated value of ``name`` (e.g. the top Via)."""
        key = header_key(name)
        for index, field in enumerate(self._fields):
            if field[0] == key:
                values = grammar.split_commas(field[1])
                values[0] = value
                line = ", ".join(values)
                self._fields[index] = _field(field[2].partition(":")[0], line)
                self._touch(key, (line, *self._groups[key][1:]))
                return
        raise KeyError(name)


def _field(name: str, value: str) -> Field:
    key = header_key(name)
    spelled = _CANONICAL.get(key) or name.strip()
    return key, value, f"{spelled}: {value}"
