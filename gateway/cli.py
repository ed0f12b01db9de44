"""The ``wedge`` command."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from gateway.sip import ParseError, Request, parse_message


def _version() -> str:
    try:
        return version("wedge")
    except PackageNotFoundError:
        return "unknown"


def check_message(paths: list[Path]) -> int:
    """Parse SIP messages saved one per file and say what each is, or what is wrong.

    Exit status 0 when every file holds a valid message, 1 otherwise.
    """
    failures = 0
    for path in paths:
        try:
            message = parse_message(path.read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            failures += 1
            continue
        except ParseError as exc:
            print(f"{path}: invalid: {exc.reason} (a request gets {exc.status})")
            failures += 1
            continue
        start = (
            f"{message.method} {message.uri}"
            if isinstance(message, Request)
            else f"{message.status} {message.reason}"
        )
        print(
            f"{path}: valid: {start} call-id={message.call_id} cseq={message.cseq} "
            f"via={len(message.vias)} body={len(message.body)}B"
        )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wedge", description="Wedge: a WebRTC-to-SIP gateway and session border controller."
    )
    parser.add_argument("--version", action="version", version=f"wedge {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check-message", help="parse SIP messages saved one per file and report on each"
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    if args.command == "check-message":
        return check_message(args.files)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
