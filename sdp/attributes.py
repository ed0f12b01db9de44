"""Typed values of SDP attributes, and the table that maps a name to its codec.

Each row of :data:`ATTRIBUTES` is an :class:`Attribute`: a name with a ``parse``
function (attribute value text -> typed value, raising :class:`SdpError`) and a
``format`` function (typed value -> text), in the manner of aioice's STUN attribute
table. Sections of :mod:`sdp.model` use a row to read or write lines::

    for rtpmap in media.get_all(RTPMAP):
        ...
    media.set(SETUP, Setup.ACTIVE)

Each regex below is written from the ABNF of the RFC named beside it. Values that
are written in canonical form by a peer (Chrome's, Asterisk's) come back out of
``format(parse(text))`` unchanged; the model does not rely on that, since untouched
lines are never re-rendered.

Why not sdp-transform's grammar: it was measured against what we need and does not
save work here. Its parser converts every value that looks numeric (a ufrag
``"0123"`` becomes the integer 123), its candidate rule reads ``tcpfield`` where
RFC 6544 writes ``tcptype`` and drops other extensions, its crypto rule leaves the
RFC 4568 key parameters unsplit, ``\\d*`` lets empty numbers through, and its
``msid-semantic`` rule splits Chrome's ``a=msid-semantic: WMS`` into an empty
semantic and a token ``WMS`` (hence the double space its writer produces). The tests
use it only as an independent oracle for the fields both parse.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sdp.errors import SdpError, show

__all__ = [
    "ATTRIBUTES",
    "CANDIDATE",
    "CRYPTO",
    "DTLS_ATTRIBUTES",
    "EXTMAP",
    "FINGERPRINT",
    "FMTP",
    "GROUP",
    "ICE_ATTRIBUTES",
    "ICE_OPTIONS",
    "ICE_PWD",
    "ICE_UFRAG",
    "MID",
    "MSID",
    "RTCP",
    "RTCP_FB",
    "RTPMAP",
    "SETUP",
    "SSRC",
    "SSRC_GROUP",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Candidate",
    "Crypto",
    "Direction",
    "Extmap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "KeyParam",
    "Msid",
    "Rtcp",
    "RtcpFb",
    "RtpMap",
    "Setup",
    "Ssrc",
    "SsrcGroup",
    "parse_attribute",
]

T = TypeVar("T")

# RFC 8866 §9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A
#   / %x5E-7E. No "/", no ":", no SP; the rules below rely on that.
TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
# RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/"
ICE_CHARS = r"[A-Za-z0-9+/]"
# Trailing blanks are tolerated on every value: a few stacks emit them, none means them.
_END = r"[ \t]*\Z"


def _match(pattern: re.Pattern[str], name: str, value: str) -> re.Match[str]:
    match = pattern.match(value)
    if match is None:
        raise SdpError(f"malformed a={name}: {show(value)}")
    return match


def _payload_type(text: str, name: str) -> int:
    # RFC 3550 §5.1: the payload type is 7 bits.
    number = int(text)
    if number > 127:
        raise SdpError(f"a={name}: payload type {number} above 127")
    return number


@dataclass(frozen=True, slots=True)
class Attribute(Generic[T]):
    """One row of the codec table: an ``a=`` name and how its value is read and written."""

    name: str
    """The attribute name, as in ``a=<name>:<value>`` (case-sensitive)."""
    parse: Callable[[str], T]
    """Attribute value text to typed value; raises :class:`SdpError` when malformed."""
    format: Callable[[T], str]
    """Typed value to attribute value text."""


# --- RFC 8866 §6.6 rtpmap, §6.15 fmtp; RFC 3551 static payload types -------------------


_RTPMAP = re.compile(rf"(\d{{1,3}}) ({TOKEN})/(\d{{1,10}})(?:/(\d{{1,3}}))?{_END}")


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    """Encoding name as written; compare with :meth:`matches`, names are case-insensitive."""
    clock_rate: int
    channels: int | None = None
    """Audio channels; absent means one (RFC 8866 §6.6)."""

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        match = _match(_RTPMAP, "rtpmap", value)
        pt, encoding, rate, channels = match.groups()
        return cls(
            _payload_type(pt, "rtpmap"),
            encoding,
            int(rate),
            None if channels is None else int(channels),
        )

    def __str__(self) -> str:
        channels = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{channels}"

    def matches(
        self, name: str, clock_rate: int | None = None, channels: int | None = None
    ) -> bool:
        """Whether this is codec ``name`` (RFC 4855 §3: media subtype names ignore case)."""
        if self.encoding.lower() != name.lower():
            return False
        if clock_rate is not None and clock_rate != self.clock_rate:
            return False
        return channels is None or channels == (self.channels or 1)


def _static(pt: int, encoding: str, rate: int, channels: int | None = None) -> tuple[int, RtpMap]:
    return pt, RtpMap(pt, encoding, rate, channels)


STATIC_PAYLOAD_TYPES: Mapping[int, RtpMap] = dict(
    [
        # RFC 3551 §6, Tables 4 and 5: formats an m= line may list without a=rtpmap.
        _static(0, "PCMU", 8000),
        _static(3, "GSM", 8000),
        _static(4, "G723", 8000),
        _static(5, "DVI4", 8000),
        _static(6, "DVI4", 16000),
        _static(7, "LPC", 8000),
        _static(8, "PCMA", 8000),
        _static(9, "G722", 8000),
        _static(10, "L16", 44100, 2),
        _static(11, "L16", 44100),
        _static(12, "QCELP", 8000),
        _static(13, "CN", 8000),
        _static(14, "MPA", 90000),
        _static(15, "G728", 8000),
        _static(16, "DVI4", 11025),
        _static(17, "DVI4", 22050),
        _static(18, "G729", 8000),
        _static(25, "CelB", 90000),
        _static(26, "JPEG", 90000),
        _static(28, "nv", 90000),
        _static(31, "H261", 90000),
        _static(32, "MPV", 90000),
        _static(33, "MP2T", 90000),
        _static(34, "H263", 90000),
    ]
)
"""The static RTP payload types of RFC 3551 §6, by number."""


_FMTP = re.compile(r"(\d{1,3}) (.*)\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Fmtp:
    """``a=fmtp:<format> <format specific parameters>`` (RFC 8866 §6.15)."""

    payload_type: int
    parameters: str
    """The parameters as written; most codecs use ``key=value;key=value`` (see :meth:`items`)."""

    @classmethod
    def parse(cls, value: str) -> Fmtp:
        pt, parameters = _match(_FMTP, "fmtp", value).groups()
        return cls(_payload_type(pt, "fmtp"), parameters)

    def __str__(self) -> str:
        return f"{self.payload_type} {self.parameters}"

    def items(self) -> list[tuple[str, str | None]]:
        """The ``key[=value]`` parameters split on ``;`` (blanks around them ignored)."""
        pairs: list[tuple[str, str | None]] = []
        for item in self.parameters.split(";"):
            key, sep, val = item.strip().partition("=")
            if key:
                pairs.append((key, val if sep else None))
        return pairs

    def get(self, key: str) -> str | None:
        """The value of parameter ``key`` (e.g. ``apt`` of rtx, RFC 4588), or None."""
        return next((val for k, val in self.items() if k == key), None)


# --- RFC 4585 §4.2 rtcp-fb; RFC 3605 §2.1 rtcp -----------------------------------------

_RTCP_FB = re.compile(rf"(\*|\d{{1,3}}) ({TOKEN})(?: ([^\r\n]*?))?{_END}")


@dataclass(frozen=True, slots=True)
class RtcpFb:
    """``a=rtcp-fb:<pt or *> <type> [<parameters>]`` (RFC 4585 §4.2)."""

    payload_type: int | None
    """None for ``*``, feedback for every format of the m= line."""
    type: str
    parameters: str | None = None

    @classmethod
    def parse(cls, value: str) -> RtcpFb:
        pt, kind, parameters = _match(_RTCP_FB, "rtcp-fb", value).groups()
        return cls(None if pt == "*" else _payload_type(pt, "rtcp-fb"), kind, parameters)

    def __str__(self) -> str:
        pt = "*" if self.payload_type is None else str(self.payload_type)
        tail = "" if self.parameters is None else f" {self.parameters}"
        return f"{pt} {self.type}{tail}"


_RTCP = re.compile(rf"(\d{{1,5}})(?: ({TOKEN}) ({TOKEN}) (\S+))?{_END}")


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    @classmethod
    def parse(cls, value: str) -> Rtcp:
        port, nettype, addrtype, address = _match(_RTCP, "rtcp", value).groups()
        if int(port) > 65535:
            raise SdpError(f"a=rtcp: port {port} above 65535")
        return cls(int(port), nettype, addrtype, address)

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"


# --- RFC 8839 §5.1 candidate, §5.4 ice-ufrag/ice-pwd, §5.6 ice-options -----------------

_CANDIDATE_HEAD = re.compile(
    # foundation = 1*32ice-char; component-id = 1*3DIGIT; transport = "UDP" / token;
    # priority = 1*10DIGIT; connection-address; port; "typ" SP cand-type
    rf"({ICE_CHARS}{{1,32}}) (\d{{1,3}}) ({TOKEN}) (\d{{1,10}}) (\S+) (\d{{1,5}}) typ ({TOKEN})"
    r"((?: \S+ \S+)*)" + _END
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """``a=candidate:`` (RFC 8839 §5.1): one ICE candidate."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    """``host``, ``srflx``, ``prflx`` or ``relay`` (RFC 8445 §5.1.1)."""
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()
    """Name/value pairs after the fixed fields, e.g. ``("tcptype", "passive")`` (RFC 6544)."""

    @classmethod
    def parse(cls, value: str) -> Candidate:
        match = _match(_CANDIDATE_HEAD, "candidate", value)
        foundation, component, transport, priority, address, port, kind, tail = match.groups()
        words = tail.split()
        pairs = [(words[i], words[i + 1]) for i in range(0, len(words), 2)]
        related_address: str | None = None
        related_port: int | None = None
        # RFC 8839 §5.1: [SP rel-addr] [SP rel-port] come first, then extensions.
        if pairs and pairs[0][0] == "raddr":
            related_address = pairs.pop(0)[1]
        if pairs and pairs[0][0] == "rport":
            text = pairs.pop(0)[1]
            if not text.isdigit() or int(text) > 65535:
                raise SdpError(f"malformed a=candidate: rport {show(text)}")
            related_port = int(text)
        if int(port) > 65535 or not 1 <= int(component) <= 256:
            raise SdpError(f"malformed a=candidate: {show(value)}")
        return cls(
            foundation,
            int(component),
            transport,
            int(priority),
            address,
            int(port),
            kind,
            related_address,
            related_port,
            tuple(pairs),
        )

    def __str__(self) -> str:
        text = (
            f"{self.foundation} {self.component} {self.transport} {self.priority}"
            f" {self.address} {self.port} typ {self.type}"
        )
        if self.related_address is not None:
            text += f" raddr {self.related_address}"
        if self.related_port is not None:
            text += f" rport {self.related_port}"
        return text + "".join(f" {name} {val}" for name, val in self.extensions)

    def extension(self, name: str) -> str | None:
        """The value of extension ``name`` (e.g. ``generation``), or None."""
        return next((val for key, val in self.extensions if key == name), None)


_UFRAG = re.compile(rf"{ICE_CHARS}{{4,256}}{_END}")
_PWD = re.compile(rf"{ICE_CHARS}{{22,256}}{_END}")


def _parse_ufrag(value: str) -> str:
    # RFC 8839 §5.4: ufrag = 4*256ice-char
    return _match(_UFRAG, "ice-ufrag", value).group().rstrip()


def _parse_pwd(value: str) -> str:
    # RFC 8839 §5.4: password = 22*256ice-char
    return _match(_PWD, "ice-pwd", value).group().rstrip()


_ICE_OPTIONS = re.compile(rf"{TOKEN}(?: {TOKEN})*{_END}")


def _parse_ice_options(value: str) -> tuple[str, ...]:
    # RFC 8839 §5.6: ice-options = ice-option-tag *(SP ice-option-tag). Tags are
    # read as tokens: old Chrome wrote "google-ice", which ice-char does not allow.
    return tuple(_match(_ICE_OPTIONS, "ice-options", value).group().split())


# --- RFC 8122 §5 fingerprint; RFC 4145 §4 setup ----------------------------------------

_FINGERPRINT = re.compile(rf"({TOKEN}) ([0-9A-Fa-f]{{2}}(?::[0-9A-Fa-f]{{2}})*){_END}")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <hex pairs>`` (RFC 8122 §5)."""

    hash_function: str
    """e.g. ``sha-256``; compare ignoring case (RFC 8122 §5, hash-func is case-insensitive)."""
    fingerprint: str
    """Colon-separated hex pairs, as written (RFC 8122 asks for upper case)."""

    @classmethod
    def parse(cls, value: str) -> Fingerprint:
        hash_function, fingerprint = _match(_FINGERPRINT, "fingerprint", value).groups()
        return cls(hash_function, fingerprint)

    @classmethod
    def from_digest(cls, hash_function: str, digest: bytes) -> Fingerprint:
        """The attribute for a certificate digest: upper-case hex pairs (RFC 8122 §5)."""
        return cls(hash_function, ":".join(f"{byte:02X}" for byte in digest))

    def __str__(self) -> str:
        return f"{self.hash_function} {self.fingerprint}"

    def digest(self) -> bytes:
        """The fingerprint as bytes."""
        return bytes.fromhex(self.fingerprint.replace(":", ""))


class Setup(StrEnum):
    """``a=setup:`` (RFC 4145 §4): which side opens the connection (DTLS: RFC 5763 §5)."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"


def _parse_setup(value: str) -> Setup:
    try:
        return Setup(value.rstrip())
    except ValueError:
        raise SdpError(f"malformed a=setup: {show(value)}") from None


# --- RFC 5888 §4 mid, §5 group ---------------------------------------------------------

_MID = re.compile(rf"{TOKEN}{_END}")


def _parse_mid(value: str) -> str:
    # RFC 5888 §4: identification-tag = token
    return _match(_MID, "mid", value).group().rstrip()


_GROUP = re.compile(rf"({TOKEN})((?: {TOKEN})*){_END}")


@dataclass(frozen=True, slots=True)
class Group:
    """``a=group:<semantics> *(SP <mid>)`` (RFC 5888 §5), e.g. BUNDLE (RFC 9143)."""

    semantics: str
    mids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Group:
        semantics, mids = _match(_GROUP, "group", value).groups()
        return cls(semantics, tuple(mids.split()))

    def __str__(self) -> str:
        return " ".join((self.semantics, *self.mids))


# --- RFC 4568 §9.1 crypto --------------------------------------------------------------

_CRYPTO = re.compile(r"(\d{1,9})[ \t]+([A-Za-z0-9_]+)[ \t]+(\S+)((?:[ \t]+\S+)*)" + _END)
# RFC 4568 §9.2 (SRTP key-info): key-salt ["|" lifetime] ["|" mki];
#   key-salt = 1*(base64); lifetime = ["2^"] 1*DIGIT; mki = mki-value ":" mki-length
_INLINE = re.compile(r"inline:([A-Za-z0-9+/=]+)(?:\|((?:2\^)?\d+))?(?:\|(\d+):(\d{1,3}))?\Z")


@dataclass(frozen=True, slots=True)
class KeyParam:
    """One ``inline:<key||salt>[|lifetime][|MKI:length]`` key parameter (RFC 4568 §6.1)."""

    key_salt: str
    """Base64 of the master key followed by the master salt."""
    lifetime: str | None = None
    """As written: ``2^20`` or ``1048576``."""
    mki: tuple[int, int] | None = None
    """(MKI value, MKI length in bytes), or None."""

    @classmethod
    def parse(cls, text: str) -> KeyParam:
        match = _INLINE.match(text)
        if match is None:
            raise SdpError(f"malformed a=crypto key parameter: {show(text)}")
        key_salt, lifetime, mki_value, mki_length = match.groups()
        if mki_value is not None and not 1 <= int(mki_length) <= 128:
            raise SdpError(f"a=crypto: MKI length {mki_length} not in 1..128")
        mki = None if mki_value is None else (int(mki_value), int(mki_length))
        return cls(key_salt, lifetime, mki)

    @classmethod
    def from_key(cls, key_salt: bytes) -> KeyParam:
        """The key parameter carrying ``key_salt`` (master key then master salt)."""
        return cls(base64.b64encode(key_salt).decode("ascii"))

    def __str__(self) -> str:
        text = f"inline:{self.key_salt}"
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki[0]}:{self.mki[1]}"
        return text

    def key_bytes(self) -> bytes:
        """The decoded master key and salt; raises :class:`SdpError` if not base64."""
        try:
            return base64.b64decode(self.key_salt, validate=True)
        except binascii.Error:
            raise SdpError("a=crypto: key is not base64") from None


@dataclass(frozen=True, slots=True)
class Crypto:
    """``a=crypto:<tag> <suite> <key-params> [<session-params>]`` (RFC 4568 §9.1)."""

    tag: int
    suite: str
    """e.g. ``AES_CM_128_HMAC_SHA1_80`` (RFC 4568 §6.2)."""
    keys: tuple[KeyParam, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Crypto:
        tag, suite, key_params, session = _match(_CRYPTO, "crypto", value).groups()
        keys = tuple(KeyParam.parse(item) for item in key_params.split(";"))
        return cls(int(tag), suite, keys, tuple(session.split()))

    def __str__(self) -> str:
        keys = ";".join(str(key) for key in self.keys)
        return " ".join((str(self.tag), self.suite, keys, *self.session_params))


# --- RFC 8285 §7 extmap ----------------------------------------------------------------

_EXTMAP = re.compile(
    r"(\d{1,5})(?:/(sendrecv|sendonly|recvonly|inactive))? (\S+)(?: ([^\r\n]*?))?" + _END
)


@dataclass(frozen=True, slots=True)
class Extmap:
    """``a=extmap:<id>[/<direction>] <uri> [<attributes>]`` (RFC 8285 §7)."""

    id: int
    uri: str
    direction: str | None = None
    attributes: str | None = None

    @classmethod
    def parse(cls, value: str) -> Extmap:
        ident, direction, uri, attributes = _match(_EXTMAP, "extmap", value).groups()
        if not 1 <= int(ident) <= 65535:
            raise SdpError(f"a=extmap: id {ident} out of range")
        return cls(int(ident), uri, direction, attributes)

    def __str__(self) -> str:
        direction = "" if self.direction is None else f"/{self.direction}"
        tail = "" if self.attributes is None else f" {self.attributes}"
        return f"{self.id}{direction} {self.uri}{tail}"


# --- RFC 5576 §4.1 ssrc, §4.2 ssrc-group; RFC 8830 §2 msid -----------------------------

_SSRC = re.compile(rf"(\d{{1,10}}) ({TOKEN})(?::([^\r\n]*))?\Z")


def _ssrc_id(text: str, name: str) -> int:
    number = int(text)
    if number > 0xFFFFFFFF:
        raise SdpError(f"a={name}: SSRC {number} above 2^32-1")
    return number


@dataclass(frozen=True, slots=True)
class Ssrc:
    """``a=ssrc:<ssrc-id> <attribute>[:<value>]`` (RFC 5576 §4.1)."""

    ssrc: int
    attribute: str
    value: str | None = None

    @classmethod
    def parse(cls, value: str) -> Ssrc:
        ssrc, attribute, val = _match(_SSRC, "ssrc", value).groups()
        return cls(_ssrc_id(ssrc, "ssrc"), attribute, val)

    def __str__(self) -> str:
        tail = "" if self.value is None else f":{self.value}"
        return f"{self.ssrc} {self.attribute}{tail}"


_SSRC_GROUP = re.compile(rf"({TOKEN})((?: \d{{1,10}})*){_END}")


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """``a=ssrc-group:<semantics> *(SP <ssrc-id>)`` (RFC 5576 §4.2), e.g. FID (RFC 4588)."""

    semantics: str
    ssrcs: tuple[int, ...] = ()

    @classmethod
    def parse(cls, value: str) -> SsrcGroup:
        semantics, ssrcs = _match(_SSRC_GROUP, "ssrc-group", value).groups()
        return cls(semantics, tuple(_ssrc_id(s, "ssrc-group") for s in ssrcs.split()))

    def __str__(self) -> str:
        return " ".join((self.semantics, *map(str, self.ssrcs)))


_MSID = re.compile(rf"({TOKEN})(?: ({TOKEN}))?{_END}")


@dataclass(frozen=True, slots=True)
class Msid:
    """``a=msid:<stream id> [<track id>]`` (RFC 8830 §2); ``-`` means no stream."""

    stream_id: str
    track_id: str | None = None

    @classmethod
    def parse(cls, value: str) -> Msid:
        stream_id, track_id = _match(_MSID, "msid", value).groups()
        if len(stream_id) > 64 or (track_id is not None and len(track_id) > 64):
            raise SdpError("a=msid: identifier longer than 64 characters")
        return cls(stream_id, track_id)

    def __str__(self) -> str:
        return self.stream_id if self.track_id is None else f"{self.stream_id} {self.track_id}"


# --- RFC 8866 §6.7 and RFC 3264 §5.1 direction attributes ------------------------------


class Direction(StrEnum):
    """``a=sendrecv`` / ``sendonly`` / ``recvonly`` / ``inactive`` (RFC 8866 §6.7)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """Whether the side that wrote this attribute sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """Whether the side that wrote this attribute receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, *, sends: bool, receives: bool) -> Direction:
        """The attribute for a side that sends and/or receives."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the other side: sendonly <-> recvonly (RFC 3264 §6.1)."""
        return Direction.of(sends=self.receives, receives=self.sends)


# --- the table -------------------------------------------------------------------------

RTPMAP: Attribute[RtpMap] = Attribute("rtpmap", RtpMap.parse, str)
FMTP: Attribute[Fmtp] = Attribute("fmtp", Fmtp.parse, str)
RTCP_FB: Attribute[RtcpFb] = Attribute("rtcp-fb", RtcpFb.parse, str)
RTCP: Attribute[Rtcp] = Attribute("rtcp", Rtcp.parse, str)
CANDIDATE: Attribute[Candidate] = Attribute("candidate", Candidate.parse, str)
ICE_UFRAG: Attribute[str] = Attribute("ice-ufrag", _parse_ufrag, str)
ICE_PWD: Attribute[str] = Attribute("ice-pwd", _parse_pwd, str)
ICE_OPTIONS: Attribute[tuple[str, ...]] = Attribute("ice-options", _parse_ice_options, " ".join)
FINGERPRINT: Attribute[Fingerprint] = Attribute("fingerprint", Fingerprint.parse, str)
SETUP: Attribute[Setup] = Attribute("setup", _parse_setup, str)
MID: Attribute[str] = Attribute("mid", _parse_mid, str)
GROUP: Attribute[Group] = Attribute("group", Group.parse, str)
CRYPTO: Attribute[Crypto] = Attribute("crypto", Crypto.parse, str)
EXTMAP: Attribute[Extmap] = Attribute("extmap", Extmap.parse, str)
SSRC: Attribute[Ssrc] = Attribute("ssrc", Ssrc.parse, str)
SSRC_GROUP: Attribute[SsrcGroup] = Attribute("ssrc-group", SsrcGroup.parse, str)
MSID: Attribute[Msid] = Attribute("msid", Msid.parse, str)

ATTRIBUTES: Mapping[str, Attribute[Any]] = {
    row.name: row
    for row in (
        RTPMAP,
        FMTP,
        RTCP_FB,
        RTCP,
        CANDIDATE,
        ICE_UFRAG,
        ICE_PWD,
        ICE_OPTIONS,
        FINGERPRINT,
        SETUP,
        MID,
        GROUP,
        CRYPTO,
        EXTMAP,
        SSRC,
        SSRC_GROUP,
        MSID,
    )
}
"""Every typed attribute, by name. Direction attributes are flags: see :class:`Direction`."""


def parse_attribute(name: str, value: str) -> object:
    """The typed value of ``a=<name>:<value>`` through :data:`ATTRIBUTES`.

    Raises:
        KeyError: ``name`` has no row in the table.
        SdpError: the value is malformed.
    """
    return ATTRIBUTES[name].parse(value)


# --- attribute families the rewrite profiles act on ------------------------------------

ICE_ATTRIBUTES = frozenset(
    {
        # RFC 8839 §5, and RFC 8840 for end-of-candidates
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-lite",
        "ice-mismatch",
        "ice-ufrag",
        "ice-pwd",
        "ice-pacing",
        "ice-options",
    }
)
"""ICE attributes: they describe one hop's transport and never cross the relay."""

DTLS_ATTRIBUTES = frozenset({"fingerprint", "setup", "connection", "tls-id"})
"""DTLS-SRTP attributes (RFC 8122, RFC 4145, RFC 8842): per hop as well."""
