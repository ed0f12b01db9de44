"""Fixture files and placeholder-aware expected outputs for the SDP tests.

Expected outputs (``tests/data/sdp/expected/``) are LF text with ``{NAME}``
placeholders for the values a test passes in (rtpengine's PORT, ICEUFRAG ... style).
"""

from __future__ import annotations

import re
from pathlib import Path

DATA = Path(__file__).parents[1] / "data" / "sdp"
CHROME_AUDIO = "chrome-156-audio-offer.sdp"
CHROME_AUDIO_VIDEO = "chrome-156-audio-video-offer.sdp"
CHROME = (CHROME_AUDIO, CHROME_AUDIO_VIDEO)

_PLACEHOLDER = re.compile(r"\{[A-Z_]+\}")


def fixture(name: str) -> bytes:
    """A peer's SDP, exactly as it came."""
    return (DATA / name).read_bytes()


def expected(name: str, **values: object) -> bytes:
    """The expected output ``name`` with its placeholders filled in, as CRLF bytes."""
    text = (DATA / "expected" / name).read_text(encoding="utf-8")
    for key, value in values.items():
        assert "{" + key + "}" in text, f"{name} has no placeholder {key}"
        text = text.replace("{" + key + "}", str(value))
    left = _PLACEHOLDER.findall(text)
    assert not left, f"{name}: no value given for {left}"
    return text.replace("\n", "\r\n").encode("utf-8")


def sdp(*lines: str) -> bytes:
    """A description from its lines, CRLF-terminated."""
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8")
