"""sdp.offer_answer: RFC 3264 answers, codec allow-lists and o= versions."""

from __future__ import annotations

import pytest

from sdp import Direction, Origin, SdpError, parse
from sdp.offer_answer import (
    CodecSpec,
    build_answer,
    bump_version,
    effective_direction,
    filter_codecs,
    follow_origin,
    negotiate_direction,
    select_formats,
)
from tests.helpers.golden import CHROME_AUDIO, CHROME_AUDIO_VIDEO, fixture, sdp

V, ORIGIN, S, C, T = (
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
    "s=-",
    "c=IN IP4 192.0.2.10",
    "t=0 0",
)
AUDIO = ["a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"]


def offer(*media_lines: str, session: tuple[str, ...] = ()) -> bytes:
    return sdp(V, ORIGIN, S, C, T, *session, *media_lines)


# --- codec allow-lists -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "formats"),
    [
        (["PCMU"], ["0", "126"]),
        (["pcmu/8000"], ["0", "126"]),
        (["opus"], ["111", "110"]),
        (["opus/48000/2"], ["111", "110"]),
        (["G722"], ["9", "126"]),
        (["PCMA", "opus"], ["111", "8", "110", "126"]),  # the offerer's order, not ours
        (["opus", "red"], ["111", "63", "110"]),  # red/48000 with fmtp 111/111
        (["PCMU", "red"], ["0", "126"]),  # red without opus has nothing to carry
        (["PCMU", "CN", "telephone-event"], ["0", "13", "126"]),
    ],
)
def test_allow_list_keeps_telephone_event_per_clock_rate(
    allow: list[str], formats: list[str]
) -> None:
    """RFC 4733: events are timed by the RTP clock of the codec they go with."""
    description = parse(fixture(CHROME_AUDIO))
    assert filter_codecs(description, allow)
    audio = description.media[0]
    assert audio.formats == formats
    kept = set(formats)
    for name in ("rtpmap", "fmtp", "rtcp-fb"):
        assert {value.split()[0] for value in audio.attributes(name)} <= kept


@pytest.mark.parametrize("allow", [["telephone-event"], ["CN"], ["opus/48000/1"], ["red"], []])
def test_allow_list_with_no_codec_left_is_488(allow: list[str]) -> None:
    with pytest.raises(SdpError, match="no acceptable codec") as caught:
        filter_codecs(parse(fixture(CHROME_AUDIO)), allow)
    assert caught.value.status == 488


def test_allow_list_follows_rtx_and_disables_video_without_codecs() -> None:
    description = parse(fixture(CHROME_AUDIO_VIDEO))
    filter_codecs(description, ["PCMU", "VP8", "rtx"])
    assert description.media[1].formats == ["96", "97"]  # rtx 97 has apt=96 (RFC 4588 §8.1)
    assert [fb.split()[0] for fb in description.media[1].attributes("rtcp-fb")] == ["96"] * 5

    description = parse(fixture(CHROME_AUDIO_VIDEO))
    filter_codecs(description, ["PCMU", "rtx"])
    audio, video = description.media
    assert audio.formats == ["0", "126"]
    # RFC 3264 §8.2 and RFC 9143 §7.5.3: disabled, counted, out of the BUNDLE group.
    assert (video.port, video.formats, video.mid) == (0, ["96"], "1")
    assert [str(line) for line in video.lines] == ["c=IN IP4 0.0.0.0", "a=mid:1"]
    assert description.attribute("group") == "BUNDLE 0"


def test_allow_list_that_keeps_everything_changes_nothing() -> None:
    data = offer("m=audio 49170 RTP/AVP 0 101", *AUDIO)
    description = parse(data)
    assert not filter_codecs(description, ["PCMU"])
    assert bytes(description) == data


def test_rtcp_fb_for_every_format_stays() -> None:
    description = parse(
        offer(
            "m=video 49170 RTP/AVPF 96 98",
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:98 VP9/90000",
            "a=rtcp-fb:* nack",
            "a=rtcp-fb:98 nack pli",
        )
    )
    filter_codecs(description, ["VP8"])
    assert description.media[0].attributes("rtcp-fb") == ["* nack"]


def test_codec_spec() -> None:
    assert CodecSpec.parse("opus/48000/2") == CodecSpec("opus", 48000, 2)
    assert CodecSpec.parse(" PCMU ") == CodecSpec("PCMU")
    for bad in ("", "opus/x", "a/1/2/3", "/8000"):
        with pytest.raises(ValueError):
            CodecSpec.parse(bad)


def test_dynamic_type_without_rtpmap_is_not_selected() -> None:
    media = parse(offer("m=audio 49170 RTP/AVP 96 0")).media[0]
    assert select_formats(media, ["PCMU", "opus"]) == ["0"]


# --- directions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        # RFC 3264 §6.1
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.RECVONLY, Direction.RECVONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.INACTIVE, Direction.INACTIVE),
    ],
)
def test_negotiate_direction(offered: Direction, wanted: Direction, answered: Direction) -> None:
    assert negotiate_direction(offered, wanted) is answered


def test_hold_with_sendonly_is_answered_recvonly() -> None:
    """RFC 3264 §8.4: a=sendonly puts the stream on hold; the answer says recvonly."""
    answer = build_answer(
        parse(offer("m=audio 49170 RTP/AVP 0 101", *AUDIO, "a=sendonly")), {"audio": ["PCMU"]}
    )
    assert answer.media[0].direction is Direction.RECVONLY
    assert answer.media[0].attributes("sendonly") == []


def test_session_level_direction_applies_to_every_stream() -> None:
    """RFC 8866 §6.7: a media-level direction overrides the session-level one."""
    description = parse(
        offer(
            "m=audio 49170 RTP/AVP 0",
            "m=audio 49172 RTP/AVP 0",
            "a=inactive",
            session=("a=sendonly",),
        )
    )
    first, second = description.media
    assert effective_direction(description, first) is Direction.SENDONLY
    assert effective_direction(description, second) is Direction.INACTIVE
    answer = build_answer(description, {"audio": ["PCMU"]})
    assert answer.direction is None
    assert [m.direction for m in answer.media] == [Direction.RECVONLY, Direction.INACTIVE]


def test_answer_may_narrow_the_direction() -> None:
    answer = build_answer(
        parse(offer("m=audio 49170 RTP/AVP 0")), {"audio": ["PCMU"]}, direction=Direction.RECVONLY
    )
    assert answer.media[0].direction is Direction.RECVONLY


# --- answers ---------------------------------------------------------------------------


def test_answer_to_chrome_intersects_codecs_in_the_offerers_order() -> None:
    offer_sd = parse(fixture(CHROME_AUDIO))
    answer = build_answer(offer_sd, {"audio": ["PCMA", "PCMU", "opus"]})
    (audio,) = answer.media
    assert audio.formats == ["111", "0", "8", "110", "126"]
    assert audio.direction is Direction.SENDRECV
    # The offerer's transport and sources are not echoed back (rewrite adds ours).
    for name in ("ice-ufrag", "fingerprint", "setup", "ssrc", "msid", "candidate"):
        assert not audio.has_attribute(name)
    assert not answer.has_attribute("msid-semantic")
    assert bytes(offer_sd) == fixture(CHROME_AUDIO)


def test_rejected_video_keeps_its_m_line_with_port_zero() -> None:
    """RFC 3264 §6: same count and order of m= lines; rejected ones get port zero."""
    answer = build_answer(parse(fixture(CHROME_AUDIO_VIDEO)), {"audio": ["PCMU"]})
    audio, video = answer.media
    assert (audio.media, video.media) == ("audio", "video")
    assert audio.formats == ["0", "126"] and audio.port == 9
    assert video.rejected and video.formats == ["96"] and video.mid == "1"
    assert [line.type + line.name for line in video.lines] == ["cc", "amid"]
    # RFC 9143 §7.3.3: a rejected m= section leaves the BUNDLE group.
    assert answer.attribute("group") == "BUNDLE 0"


def test_stream_offered_with_port_zero_stays_rejected() -> None:
    answer = build_answer(
        parse(offer("m=audio 49170 RTP/AVP 0", "m=audio 0 RTP/AVP 0")), {"audio": ["PCMU"]}
    )
    assert [m.port for m in answer.media] == [49170, 0]


def test_non_rtp_and_unknown_media_are_rejected() -> None:
    answer = build_answer(
        parse(
            offer(
                "m=audio 49170 RTP/AVP 0",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
                "m=video 49172 RTP/AVP 31",
            )
        ),
        {"audio": ["PCMU"], "application": ["webrtc-datachannel"]},
    )
    assert [m.port for m in answer.media] == [49170, 0, 0]


def test_nothing_acceptable_is_488() -> None:
    with pytest.raises(SdpError, match="no acceptable media"):
        build_answer(parse(fixture(CHROME_AUDIO)), {"video": ["VP8"]})


def test_answer_origin() -> None:
    mine = Origin("wedge", "42", 1, "IN", "IP4", "203.0.113.7")
    answer = build_answer(parse(fixture(CHROME_AUDIO)), {"audio": ["PCMU"]}, origin=mine)
    assert answer.origin == mine


# --- o= version ------------------------------------------------------------------------


def test_version_is_stable_without_edits() -> None:
    data = fixture(CHROME_AUDIO)
    description = parse(data)
    assert not bump_version(description)
    assert description.origin.version == 2
    assert bytes(description) == data


def test_version_is_bumped_once_per_change() -> None:
    """RFC 3264 §8: incremented by one when the description changes."""
    description = parse(fixture(CHROME_AUDIO))
    description.media[0].port = 4000
    assert bump_version(description)
    assert description.origin.version == 3
    description.remove_attribute("extmap-allow-mixed")
    assert bump_version(description)
    assert description.origin.version == 3
    assert "o=- 2851363849315562465 3 IN IP4 127.0.0.1\r\n" in str(description)


def test_version_goes_back_when_the_edit_is_undone() -> None:
    data = fixture(CHROME_AUDIO)
    description = parse(data)
    description.media[0].port = 4000
    bump_version(description)
    description.media[0].port = 9
    assert not bump_version(description)
    assert bytes(description) == data


def test_follow_origin_keeps_a_leg_consistent() -> None:
    """RFC 3264 §8: same origin fields on a leg; version +1 only for a different body."""
    first = parse(offer("m=audio 49170 RTP/AVP 0"))
    assert not follow_origin(first, None)
    again = parse(sdp(V, "o=other 1 77 IN IP4 198.51.100.1", S, C, T, "m=audio 49170 RTP/AVP 0"))
    assert not follow_origin(again, first)
    assert again.origin == first.origin
    changed = parse(sdp(V, "o=other 1 78 IN IP4 198.51.100.1", S, C, T, "m=audio 49180 RTP/AVP 0"))
    assert follow_origin(changed, first)
    assert changed.origin == Origin("alice", "2890844526", 2890844527, "IN", "IP4", "192.0.2.10")
