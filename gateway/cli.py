"""The ``wedge`` command."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from certs.check import describe
from certs.generate import (
    cert_pem,
    key_pem,
    make_ca,
    make_certificate,
    spki_pin_sha256,
    write_pem,
)
from certs.load import CertificateError, read_certificates
from gateway.config import Config, ConfigError, Flags, config_with_flags, load_config
from gateway.logs import LEVELS, configure_logging
from gateway.server import serve_forever
from gateway.sip import ParseError, Request, parse_message
from gateway.tls import TlsManager, TlsSetupError


def _is_hostname(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return all(label and label.replace("-", "").isalnum() and label.isascii() for label in labels)


def _version() -> str:
    try:
        return version("wedge")
    except PackageNotFoundError:
        return "unknown"


def check_message(paths: list[Path]) -> int:
    """Parse SIP messages saved one per file and say what each is, or what is wrong.

    Exit status 0 when every file holds a valid message, 1 otherwise.
    """
    failures = 0
    for path in paths:
        try:
            message = parse_message(path.read_bytes())
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            failures += 1
            continue
        except ParseError as exc:
            print(f"{path}: invalid: {exc.reason} (a request gets {exc.status})")
            failures += 1
            continue
        start = (
            f"{message.method} {message.uri}"
            if isinstance(message, Request)
            else f"{message.status} {message.reason}"
        )
        print(
            f"{path}: valid: {start} call-id={message.call_id} cseq={message.cseq} "
            f"via={len(message.vias)} body={len(message.body)}B"
        )
    return 1 if failures else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_config(paths: list[Path]) -> int:
    """Load policy files and say "ok" with what each holds, or print every error,
    one per line (``file:line: key: message``).

    Exit status 0 when every file is a valid policy, 1 otherwise.
    """
    failures = 0
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            for error in exc.errors:
                print(error)
            failures += 1
            continue
        problems = _certificate_problems(config)
        if problems:
            for problem in problems:
                print(problem)
            failures += 1
            continue
        print(
            f"{path}: ok ({_count(len(config.listeners), 'listener')}, "
            f"{_count(len(config.trunks), 'trunk')}, {_count(len(config.routes), 'route')})"
        )
    return 1 if failures else 0


def _certificate_problems(config: Config) -> list[str]:
    """What Wedge would refuse to start with in the policy's certificate files."""
    if not any(listener.transport.secure for listener in config.listeners):
        return []
    try:
        TlsManager(config, now=lambda: datetime.now(UTC)).load()
    except TlsSetupError as exc:
        return exc.problems
    return []


def certs_pin(paths: list[Path]) -> int:
    """``wedge certs pin``: the RFC 7469 pin-sha256 of every certificate in the files."""
    failures = 0
    for path in paths:
        try:
            chain = read_certificates(path)
        except CertificateError as exc:
            print(f"wedge certs pin: {exc}", file=sys.stderr)
            failures += 1
            continue
        for cert in chain:
            print(f"{path}: {describe(cert)} pin-sha256={spki_pin_sha256(cert)}")
    return 1 if failures else 0


def certs_init(fqdn: str, out: Path) -> int:
    """``wedge certs init``: a development CA, and server and client certificates it signed."""
    if not _is_hostname(fqdn):
        print(f"wedge certs init: {fqdn!r} is not a host name", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    ca, ca_key = make_ca(f"Wedge development CA for {fqdn}", now=now)
    # serverAuth and clientAuth: an SBC presents one certificate both ways (mutual TLS).
    server, server_key = make_certificate(
        ca, ca_key, fqdn, [fqdn, "localhost"], ["127.0.0.1"], now=now, also_client=True
    )
    client, client_key = make_certificate(ca, ca_key, f"client.{fqdn}", now=now, client=True)
    files = {
        "ca.pem": cert_pem(ca),
        "ca.key": key_pem(ca_key),
        "server.pem": cert_pem(server) + cert_pem(ca),
        "server.key": key_pem(server_key),
        "client.pem": cert_pem(client) + cert_pem(ca),
        "client.key": key_pem(client_key),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_pem(out / name, data)
    except OSError as exc:
        print(f"wedge certs init: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(files)} to {out}/ (keys readable by you only)")
    print(f"server certificate for {fqdn}, localhost and 127.0.0.1")
    print(f"  SHA-256 fingerprint: {server.fingerprint(hashes.SHA256()).hex(':').upper()}")
    print(f"  pin-sha256 (RFC 7469): {spki_pin_sha256(server)}")
    print(f"trust {out / 'ca.pem'} in the browser or peer that connects to Wedge")
    return 0


def _media_flags(values: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """``--media`` values: the relay (builtin, none), or rtpengine instances.

    Raises:
        ValueError: an unknown relay, or rtpengine mixed with another relay.
    """
    relays = {value for value in values if not value.startswith("rtpengine:")}
    rtpengine = tuple(value.removeprefix("rtpengine:") for value in values if value not in relays)
    unknown = relays - {"builtin", "none"}
    if unknown:
        raise ValueError(
            f"--media {sorted(unknown)[0]!r}: expected builtin, none or rtpengine:HOST:PORT"
        )
    if len(relays) > 1 or (relays and rtpengine):
        raise ValueError("--media: give one relay (builtin, none), or rtpengine:HOST:PORT ones")
    return (relays.pop() if relays else None), rtpengine


def run(args: argparse.Namespace) -> int:
    """``wedge run``: serve until Ctrl-C or SIGTERM, then drain and stop."""
    try:
        media, rtpengine = _media_flags(args.media)
    except ValueError as exc:
        print(f"wedge run: {exc}", file=sys.stderr)
        return 2
    flags = Flags(
        listen=tuple(args.listen),
        pbx=args.pbx,
        fqdn=args.fqdn,
        cert=args.cert,
        key=args.key,
        log_level=args.log_level,
        log_format=args.log_format,
        media=media,
        media_rtpengine=rtpengine,
        media_fallback=args.media_fallback,
        media_ports=args.media_ports,
        media_advertise=args.media_advertise,
        workers=args.workers,
    )
    if args.config is None and not (flags.listen and flags.pbx):
        print("wedge run: give --config FILE, or at least --listen and --pbx", file=sys.stderr)
        return 2
    try:
        config = config_with_flags(args.config, flags)
    except ConfigError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    configure_logging(str(config.wedge.log_level), str(config.wedge.log_format))
    return serve_forever(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wedge", description="Wedge: a WebRTC-to-SIP gateway and session border controller."
    )
    parser.add_argument("--version", action="version", version=f"wedge {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check-message", help="parse SIP messages saved one per file and report on each"
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check_cfg = commands.add_parser(
        "check-config", help="validate policy files (TOML) and report every error"
    )
    check_cfg.add_argument("files", nargs="+", type=Path, metavar="FILE")
    serve = commands.add_parser("run", help="run the SBC from a policy file and/or flags")
    serve.add_argument("--config", type=Path, metavar="FILE", help="policy file (TOML)")
    serve.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="PROTO:HOST:PORT[;advertise=HOST:PORT]",
        help="a listener (udp, tcp, tls, ws, wss); repeatable; replaces the file's",
    )
    serve.add_argument("--pbx", metavar="SIP-URI", help="default route: where requests go")
    serve.add_argument("--fqdn", metavar="NAME", help="the name advertised on TLS/WSS listeners")
    serve.add_argument("--cert", metavar="PEM", help="certificate chain for TLS/WSS listeners")
    serve.add_argument("--key", metavar="PEM", help="private key for TLS/WSS listeners")
    serve.add_argument("--log-level", choices=LEVELS)
    serve.add_argument("--log-format", choices=("text", "json"))
    serve.add_argument(
        "--media",
        action="append",
        default=[],
        metavar="builtin|none|rtpengine:HOST:PORT[;weight=N]",
        help="the media relay (default builtin); none leaves SDP and media alone; "
        "rtpengine:HOST:PORT (repeatable) drives rtpengine instances over ng",
    )
    serve.add_argument(
        "--media-fallback",
        choices=("builtin", "none"),
        help="with rtpengine: the relay new calls use when no instance answers (default none)",
    )
    serve.add_argument("--media-ports", metavar="FIRST-LAST", help="relay UDP ports")
    serve.add_argument(
        "--media-advertise", metavar="IP", help="the relay's address in SDP (behind 1:1 NAT)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="SIP worker processes sharing the listeners (default 1); one per core",
    )
    from gateway.demo import run as demo  # imported here: only `wedge demo` needs it

    demo_parser = commands.add_parser(
        "demo",
        help="a browser softphone, Wedge and a test PBX, on https://127.0.0.1:8443/",
        description="Serve the web demo over HTTPS and SIP over WSS on one port, with "
        "Wedge's media relay and a built-in test PBX (echo, tone, DTMF, calls between "
        "browsers).",
    )
    demo.add_arguments(demo_parser)
    certs = commands.add_parser("certs", help="development certificates")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    init = certs_commands.add_parser(
        "init", help="make a development CA with server and client certificates"
    )
    init.add_argument("--fqdn", required=True, metavar="NAME", help="the server's host name")
    init.add_argument("--out", type=Path, default=Path("certs"), metavar="DIR")
    pin = certs_commands.add_parser(
        "pin", help="print the pin-sha256 (RFC 7469) of each certificate in PEM files"
    )
    pin.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "certs":
        if args.certs_command == "pin":
            return certs_pin(args.files)
        return certs_init(args.fqdn, args.out)
    if args.command == "demo":
        return demo.main(args)
    if args.command == "check-message":
        return check_message(args.files)
    return check_config(args.files)


if __name__ == "__main__":
    sys.exit(main())
