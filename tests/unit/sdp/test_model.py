"""sdp.model: byte-exact round trips, structure, the editing API and malformed input."""

from __future__ import annotations

import pytest

from sdp import Connection, Direction, Line, Origin, SdpError, Setup, parse
from sdp.attributes import MID, SETUP
from sdp.model import MAX_LINES
from tests.helpers.golden import CHROME, CHROME_AUDIO, CHROME_AUDIO_VIDEO, fixture, sdp

MINIMAL = sdp(
    "v=0",
    "o=- 1 1 IN IP4 192.0.2.1",
    "s=-",
    "c=IN IP4 192.0.2.1",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0 8",
    "a=sendrecv",
)


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("name", CHROME)
def test_chrome_offer_round_trips_byte_for_byte(name: str) -> None:
    data = fixture(name)
    description = parse(data)
    assert not description.changed
    assert bytes(description) == data
    assert str(description) == data.decode()
    assert str(parse(data.decode())) == data.decode()


@pytest.mark.parametrize("name", CHROME)
def test_unedited_copy_round_trips_byte_for_byte(name: str) -> None:
    data = fixture(name)
    assert bytes(parse(data).copy()) == data


def test_lf_line_ends_pass_through_until_an_edit() -> None:
    """RFC 8866 §5: accept bare LF; output is CRLF once anything changed."""
    data = fixture(CHROME_AUDIO).replace(b"\r\n", b"\n")
    description = parse(data)
    assert bytes(description) == data
    description.media[0].port = 4000
    out = bytes(description)
    assert out == fixture(CHROME_AUDIO).replace(b"m=audio 9 ", b"m=audio 4000 ")


def test_trailing_blank_lines_and_missing_final_newline() -> None:
    padded = MINIMAL + b"\r\n\r\n"
    assert bytes(parse(padded)) == padded
    edited = parse(padded)
    edited.media[0].port = 5000
    assert bytes(edited) == MINIMAL.replace(b"49170", b"5000")
    unterminated = MINIMAL[:-2]
    assert bytes(parse(unterminated)) == unterminated
    assert len(parse(unterminated).media[0].lines) == 1


def test_bytes_that_are_not_utf8_pass_through() -> None:
    data = MINIMAL.replace(b"s=-", b"s=caf\xe9")
    description = parse(data)
    assert bytes(description) == data
    description.media[0].port = 6000
    assert bytes(description) == data.replace(b"49170", b"6000")


# --- structure -------------------------------------------------------------------------


def test_structure_of_the_audio_video_offer() -> None:
    description = parse(fixture(CHROME_AUDIO_VIDEO))
    assert [line.type for line in description.lines] == list("vostaaa")
    assert description.origin == Origin("-", "7758276314642206844", 2, "IN", "IP4", "127.0.0.1")
    assert [m.media for m in description.media] == ["audio", "video"]
    audio, video = description.media
    assert (audio.port, audio.port_count, audio.proto) == (9, None, "UDP/TLS/RTP/SAVPF")
    assert audio.formats == ["111", "63", "9", "0", "8", "13", "110", "126"]
    assert audio.payload_types[:2] == [111, 63]
    assert audio.is_rtp and not audio.rejected
    assert audio.connection == Connection("IN", "IP4", "0.0.0.0")
    assert description.connection is None
    assert (audio.mid, video.mid) == ("0", "1")
    assert len(video.formats) == 23
    assert video.mline.value.startswith("video 9 UDP/TLS/RTP/SAVPF 96 97 102")


def test_lines_keep_their_exact_text() -> None:
    description = parse(fixture(CHROME_AUDIO))
    line = description.find("msid-semantic")
    assert line is not None
    assert str(line) == "a=msid-semantic: WMS"
    assert line.attribute_value == " WMS"
    assert description.attribute("extmap-allow-mixed") == ""
    assert description.attribute("nothing") is None
    assert description.media[0].attributes("rtpmap")[-1] == "126 telephone-event/8000"


def test_port_count_and_non_rtp_formats() -> None:
    description = parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::1",
            "s= ",
            "c=IN IP6 2001:db8::1",
            "t=0 0",
            "m=video 49170/2 RTP/AVP 31",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "m=image 0 udptl t38",
        )
    )
    video, data, fax = description.media
    assert (video.port, video.port_count) == (49170, 2)
    assert not data.is_rtp and data.formats == ["webrtc-datachannel"]
    assert fax.rejected
    with pytest.raises(SdpError, match="carries no RTP"):
        data.payload_types  # noqa: B018


# --- editing ---------------------------------------------------------------------------


def _changed_lines(before: bytes, after: bytes) -> list[tuple[str, str]]:
    old, new = before.decode().split("\r\n"), after.decode().split("\r\n")
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_an_edit_changes_that_line_only() -> None:
    data = fixture(CHROME_AUDIO_VIDEO)
    description = parse(data)
    video = description.media[1]
    video.port = 40002
    assert video.changed and video.mline.changed
    assert not description.media[0].changed
    ((old, new),) = _changed_lines(data, bytes(description))
    assert old.startswith("m=video 9 UDP/TLS/RTP/SAVPF 96 97 ")
    assert new == old.replace(" 9 ", " 40002 ", 1)


def test_set_attribute_keeps_the_position() -> None:
    data = fixture(CHROME_AUDIO)
    description = parse(data)
    audio = description.media[0]
    line = audio.set(SETUP, Setup.PASSIVE)
    assert audio.get(SETUP) is Setup.PASSIVE
    assert _changed_lines(data, bytes(description)) == [("a=setup:actpass", "a=setup:passive")]
    assert line.changed and line.original is None


def test_setting_the_same_value_changes_nothing() -> None:
    data = fixture(CHROME_AUDIO)
    description = parse(data)
    description.media[0].set_attribute("setup", "actpass")
    description.media[0].set(MID, "0")
    description.media[0].set_direction(Direction.SENDRECV)
    assert not description.changed
    assert bytes(description) == data


def test_add_goes_after_lines_of_the_same_name_or_at_the_end() -> None:
    description = parse(fixture(CHROME_AUDIO))
    audio = description.media[0]
    added = audio.add_attribute("rtpmap", "96 L16/8000")
    before = audio.lines[audio.lines.index(added) - 1]
    assert str(before) == "a=rtpmap:126 telephone-event/8000"
    flag = audio.add_attribute("x-wedge")
    assert audio.lines[-1] is flag and str(flag) == "a=x-wedge"
    assert audio.attribute("x-wedge") == ""


def test_remove_attribute_by_name_and_by_value() -> None:
    description = parse(fixture(CHROME_AUDIO))
    audio = description.media[0]
    assert audio.remove_attribute("extmap", lambda value: (value or "").startswith("2 ")) == 1
    assert [e.split()[0] for e in audio.attributes("extmap")] == ["1", "3", "4"]
    assert audio.remove_attribute("ssrc") == 2
    assert audio.remove_attribute("ssrc") == 0
    assert description.changed


def test_replace_attribute_puts_new_lines_in_the_old_place() -> None:
    description = parse(fixture(CHROME_AUDIO))
    audio = description.media[0]
    position = audio.lines.index(audio.find_all("extmap")[0])
    new = audio.replace_attribute(
        "extmap", ["1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "7 x"]
    )
    assert audio.lines[position : position + 2] == new
    assert not new[0].changed  # the same text: the old line is kept
    assert new[1].changed
    assert audio.replace_attribute("extmap", []) == []
    assert audio.find("extmap") is None


def test_reverting_an_edit_restores_the_input() -> None:
    data = fixture(CHROME_AUDIO)
    description = parse(data)
    description.media[0].port = 1234
    description.media[0].port = 9
    removed = description.lines.pop(4)
    description.lines.insert(4, removed)
    assert not description.changed
    assert bytes(description) == data


def test_removing_or_reordering_lines_counts_as_a_change() -> None:
    description = parse(fixture(CHROME_AUDIO))
    description.lines.reverse()
    reordered = description.changed
    description.lines.reverse()
    restored = description.changed
    description.media.append(description.media[0].copy())
    assert (reordered, restored, description.changed) == (True, False, True)


def test_copy_is_independent() -> None:
    description = parse(fixture(CHROME_AUDIO))
    copy = description.copy()
    copy.media[0].port = 7000
    copy.remove_attribute("group")
    assert description.media[0].port == 9
    assert not description.changed and copy.changed
    assert description.find("group") is not None


def test_set_connection_edits_or_adds_in_rfc_order() -> None:
    description = parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "i=session",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0",
            "i=speech",
            "c=IN IP4 192.0.2.1",
            "m=audio 49172 RTP/AVP 0",
            "i=more",
            "b=AS:64",
            "c=IN IP4 192.0.2.1",
        )
    )
    description.set_connection("2001:db8::7")
    first, second = description.media
    first.set_connection("198.51.100.1")
    second.set_connection("198.51.100.1")
    types = [line.type for line in description.lines]
    assert types == ["v", "o", "s", "i", "c", "t"]
    assert description.connection == Connection("IN", "IP6", "2001:db8::7")
    assert str(first.lines[1]) == "c=IN IP4 198.51.100.1"
    assert [line.type for line in second.lines] == ["i", "b", "c"]


def test_m_line_fields_are_editable() -> None:
    description = parse(MINIMAL)
    audio = description.media[0]
    audio.proto = "RTP/SAVP"
    audio.formats = ["8"]
    audio.port_count = 2
    assert str(audio.mline) == "m=audio 49170/2 RTP/SAVP 8"
    audio.port_count = None
    audio.media = "video"
    assert str(audio.mline) == "m=video 49170 RTP/SAVP 8"


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: setattr(d.media[0], "port", 65536),
        lambda d: setattr(d.media[0], "port", -1),
        lambda d: setattr(d.media[0], "formats", []),
        lambda d: setattr(d.media[0], "formats", ["0 8"]),
        lambda d: setattr(d.media[0], "proto", "RTP AVP"),
        lambda d: d.media[0].add_attribute("bad name"),
        lambda d: d.media[0].add_attribute("x", "a\r\nb=injected"),
        lambda d: d.media[0].set_connection(""),
        lambda d: setattr(d, "origin", Origin("a b", "1", 1, "IN", "IP4", "x")),
        lambda d: Line("x", "value"),
    ],
)
def test_bad_edits_raise_value_error(edit: object) -> None:
    description = parse(MINIMAL)
    with pytest.raises(ValueError):
        edit(description)  # type: ignore[operator]


def test_direction_of_a_level() -> None:
    description = parse(MINIMAL)
    audio = description.media[0]
    assert audio.direction is Direction.SENDRECV
    assert description.direction is None
    audio.set_direction(Direction.SENDONLY)
    assert [str(line) for line in audio.lines] == ["a=sendonly"]


# --- malformed input -------------------------------------------------------------------

V, ORIGIN, S, T = "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0"
C = "c=IN IP4 192.0.2.1"
M = "m=audio 49170 RTP/AVP 0"

MALFORMED = [
    (b"", "empty SDP"),
    (b"\r\n\r\n", "empty SDP"),
    (sdp(ORIGIN, V, S, T), "v= must be the first line"),
    (sdp("v=1", ORIGIN, S, T), "unsupported SDP version"),
    (sdp(V, S, C, T), "missing o= line"),
    (sdp(V, ORIGIN, C, T), "missing s= line"),
    (sdp(V, ORIGIN, S, C), "missing t= line"),
    (sdp(V, ORIGIN, ORIGIN, S, T), "line 3: second o= line"),
    (sdp(V, ORIGIN, S, T, "x=1"), "line 5: unknown line type"),
    (sdp(V, ORIGIN, S, T, "A=1"), "line 5: unknown line type"),
    (sdp(V, ORIGIN, S, T, "garbage"), "line 5: not <type>=<value>"),
    (sdp(V, ORIGIN, S, T, " a=x"), "line 5: not <type>=<value>"),
    (sdp(V, ORIGIN, S, "", T), "line 4: empty line"),
    (sdp(V, "o=- 1 x IN IP4 192.0.2.1", S, T), "line 2: malformed o= line"),
    (sdp(V, "o=- 1 1 IN IP4", S, T), "line 2: malformed o= line"),
    (sdp(V, ORIGIN, S, "c=IN IP4", T), "line 4: malformed c= line"),
    (sdp(V, ORIGIN, S, C, "t=now"), "line 5: malformed t= line"),
    (sdp(V, ORIGIN, S, C, T, "m=audio 70000 RTP/AVP 0"), "line 6: m= port 70000 above 65535"),
    (sdp(V, ORIGIN, S, C, T, "m=audio 9 RTP/AVP"), "line 6: malformed m= line"),
    (sdp(V, ORIGIN, S, C, T, "m=audio x RTP/AVP 0"), "line 6: malformed m= line"),
    (sdp(V, ORIGIN, S, C, T, "m=audio 9/0 RTP/AVP 0"), "line 6: malformed m= line"),
    (sdp(V, ORIGIN, S, C, T, "m=audio 9 RTP/AVP 0 opus"), "is not an RTP payload type"),
    (sdp(V, ORIGIN, S, C, T, "m=audio 9 RTP/AVP 128"), "is not an RTP payload type"),
    (sdp(V, ORIGIN, S, C, T, M, "t=0 0"), "line 7: t= not allowed in a media section"),
    (sdp(V, ORIGIN, S, C, T, M, "o=- 1 1 IN IP4 x"), "line 7: o= not allowed in a media section"),
    (sdp(V, ORIGIN, S, T, M), "m= line 1 has no c= line"),
    (sdp(V, ORIGIN, S, C, T, "a=:x"), "line 6: bad attribute name"),
    (sdp(V, ORIGIN, S, C, T, "a=x\x00y"), "line 6: stray CR or NUL"),
    (b"v=0\ro=- 1 1 IN IP4 x\r\n", "line 1: stray CR or NUL"),
]


@pytest.mark.parametrize(("data", "reason"), MALFORMED)
def test_malformed_sdp_names_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(SdpError) as caught:
        parse(data)
    assert reason in caught.value.reason
    assert caught.value.status == 488
    assert caught.value.reason.isascii() and caught.value.reason.isprintable()


def test_peer_text_in_a_reason_is_escaped_and_short() -> None:
    with pytest.raises(SdpError) as caught:
        parse(sdp(V, ORIGIN, S, T, "\u00e9\u00e9" + "x" * 100))
    reason = caught.value.reason
    assert reason.isascii() and reason.isprintable() and len(reason) < 80


def test_limits() -> None:
    with pytest.raises(SdpError, match="larger than 100 bytes"):
        parse(MINIMAL * 2, max_size=100)
    many = sdp(V, ORIGIN, S, C, T, *["a=x"] * MAX_LINES)
    with pytest.raises(SdpError, match=f"more than {MAX_LINES} lines"):
        parse(many)
    with pytest.raises(SdpError, match="more than 1 m= lines"):
        parse(sdp(V, ORIGIN, S, C, T, M, M), max_media=1)


def test_rejected_stream_may_omit_c() -> None:
    description = parse(sdp(V, ORIGIN, S, T, "m=video 0 RTP/AVP 31"))
    assert description.media[0].rejected
