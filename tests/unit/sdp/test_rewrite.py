"""sdp.rewrite: golden rewrites per leg profile, and what each profile keeps or changes."""

from __future__ import annotations

import base64

import pytest

from sdp import (
    AVP,
    SAVP_SDES,
    SAVP_SDES_ICE,
    TEAMS,
    WEBRTC,
    DtlsParameters,
    Fingerprint,
    IceParameters,
    MediaEndpoint,
    RelayEndpoints,
    SdesParameters,
    Setup,
    build_answer,
    filter_codecs,
    parse,
    rewrite,
)
from sdp.attributes import CANDIDATE, CRYPTO, Candidate, Direction
from sdp.rewrite import PROFILES, host_priority
from tests.helpers.golden import CHROME_AUDIO, CHROME_AUDIO_VIDEO, expected, fixture, sdp

# Documentation addresses (RFC 5737) and fixed "generated" values: all are inputs.
PBX_SIDE = "203.0.113.7"
BROWSER_SIDE = "198.51.100.9"
ICE = IceParameters("Wg8r", "Q4bTj1mPz7xVn2sKd9LcYe")
FINGERPRINT = Fingerprint.from_digest("sha-256", bytes(range(32)))
KEY = bytes(range(30))
WEB = {"UFRAG": ICE.ufrag, "PWD": ICE.pwd, "FINGERPRINT": FINGERPRINT.fingerprint}


def relay(address: str, *media: MediaEndpoint | None) -> RelayEndpoints:
    return RelayEndpoints(address, media)


# --- golden rewrites ------------------------------------------------------------------------


def test_chrome_audio_offer_to_a_pbx() -> None:
    """Browser offer -> RTP/AVP toward a PBX, after the trunk's PCMU/PCMA allow-list."""
    offer = parse(fixture(CHROME_AUDIO))
    filter_codecs(offer, ["PCMU", "PCMA"])
    out = rewrite(offer, AVP, relay(PBX_SIDE, MediaEndpoint(40000, 40001)))
    assert bytes(out) == expected(
        "chrome-audio-offer.avp.sdp", RELAY=PBX_SIDE, PORT=40000, RTCP_PORT=40001
    )


def test_asterisk_answer_to_the_browser() -> None:
    """PBX answer -> UDP/TLS/RTP/SAVPF toward the browser that offered BUNDLE."""
    answer = parse(fixture("asterisk-20-answer.sdp"))
    out = rewrite(
        answer,
        WEBRTC,
        relay(BROWSER_SIDE, MediaEndpoint(50000)),
        ice=ICE,
        dtls=DtlsParameters(FINGERPRINT, Setup.PASSIVE),
        bundle=True,
        mids=["0"],
    )
    assert bytes(out) == expected(
        "asterisk-answer.webrtc.sdp", RELAY=BROWSER_SIDE, PORT=50000, **WEB
    )


def test_chrome_audio_video_offer_to_a_pbx_splits_the_bundle() -> None:
    """One port pair per m= line, no a=group or a=mid (RFC 9143 does not reach the PBX)."""
    offer = parse(fixture(CHROME_AUDIO_VIDEO))
    filter_codecs(offer, ["PCMU", "PCMA", "VP8", "rtx"])
    out = rewrite(
        offer,
        AVP,
        relay(PBX_SIDE, MediaEndpoint(40000, 40001), MediaEndpoint(40002, 40003)),
    )
    assert bytes(out) == expected(
        "chrome-audio-video-offer.avp.sdp",
        RELAY=PBX_SIDE,
        AUDIO_PORT=40000,
        AUDIO_RTCP_PORT=40001,
        VIDEO_PORT=40002,
        VIDEO_RTCP_PORT=40003,
    )


def test_chrome_audio_offer_to_an_sdes_trunk() -> None:
    """RTP/SAVP with our a=crypto; the relay multiplexes RTCP, so rtcp-mux stays."""
    offer = parse(fixture(CHROME_AUDIO))
    filter_codecs(offer, ["PCMU", "PCMA"])
    out = rewrite(offer, SAVP_SDES, relay(PBX_SIDE, MediaEndpoint(40000, sdes=SdesParameters(KEY))))
    assert bytes(out) == expected(
        "chrome-audio-offer.savp-sdes.sdp",
        RELAY=PBX_SIDE,
        PORT=40000,
        KEY=base64.b64encode(KEY).decode(),
    )
    crypto = out.media[0].get(CRYPTO)
    assert crypto is not None and crypto.keys[0].key_bytes() == KEY


def test_sdes_trunk_offer_to_the_browser() -> None:
    """The trunk's keys and RTCP port stay on its hop; the browser gets DTLS and ICE."""
    out = rewrite(
        parse(fixture("trunk-savp-offer.sdp")),
        WEBRTC,
        relay(BROWSER_SIDE, MediaEndpoint(50000)),
        ice=ICE,
        dtls=DtlsParameters(FINGERPRINT, Setup.ACTPASS),
    )
    assert bytes(out) == expected(
        "trunk-savp-offer.webrtc.sdp", RELAY=BROWSER_SIDE, PORT=50000, **WEB
    )


# --- what passes through ------------------------------------------------------------------


def test_lines_outside_the_profile_pass_through_unchanged() -> None:
    offer = parse(fixture(CHROME_AUDIO))
    out = rewrite(offer, AVP, relay(PBX_SIDE, MediaEndpoint(40000, 40001)))
    untouched = [line for line in out.all_lines() if not line.changed]
    assert [str(line) for line in untouched] == [
        "v=0",
        "s=-",
        "t=0 0",
        "a=sendrecv",
        "a=rtcp-xr:rcvr-rtt=all",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
    ]
    assert bytes(offer) == fixture(CHROME_AUDIO)  # the input is not touched


def test_rewrite_is_deterministic_and_bumps_the_version_once() -> None:
    offer = parse(fixture(CHROME_AUDIO))
    endpoints = relay(PBX_SIDE, MediaEndpoint(40000, 40001))
    first, second = rewrite(offer, AVP, endpoints), rewrite(offer, AVP, endpoints)
    assert bytes(first) == bytes(second)
    assert first.origin.version == offer.origin.version + 1


def test_peer_candidates_are_replaced() -> None:
    """A browser on a real network sends candidates and end-of-candidates (RFC 8840)."""
    data = fixture(CHROME_AUDIO).replace(
        b"a=ice-options:trickle\r\n",
        b"a=ice-options:trickle\r\n"
        b"a=candidate:1162875081 1 udp 2113937151 192.168.34.75 60017 typ host generation 0\r\n"
        b"a=candidate:3289912957 1 udp 1845501695 192.0.2.33 60017 typ srflx raddr"
        b" 192.168.34.75 rport 60017 generation 0\r\n"
        b"a=end-of-candidates\r\n",
    )
    offer = parse(data)
    to_pbx = rewrite(offer, AVP, relay(PBX_SIDE, MediaEndpoint(40000, 40001)))
    assert not any(
        line.name in ("candidate", "end-of-candidates") for line in to_pbx.media[0].lines
    )
    back = rewrite(
        offer, WEBRTC, relay(BROWSER_SIDE, MediaEndpoint(50000)), ice=ICE,
        dtls=DtlsParameters(FINGERPRINT, Setup.PASSIVE), bundle=True,
    )  # fmt: skip
    audio = back.media[0]
    assert audio.get_all(CANDIDATE) == [
        Candidate("1", 1, "udp", 2130706431, BROWSER_SIDE, 50000, "host")
    ]
    # The new lines take the old ones' place: right after a=ice-options was.
    names = [line.name for line in audio.lines]
    assert names.index("candidate") == names.index("end-of-candidates") - 1
    assert names.index("candidate") < names.index("mid")


def test_webrtc_answer_bundles_audio_and_video() -> None:
    """RFC 9143 §7.3: one port for the group; ICE/DTLS/rtcp-mux on the tagged m= only."""
    offer = parse(fixture(CHROME_AUDIO_VIDEO))
    answer = build_answer(offer, {"audio": ["PCMU"], "video": ["VP8"]})
    out = rewrite(
        answer,
        WEBRTC,
        relay(BROWSER_SIDE, MediaEndpoint(50000), MediaEndpoint(50000)),
        ice=ICE,
        dtls=DtlsParameters(FINGERPRINT, Setup.ACTIVE),
        bundle=True,
    )
    audio, video = out.media
    assert out.attribute("group") == "BUNDLE 0 1"
    assert out.has_attribute("ice-lite")
    assert (audio.port, video.port) == (50000, 50000)
    for name in ("ice-ufrag", "ice-pwd", "fingerprint", "setup", "rtcp-mux", "candidate"):
        assert audio.has_attribute(name) and not video.has_attribute(name), name
    assert (audio.mid, video.mid) == ("0", "1")
    assert video.attributes("rtcp-fb")  # AVPF keeps its feedback
    assert not video.has_attribute("ssrc")  # the offerer's, dropped by build_answer


def test_webrtc_with_a_rejected_stream() -> None:
    answer = build_answer(parse(fixture(CHROME_AUDIO_VIDEO)), {"audio": ["PCMU"]})
    out = rewrite(
        answer,
        WEBRTC,
        relay(BROWSER_SIDE, MediaEndpoint(50000), MediaEndpoint(50002)),
        ice=ICE,
        dtls=DtlsParameters(FINGERPRINT, Setup.ACTIVE),
        bundle=True,
    )
    video = out.media[1]
    # RFC 3264 §6: a rejected stream stays rejected whatever the relay offers for it.
    assert video.port == 0 and video.proto == "UDP/TLS/RTP/SAVPF"
    assert [str(line) for line in video.lines] == ["c=IN IP4 198.51.100.9", "a=mid:1"]
    assert out.attribute("group") == "BUNDLE 0"


def test_stream_the_relay_does_not_carry_gets_port_zero() -> None:
    offer = parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=sctp-port:5000",
            "m=video 49172 RTP/AVP 31",
        )
    )
    out = rewrite(
        offer,
        AVP,
        relay(PBX_SIDE, MediaEndpoint(40000, 40001), MediaEndpoint(40002, 40003), None),
    )
    assert [m.port for m in out.media] == [40000, 0, 0]
    assert out.media[1].proto == "UDP/DTLS/SCTP"  # not RTP: not ours to rename
    assert out.connection is not None and out.connection.address == PBX_SIDE
    assert all(m.connection is None for m in out.media)  # the session c= serves them


def test_sdes_with_ice_lite_and_separate_rtcp() -> None:
    """RFC 8445 §5.1.1.1: a host candidate per component; RTCP is component 2."""
    out = rewrite(
        parse(fixture("trunk-savp-offer.sdp")),
        SAVP_SDES_ICE,
        relay("2001:db8::7", MediaEndpoint(40000, 40001, SdesParameters(KEY, tag=2))),
        ice=ICE,
    )
    audio = out.media[0]
    assert out.has_attribute("ice-lite")
    assert out.connection is not None and str(out.connection) == "IN IP6 2001:db8::7"
    assert [(c.component, c.port, c.priority) for c in audio.get_all(CANDIDATE)] == [
        (1, 40000, host_priority(1)),
        (2, 40001, host_priority(2)),
    ]
    assert audio.attribute("rtcp") == "40001"
    assert not audio.has_attribute("rtcp-mux")
    (crypto,) = audio.get_all(CRYPTO)
    assert crypto.tag == 2  # RFC 4568 §7.1.2: the answer echoes the accepted tag
    assert audio.proto == "RTP/SAVP"


def test_mids_can_be_given() -> None:
    out = rewrite(
        parse(fixture("asterisk-20-answer.sdp")),
        WEBRTC,
        relay(BROWSER_SIDE, MediaEndpoint(50000)),
        ice=ICE,
        dtls=DtlsParameters(FINGERPRINT, Setup.PASSIVE),
        bundle=True,
        mids=["audio"],
    )
    assert out.media[0].mid == "audio"
    assert out.attribute("group") == "BUNDLE audio"


def test_host_priority() -> None:
    assert host_priority(1) == 2130706431  # RFC 8445 §5.1.2.1 with local preference 65535
    assert set(PROFILES) == {"AVP", "SAVP_SDES", "SAVP_SDES_ICE", "TEAMS", "WEBRTC"}


@pytest.mark.parametrize(
    ("profile", "endpoints", "kwargs", "message"),
    [
        (AVP, (), {}, "0 relay endpoints for 1 m= lines"),
        (WEBRTC, (MediaEndpoint(1),), {"dtls": DtlsParameters(FINGERPRINT, Setup.ACTPASS)}, "ICE"),
        (WEBRTC, (MediaEndpoint(1),), {"ice": ICE}, "DTLS"),
        (
            WEBRTC,
            (MediaEndpoint(1, 2),),
            {"ice": ICE, "dtls": DtlsParameters(FINGERPRINT, Setup.ACTPASS)},
            "multiplexes RTCP",
        ),
        (SAVP_SDES, (MediaEndpoint(1),), {}, "SDES key"),
    ],
)
def test_arguments_that_do_not_fit(
    profile: object, endpoints: tuple[MediaEndpoint, ...], kwargs: dict[str, object], message: str
) -> None:
    offer = parse(fixture(CHROME_AUDIO))
    with pytest.raises(ValueError, match=message):
        rewrite(offer, profile, RelayEndpoints(PBX_SIDE, endpoints), **kwargs)  # type: ignore[arg-type]


def test_bad_mids_and_split_bundles() -> None:
    answer = build_answer(parse(fixture(CHROME_AUDIO_VIDEO)), {"audio": ["PCMU"], "video": ["VP8"]})
    dtls = DtlsParameters(FINGERPRINT, Setup.ACTIVE)
    endpoints = relay(BROWSER_SIDE, MediaEndpoint(50000), MediaEndpoint(50002))
    with pytest.raises(ValueError, match="share one relay port"):
        rewrite(answer, WEBRTC, endpoints, ice=ICE, dtls=dtls, bundle=True)
    with pytest.raises(ValueError, match="distinct mids"):
        rewrite(answer, WEBRTC, endpoints, ice=ICE, dtls=dtls, mids=["a", "a"])
    # Without BUNDLE each stream has its own port and its own transport attributes.
    out = rewrite(answer, WEBRTC, endpoints, ice=ICE, dtls=dtls)
    assert not out.has_attribute("group")
    assert all(m.has_attribute("ice-ufrag") and m.has_attribute("candidate") for m in out.media)


@pytest.mark.parametrize(
    "make",
    [
        lambda: IceParameters("abc", "Q4bTj1mPz7xVn2sKd9LcYe"),
        lambda: IceParameters("Wg8r", "short"),
        lambda: IceParameters("Wg-8r", "Q4bTj1mPz7xVn2sKd9LcYe"),
        lambda: SdesParameters(bytes(16)),
        lambda: SdesParameters(KEY, suite="NULL_CIPHER"),
        lambda: SdesParameters(KEY, tag=10**9),
        lambda: MediaEndpoint(0),
        lambda: MediaEndpoint(40000, 70000),
    ],
)
def test_bad_parameters(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_teams_profile_muxes_rtcp_and_holds_with_inactive_only() -> None:
    key = bytes(range(30))
    for one_way in ("sendonly", "recvonly"):
        answer = fixture("asterisk-20-answer.sdp")
        held = parse(answer.replace(b"a=sendrecv", f"a={one_way}".encode()))
        out = rewrite(
            held,
            TEAMS,
            RelayEndpoints("203.0.113.5", (MediaEndpoint(40000, None, SdesParameters(key)),)),
        )
        media = out.media[0]
        assert media.proto == "RTP/SAVP"
        assert media.direction is Direction.INACTIVE, one_way
        assert media.has_attribute("rtcp-mux") and media.get_all(CRYPTO)
    talking = rewrite(
        parse(fixture("asterisk-20-answer.sdp")),
        TEAMS,
        RelayEndpoints("203.0.113.5", (MediaEndpoint(40000, None, SdesParameters(key)),)),
    )
    assert talking.media[0].direction is Direction.SENDRECV
