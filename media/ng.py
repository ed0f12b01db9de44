"""rtpengine's ng control protocol, pure: bencode, cookies, commands and their replies.

An ng message is a cookie, one space and a bencoded dictionary (rtpengine's
``README.md``, "The ng Control Protocol"). The client picks the cookie; the reply
carries it back, and rtpengine answers a retransmission (same cookie) from its cache
instead of running the command twice. This module builds the requests and reads the
replies; :mod:`media.rtpengine` owns the socket, the clock and the cookies.

Vocabulary. rtpengine names a call by its Call-ID and each party by its dialog tag,
like :class:`~media.control.Negotiation`, with one twist: in an ``answer`` the
``from-tag`` is still the *offerer's* tag (the From tag of the SIP transaction that
carried the offer) and ``to-tag`` the answerer's, whereas a Negotiation always names
the sender of the description first. :func:`answer` swaps them.

Flags come from the destination leg's :class:`~sdp.rewrite.Profile`, the one whose
SDP rtpengine writes (:func:`leg_options`):

======================  ==========================  ============================
destination             what rtpengine is told      why
======================  ==========================  ============================
AVP (a PBX)             ``RTP/AVP``, ICE remove,    plain RTP, RTCP on its own
                        DTLS off, SDES off,         port (``a=rtcp``), and no
                        rtcp-mux demux,             browser-only attributes
                        strip-extmap
SAVP_SDES (TLS trunk)   ``RTP/SAVP``, ICE remove,   SDES keys, and only the
                        DTLS off, SDES no-<every    suite Teams-style trunks
                        suite but                   take
                        AES_CM_128_HMAC_SHA1_80>
WEBRTC (a browser)      ``UDP/TLS/RTP/SAVPF``, ICE  what Chrome wants (RFC 8829,
                        force + ICE-lite on that    RFC 8834); ICE-lite and DTLS
                        side, DTLS passive, SDES    passive as the built-in relay
                        off, rtcp-mux offer +       does: the browser drives ICE
                        require, generate-mid       and starts the handshake
======================  ==========================  ============================

rtpengine 10.5 (Debian 12) has no ``SDES-only-<suite>``; listing every other suite
as ``no-<suite>`` means the same there and in later versions. It also strips
``a=group:BUNDLE`` (BUNDLE came in 14.0), and Chrome with the ``max-bundle`` policy
refuses such an answer; :func:`restore_bundle` puts the group back where one stream
makes it true.

Nothing here reads the clock, draws a random number or touches a socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from media.control import CallStats, LegStats, MediaError, Negotiation
from sdp.rewrite import Profile

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_MESSAGE",
    "SDES_SUITES",
    "BencodeError",
    "Encodable",
    "Message",
    "NgError",
    "Reply",
    "Value",
    "answer",
    "bdecode",
    "bencode",
    "call_stats",
    "check",
    "delete",
    "error_status",
    "frame",
    "has_bundle",
    "leg_options",
    "list_calls",
    "listed_calls",
    "offer",
    "parse_reply",
    "ping",
    "query",
    "restore_bundle",
    "sdp_of",
    "statistics",
    "statistics_of",
    "unframe",
]

Value: TypeAlias = "int | bytes | list[Value] | dict[bytes, Value]"
"""A decoded bencode value: byte strings stay bytes (SDP is bytes; keys are ASCII)."""

Encodable: TypeAlias = (
    "int | str | bytes | Sequence[Encodable] | Mapping[str, Encodable] | Mapping[bytes, Encodable]"
)
"""What :func:`bencode` takes: ``str`` is written as UTF-8."""

Message: TypeAlias = dict[str, "Encodable"]
"""An ng request dictionary as the builders return it (what the unit tests compare)."""

MAX_MESSAGE = 65_507
"""The largest message accepted: one UDP datagram over IPv4 (rtpengine's ng over UDP
sends each reply in one datagram)."""
MAX_DEPTH = 32
"""Lists and dictionaries nested deeper than this are refused (rtpengine's replies
nest about eight deep: query -> tags -> medias -> streams -> stats)."""
MAX_ITEMS = 20_000
"""Values in one message at most (a query reply of a long call has a few hundred)."""
MAX_INTEGER_DIGITS = 20
"""Integers up to 64 bits, with a sign."""
MAX_COOKIE = 64

SDES_SUITES = (
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_192_CM_HMAC_SHA1_80",
    "AES_192_CM_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "F8_128_HMAC_SHA1_80",
    "F8_128_HMAC_SHA1_32",
    "NULL_HMAC_SHA1_80",
    "NULL_HMAC_SHA1_32",
)
"""The SDES crypto suites rtpengine knows (``daemon/crypto.c``), strongest first."""
SDES_SUITE = "AES_CM_128_HMAC_SHA1_80"
"""The one suite offered toward an SDES trunk (RFC 4568 §6.2.1; what Teams takes)."""

REPLACE = ("origin", "session-connection", "SDP-version")
"""Parts of the SDP rtpengine rewrites: ``o=`` and session ``c=`` name the relay, and
the ``o=`` version goes up exactly when the description changes (RFC 3264 §8)."""


# -- bencode ---------------------------------------------------------------------------


class BencodeError(ValueError):
    """Not bencode, or more than the limits allow."""


def bencode(value: Encodable) -> bytes:
    """``value`` in bencode; dictionary keys sorted, as the format wants.

    Raises:
        BencodeError: a type bencode has no form for (floats, None, bools), keys
            that collide once encoded, or nesting deeper than :data:`MAX_DEPTH`.
    """
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Encodable, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError(f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, bool):
        raise BencodeError("bencode has no booleans; use 0/1 or a flag")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, str):
        data = value.encode()
        out.append(b"%d:%s" % (len(data), data))
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out.append(b"%d:%s" % (len(data), data))
    elif isinstance(value, Mapping):
        items: dict[bytes, Encodable] = {}
        for key, item in value.items():
            raw = key.encode() if isinstance(key, str) else key
            if not isinstance(raw, bytes):
                raise BencodeError(f"dictionary key {key!r} is not a string")
            if raw in items:
                raise BencodeError(f"dictionary key {key!r} given twice")
            items[raw] = item
        out.append(b"d")
        for raw in sorted(items):
            out.append(b"%d:%s" % (len(raw), raw))
            _encode(items[raw], out, depth + 1)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode a {type(value).__name__}")


_INTEGER = re.compile(rb"-?(?:0|[1-9][0-9]*)")
_LENGTH = re.compile(rb"0|[1-9][0-9]{0,9}")


class _Dict:
    __slots__ = ("key", "value")

    def __init__(self) -> None:
        self.value: dict[bytes, Value] = {}
        self.key: bytes | None = None


def bdecode(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Value:
    """The one bencode value that is all of ``data``.

    Strict: integers without leading zeros or ``-0``, string lengths without leading
    zeros, byte-string keys each given once, nothing after the value. Dictionary keys
    need not be sorted (rtpengine does not sort them). Iterative, so nesting costs
    no stack, and bounded by ``max_depth`` and ``max_items``.

    Raises:
        BencodeError: what is wrong, and at which offset.
    """
    if len(data) > MAX_MESSAGE:
        raise BencodeError(f"{len(data)} bytes: more than {MAX_MESSAGE}")
    stack: list[list[Value] | _Dict] = []
    pos, end, items = 0, len(data), 0
    while True:
        if pos >= end:
            raise BencodeError(f"truncated at offset {pos}")
        byte = data[pos]
        value: Value
        if byte == 0x65:  # e
            if not stack:
                raise BencodeError(f"unexpected 'e' at offset {pos}")
            closed = stack.pop()
            if isinstance(closed, _Dict):
                if closed.key is not None:
                    raise BencodeError(f"dictionary key without a value at offset {pos}")
                value = closed.value
            else:
                value = closed
            pos += 1
        elif byte in (0x6C, 0x64):  # l, d
            if len(stack) >= max_depth:
                raise BencodeError(f"nested deeper than {max_depth} at offset {pos}")
            if stack and isinstance(stack[-1], _Dict) and stack[-1].key is None:
                raise BencodeError(f"dictionary key is not a string at offset {pos}")
            stack.append([] if byte == 0x6C else _Dict())
            items += 1
            if items > max_items:
                raise BencodeError(f"more than {max_items} values")
            pos += 1
            continue
        elif byte == 0x69:  # i
            close = data.find(b"e", pos + 1, pos + 2 + MAX_INTEGER_DIGITS)
            digits = data[pos + 1 : close]
            if close < 0 or not _INTEGER.fullmatch(digits) or digits == b"-0":
                raise BencodeError(f"bad integer at offset {pos}")
            value = int(digits)
            pos = close + 1
        elif 0x30 <= byte <= 0x39:  # a digit: <length>:<bytes>
            colon = data.find(b":", pos, pos + 11)
            if colon < 0 or not _LENGTH.fullmatch(data, pos, colon):
                raise BencodeError(f"bad string length at offset {pos}")
            length = int(data[pos:colon])
            if colon + 1 + length > end:
                raise BencodeError(f"string at offset {pos} runs past the end")
            value = data[colon + 1 : colon + 1 + length]
            pos = colon + 1 + length
        else:
            raise BencodeError(f"unexpected byte {bytes([byte])!r} at offset {pos}")
        if byte != 0x65:
            items += 1
            if items > max_items:
                raise BencodeError(f"more than {max_items} values")
        if not stack:
            if pos != end:
                raise BencodeError(f"{end - pos} bytes after the value")
            return value
        top = stack[-1]
        if isinstance(top, list):
            top.append(value)
        elif top.key is None:
            if not isinstance(value, bytes):
                raise BencodeError(f"dictionary key is not a string before offset {pos}")
            if value in top.value:
                raise BencodeError(f"dictionary key {value!r} given twice")
            top.key = value
        else:
            top.value[top.key] = value
            top.key = None


# -- framing ---------------------------------------------------------------------------

_COOKIE = re.compile(rb"[!-~]{1,%d}" % MAX_COOKIE)


class NgError(ValueError):
    """A message that is not ng: no cookie, not a bencoded dictionary, too large.

    ``cookie`` is the message's cookie when that much could be read, so the client
    can fail the request it answers instead of waiting for it to time out.
    """

    def __init__(self, reason: str, cookie: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cookie = cookie


def frame(cookie: str, message: Mapping[str, Encodable]) -> bytes:
    """``<cookie> <bencoded message>``, the bytes of one datagram.

    Raises:
        NgError: a cookie that is empty, too long or not printable ASCII without spaces.
        BencodeError: a message bencode cannot write.
    """
    raw = cookie.encode()
    if not _COOKIE.fullmatch(raw):
        raise NgError(f"bad cookie {cookie!r}")
    return raw + b" " + bencode(message)


def unframe(data: bytes, limit: int = MAX_MESSAGE) -> tuple[str, dict[bytes, Value]]:
    """The cookie and dictionary of one message of at most ``limit`` bytes.

    Raises:
        NgError: no cookie, too large, or a body that is not one bencoded dictionary.
    """
    space = data.find(b" ", 0, MAX_COOKIE + 1)
    if space < 1 or not _COOKIE.fullmatch(data, 0, space):
        raise NgError("no cookie")
    cookie = data[:space].decode("ascii")
    if len(data) > min(limit, MAX_MESSAGE):
        raise NgError(f"{len(data)} bytes: more than {min(limit, MAX_MESSAGE)}", cookie)
    try:
        body = bdecode(data[space + 1 :])
    except BencodeError as exc:
        raise NgError(f"not bencode: {exc}", cookie) from None
    if not isinstance(body, dict):
        raise NgError("not a dictionary", cookie)
    return cookie, body


# -- requests --------------------------------------------------------------------------


def ping() -> Message:
    return {"command": "ping"}


def offer(
    negotiation: Negotiation,
    sdp: bytes,
    *,
    via_branch: str | None = None,
    extra_flags: Sequence[str] = (),
) -> Message:
    """The ``offer`` for ``negotiation``: its sender's tag is the ``from-tag``, and the
    receiver's, once known (a re-INVITE), the ``to-tag``."""
    message: Message = {
        "command": "offer",
        "call-id": negotiation.call_id,
        "from-tag": negotiation.from_tag,
    }
    if negotiation.to_tag is not None:
        message["to-tag"] = negotiation.to_tag
    if via_branch is not None:
        message["via-branch"] = via_branch
    message.update(leg_options(negotiation.destination, "offer", negotiation.source, extra_flags))
    if negotiation.codecs:
        # As the built-in relay does (sdp.offer_answer.select_formats): an allow-list
        # never takes DTMF away.
        keep = list(dict.fromkeys([*negotiation.codecs, "telephone-event"]))
        message["codec"] = {"strip": ["all"], "except": keep}
    message["sdp"] = sdp
    return message


def answer(
    negotiation: Negotiation,
    sdp: bytes,
    *,
    via_branch: str | None = None,
    extra_flags: Sequence[str] = (),
) -> Message:
    """The ``answer`` for ``negotiation``: rtpengine's ``from-tag`` is the offerer's
    tag (the Negotiation's ``to_tag``) and ``to-tag`` the answerer's.

    Raises:
        MediaError: 500 when the offerer's tag is unknown.
    """
    if negotiation.to_tag is None:
        raise MediaError("answer without the offerer's tag", 500)
    message: Message = {
        "command": "answer",
        "call-id": negotiation.call_id,
        "from-tag": negotiation.to_tag,
        "to-tag": negotiation.from_tag,
    }
    if via_branch is not None:
        message["via-branch"] = via_branch
    message.update(leg_options(negotiation.destination, "answer", negotiation.source, extra_flags))
    message["sdp"] = sdp
    return message


def delete(
    call_id: str,
    from_tag: str | None = None,
    to_tag: str | None = None,
    *,
    via_branch: str | None = None,
    delay: int | None = 0,
) -> Message:
    """``delete``: with the caller's ``from_tag`` the whole dialog goes and the reply
    carries its counters; without tags the whole call goes, with no counters.
    ``delay`` overrides rtpengine's ``--delete-delay`` (0: free the ports now)."""
    message: Message = {"command": "delete", "call-id": call_id}
    if from_tag is not None:
        message["from-tag"] = from_tag
    if to_tag is not None:
        message["to-tag"] = to_tag
    if via_branch is not None:
        message["via-branch"] = via_branch
    if delay is not None:
        message["delete-delay"] = delay
    return message


def query(call_id: str, from_tag: str | None = None, to_tag: str | None = None) -> Message:
    message: Message = {"command": "query", "call-id": call_id}
    if from_tag is not None:
        message["from-tag"] = from_tag
    if to_tag is not None:
        message["to-tag"] = to_tag
    return message


def list_calls(limit: int = 32) -> Message:
    """``list``: up to ``limit`` Call-IDs rtpengine holds (its default is 32)."""
    if limit < 1:
        raise ValueError("limit must be positive")
    return {"command": "list", "limit": limit}


def statistics() -> Message:
    return {"command": "statistics"}


def leg_options(
    destination: Profile,
    kind: str,
    source: Profile | None = None,
    extra_flags: Sequence[str] = (),
) -> Message:
    """The keys that make rtpengine write ``destination``'s SDP, for an ``offer`` or an
    ``answer`` (``kind``) whose sender is on ``source``.

    rtcp-mux, ICE-lite and generate-mid act in offers only (rtpengine ignores them
    in answers), so answers leave them out. ``extra_flags`` (policy's raw flags) go
    at the end of ``flags``.
    """
    if kind not in ("offer", "answer"):
        raise ValueError(f"kind must be offer or answer, not {kind!r}")
    flags = ["trust-address"]
    if "extmap" in destination.drops:
        flags.append("strip-extmap")
    if kind == "offer" and destination.bundle:
        flags.append("generate-mid")
    flags.extend(extra_flags)
    options: Message = {
        "transport-protocol": destination.proto,
        "ICE": "force" if destination.ice else "remove",
        "DTLS": "passive" if destination.dtls else "off",
        "SDES": _sdes(destination),
        "flags": flags,
        "replace": list(REPLACE),
    }
    if kind == "offer":
        lite = _ice_lite(destination, source)
        if lite is not None:
            options["ICE-lite"] = lite
        if source is not None and source.dtls:
            # Toward an offerer that speaks DTLS, wait for its handshake (RFC 5763 §5:
            # the answerer picks the role, and ours is passive, as in the answer).
            options["DTLS-reverse"] = "passive"
        options["rtcp-mux"] = ["offer", "require"] if destination.rtcp_mux else ["demux"]
    return options


def _sdes(profile: Profile) -> list[str]:
    if not profile.sdes:
        return ["off"]
    return [f"no-{suite}" for suite in SDES_SUITES if suite != SDES_SUITE]


def _ice_lite(destination: Profile, source: Profile | None) -> str | None:
    """rtpengine is ICE-lite on every ICE leg, as the built-in relay is (RFC 8445 §2.5):
    ``forward`` toward the offer's receiver, ``backward`` toward its sender."""
    forward, backward = destination.ice, source is not None and source.ice
    if forward and backward:
        return "both"
    if forward:
        return "forward"
    if backward:
        return "backward"
    return None


# -- replies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply's ``result`` (``ok``, ``pong``, ``error``, ``load limit``) and dictionary."""

    result: str
    body: dict[bytes, Value]

    @property
    def error_reason(self) -> str | None:
        return _text(self.body.get(b"error-reason")) or _text(self.body.get(b"message"))

    @property
    def warning(self) -> str | None:
        return _text(self.body.get(b"warning"))


def parse_reply(body: dict[bytes, Value]) -> Reply:
    """The reply in a decoded dictionary.

    Raises:
        NgError: no ``result`` string.
    """
    result = body.get(b"result")
    if not isinstance(result, bytes) or not result:
        raise NgError("reply without a result")
    return Reply(result.decode("ascii", "replace"), body)


def check(reply: Reply, command: str) -> Reply:
    """``reply`` if it says the command worked.

    Raises:
        MediaError: ``error`` as :func:`error_status` says, with rtpengine's reason;
            ``load limit`` 503; any other result 500.
    """
    if reply.result == "ok" or (reply.result == "pong" and command == "ping"):
        return reply
    reason = reply.error_reason or "no reason given"
    if reply.result == "error":
        return _raise(f"rtpengine {command}: {reason}", error_status(command, reason))
    if reply.result == "load limit":
        return _raise(f"rtpengine {command}: load limit: {reason}", 503)
    return _raise(f"rtpengine {command}: unexpected result {reply.result!r}", 500)


def _raise(reason: str, status: int) -> Reply:
    raise MediaError(reason, status)


def error_status(command: str, reason: str) -> int:
    """The SIP status for rtpengine's ``error-reason``: 488 when the SDP is at fault
    (it does not parse, or lacks what an offer needs), 503 when rtpengine is out of
    resources (ports, its session, load or bandwidth limits), else 500."""
    lowered = reason.lower()
    if command in ("offer", "answer") and "sdp" in lowered:
        return 488
    if "ports" in lowered or "limit" in lowered:
        return 503
    return 500


def sdp_of(reply: Reply, command: str) -> bytes:
    """The rewritten SDP of an ``offer`` or ``answer`` reply.

    Raises:
        MediaError: as :func:`check`, or 500 when the reply has no ``sdp``.
    """
    check(reply, command)
    sdp = reply.body.get(b"sdp")
    if not isinstance(sdp, bytes) or not sdp:
        raise MediaError(f"rtpengine {command}: reply without SDP", 500)
    return sdp


_BUNDLE = re.compile(rb"^a=group:BUNDLE\b", re.M)
_MEDIA = re.compile(rb"^(?=m=)", re.M)
_MID = re.compile(rb"^a=mid:([!-~]+)\r?$", re.M)
_REJECTED = re.compile(rb"m=\S+ 0[ /]")


def has_bundle(sdp: bytes) -> bool:
    """Whether ``sdp`` has a BUNDLE group (RFC 9143)."""
    return _BUNDLE.search(sdp) is not None


def restore_bundle(sdp: bytes, destination: Profile, *, offered: bool = True) -> bytes:
    """``sdp`` with the BUNDLE group rtpengine before 14.0 strips, where it is true.

    rtpengine 10.5 removes ``a=group:BUNDLE`` and cannot bundle, and a browser with
    the ``max-bundle`` policy then rejects the answer ("cannot remove m= section from
    already-established BUNDLE group"). With one stream in use there is nothing to
    bundle but that stream's own transport, so a group naming its mid is correct
    (RFC 9143 §7.3): it is added toward a leg whose profile bundles, in an offer, or
    in an answer to an offer that had a group (``offered``). Several streams keep
    their own ports: left as they are.
    """
    if not destination.bundle or not offered or has_bundle(sdp):
        return sdp
    session, *media = _MEDIA.split(sdp)
    active = [section for section in media if not _REJECTED.match(section)]
    if len(active) != 1:
        return sdp
    mid = _MID.search(active[0])
    if mid is None:
        return sdp
    eol = b"\r\n" if session.endswith(b"\r\n") else b"\n"
    return session + b"a=group:BUNDLE " + mid[1] + eol + b"".join(media)


def call_stats(call_id: str, reply: Reply, first: str | None = None) -> CallStats:
    """Each tagged party's counters in a ``query`` or ``delete`` reply: what rtpengine
    received from it on its RTP streams (packets, bytes), and errors on any stream
    (decryption and authentication failures) as ``dropped``. ``first`` (the caller's
    tag) comes first. rtpengine reports loss and jitter per SSRC, from RTCP, not per
    party, so those stay zero."""
    stats = CallStats(call_id)
    tags = reply.body.get(b"tags")
    if not isinstance(tags, dict):
        return stats
    for entry in tags.values():
        if not isinstance(entry, dict):
            continue
        tag = _text(entry.get(b"tag"))
        if not tag:
            continue  # the other side of an offer nobody answered
        leg = LegStats(tag)
        for media in _dicts(entry.get(b"medias")):
            for stream in _dicts(media.get(b"streams")):
                counters = stream.get(b"stats")
                if not isinstance(counters, dict):
                    continue
                flags = stream.get(b"flags")
                rtcp = isinstance(flags, list) and b"RTCP" in flags and b"RTP" not in flags
                if not rtcp:
                    leg.packets += _int(counters.get(b"packets"))
                    leg.bytes += _int(counters.get(b"bytes"))
                leg.dropped += _int(counters.get(b"errors"))
        stats.legs.append(leg)
    if first is not None:
        stats.legs.sort(key=lambda leg: leg.tag != first)
    return stats


def listed_calls(reply: Reply) -> list[str]:
    """The Call-IDs of a ``list`` reply."""
    check(reply, "list")
    calls = reply.body.get(b"calls")
    if not isinstance(calls, list):
        return []
    return [call.decode("utf-8", "replace") for call in calls if isinstance(call, bytes)]


def statistics_of(reply: Reply) -> dict[str, int | str]:
    """A ``statistics`` reply flattened to ``section.key`` -> number or text (lists and
    deeper levels are left out), e.g. ``currentstatistics.sessionstotal``."""
    check(reply, "statistics")
    flat: dict[str, int | str] = {}
    root = reply.body.get(b"statistics", reply.body)  # 10.5 nests it; some versions do not
    if not isinstance(root, dict):
        return flat
    for name, section in root.items():
        if not isinstance(section, dict):
            continue
        prefix = name.decode("utf-8", "replace")
        for key, value in section.items():
            label = f"{prefix}.{key.decode('utf-8', 'replace')}"
            if isinstance(value, int):
                flat[label] = value
            elif isinstance(value, bytes):
                flat[label] = value.decode("utf-8", "replace")
    return flat


def _text(value: Value | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def _int(value: Value | None) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, bytes) and value.isdigit():
        return int(value)
    return 0


def _dicts(value: Value | None) -> Iterable[dict[bytes, Value]]:
    if isinstance(value, list):
        return (item for item in value if isinstance(item, dict))
    return ()
