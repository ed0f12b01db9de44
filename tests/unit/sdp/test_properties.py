"""Properties of the SDP package over generated input (hypothesis).

* generated valid SDP comes back byte for byte, and edited SDP parses back to the
  same lines;
* arbitrary text or bytes, and mutations of the Chrome captures, give a
  SessionDescription or an SdpError, never another exception; so do typed
  attribute access, codec filtering, answering and rewriting of whatever parsed.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdp import (
    AVP,
    WEBRTC,
    DtlsParameters,
    Fingerprint,
    IceParameters,
    MediaEndpoint,
    RelayEndpoints,
    SdpError,
    SessionDescription,
    Setup,
    build_answer,
    filter_codecs,
    parse,
    rewrite,
)
from sdp.attributes import ATTRIBUTES
from tests.helpers.golden import CHROME, fixture

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
TOKEN = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=10)
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=24,
)
WORD = st.text(alphabet=TOKEN_CHARS + ":/", min_size=1, max_size=12)
ADDRESS = st.sampled_from(["192.0.2.1", "2001:db8::1", "0.0.0.0", "host.example.com"])
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def attribute_lines(draw: st.DrawFn) -> str:
    name = draw(
        st.one_of(TOKEN, st.sampled_from(["rtpmap", "fmtp", "mid", "candidate", "sendonly"]))
    )
    value = draw(st.one_of(st.none(), TEXT))
    return f"a={name}" if value is None else f"a={name}:{value}"


@st.composite
def media_sections(draw: st.DrawFn, needs_c: bool) -> list[str]:
    rtp = draw(st.booleans())
    proto = draw(st.sampled_from(["RTP/AVP", "UDP/TLS/RTP/SAVPF", "RTP/SAVP"])) if rtp else "udptl"
    formats = (
        draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5))
        if rtp
        else draw(st.lists(TOKEN, min_size=1, max_size=3))
    )
    port = draw(st.integers(0, 65535))
    count = draw(st.sampled_from(["", "/2"]))
    media = draw(st.sampled_from(["audio", "video", "image", "application"]))
    lines = [f"m={media} {port}{count} {proto} {' '.join(formats)}"]
    if draw(st.booleans()):
        lines.append(f"i={draw(TEXT)}")
    if needs_c or draw(st.booleans()):
        lines.append(f"c=IN IP4 {draw(ADDRESS)}")
    if draw(st.booleans()):
        lines.append(f"b=AS:{draw(st.integers(0, 10000))}")
    lines += draw(st.lists(attribute_lines(), max_size=6))
    return lines


@st.composite
def descriptions(draw: st.DrawFn) -> bytes:
    """Valid SDP with the variety RFC 8866 §5 allows, in CRLF or LF."""
    session_c = draw(st.booleans())
    lines = [
        "v=0",
        f"o={draw(WORD)} {draw(st.integers(0, 2**63))} {draw(st.integers(0, 2**32))}"
        f" IN IP4 {draw(ADDRESS)}",
        f"s={draw(TEXT)}",
    ]
    for kind in "iuep":
        if draw(st.booleans()):
            lines.append(f"{kind}={draw(TEXT)}")
    if session_c:
        lines.append(f"c=IN IP4 {draw(ADDRESS)}")
    lines.append(f"t={draw(st.integers(0, 2**32))} {draw(st.integers(0, 2**32))}")
    lines += draw(st.lists(attribute_lines(), max_size=5))
    for _ in range(draw(st.integers(0, 4))):
        lines += draw(media_sections(needs_c=not session_c))
    end = draw(st.sampled_from(["\r\n", "\n"]))
    return "".join(line + end for line in lines).encode("utf-8")


@given(descriptions())
@SETTINGS
def test_generated_sdp_round_trips_byte_for_byte(data: bytes) -> None:
    description = parse(data)
    assert bytes(description) == data
    assert str(parse(data.decode("utf-8"))) == data.decode("utf-8")
    assert bytes(description.copy()) == data


@given(descriptions(), st.integers(1, 65535), TOKEN)
@SETTINGS
def test_edited_sdp_parses_back_to_the_same_lines(data: bytes, port: int, name: str) -> None:
    description = parse(data)
    for media in description.media:
        media.port = port
    description.add_attribute(name, "x")
    text = str(description)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    again = parse(text)
    assert [str(line) for line in again.all_lines()] == [
        str(line) for line in description.all_lines()
    ]
    assert bytes(again) == bytes(description)


def _exercise(description: SessionDescription) -> None:
    """Everything a peer's SDP goes through; only SdpError may come out."""
    for line in description.all_lines():
        row = ATTRIBUTES.get(line.name) if line.type == "a" else None
        if row is not None:
            with contextlib.suppress(SdpError):
                row.parse(line.attribute_value or "")
    count = len(description.media)
    for action in (
        lambda: filter_codecs(description.copy(), ["PCMU", "opus", "VP8", "rtx"]),
        lambda: build_answer(description, {"audio": ["PCMU", "opus"], "video": ["VP8"]}),
        lambda: rewrite(
            description,
            AVP,
            RelayEndpoints("203.0.113.7", (MediaEndpoint(40000, 40001),) * count),
        ),
        lambda: rewrite(
            description,
            WEBRTC,
            RelayEndpoints("203.0.113.7", (MediaEndpoint(40000),) * count),
            ice=IceParameters("abcd", "a" * 22),
            dtls=DtlsParameters(Fingerprint("sha-256", "00:11"), Setup.ACTPASS),
            bundle=True,
        ),
    ):
        with contextlib.suppress(SdpError):
            action()


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
@SETTINGS
def test_arbitrary_input_parses_or_raises_sdp_error(data: str | bytes) -> None:
    try:
        description = parse(data)
    except SdpError as error:
        assert error.reason.isascii() and error.reason.isprintable()
        return
    _exercise(description)


@st.composite
def mutated_captures(draw: st.DrawFn) -> bytes:
    """A Chrome capture with a few lines deleted, duplicated, moved or corrupted."""
    lines = fixture(draw(st.sampled_from(CHROME))).decode().split("\r\n")[:-1]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "move", "char", "cut", "insert"]))
        if op == "delete" and len(lines) > 1:
            del lines[index]
        elif op == "duplicate":
            lines.insert(index, lines[index])
        elif op == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(index))
        elif op == "char" and lines[index]:
            at = draw(st.integers(0, len(lines[index]) - 1))
            char = draw(st.sampled_from([" ", ":", "/", "x", "9", "=", "-", "\t", "é"]))
            lines[index] = lines[index][:at] + char + lines[index][at + 1 :]
        elif op == "cut":
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
        elif op == "insert":
            lines.insert(index, draw(attribute_lines()))
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8")


@given(mutated_captures())
@SETTINGS
def test_mutated_captures_parse_or_raise_sdp_error(data: bytes) -> None:
    try:
        description = parse(data)
    except SdpError:
        return
    assert bytes(description) == data
    _exercise(description)


@given(st.sampled_from(sorted(ATTRIBUTES)), TEXT)
@SETTINGS
def test_attribute_codecs_parse_or_raise_and_are_stable(name: str, value: str) -> None:
    row = ATTRIBUTES[name]
    try:
        typed = row.parse(value)
    except SdpError:
        return
    assert row.parse(row.format(typed)) == typed
