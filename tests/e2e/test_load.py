"""Load for correctness: a minute of calls at 50 calls/s through Wedge, none may fail.

Three paths, each into a SIPp UAS (bench/sipp/uas.xml) on UDP behind Wedge's
PBX-side listener, so every call is double record-routed:

- UDP->UDP: SIPp caller (bench/sipp/uac.xml: INVITE, 180, 200, ACK and BYE
  along the route set, 200);
- TLS->UDP: bench/loadgen.py over one TLS connection;
- WSS->UDP: bench/loadgen.py over 50 WebSocket connections (subprotocol "sip").

The same short calls the call-rate benchmark (bench/cps.sh) makes, at a rate far
below its limits: here what counts is that not one call fails (and Wedge logs no
error) over ``WEDGE_LOAD_SECONDS`` seconds (default 60; shorten it while
developing: ``WEDGE_LOAD_SECONDS=10 pytest tests/e2e/test_load.py``). The caller
parses every message in full (``strict``), so a malformed response fails too.

The network, all on loopback, every port picked free at run time::

    caller 127.0.0.1  ->  Wedge edge-udp / edge-tls / edge-wss  127.0.0.1
                          Wedge pbx-udp 127.0.0.2  ->  SIPp UAS 127.0.0.1
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.loadgen import LoadOptions, LoadResult, run_load
from tests.e2e.conftest import (
    ListenerSpec,
    Pki,
    Policy,
    Wedge,
    WedgeFactory,
    free_port,
    port_bound,
    wait_until,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "bench" / "sipp"
SIPP = shutil.which("sipp")
LOCAL = "127.0.0.1"
PBX_SIDE = "127.0.0.2"
RATE = 50
SECONDS = float(os.environ.get("WEDGE_LOAD_SECONDS", "60"))
CALLS = round(RATE * SECONDS)
CALL_TIMEOUT = 5.0
"""Seconds a call may take, INVITE to the BYE's 200; a loaded loopback needs milliseconds."""
SLACK = 60.0
"""Beyond the run's own length, the longest any process of a test may live."""


class SippRun:
    """One SIPp process without message tracing (at 50 calls/s a trace is megabytes);
    bounded by ``-m`` and ``-timeout``, killed at teardown if still running."""

    def __init__(self, folder: Path, name: str, args: list[str]) -> None:
        self.stdout = folder / f"{name}.stdout"
        self.errors = folder / f"{name}-errors.log"
        self.args = [
            SIPP or "sipp",
            *args,
            "-nostdin",
            "-timeout",
            f"{round(SECONDS + SLACK)}s",
            "-trace_err",
            "-error_file",
            str(self.errors),
        ]
        with self.stdout.open("wb") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self) -> int:
        try:
            return self.process.wait(SECONDS + SLACK + 10)
        except subprocess.TimeoutExpired:
            self.stop()
            return -9

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def counter(self, name: str) -> int:
        """A cumulative counter of SIPp's final statistics screen ("Successful call")."""
        text = self.stdout.read_text(errors="replace")
        values = re.findall(rf"{re.escape(name)}\s*\|[^|]*\|\s*(\d+)", text)
        return int(values[-1]) if values else -1

    def describe(self) -> str:
        errors = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        tail = self.stdout.read_text(errors="replace")[-3000:]
        return f"$ {' '.join(self.args)}\n--- errors\n{errors[-3000:]}\n--- stdout\n{tail}"


@pytest.fixture
def uas(tmp_path: Path) -> Iterator[tuple[SippRun, int]]:
    """The callee: SIPp answering every call, on 127.0.0.1:a free port."""
    if SIPP is None:
        pytest.skip("SIPp is not installed (no 'sipp' on PATH; Debian: apt-get install sip-tester)")
    port = free_port(LOCAL)
    run = SippRun(
        tmp_path,
        "uas",
        ["-sf", str(SCENARIOS / "uas.xml"), "-i", LOCAL, "-p", str(port), "-nd"],
    )
    try:
        wait_until(
            lambda: run.process.poll() is not None or port_bound("udp", port),
            10.0,
            "the SIPp UAS",
        )
        assert run.process.poll() is None, run.describe()
        yield run, port
    finally:
        run.stop()


@pytest.fixture
def edge(wedge: WedgeFactory, uas: tuple[SippRun, int]) -> Wedge:
    """Wedge with UDP, TLS and WSS listeners for callers, and a UDP PBX-side one."""
    _, uas_port = uas
    policy = Policy(
        listeners=[
            ListenerSpec("edge-udp", "udp", LOCAL, free_port(LOCAL)),
            ListenerSpec("edge-tls", "tls", LOCAL, free_port(LOCAL)),
            ListenerSpec("edge-wss", "wss", LOCAL, free_port(LOCAL)),
            ListenerSpec("pbx-udp", "udp", PBX_SIDE, free_port(PBX_SIDE)),
        ],
        trunks=[
            {
                "name": "pbx",
                "uri": f"sip:{LOCAL}:{uas_port}",
                "transport": "udp",
                "listener": "pbx-udp",
            }
        ],
        routes=[{"name": "callers-to-pbx", "to_trunk": "pbx"}],
        t1=0.5,  # RFC 3261's default, as deployed
    )
    return wedge(policy)


def assert_wedge_quiet(wedge: Wedge) -> None:
    """No error (nor traceback) in Wedge's log over the run."""
    problems = [
        line
        for line in wedge.stderr.splitlines()
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    ]
    assert not problems, "Wedge logged errors:\n" + "\n".join(problems[:20])


def assert_no_failed_calls(result: LoadResult) -> None:
    print(result.summary())  # shown with -s, and in the report of a failure
    assert result.attempted == CALLS, result.summary()
    assert result.failed == 0, result.summary()
    assert result.succeeded == CALLS, result.summary()
    assert result.unexpected_requests == 0, result.summary()
    assert not result.notes, result.summary()  # e.g. a message that did not parse
    # The generator itself kept the rate (else the load was not what it says).
    assert result.achieved_cps >= 0.95 * RATE, result.summary()


def sipp_udp_calls(folder: Path, name: str, target: str, calls: int) -> tuple[int, int, int]:
    """``calls`` calls at RATE from a SIPp caller over UDP (bench/sipp/uac.xml) to
    ``target``: SIPp's exit code, successful and failed calls."""
    uac = SippRun(
        folder,
        name,
        [
            "-sf",
            str(SCENARIOS / "uac.xml"),
            "-i",
            LOCAL,
            "-p",
            str(free_port(LOCAL)),
            "-t",
            "u1",
            "-nd",
            "-r",
            str(RATE),
            "-m",
            str(calls),
            "-recv_timeout",
            str(round(CALL_TIMEOUT * 1000)),
            target,
        ],
    )
    try:
        code = uac.wait()
    finally:
        uac.stop()
    result = (code, uac.counter("Successful call"), uac.counter("Failed call"))
    if result != (0, calls, 0):
        print(uac.describe())
    return result


def test_udp_to_udp_load(edge: Wedge, uas: tuple[SippRun, int], tmp_path: Path) -> None:
    target = edge.policy.listener("edge-udp").address
    code, successful, failed = sipp_udp_calls(tmp_path, "uac", target, CALLS)
    print(f"sipp udp->udp: {CALLS} calls at {RATE}/s: {successful} successful, {failed} failed")
    assert (code, successful, failed) == (0, CALLS, 0)
    assert uas[0].process.poll() is None, "the UAS exited:\n" + uas[0].describe()
    assert_wedge_quiet(edge)


async def load_through(edge: Wedge, pki: Pki, scheme: str, connections: int) -> None:
    """CALLS calls at RATE from ``connections`` connections; none may fail."""
    listener = edge.policy.listener(f"edge-{scheme}")
    result = await run_load(
        LoadOptions(
            target=f"{scheme}://{listener.address}",
            rate=RATE,
            calls=CALLS,
            connections=connections,
            timeout=CALL_TIMEOUT,
            ca=str(pki.ca),
            strict=True,
        )
    )
    assert_no_failed_calls(result)
    assert_wedge_quiet(edge)


async def test_tls_to_udp_load(edge: Wedge, pki: Pki) -> None:
    await load_through(edge, pki, "tls", connections=1)


async def test_wss_to_udp_load(edge: Wedge, pki: Pki) -> None:
    await load_through(edge, pki, "wss", connections=50)
