"""sdp.attributes: typed access to every attribute kind, round trips and errors."""

from __future__ import annotations

import base64

import pytest
import sdp_transform  # type: ignore[import-untyped]

from sdp import SdpError, parse
from sdp.attributes import (
    ATTRIBUTES,
    CANDIDATE,
    CRYPTO,
    EXTMAP,
    FINGERPRINT,
    FMTP,
    GROUP,
    ICE_OPTIONS,
    ICE_PWD,
    ICE_UFRAG,
    MID,
    MSID,
    RTCP,
    RTCP_FB,
    RTPMAP,
    SETUP,
    SSRC,
    SSRC_GROUP,
    STATIC_PAYLOAD_TYPES,
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
    parse_attribute,
)
from sdp.offer_answer import codecs_of
from tests.helpers.golden import CHROME, CHROME_AUDIO, CHROME_AUDIO_VIDEO, fixture, sdp


def test_typed_access_on_the_chrome_offer() -> None:
    description = parse(fixture(CHROME_AUDIO_VIDEO))
    audio, video = description.media
    assert description.get(GROUP) == Group("BUNDLE", ("0", "1"))
    assert audio.get(RTPMAP) == RtpMap(111, "opus", 48000, 2)
    assert [r.encoding for r in audio.get_all(RTPMAP)][-2:] == ["telephone-event"] * 2
    assert audio.get(FMTP) == Fmtp(111, "minptime=10;useinbandfec=1")
    assert audio.get(FMTP) is not None and audio.get(FMTP).items() == [  # type: ignore[union-attr]
        ("minptime", "10"),
        ("useinbandfec", "1"),
    ]
    assert audio.get(RTCP_FB) == RtcpFb(111, "transport-cc")
    assert video.get_all(RTCP_FB)[3:5] == [RtcpFb(96, "nack"), RtcpFb(96, "nack", "pli")]
    assert audio.get(RTCP) == Rtcp(9, "IN", "IP4", "0.0.0.0")
    assert (audio.get(ICE_UFRAG), audio.get(ICE_PWD)) == ("rILl", "Za/XCU2krrBB1qHUAz1omB75")
    assert audio.get(ICE_OPTIONS) == ("trickle",)
    fingerprint = audio.get(FINGERPRINT)
    assert fingerprint is not None and fingerprint.hash_function == "sha-256"
    assert len(fingerprint.digest()) == 32
    assert fingerprint == Fingerprint.from_digest("sha-256", fingerprint.digest())
    assert audio.get(SETUP) is Setup.ACTPASS
    assert (audio.get(MID), video.get(MID)) == ("0", "1")
    assert video.get(EXTMAP) == Extmap(14, "urn:ietf:params:rtp-hdrext:toffset")
    assert audio.get(MSID) == Msid("-", "d643dfa6-996f-426f-a4b5-d3fd0c2f7d59")
    assert audio.get(SSRC) == Ssrc(4269737199, "cname", "ayuEAH9mWzQz/jyZ")
    assert video.get(SSRC_GROUP) == SsrcGroup("FID", (3701360864, 3189423065))
    assert audio.direction is Direction.SENDRECV
    assert audio.get(CRYPTO) is None


@pytest.mark.parametrize("name", CHROME)
def test_every_typed_line_of_the_captures_formats_back_to_itself(name: str) -> None:
    description = parse(fixture(name))
    checked = 0
    for line in description.all_lines():
        row = ATTRIBUTES.get(line.name) if line.type == "a" else None
        if row is not None:
            value = line.attribute_value or ""
            assert row.format(row.parse(value)) == value
            checked += 1
    assert checked >= 25


def test_rtpmap_matches_by_name_rate_and_channels() -> None:
    opus = RtpMap.parse("111 opus/48000/2")
    assert opus.matches("OPUS") and opus.matches("opus", 48000, 2)
    assert not opus.matches("opus", 8000) and not opus.matches("opus", 48000, 1)
    assert RtpMap.parse("0 PCMU/8000").matches("pcmu", 8000, 1)
    assert str(RtpMap(9, "G722", 8000)) == "9 G722/8000"


def test_static_payload_types_need_no_rtpmap() -> None:
    """RFC 3551 §6: m=audio ... 0 8 18 is complete without a=rtpmap."""
    media = parse(
        sdp("v=0", "o=- 1 1 IN IP4 x", "s=-", "c=IN IP4 x", "t=0 0", "m=audio 1 RTP/AVP 0 8 18 96")
    ).media[0]
    assert codecs_of(media) == {
        0: STATIC_PAYLOAD_TYPES[0],
        8: RtpMap(8, "PCMA", 8000),
        18: RtpMap(18, "G729", 8000),
    }


def test_fmtp_parameters() -> None:
    fmtp = Fmtp.parse("102 level-asymmetry-allowed=1; packetization-mode=1;profile-level-id=42001f")
    assert fmtp.get("packetization-mode") == "1"
    assert fmtp.get("missing") is None
    assert Fmtp.parse("97 apt=96").get("apt") == "96"
    assert Fmtp.parse("63 111/111").items() == [("111/111", None)]


def test_rtcp_fb_wildcard_and_trr_int() -> None:
    assert RtcpFb.parse("* nack") == RtcpFb(None, "nack")
    assert str(RtcpFb.parse("98 trr-int 100")) == "98 trr-int 100"
    assert Rtcp.parse("53020") == Rtcp(53020)
    assert str(Rtcp(53020, "IN", "IP6", "2001:db8::1")) == "53020 IN IP6 2001:db8::1"


CANDIDATES = [
    "1 1 udp 2130706431 203.0.113.7 40000 typ host",
    "1162875081 1 udp 2113937151 192.168.34.75 60017 typ host generation 0 network-id 3"
    " network-cost 10",
    "3289912957 2 udp 1845501695 193.84.77.194 60017 typ srflx raddr 192.168.34.75 rport 60017"
    " generation 0",
    "229815620 1 tcp 1518280447 192.168.150.19 9 typ host tcptype active generation 0",
    "842163049 1 udp 1677729535 2001:db8::5 50123 typ relay raddr :: rport 0",
    "0 1 UDP 2122252543 3f8b9e2a-1d3c-4a6b-9f00-5c7e2a1b4d6e.local 54400 typ host",
]


@pytest.mark.parametrize("text", CANDIDATES)
def test_candidates(text: str) -> None:
    candidate = Candidate.parse(text)
    assert str(candidate) == text
    assert candidate.priority > 0 and 0 <= candidate.port <= 65535


def test_candidate_fields() -> None:
    srflx = Candidate.parse(CANDIDATES[2])
    assert (srflx.component, srflx.type) == (2, "srflx")
    assert (srflx.related_address, srflx.related_port) == ("192.168.34.75", 60017)
    assert srflx.extension("generation") == "0"
    tcp = Candidate.parse(CANDIDATES[3])
    assert tcp.extension("tcptype") == "active"  # RFC 6544 §4.5
    assert CANDIDATE.format(tcp) == CANDIDATES[3]


def test_crypto_key_parameters() -> None:
    """RFC 4568 §9.1 with its §6.1 inline key, lifetime and MKI."""
    description = parse(fixture("trunk-savp-offer.sdp"))
    first, second = description.media[0].get_all(CRYPTO)
    assert (first.tag, first.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    (key,) = first.keys
    assert key.key_salt == "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    assert (key.lifetime, key.mki) == ("2^31", (1, 1))
    assert len(key.key_bytes()) == 30
    assert (second.tag, second.suite, second.keys[0].mki) == (2, "AES_CM_128_HMAC_SHA1_32", None)
    several = Crypto.parse(
        "1 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32;"
        "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1048576|2:32 UNENCRYPTED_SRTCP KDR=1"
    )
    assert [k.mki for k in several.keys] == [(1, 32), (2, 32)]
    assert several.keys[1].lifetime == "1048576"
    assert several.session_params == ("UNENCRYPTED_SRTCP", "KDR=1")
    key_salt = bytes(range(30))
    made = Crypto(7, "AES_CM_128_HMAC_SHA1_80", (KeyParam.from_key(key_salt),))
    assert str(made) == f"7 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(key_salt).decode()}"
    assert Crypto.parse(str(made)).keys[0].key_bytes() == key_salt


def test_group_ssrc_group_msid_extmap() -> None:
    assert Group.parse("BUNDLE") == Group("BUNDLE")
    assert str(Group("LS", ("a", "b"))) == "LS a b"
    assert str(SsrcGroup.parse("FEC-FR 3004364195 1080772241")) == "FEC-FR 3004364195 1080772241"
    assert Msid.parse("stream") == Msid("stream")
    ext = Extmap.parse("3/recvonly urn:ietf:params:rtp-hdrext:encrypt urn:x 25@600/24")
    assert (ext.id, ext.direction, ext.uri) == (3, "recvonly", "urn:ietf:params:rtp-hdrext:encrypt")
    assert ext.attributes == "urn:x 25@600/24"
    assert str(ext) == "3/recvonly urn:ietf:params:rtp-hdrext:encrypt urn:x 25@600/24"


def test_direction_reverses_per_rfc_3264() -> None:
    assert [d.reverse() for d in Direction] == [
        Direction.SENDRECV,
        Direction.RECVONLY,
        Direction.SENDONLY,
        Direction.INACTIVE,
    ]


MALFORMED = [
    ("rtpmap", "opus/48000"),
    ("rtpmap", "200 foo/8000"),
    ("rtpmap", "111 opus"),
    ("rtpmap", " 111 opus/48000"),
    ("fmtp", "x minptime=10"),
    ("rtcp-fb", "111"),
    ("rtcp", "70000"),
    ("rtcp", "9 IN IP4"),
    ("candidate", "1 1 udp 1 203.0.113.7 40000 host"),
    ("candidate", "1 1 udp 1 203.0.113.7 70000 typ host"),
    ("candidate", "1 0 udp 1 203.0.113.7 4000 typ host"),
    ("candidate", "1 1 udp 1 203.0.113.7 4000 typ host generation"),
    ("candidate", "1 1 udp 1 203.0.113.7 4000 typ srflx raddr 192.0.2.1 rport x"),
    ("ice-ufrag", "abc"),
    ("ice-ufrag", "ab-cd"),
    ("ice-pwd", "tooshort"),
    ("ice-options", ""),
    ("fingerprint", "sha-256 XY:00"),
    ("fingerprint", "sha-256"),
    ("setup", "server"),
    ("mid", ""),
    ("mid", "a b"),
    ("group", ""),
    ("crypto", "1 AES_CM_128_HMAC_SHA1_80"),
    ("crypto", "1 AES_CM_128_HMAC_SHA1_80 key:abc"),
    ("crypto", "1 AES_CM_128_HMAC_SHA1_80 inline:a$b"),
    ("crypto", "1 AES_CM_128_HMAC_SHA1_80 inline:abcd|2^20|1:0"),
    ("extmap", "0 urn:x"),
    ("extmap", "1/sideways urn:x"),
    ("ssrc", "4294967296 cname:x"),
    ("ssrc", "1"),
    ("ssrc-group", "FID 1 x"),
    ("msid", "a b c"),
    ("msid", "x" * 65),
]


@pytest.mark.parametrize(("name", "value"), MALFORMED)
def test_malformed_attributes_name_the_attribute(name: str, value: str) -> None:
    with pytest.raises(SdpError) as caught:
        parse_attribute(name, value)
    assert f"a={name}" in caught.value.reason
    assert caught.value.reason.isascii()


def test_key_bytes_of_bad_base64() -> None:
    with pytest.raises(SdpError, match="not base64"):
        KeyParam("abc").key_bytes()


def test_a_valued_kind_on_a_flag_line() -> None:
    media = parse(
        sdp("v=0", "o=- 1 1 IN IP4 x", "s=-", "c=IN IP4 x", "t=0 0", "m=audio 1 RTP/AVP 0", "a=mid")
    ).media[0]
    with pytest.raises(SdpError, match="a=mid without a value"):
        media.get(MID)


def test_typed_remove_and_add() -> None:
    media = parse(fixture(CHROME_AUDIO)).media[0]
    assert media.remove(EXTMAP, lambda ext: ext.id > 2) == 2
    assert [ext.id for ext in media.get_all(EXTMAP)] == [1, 2]
    line = media.add(EXTMAP, Extmap(9, "urn:x"))
    assert str(line) == "a=extmap:9 urn:x"
    assert media.lines.index(line) == media.lines.index(media.find_all("extmap")[1]) + 1
    assert media.remove(SSRC) == 2


@pytest.mark.parametrize("name", CHROME)
def test_sdp_transform_reads_the_same_fields(name: str) -> None:
    """sdp-transform's grammar as an independent oracle for the fields both parse."""
    data = fixture(name).decode()
    theirs = sdp_transform.parse(data)
    ours = parse(data)
    for media, other in zip(ours.media, theirs["media"], strict=True):
        assert [
            (r.payload_type, r.encoding, r.clock_rate, r.channels) for r in media.get_all(RTPMAP)
        ] == [(r["payload"], r["codec"], r["rate"], r.get("encoding")) for r in other["rtp"]]
        assert [(f.payload_type, f.parameters) for f in media.get_all(FMTP)] == [
            (f["payload"], str(f["config"])) for f in other["fmtp"]
        ]
        assert [(f.payload_type, f.type, f.parameters) for f in media.get_all(RTCP_FB)] == [
            (f["payload"], f["type"], f.get("subtype")) for f in other.get("rtcpFb", [])
        ]
        assert [(e.id, e.uri) for e in media.get_all(EXTMAP)] == [
            (e["value"], e["uri"]) for e in other["ext"]
        ]
        assert [(s.ssrc, s.attribute, s.value) for s in media.get_all(SSRC)] == [
            (s["id"], s["attribute"], s["value"]) for s in other["ssrcs"]
        ]
        fingerprint = media.get(FINGERPRINT)
        assert fingerprint is not None
        assert (fingerprint.hash_function, fingerprint.fingerprint) == (
            other["fingerprint"]["type"],
            other["fingerprint"]["hash"],
        )
        assert media.get(SETUP) == other["setup"]
        assert media.port == other["port"] and media.proto == other["protocol"]
