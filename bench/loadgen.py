"""A SIP call load generator (UAC) for TLS, WS/WSS, TCP and UDP: what SIPp cannot do.

Debian's SIPp speaks neither WebSocket nor TLS, so the TLS->UDP and WSS->UDP
benchmarks and load tests drive calls with this instead. Each call is the
shortest complete one, as bench/sipp/uac.xml makes over UDP:

    INVITE -> (100) (180) <- 200 -> ACK -> BYE <- 200

The ACK and BYE go to the 200's Contact along the route set (the Record-Route
reversed, RFC 3261 §12.1.2), so a record-routing proxy is exercised as a real
dialog would exercise it. A call fails on any final response other than 2xx, on
its connection closing, or on its timeout (``--timeout``, whole call); failures
are counted by reason.

How it stays out of the way at a few thousand calls per second:

- one reading coroutine (WS) or protocol callback (TCP/TLS/UDP) per connection,
  and no task per call: a call is a small object moved along by the responses
  that arrive for it, found by Call-ID;
- a scheduler that wakes at most once a millisecond and starts every call due
  by then (a token bucket: ``rate`` tokens a second, burst ``--burst``); if the
  generator itself falls behind, the calls start late, the run takes longer and
  ``achieved_cps`` comes out below the target, which the summary says;
- one sweep every 50 ms for timeouts, over calls in start order;
- messages built from preformatted templates, responses parsed with
  :func:`gateway.sip.parse_message` and streams framed by
  :class:`gateway.sip.StreamFramer`.

UDP is there for completeness and has no retransmissions: on a loopback that
does not drop, none are needed; a lost datagram is a failed call.

Run:
    python bench/loadgen.py tls://127.0.0.1:5061 --ca ca.pem --rate 500 --seconds 10
    python bench/loadgen.py wss://127.0.0.1:8443 --connections 50 --rate 1000 --json

Library: ``await run_load(LoadOptions(target=..., rate=..., calls=...))`` returns a
:class:`LoadResult`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import ssl
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, cast
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.exceptions import WebSocketException

from gateway.sip import (
    FramingFailed,
    MessageFramed,
    ParseError,
    PingReceived,
    Request,
    StreamFramer,
    parse_message,
)

__all__ = ["LoadOptions", "LoadResult", "main", "run_load"]

SCHEMES = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}
DEFAULT_CONNECTIONS = {"udp": 1, "tcp": 1, "tls": 1, "ws": 50, "wss": 50}
TICK = 0.001
"""Shortest sleep of the scheduler: calls due within a tick start together."""
SWEEP = 0.05
"""Seconds between two timeout sweeps."""

SDP = (
    "v=0\r\n"
    "o=loadgen 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)

INVITE = (
    "INVITE sip:service@%(host)s SIP/2.0\r\n"
    "Via: SIP/2.0/%(via)s;branch=z9hG4bK-%(id)si;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:loadgen@bench.test>;tag=%(id)s\r\n"
    "To: <sip:service@%(host)s>\r\n"
    "Call-ID: %(id)s\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:loadgen@%(contact)s>\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n"
    "\r\n"
    f"{SDP}"
)
IN_DIALOG = (
    "%(method)s %(target)s SIP/2.0\r\n"
    "Via: SIP/2.0/%(via)s;branch=z9hG4bK-%(id)s%(suffix)s;rport\r\n"
    "%(routes)s"
    "Max-Forwards: 70\r\n"
    "From: <sip:loadgen@bench.test>;tag=%(id)s\r\n"
    "To: <sip:service@%(host)s>;tag=%(to_tag)s\r\n"
    "Call-ID: %(id)s\r\n"
    "CSeq: %(cseq)s\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)
# The ACK of a non-2xx final response: same branch and Request-URI as the INVITE
# (RFC 3261 §17.1.1.3), sent so the proxy's server transaction ends at once.
ACK_FAILURE = (
    "ACK sip:service@%(host)s SIP/2.0\r\n"
    "Via: SIP/2.0/%(via)s;branch=z9hG4bK-%(id)si;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:loadgen@bench.test>;tag=%(id)s\r\n"
    "To: <sip:service@%(host)s>;tag=%(to_tag)s\r\n"
    "Call-ID: %(id)s\r\n"
    "CSeq: 1 ACK\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


@dataclass
class LoadOptions:
    """One run: where, how fast, how many."""

    target: str
    """``udp|tcp|tls|ws|wss://host:port[/path]``: the proxy under test."""
    rate: float = 100.0
    """Calls started per second."""
    calls: int | None = None
    """Calls in all; None: ``rate * seconds``."""
    seconds: float = 10.0
    """Duration of the run when ``calls`` is None."""
    connections: int | None = None
    """Connections the calls are spread over, round robin; None: 1, or 50 for WS."""
    timeout: float = 5.0
    """Seconds a call may take from INVITE to the BYE's 200 before it fails."""
    hold: float = 0.0
    """Seconds between the ACK and the BYE."""
    ca: str | None = None
    """CA file to verify the server certificate; None: no verification."""
    server_name: str | None = None
    """TLS server name (SNI and verification); None: the target's host."""
    burst: int = 0
    """Most calls started in one scheduler tick; 0: a tenth of a second's worth."""
    connect_timeout: float = 10.0
    strict: bool = False
    """Parse every message, 100 and 180 included (and count 200s not preceded by
    a 180). Off, provisional responses are recognised by their first bytes and
    skipped: about a third less work per call."""


@dataclass
class LoadResult:
    target: str
    transport: str
    connections: int
    rate: float
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    """Failed calls by reason."""
    notes: dict[str, int] = field(default_factory=dict)
    """Odd events that failed no call by themselves (unparsable messages, UDP errors)."""
    achieved_cps: float = 0.0
    """Calls started per second, measured: below ``rate`` when the generator lagged."""
    issue_seconds: float = 0.0
    elapsed: float = 0.0
    cpu_percent: float = 0.0
    """This process's CPU time over the run, in percent of one core."""
    setup_ms: dict[str, float] = field(default_factory=dict)
    """INVITE to 200, in milliseconds: p50, p90, p99, max."""
    missing_180: int = 0
    """2xx not preceded by a 180 (strict runs only): a proxy with several
    workers may let the 200 overtake the 180 and then drop the 180."""
    provisional: int = 0
    """Provisional responses skipped unparsed (runs that are not strict)."""
    stray: int = 0
    """Responses for calls already over (retransmissions, late responses)."""
    unexpected_requests: int = 0

    @property
    def failed_percent(self) -> float:
        return 100.0 * self.failed / self.attempted if self.attempted else 0.0

    def summary(self) -> str:
        setup = self.setup_ms
        line = (
            f"loadgen {self.target} conns={self.connections} rate={self.rate:g}/s: "
            f"{self.attempted} attempted, {self.succeeded} succeeded, {self.failed} failed "
            f"({self.failed_percent:.2f}%), achieved {self.achieved_cps:.1f}/s, "
            f"setup p50 {setup.get('p50', 0):.1f} ms p99 {setup.get('p99', 0):.1f} ms, "
            f"cpu {self.cpu_percent:.0f}%"
        )
        if self.reasons:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items()))
            line += f"; failures: {reasons}"
        if self.notes:
            notes = ", ".join(f"{k}: {v}" for k, v in sorted(self.notes.items()))
            line += f"; notes: {notes}"
        return line

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_percent"] = round(self.failed_percent, 4)
        return data


# -- calls ----------------------------------------------------------------------

INVITING = 0
ESTABLISHED = 1  # ACK sent, BYE pending (hold)
BYE_SENT = 2


class Call:
    __slots__ = ("ack", "conn", "deadline", "id", "ringing", "started", "state", "to_tag")

    def __init__(self, call_id: str, conn: Conn, started: float, deadline: float) -> None:
        self.id = call_id
        self.conn = conn
        self.started = started
        self.deadline = deadline
        self.state = INVITING
        self.ringing = False
        self.ack: bytes | None = None
        self.to_tag = ""


# -- connections ------------------------------------------------------------------


class Conn:
    """One connection (or UDP socket) to the proxy: sends bytes, feeds what it reads
    to the generator."""

    via = ""
    contact = ""
    closed = False

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class StreamConn(asyncio.Protocol, Conn):
    def __init__(self, gen: Generator, proto: str) -> None:
        self.gen = gen
        self.proto = proto
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("sockname")[:2]
        self.via = f"{self.proto} {host}:{port}"
        self.contact = f"{host}:{port};transport={self.proto.lower()}"

    def data_received(self, data: bytes) -> None:
        on_message = self.gen.on_message
        for event in self.framer.receive_data(data):
            if type(event) is MessageFramed:
                on_message(self, event.data)
            elif isinstance(event, FramingFailed):
                self.gen.conn_lost(self, f"framing failed: {event.reason}")
                if self.transport is not None:
                    self.transport.abort()
            elif isinstance(event, PingReceived) and self.transport is not None:
                self.transport.write(b"\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.conn_lost(self, "connection closed")

    def send(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ConnectionError("connection closed")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class DatagramConn(asyncio.DatagramProtocol, Conn):
    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        host, port = transport.get_extra_info("sockname")[:2]
        self.via = f"UDP {host}:{port}"
        self.contact = f"{host}:{port}"

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.gen.on_message(self, data)

    def error_received(self, exc: Exception) -> None:
        self.gen.note(f"udp error: {exc}")

    def send(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ConnectionError("socket closed")
        self.transport.sendto(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class WsConn(Conn):
    """A ``websockets`` client connection with the ``sip`` subprotocol.

    Sends go straight through websockets' Sans-I/O protocol (as Wedge's own WS
    shell does), so they need no task and keep their order; one coroutine reads.
    """

    def __init__(self, gen: Generator, ws: Any, proto: str, index: int) -> None:
        self.gen = gen
        self.ws = ws
        host = f"lg{os.getpid()}x{index}.invalid"
        self.via = f"{proto} {host}"
        self.contact = f"{host};transport=ws"
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        on_message = self.gen.on_message
        recv = self.ws.recv
        try:
            while True:
                data = await recv(decode=False)
                on_message(self, data)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.gen.conn_lost(self, "connection closed")

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("connection closed")
        self.ws.protocol.send_text(data)
        self.ws.send_data()

    def close(self) -> None:
        self.closed = True


# -- the generator ----------------------------------------------------------------


class Generator:
    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        parts = urlsplit(options.target)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or parts.hostname is None or parts.port is None:
            raise ValueError(f"target must be udp|tcp|tls|ws|wss://host:port, not {options.target}")
        self.scheme = scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path or "/"
        self.hostport = f"{self.host}:{self.port}"
        self.connections = options.connections or DEFAULT_CONNECTIONS[scheme]
        self.conns: list[Conn] = []
        self.inflight: dict[str, Call] = {}
        self.reasons: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.setup: list[float] = []
        self.succeeded = 0
        self.failed = 0
        self.stray = 0
        self.missing_180 = 0
        self.unexpected_requests = 0
        self.provisional = 0
        self.strict = options.strict
        self.loop = asyncio.get_running_loop()
        self.run_id = f"{os.getpid():x}{int(time.time() * 1000) % 0xFFFFFF:x}"
        self.idle = asyncio.Event()

    # -- setup --

    def _ssl(self) -> ssl.SSLContext | None:
        if self.scheme not in ("tls", "wss"):
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.options.ca:
            context.load_verify_locations(self.options.ca)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def connect(self) -> None:
        context = self._ssl()
        server_name = self.options.server_name or self.host
        limit = asyncio.Semaphore(16)

        async def open_one(index: int) -> Conn:
            async with limit, asyncio.timeout(self.options.connect_timeout):
                if self.scheme == "udp":
                    _, dgram = await self.loop.create_datagram_endpoint(
                        lambda: DatagramConn(self), remote_addr=(self.host, self.port)
                    )
                    return dgram
                if self.scheme in ("tcp", "tls"):
                    proto = SCHEMES[self.scheme]
                    _, stream = await self.loop.create_connection(
                        lambda: StreamConn(self, proto),
                        self.host,
                        self.port,
                        ssl=context,
                        server_hostname=server_name if context else None,
                    )
                    return stream
                from websockets.asyncio.client import connect

                extra: dict[str, Any] = {}
                if context is not None:
                    extra = {"ssl": context, "server_hostname": server_name}
                ws = await connect(
                    f"{self.scheme}://{self.hostport}{self.path}",
                    subprotocols=["sip"],  # type: ignore[list-item]
                    compression=None,
                    proxy=None,
                    ping_interval=None,
                    max_queue=256,
                    open_timeout=self.options.connect_timeout,
                    **extra,
                )
                if ws.subprotocol != "sip":
                    await ws.close()
                    raise ConnectionError(f"server chose subprotocol {ws.subprotocol!r}")
                return WsConn(self, ws, SCHEMES[self.scheme], index)

        tasks = [asyncio.ensure_future(open_one(i)) for i in range(self.connections)]
        try:
            self.conns = list(await asyncio.gather(*tasks))
        except BaseException:
            # One failed: stop the others, then close those that made it.
            for task in tasks:
                task.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            self.conns = [conn for conn in done if isinstance(conn, Conn)]
            await self.close()
            raise

    async def close(self) -> None:
        async def close_ws(conn: WsConn) -> None:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(2):
                    await conn.ws.close()
            conn.close()
            conn.reader.cancel()

        await asyncio.gather(*(close_ws(c) for c in self.conns if isinstance(c, WsConn)))
        for conn in self.conns:
            if not isinstance(conn, WsConn):
                conn.close()
        await asyncio.sleep(0)

    # -- calls --

    def start_call(self, number: int, now: float) -> None:
        conn = self.conns[number % len(self.conns)]
        call_id = f"{number}-{self.run_id}"
        call = Call(call_id, conn, perf_counter(), now + self.options.timeout)
        self.inflight[call_id] = call
        data = INVITE % {
            "host": self.hostport,
            "via": conn.via,
            "id": call_id,
            "contact": conn.contact,
        }
        try:
            conn.send(data.encode())
        except (ConnectionError, OSError) as exc:
            self.fail(call, f"send failed: {type(exc).__name__}")

    def succeed(self, call: Call) -> None:
        if self.inflight.pop(call.id, None) is not None:
            self.succeeded += 1
            if not self.inflight:
                self.idle.set()

    def fail(self, call: Call, reason: str) -> None:
        if self.inflight.pop(call.id, None) is not None:
            self.failed += 1
            self.reasons[reason] += 1
            if not self.inflight:
                self.idle.set()

    def note(self, what: str) -> None:
        """Something odd that failed no call by itself (an unparsable message...)."""
        self.notes[what] += 1

    def on_message(self, conn: Conn, data: bytes) -> None:
        if data[8:9] == b"1" and not self.strict and data.startswith(b"SIP/2.0 1"):
            self.provisional += 1  # 100 or 180: nothing to do, not worth parsing
            return
        try:
            message = parse_message(data)
        except ParseError as exc:
            self.note(f"unparsable message: {exc.reason}")
            return
        if isinstance(message, Request):
            self.unexpected_requests += 1
            return
        call = self.inflight.get(message.call_id)
        if call is None:
            self.stray += 1
            return
        status = message.status
        method = message.cseq.method
        if method == "INVITE":
            if status < 200:
                if status == 180:
                    call.ringing = True
                return
            if status >= 300:
                self._ack_failure(call, message.to.tag or "")
                self.fail(call, f"INVITE {status}")
                return
            if call.state != INVITING:
                if call.ack is not None:  # a retransmitted 2xx: ACK it again
                    self._send(call, call.ack)
                return
            self.setup.append(perf_counter() - call.started)
            if self.strict and not call.ringing:
                self.missing_180 += 1
            contacts = message.contacts
            if not contacts:
                self.fail(call, "200 without Contact")
                return
            routes = "".join(f"Route: {route}\r\n" for route in reversed(message.record_routes))
            call.to_tag = message.to.tag or ""
            fields = {
                "method": "ACK",
                "target": str(contacts[0].uri),
                "via": conn.via,
                "id": call.id,
                "suffix": "a",
                "routes": routes,
                "host": self.hostport,
                "to_tag": call.to_tag,
                "cseq": "1 ACK",
            }
            call.ack = (IN_DIALOG % fields).encode()
            fields.update(method="BYE", suffix="b", cseq="2 BYE")
            bye = (IN_DIALOG % fields).encode()
            if self.options.hold > 0:
                call.state = ESTABLISHED
                self._send(call, call.ack)
                self.loop.call_later(self.options.hold, self._bye, call, bye)
            else:
                call.state = BYE_SENT
                if isinstance(conn, StreamConn):
                    self._send(call, call.ack + bye)  # one write, two messages
                elif self._send(call, call.ack):
                    self._send(call, bye)
        elif method == "BYE":
            if status < 200:
                return
            if status < 300 and call.state == BYE_SENT:
                self.succeed(call)
            else:
                self.fail(call, f"BYE {status}")
        else:
            self.stray += 1

    def _bye(self, call: Call, bye: bytes) -> None:
        if call.id in self.inflight:
            call.state = BYE_SENT
            self._send(call, bye)

    def _send(self, call: Call, data: bytes) -> bool:
        try:
            call.conn.send(data)
        except (ConnectionError, OSError) as exc:
            self.fail(call, f"send failed: {type(exc).__name__}")
            return False
        return True

    def _ack_failure(self, call: Call, to_tag: str) -> None:
        data = ACK_FAILURE % {
            "host": self.hostport,
            "via": call.conn.via,
            "id": call.id,
            "to_tag": to_tag,
        }
        with contextlib.suppress(ConnectionError, OSError):
            call.conn.send(data.encode())

    def conn_lost(self, conn: Conn, reason: str) -> None:
        for call in [c for c in self.inflight.values() if c.conn is conn]:
            self.fail(call, reason)

    def sweep(self, now: float) -> None:
        expired = []
        for call in self.inflight.values():
            if call.deadline > now:
                break
            expired.append(call)
        for call in expired:
            stage = ("waiting for 200 to INVITE", "holding", "waiting for 200 to BYE")
            self.fail(call, f"timeout {stage[call.state]}")


async def run_load(options: LoadOptions) -> LoadResult:
    """Open the connections, run the calls, wait for the last ones, close."""
    gen = Generator(options)
    total = options.calls if options.calls is not None else round(options.rate * options.seconds)
    burst = options.burst or max(1, int(options.rate / 10))
    result = LoadResult(options.target, gen.scheme, gen.connections, options.rate)
    await gen.connect()
    loop = gen.loop
    cpu0 = time.process_time()
    start = loop.time()
    issued = 0
    next_sweep = start + SWEEP
    try:
        interval = 1.0 / options.rate
        while issued < total:
            now = loop.time()
            due = min(total, int((now - start) * options.rate) + 1, issued + burst)
            while issued < due:
                gen.start_call(issued, now)
                issued += 1
            if now >= next_sweep:
                gen.sweep(now)
                next_sweep = now + SWEEP
            if issued < total:
                wait = start + issued * interval - loop.time()
                await asyncio.sleep(max(TICK, wait))
        issue_end = loop.time()
        # Let the calls under way finish, or time out.
        gen.idle.clear()
        deadline = issue_end + options.timeout + SWEEP
        while gen.inflight and loop.time() < deadline:
            try:
                async with asyncio.timeout(SWEEP):
                    await gen.idle.wait()
            except TimeoutError:
                pass
            gen.sweep(loop.time())
        gen.sweep(float("inf"))
    finally:
        end = loop.time()
        cpu = time.process_time() - cpu0
        await gen.close()
    setup = sorted(gen.setup)
    result.attempted = issued
    result.succeeded = gen.succeeded
    result.failed = gen.failed
    result.reasons = dict(gen.reasons)
    result.notes = dict(gen.notes)
    result.issue_seconds = issue_end - start
    # Calls are due at t = 0, 1/rate, ..., (n-1)/rate: n-1 intervals.
    if issued > 1 and result.issue_seconds > 0:
        result.achieved_cps = min(options.rate, (issued - 1) / result.issue_seconds)
    else:
        result.achieved_cps = options.rate if issued else 0.0
    result.elapsed = end - start
    result.cpu_percent = 100.0 * cpu / result.elapsed if result.elapsed > 0 else 0.0
    if setup:
        result.setup_ms = {
            name: round(1000 * setup[min(len(setup) - 1, int(q * len(setup)))], 3)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        }
    result.missing_180 = gen.missing_180
    result.provisional = gen.provisional
    result.stray = gen.stray
    result.unexpected_requests = gen.unexpected_requests
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="SIP call load generator (UAC) over TLS, WS/WSS, TCP and UDP."
    )
    parser.add_argument("target", help="udp|tcp|tls|ws|wss://host:port[/path]")
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration: rate*seconds calls")
    parser.add_argument("--calls", type=int, help="total calls (instead of --seconds)")
    parser.add_argument(
        "--connections", type=int, help="connections (default: 1, or 50 for ws/wss)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds between ACK and BYE")
    parser.add_argument("--ca", help="CA file to verify the server (default: no verification)")
    parser.add_argument("--server-name", help="TLS server name (default: the target host)")
    parser.add_argument("--burst", type=int, default=0, help="most calls started at once")
    parser.add_argument(
        "--strict", action="store_true", help="parse every response, provisional ones too"
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    options = LoadOptions(
        target=args.target,
        rate=args.rate,
        calls=args.calls,
        seconds=args.seconds,
        connections=args.connections,
        timeout=args.timeout,
        hold=args.hold,
        ca=args.ca,
        server_name=args.server_name,
        burst=args.burst,
        strict=args.strict,
    )
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Few long-lived objects, many short ones: collect the young generation less often.
    gc.set_threshold(50_000, 20, 20)
    try:
        result = asyncio.run(run_load(options))
    except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
        print(f"loadgen: cannot run against {args.target}: {exc!r}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    return 0 if result.failed == 0 and result.attempted > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
