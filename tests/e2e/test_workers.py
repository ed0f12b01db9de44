"""SIP workers (``[wedge] workers = 2``): two processes serving the same ports.

The kernel hands each datagram and connection to either worker; every message of a
call must still reach the one worker that owns the call (by its Call-ID), and a
request toward a caller's WebSocket must leave on that connection, whichever
worker holds it. Checked with real peers:

- WSS caller -> UDP PBX (SIPp), whose re-INVITE and BYE come back over the caller's
  connection: two calls on one connection, their Call-IDs chosen so that one call is
  owned by the worker holding the connection and the other by the other worker;
- UDP -> UDP at 50 calls/s (SIPp both ends), none failed;
- a worker killed with SIGKILL is restarted, and calls go on; SIGTERM stops all.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import zlib
from pathlib import Path

import pytest

from tests.e2e.conftest import STARTUP_TIMEOUT, Pki, SippFactory, Wedge, WedgeFactory, wait_until
from tests.e2e.sipws import browser_user_agent, connect_ws
from tests.e2e.test_load import SippRun, assert_wedge_quiet, sipp_udp_calls, uas
from tests.e2e.test_proxy_calls import LOCAL, Net, check_secure_call, secure_call

pytestmark = pytest.mark.e2e

__all__ = ["uas"]  # the fixture, for the tests here

WORKERS = 2


def _serving(wedge: Wedge) -> None:
    wait_until(
        lambda: len(re.findall(r"worker=\d: wedge running", wedge.stderr)) >= WORKERS,
        STARTUP_TIMEOUT,
        "both workers serving",
    )


def _call_id_owned_by(worker: int) -> str:
    """A Call-ID that worker ``worker`` owns (crc32 % workers, as Wedge deals them)."""
    n = 0
    while True:
        call_id = f"workers-{n}@wedge.test"
        if zlib.crc32(call_id.encode()) % WORKERS == worker:
            return call_id
        n += 1


async def test_wss_calls_owned_by_either_worker(
    sipp: SippFactory, wedge: WedgeFactory, pki: Pki
) -> None:
    net = Net.make("wss", "udp")
    net.policy.workers = WORKERS
    process = wedge(net.policy)
    _serving(process)
    channel = await connect_ws(f"wss://{LOCAL}:{net.wss}/", pki.ca)
    try:
        for owner in range(WORKERS):
            callee = sipp("uas_callee_reinvite_bye.xml", transport="udp", local_port=net.uas)
            ua = browser_user_agent(channel)
            ua.call_id = _call_id_owned_by(owner)
            async with asyncio.timeout(25):
                result = await secure_call(ua, net, callee)
            check_secure_call(ua, result, net)
            assert re.search(rf"worker={owner}: call call-id={ua.call_id} ", process.stderr)
    finally:
        await channel.close()
    assert_wedge_quiet(process)


def test_udp_calls_survive_a_worker_restart(
    wedge: WedgeFactory, uas: tuple[SippRun, int], tmp_path: Path
) -> None:
    net = Net.make("udp", "udp")
    net.policy.workers = WORKERS
    net.policy.trunks[0]["uri"] = f"sip:{LOCAL}:{uas[1]}"
    net.policy.t1 = 0.5
    process = wedge(net.policy)
    _serving(process)
    address = net.policy.listener("edge-udp").address

    assert sipp_udp_calls(tmp_path, "uac-1", address, 300) == (0, 300, 0)
    for worker in range(WORKERS):  # the kernel spread them: both workers made calls
        assert re.search(rf"worker={worker}: call call-id=", process.stderr), worker
    assert_wedge_quiet(process)

    pids = re.search(r"started 2 workers pids=(\d+),(\d+)", process.stderr)
    assert pids is not None, process.stderr
    os.kill(int(pids.group(1)), signal.SIGKILL)
    wait_until(
        lambda: len(re.findall(r"worker=\d: wedge running", process.stderr)) > WORKERS,
        STARTUP_TIMEOUT,
        "the killed worker restarted",
    )
    assert re.search(r"worker=0 exited status=-9: restarting it", process.stderr)
    assert sipp_udp_calls(tmp_path, "uac-2", address, 100) == (0, 100, 0)

    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(15) == 0
    assert len(re.findall(r"worker=\d stopped status=0", process.stderr)) == WORKERS
