"""CPU per call of Wedge's proxy core, in memory: no sockets, no event loop.

One call is what ``bench/cps.sh`` makes through Wedge, UDP to UDP with the media
relay off: INVITE, Wedge's 100, the callee's 180 and 200, ACK and BYE along the
route set, the BYE's 200 (6 messages in, 7 out). The callee and caller here are
scripted in this file; only the CPU time spent inside the core (receive,
collecting what it sends, its timer) is counted: CPU time, not wall time, so
that other work on the box slows the figure less. What cps.sh measures on top is the sockets
and the loop.

The reference, in the same run (after each call, so that the box's slow and fast
spells weigh on both alike): parsing and serializing the same 13 messages with
:func:`gateway.sip.parse_message`, the least a proxy that reads what it forwards
must pay. The ratio says how much the proxy's own work adds.

Run: ``python bench/proxy.py [--calls 20000] [--profile]`` (``--profile``: the
functions the core spends its time in, by cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import parse_config
from gateway.policy import PolicyRouter, TrunkDirectory
from gateway.proxy.core import ProxyCore, ProxySettings
from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import Listener, RouteStamp
from gateway.server import tune_garbage_collector
from gateway.sip import Flow, Request, Response, parse_message
from gateway.transport.dns import TrunkResolver
from tests.helpers.messages import answer  # the callee, as SIPp's uas.xml answers

EDGE = ("127.0.0.3", 5060)
CALLER = ("127.0.0.1", 5070)
CALLEE = ("127.0.0.1", 5080)
CONTACT = f"sip:callee@{CALLEE[0]}:{CALLEE[1]}"
POLICY = f"""
[media]
relay = "none"
[[listener]]
name = "udp"
transport = "udp"
bind = "{EDGE[0]}:{EDGE[1]}"
[[trunk]]
name = "uas"
uri = "sip:{CALLEE[0]}:{CALLEE[1]}"
transport = "udp"
listener = "udp"
[[route]]
name = "everything-to-uas"
to_trunk = "uas"
"""

INVITE = (
    "INVITE sip:service@{edge} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {caller};branch=z9hG4bK-{n}-1;rport\r\n"
    "From: <sip:sipp@{caller}>;tag={n}B1\r\n"
    "To: <sip:service@{edge}>\r\n"
    "Call-ID: {n}-bench@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:sipp@{caller};transport=UDP>\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n\r\n{sdp}"
)
SDP = (
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
IN_DIALOG = (
    "{method} {target} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {caller};branch=z9hG4bK-{n}-{cseq};rport\r\n"
    "{routes}"
    "From: <sip:sipp@{caller}>;tag={n}B1\r\n"
    "To: {to}\r\n"
    "Call-ID: {n}-bench@127.0.0.1\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


class Bench:
    """The core, and the time spent in it."""

    def __init__(self) -> None:
        config = parse_config(POLICY, "bench", Path("."))
        directory = TrunkDirectory(config.trunks, TrunkResolver())
        listener = Listener("udp", "udp", EDGE, EDGE)
        counter = iter(range(10**9))
        stamp = RouteStamp([listener], FlowTokens(b"k" * 32), ids=lambda: f"{next(counter):x}")
        self.core = ProxyCore(
            PolicyRouter(config, directory),
            stamp,
            ProxySettings(),
            ids=lambda: f"{next(counter):x}",
        )
        self.now = 0.0
        self.busy = 0.0
        self.messages: list[bytes] = []

    def feed(self, data: bytes, source: tuple[str, int]) -> list[tuple[bytes, Flow]]:
        self.messages.append(data)
        core = self.core
        start = time.process_time()
        core.receive(data, Flow("udp", EDGE, source), self.now)
        out = list(core.datagrams_to_send())
        deadline = core.get_timer()
        if deadline is not None and deadline <= self.now:
            core.handle_timer(self.now)
            out += core.datagrams_to_send()
        self.busy += time.process_time() - start
        self.messages += [data for data, _ in out]
        return out

    def call(self, n: int) -> None:
        self.now += 0.001
        fields = {"n": n, "edge": f"{EDGE[0]}:{EDGE[1]}", "caller": f"{CALLER[0]}:{CALLER[1]}"}
        invite_bytes = INVITE.format(length=len(SDP), sdp=SDP, **fields).encode()
        out = self.feed(invite_bytes, CALLER)
        forwarded = next(parse_message(d) for d, f in out if f.remote == CALLEE)
        assert isinstance(forwarded, Request)
        self.feed(answer(forwarded, 180, "Ringing", to_tag=f"u{n}", contact=CONTACT), CALLEE)
        out = self.feed(
            answer(forwarded, 200, "OK", to_tag=f"u{n}", contact=CONTACT, body=SDP), CALLEE
        )
        ok = next(parse_message(d) for d, f in out if f.remote == CALLER)
        assert isinstance(ok, Response) and ok.status == 200
        routes = "".join(f"Route: {entry}\r\n" for entry in reversed(ok.record_routes))
        dialog = {
            "target": ok.contacts[0].uri_text,
            "routes": routes,
            "to": ok.headers.get("to"),
            **fields,
        }
        self.feed(IN_DIALOG.format(method="ACK", cseq=1, **dialog).encode(), CALLER)
        out = self.feed(IN_DIALOG.format(method="BYE", cseq=2, **dialog).encode(), CALLER)
        bye = next(parse_message(d) for d, f in out if f.remote == CALLEE)
        assert isinstance(bye, Request) and bye.method == "BYE"
        out = self.feed(answer(bye, 200, "OK", to_tag=f"u{n}", contact=CONTACT), CALLEE)
        assert any(f.remote == CALLER for _, f in out), "the BYE's 200 did not reach the caller"
        # Let the transactions end (Timer K, J, and the INVITE's) as time passes.
        self.now += 0.001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    bench = Bench()
    tune_garbage_collector()  # as `wedge run` does
    for n in range(500):  # warm up caches and the allocator
        bench.call(n)
    bench.busy = 0.0
    bench.messages = []
    profile = cProfile.Profile() if args.profile else None
    clock = time.process_time
    reference = 0.0
    for n in range(500, 500 + args.calls):
        if profile is not None:
            profile.enable()
        bench.call(n)
        if profile is not None:
            profile.disable()
        # The reference right after each call, so that the box's slow and fast
        # spells weigh on both figures alike.
        start = clock()
        for data in bench.messages:
            bytes(parse_message(data))
        reference += clock() - start
        bench.messages.clear()
    # Clock readings are counted in (two per message, two per reference): take them out.
    start = clock()
    for _ in range(100_000):
        clock()
    reading = (clock() - start) / 100_000
    per_call = bench.busy / args.calls - 6 * reading
    parse_only = reference / args.calls - reading

    print(
        f"proxy core: {per_call * 1e6:7.1f} us per call ({1 / per_call:,.0f} calls/s on one core)"
    )
    print(f"parse+serialize of its 13 messages: {parse_only * 1e6:7.1f} us (reference)")
    print(f"ratio core / reference: {per_call / parse_only:.2f}")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
