"""G.711 (ITU-T G.711): 16-bit linear PCM to and from mu-law (PCMU) and A-law (PCMA).

Both laws compress a 14- or 13-bit magnitude into a sign bit, a 3-bit segment (the
position of the highest set bit) and a 4-bit step inside the segment. The demo PBX
synthesizes its tones as linear samples and sends them in whichever law the call
negotiated; the tests decode what it sent to check the tones. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PCMA", "PCMU", "decode", "encode", "silence"]

PCMU = "PCMU"
"""mu-law, RTP static payload type 0 (RFC 3551 §6)."""
PCMA = "PCMA"
"""A-law, RTP static payload type 8."""

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
"""The largest 14-bit magnitude mu-law codes (G.711 works on the top 14 bits)."""


def _ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    top = sample >> 2  # the 14 bits G.711 sees, rounded down as the reference does
    magnitude = min(-top if sign else top, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = max(magnitude.bit_length() - 6, 0)
    step = (magnitude >> (segment + 1)) & 0x0F
    if segment > 7:  # past the last segment: the loudest code
        segment, step = 7, 0x0F
    return ~(sign | segment << 4 | step) & 0xFF


def _ulaw_linear(code: int) -> int:
    code = ~code & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << segment
    magnitude -= _ULAW_BIAS
    return -magnitude if code & 0x80 else magnitude


def _alaw(sample: int) -> int:
    # A-law works on 13 bits; the sign bit is set for positive samples, and every
    # other bit of the result is inverted (XOR 0x55) to keep line transitions up.
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(sample if sign else -sample - 1, 32767) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        segment = magnitude.bit_length() - 5
        code = segment << 4 | ((magnitude >> segment) & 0x0F)
    return (sign | code) ^ 0x55


def _alaw_linear(code: int) -> int:
    code ^= 0x55
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    magnitude = (step << 4) + 8 if segment == 0 else ((step << 4) + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


# Tables over every 16-bit sample (by sample + 32768) and every code.
_ENCODE = {
    PCMU: bytes(_ulaw(sample) for sample in range(-32768, 32768)),
    PCMA: bytes(_alaw(sample) for sample in range(-32768, 32768)),
}
_DECODE = {
    PCMU: tuple(_ulaw_linear(code) for code in range(256)),
    PCMA: tuple(_alaw_linear(code) for code in range(256)),
}


def encode(samples: Sequence[int], law: str) -> bytes:
    """Linear samples (-32768..32767; larger values are clipped) in ``law``."""
    table = _ENCODE[law]
    return bytes(table[min(max(s, -32768), 32767) + 32768] for s in samples)


def decode(data: bytes, law: str) -> list[int]:
    """The linear samples that ``data`` in ``law`` stands for."""
    table = _DECODE[law]
    return [table[code] for code in data]


def silence(law: str, count: int) -> bytes:
    """``count`` samples of silence (the code for linear zero)."""
    return encode([0], law) * count
