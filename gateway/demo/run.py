"""``wedge demo``: Wedge, its web demo and a test PBX, in one process, from one command.

The pieces, on this machine::

    browser --HTTPS--> https://HOST:PORT/        the web demo's files   (one listener:
    browser --WSS----> wss://HOST:PORT/          SIP over WebSocket      "browsers")
                           Wedge: proxy core, built-in media relay
                           --UDP--> listener "pbx", 127.0.0.1:ephemeral
                                    --UDP--> the demo PBX, 127.0.0.1:ephemeral

Wedge is configured in code (a :class:`~gateway.config.Config`, as a policy file
would make it) and started with :func:`gateway.server.start`; the PBX
(:mod:`gateway.demo.pbx`) is a trunk like any other. Nothing is read from outside
the package but the web demo's files (``web-demo/``, with JsSIP bundled by
``npm ci`` there), an optional users file, and the certificate in the data
directory (:mod:`gateway.demo.certificate`).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import signal
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.config import (
    DEFAULT_IDLE_TIMEOUT,
    Config,
    Listener,
    LogLevel,
    MediaProfile,
    MediaRelay,
    MediaSettings,
    Route,
    Transport,
    Trunk,
    TrunkTarget,
    WedgeSettings,
)
from gateway.demo.certificate import DemoCertificate, data_dir, ensure_certificate
from gateway.demo.players import ECHO_DELAY, READBACK_PAUSE
from gateway.demo.registrar import valid_name
from gateway.demo.settings import PbxSettings
from gateway.demo.shell import PbxShell, start_pbx
from gateway.logs import configure_logging
from gateway.server import Server, start
from gateway.sip.flow import Address
from gateway.transport.static import static_files

__all__ = ["DEFAULT_PORT", "add_arguments", "demo_config", "main"]

logger = logging.getLogger("wedge.demo")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
PBX_HOST = "127.0.0.1"
"""The PBX and Wedge's listener toward it stay on loopback, whatever ``--host`` is."""
BROWSERS = "browsers"
"""The name of the HTTPS/WSS listener."""

FIX_NPM = "run `npm ci` in web-demo/ (it installs JsSIP from npm and bundles it into dist/)"


class DemoError(Exception):
    """Something the user has to fix before the demo can start; the message says what."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="the IP address browsers reach the demo on (default %(default)s; "
        "a LAN address lets other machines in)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTPS and WSS port")
    parser.add_argument(
        "--users",
        type=Path,
        metavar="FILE",
        help='a TOML file with a [users] table (name = "password"): only these may '
        "register, with Digest passwords (default: any name, no password)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where the certificate is kept (default $XDG_DATA_HOME/wedge/demo or "
        "~/.local/share/wedge/demo)",
    )
    parser.add_argument(
        "--web-root", type=Path, metavar="DIR", help="the web demo's folder (default: web-demo/)"
    )
    parser.add_argument("--media-ports", metavar="FIRST-LAST", help="relay UDP ports")
    parser.add_argument("--log-level", choices=[level.value for level in LogLevel], default="info")


@dataclass(frozen=True, slots=True)
class _Options:
    host: str
    port: int
    users: Mapping[str, str] | None
    web_root: Path
    media_ports: tuple[int, int] | None
    log_level: LogLevel


def main(args: argparse.Namespace) -> int:
    """``wedge demo``: serve until Ctrl-C or SIGTERM."""
    try:
        options = _options(args)
        folder = args.data_dir or data_dir()
        try:
            cert = ensure_certificate(folder, options.host, datetime.now(UTC))
        except OSError as exc:
            raise DemoError(f"cannot keep the certificate in {folder}: {exc}") from None
    except DemoError as exc:
        print(f"wedge demo: {exc}", file=sys.stderr)
        return 2
    configure_logging(options.log_level.value)
    # One line per file served would drown the call log.
    logging.getLogger("wedge.transport.websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(_serve(options, cert))
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (is another wedge demo running? --port picks another port)"
        print(f"wedge demo: cannot start: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 1
    return 0


def _options(args: argparse.Namespace) -> _Options:
    try:
        host = str(ipaddress.ip_address(args.host))
    except ValueError:
        raise DemoError(f"--host {args.host!r}: give an IP address of this machine") from None
    if ipaddress.ip_address(host).is_unspecified:
        raise DemoError(
            f"--host {host}: give the address browsers will use (e.g. this machine's LAN "
            "address), not a wildcard: the media relay writes it into SDP"
        )
    if not 0 <= args.port <= 65535:
        raise DemoError(f"--port {args.port}: not a port")
    ports = None
    if args.media_ports:
        first, _, last = args.media_ports.partition("-")
        if not (first.isdigit() and last.isdigit() and 1024 <= int(first) < int(last) <= 65535):
            raise DemoError(f"--media-ports {args.media_ports!r}: expected FIRST-LAST")
        ports = (int(first), int(last))
    return _Options(
        host,
        args.port,
        _load_users(args.users) if args.users else None,
        _web_root(args.web_root),
        ports,
        LogLevel(args.log_level),
    )


def _load_users(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise DemoError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DemoError(f"{path}: not TOML: {exc}") from None
    table = data.get("users")
    if not isinstance(table, dict) or not table:
        raise DemoError(f'{path}: expected a [users] table of name = "password" lines')
    users: dict[str, str] = {}
    for name, password in table.items():
        if not valid_name(name):
            raise DemoError(f"{path}: users.{name}: a name is letters, digits, '.', '_', '-'")
        if not isinstance(password, str) or not password:
            raise DemoError(f"{path}: users.{name}: the password must be a non-empty string")
        users[name] = password
    return users


def _web_root(given: Path | None) -> Path:
    if given is not None:
        candidates = [given]
    else:
        # A source checkout (pip install -e, or python -m from the tree), else the
        # web-demo/ folder of the directory the command runs in.
        candidates = [Path(__file__).resolve().parents[2] / "web-demo", Path.cwd() / "web-demo"]
    for root in candidates:
        if (root / "index.html").is_file():
            if not (root / "dist" / "jssip.js").is_file():
                raise DemoError(f"{root / 'dist' / 'jssip.js'} is missing: {FIX_NPM}")
            return root
    where = " or ".join(str(root) for root in candidates)
    raise DemoError(f"no web demo at {where}: run from Wedge's source tree, or give --web-root")


def demo_config(
    host: str,
    port: int,
    cert: DemoCertificate,
    pbx: Address,
    *,
    media_ports: tuple[int, int] | None = None,
    log_level: LogLevel = LogLevel.INFO,
) -> Config:
    """Wedge's configuration for the demo, as a policy file would give it: the
    built-in relay bound to ``host``; a WSS listener ``browsers`` on ``host:port``
    with the demo's certificate (the web demo's files are served on it too); a UDP
    listener ``pbx`` on an ephemeral loopback port; the trunk ``demo-pbx`` at ``pbx``,
    sent to from that listener; and one route from ``browsers`` to that trunk."""
    advertise = f"[{host}]" if ":" in host else host
    pbx_uri_host = f"[{pbx[0]}]" if ":" in pbx[0] else pbx[0]
    media = MediaSettings(relay=MediaRelay.BUILTIN, bind=host)
    if media_ports is not None:
        media = MediaSettings(relay=MediaRelay.BUILTIN, bind=host, ports=media_ports)
    return Config(
        wedge=WedgeSettings(log_level=log_level),
        media=media,
        listeners=(
            Listener(
                name=BROWSERS,
                transport=Transport.WSS,
                bind_host=host,
                bind_port=port,
                advertise_host=advertise,
                advertise_port=port,
                cert=cert.cert,
                key=cert.key,
                idle_timeout=DEFAULT_IDLE_TIMEOUT,
            ),
            Listener(
                name="pbx",
                transport=Transport.UDP,
                bind_host=PBX_HOST,
                bind_port=0,
                advertise_host=PBX_HOST,
                advertise_port=0,
            ),
        ),
        trunks=(
            Trunk(
                name="demo-pbx",
                uri=f"sip:{pbx_uri_host}:{pbx[1]}",
                transport=Transport.UDP,
                media_profile=MediaProfile.AVP,
                listener="pbx",
                targets=(TrunkTarget(host=pbx[0], port=pbx[1]),),
            ),
        ),
        routes=(Route(name="browsers-to-pbx", from_listener=BROWSERS, to_trunk="demo-pbx"),),
        source="wedge demo",
    )


async def _serve(options: _Options, cert: DemoCertificate) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    pbx = await start_pbx(PBX_HOST, PbxSettings(users=options.users))
    server: Server | None = None
    try:
        config = demo_config(
            options.host,
            options.port,
            cert,
            pbx.local,
            media_ports=options.media_ports,
            log_level=options.log_level,
        )
        server = await start(config, http={BROWSERS: static_files(options.web_root)})
        port = next(lst.local[1] for lst in server.listeners if lst.name == BROWSERS)
        print(_banner(options, cert, port, pbx), flush=True)
        await stop.wait()
        logger.info("stopping")
    finally:
        if server is not None:
            await server.stop(drain=1.0)
        await pbx.close()


def _banner(options: _Options, cert: DemoCertificate, port: int, pbx: PbxShell) -> str:
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"https://{host}:{port}/"
    if options.users is None:
        users = "any name, no password"
    else:
        users = f"{', '.join(sorted(options.users))} (passwords from the users file)"
    made = "made now" if cert.created else "made on an earlier run"
    return f"""
Wedge demo: a browser softphone, Wedge, and a test PBX.

  Open {url} in Chromium or Firefox; a second tab is a second phone.

  Users:  {users}
  Dial:   600  echo: you hear yourself, {ECHO_DELAY:g} s later
          601  a chime and a tone
          602  DTMF: press keys, pause {READBACK_PAUSE:g} s (or press #), hear them read back
          a registered name (alice, bob, ...): rings that browser

  Certificate (self-signed, {made}): {cert.cert}
    SHA-256 fingerprint: {cert.fingerprint}
    The browser warns once that it does not know the certificate: compare the
    fingerprint it shows with this one, then proceed. To trust it for good:
      Chromium/Chrome on Linux:
        certutil -d sql:$HOME/.pki/nssdb -A -t "P,," -n wedge-demo -i {cert.cert}
      Firefox: Settings > Privacy & Security > Certificates > View Certificates >
        Servers > Add Exception > {url}

  SIP: {url.replace("https", "wss")} (WebSocket) -> Wedge -> udp:{pbx.local[0]}:{pbx.local[1]} (PBX)
  Media: browser DTLS-SRTP <-> Wedge's relay <-> RTP to the PBX

  Stop with Ctrl-C.
"""
