"""End-to-end fixtures: SIPp and Wedge as subprocesses on 127.0.0.1.

- :func:`sipp` starts SIPp processes (:class:`Sipp`) and kills them at teardown.
  Every run has ``-m`` and ``-timeout``, and logs the messages it sent and
  received (``-trace_msg``) into the test's tmp_path, so tests can assert on
  what each side saw (:class:`SippResult`).
- :func:`wedge` writes a policy (:class:`Policy`) into tmp_path, starts
  ``python -m gateway.cli run --config FILE`` and waits until every listener is
  up; teardown sends SIGTERM, then SIGKILL after 5 s.
- :func:`pki` makes a CA and a server certificate for 127.0.0.1 / localhost.

On failure, the stderr of Wedge and the logs of every SIPp the test started are
added to the report. Every wait here is bounded; ``WEDGE_TEST_TIMEOUT_SCALE``
stretches them on slow machines. ``WEDGE_E2E_COMMAND`` replaces the command that
starts Wedge (``--config FILE`` is appended), e.g. to run an installed build.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs.generate import cert_pem, key_pem, make_ca, make_certificate, write_pem
from gateway.sip import ParseError, Request, Response, parse_message

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")
SCALE = float(os.environ.get("WEDGE_TEST_TIMEOUT_SCALE", "1"))
STARTUP_TIMEOUT = 10.0 * SCALE
"""The longest Wedge or a SIPp server may take to be ready."""
SIPP_TIMEOUT = 20.0 * SCALE
"""SIPp's own -timeout: it quits (and fails, -timeout_error) after this long."""

T1 = 0.05
"""The T1 the policies use: Timer B (64*T1) is 3.2 s, so timeout tests are short."""

# -- diagnostics attached to failed reports --------------------------------------

_DIAGNOSTICS = pytest.StashKey[list[Callable[[], tuple[str, str]]]]()
_MAX_SECTION = 30_000


def _attach(request: pytest.FixtureRequest, provider: Callable[[], tuple[str, str]]) -> None:
    """Add ``provider()`` (a title and a text) to the report if the test fails."""
    request.node.stash.setdefault(_DIAGNOSTICS, []).append(provider)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for provider in item.stash.get(_DIAGNOSTICS, []):
            try:
                title, text = provider()
            except Exception as exc:  # a diagnostic must never hide the failure
                title, text = "diagnostic", f"could not collect: {exc!r}"
            if len(text) > _MAX_SECTION:
                text = "[... cut ...]\n" + text[-_MAX_SECTION:]
            report.sections.append((f"{title} ({report.when})", text))
    return report


def _read(path: Path) -> str:
    """A file's text with its line ends as they are (SIP's CRLF kept)."""
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# -- ports -------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on ``host`` (SIP uses the same number for both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"no free port on {host}")


def port_bound(transport: str, port: int) -> bool:
    """Some socket listens on ``port`` (TCP LISTEN, or a bound UDP socket), per /proc/net.

    Read-only on purpose: probing with connect() or bind() would disturb the
    server or race with it.
    """
    tables = ("udp", "udp6") if transport == "udp" else ("tcp", "tcp6")
    wanted = f":{port:04X}"
    for table in tables:
        for line in _read(Path("/proc/net") / table).splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or not fields[1].endswith(wanted):
                continue
            if transport == "udp" or fields[3] == "0A":  # 0A: TCP_LISTEN
                return True
    return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(0.02)


# -- SIPp ----------------------------------------------------------------------------

_SIPP_TRANSPORTS = {"udp": "u1", "tcp": "t1", "u1": "u1", "t1": "t1", "tn": "tn", "un": "un"}

# "----------------------------------------------- 2024-01-01 12:00:00.000000"
# "UDP message sent (514 bytes):" / "TCP message received [313] bytes :"
_LOG_ENTRY = re.compile(
    r"^-{10,} (?P<stamp>[^\n]*)\n(?P<transport>[A-Z]+) message (?P<direction>sent|received) "
    r"(?:\(\d+ bytes\)|\[\d+\] bytes) ?:\n\n",
    re.M,
)


@dataclass(frozen=True)
class Logged:
    """One message from a SIPp -trace_msg log."""

    direction: str
    """``sent`` or ``received``."""
    transport: str
    """``UDP`` or ``TCP``: the transport SIPp saw it on."""
    text: str
    message: Request | Response | None
    """None if it did not parse (the text is kept)."""
    time: float | None = None
    """When SIPp logged it (seconds since the epoch), if the stamp could be read."""

    @property
    def request(self) -> Request:
        assert isinstance(self.message, Request), self.text
        return self.message

    @property
    def response(self) -> Response:
        assert isinstance(self.message, Response), self.text
        return self.message


def parse_sipp_log(text: str) -> list[Logged]:
    """The messages of a SIPp message log, in order."""
    entries = list(_LOG_ENTRY.finditer(text))
    logged = []
    for entry, following in zip(entries, [*entries[1:], None], strict=True):
        body = text[entry.end() : following.start() if following else len(text)]
        if body.endswith("\n") and not body.endswith("\r\n\r\n"):
            body = body[:-1]  # the log's own newline after each message
        message: Request | Response | None
        try:
            message = parse_message(body.encode("utf-8", "surrogateescape"))
        except ParseError:
            message = None
        try:
            stamp = datetime.strptime(entry["stamp"].strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            stamp = None
        logged.append(Logged(entry["direction"], entry["transport"], body, message, stamp))
    return logged


@dataclass
class SippResult:
    """What a finished SIPp run left: exit code, output and its message log."""

    returncode: int
    stdout: str
    stderr: str
    log: str
    errors: str

    @property
    def messages(self) -> list[Logged]:
        return parse_sipp_log(self.log)

    def find(
        self,
        direction: str,
        *,
        method: str | None = None,
        status: int | None = None,
        cseq_method: str | None = None,
    ) -> list[Logged]:
        """Logged messages going ``direction``: requests of ``method``, or responses
        with ``status`` (and ``cseq_method``: the method they answer)."""
        found = []
        for item in self.messages:
            message = item.message
            if item.direction != direction or message is None:
                continue
            if method is not None and not (
                isinstance(message, Request) and message.method == method
            ):
                continue
            if status is not None and not (
                isinstance(message, Response) and message.status == status
            ):
                continue
            if cseq_method is not None and message.cseq.method != cseq_method:
                continue
            found.append(item)
        return found

    def first(self, direction: str, **what: object) -> Logged:
        found = self.find(direction, **what)  # type: ignore[arg-type]
        assert found, f"no {direction} message {what} in the SIPp log:\n{self.log}"
        return found[0]

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\n--- stderr\n{self.stderr}\n--- errors\n{self.errors}"
            f"\n--- stdout (tail)\n{self.stdout[-3000:]}"
        )


class Sipp:
    """One SIPp process: a scenario from tests/e2e/sipp, bounded by -m and -timeout.

    Args:
        scenario: a file name in tests/e2e/sipp (``uac_call.xml``) or a path.
        workdir: where its logs go (and its working directory).
        transport: ``udp``/``tcp`` (SIPp's u1/t1) or a SIPp mode (``tn``...).
        local_port: the port it binds (``-p``); ``local_ip`` its address (``-i``).
        remote: ``host:port`` to call (a UAC); None for a server.
        calls: ``-m``: it exits after this many calls.
        rate: ``-r``: calls per second.
        service: the Request-URI user (``-s``).
        extra: more arguments (``-key name value`` ...).
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        workdir: Path,
        transport: str = "udp",
        local_port: int,
        local_ip: str = "127.0.0.1",
        remote: str | None = None,
        calls: int = 1,
        rate: float | None = None,
        service: str = "600",
        timeout: float = SIPP_TIMEOUT,
        extra: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        self.scenario = Path(scenario) if "/" in str(scenario) else SCENARIOS / scenario
        self.name = name or self.scenario.stem
        self.workdir = workdir
        self.transport = transport
        self.local_ip = local_ip
        self.local_port = local_port
        self.remote = remote
        self.timeout = timeout
        self.log_file = workdir / f"{self.name}_messages.log"
        self.error_file = workdir / f"{self.name}_errors.log"
        self.stdout_file = workdir / f"{self.name}.stdout"
        self.stderr_file = workdir / f"{self.name}.stderr"
        args = [
            SIPP or "sipp",
            "-sf",
            str(self.scenario),
            "-t",
            _SIPP_TRANSPORTS[transport],
            "-i",
            local_ip,
            "-p",
            str(local_port),
            "-s",
            service,
            "-m",
            str(calls),
            "-timeout",
            f"{max(1, round(timeout))}s",
            "-timeout_error",
            "-trace_msg",
            "-message_file",
            str(self.log_file),
            "-trace_err",
            "-error_file",
            str(self.error_file),
            "-nostdin",
        ]
        if rate is not None:
            args += ["-r", str(rate)]
        args += list(extra)
        if remote is not None:
            args.append(remote)
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.result: SippResult | None = None

    @property
    def is_server(self) -> bool:
        return self.remote is None

    def start(self) -> Sipp:
        with self.stdout_file.open("wb") as out, self.stderr_file.open("wb") as err:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        if self.is_server:
            kind = "udp" if self.transport in ("udp", "u1", "un") else "tcp"
            wait_until(
                lambda: self._exited() or port_bound(kind, self.local_port),
                STARTUP_TIMEOUT,
                f"SIPp {self.name} to listen on {kind} {self.local_port}",
            )
            if self._exited():
                raise RuntimeError(f"SIPp {self.name} exited at start:\n{self.diagnostics()[1]}")
        return self

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit (it does, by -m or -timeout); kill it past ``timeout``."""
        assert self.process is not None, "not started"
        limit = timeout if timeout is not None else self.timeout + 5.0
        try:
            code = self.process.wait(limit)
        except subprocess.TimeoutExpired:
            self.stop()
            code = self.process.wait(5)
        self.result = SippResult(
            code,
            _read(self.stdout_file),
            _read(self.stderr_file),
            _read(self.log_file),
            _read(self.error_file),
        )
        return self.result

    def stop(self) -> None:
        """Kill it if it still runs (its own process group: nothing else)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)

    def diagnostics(self) -> tuple[str, str]:
        code = self.process.poll() if self.process is not None else None
        return (
            f"SIPp {self.name}",
            f"$ {shlex.join(self.args)}\nexit: {code}\n"
            f"--- stderr\n{_read(self.stderr_file)}\n--- errors\n{_read(self.error_file)}\n"
            f"--- stdout (tail)\n{_read(self.stdout_file)[-2000:]}\n"
            f"--- messages\n{_read(self.log_file)}",
        )


SippFactory = Callable[..., Sipp]


@pytest.fixture
def sipp(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SippFactory]:
    """``sipp(scenario, local_port=..., remote=..., transport=...) -> Sipp``, started.

    A server (no ``remote``) is returned once its port is bound. Skips the test
    when SIPp is not installed.
    """
    if SIPP is None:
        pytest.skip("SIPp is not installed (no 'sipp' on PATH; Debian: apt-get install sip-tester)")
    started: list[Sipp] = []

    def start(scenario: str | Path, **options: object) -> Sipp:
        process = Sipp(scenario, workdir=tmp_path, **options)  # type: ignore[arg-type]
        if any(p.name == process.name for p in started):
            process = Sipp(
                scenario,
                workdir=tmp_path,
                **{**options, "name": f"{process.name}-{len(started)}"},  # type: ignore[arg-type]
            )
        started.append(process)
        _attach(request, process.diagnostics)
        return process.start()

    yield start
    for process in started:
        process.stop()


# -- certificates --------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files: a test CA and a server certificate for 127.0.0.1 and localhost."""

    ca: Path
    server_cert: Path
    server_key: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    now = datetime.now(UTC)
    folder = tmp_path_factory.mktemp("e2e-pki")
    ca, ca_key = make_ca("Wedge E2E Test CA", now=now)
    server, server_key = make_certificate(
        ca, ca_key, "localhost", ["localhost"], ["127.0.0.1"], now=now
    )
    paths = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    write_pem(paths.ca, cert_pem(ca))
    write_pem(paths.server_cert, cert_pem(server))
    write_pem(paths.server_key, key_pem(server_key))
    return paths


# -- Wedge ---------------------------------------------------------------------------


@dataclass
class ListenerSpec:
    name: str
    transport: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Policy:
    """A policy file, written as TOML; certificates are copied next to it."""

    listeners: list[ListenerSpec] = field(default_factory=list)
    trunks: list[dict[str, str | float | list[str]]] = field(default_factory=list)
    routes: list[dict[str, str]] = field(default_factory=list)
    t1: float = T1
    t4: float = 0.5
    """Timer K/I (T4) short too: a stopping Wedge drains transactions waiting on
    them, and SIGKILL comes 5 s after SIGTERM."""
    log_level: str = "info"
    workers: int = 1
    media: dict[str, str | float | list[str]] = field(default_factory=lambda: {"relay": "none"})
    """The ``[media]`` table. Signalling tests leave SDP alone (the relay's own tests
    turn it on), so what they assert about bodies is what the peers sent."""

    def listener(self, name: str) -> ListenerSpec:
        return next(spec for spec in self.listeners if spec.name == name)

    def toml(self) -> str:
        lines = [
            "[wedge]",
            f"t1 = {self.t1}",
            f"t4 = {self.t4}",
            f'log_level = "{self.log_level}"',
            f"workers = {self.workers}",
            "",
            "[media]",
            *(f"{key} = {_toml(value)}" for key, value in self.media.items()),
            "",
        ]
        for spec in self.listeners:
            lines += [
                "[[listener]]",
                f'name = "{spec.name}"',
                f'transport = "{spec.transport}"',
                f'bind = "{spec.address}"',
            ]
            if spec.transport in ("tls", "wss"):
                lines += ['cert = "server.pem"', 'key = "server.key"']
            lines.append("")
        for section, tables in (("trunk", self.trunks), ("route", self.routes)):
            for table in tables:
                lines.append(f"[[{section}]]")
                lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
                lines.append("")
        return "\n".join(lines)


def _toml(value: str | float | list[str]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def wedge_command(config: Path) -> list[str]:
    override = os.environ.get("WEDGE_E2E_COMMAND")
    if override:
        return [*shlex.split(override), "--config", str(config)]
    venv_python = ROOT / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    return [python, "-m", "gateway.cli", "run", "--config", str(config)]


class Wedge:
    """A running ``wedge run`` process."""

    def __init__(self, policy: Policy, folder: Path, pki: Pki | None) -> None:
        self.policy = policy
        self.folder = folder
        self.config = folder / "wedge.toml"
        self.stderr_file = folder / "wedge.stderr"
        self.stdout_file = folder / "wedge.stdout"
        if any(spec.transport in ("tls", "wss") for spec in policy.listeners):
            assert pki is not None
            shutil.copyfile(pki.server_cert, folder / "server.pem")
            shutil.copyfile(pki.server_key, folder / "server.key")
        self.config.write_text(policy.toml())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def stderr(self) -> str:
        return _read(self.stderr_file)

    def start(self) -> Wedge:
        with self.stdout_file.open("wb") as out, self.stderr_file.open("wb") as err:
            self.process = subprocess.Popen(
                wedge_command(self.config),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, STARTUP_TIMEOUT, "Wedge's listeners")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- wedge stderr\n{self.stderr}") from None
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"wedge exited with {self.process.returncode} at start:\n{self.stderr}"
            )
        log = self.stderr
        for spec in self.policy.listeners:
            if not re.search(rf"listening listener={re.escape(spec.name)}\b", log):
                return False
            if spec.transport != "udp" and not _accepts(spec.host, spec.port):
                return False
        # The server logs its trunks once the core is attached (input before that
        # is dropped); a build that does not say so gets a moment instead.
        if re.search(r"\btrunk=\S+ targets=", log):
            return True
        time.sleep(0.3)
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s: only this process (its own group)."""
        terminate(self.process)

    def diagnostics(self) -> tuple[str, str]:
        code = self.process.poll() if self.process is not None else None
        return (
            "wedge stderr",
            f"$ {shlex.join(wedge_command(self.config))}\nexit: {code}\n"
            f"--- policy\n{_read(self.config)}\n--- stderr\n{self.stderr}",
        )


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


WedgeFactory = Callable[[Policy], Wedge]


@pytest.fixture
def wedge(tmp_path: Path, request: pytest.FixtureRequest, pki: Pki) -> Iterator[WedgeFactory]:
    """``wedge(policy) -> Wedge``, started and ready; stopped at teardown."""
    started: list[Wedge] = []

    def start(policy: Policy) -> Wedge:
        folder = tmp_path / f"wedge{len(started)}"
        folder.mkdir()
        process = Wedge(policy, folder, pki)
        started.append(process)
        _attach(request, process.diagnostics)
        return process.start()

    yield start
    for process in started:
        process.stop()


# -- network namespaces and Kamailio (test_registrar.py, test_nat.py) -----------------

KAMAILIO = shutil.which("kamailio") or (
    "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
)
KAMAILIO_CONFIGS = Path(__file__).resolve().parent / "kamailio"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
_CLONE_NEWNET = 0x40000000


def netns_socket(netns: str | None, kind: int = socket.SOCK_DGRAM) -> socket.socket:
    """An IPv4 socket that lives in network namespace ``netns`` (None: this one).

    A socket belongs to the namespace it was made in, so a short-lived thread
    enters ``netns`` (setns(2) moves only the calling thread), makes it and ends;
    the test then uses the socket from anywhere.
    """
    if netns is None:
        return socket.socket(socket.AF_INET, kind)
    import ctypes
    import threading

    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}", "rb") as handle:
                if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns({netns}): {os.strerror(error)}")
            made.append(socket.socket(socket.AF_INET, kind))
        except BaseException as exc:  # handed to the caller
            made.append(exc)

    thread = threading.Thread(target=enter, name=f"netns-{netns}")
    thread.start()
    thread.join(STARTUP_TIMEOUT)
    if not made:
        raise TimeoutError(f"could not enter network namespace {netns}")
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    return result


def sip_options_ping(
    host: str, port: int, netns: str | None = None, timeout: float = 0.3
) -> bytes | None:
    """Send one OPTIONS (no user part) over UDP to ``host:port``; its reply, or None."""
    with netns_socket(netns) as sock:
        sock.bind((host if host.startswith("127.") else "0.0.0.0", 0))
        sock.settimeout(timeout)
        local_port = sock.getsockname()[1]
        call_id = f"ping-{os.getpid()}-{time.monotonic_ns()}"
        message = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK-{call_id};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{host}>;tag=probe\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        try:
            sock.sendto(message.encode(), (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:  # timeout, refused (ICMP port unreachable) ...
            return None
        return data


class Kamailio:
    """A running Kamailio (tests/e2e/kamailio/CFG) on one UDP address, in the foreground.

    Started with its own runtime and working directory in tmp_path, stderr to a
    log file there; ready once it answers an OPTIONS. Stopped by SIGTERM to its
    main process, then SIGKILL to its process group (its own session) after 5 s.
    """

    def __init__(
        self,
        folder: Path,
        *,
        host: str,
        port: int,
        config: str = "registrar.cfg",
        netns: str | None = None,
        defines: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.host = host
        self.port = port
        self.netns = netns
        self.config = KAMAILIO_CONFIGS / config
        self.log_file = folder / "kamailio.log"
        folder.mkdir(parents=True, exist_ok=True)
        args = [
            KAMAILIO or "kamailio",
            "-f", str(self.config),
            "-DD", "-E",
            "-Y", str(folder),
            "-w", str(folder),
            "-P", str(folder / "kamailio.pid"),
            "-m", "64", "-M", "8",
            "-A", f"KAM_IP={host}",
            "-A", f"KAM_PORT={port}",
            "-A", f'MODPATH="{KAMAILIO_MODULES}"',
        ]  # fmt: skip
        for name, value in (defines or {}).items():
            args += ["-A", f"{name}={value}"]
        self.args = (["ip", "netns", "exec", netns] if netns else []) + args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    @property
    def log(self) -> str:
        return _read(self.log_file)

    def start(self) -> Kamailio:
        def answers() -> bool:
            reply = sip_options_ping(self.host, self.port, self.netns)
            return reply is not None and reply.startswith(b"SIP/2.0 200")

        self.process = start_daemon(
            "kamailio",
            self.args,
            self.folder,
            self.log_file,
            answers,
            f"Kamailio to answer OPTIONS on {self.uri}",
        )
        return self

    def stop(self) -> None:
        terminate(self.process)
        # Children still exiting after the main process: the group is ours alone.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def diagnostics(self) -> tuple[str, str]:
        code = self.process.poll() if self.process is not None else None
        return (f"kamailio {self.uri}", f"$ {shlex.join(self.args)}\nexit: {code}\n{self.log}")


KamailioFactory = Callable[..., Kamailio]


@pytest.fixture
def kamailio(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KamailioFactory]:
    """``kamailio(host=..., port=..., netns=None, config="registrar.cfg") -> Kamailio``,
    started and answering OPTIONS; stopped at teardown. Skips without Kamailio."""
    if KAMAILIO is None:
        pytest.skip("Kamailio is not installed (no 'kamailio'; Debian: apt-get install kamailio)")
    started: list[Kamailio] = []

    def start(*, host: str = "127.0.0.1", port: int, **options: object) -> Kamailio:
        folder = tmp_path / f"kamailio{len(started)}"
        process = Kamailio(folder, host=host, port=port, **options)  # type: ignore[arg-type]
        started.append(process)
        _attach(request, process.diagnostics)
        return process.start()

    yield start
    for process in started:
        process.stop()


def start_daemon(
    name: str,
    args: Sequence[str],
    folder: Path,
    log_file: Path,
    answers: Callable[[], bool],
    what: str,
) -> subprocess.Popen[bytes]:
    """Start a peer daemon in a session of its own, its output in ``log_file``, and
    wait (bounded) until ``answers()``; a daemon that exits or stays silent is an
    error that carries its log."""
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            args,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode} at start:\n{_read(log_file)}"
            )
        return answers()

    try:
        wait_until(ready, STARTUP_TIMEOUT, what)
    except TimeoutError as exc:
        terminate(process)
        raise TimeoutError(f"{exc}\n--- {name} log\n{_read(log_file)}") from None
    return process


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL to its process group after 5 s (it was started in a
    session of its own, so the group holds nothing else)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
