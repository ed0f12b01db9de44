"""Per-leg media profiles, and the rewrite that applies one (ARCHITECTURE.md §5).

Each leg of a call has a profile: RTP/AVP toward a PBX, RTP/SAVP with SDES toward a
TLS trunk, UDP/TLS/RTP/SAVPF with ICE-lite and DTLS toward a browser. Profiles are
data (:class:`Profile`). :func:`rewrite` takes a description from one leg and makes
it the description for the other leg, where the relay stands in for the peer:

1. ``c=`` and ``m=`` point at the relay; a stream the relay does not carry gets port
   zero, and a stream offered with port zero keeps it (RFC 3264 §6, §8.2);
2. transport attributes belong to one hop, so the peer's are always replaced by the
   relay's: ICE (RFC 8839), DTLS (RFC 8122, RFC 5763), SDES (RFC 4568), RTCP port or
   mux (RFC 3605, RFC 5761) and BUNDLE (RFC 9143);
3. attributes the far side cannot use go too (``rtcp-fb`` outside AVPF, ``extmap``,
   ``ssrc``, ``msid`` ... on the SIP profiles);
4. a replaced attribute takes the old one's place, a new one goes at the end of its
   section, in a fixed order, so the output is stable;
5. ``o=`` sess-version goes up by one if anything changed (RFC 3264 §8).

Everything else passes through as it came: codecs, fmtp, ptime, directions, ``b=``.
Codec choice is :func:`sdp.offer_answer.filter_codecs`'s job, before this one.
Every generated value (ports, keys, ICE credentials, fingerprint, role) is an
argument: nothing here draws a random number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace

from sdp.attributes import (
    DTLS_ATTRIBUTES,
    ICE_ATTRIBUTES,
    Candidate,
    Crypto,
    Direction,
    Fingerprint,
    Group,
    KeyParam,
    Setup,
)
from sdp.model import Line, MediaDescription, SessionDescription
from sdp.offer_answer import bump_version

__all__ = [
    "AVP",
    "PROFILES",
    "SAVP_SDES",
    "SAVP_SDES_ICE",
    "SDES_KEY_LENGTHS",
    "SIP_SIDE_DROPS",
    "TEAMS",
    "TRANSPORT_ATTRIBUTES",
    "WEBRTC",
    "DtlsParameters",
    "IceParameters",
    "MediaEndpoint",
    "Profile",
    "RelayEndpoints",
    "SdesParameters",
    "host_priority",
    "rewrite",
]

TRANSPORT_ATTRIBUTES = (
    ICE_ATTRIBUTES
    | DTLS_ATTRIBUTES
    | {
        "crypto",  # RFC 4568
        "rtcp",  # RFC 3605
        "rtcp-mux",  # RFC 5761
        "rtcp-mux-only",  # RFC 8858
        "bundle-only",  # RFC 9143 §6
    }
)
"""Attributes of one hop's transport: every profile replaces all of them."""

SIP_SIDE_DROPS = frozenset(
    {
        "rtcp-fb",  # RFC 4585 §4.2: AVPF only
        "rtcp-rsize",  # RFC 5506: reduced-size RTCP, negotiated for AVPF
        "extmap",  # RFC 8285: header extensions the relay does not translate
        "extmap-allow-mixed",
        "ssrc",  # RFC 5576 and RFC 8830: browser stream identities
        "ssrc-group",
        "msid",
        "msid-semantic",
        "rid",  # RFC 8851 and RFC 8853: simulcast
        "simulcast",
        "x-google-flag",
    }
)
"""Attributes a PBX or trunk on RTP/AVP or RTP/SAVP cannot use."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What one leg's SDP looks like (ARCHITECTURE.md §5)."""

    name: str
    proto: str
    """The ``m=`` proto of RTP streams on this leg."""
    ice: bool
    """Write ICE-lite: ``a=ice-lite``, credentials, host candidates, end-of-candidates."""
    dtls: bool
    """Write ``a=fingerprint`` and ``a=setup`` (RFC 5763 §5, RFC 8122 §5)."""
    sdes: bool
    """Write one ``a=crypto`` per stream (RFC 4568)."""
    rtcp_mux: bool
    """Always multiplex RTCP (RFC 8834 §4.5); else as the relay endpoint says."""
    bundle: bool
    """``a=mid`` on every stream, and ``a=group:BUNDLE`` when asked (RFC 9143)."""
    drops: frozenset[str] = field(default_factory=frozenset)
    """Attributes removed at both levels because the far side cannot use them."""
    hold_inactive: bool = False
    """Write a one-way hold (``sendonly``/``recvonly``) as ``inactive``: some trunks
    (Teams Direct Routing) accept only that form of hold."""


AVP = Profile("AVP", "RTP/AVP", False, False, False, False, False, SIP_SIDE_DROPS)
"""A PBX over UDP or TCP: plain RTP, RTCP on its own port unless the relay muxes."""
SAVP_SDES = Profile("SAVP_SDES", "RTP/SAVP", False, False, True, False, False, SIP_SIDE_DROPS)
"""A TLS trunk: SRTP keyed by ``a=crypto`` AES_CM_128_HMAC_SHA1_80."""
SAVP_SDES_ICE = replace(SAVP_SDES, name="SAVP_SDES_ICE", ice=True)
"""A TLS trunk that wants ICE-lite as well (Teams-style)."""
TEAMS = replace(SAVP_SDES, name="TEAMS", rtcp_mux=True, hold_inactive=True)
"""A Teams-style Direct Routing trunk: SDES AES_CM_128_HMAC_SHA1_80, rtcp-mux, and
hold as ``a=inactive`` only."""
WEBRTC = Profile("WEBRTC", "UDP/TLS/RTP/SAVPF", True, True, False, True, True)
"""A browser: ICE-lite, DTLS-SRTP, rtcp-mux, mids (RFC 8829, RFC 8834, RFC 8827)."""

PROFILES: Mapping[str, Profile] = {
    p.name: p for p in (AVP, SAVP_SDES, SAVP_SDES_ICE, TEAMS, WEBRTC)
}
"""Profiles by name, for policy files."""

# RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4..256, pwd 22..256.
_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}\Z")
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}\Z")

SDES_KEY_LENGTHS: Mapping[str, int] = {
    # Master key + master salt, in bytes.
    "AES_CM_128_HMAC_SHA1_80": 30,  # RFC 4568 §6.2.1: 128-bit key, 112-bit salt
    "AES_CM_128_HMAC_SHA1_32": 30,  # RFC 4568 §6.2.2
    "AES_256_CM_HMAC_SHA1_80": 46,  # RFC 6188: 256-bit key, 112-bit salt
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,  # RFC 7714: 128-bit key, 96-bit salt
    "AEAD_AES_256_GCM": 44,
}
"""SDES crypto suites Wedge writes, with the length of their inline key."""


@dataclass(frozen=True, slots=True)
class IceParameters:
    """The relay's ICE credentials on a leg (RFC 8839 §5.4)."""

    ufrag: str
    pwd: str

    def __post_init__(self) -> None:
        if not _UFRAG.match(self.ufrag) or not _PWD.match(self.pwd):
            raise ValueError("ICE ufrag needs 4-256 and pwd 22-256 of [A-Za-z0-9+/]")


@dataclass(frozen=True, slots=True)
class DtlsParameters:
    """The relay's DTLS certificate fingerprint and role on a leg (RFC 5763 §5)."""

    fingerprint: Fingerprint
    """Normally sha-256 (RFC 8827 §6.5)."""
    setup: Setup
    """``actpass`` in an offer; ``active`` or ``passive`` in an answer (RFC 5763 §5)."""


@dataclass(frozen=True, slots=True)
class SdesParameters:
    """The relay's SRTP master key and salt for one stream (RFC 4568 §6.1)."""

    key: bytes
    """Master key followed by master salt (30 bytes for AES_CM_128_HMAC_SHA1_80)."""
    tag: int = 1
    """In an answer, the tag of the offered line accepted (RFC 4568 §7.1.2)."""
    suite: str = "AES_CM_128_HMAC_SHA1_80"

    def __post_init__(self) -> None:
        length = SDES_KEY_LENGTHS.get(self.suite)
        if length is None:
            raise ValueError(f"unknown SDES suite {self.suite!r}")
        if len(self.key) != length:
            raise ValueError(f"{self.suite} needs a {length}-byte key, got {len(self.key)}")
        if not 0 <= self.tag <= 999_999_999:  # RFC 4568 §9.1: tag = 1*9DIGIT
            raise ValueError(f"bad crypto tag {self.tag}")

    def crypto(self) -> Crypto:
        """The ``a=crypto`` value carrying this key."""
        return Crypto(self.tag, self.suite, (KeyParam.from_key(self.key),))


@dataclass(frozen=True, slots=True)
class MediaEndpoint:
    """Where the relay receives one stream on this leg."""

    port: int
    rtcp_port: int | None = None
    """RTCP's own port (RFC 3605); None multiplexes RTCP on ``port`` (RFC 5761)."""
    sdes: SdesParameters | None = None
    """The key for this stream's ``a=crypto`` (profiles with SDES)."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"relay port {self.port} out of range")
        if self.rtcp_port is not None and not 1 <= self.rtcp_port <= 65535:
            raise ValueError(f"relay RTCP port {self.rtcp_port} out of range")


@dataclass(frozen=True, slots=True)
class RelayEndpoints:
    """The relay's side of a leg: one address, one endpoint per ``m=`` line."""

    address: str
    media: tuple[MediaEndpoint | None, ...]
    """Per ``m=`` line, in order; None for a stream the relay does not carry."""


def host_priority(component: int) -> int:
    """RFC 8445 §5.1.2.1 priority of a host candidate: type preference 126, local
    preference 65535 (the relay has one address per family)."""
    return (126 << 24) + (65535 << 8) + (256 - component)


def rewrite(
    sd: SessionDescription,
    profile: Profile,
    relay: RelayEndpoints,
    *,
    ice: IceParameters | None = None,
    dtls: DtlsParameters | None = None,
    bundle: bool = False,
    mids: Sequence[str] | None = None,
) -> SessionDescription:
    """The description ``sd`` as the relay presents it on a leg with ``profile``.

    Args:
        sd: the description from the other leg; it is not modified.
        profile: this leg's profile.
        relay: the relay's address and per-stream ports on this leg.
        ice: credentials, for profiles with ICE.
        dtls: fingerprint and role, for profiles with DTLS.
        bundle: write ``a=group:BUNDLE`` (profiles with BUNDLE): set it when answering
            an offer that had one, or offering again once one was negotiated. Bundled
            streams must share one relay port (RFC 9143 §7.3), and ICE/DTLS/rtcp-mux
            then go on the first one only (RFC 9143 §7.1.3).
        mids: the ``a=mid`` of each stream, for profiles with BUNDLE; by default the
            existing ones, else ``"0"``, ``"1"`` ...

    Raises:
        ValueError: arguments that do not fit the profile or ``sd``.
    """
    if len(relay.media) != len(sd.media):
        raise ValueError(f"{len(relay.media)} relay endpoints for {len(sd.media)} m= lines")
    out = sd.copy()
    carried = [
        endpoint if not media.rejected and media.is_rtp else None
        for media, endpoint in zip(out.media, relay.media, strict=True)
    ]
    _check(profile, carried, ice, dtls, bundle and profile.bundle)
    names = _mids(out, mids) if profile.bundle else [None] * len(out.media)
    tagged = next((i for i, endpoint in enumerate(carried) if endpoint), None)
    bundling = bundle and profile.bundle and tagged is not None
    _rewrite_session(out, profile, relay.address, any(carried))
    bundled_mids = [mid for mid, e in zip(names, carried, strict=True) if e and mid is not None]
    _set_bundle(out, bundled_mids if bundling else [])
    shared_c = out.connection is not None
    for index, (media, endpoint) in enumerate(zip(out.media, carried, strict=True)):
        if profile.bundle:
            media.set_attribute("mid", names[index])
        transport = endpoint is not None and (not bundling or index == tagged)
        _rewrite_media(media, profile, relay.address, endpoint, transport, ice, dtls)
        # RFC 8866 §5.7: a section without c= uses the session's, already the relay's.
        if media.connection is not None or not shared_c:
            media.set_connection(relay.address)
    if profile.hold_inactive:
        _hold_inactive(out)
    if not profile.bundle and not out.find_all("group"):
        # RFC 5888 §4: mids only serve groups; with BUNDLE gone they have no use.
        for media in out.media:
            media.remove_attribute("mid")
    bump_version(out)
    return out


def _check(
    profile: Profile,
    carried: Sequence[MediaEndpoint | None],
    ice: IceParameters | None,
    dtls: DtlsParameters | None,
    bundling: bool,
) -> None:
    endpoints = [endpoint for endpoint in carried if endpoint is not None]
    if not endpoints:
        return
    if profile.ice and ice is None:
        raise ValueError(f"profile {profile.name} needs ICE credentials")
    if profile.dtls and dtls is None:
        raise ValueError(f"profile {profile.name} needs a DTLS fingerprint and role")
    for endpoint in endpoints:
        if profile.sdes and endpoint.sdes is None:
            raise ValueError(f"profile {profile.name} needs an SDES key per stream")
        if profile.rtcp_mux and endpoint.rtcp_port is not None:
            raise ValueError(f"profile {profile.name} multiplexes RTCP: no RTCP port")
    if bundling and len({endpoint.port for endpoint in endpoints}) > 1:
        raise ValueError("bundled streams share one relay port (RFC 9143 §7.3)")


def _mids(sd: SessionDescription, given: Sequence[str] | None) -> list[str | None]:
    if given is not None:
        if len(given) != len(sd.media) or len(set(given)) != len(given):
            raise ValueError(f"need {len(sd.media)} distinct mids, got {list(given)}")
        return list(given)
    found = [media.mid for media in sd.media]
    if all(found) and len(set(found)) == len(found):
        return found
    return [str(index) for index in range(len(sd.media))]


def _is_bundle(line: Line) -> bool:
    return line.type == "a" and line.name == "group" and _first_word(line) == "BUNDLE"


def _first_word(line: Line) -> str:
    return (line.attribute_value or "").split(" ", 1)[0]


def _set_bundle(sd: SessionDescription, mids: Sequence[str | None]) -> None:
    # RFC 9143 §7.3: the group lists the bundled mids, the tagged one first.
    names = [mid for mid in mids if mid is not None]
    new = [Line.attribute("group", str(Group("BUNDLE", tuple(names))))] if names else []
    sd.replace_lines(_is_bundle, new)


_ONE_WAY = (Direction.SENDONLY, Direction.RECVONLY)


def _hold_inactive(sd: SessionDescription) -> None:
    # A one-way stream becomes inactive (RFC 3264 §8.4 allows either for hold).
    if sd.direction in _ONE_WAY:
        sd.set_direction(Direction.INACTIVE)
    for media in sd.media:
        if media.direction in _ONE_WAY:
            media.set_direction(Direction.INACTIVE)


def _rewrite_session(sd: SessionDescription, profile: Profile, address: str, carries: bool) -> None:
    if sd.connection is not None:
        sd.set_connection(address)
    # RFC 8839 §5.3: ice-lite is a session-level attribute. Credentials, fingerprint and
    # setup are written per m= line below, so session-level copies would only conflict.
    sd.replace_attribute("ice-lite", [None] if profile.ice and carries else [])
    _drop(sd, (TRANSPORT_ATTRIBUTES | profile.drops) - {"ice-lite"})


def _rewrite_media(
    media: MediaDescription,
    profile: Profile,
    address: str,
    endpoint: MediaEndpoint | None,
    transport: bool,
    ice: IceParameters | None,
    dtls: DtlsParameters | None,
) -> None:
    # RFC 3264 §6 and §8.2: port zero marks a rejected or disabled stream. The port
    # count goes, since the relay gives one port per stream (RFC 8866 §5.14).
    media.port = 0 if endpoint is None else endpoint.port
    if media.port_count is not None:
        media.port_count = None
    if media.is_rtp and media.proto != profile.proto:
        media.proto = profile.proto
    mux = endpoint is not None and (profile.rtcp_mux or endpoint.rtcp_port is None)
    plan: dict[str, list[str | None]] = {}
    if endpoint is not None and transport:
        if profile.ice and ice is not None:
            plan["ice-ufrag"] = [ice.ufrag]
            plan["ice-pwd"] = [ice.pwd]
        if profile.dtls and dtls is not None:
            plan["fingerprint"] = [str(dtls.fingerprint)]
            plan["setup"] = [dtls.setup.value]
        if mux:
            plan["rtcp-mux"] = [None]
    if endpoint is not None:
        if profile.sdes and endpoint.sdes is not None:
            plan["crypto"] = [str(endpoint.sdes.crypto())]
        if not mux and endpoint.rtcp_port is not None:
            plan["rtcp"] = [str(endpoint.rtcp_port)]
        if transport and profile.ice:
            plan["candidate"] = [str(c) for c in _candidates(address, endpoint, mux)]
            plan["end-of-candidates"] = [None]
    _drop(media, (TRANSPORT_ATTRIBUTES | profile.drops) - plan.keys())
    # Insertion order of ``plan`` is the order new lines are appended in.
    for name, values in plan.items():
        media.replace_attribute(name, values)


def _drop(section: SessionDescription | MediaDescription, names: Set[str]) -> None:
    section.lines[:] = [
        line for line in section.lines if line.type != "a" or line.name not in names
    ]


def _candidates(address: str, endpoint: MediaEndpoint, mux: bool) -> list[Candidate]:
    # RFC 8445 §5.1.1.1: one host candidate per component; component 2 is RTCP when it
    # has its own port. Same type and base address: same foundation (RFC 8445 §5.1.1.3).
    ports = [endpoint.port]
    if not mux and endpoint.rtcp_port is not None:
        ports.append(endpoint.rtcp_port)
    return [
        Candidate("1", component, "udp", host_priority(component), address, port, "host")
        for component, port in enumerate(ports, start=1)
    ]
