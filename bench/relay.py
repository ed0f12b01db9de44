"""How many RTP packets a second the media relay forwards, against rtpengine.

Each level runs N calls at 50 packets a second each way (20 ms audio), plain RTP on
both legs or SDES-SRTP on one leg and RTP on the other, for ``--seconds``. A level is
*held* when less than 0.1 % of the packets are lost AND the 99th percentile of the
time through the relay is under 20 ms (an overloaded relay queues before it drops).
Levels climb by ``--step`` calls until one is not held; the figure is the highest
held level, in packets a second through the relay (both directions), with the
relay's CPU time per packet at that level and what that projects to for one whole
core. On a two-core machine the generator runs out of its core near 60-80k
packets/s, before rtpengine does: then the CPU per packet is the fair comparison.
Since one level's CPU figure moves by a fifth from run to run on a shared box, the
ratio comes from ``--rounds`` alternating runs of both relays at the highest level
both held, each relay's median against the other's.

The relay under test runs in its own process (one core); this process generates the
load on the other core: two sockets (the caller's and the callee's side) talk to
every call's relay ports, and each packet carries its send time, so loss and latency
are measured per packet.

Relays:

- ``builtin``: Wedge's relay as one worker process (``python -m media.worker``,
  what ``[media] workers`` runs one per core), driven over its JSON-lines pipe;
- ``rtpengine``: Sipwise rtpengine in userspace (``--table=-1``), started here and
  driven with its ng protocol, when ``media.rtpengine`` is available.

Run: ``python bench/relay.py [--seconds 5] [--modes plain srtp] [--relays builtin]
[--rounds 3]``.
Progress goes to stderr; the table at the end to stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import ng
from media.control import Negotiation
from media.srtp import SrtpContext
from sdp.rewrite import PROFILES

LOCAL = "127.0.0.1"
RATE = 50
"""Packets per second per direction of one call."""
SLOTS = 10
"""Calls send in this many groups spread over each 20 ms, as unsynchronised phones
would, rather than in one burst that would queue in front of the relay."""
TICK = 1 / RATE / SLOTS
PAYLOAD = 160
"""20 ms of G.711."""
LOSS_LIMIT = 0.001
P99_LIMIT = 0.020
SUITE = "AES_CM_128_HMAC_SHA1_80"
HEADER = struct.Struct("!BBHII")


# -- the relay under test: Wedge's built-in relay, one worker process -------------------


class Builtin:
    """The built-in relay as one worker process (:mod:`media.worker`), on one core."""

    name = "builtin"

    def __init__(self, ports: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "media.worker", "--bind", LOCAL, "--ports", ports],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        _pin(self.process.pid, 0)
        self._ids = 0

    def command(self, **order: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self._ids += 1
        self.process.stdin.write(json.dumps({"id": self._ids, **order}) + "\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self.process.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"relay refused {order['op']}: {reply['error']}")
        return reply

    def offer(self, call: str, sdp: str, source: str, destination: str) -> str:
        reply = self.command(
            op="offer", call=call, sdp=sdp, source=source, destination=destination, **{"from": "a"}
        )
        return str(reply["sdp"])

    def answer(self, call: str, sdp: str, source: str, destination: str) -> str:
        reply = self.command(
            op="answer",
            call=call,
            sdp=sdp,
            source=source,
            destination=destination,
            to="a",
            **{"from": "b"},
        )
        return str(reply["sdp"])

    def delete(self, call: str) -> None:
        self.command(op="delete", call=call)

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Rtpengine:
    """Sipwise rtpengine in userspace, on the same core the built-in relay gets,
    driven with the ng messages Wedge sends (:mod:`media.ng`)."""

    name = "rtpengine"

    def __init__(self, ports: str) -> None:
        binary = shutil.which("rtpengine")
        if binary is None:
            raise SystemExit(
                "rtpengine is not installed (Debian: apt-get install rtpengine-daemon)"
            )
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((LOCAL, 0))
        self.ng = probe.getsockname()
        probe.settimeout(2)
        self.control = probe
        control_port = self._free_port()
        first, last = ports.split("-")
        self.process = subprocess.Popen(
            [
                binary,
                "--config-file=none",
                "--table=-1",
                "--foreground",
                "--log-stderr",
                "--log-level=3",
                f"--interface={LOCAL}",
                f"--listen-ng={LOCAL}:{control_port}",
                f"--port-min={first}",
                f"--port-max={last}",
                "--delete-delay=0",
                "--num-threads=1",
            ],
            stderr=subprocess.DEVNULL,
        )
        _pin(self.process.pid, 0)
        self.address = (LOCAL, control_port)
        self._cookies = 0
        deadline = time.monotonic() + 10
        while True:
            try:
                self._ask(ng.ping())
                break
            except (TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @staticmethod
    def _free_port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOCAL, 0))
            return int(sock.getsockname()[1])

    def _ask(self, message: ng.Message) -> ng.Reply:
        self._cookies += 1
        cookie = f"bench{self._cookies}"
        self.control.sendto(ng.frame(cookie, message), self.address)
        while True:
            data = self.control.recv(65536)
            got, body = ng.unframe(data)
            if got == cookie:
                return ng.check(ng.parse_reply(body), str(message["command"]))

    def offer(self, call: str, sdp: str, source: str, destination: str) -> str:
        negotiation = Negotiation(call, "a", None, PROFILES[source], PROFILES[destination])
        reply = self._ask(ng.offer(negotiation, sdp.encode()))
        return ng.sdp_of(reply, "offer").decode()

    def answer(self, call: str, sdp: str, source: str, destination: str) -> str:
        negotiation = Negotiation(call, "b", "a", PROFILES[source], PROFILES[destination])
        reply = self._ask(ng.answer(negotiation, sdp.encode()))
        return ng.sdp_of(reply, "answer").decode()

    def delete(self, call: str) -> None:
        self._ask(ng.delete(call))

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.control.close()


Relay = Builtin | Rtpengine


def _pin(pid: int, core: int) -> None:
    """Keep the relay and the load generator off each other's core (2 cores here)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {core})


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the calls and the load ------------------------------------------------------------


def _sdp(port: int, proto: str, key: bytes | None = None) -> str:
    lines = [
        "v=0",
        f"o=bench 1 1 IN IP4 {LOCAL}",
        "s=-",
        f"c=IN IP4 {LOCAL}",
        "t=0 0",
        f"m=audio {port} {proto} 0",
        "a=rtpmap:0 PCMU/8000",
        "a=rtcp-mux",
    ]
    if key is not None:
        lines.append(f"a=crypto:1 {SUITE} inline:{base64.b64encode(key).decode()}")
    return "\r\n".join(lines) + "\r\n"


def _port_and_key(sdp: str) -> tuple[int, bytes | None]:
    port = int(next(line for line in sdp.split("\r\n") if line.startswith("m=")).split()[1])
    crypto = next((line for line in sdp.split("\r\n") if line.startswith("a=crypto:")), None)
    key = None
    if crypto is not None:
        key = base64.b64decode(crypto.split("inline:", 1)[1].split("|")[0].split()[0])
    return port, key


@dataclass
class Call:
    """One call's relay ports and, on an SRTP leg, its contexts."""

    to_a_side: int
    """The relay port the caller sends to."""
    to_b_side: int
    srtp: SrtpContext | None = None


@dataclass
class Level:
    calls: int
    sent: int = 0
    received: int = 0
    latencies: list[float] = field(default_factory=list)
    relay_cpu: float = 0.0
    late_ticks: int = 0

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 1.0

    @property
    def p99(self) -> float:
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0]

    @property
    def pps(self) -> float:
        return self.calls * RATE * 2

    @property
    def cpu_per_packet(self) -> float:
        """Microseconds of the relay's CPU (user + system) per packet forwarded."""
        return self.relay_cpu / self.pps * 1e6 if self.pps else 0.0

    @property
    def held(self) -> bool:
        return self.loss < LOSS_LIMIT and self.p99 < P99_LIMIT


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind((LOCAL, 0))
    sock.setblocking(False)
    return sock


def setup(relay: Relay, count: int, mode: str, a: socket.socket, b: socket.socket) -> list[Call]:
    calls = []
    our_key = bytes(range(30))
    a_proto, a_profile = ("RTP/SAVP", "SAVP_SDES") if mode == "srtp" else ("RTP/AVP", "AVP")
    for index in range(count):
        name = f"bench-{mode}-{index}"
        offer = _sdp(a.getsockname()[1], a_proto, our_key if mode == "srtp" else None)
        try:
            to_b = relay.offer(name, offer, a_profile, "AVP")
        except RuntimeError:
            for done in range(index + 1):  # the refused one may hold a port too
                relay.delete(f"bench-{mode}-{done}")
            a.close()
            b.close()
            raise
        b_port, _ = _port_and_key(to_b)
        to_a = relay.answer(name, _sdp(b.getsockname()[1], "RTP/AVP"), "AVP", a_profile)
        a_port, relay_key = _port_and_key(to_a)
        srtp = SrtpContext(SUITE, our_key, relay_key) if relay_key is not None else None
        calls.append(Call(a_port, b_port, srtp))
    return calls


def run_level(relay: Builtin, count: int, mode: str, seconds: float, warmup: float = 1.0) -> Level:
    """``count`` calls for ``warmup`` + ``seconds``; what was measured after the warm-up.

    A packet is known by the SSRC and sequence number of its (clear) RTP header: the
    generator remembers when each group sent each sequence number, so it never has to
    decrypt to measure. One packet in :data:`CHECK_EVERY` from the relay's SRTP side
    is decrypted all the same, so a relay that garbles SRTP fails the level.
    """
    a, b = _socket(), _socket()
    calls = setup(relay, count, mode, a, b)
    level = Level(count)
    payload = bytes(PAYLOAD)
    sent_at = [[0.0] * 65536 for _ in range(SLOTS)]
    seq = 0
    started = time.perf_counter()
    measure_from = started + warmup
    end = measure_from + seconds
    next_tick = started
    slot = 0
    cpu_start: float | None = None
    buffer = bytearray(2048)
    sockets = [a, b]
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        measuring = now >= measure_from
        if measuring and cpu_start is None:
            cpu_start = _cpu_seconds(relay.pid)
        if slot == 0:
            seq += 1
        sent_at[slot][seq] = now if measuring else 0.0
        group = range(slot, len(calls), SLOTS)
        for index in group:
            call = calls[index]
            forward = HEADER.pack(0x80, 0, seq, seq * 160, index * 2) + payload
            back = HEADER.pack(0x80, 0, seq, seq * 160, index * 2 + 1) + payload
            if call.srtp is not None:
                forward = call.srtp.protect(forward)
            a.sendto(forward, (LOCAL, call.to_a_side))
            b.sendto(back, (LOCAL, call.to_b_side))
        if measuring:
            level.sent += 2 * len(group)
        slot = (slot + 1) % SLOTS
        next_tick += TICK
        if time.perf_counter() > next_tick + TICK:
            level.late_ticks += 1
        while True:
            for sock in sockets:
                _drain(sock, buffer, calls, level, sent_at)
            wait = next_tick - time.perf_counter()
            if wait <= 0:
                break
            select.select(sockets, [], [], wait)
    if cpu_start is not None:
        level.relay_cpu = (_cpu_seconds(relay.pid) - cpu_start) / seconds
    # Packets sent in the window may still be on their way: give them 200 ms.
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        for sock in sockets:
            _drain(sock, buffer, calls, level, sent_at)
        select.select(sockets, [], [], 0.01)
    for index in range(count):
        relay.delete(f"bench-{mode}-{index}")
    a.close()
    b.close()
    return level


CHECK_EVERY = 64


def _drain(
    sock: socket.socket,
    buffer: bytearray,
    calls: list[Call],
    level: Level,
    sent_at: list[list[float]],
) -> None:
    """Count what arrived, if it was sent in the measured window (``sent_at`` not 0)."""
    clock = time.perf_counter
    while True:
        try:
            size = sock.recv_into(buffer)
        except BlockingIOError:
            return
        ssrc = int.from_bytes(buffer[8:12], "big")
        seq = (buffer[2] << 8) | buffer[3]
        index = ssrc >> 1
        if index >= len(calls):
            continue
        sent = sent_at[index % SLOTS][seq]
        if not sent:
            continue
        level.received += 1
        level.latencies.append(clock() - sent)
        srtp = calls[index].srtp
        if srtp is not None and ssrc & 1 and level.received % CHECK_EVERY == 0:
            srtp.unprotect(bytes(buffer[:size]))  # raises if the relay garbled it


# -- the climb and the table -----------------------------------------------------------


def climb(relay: Relay, mode: str, args: argparse.Namespace) -> Level | None:
    best: Level | None = None
    calls = args.start
    while calls <= args.max:
        try:
            level = run_level(relay, calls, mode, args.seconds)
        except RuntimeError as exc:  # the relay refused: its half of --ports ran out
            print(f"  {relay.name} {mode}: {exc}; stopping", file=sys.stderr)
            break
        print(
            f"  {relay.name} {mode:5} calls={calls:5} pps={level.pps:8.0f} "
            f"loss={level.loss * 100:6.3f}% p99={level.p99 * 1000:7.2f}ms "
            f"relay-cpu={level.relay_cpu * 100:4.0f}% late-ticks={level.late_ticks} "
            f"{'held' if level.held else 'NOT held'}",
            file=sys.stderr,
            flush=True,
        )
        if not level.held:
            break
        if level.late_ticks > args.seconds * RATE * SLOTS * 0.1:
            print("  the load generator cannot keep this rate; stopping", file=sys.stderr)
            best = level
            break
        best = level
        calls += args.step
    return best


def compare(relays: list[Relay], mode: str, calls: int, args: argparse.Namespace) -> None:
    """CPU per packet of each relay at the same level, measured in alternating rounds.

    One level's figure moves by a fifth from run to run on a shared box; alternating
    the relays and taking each one's median puts both under the same noise."""
    figures: dict[str, list[float]] = {relay.name: [] for relay in relays}
    for round_ in range(1, args.rounds + 1):
        for relay in relays:
            level = run_level(relay, calls, mode, args.seconds)
            figures[relay.name].append(level.cpu_per_packet if level.held else float("inf"))
            print(
                f"  round {round_} {relay.name} {mode:5} calls={calls:5} "
                f"us/pkt={level.cpu_per_packet:5.1f} {'held' if level.held else 'NOT held'}",
                file=sys.stderr,
                flush=True,
            )
    ours, theirs = statistics.median(figures["builtin"]), statistics.median(figures["rtpengine"])
    print(
        f"{mode}: at {calls} calls, median of {args.rounds} rounds: built-in {ours:.1f} us/pkt, "
        f"rtpengine {theirs:.1f} us/pkt; built-in / rtpengine, packets per CPU second: "
        f"{theirs / ours:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--modes", nargs="+", default=["plain", "srtp"], choices=["plain", "srtp"])
    parser.add_argument(
        "--relays", nargs="+", default=["builtin", "rtpengine"], choices=["builtin", "rtpengine"]
    )
    parser.add_argument("--start", type=int, default=100, help="calls at the first level")
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--max", type=int, default=3000)
    parser.add_argument("--ports", default="20000-59999", help="split between the relays")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds at the level both relays held, for the CPU ratio",
    )
    args = parser.parse_args()
    _pin(os.getpid(), 1)
    low, high = (int(bound) for bound in args.ports.split("-"))
    middle = (low + high) // 2
    # Both relays stay up for the alternating rounds: each gets half of the port range.
    relays: list[Relay] = [
        Builtin(f"{low}-{middle}") if name == "builtin" else Rtpengine(f"{middle + 1}-{high}")
        for name in args.relays
    ]
    results: dict[tuple[str, str], Level | None] = {}
    try:
        for relay in relays:
            for mode in args.modes:
                print(f"{relay.name} {mode}:", file=sys.stderr)
                results[(relay.name, mode)] = climb(relay, mode, args)
        print(
            f"{'relay':10} {'mode':6} {'calls':>6} {'held pps':>9} {'p99 ms':>7} {'cpu %':>6} "
            f"{'us/pkt':>7} {'pps/core':>9}"
        )
        for (name, mode), level in results.items():
            if level is None:
                print(f"{name:10} {mode:6} {'-':>6} {'none held':>9}")
                continue
            print(
                f"{name:10} {mode:6} {level.calls:6} {level.pps:9.0f} "
                f"{level.p99 * 1000:7.2f} {level.relay_cpu * 100:6.0f} "
                f"{level.cpu_per_packet:7.1f} {1e6 / level.cpu_per_packet:9.0f}"
            )
        for mode in args.modes:
            if len(relays) == 2 and args.rounds > 0:
                held = [level.calls for level in (results[(r.name, mode)] for r in relays) if level]
                calls = min(held) if len(held) == 2 else args.start
                print(f"rounds, {mode}:", file=sys.stderr)
                compare(relays, mode, calls, args)
    finally:
        for relay in relays:
            relay.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
