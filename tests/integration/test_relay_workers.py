"""Relay worker processes on 127.0.0.1: calls spread over them, RTP through them,
a worker that dies takes only its own calls."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import struct

import pytest

from media.control import MediaError, Negotiation
from media.workers import RelayWorkers, split_ports, start_workers
from sdp.model import parse
from sdp.rewrite import AVP

pytestmark = pytest.mark.integration

LOCAL = "127.0.0.1"


def _sdp(port: int) -> bytes:
    return (
        f"v=0\r\no=t 1 1 IN IP4 {LOCAL}\r\ns=-\r\nc=IN IP4 {LOCAL}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.settimeout(2)
    return sock


def _port_range() -> tuple[int, int]:
    probe = _udp()
    first = probe.getsockname()[1]
    probe.close()
    first = min(first - first % 2, 60000)
    return first, first + 199


async def _call(relay: RelayWorkers, name: str, a: socket.socket, b: socket.socket) -> int:
    """Set up a call between ``a`` and ``b``; the relay port ``a`` sends to."""
    offer = Negotiation(name, "a", None, AVP, AVP)
    await relay.offer(offer, _sdp(a.getsockname()[1]))
    answer = Negotiation(name, "b", "a", AVP, AVP)
    to_a = parse(await relay.answer(answer, _sdp(b.getsockname()[1])))
    return to_a.media[0].port


def test_ports_are_split_in_whole_pairs() -> None:
    assert split_ports(40000, 40099, 2) == [(40000, 40049), (40050, 40099)]
    assert split_ports(40000, 40100, 3) == [(40000, 40031), (40032, 40063), (40064, 40100)]
    with pytest.raises(ValueError, match="too few"):
        split_ports(40000, 40005, 2)


async def test_calls_spread_over_workers_and_media_flows() -> None:
    first, last = _port_range()
    relay = await start_workers(
        2, bind=LOCAL, advertise=None, ports=(first, last), timeout=60, hold_timeout=60
    )
    a, b = _udp(), _udp()
    try:
        ports = [await _call(relay, f"call-{n}", a, b) for n in range(4)]
        halves = {port < first + 100 for port in ports}
        assert halves == {True, False}, f"every call on one worker: {ports}"
        packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 7) + bytes(160)
        a.sendto(packet, (LOCAL, ports[0]))
        assert await asyncio.to_thread(b.recv, 2048) == packet
        stats = await relay.delete("call-0")
        assert stats is not None and stats.legs[0].packets == 1
    finally:
        a.close()
        b.close()
        await relay.close()


async def test_a_dead_worker_takes_only_its_own_calls() -> None:
    first, last = _port_range()
    relay = await start_workers(
        2, bind=LOCAL, advertise=None, ports=(first, last), timeout=60, hold_timeout=60
    )
    a, b = _udp(), _udp()
    try:
        await _call(relay, "on-0", a, b)
        await _call(relay, "on-1", a, b)
        victim = relay._by_call["on-0"]
        os.kill(victim.process.pid, signal.SIGKILL)
        await victim.process.wait()
        await asyncio.sleep(0.1)
        assert "on-0" not in relay._by_call  # forgotten with its worker
        with pytest.raises(MediaError) as refused:
            await relay.answer(Negotiation("on-0", "b", "a", AVP, AVP), _sdp(1000))
        assert refused.value.status == 500  # no offer for it any more
        new = await _call(relay, "new", a, b)
        # A re-offer (a re-INVITE) sets the lost call up again, on the survivor.
        again = await _call(relay, "on-0", a, b)
        assert new and again
        assert relay._by_call["new"] is relay._by_call["on-1"] is relay._by_call["on-0"]
    finally:
        a.close()
        b.close()
        await relay.close()


async def test_media_timeout_comes_back_from_the_worker() -> None:
    first, last = _port_range()
    relay = await start_workers(
        1, bind=LOCAL, advertise=None, ports=(first, last), timeout=0.5, hold_timeout=60
    )
    ended: asyncio.Queue[str] = asyncio.Queue()
    relay.on_timeout(ended.put_nowait)
    a, b = _udp(), _udp()
    try:
        await _call(relay, "silent", a, b)
        assert await asyncio.wait_for(ended.get(), 5) == "silent"
    finally:
        a.close()
        b.close()
        await relay.close()


async def test_a_port_released_before_it_is_attached_is_simply_gone() -> None:
    from media.endpoint import PortPool

    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    first, last = _port_range()
    pool = PortPool(loop, LOCAL, first, last)
    port, rtcp = pool.allocate(True)
    assert rtcp is not None
    pool.release(port)
    pool.release(rtcp)
    await asyncio.sleep(0.05)  # the attach tasks run now, and must find nothing to do
    assert pool.in_use == 0
    pool.allocate(False)
    await asyncio.sleep(0.05)
    assert pool.in_use == 1
    pool.close()
    gc.collect()  # a task that failed unseen reports it when it is collected
    assert errors == []


@pytest.mark.parametrize("host", [LOCAL, "::1"])
async def test_the_shell_hands_each_datagram_to_its_port_on_either_family(host: str) -> None:
    """In this process: the port's receive is the socket's handler; on IPv6 it gets
    (host, port) like the SDP's addresses, so latching compares like with like."""
    from media.endpoint import start_builtin

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    version = "IP6" if ":" in host else "IP4"

    def udp() -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        sock.settimeout(2)
        return sock

    def sdp(port: int) -> bytes:
        return (
            f"v=0\r\no=t 1 1 IN {version} {host}\r\ns=-\r\nc=IN {version} {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n"
        ).encode()

    first, last = _port_range()
    relay, stop = await start_builtin(bind=host, advertise=None, ports=(first, last))
    a, b, stranger = udp(), udp(), udp()
    try:
        await relay.offer(Negotiation("v", "a", None, AVP, AVP), sdp(a.getsockname()[1]))
        answer = Negotiation("v", "b", "a", AVP, AVP)
        to_a = parse(await relay.answer(answer, sdp(b.getsockname()[1]))).media[0].port
        await asyncio.sleep(0.05)  # the sockets are attached to the loop
        for seq in (1, 2):
            packet = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 7) + bytes(160)
            a.sendto(packet, (host, to_a))
            assert await asyncio.to_thread(b.recv, 2048) == packet
        stranger.sendto(packet, (host, to_a))  # not the latched source: dropped
        await asyncio.sleep(0.05)
        [port] = relay.sessions["v"].legs[0].ports
        assert port.remote == (host, a.getsockname()[1])
        stats = await relay.delete("v")
        assert stats is not None
        assert (stats.legs[0].packets, stats.legs[0].dropped) == (2, 1)
    finally:
        for sock in (a, b, stranger):
            sock.close()
        await relay.close()
        stop()
