"""An order-preserving SDP model (RFC 8866) in which untouched lines pass through.

Theory of operation
-------------------
A session description is a list of ``<type>=<value>`` lines (RFC 8866 §5): the
session-level lines up to the first ``m=`` line, then one media section per ``m=``
line. :func:`parse` checks the structure and the few fields Wedge must understand to
relay media (``v=``, ``o=``, ``t=``, ``c=``, ``m=``) and keeps every line as a
:class:`Line` with the exact text it arrived with. Attribute values are parsed only
when someone asks, through the codec table of :mod:`sdp.attributes` (STYLE.md
convention 11: parse lazily, edit narrowly).

Each :class:`Line` remembers the value it was parsed with, and each section the
lines it was parsed with, so ``changed`` is a comparison, never a flag someone must
remember to set. Serialization follows from it:

* nothing changed: ``bytes(sd)`` is the input, byte for byte, line ends included;
* something changed: every line is written as ``<type>=<value>`` CRLF (RFC 8866 §5),
  lines nobody touched with their text as received.

Parsing is strict where a mistake would mislead the relay or the peer, and lenient
where RFC 8866 §5 asks parsers to be (a bare LF ends a line as well as CRLF; blank
lines after the body are ignored). A body that breaks a rule
raises :class:`SdpError` naming the rule and, when there is one, the line. Editing
calls check their arguments and raise :class:`ValueError`: a bad argument there is
our bug, not peer input.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sdp.attributes import TOKEN, Attribute, Direction
from sdp.errors import SdpError, show

__all__ = [
    "MAX_LINES",
    "MAX_MEDIA",
    "MAX_SIZE",
    "Connection",
    "Line",
    "MediaDescription",
    "Origin",
    "SessionDescription",
    "parse",
]

T = TypeVar("T")

# Limits on what one peer can make us hold (STYLE.md convention 9). Chrome's offer
# with audio and video is 5 KB in 150 lines; a SIP body is below 64 KB anyway.
MAX_SIZE = 65_536
"""Largest body accepted, in bytes (characters for ``str`` input)."""
MAX_LINES = 4_096
"""Most lines accepted: about 25 video sections of Chrome's size."""
MAX_MEDIA = 64
"""Most ``m=`` sections accepted; a SIP call carries a handful."""

# RFC 8866 §5: the type letters, and where each may appear. "k=" is obsolete but still
# legal to receive; "m=" starts a media section.
SESSION_TYPES = frozenset("vosiuepcbtrzka")
MEDIA_TYPES = frozenset("icbka")
_ONCE = frozenset("vos")  # RFC 8866 §5: exactly one v=, o= and s= per description

# RFC 8866 §9 (ABNF), rule by rule:
#   origin-field = "o=" username SP sess-id SP sess-version SP nettype SP addrtype SP
#                  unicast-address.  sess-id is read as any non-blank word (a deliberate
#                  deviation: a few stacks write letters there, and we never compute it);
#                  sess-version must be digits, since we increment it (RFC 3264 §8).
_ORIGIN = re.compile(r"(\S+) (\S+) (\d{1,20}) (\S+) (\S+) (\S+)\Z")
#   connection-field = "c=" nettype SP addrtype SP connection-address
_CONNECTION = re.compile(r"(\S+) (\S+) (\S+)\Z")
#   time-fields = "t=" start-time SP stop-time
_TIMING = re.compile(r"\d+ \d+\Z")
#   media-field = "m=" media SP port ["/" integer] SP proto 1*(SP fmt)
#   proto = token *("/" token); fmt = token.  Trailing blanks are tolerated.
_MEDIA = re.compile(
    rf"({TOKEN}) (\d{{1,5}})(?:/([1-9]\d{{0,4}}))? ({TOKEN}(?:/{TOKEN})*)((?: {TOKEN})+)[ \t]*\Z"
)
#   attribute = (attribute-name ":" attribute-value) / attribute-name
_ATTRIBUTE_NAME = re.compile(rf"{TOKEN}\Z")
_FORBIDDEN = re.compile(r"[\r\n\x00]")


def _check_text(value: str) -> str:
    # RFC 8866 §9: text and byte-string exclude NUL, CR and LF.
    if _FORBIDDEN.search(value):
        raise ValueError(f"SDP text cannot hold CR, LF or NUL: {value!r}")
    return value


def _check_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return port


def _is_rtp(proto: str) -> bool:
    # RFC 8866 §5.14 and the RTP profiles since: RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF ...
    return "RTP/" in proto.upper()


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 8866 §5.2)."""

    username: str
    session_id: str
    version: int
    """``sess-version``: RFC 3264 §8 increments it on every change."""
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        match = _ORIGIN.match(value)
        if match is None:
            raise SdpError(f"malformed o= line: {show(value)}")
        username, session_id, version, nettype, addrtype, address = match.groups()
        return cls(username, session_id, int(version), nettype, addrtype, address)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version}"
            f" {self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 8866 §5.7)."""

    nettype: str
    addrtype: str
    address: str
    """The connection address; multicast forms keep their ``/ttl/count`` suffix."""

    @classmethod
    def parse(cls, value: str) -> Connection:
        match = _CONNECTION.match(value)
        if match is None:
            raise SdpError(f"malformed c= line: {show(value)}")
        return cls(*match.groups())

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4 <address>`` or ``IN IP6 <address>`` for a unicast address."""
        if not address or " " in address:
            raise ValueError(f"bad connection address {address!r}")
        return cls("IN", "IP6" if ":" in address else "IP4", _check_text(address))

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


class Line:
    """One ``<type>=<value>`` line, with the value it was parsed with.

    A line made by our code has no parsed value and counts as changed until it is
    serialized and parsed again.
    """

    __slots__ = ("_original", "_type", "_value")

    def __init__(self, type: str, value: str) -> None:
        if len(type) != 1 or type not in SESSION_TYPES | {"m"}:
            raise ValueError(f"unknown SDP line type {type!r}")
        self._type = type
        self._value = _check_text(value)
        self._original: str | None = None

    @classmethod
    def attribute(cls, name: str, value: str | None = None) -> Line:
        """A new ``a=<name>[:<value>]`` line."""
        if not _ATTRIBUTE_NAME.match(name):
            raise ValueError(f"bad attribute name {name!r}")
        return cls("a", name if value is None else f"{name}:{value}")

    @classmethod
    def _parsed(cls, type: str, value: str) -> Line:
        line = cls.__new__(cls)
        line._type, line._value, line._original = type, value, value
        return line

    @property
    def type(self) -> str:
        """The type letter (RFC 8866 §5)."""
        return self._type

    @property
    def value(self) -> str:
        """The text after ``=``."""
        return self._value

    @value.setter
    def value(self, value: str) -> None:
        self._value = _check_text(value)

    @property
    def original(self) -> str | None:
        """The value this line was parsed with; None for a line our code made."""
        return self._original

    @property
    def changed(self) -> bool:
        """Whether the line differs from the one parsed (new lines always do)."""
        return self._value != self._original

    @property
    def name(self) -> str:
        """For ``a=`` lines the attribute name (RFC 8866 §5.13), else the type letter."""
        return self._value.partition(":")[0] if self._type == "a" else self._type

    @property
    def attribute_value(self) -> str | None:
        """For ``a=name:value`` the value; None for a flag such as ``a=rtcp-mux``."""
        _name, sep, value = self._value.partition(":")
        return value if sep else None

    def copy(self) -> Line:
        """An independent line with the same value and parse history."""
        line = Line.__new__(Line)
        line._type, line._value, line._original = self._type, self._value, self._original
        return line

    def __str__(self) -> str:
        return f"{self._type}={self._value}"

    def __repr__(self) -> str:
        mark = "*" if self.changed else ""
        return f"<Line{mark} {self}>"


class _Section:
    """Lines of the session level or of one media section, with the editing API."""

    __slots__ = ("_parsed_lines", "lines")

    def __init__(self, lines: list[Line]) -> None:
        self.lines = lines
        """The lines in order. Edit through the methods below or replace lines freely:
        changes are found by comparison with the parse."""
        self._parsed_lines = tuple(lines)

    @property
    def changed(self) -> bool:
        """Whether a line was edited, added, removed or moved since the parse."""
        if len(self.lines) != len(self._parsed_lines):
            return True
        if any(a is not b for a, b in zip(self.lines, self._parsed_lines, strict=True)):
            return True
        return any(line.changed for line in self.lines)

    # -- attributes by name ----------------------------------------------------------

    def find(self, name: str) -> Line | None:
        """The first ``a=<name>`` line, or None."""
        return next(self._iter(name), None)

    def find_all(self, name: str) -> list[Line]:
        """Every ``a=<name>`` line, in order."""
        return list(self._iter(name))

    def has_attribute(self, name: str) -> bool:
        """Whether an ``a=<name>`` line is present (flag or valued)."""
        return self.find(name) is not None

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=<name>``: ``""`` for a flag, None if absent."""
        line = self.find(name)
        return None if line is None else line.attribute_value or ""

    def attributes(self, name: str) -> list[str]:
        """The values of every ``a=<name>`` line (``""`` for flags)."""
        return [line.attribute_value or "" for line in self._iter(name)]

    def add_attribute(self, name: str, value: str | None = None) -> Line:
        """Add ``a=<name>[:<value>]`` after the last line of that name, else at the end."""
        line = Line.attribute(name, value)
        same = [i for i, old in enumerate(self.lines) if old.type == "a" and old.name == name]
        self.lines.insert(same[-1] + 1 if same else len(self.lines), line)
        return line

    def set_attribute(self, name: str, value: str | None = None) -> Line:
        """Make ``a=<name>[:<value>]`` the only line of that name, in the first one's place."""
        return self.replace_attribute(name, [value])[0]

    def remove_attribute(self, name: str, where: Callable[[str | None], bool] | None = None) -> int:
        """Remove ``a=<name>`` lines (those whose value ``where`` accepts); return how many."""
        keep = [
            line
            for line in self.lines
            if not (line.type == "a" and line.name == name)
            or (where is not None and not where(line.attribute_value))
        ]
        removed = len(self.lines) - len(keep)
        self.lines[:] = keep
        return removed

    def replace_attribute(self, name: str, values: Sequence[str | None]) -> list[Line]:
        """Make ``values`` the ``a=<name>`` lines, in place of the old ones.

        The new lines take the first old line's place; an old line whose text is asked
        for again is kept as it was (and stays unchanged). Without old lines the new
        ones go at the end. An empty ``values`` removes every ``a=<name>``.
        """
        new = [Line.attribute(name, value) for value in values]
        return self.replace_lines(lambda line: line.type == "a" and line.name == name, new)

    def replace_lines(self, match: Callable[[Line], bool], new: Sequence[Line]) -> list[Line]:
        """Put ``new`` where the first line ``match`` accepts stood, removing those lines.

        An old line with the same text as a new one is kept instead (it stays unchanged);
        without a matching line the new ones go at the end.
        """
        places = [i for i, line in enumerate(self.lines) if match(line)]
        old = [self.lines[i] for i in places]
        result: list[Line] = []
        for line in new:
            same = (o for o in old if str(o) == str(line) and all(o is not r for r in result))
            result.append(next(same, line))
        at = places[0] if places else len(self.lines)
        drop = set(places)
        # Nothing before places[0] is dropped, so ``at`` is still right after the drop.
        rest = [line for i, line in enumerate(self.lines) if i not in drop]
        self.lines[:] = rest[:at] + result + rest[at:]
        return result

    def _iter(self, name: str) -> Iterator[Line]:
        return (line for line in self.lines if line.type == "a" and line.name == name)

    # -- typed attributes through the codec table ---------------------------------------

    def get(self, kind: Attribute[T]) -> T | None:
        """The first ``a=`` line of ``kind``, parsed; None if absent.

        Raises:
            SdpError: the line is malformed (peer input is parsed only now).
        """
        line = self.find(kind.name)
        return None if line is None else _typed(kind, line)

    def get_all(self, kind: Attribute[T]) -> list[T]:
        """Every ``a=`` line of ``kind``, parsed, in order."""
        return [_typed(kind, line) for line in self._iter(kind.name)]

    def add(self, kind: Attribute[T], value: T) -> Line:
        """Add a line of ``kind`` after the last one of its name (see :meth:`add_attribute`)."""
        return self.add_attribute(kind.name, kind.format(value))

    def set(self, kind: Attribute[T], value: T) -> Line:
        """Make ``value`` the only line of ``kind``, in the first one's place."""
        return self.set_attribute(kind.name, kind.format(value))

    def remove(self, kind: Attribute[T], where: Callable[[T], bool] | None = None) -> int:
        """Remove lines of ``kind`` (those whose parsed value ``where`` accepts).

        Raises:
            SdpError: ``where`` was given and a line of ``kind`` is malformed.
        """
        if where is None:
            return self.remove_attribute(kind.name)
        test = where
        return self.remove_attribute(kind.name, lambda text: test(kind.parse(text or "")))

    # -- c= and direction ----------------------------------------------------------------

    def _connection_line(self) -> Line | None:
        return next((line for line in self.lines if line.type == "c"), None)

    @property
    def connection(self) -> Connection | None:
        """This level's ``c=`` line (RFC 8866 §5.7), or None."""
        line = self._connection_line()
        return None if line is None else Connection.parse(line.value)

    @property
    def direction(self) -> Direction | None:
        """This level's direction attribute (RFC 8866 §6.7), or None."""
        return next(
            (Direction(line.value) for line in self.lines if _is_direction(line)),
            None,
        )

    def set_direction(self, direction: Direction) -> None:
        """Make ``direction`` this level's only direction attribute, in the old one's place."""
        self.replace_lines(_is_direction, [Line.attribute(direction.value)])


_DIRECTIONS = frozenset(direction.value for direction in Direction)


def _is_direction(line: Line) -> bool:
    return line.type == "a" and line.value in _DIRECTIONS


def _typed(kind: Attribute[T], line: Line) -> T:
    value = line.attribute_value
    if value is None:
        raise SdpError(f"a={kind.name} without a value")
    return kind.parse(value)


@dataclass(frozen=True, slots=True)
class _MediaField:
    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> _MediaField:
        match = _MEDIA.match(value)
        if match is None:
            raise SdpError(f"malformed m= line: {show(value)}")
        media, port, count, proto, formats = match.groups()
        if int(port) > 65535:
            raise SdpError(f"m= port {port} above 65535")
        fields = cls(
            media, int(port), None if count is None else int(count), proto, tuple(formats.split())
        )
        if _is_rtp(proto):
            for fmt in fields.formats:
                # RFC 8866 §5.14 and RFC 3550 §5.1: RTP formats are 7-bit payload types.
                if not fmt.isdigit() or int(fmt) > 127:
                    raise SdpError(f"m= format {show(fmt)} is not an RTP payload type")
        return fields

    def __str__(self) -> str:
        count = "" if self.port_count is None else f"/{self.port_count}"
        formats = " ".join(self.formats)
        return f"{self.media} {self.port}{count} {self.proto} {formats}"


@functools.lru_cache(maxsize=1024)
def _origin(value: str) -> Origin:
    # bump_version and follow_origin read o= several times per rewrite.
    return Origin.parse(value)


@functools.lru_cache(maxsize=4096)
def _media_field(value: str) -> _MediaField:
    # Every m= property reads the line again; a rewrite reads it a dozen times, and
    # the same lines come back call after call. The cache keeps the parsed, immutable
    # fields by text (errors are not cached: they raise again, as they should).
    return _MediaField.parse(value)


class MediaDescription(_Section):
    """One media section: its ``m=`` line and the lines after it (RFC 8866 §5.14)."""

    __slots__ = ("mline",)

    def __init__(self, mline: Line, lines: list[Line]) -> None:
        super().__init__(lines)
        self.mline = mline
        """The ``m=`` line itself."""

    @property
    def changed(self) -> bool:
        """Whether the ``m=`` line or any line of the section changed."""
        return self.mline.changed or super().changed

    def all_lines(self) -> list[Line]:
        """The ``m=`` line followed by the section's lines."""
        return [self.mline, *self.lines]

    def copy(self) -> MediaDescription:
        """An independent section with the same lines and parse history."""
        copies = {id(line): line.copy() for line in (*self.lines, *self._parsed_lines)}
        copy = MediaDescription(self.mline.copy(), [copies[id(line)] for line in self.lines])
        copy._parsed_lines = tuple(copies[id(line)] for line in self._parsed_lines)
        return copy

    # -- the m= line ------------------------------------------------------------------

    def _field(self) -> _MediaField:
        return _media_field(self.mline.value)

    def _edit(self, **changes: Any) -> None:
        self.mline.value = str(replace(self._field(), **changes))

    @property
    def media(self) -> str:
        """``audio``, ``video``, ``application`` ..."""
        return self._field().media

    @media.setter
    def media(self, media: str) -> None:
        if not _ATTRIBUTE_NAME.match(media):
            raise ValueError(f"bad media type {media!r}")
        self._edit(media=media)

    @property
    def port(self) -> int:
        """The transport port; 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2)."""
        return self._field().port

    @port.setter
    def port(self, port: int) -> None:
        self._edit(port=_check_port(port))

    @property
    def port_count(self) -> int | None:
        """The ``/<number of ports>`` suffix (RFC 8866 §5.14), or None."""
        return self._field().port_count

    @port_count.setter
    def port_count(self, count: int | None) -> None:
        if count is not None and not 1 <= count <= 65535:
            raise ValueError(f"bad port count {count}")
        self._edit(port_count=count)

    @property
    def proto(self) -> str:
        """The transport protocol, e.g. ``RTP/AVP`` or ``UDP/TLS/RTP/SAVPF``."""
        return self._field().proto

    @proto.setter
    def proto(self, proto: str) -> None:
        if not all(_ATTRIBUTE_NAME.match(part) for part in proto.split("/")):
            raise ValueError(f"bad proto {proto!r}")
        self._edit(proto=proto)

    @property
    def formats(self) -> list[str]:
        """The media formats: RTP payload types as text, in preference order."""
        return list(self._field().formats)

    @formats.setter
    def formats(self, formats: Iterable[str]) -> None:
        items = tuple(formats)
        if not items or not all(_ATTRIBUTE_NAME.match(fmt) for fmt in items):
            raise ValueError(f"bad formats {items!r}: need one token or more")
        self._edit(formats=items)

    @property
    def is_rtp(self) -> bool:
        """Whether the proto is an RTP profile, so formats are payload types."""
        return _is_rtp(self.proto)

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload types (checked when parsed, for RTP protos)."""
        if not self.is_rtp:
            raise SdpError(f"m={self.media} with proto {show(self.proto)} carries no RTP")
        return [int(fmt) for fmt in self.formats]

    @property
    def rejected(self) -> bool:
        """Port zero: a rejected or disabled stream (RFC 3264 §6)."""
        return self.port == 0

    # -- c= and mid ---------------------------------------------------------------------

    def set_connection(self, address: str) -> None:
        """Point this section's ``c=`` line at ``address``, adding one if absent.

        A new ``c=`` goes after ``m=`` and any ``i=`` (RFC 8866 §5: m, i, c, b, k, a).
        """
        _set_connection(self, address, after=("i",))

    @property
    def mid(self) -> str | None:
        """The ``a=mid`` identification tag (RFC 5888 §4), or None."""
        return self.attribute("mid")


def _set_connection(section: _Section, address: str, after: tuple[str, ...]) -> None:
    connection = Connection.for_address(address)
    line = section._connection_line()
    if line is not None:
        old = Connection.parse(line.value)
        if (old.nettype, old.addrtype, old.address) != (
            connection.nettype,
            connection.addrtype,
            connection.address,
        ):
            line.value = str(connection)
        return
    at = 0
    for i, old_line in enumerate(section.lines):
        if old_line.type in after:
            at = i + 1
    section.lines.insert(at, Line("c", str(connection)))


class SessionDescription(_Section):
    """A whole session description: session-level lines, then :attr:`media`.

    ``str()`` and ``bytes()`` give the input unchanged when nothing was edited, and
    CRLF-terminated lines otherwise.
    """

    __slots__ = ("_parsed_media", "_parsed_origin", "_source", "_source_bytes", "media")

    def __init__(
        self,
        lines: list[Line],
        media: list[MediaDescription],
        source: str,
        source_bytes: bytes | None = None,
    ) -> None:
        super().__init__(lines)
        self.media = media
        """The media sections, in ``m=`` order (RFC 3264 §8: never removed or reordered)."""
        self._parsed_media = tuple(media)
        self._source = source
        self._source_bytes = source_bytes
        self._parsed_origin = self.origin

    @property
    def changed(self) -> bool:
        """Whether any line or section changed since the parse."""
        if len(self.media) != len(self._parsed_media) or any(
            a is not b for a, b in zip(self.media, self._parsed_media, strict=True)
        ):
            return True
        return super().changed or any(media.changed for media in self.media)

    def copy(self) -> SessionDescription:
        """An independent description with the same lines and parse history."""
        lines = {id(line): line.copy() for line in (*self.lines, *self._parsed_lines)}
        media = {id(section): section.copy() for section in (*self.media, *self._parsed_media)}
        copy = SessionDescription(
            [lines[id(line)] for line in self.lines],
            [media[id(section)] for section in self.media],
            self._source,
            self._source_bytes,
        )
        copy._parsed_lines = tuple(lines[id(line)] for line in self._parsed_lines)
        copy._parsed_media = tuple(media[id(section)] for section in self._parsed_media)
        copy._parsed_origin = self._parsed_origin
        return copy

    # -- o= ------------------------------------------------------------------------------

    def _origin_line(self) -> Line:
        line = next((line for line in self.lines if line.type == "o"), None)
        if line is None:
            raise ValueError("the o= line was removed")
        return line

    @property
    def origin(self) -> Origin:
        """The ``o=`` line (RFC 8866 §5.2)."""
        return _origin(self._origin_line().value)

    @origin.setter
    def origin(self, origin: Origin) -> None:
        text = _check_text(str(origin))
        match = _ORIGIN.match(text)
        if match is None or _origin(text) != origin:
            raise ValueError(f"bad origin {origin!r}")
        self._origin_line().value = text

    @property
    def parsed_origin(self) -> Origin:
        """The ``o=`` line as parsed, before any edit."""
        return self._parsed_origin

    # -- c= --------------------------------------------------------------------------------

    def set_connection(self, address: str) -> None:
        """Point the session-level ``c=`` at ``address``, adding one if absent.

        A new ``c=`` goes after the ``v= o= s= i= u= e= p=`` lines (RFC 8866 §5).
        """
        _set_connection(self, address, after=("v", "o", "s", "i", "u", "e", "p"))

    # -- serialization --------------------------------------------------------------------

    def all_lines(self) -> list[Line]:
        """Every line in order, ``m=`` lines included."""
        lines = list(self.lines)
        for media in self.media:
            lines.extend(media.all_lines())
        return lines

    def __str__(self) -> str:
        if not self.changed:
            return self._source
        return "".join(f"{line}\r\n" for line in self.all_lines())

    def __bytes__(self) -> bytes:
        if not self.changed and self._source_bytes is not None:
            return self._source_bytes
        return str(self).encode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        mark = " changed" if self.changed else ""
        return f"<SessionDescription {len(self.media)} media{mark}>"


# --- parsing ---------------------------------------------------------------------------


def parse(
    data: str | bytes,
    *,
    max_size: int = MAX_SIZE,
    max_lines: int = MAX_LINES,
    max_media: int = MAX_MEDIA,
) -> SessionDescription:
    """Parse a session description; raise :class:`SdpError` naming what is wrong.

    ``bytes`` are read as UTF-8 (RFC 8866 §5); bytes that are not UTF-8 are kept as
    they are (surrogate escapes) so that they pass through, and fail only if a field
    that must be ASCII holds them.
    """
    if len(data) > max_size:
        raise SdpError(f"SDP larger than {max_size} bytes")
    if isinstance(data, bytes):
        text = data.decode("utf-8", "surrogateescape")
        source_bytes: bytes | None = data
    else:
        text = data
        try:
            text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise SdpError("SDP text is not encodable as UTF-8") from None
        source_bytes = None
    rows = _split(text, max_lines)
    session, sections = _sections(rows, max_media)
    description = SessionDescription(session, sections, text, source_bytes)
    _check_connections(session, sections)
    return description


def _split(text: str, max_lines: int) -> list[tuple[int, str, str]]:
    """``(line number, type, value)`` rows; LF or CRLF ends, trailing blank lines ignored."""
    raw = text.split("\n")
    if raw[-1] == "":
        raw.pop()
    # RFC 8866 §5 asks for tolerance; an empty line or two after the body is harmless.
    while raw and raw[-1] in ("", "\r"):
        raw.pop()
    if not raw:
        raise SdpError("empty SDP")
    if len(raw) > max_lines:
        raise SdpError(f"SDP has more than {max_lines} lines")
    rows = []
    for number, line in enumerate(raw, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if len(line) < 2 or line[1] != "=":
            what = "empty line" if not line else f"not <type>=<value>: {show(line)}"
            raise SdpError(f"line {number}: {what}")
        if "\r" in line or "\x00" in line:
            raise SdpError(f"line {number}: stray CR or NUL")
        rows.append((number, line[0], line[2:]))
    return rows


def _sections(
    rows: list[tuple[int, str, str]], max_media: int
) -> tuple[list[Line], list[MediaDescription]]:
    number, kind, value = rows[0]
    # RFC 8866 §5: "v=" first, and RFC 8866 §5.1 has only version 0.
    if kind != "v":
        raise SdpError("v= must be the first line")
    if value != "0":
        raise SdpError(f"unsupported SDP version {show(value)}")
    session: list[Line] = []
    sections: list[MediaDescription] = []
    seen: set[str] = set()
    for number, kind, value in rows:
        if kind == "m":
            if len(sections) == max_media:
                raise SdpError(f"more than {max_media} m= lines")
            _check_field("m", value, number)
            sections.append(MediaDescription(Line._parsed("m", value), []))
            continue
        allowed = MEDIA_TYPES if sections else SESSION_TYPES
        if kind not in allowed:
            if kind in SESSION_TYPES:
                raise SdpError(f"line {number}: {kind}= not allowed in a media section")
            raise SdpError(f"line {number}: unknown line type {show(kind)}")
        if not sections and kind in _ONCE:
            if kind in seen:
                raise SdpError(f"line {number}: second {kind}= line")
            seen.add(kind)
        _check_field(kind, value, number)
        line = Line._parsed(kind, value)
        (sections[-1].lines if sections else session).append(line)
    for kind in "ost":
        if not any(line.type == kind for line in session):
            raise SdpError(f"missing {kind}= line")
    for section in sections:
        section._parsed_lines = tuple(section.lines)
    return session, sections


def _check_field(kind: str, value: str, number: int) -> None:
    try:
        if kind == "o":
            Origin.parse(value)
        elif kind == "c":
            Connection.parse(value)
        elif kind == "m":
            _MediaField.parse(value)
        elif kind == "t" and not _TIMING.match(value):
            raise SdpError(f"malformed t= line: {show(value)}")
        elif kind == "a" and not _ATTRIBUTE_NAME.match(value.partition(":")[0]):
            raise SdpError(f"bad attribute name: {show(value)}")
    except SdpError as error:
        raise SdpError(f"line {number}: {error.reason}") from None


def _check_connections(session: list[Line], sections: list[MediaDescription]) -> None:
    # RFC 8866 §5.7: a c= at session level, or in every media section. Streams with
    # port zero are let off: several stacks drop c= from the sections they reject.
    if any(line.type == "c" for line in session):
        return
    for index, section in enumerate(sections, start=1):
        if section.port != 0 and not any(line.type == "c" for line in section.lines):
            raise SdpError(f"m= line {index} has no c= line")
