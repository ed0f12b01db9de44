"""SIP workers (``[wedge] workers = 2``): two processes serving the same ports.

The kernel hands each datagram and connection to either worker; every message of a
call must still reach the one worker that owns the call, and a request toward a
caller's connection must leave on that connection, whichever worker holds it.
Checked with real peers:

- WSS caller -> UDP PBX (SIPp), whose re-INVITE and BYE come back over the caller's
  connection: two calls on one connection, their Call-IDs chosen so that the
  Call-ID hash would give them to different workers; both live in the worker
  holding the browser's connection;
- TLS caller (a trunk) -> UDP PBX, likewise: each call lives in the worker its
  Call-ID names, so one of them answers the trunk through the other worker;
- a trunk's answers to the OPTIONS probes each worker sends reach the worker that
  sent them (a probe that times out would take the trunk out of use);
- UDP -> UDP at 50 calls/s (SIPp both ends), none failed;
- a worker killed with SIGKILL is restarted, and calls go on; SIGTERM stops all.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.workers.dispatch import connection_owner
from tests.e2e.conftest import STARTUP_TIMEOUT, Pki, SippFactory, Wedge, WedgeFactory, wait_until
from tests.e2e.siptls import UserAgent, connect_tls
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


def _call_worker(wedge: Wedge, call_id: str) -> tuple[int, int]:
    """From the call's log line: the worker that handled it, and the worker holding
    the connection it came in on."""
    line = rf"worker=(\d): call call-id={re.escape(call_id)} .* in=\S+#(\d+) "
    found = re.search(line, wedge.stderr)
    assert found is not None, wedge.stderr
    return int(found.group(1)), connection_owner(int(found.group(2)), WORKERS)


def _started(wedge: WedgeFactory, caller: str) -> tuple[Net, Wedge]:
    net = Net.make(caller, "udp")
    net.policy.workers = WORKERS
    process = wedge(net.policy)
    _serving(process)
    return net, process


async def _call_per_hash(
    sipp: SippFactory, net: Net, process: Wedge, user_agent: Callable[[], UserAgent]
) -> list[tuple[int, int]]:
    """One call whose Call-ID hashes to each worker in turn, to a SIPp PBX that
    re-INVITEs and hangs up; for each, the worker that handled it and the worker
    holding the caller's connection."""
    seen = []
    for hashed_to in range(WORKERS):
        callee = sipp("uas_callee_reinvite_bye.xml", transport="udp", local_port=net.uas)
        ua = user_agent()
        ua.call_id = _call_id_owned_by(hashed_to)
        async with asyncio.timeout(25):
            result = await secure_call(ua, net, callee)
        check_secure_call(ua, result, net)
        seen.append(_call_worker(process, ua.call_id))
    return seen


async def test_a_browsers_calls_live_in_the_worker_holding_its_socket(
    sipp: SippFactory, wedge: WedgeFactory, pki: Pki
) -> None:
    net, process = _started(wedge, "wss")
    channel = await connect_ws(f"wss://{LOCAL}:{net.wss}/", pki.ca)
    try:
        calls = await _call_per_hash(sipp, net, process, lambda: browser_user_agent(channel))
    finally:
        await channel.close()
    assert all(worker == holder for worker, holder in calls), calls
    assert_wedge_quiet(process)


async def test_a_trunks_calls_are_dealt_by_call_id(
    sipp: SippFactory, wedge: WedgeFactory, pki: Pki
) -> None:
    net, process = _started(wedge, "tls")
    channel = await connect_tls(LOCAL, net.tls, pki.ca)
    host, port = channel.local
    contact = f"sip:alice@{host}:{port};transport=tls"
    try:
        calls = await _call_per_hash(
            sipp, net, process, lambda: UserAgent(channel, contact=contact)
        )
    finally:
        await channel.close()
    assert [worker for worker, _ in calls] == list(range(WORKERS))
    # One connection, so one of the calls answered the trunk through the other worker.
    assert len({holder for _, holder in calls}) == 1, calls
    assert_wedge_quiet(process)


def test_each_worker_hears_the_answers_to_its_probes(
    sipp: SippFactory, wedge: WedgeFactory
) -> None:
    net = Net.make("udp", "udp")
    net.policy.workers = WORKERS
    # One probe lost and the target goes down, logged; the answers come within ms.
    net.policy.trunks[0].update(options_interval=0.2, options_timeout=1.5, down_after=1)
    answered = 30  # both workers probe: about three seconds of probes
    trunk = sipp("uas_options.xml", transport="udp", local_port=net.uas, calls=answered)
    process = wedge(net.policy)
    result = trunk.wait()
    log = process.stderr  # before probes unanswered once SIPp has gone time out
    assert result.returncode == 0, result.describe()
    for worker in range(WORKERS):
        assert f"worker={worker}: wedge running" in log
    assert "trunk target down" not in log, log


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
