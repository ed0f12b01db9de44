"""A relay worker process: the built-in relay driven over its stdin and stdout.

``python -m media.worker --bind IP --ports FIRST-LAST [--advertise IP]`` runs one
built-in relay (:func:`media.endpoint.start_builtin`) and takes its orders as JSON
lines on stdin; every order has an ``id`` and gets one reply line with the same id:

    {"id": 1, "op": "offer", "call": "...", "from": "tag", "to": null,
     "source": "WEBRTC", "destination": "AVP", "codecs": [], "sdp": "v=0..."}
    -> {"id": 1, "sdp": "v=0..."}  or  {"id": 1, "error": "why", "status": 488}
    {"id": 2, "op": "delete", "call": "..."}  -> {"id": 2, "stats": {...} | null}
    {"id": 3, "op": "stats", "call": "..."}   -> {"id": 3, "stats": {...} | null}

and writes ``{"event": "timeout", "call": "..."}`` when a call's media stops. It
ends when stdin closes. :class:`media.workers.RelayWorkers` runs several of these,
one per core, and ``bench/relay.py`` measures one.

SDP travels as text: bytes that are not UTF-8 survive as surrogate escapes, which
JSON carries as ``\\udcXX``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from typing import Any

from media.builtin import BuiltinRelay, RelaySettings
from media.control import CallStats, LegStats, MediaError, Negotiation
from media.endpoint import start_builtin
from sdp.rewrite import PROFILES

__all__ = ["decode_sdp", "encode_sdp", "main", "stats_from_json"]

logger = logging.getLogger("wedge.media")


def encode_sdp(sdp: bytes) -> str:
    return sdp.decode("utf-8", "surrogateescape")


def decode_sdp(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def stats_from_json(data: dict[str, Any] | None) -> CallStats | None:
    if data is None:
        return None
    return CallStats(data["call_id"], [LegStats(**leg) for leg in data["legs"]])


async def _answer(relay: BuiltinRelay, order: dict[str, Any]) -> dict[str, Any]:
    op = order["op"]
    if op in ("delete", "stats"):
        stats = await (relay.delete if op == "delete" else relay.stats)(order["call"])
        return {"stats": None if stats is None else asdict(stats)}
    negotiation = Negotiation(
        order["call"],
        order["from"],
        order.get("to"),
        PROFILES[order["source"]],
        PROFILES[order["destination"]],
        tuple(order.get("codecs") or ()),
    )
    method = relay.offer if op == "offer" else relay.answer
    return {"sdp": encode_sdp(await method(negotiation, decode_sdp(order["sdp"])))}


async def serve(args: argparse.Namespace) -> None:
    first, last = (int(part) for part in args.ports.split("-"))
    relay, stop = await start_builtin(
        bind=args.bind,
        advertise=args.advertise,
        ports=(first, last),
        settings=RelaySettings(args.timeout, args.hold_timeout),
    )
    out = sys.stdout

    def write(line: dict[str, Any]) -> None:
        out.write(json.dumps(line) + "\n")
        out.flush()

    relay.on_timeout(lambda call_id: write({"event": "timeout", "call": call_id}))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            order: dict[str, Any] = {}
            try:
                order = json.loads(line)
                reply = await _answer(relay, order)
            except MediaError as exc:
                reply = {"error": exc.reason, "status": exc.status}
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"error": f"bad order: {exc!r}", "status": 500}
            reply["id"] = order.get("id") if isinstance(order, dict) else None
            write(reply)
    finally:
        await relay.close()
        stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media.worker", description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--advertise")
    parser.add_argument("--ports", required=True, metavar="FIRST-LAST")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--hold-timeout", type=float, default=3600.0)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(name)s %(message)s"
    )
    try:
        import uvloop
    except ImportError:  # not on this platform: asyncio's own loop
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
