"""RFC 3264 offer/answer rules over the SDP model.

* :func:`build_answer` answers an offer with what the answerer supports: one ``m=``
  line per offered line, in the same order (RFC 3264 §6); unusable streams rejected
  with port zero; codecs intersected in the offerer's order (§6.1); directions
  mirrored (§6.1).
* :func:`filter_codecs` applies a trunk's codec allow-list to an offer or answer.
  ``telephone-event`` (RFC 4733) is always kept for each clock rate a kept codec
  uses, since DTMF must survive any codec choice.
* :func:`bump_version` and :func:`follow_origin` keep ``o=`` honest (RFC 3264 §8).

Functions that edit do so in place, except :func:`build_answer`, which returns a new
description and leaves the offer alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from sdp.attributes import (
    DTLS_ATTRIBUTES,
    FMTP,
    ICE_ATTRIBUTES,
    STATIC_PAYLOAD_TYPES,
    Direction,
    Fmtp,
    Group,
    RtpMap,
)
from sdp.errors import SdpError
from sdp.model import MediaDescription, Origin, SessionDescription

__all__ = [
    "CodecSpec",
    "build_answer",
    "bump_version",
    "codecs_of",
    "effective_direction",
    "filter_codecs",
    "follow_origin",
    "negotiate_direction",
    "reject_media",
    "restrict_formats",
    "select_formats",
]

TELEPHONE_EVENT = "telephone-event"
"""RFC 4733: named telephone events (DTMF)."""
COMFORT_NOISE = "cn"
"""RFC 3389: comfort noise, which alone carries no speech."""
# Formats that carry nothing on their own and only follow the formats they name:
# retransmission (RFC 4588, fmtp apt=), redundancy (RFC 2198, fmtp "111/111"), forward
# error correction (RFC 5109, RFC 8627).
_RTX = "rtx"
_RED = "red"
_FEC = frozenset({"ulpfec", "flexfec", "flexfec-03"})

ANSWERER_DROPS = (
    ICE_ATTRIBUTES
    | DTLS_ATTRIBUTES
    | {
        # The offerer's own keys and sources: an answer carries the answerer's.
        "crypto",
        "ssrc",
        "ssrc-group",
        "msid",
        "msid-semantic",
        "rid",
        "simulcast",
    }
)
"""Attributes of the offerer's transport and sources that :func:`build_answer` drops.

The leg's rewrite profile (:mod:`sdp.rewrite`) then writes the answerer's."""


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """One entry of a codec list: ``name[/clock rate[/channels]]``, e.g. ``opus/48000/2``."""

    name: str
    clock_rate: int | None = None
    channels: int | None = None

    @classmethod
    def parse(cls, text: str) -> CodecSpec:
        """Read ``PCMU``, ``G722/8000`` or ``opus/48000/2``; ValueError if malformed."""
        parts = text.strip().split("/")
        if not parts[0] or len(parts) > 3 or not all(part.isdigit() for part in parts[1:]):
            raise ValueError(f"bad codec {text!r}: expected name[/rate[/channels]]")
        numbers = [int(part) for part in parts[1:]] + [None, None]
        return cls(parts[0], numbers[0], numbers[1])

    def matches(self, rtpmap: RtpMap) -> bool:
        """Whether ``rtpmap`` is this codec (names ignore case, RFC 4855 §3)."""
        return rtpmap.matches(self.name, self.clock_rate, self.channels)


def _specs(codecs: Iterable[str | CodecSpec]) -> list[CodecSpec]:
    return [spec if isinstance(spec, CodecSpec) else CodecSpec.parse(spec) for spec in codecs]


# --- codecs of an m= line --------------------------------------------------------------


def codecs_of(media: MediaDescription) -> dict[int, RtpMap]:
    """Each payload type of the ``m=`` line with its codec: from ``a=rtpmap``, else
    from RFC 3551's static table. Dynamic types without a rtpmap are left out."""
    rtpmaps: dict[int, RtpMap] = {}
    formats = set(media.formats)
    for line in media.find_all("rtpmap"):
        # Only the lines for formats of this m= line are read (RFC 8866 §6.6).
        if _format_of(line.attribute_value) in formats:
            rtpmap = RtpMap.parse(line.attribute_value or "")
            rtpmaps.setdefault(rtpmap.payload_type, rtpmap)
    codecs = {}
    for pt in media.payload_types:
        codec = rtpmaps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        if codec is not None:
            codecs[pt] = codec
    return codecs


def _format_of(value: str | None) -> str:
    # "a=rtpmap:<fmt> ...", "a=fmtp:<fmt> ...", "a=rtcp-fb:<fmt or *> ...": the format
    # leads the value. Reading just that keeps odd-but-harmless lines from failing.
    return (value or "").split(" ", 1)[0].strip()


def select_formats(media: MediaDescription, allow: Iterable[str | CodecSpec]) -> list[str]:
    """The formats of ``media`` that ``allow`` accepts, in the ``m=`` line's order.

    Codecs are kept when the list names them. Formats that follow another are kept
    only with it: rtx with its ``apt`` (RFC 4588), red with every format its fmtp
    names (RFC 2198), FEC with some kept codec; each must also be on the list.
    ``telephone-event`` is kept, listed or not, for every clock rate of a kept codec
    (RFC 4733: events are timed by the RTP clock of the audio they go with). Comfort
    noise alone does not count as a codec: the result is empty then.
    """
    specs = _specs(allow)
    codecs = codecs_of(media)
    fmtps = {fmtp.payload_type: fmtp for fmtp in _fmtps(media)}

    def listed(pt: int) -> bool:
        return any(spec.matches(codecs[pt]) for spec in specs)

    def name(pt: int) -> str:
        return codecs[pt].encoding.lower()

    order = [pt for pt in media.payload_types if pt in codecs]
    special = {TELEPHONE_EVENT, _RTX, _RED, *_FEC}
    kept = {pt for pt in order if name(pt) not in special and listed(pt)}
    if not any(name(pt) != COMFORT_NOISE for pt in kept):
        return []
    for pt in order:
        if name(pt) == _RED and listed(pt):
            fmtp = fmtps.get(pt)
            names = [] if fmtp is None else fmtp.parameters.strip().split("/")
            if all(n.isdigit() and int(n) in kept for n in names):
                kept.add(pt)
        elif name(pt) in _FEC and listed(pt):
            kept.add(pt)
    for pt in order:
        apt = fmtps[pt].get("apt") if pt in fmtps else None
        if (
            name(pt) == _RTX
            and listed(pt)
            and apt is not None
            and apt.isdigit()
            and int(apt) in kept
        ):
            kept.add(pt)
    rates = {codecs[pt].clock_rate for pt in kept if name(pt) != COMFORT_NOISE}
    for pt in order:
        if name(pt) == TELEPHONE_EVENT and codecs[pt].clock_rate in rates:
            kept.add(pt)
    return [str(pt) for pt in order if pt in kept]


def _fmtps(media: MediaDescription) -> list[Fmtp]:
    formats = set(media.formats)
    return [
        FMTP.parse(line.attribute_value or "")
        for line in media.find_all("fmtp")
        if _format_of(line.attribute_value) in formats
    ]


def restrict_formats(media: MediaDescription, keep: Sequence[str]) -> bool:
    """Keep only the formats in ``keep`` (in the ``m=`` line's order), dropping the
    rtpmap, fmtp and rtcp-fb lines of the others; ``rtcp-fb:*`` stays. Returns
    whether anything changed."""
    wanted = set(keep)
    formats = media.formats
    changed = False
    if any(fmt not in wanted for fmt in formats):
        media.formats = [fmt for fmt in formats if fmt in wanted]
        changed = True
    for name in ("rtpmap", "fmtp", "rtcp-fb"):
        changed |= (
            media.remove_attribute(
                name, lambda value: _format_of(value) not in wanted and _format_of(value) != "*"
            )
            > 0
        )
    return changed


def reject_media(media: MediaDescription) -> None:
    """Reject or disable a stream: port zero (RFC 3264 §6, §8.2), one format kept
    because SDP needs one, every attribute but ``a=mid`` dropped (RFC 9143 §7.3.3:
    no ``bundle-only``), ``b=`` dropped. ``c=`` stays so the section stays valid."""
    if media.port != 0:
        media.port = 0
    if media.port_count is not None:
        media.port_count = None
    formats = media.formats
    if len(formats) > 1:
        media.formats = formats[:1]
    media.lines[:] = [
        line
        for line in media.lines
        if line.type not in ("a", "b") or (line.type == "a" and line.name == "mid")
    ]


_DIRECTIONS = frozenset(direction.value for direction in Direction)


def _drop_from_bundle(sd: SessionDescription) -> None:
    # RFC 9143 §7.3.3 and §7.5.3: a rejected or disabled m= section leaves the group.
    rejected = {media.mid for media in sd.media if media.rejected and media.mid is not None}
    if not rejected:
        return
    new = []
    for line in sd.find_all("group"):
        group = Group.parse(line.attribute_value or "")
        if group.semantics == "BUNDLE":
            group = Group(group.semantics, tuple(m for m in group.mids if m not in rejected))
        new.append(group)
    values: list[str | None] = [str(group) for group in new if group.mids]
    sd.replace_attribute("group", values)


def filter_codecs(sd: SessionDescription, allow: Iterable[str | CodecSpec]) -> bool:
    """Apply a codec allow-list to every RTP stream of ``sd``, in place.

    A stream left without a codec is disabled (port zero, see :func:`reject_media`)
    and leaves any BUNDLE group. Returns whether anything changed.

    Raises:
        SdpError: no stream that was in use has a codec left (488, RFC 3261 §21.4.26).
    """
    specs = _specs(allow)
    active = [m for m in sd.media if not m.rejected and m.is_rtp]
    changed = False
    for media in active:
        keep = select_formats(media, specs)
        if keep:
            changed |= restrict_formats(media, keep)
        else:
            reject_media(media)
            changed = True
    if active and all(media.rejected for media in active):
        raise SdpError("no acceptable codec")
    if changed:
        _drop_from_bundle(sd)
    return changed


# --- directions ------------------------------------------------------------------------


def effective_direction(sd: SessionDescription, media: MediaDescription) -> Direction:
    """The direction of ``media``: its own attribute, else the session's, else
    sendrecv (RFC 8866 §6.7, RFC 3264 §5.1)."""
    return media.direction or sd.direction or Direction.SENDRECV


def negotiate_direction(offered: Direction, wanted: Direction) -> Direction:
    """The answer's direction (RFC 3264 §6.1): the answerer sends only if the offerer
    receives, and receives only if the offerer sends; ``wanted`` may narrow it.
    sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive."""
    return Direction.of(
        sends=offered.receives and wanted.sends,
        receives=offered.sends and wanted.receives,
    )


# --- answers ---------------------------------------------------------------------------


def build_answer(
    offer: SessionDescription,
    supported: Mapping[str, Iterable[str | CodecSpec]],
    *,
    direction: Direction = Direction.SENDRECV,
    origin: Origin | None = None,
) -> SessionDescription:
    """Answer ``offer`` with the codecs in ``supported`` (media type -> codec list).

    The answer starts as a copy of the offer (RFC 3264 §6: same m= lines, same order,
    payload type numbers kept), drops the offerer's transport and source attributes
    (:data:`ANSWERER_DROPS`; the leg's rewrite profile writes the answerer's), and for
    each stream:

    * rejects it with port zero if it was offered with port zero, is not RTP, has a
      media type not in ``supported`` or no codec in common (RFC 3264 §6);
    * else keeps the common formats in the offerer's order (§6.1) with
      telephone-event as :func:`select_formats` does, and sets the direction from the
      offered one and ``direction`` (:func:`negotiate_direction`).

    Rejected streams leave the BUNDLE group (RFC 9143 §7.3.3). ``origin`` replaces
    the copied ``o=`` line when given.

    Raises:
        SdpError: no offered stream could be accepted (488).
    """
    answer = offer.copy()
    offered = [effective_direction(offer, media) for media in offer.media]
    for section in (answer, *answer.media):
        for name in sorted(ANSWERER_DROPS):
            section.remove_attribute(name)
    # Directions are set per m= line below; a session-level one would only confuse.
    answer.lines[:] = [line for line in answer.lines if line.value not in _DIRECTIONS]
    accepted = 0
    for media, offered_direction in zip(answer.media, offered, strict=True):
        codecs = supported.get(media.media)
        usable = codecs is not None and media.is_rtp and not media.rejected
        keep = select_formats(media, codecs) if usable and codecs is not None else []
        if not keep:
            reject_media(media)
            continue
        accepted += 1
        restrict_formats(media, keep)
        media.set_direction(negotiate_direction(offered_direction, direction))
    if not accepted:
        raise SdpError("no acceptable media")
    _drop_from_bundle(answer)
    if origin is not None:
        answer.origin = origin
    return answer


# --- o= --------------------------------------------------------------------------------


def bump_version(sd: SessionDescription) -> bool:
    """Set ``o=`` sess-version to the parsed one plus one if anything else changed,
    and back to the parsed one otherwise (RFC 3264 §8: "incremented by one" for a
    changed description, unchanged for an unchanged one). Safe to call again after
    more edits. Returns whether the version was bumped."""
    base = sd.parsed_origin.version
    sd.origin = replace(sd.origin, version=base)
    if not sd.changed:
        return False
    sd.origin = replace(sd.origin, version=base + 1)
    return True


def _body(sd: SessionDescription) -> list[str]:
    return [str(line) for line in sd.all_lines() if line.type != "o"]


def follow_origin(sd: SessionDescription, previous: SessionDescription | None) -> bool:
    """Give ``sd`` the ``o=`` line that follows ``previous``, the description last
    sent on the same leg.

    RFC 3264 §8: in a later offer or answer the origin's username, session id,
    network type, address type and address stay the same, and the version is
    incremented by one if and only if the description differs. A B2BUA needs this
    on each leg, because the other leg's ``o=`` changes for its own reasons. With no
    ``previous`` the line is left as it is. Returns whether the version went up.
    """
    if previous is None:
        return False
    last = previous.origin
    sd.origin = last
    if _body(sd) == _body(previous):
        return False
    sd.origin = replace(last, version=last.version + 1)
    return True
