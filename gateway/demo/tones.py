"""Tones the demo PBX plays, as 8 kHz linear samples: DTMF, beeps, the 601 chime.

Pure arithmetic; :mod:`gateway.demo.g711` turns the samples into PCMU or PCMA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

__all__ = [
    "DTMF_FREQUENCIES",
    "RATE",
    "announcement",
    "beep",
    "dtmf",
    "pause",
    "tone",
]

RATE = 8000
"""Samples per second of narrow-band telephony (G.711)."""

DTMF_FREQUENCIES: dict[str, tuple[int, int]] = {
    "1": (697, 1209),
    "2": (697, 1336),
    "3": (697, 1477),
    "A": (697, 1633),
    "4": (770, 1209),
    "5": (770, 1336),
    "6": (770, 1477),
    "B": (770, 1633),
    "7": (852, 1209),
    "8": (852, 1336),
    "9": (852, 1477),
    "C": (852, 1633),
    "*": (941, 1209),
    "0": (941, 1336),
    "#": (941, 1477),
    "D": (941, 1633),
}
"""The row and column frequency of each key (ITU-T Q.23)."""

LEVEL = 0.25
"""Peak amplitude of one sine, as a fraction of full scale (about -12 dBFS):
loud enough to hear, quiet enough that two summed never clip."""
FADE_MS = 5
"""Ramp at each end of a tone, so it starts and stops without a click."""


def tone(frequencies: Sequence[float], ms: int, level: float = LEVEL) -> list[int]:
    """The sum of sines at ``frequencies``, ``ms`` long, faded in and out."""
    count = RATE * ms // 1000
    fade = min(RATE * FADE_MS // 1000, count // 2)
    steps = [2 * math.pi * f / RATE for f in frequencies]
    scale = 32767 * level
    samples = []
    for n in range(count):
        edge = min(n, count - 1 - n)
        gain = edge / fade if fade and edge < fade else 1.0
        samples.append(round(scale * gain * sum(math.sin(step * n) for step in steps)))
    return samples


def pause(ms: int) -> list[int]:
    """Silence, ``ms`` long."""
    return [0] * (RATE * ms // 1000)


def beep(ms: int = 150, frequency: float = 1000.0) -> list[int]:
    """A single tone: the 602 "ready" and "here they come" prompts."""
    return tone([frequency], ms)


def dtmf(digits: str, on_ms: int = 160, off_ms: int = 90) -> list[int]:
    """Each digit as its DTMF tone pair, separated by silence (unknown keys are skipped)."""
    samples: list[int] = []
    for digit in digits.upper():
        pair = DTMF_FREQUENCIES.get(digit)
        if pair is not None:
            samples += tone(pair, on_ms) + pause(off_ms)
    return samples


@cache
def announcement() -> tuple[int, ...]:
    """What 601 plays over and over: a rising four-note chime, then a steady 440 Hz
    tone, then a short silence (about 3.5 s in all)."""
    samples: list[int] = []
    for note in (523.25, 659.25, 783.99, 1046.5):  # C5 E5 G5 C6
        samples += tone([note], 180) + pause(40)
    samples += pause(400) + tone([440.0], 1500) + pause(700)
    return tuple(samples)
