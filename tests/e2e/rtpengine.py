"""A real rtpengine for the end-to-end tests: Debian's ``rtpengine-daemon``, userspace only.

- :func:`rtpengine` (the fixture) starts daemons (:class:`Rtpengine`) and kills them
  at teardown. Each runs in the foreground with no configuration file, no kernel
  forwarding (``--table=-1``), on 127.0.0.1 only, with its own ng port and its own
  RTP port range, and logs to a file in the test's tmp_path (added to the report
  of a failed test). It is ready once it answers an ng ``ping``.
- :func:`media_backend` (a fixture parametrized over ``builtin`` and ``rtpengine``)
  gives the ``[media]`` table of a Wedge policy for each relay, so one test runs
  against both: ``Policy(..., media=media_backend)``.

Use them from a test module with
``from tests.e2e.rtpengine import media_backend_fixture, rtpengine_fixture`` (the
import registers the fixtures, named ``rtpengine`` and ``media_backend``). Every wait
is bounded and stretched by ``WEDGE_TEST_TIMEOUT_SCALE``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media import ng
from tests.e2e.conftest import _attach, _read, free_port, start_daemon, terminate

__all__ = [
    "Rtpengine",
    "RtpengineFactory",
    "media_backend_fixture",
    "ng_request",
    "rtpengine_fixture",
]

RTPENGINE = shutil.which("rtpengine") or (
    "/usr/bin/rtpengine" if Path("/usr/bin/rtpengine").exists() else None
)
LOCAL = "127.0.0.1"
PORTS = 100
"""RTP ports per daemon: two or three per call leg, so a few dozen calls."""


_cookies = itertools.count(1)


def ng_request(port: int, message: ng.Message, timeout: float = 0.3) -> ng.Reply | None:
    """One ng request to 127.0.0.1:``port``; its reply, or None if none came.

    Each request has a cookie of its own: rtpengine answers a cookie it has seen
    from its cache (a retransmission), whatever the command."""
    cookie = f"e2e{os.getpid()}_{next(_cookies)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(ng.frame(cookie, message), (LOCAL, port))
            data = sock.recv(65535)
        except OSError:  # timeout, refused (ICMP port unreachable)
            return None
    _, body = ng.unframe(data)
    return ng.parse_reply(body)


class Rtpengine:
    """One rtpengine daemon on 127.0.0.1: ng on ``ng_port``, RTP on ``ports``."""

    def __init__(self, folder: Path, *, ng_port: int, ports: tuple[int, int]) -> None:
        self.folder = folder
        self.ng_port = ng_port
        self.ports = ports
        self.log_file = folder / "rtpengine.log"
        folder.mkdir(parents=True, exist_ok=True)
        self.args = [
            RTPENGINE or "rtpengine",
            "--config-file=none",  # not /etc/rtpengine/rtpengine.conf
            "--table=-1",  # userspace forwarding: no kernel module
            "--foreground",
            "--log-stderr",
            "--log-level=6",
            f"--interface={LOCAL}",
            f"--listen-ng={LOCAL}:{ng_port}",
            f"--port-min={ports[0]}",
            f"--port-max={ports[1]}",
            "--delete-delay=0",
            "--num-threads=2",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of its ng socket, as a Wedge policy names it."""
        return f"{LOCAL}:{self.ng_port}"

    @property
    def log(self) -> str:
        return _read(self.log_file)

    def start(self) -> Rtpengine:
        def answers() -> bool:
            reply = ng_request(self.ng_port, ng.ping())
            return reply is not None and reply.result == "pong"

        self.process = start_daemon(
            "rtpengine",
            self.args,
            self.folder,
            self.log_file,
            answers,
            f"rtpengine to answer ng pings on {self.address}",
        )
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s (its own session: nothing else)."""
        terminate(self.process)

    def calls(self) -> list[str]:
        """The Call-IDs it holds now."""
        reply = ng_request(self.ng_port, ng.list_calls(100), timeout=1.0)
        assert reply is not None, f"rtpengine {self.address} did not answer a list"
        return ng.listed_calls(reply)

    def diagnostics(self) -> tuple[str, str]:
        code = self.process.poll() if self.process is not None else None
        return (
            f"rtpengine {self.address}",
            f"$ {shlex.join(self.args)}\nexit: {code}\n{self.log[-20_000:]}",
        )


RtpengineFactory = Callable[[], Rtpengine]


@pytest.fixture(name="rtpengine")
def rtpengine_fixture(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RtpengineFactory]:
    """``rtpengine() -> Rtpengine``, started and answering pings; stopped at teardown.
    Skips without the daemon."""
    if RTPENGINE is None:
        pytest.skip(
            "rtpengine is not installed (Debian: apt-get install rtpengine-daemon; "
            "./scripts/test installs it)"
        )
    started: list[Rtpengine] = []

    def start() -> Rtpengine:
        for attempt in range(3):
            first = free_port(LOCAL)
            first -= first % 2
            daemon = Rtpengine(
                tmp_path / f"rtpengine{len(started)}",
                ng_port=free_port(LOCAL),
                ports=(first, first + PORTS - 1),
            )
            started.append(daemon)
            _attach(request, daemon.diagnostics)
            try:
                return daemon.start()
            except (RuntimeError, TimeoutError):
                daemon.stop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    yield start
    for daemon in started:
        with contextlib.suppress(Exception):
            daemon.stop()


@pytest.fixture(name="media_backend", params=["builtin", "rtpengine"])
def media_backend_fixture(
    request: pytest.FixtureRequest,
) -> dict[str, str | float | list[str]]:
    """The ``[media]`` table for each relay: the built-in one with a port range of its
    own, or a fresh rtpengine daemon (started only for that parameter)."""
    if request.param == "builtin":
        first = free_port(LOCAL)
        first -= first % 2
        return {"relay": "builtin", "ports": f"{first}-{first + PORTS - 1}"}
    factory: RtpengineFactory = request.getfixturevalue("rtpengine")
    return {"relay": "rtpengine", "rtpengine": [factory().address]}
