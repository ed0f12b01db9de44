"""How many typical INVITEs Wedge parses and serializes per second, on one core.

Three figures, each the best of several rounds:

- untouched: ``bytes(parse_message(data))``, what a proxy pays to check a message it
  forwards unchanged;
- edited: the same plus a Via and a Record-Route on top, what a proxy pays to
  relay a request;
- reference: Python's own ``http.client.parse_headers`` reading the same bytes
  (header block only), so the figures can be compared across noisy machines as a
  ratio.

Run: ``python bench/parse.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from http.client import parse_headers
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.sip import parse_message
from tests.helpers.messages import invite

TARGET_UNTOUCHED = 100_000
TARGET_EDITED = 50_000


def rate(work: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Calls per second of ``work``: the best of ``rounds`` timed batches."""
    batch = 1_000
    best = 0.0
    for _ in range(rounds):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds / rounds
        while True:
            for _ in range(batch):
                work()
            count += batch
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per figure")
    args = parser.parse_args()

    data = invite()
    head = data[data.index(b"\r\n") + 2 : data.index(b"\r\n\r\n") + 4]

    def untouched() -> bytes:
        return bytes(parse_message(data))

    def edited() -> bytes:
        message = parse_message(data)
        message.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK.wedge1")
        message.headers.prepend("Record-Route", "<sip:198.51.100.1:5060;lr>")
        return bytes(message)

    def reference() -> object:
        return parse_headers(io.BytesIO(head))

    assert untouched() == data
    figures = {
        "untouched": rate(untouched, args.seconds),
        "edited": rate(edited, args.seconds),
        "reference": rate(reference, args.seconds),
    }
    lines = head.count(b"\r\n") - 1
    print(f"message: {len(data)} bytes, INVITE with SDP, {lines} header lines")
    for name, target in (("untouched", TARGET_UNTOUCHED), ("edited", TARGET_EDITED)):
        value = figures[name]
        verdict = "meets" if value >= target else "below"
        print(
            f"{name:>10}: {value:10,.0f} msg/s  "
            f"({value / figures['reference']:.2f}x stdlib http.client.parse_headers; "
            f"{verdict} the {target:,} goal)"
        )
    print(
        f" reference: {figures['reference']:10,.0f} msg/s  (http.client.parse_headers, head only)"
    )


if __name__ == "__main__":
    main()
