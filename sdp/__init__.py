"""SDP model, offer/answer rules and per-leg rewrite profiles. Pure: imports nothing of Wedge.

* :mod:`sdp.model`: :func:`parse` into a :class:`SessionDescription` whose untouched
  lines pass through byte for byte, with an editing API that tracks changes;
* :mod:`sdp.attributes`: typed ``a=`` values through a name -> codec table;
* :mod:`sdp.offer_answer`: RFC 3264 answers, codec allow-lists, ``o=`` versions;
* :mod:`sdp.rewrite`: the AVP, SAVP_SDES and WEBRTC leg profiles and :func:`rewrite`.
"""

from sdp.attributes import (
    ATTRIBUTES,
    Attribute,
    Candidate,
    Crypto,
    Direction,
    Extmap,
    Fingerprint,
    Fmtp,
    Group,
    KeyParam,
    Msid,
    Rtcp,
    RtcpFb,
    RtpMap,
    Setup,
    Ssrc,
    SsrcGroup,
)
from sdp.errors import SdpError
from sdp.model import Connection, Line, MediaDescription, Origin, SessionDescription, parse
from sdp.offer_answer import (
    CodecSpec,
    build_answer,
    bump_version,
    filter_codecs,
    follow_origin,
    negotiate_direction,
)
from sdp.rewrite import (
    AVP,
    PROFILES,
    SAVP_SDES,
    SAVP_SDES_ICE,
    TEAMS,
    WEBRTC,
    DtlsParameters,
    IceParameters,
    MediaEndpoint,
    Profile,
    RelayEndpoints,
    SdesParameters,
    rewrite,
)

__all__ = [
    "ATTRIBUTES",
    "AVP",
    "PROFILES",
    "SAVP_SDES",
    "SAVP_SDES_ICE",
    "TEAMS",
    "WEBRTC",
    "Attribute",
    "Candidate",
    "CodecSpec",
    "Connection",
    "Crypto",
    "Direction",
    "DtlsParameters",
    "Extmap",
    "Fingerprint",
    "Fmtp",
    "Group",
    "IceParameters",
    "KeyParam",
    "Line",
    "MediaDescription",
    "MediaEndpoint",
    "Msid",
    "Origin",
    "Profile",
    "RelayEndpoints",
    "Rtcp",
    "RtcpFb",
    "RtpMap",
    "SdesParameters",
    "SdpError",
    "SessionDescription",
    "Setup",
    "Ssrc",
    "SsrcGroup",
    "build_answer",
    "bump_version",
    "filter_codecs",
    "follow_origin",
    "negotiate_direction",
    "parse",
    "rewrite",
]
