"""``wedge demo`` end to end: the web demo in headless Chromium, Wedge and its test PBX.

The network, all on loopback, all from one command::

    Chromium (web-demo/index.html from https://127.0.0.1:P/, fake microphone)
      --WSS 127.0.0.1:P-->  Wedge (relay: DTLS-SRTP <-> RTP)  --UDP-->  demo PBX
                                                                      600 echo, 601 tone,
                                                                      602 DTMF, users

``wedge demo`` runs as a subprocess (``python -m gateway.cli demo``) on a free port,
its certificate in a temporary data directory; Chromium gets
``--ignore-certificate-errors`` for that self-signed certificate. The pages are
driven the way a person would use them (the form, the buttons, the dial pad);
what they show is read back from the DOM and from ``wedgeDemo.state()`` and
``wedgeDemo.stats()`` (getStats). A screenshot of a page during a call is kept as a
test artifact (and, with ``WEDGE_UPDATE_SCREENSHOT=1``, copied to
``docs/demo-call.png`` for the README).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Browser, Page, attach, missing_prerequisites
from tests.e2e.conftest import ROOT, SCALE, _read, free_port, terminate

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
STARTUP_TIMEOUT = 15.0 * SCALE
UI_TIMEOUT = 10.0 * SCALE
"""The longest the page may take to show a registration, a call state or a message."""
AUDIO_TIMEOUT = 10.0 * SCALE
GONE_TIMEOUT = 15.0 * SCALE
"""A closed browser is noticed by the PBX's in-dialog OPTIONS (every 5 s) at worst."""
SCREENSHOT = ROOT / "docs" / "demo-call.png"
CHROMIUM_ARGS = ("--ignore-certificate-errors",)


# -- the demo process ------------------------------------------------------------------


class Demo:
    """``wedge demo`` as a subprocess; its stdout is the banner, stderr its log."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port(LOCAL)
        media = free_port(LOCAL)
        first = min(media - media % 2, 65000)
        args = [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--port",
            str(self.port),
            "--data-dir",
            str(folder / "data"),
            "--media-ports",
            f"{first}-{first + 199}",
        ]
        if users is not None:
            users_file = folder / "users.toml"
            lines = ["[users]"] + [f'{name} = "{password}"' for name, password in users.items()]
            users_file.write_text("\n".join(lines) + "\n")
            args += ["--users", str(users_file)]
        self.stdout_file = folder / "demo.out"
        self.stderr_file = folder / "demo.err"
        with self.stdout_file.open("wb") as out, self.stderr_file.open("wb") as err:
            self.process = subprocess.Popen(
                args, cwd=ROOT, stdout=out, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "Stop with Ctrl-C." not in self.stdout:
            if self.process.poll() is not None or time.monotonic() > deadline:
                terminate(self.process)
                raise RuntimeError(f"wedge demo did not start:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"https://{LOCAL}:{self.port}/"

    @property
    def stdout(self) -> str:
        return _read(self.stdout_file)

    @property
    def stderr(self) -> str:
        return _read(self.stderr_file)

    def wait_log(self, pattern: str, count: int = 1, timeout: float = UI_TIMEOUT) -> list[str]:
        """Lines of the log matching ``pattern``, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.stderr, re.M)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> int | None:
        terminate(self.process)
        return self.process.returncode


def start_demo(folder: Path, users: dict[str, str] | None = None) -> Demo:
    """A demo, started again (up to three times) if a free port was taken meanwhile."""
    for attempt in range(3):
        try:
            return Demo(folder / f"try{attempt}", users)
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    process = start_demo(tmp_path_factory.mktemp("demo"))
    yield process
    assert process.stop() == 0, process.stderr[-3000:]


@pytest.fixture
def browser(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Chromium that accepts the demo's self-signed certificate."""
    missing = missing_prerequisites()
    if missing:
        pytest.fail(f"the browser tests need {', '.join(missing)}: run ./scripts/test")
    folder = tmp_path / "browser"
    folder.mkdir()
    chromium = Browser(folder, CHROMIUM_ARGS)
    attach(request, chromium.diagnostics)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(autouse=True)
def _demo_log(request: pytest.FixtureRequest) -> None:
    """On failure, the demo's log goes into the report."""
    if "demo" in request.fixturenames:
        process: Demo = request.getfixturevalue("demo")
        attach(request, lambda: ("wedge demo", process.stdout + process.stderr[-20_000:]))


# -- driving the page --------------------------------------------------------------------


class Softphone:
    """One page of the web demo, used through its form and buttons."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.page.eval("wedgeDemo.state()")
        return state

    def texts(self) -> dict[str, Any]:
        texts: dict[str, Any] = self.state()["texts"]
        return texts

    def fill(self, **fields: str) -> None:
        assignments = "".join(
            f"document.getElementById({json.dumps(key)}).value = {json.dumps(value)};"
            for key, value in fields.items()
        )
        self.page.eval(f"(() => {{ {assignments} return true; }})()")

    def click(self, element: str) -> None:
        self.page.eval(
            f"(() => {{ const e = document.getElementById({json.dumps(element)});"
            f" if (e.disabled || e.hidden) throw new Error('#{element} is not usable');"
            " e.click(); return true; })()"
        )

    def submit(self, form: str) -> None:
        self.page.eval(f"document.getElementById({json.dumps(form)}).requestSubmit(), true")

    def register(self, name: str, password: str = "") -> None:
        self.fill(name=name, password=password)
        self.submit("register-form")

    def wait(
        self, what: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = UI_TIMEOUT
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.page.wait_for("wedgeDemo.state()", predicate, timeout, what)
        return result

    def registered(self, name: str) -> None:
        self.register(name)
        self.wait(f"{name} to be registered", lambda s: s["registration"] == "registered")

    def dial(self, number: str) -> None:
        self.fill(number=number)
        self.submit("dial-form")

    def call_status(self, status: str, timeout: float = UI_TIMEOUT) -> dict[str, Any]:
        return self.wait(
            f"the call to be {status}",
            lambda s: (s["call"] or {}).get("status") == status,
            timeout,
        )

    def no_call(self, timeout: float = UI_TIMEOUT) -> dict[str, Any]:
        return self.wait("the call to end", lambda s: s["call"] is None, timeout)

    def message(self, pattern: str, timeout: float = UI_TIMEOUT) -> str:
        state = self.wait(
            f"a message matching {pattern!r}",
            lambda s: bool(s["texts"]["message"] and re.search(pattern, s["texts"]["message"])),
            timeout,
        )
        return str(state["texts"]["message"])

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.page.eval("wedgeDemo.stats()") or {}
        return stats

    def received(self) -> tuple[int, float]:
        inbound = self.stats().get("inbound") or {}
        return int(inbound.get("packetsReceived") or 0), float(inbound.get("totalAudioEnergy") or 0)

    def hears(self, what: str) -> None:
        """Audio arrives: packets, and sound in them (the energy grows)."""
        self.page.wait_for(
            "wedgeDemo.stats().then(s => s && s.inbound ? s.inbound.packetsReceived : 0)",
            lambda packets: packets > 25,
            AUDIO_TIMEOUT,
            f"{what}: audio packets",
        )
        packets, energy = self.received()
        deadline = time.monotonic() + AUDIO_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(0.5)
            later_packets, later_energy = self.received()
            if later_packets > packets + 20 and later_energy > energy:
                return
        raise AssertionError(f"{what}: no sound ({self.stats()})")


def open_phone(browser: Browser, demo: Demo, name: str) -> Softphone:
    page = browser.open(name, demo.url)
    page.wait_for("typeof wedgeDemo === 'object' && typeof JsSIP === 'object'", what="the page")
    return Softphone(page)


def keep_screenshot(page: Page, folder: Path) -> Path:
    """A screenshot as a test artifact; with ``WEDGE_UPDATE_SCREENSHOT=1`` also the
    README's (docs/demo-call.png), so a test run leaves the tree as it found it."""
    shot = page.screenshot(folder / "demo-call.png")
    if os.environ.get("WEDGE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    return shot


# -- the tests ---------------------------------------------------------------------------


def test_echo_call_hears_itself(browser: Browser, demo: Demo, tmp_path: Path) -> None:
    alice = open_phone(browser, demo, "alice-echo")
    alice.registered("alice")
    assert "Registered as alice" in alice.texts()["registration"]
    alice.dial("600")
    alice.call_status("up")
    alice.hears("the echo")
    stats = alice.stats()
    assert stats["codec"]["mimeType"] in ("audio/PCMU", "audio/PCMA"), stats
    assert stats["transport"]["dtlsState"] == "connected", stats
    assert stats["outbound"]["packetsSent"] > 0, stats
    assert alice.state()["level"] > 0, "the microphone meter stayed at zero"
    shown = alice.page.eval("document.getElementById('stat-codec').textContent")
    assert re.match(r"PCM[UA] 8 kHz", shown), shown
    assert "In a call with 600" in alice.texts()["call"]
    shot = alice.page.screenshot(tmp_path / "echo.png")
    assert shot.stat().st_size > 10_000
    alice.click("hangup")
    alice.no_call()
    assert demo.wait_log(r"media ended call-id=\S+"), demo.stderr[-3000:]
    alice.click("unregister")
    alice.wait("alice to unregister", lambda s: s["registration"] == "none")


def test_dtmf_readback(browser: Browser, demo: Demo) -> None:
    carol = open_phone(browser, demo, "carol")
    carol.registered("carol")
    carol.dial("602")
    carol.call_status("up")
    carol.hears("602's prompt")
    for key in "415":
        carol.page.eval(f"document.querySelector('.keypad [data-key=\"{key}\"]').click(), true")
        time.sleep(0.3)
    carol.page.eval("document.querySelector('.keypad [data-key=\"#\"]').click(), true")
    state = carol.wait("602 to read the keys back", lambda s: "415" in s["texts"]["heard"])
    assert state["texts"]["heard"] == "The PBX heard: 415"
    assert demo.wait_log(r"602 read back call-id=\S+ digits=415")
    carol.click("hangup")
    carol.no_call()


def test_two_browsers_call_each_other(browser: Browser, demo: Demo, tmp_path: Path) -> None:
    alice = open_phone(browser, demo, "alice")
    bob = open_phone(browser, demo, "bob")
    alice.registered("alice")
    bob.registered("bob")
    alice.dial("bob")
    ringing = bob.call_status("incoming")
    assert ringing["texts"]["incoming"] == "alice is calling you."
    alice.call_status("ringing")
    bob.click("accept")
    bob.call_status("up")
    alice.call_status("up")
    alice.hears("alice hearing bob")
    bob.hears("bob hearing alice")
    assert "In a call with bob" in alice.texts()["call"]
    keep_screenshot(alice.page, tmp_path)

    alice.click("hold")
    bob.wait("bob to see the hold", lambda s: (s["call"] or {}).get("remoteHold") is True)
    alice.click("hold")  # now "Resume"
    bob.wait("bob to see the resume", lambda s: (s["call"] or {}).get("remoteHold") is False)
    alice.click("mute")
    alice.wait("alice muted", lambda s: (s["call"] or {}).get("muted") is True)

    ended = len(demo.wait_log(r"media ended call-id=\S+", 0))
    alice.click("hangup")
    alice.no_call()
    bob.no_call()
    assert re.search(r"alice hung up", bob.message("hung up"))
    # Two calls through Wedge (alice -> PBX, PBX -> bob), both freed by the relay.
    found = demo.wait_log(r"media ended call-id=\S+", ended + 2)
    assert len(found) == ended + 2, demo.stderr[-4000:]


def test_failures_are_explained(browser: Browser, demo: Demo) -> None:
    dave = open_phone(browser, demo, "dave")
    dave.register("600")
    text = dave.message("service extension")
    assert "The PBX refused to register 600 (403 Reserved Name)" in text, text
    assert dave.state()["registration"] == "failed"

    dave.registered("dave")
    dave.dial("699")
    text = dave.message("not found")
    assert "699 was not found (404" in text and "there is no extension 699" in text, text
    dave.dial("nobody")
    text = dave.message("nobody called nobody is registered")
    assert "(404" in text, text

    # The same name from a second page, while the first is alive: refused.
    second = open_phone(browser, demo, "dave-again")
    second.register("dave")
    text = second.message("already in use")
    assert "(403 Name In Use)" in text, text
    assert dave.state()["registration"] == "registered"

    # The microphone refused: the call does not start, and the page says why.
    dave.page.eval(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('denied', 'NotAllowedError')), true"
    )
    dave.dial("600")
    assert "Microphone access was denied" in dave.message("Microphone")
    assert dave.state()["call"] is None

    # Nothing listening where the page is told to connect.
    lost = open_phone(browser, demo, "lost")
    closed = free_port(LOCAL)
    lost.fill(server=f"wss://{LOCAL}:{closed}/")
    lost.register("erin")
    text = lost.message("Cannot connect to Wedge")
    assert "not running there" in text and "certificate" in text, text


@pytest.mark.parametrize("how", ["closed", "crashed"])
def test_browser_closing_mid_call(browser: Browser, demo: Demo, how: str) -> None:
    """A page that goes away in a call: closed (its pagehide hangs up and unregisters)
    or gone without a word (no BYE: the PBX's in-dialog OPTIONS finds it gone, as
    Wedge answers 430 Flow Failed for its closed WebSocket)."""
    caller, callee = f"grace-{how}", f"frank-{how}"
    frank = open_phone(browser, demo, callee)
    grace = open_phone(browser, demo, caller)
    frank.registered(callee)
    grace.registered(caller)
    grace.dial(callee)
    frank.call_status("incoming")
    frank.click("accept")
    grace.call_status("up")
    grace.hears(f"{caller} hearing {callee}")
    ended = len(demo.wait_log(r"media ended call-id=\S+", 0))
    if how == "crashed":
        # Whatever the page tries to say as it goes (BYE, un-REGISTER) never leaves.
        frank.page.eval("WebSocket.prototype.send = function () {}, true")
    frank.page.close()
    grace.no_call(GONE_TIMEOUT)
    text = grace.message(callee)
    expected = f"{callee}'s browser went away" if how == "crashed" else f"{callee} hung up"
    assert expected in text, text
    # Wedge freed both calls' relay sessions, and the PBX forgot the browser.
    found = demo.wait_log(r"media ended call-id=\S+", ended + 2, GONE_TIMEOUT)
    assert len(found) == ended + 2, demo.stderr[-4000:]
    grace.dial(callee)
    assert "(404" in grace.message(f"nobody called {callee}")


def test_wrong_password_and_users_file(browser: Browser, tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "users", {"alice": "wonderland", "bob": "builder"})
    try:
        page = open_phone(browser, demo, "users")
        page.register("alice", "rabbit")
        text = page.message("password")
        assert "Wrong password for alice (403 Wrong Password)" in text, text
        page.register("mallory", "x")
        assert "no user called mallory" in page.message("no user called")
        page.register("alice", "wonderland")
        page.wait("alice to be registered", lambda s: s["registration"] == "registered")
        page.dial("bob")
        assert "bob is not available right now (480" in page.message("not available")
        page.dial("600")
        page.call_status("up")
        page.hears("the echo, authenticated")
        page.click("hangup")
        page.no_call()
    finally:
        code = demo.stop()
    assert code == 0, demo.stderr[-3000:]


def test_page_is_served_with_its_files(demo: Demo) -> None:
    """HTTPS and WSS share the port: files by GET, SIP after an upgrade (the browser
    tests above); here, what plain GETs get."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(Path(demo.folder) / "data" / "demo-cert.pem"))

    def get(path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(demo.url + path, context=context, timeout=5) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    status, headers, body = get("")
    assert status == 200 and b"Wedge demo phone" in body
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, headers, _ = get("src/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, _, body = get("dist/jssip.js")
    assert status == 200 and len(body) > 100_000
    for hidden in ("package.json", "node_modules/jssip/package.json", "../pyproject.toml", ".x"):
        assert get(hidden)[0] == 404, hidden
    assert os.access(Path(demo.folder) / "data" / "demo-key.pem", os.R_OK)
    assert oct((Path(demo.folder) / "data" / "demo-key.pem").stat().st_mode & 0o777) == "0o600"
