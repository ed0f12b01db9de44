"""Fuzz entry point for the SIP message parser and the stream framer.

``fuzz_one(data)`` holds the receive path to its contract: bytes from a peer give a
message or a ParseError, never anything else; a message re-serializes to bytes that
parse to the same bytes; the framer never raises and never holds more than its cap.

Run it under a coverage-guided fuzzer (``pip install atheris``)::

    python tests/fuzz/sip_message.py -max_total_time=600 tests/data/sip/rfc4475

or without one, as a bounded mutation loop seeded with the torture fixtures::

    python tests/fuzz/sip_message.py --rounds 200000
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.sip import Message, ParseError, StreamFramer, parse_message
from gateway.sip.framing import MAX_STREAM_BUFFER

SEEDS = Path(__file__).resolve().parents[1] / "data" / "sip"


def fuzz_one(data: bytes) -> None:
    """Check the receive contract on one input; raise AssertionError if it breaks."""
    try:
        message = parse_message(data)
    except ParseError as exc:
        assert exc.reason and exc.reason.isascii(), exc.reason
        assert 400 <= exc.status <= 599
    else:
        assert isinstance(message, Message)
        out = bytes(message)
        assert bytes(parse_message(out)) == out
    framer = StreamFramer()
    for start in range(0, len(data), 7):
        framer.receive_data(data[start : start + 7])
        assert framer.buffered <= MAX_STREAM_BUFFER


def mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        position = rng.randrange(len(buffer) + 1)
        if choice < 0.3 and buffer:
            buffer[min(position, len(buffer) - 1)] = rng.randrange(256)
        elif choice < 0.5:
            buffer[position:position] = rng.choice(
                [b"\r\n", b" ", b";", b",", b":", b'"', b"<", b"%"]
            )
        elif choice < 0.7 and buffer:
            del buffer[position : position + rng.randint(1, 16)]
        else:
            other = position + rng.randint(-64, 64)
            buffer[position:position] = buffer[max(other, 0) : max(other, 0) + rng.randint(1, 32)]
    return bytes(buffer)


def main() -> None:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        parser = argparse.ArgumentParser(description="bounded mutation fuzzing of parse_message")
        parser.add_argument("--rounds", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=0)
        args = parser.parse_args()
        rng = random.Random(args.seed)
        seeds = [path.read_bytes() for path in sorted(SEEDS.rglob("*.dat"))]
        for round_ in range(args.rounds):
            fuzz_one(mutate(rng.choice(seeds), rng))
            if round_ % 20_000 == 0:
                print(f"{round_:,} inputs", flush=True)
        print(f"{args.rounds:,} inputs, contract held")
        return
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
