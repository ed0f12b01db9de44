"""A trunk given by a domain: SRV picks the target, and a dead target is left within T1.

Wedge runs in-process with a DNS server of the test's on 127.0.0.1; the two trunk
targets are UDP sockets of the test that answer INVITEs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import parse_config
from gateway.server import start
from gateway.sip import Request, parse_message
from tests.helpers.dns import AuthoritativeServer
from tests.helpers.messages import answer
from tests.integration.conftest import TIMEOUT
from tests.integration.test_server import Pbx, free_port

ZONE = "example.test."
SOA = "ns.example.test. hostmaster.example.test. 1 3600 600 86400 60"


def invite(number: int, edge_port: int, client_port: int) -> bytes:
    return (
        f"INVITE sip:600@127.0.0.1:{edge_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK-f{number};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:600@example.test>\r\n"
        f"From: <sip:alice@example.test>;tag=f{number}\r\nCall-ID: failover-{number}\r\n"
        f"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_srv_target_order_and_failover_within_t1() -> None:
    loop = asyncio.get_running_loop()
    first_port, second_port, edge_port = free_port(), free_port(), free_port()
    records = [
        ("_sip._udp.trunk", 300, "SRV", f"10 0 {first_port} a.trunk.example.test."),
        ("_sip._udp.trunk", 300, "SRV", f"20 0 {second_port} b.trunk.example.test."),
        ("a.trunk", 300, "A", "127.0.0.1"),
        ("b.trunk", 300, "A", "127.0.0.1"),
    ]
    dns_transport, dns_server = await loop.create_datagram_endpoint(
        lambda: AuthoritativeServer(ZONE, SOA, records), local_addr=("127.0.0.1", 0)
    )
    policy = f"""
[wedge]
dns_servers = ["127.0.0.1:{dns_server.port}"]
[[listener]]
name = "edge"
transport = "udp"
bind = "127.0.0.1:{edge_port}"
[[trunk]]
name = "pbx"
uri = "sip:trunk.example.test"
down_after = 1
[[route]]
name = "all"
to_trunk = "pbx"
"""
    server = await start(parse_config(policy, "failover.toml", Path(".")))
    first_transport, first = await loop.create_datagram_endpoint(
        Pbx, local_addr=("127.0.0.1", first_port)
    )
    second_transport, second = await loop.create_datagram_endpoint(
        Pbx, local_addr=("127.0.0.1", second_port)
    )
    client_transport, client = await loop.create_datagram_endpoint(Pbx, local_addr=("127.0.0.1", 0))
    client_port = client_transport.get_extra_info("sockname")[1]
    try:
        # NAPTR is absent, so RFC 3263 §4.2 asks SRV: the priority-10 target first.
        client_transport.sendto(invite(1, edge_port, client_port), ("127.0.0.1", edge_port))
        request, wedge = await first.next_request("INVITE")
        assert request.uri == "sip:600@trunk.example.test"
        first_transport.sendto(answer(request, 200, "OK", contact="sip:600@127.0.0.1"), wedge)
        # The first target dies; the next call reaches the second within T1 (0.5 s).
        first_transport.close()
        sent_at = loop.time()
        client_transport.sendto(invite(2, edge_port, client_port), ("127.0.0.1", edge_port))
        request, wedge = await second.next_request("INVITE")
        assert loop.time() - sent_at < 0.5 + 0.3
        assert request.call_id == "failover-2"
        second_transport.sendto(answer(request, 200, "OK", contact="sip:600@127.0.0.1"), wedge)
        statuses = []
        while len(statuses) < 4:
            data, _ = await asyncio.wait_for(client.received.get(), TIMEOUT)
            message = parse_message(data)
            if not isinstance(message, Request):
                statuses.append((message.call_id, message.status))
        assert ("failover-2", 200) in statuses
        # The dead target is now out of use: a third call goes straight to the second.
        client_transport.sendto(invite(3, edge_port, client_port), ("127.0.0.1", edge_port))
        request, _ = await asyncio.wait_for(second.next_request("INVITE"), 0.3)
        assert request.call_id == "failover-3"
    finally:
        for transport in (first_transport, second_transport, client_transport, dns_transport):
            transport.close()
        await server.stop(drain=0)
