"""Headless Chromium for the end-to-end tests: a JsSIP softphone driven from pytest.

The pieces, all on 127.0.0.1::

    pytest --stdin/stdout JSON lines--> node tests/e2e/browser/driver.mjs (playwright-core)
                                          --CDP pipe--> /usr/bin/chromium --headless ...
                                                          pages load phone.html from the
                                                          HTTP server below, and speak
                                                          SIP over WebSocket to Wedge

- A small threaded HTTP server on a free port serves ``tests/e2e/browser/`` at ``/``,
  ``web-demo/node_modules`` at ``/node_modules`` and ``web-demo/dist`` (JsSIP, bundled
  by ``npm ci``) at ``/dist``.
- :func:`browser` (the fixture) starts the server and the driver, which launches
  Debian's Chromium once with a fresh profile, a fake microphone and no prompts;
  each :meth:`Browser.open` is a page in a browser context of its own (a phone).
- :meth:`Page.eval` evaluates a JavaScript expression in the page and returns its
  value (promises awaited) as JSON; :meth:`Page.wait_for` polls one until it
  satisfies a predicate. ``phone.html`` puts the softphone on ``window.phone``
  (see ``phone.js`` for its methods); :meth:`Page.phone` calls one of them.

Nothing is skipped: without Chromium, Node or web-demo's node_modules the fixture
fails and says to run ``./scripts/test``, which installs them. On failure the report
gets the driver's log (the pages' console and every WebSocket frame), each page's
``phone.state()`` and a screenshot of each page (its path). Every wait is bounded,
stretched by ``WEDGE_TEST_TIMEOUT_SCALE``.

Use it from a test module with ``from tests.e2e.browser import Browser, browser_fixture``
(the import registers the fixture, named ``browser``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.e2e import conftest
from tests.e2e.conftest import ROOT, SCALE, _read, terminate

__all__ = ["Browser", "BrowserError", "Page", "browser_fixture"]

PAGES = Path(__file__).resolve().parent / "browser"
WEB_DEMO = ROOT / "web-demo"
DRIVER = PAGES / "driver.mjs"
CHROMIUM = os.environ.get("WEDGE_CHROMIUM", "/usr/bin/chromium")

LAUNCH_TIMEOUT = 30.0 * SCALE
"""The longest the driver may take to start Chromium."""
EVAL_TIMEOUT = 10.0 * SCALE
"""The longest one evaluation may take (a page loading, a promise settling)."""
WAIT_TIMEOUT = 10.0 * SCALE
"""The longest :meth:`Page.wait_for` polls, unless told otherwise."""
CLOSE_TIMEOUT = 10.0 * SCALE
NODE_MAJOR = 20
"""The oldest Node.js playwright-core supports."""
POLL = 0.1

FIX = "run ./scripts/test once (it installs Chromium and web-demo's npm packages)"


class BrowserError(Exception):
    """The driver or a page reported an error (the message is the browser's)."""


# -- the HTTP server -----------------------------------------------------------------


class _Files(SimpleHTTPRequestHandler):
    """tests/e2e/browser at /, web-demo's node_modules and dist under their names."""

    mounts: ClassVar[dict[str, Path]] = {
        "/node_modules/": WEB_DEMO / "node_modules",
        "/dist/": WEB_DEMO / "dist",
    }

    def __init__(self, *args: Any, requests: list[str], **kwargs: Any) -> None:
        self.requests = requests
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, folder in self.mounts.items():
            if clean.startswith(prefix):
                inner = super().translate_path("/" + clean[len(prefix) :])
                return str(folder / Path(inner).relative_to(PAGES))
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        self.requests.append(format % args)


class FileServer:
    """The threaded HTTP server on 127.0.0.1, on a port of its own choosing."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, requests=self.requests))
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(CLOSE_TIMEOUT)


# -- the driver ----------------------------------------------------------------------


class Driver:
    """``node driver.mjs``: commands out on stdin, answers back on stdout by id.

    Commands may overlap (one thread per waiting caller); a reader thread hands
    each answer to whoever sent its id.
    """

    def __init__(self, log_file: Path, args: tuple[str, ...] = ()) -> None:
        self.log_file = log_file
        # Chromium's profile and its singleton socket go here: a short path, as a
        # Unix socket's path must fit in 108 bytes (pytest's tmp_path may not).
        self.tmp = Path(tempfile.mkdtemp(prefix="wedge-chromium-"))
        env = {**os.environ, "WEDGE_CHROMIUM": CHROMIUM, "TMPDIR": str(self.tmp)}
        if args:  # more Chromium flags (driver.mjs appends WEDGE_CHROMIUM_ARGS)
            env["WEDGE_CHROMIUM_ARGS"] = " ".join((env.get("WEDGE_CHROMIUM_ARGS", ""), *args))
        with log_file.open("wb") as log:
            self.process = subprocess.Popen(
                ["node", str(DRIVER)],
                cwd=PAGES,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self._lock = threading.Lock()
        self._next_id = 0
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._ready = threading.Event()
        self.version: str | None = None
        self._gone: str | None = None
        self._reader = threading.Thread(target=self._read, name="browser-driver", daemon=True)
        self._reader.start()
        if not self._ready.wait(LAUNCH_TIMEOUT) or self.version is None:
            reason = self._gone or f"not ready after {LAUNCH_TIMEOUT:.0f} s"
            self.stop()
            raise BrowserError(f"the browser driver did not start: {reason}\n{self.log}")

    @property
    def log(self) -> str:
        return _read(self.log_file)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                reply = json.loads(raw)
            except ValueError:
                continue  # not ours: a stray line from a library
            if "ready" in reply:
                self.version = str(reply["ready"])
                self._ready.set()
                continue
            with self._lock:
                waiter = self._waiting.pop(reply.get("id"), None)
            if waiter is not None:
                waiter[1].append(reply)
                waiter[0].set()
        code = self.process.wait()
        with self._lock:
            self._gone = f"the driver exited with {code}"
            waiting, self._waiting = self._waiting, {}
        self._ready.set()
        for event, _ in waiting.values():
            event.set()

    def send(self, command: dict[str, Any], timeout: float) -> Any:
        """Send ``command``; its ``value``, or :class:`BrowserError` with its ``error``."""
        event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            if self._gone:
                raise BrowserError(f"{self._gone}; cannot {command.get('cmd')}")
            self._next_id += 1
            ident = self._next_id
            self._waiting[ident] = (event, box)
            line = json.dumps({**command, "id": ident}) + "\n"
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(line.encode())
                self.process.stdin.flush()
            except OSError as exc:
                del self._waiting[ident]
                raise BrowserError(f"the driver is gone: {exc}") from None
        if not event.wait(timeout):
            with self._lock:
                self._waiting.pop(ident, None)
            raise TimeoutError(f"no answer from the browser within {timeout:.1f} s to {command}")
        if not box:
            raise BrowserError(f"{self._gone}; no answer to {command}")
        reply = box[0]
        if "error" in reply:
            raise BrowserError(str(reply["error"]))
        return reply.get("value")

    def stop(self) -> None:
        """Ask the driver to close the browser; then SIGTERM, then SIGKILL the group."""
        if self.process.poll() is None and not self._gone:
            with contextlib.suppress(BrowserError, TimeoutError):
                self.send({"cmd": "close"}, CLOSE_TIMEOUT)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(CLOSE_TIMEOUT)
        terminate(self.process)
        self._reader.join(CLOSE_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- pages and the browser -------------------------------------------------------------


class Page:
    """One page (a browser context of its own): ``phone.html`` unless told otherwise."""

    def __init__(self, browser: Browser, name: str) -> None:
        self.browser = browser
        self.name = name

    def eval(self, expr: str, timeout: float = EVAL_TIMEOUT) -> Any:
        """The value of JavaScript expression ``expr`` in the page, as JSON (a promise
        is awaited). :class:`BrowserError` if it throws or rejects."""
        try:
            return self.browser.driver.send(
                {"cmd": "eval", "page": self.name, "expr": expr, "timeout": timeout},
                timeout + 2.0,
            )
        except BrowserError as exc:
            raise BrowserError(f"{self.name}: {expr}: {exc}") from None

    def phone(self, method: str, *args: Any, timeout: float = EVAL_TIMEOUT) -> Any:
        """``phone.METHOD(ARGS...)`` in the page, the arguments passed as JSON."""
        arguments = ", ".join(json.dumps(arg) for arg in args)
        return self.eval(f"phone.{method}({arguments})", timeout)

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[Any], bool] = bool,
        timeout: float = WAIT_TIMEOUT,
        what: str | None = None,
    ) -> Any:
        """Evaluate ``expr`` every 0.1 s until ``predicate(value)`` holds; that value.

        TimeoutError after ``timeout`` seconds, naming the last value (and the
        page's last error, when there is a phone).
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            value = self.eval(expr, max(1.0, min(EVAL_TIMEOUT, left)))
            if predicate(value):
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name}: timed out after {timeout:.1f} s waiting for "
                    f"{what or expr}; last value: {json.dumps(value)[:2000]}"
                    f"{self._last_error()}"
                )
            time.sleep(POLL)

    def _last_error(self) -> str:
        with contextlib.suppress(Exception):
            error = self.eval("window.phone ? phone.state().lastError : null", 2.0)
            if error:
                return f"; the phone's last error: {json.dumps(error)}"
        return ""

    def screenshot(self, path: Path) -> Path:
        self.browser.driver.send(
            {"cmd": "screenshot", "page": self.name, "path": str(path)}, EVAL_TIMEOUT
        )
        return path

    def close(self) -> None:
        self.browser.driver.send({"cmd": "close_page", "page": self.name}, EVAL_TIMEOUT)
        self.browser.pages.pop(self.name, None)


class Browser:
    """Chromium with its driver and the HTTP server the pages come from."""

    def __init__(self, folder: Path, args: tuple[str, ...] = ()) -> None:
        """``args``: more Chromium flags, e.g. ``--ignore-certificate-errors`` for a
        self-signed HTTPS/WSS server."""
        self.folder = folder
        self.server = FileServer()
        try:
            self.driver = Driver(folder / "browser.log", args)
        except BaseException:
            self.server.stop()
            raise
        self.pages: dict[str, Page] = {}

    @property
    def url(self) -> str:
        """Where ``tests/e2e/browser/`` is served: ``http://127.0.0.1:PORT/``."""
        return self.server.url

    @property
    def version(self) -> str | None:
        return self.driver.version

    def open(self, name: str, path: str = "phone.html") -> Page:
        """A new page called ``name`` (a fresh browser context) showing ``path`` (under
        :attr:`url`, or an absolute URL)."""
        url = path if "://" in path else self.url + path
        self.driver.send(
            {"cmd": "open", "page": name, "url": url, "timeout": EVAL_TIMEOUT},
            EVAL_TIMEOUT + 2.0,
        )
        page = Page(self, name)
        self.pages[name] = page
        return page

    def close(self) -> None:
        try:
            self.driver.stop()
        finally:
            self.server.stop()

    def diagnostics(self) -> tuple[str, str]:
        """Each page's phone state and a screenshot of it; the driver's log."""
        parts = [f"chromium {self.version} ({CHROMIUM}), pages from {self.url}"]
        for name, page in list(self.pages.items()):
            try:
                shot = page.screenshot(self.folder / f"screenshot-{name}.png")
                parts.append(f"--- page {name}: screenshot {shot}")
            except Exception as exc:  # the browser may be the thing that failed
                parts.append(f"--- page {name}: no screenshot ({exc})")
            try:
                state = page.eval("window.phone ? phone.state() : null", 3.0)
                parts.append(json.dumps(state, indent=1)[-12_000:])
            except Exception as exc:
                parts.append(f"no phone state ({exc})")
        parts.append("--- HTTP requests\n" + "\n".join(self.server.requests[-50:]))
        parts.append("--- driver log (console, WebSocket frames)\n" + self.driver.log)
        return ("browser", "\n".join(parts))


def attach(request: pytest.FixtureRequest, provider: Callable[[], tuple[str, str]]) -> None:
    """conftest's ``_attach``, from the conftest module pytest itself loaded.

    Under ``--import-mode=importlib`` pytest loads tests/e2e/conftest.py under another
    module name than ``tests.e2e.conftest``, which this module imports: two copies,
    each with its own stash key, and only the loaded one's report hook runs.
    """
    path = Path(conftest.__file__).resolve()
    for plugin in request.config.pluginmanager.get_plugins():
        plugin_file = getattr(plugin, "__file__", None)
        if plugin_file and Path(plugin_file).resolve() == path and hasattr(plugin, "_attach"):
            plugin._attach(request, provider)
            return
    conftest._attach(request, provider)


def missing_prerequisites() -> list[str]:
    """What the browser tests need and this machine lacks."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Chromium ({CHROMIUM}; Debian package chromium)")
    node = shutil.which("node")
    if node is None:
        missing.append("Node.js (node)")
    else:
        version = subprocess.run(
            [node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not version or int(version.split(".")[0]) < NODE_MAJOR:
            missing.append(f"Node.js {NODE_MAJOR} or newer for playwright-core (found {version!r})")
    for needed in ("node_modules/playwright-core", "node_modules/jssip", "dist/jssip.js"):
        if not (WEB_DEMO / needed).exists():
            missing.append(f"web-demo/{needed} (npm ci in web-demo)")
    return missing


@pytest.fixture(name="browser")
def browser_fixture(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A running headless Chromium (:class:`Browser`); closed at teardown.

    Fails (never skips) when Chromium, Node or web-demo's packages are missing.
    """
    missing = missing_prerequisites()
    if missing:
        pytest.fail(f"the browser tests need {', '.join(missing)}: {FIX}", pytrace=False)
    folder = tmp_path / "browser"
    folder.mkdir()
    browser = Browser(folder)
    attach(request, browser.diagnostics)
    try:
        yield browser
    finally:
        browser.close()
