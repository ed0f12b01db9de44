"""Wedge with its media on real rtpengine daemons, SIP peers only (SIPp).

The browser tests (``test_browser_media.py``) and the SDES trunk test
(``test_media_relay.py``) run with rtpengine too, through ``media_backend``; this
file holds what only rtpengine has:

- two instances, and one of them stops in the middle of a call: the call on the
  other goes on to its end with media both ways, and the next new call goes to the
  survivor (after trying the stopped one, if Wedge has not noticed yet);
- an instance that stops answering (frozen): the INVITE gets 503 with Retry-After
  within the client's bounded wait;
- with no instance answering and no fallback, ``wedge run`` refuses to start and
  says why.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests.e2e.conftest import (
    SCALE,
    ListenerSpec,
    Policy,
    Sipp,
    SippFactory,
    Wedge,
    WedgeFactory,
    free_port,
    wait_until,
)
from tests.e2e.rtpengine import Rtpengine, RtpengineFactory, rtpengine_fixture  # noqa: F401
from tests.e2e.test_browser import retried

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
PCAP = "/usr/share/sip-tester/g711a.pcap"
PACKETS = 200
"""At least this many of the recording's packets reach each side (it has 236)."""
ENDED = re.compile(r"media ended call-id=(\S+) (\S+):pkts=(\d+)\S* (\S+):pkts=(\d+)")


def caller(sipp: SippFactory, core: int) -> Sipp:
    return retried(
        lambda: sipp(
            "uac_pcap.xml",
            transport="udp",
            local_port=free_port(LOCAL),
            remote=f"{LOCAL}:{core}",
            extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL)), "-key", "pcap", PCAP],
            timeout=30,
        )
    )


def holder(daemons: list[Rtpengine], known: set[str]) -> tuple[Rtpengine, str] | None:
    """The daemon that holds a call not in ``known``, and that call's Call-ID."""
    for daemon in daemons:
        for call in daemon.calls():
            if call not in known:
                return daemon, call
    return None


def wait_holder(daemons: list[Rtpengine], known: set[str], what: str) -> tuple[Rtpengine, str]:
    found: list[tuple[Rtpengine, str]] = []

    def check() -> bool:
        held = holder(daemons, known)
        if held is not None:
            found.append(held)
        return held is not None

    wait_until(check, 10 * SCALE, what)
    return found[0]


def test_live_calls_stay_on_their_instance_and_new_calls_go_to_the_survivor(
    rtpengine: RtpengineFactory, sipp: SippFactory, wedge: WedgeFactory
) -> None:
    daemons = [rtpengine(), rtpengine()]
    pbx = retried(
        lambda: sipp(
            "uas_echo.xml",
            transport="udp",
            local_port=free_port(LOCAL),
            calls=2,
            extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL)), "-rtp_echo"],
            timeout=40,
        )
    )

    def start() -> tuple[Wedge, int]:
        core = free_port(LOCAL)
        policy = Policy(
            listeners=[ListenerSpec("core", "udp", LOCAL, core)],
            trunks=[{"name": "pbx", "uri": f"sip:{LOCAL}:{pbx.local_port}"}],
            routes=[{"name": "all", "to_trunk": "pbx"}],
            media={"relay": "rtpengine", "rtpengine": [d.address for d in daemons]},
        )
        return wedge(policy), core

    net, core = retried(start)
    first_call = caller(sipp, core)
    survivor, first_id = wait_holder(daemons, set(), "the first call to reach an rtpengine")
    stopped = next(daemon for daemon in daemons if daemon is not survivor)
    time.sleep(1.0)  # a second of media through the survivor first
    stopped.stop()

    second_call = caller(sipp, core)
    daemon, _ = wait_holder([survivor], {first_id}, "the second call to reach the survivor")
    assert daemon is survivor

    for call in (first_call, second_call):
        result = call.wait(30 * SCALE)
        assert result.returncode == 0, result.describe()
    answered = pbx.wait(10 * SCALE)
    assert answered.returncode == 0, answered.describe()
    wait_until(lambda: len(ENDED.findall(net.stderr)) == 2, 5 * SCALE, "Wedge to free both calls")
    for call_id, _, sent, _, echoed in ENDED.findall(net.stderr):
        assert int(sent) >= PACKETS and int(echoed) >= PACKETS, (call_id, net.stderr[-3000:])
    assert f"rtpengine {stopped.address} down" in net.stderr
    assert survivor.calls() == []


def test_a_frozen_rtpengine_means_503_with_retry_after_in_bounded_time(
    rtpengine: RtpengineFactory, sipp: SippFactory, wedge: WedgeFactory
) -> None:
    """SIGSTOP: the daemon's socket stays open, so nothing (not even an ICMP error)
    comes back; only the client's own timeouts can end the wait."""
    daemon = rtpengine()

    def start() -> tuple[Wedge, int]:
        core = free_port(LOCAL)
        policy = Policy(
            listeners=[ListenerSpec("core", "udp", LOCAL, core)],
            trunks=[{"name": "pbx", "uri": f"sip:{LOCAL}:{free_port(LOCAL)}"}],
            routes=[{"name": "all", "to_trunk": "pbx"}],
            media={"relay": "rtpengine", "rtpengine": [daemon.address]},
        )
        return wedge(policy), core

    net, core = retried(start)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = retried(
            lambda: sipp(
                "uac_503.xml",
                transport="udp",
                local_port=free_port(LOCAL),
                remote=f"{LOCAL}:{core}",
                extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL))],
            )
        ).wait()
        elapsed = time.monotonic() - started
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    assert result.returncode == 0, result.describe()
    refusal = result.first("received", status=503).response
    assert refusal.headers.get("retry-after") == "5", refusal
    assert "did not answer" in (refusal.headers.get("warning") or ""), refusal
    # The client gives a new call 3 s (new_call_timeout); SIPp itself takes a moment.
    assert elapsed < 3.0 + 2.0 * SCALE, elapsed
    assert f"rtpengine {daemon.address} down" in net.stderr


def test_wedge_refuses_to_start_when_no_rtpengine_answers(wedge: WedgeFactory) -> None:
    silent = free_port(LOCAL)  # nothing listens there
    policy = Policy(
        listeners=[ListenerSpec("core", "udp", LOCAL, free_port(LOCAL))],
        trunks=[{"name": "pbx", "uri": f"sip:{LOCAL}:5080"}],
        routes=[{"name": "all", "to_trunk": "pbx"}],
        media={"relay": "rtpengine", "rtpengine": [f"{LOCAL}:{silent}"]},
    )
    # Wedge may look ready (its listeners log first) before the media start fails.
    try:
        started = wedge(policy)
    except RuntimeError as exc:
        message = str(exc)
    else:
        assert started.process is not None
        assert started.process.wait(5 * SCALE) == 1, started.stderr
        message = started.stderr
    assert (
        f"cannot start: no rtpengine instance answered a ping within 1 s ({LOCAL}:{silent}); "
        'start rtpengine, or set [media] fallback = "builtin"'
    ) in message, message
