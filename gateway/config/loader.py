"""Reading a policy: TOML text and command-line flags in, a Config or ConfigErrors out.
The document as a whole is read here; each section by its own module (wedge, media, ...)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.errors import ConfigError
from gateway.config.listeners import read_listeners
from gateway.config.locator import KeyPath, Locator
from gateway.config.media import read_media
from gateway.config.routes import read_routes
from gateway.config.schema import (
    MAX_CONFIG_CHARS,
    Config,
    MediaRelay,
    MediaSettings,
    Transport,
)
from gateway.config.tables import SECTIONS, Report, quote, show, suggest
from gateway.config.trunks import read_trunks
from gateway.config.wedge import read_wedge

_TOP_KEYS = ("wedge", "media", *SECTIONS)


def _entries(
    report: Report, data: dict[str, object], section: str
) -> list[tuple[KeyPath, dict[str, object]]]:
    """The tables of ``[[section]]`` with their paths; anything else is reported."""
    value = data.get(section)
    if value is None:
        return []
    if not isinstance(value, list):
        report.error((section,), f"expected an array of tables ([[{section}]]), got {show(value)}")
        return []
    entries: list[tuple[KeyPath, dict[str, object]]] = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            entries.append(((section, i), entry))
        else:
            report.error((section, i), f"expected a table, got {show(entry)}")
    return entries


def _check_names(report: Report, entries: Sequence[tuple[KeyPath, dict[str, object]]]) -> None:
    first: dict[str, KeyPath] = {}
    for path, data in entries:
        name = data.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            line = report.line((*first[name], "name"))
            at = f" at line {line}" if line is not None else ""
            report.error((*path, "name"), f"{quote(name)} is already used{at}")
        else:
            first[name] = path


def _raw_names(entries: Sequence[tuple[KeyPath, dict[str, object]]]) -> list[str]:
    """Every string name, valid or not, so one bad name is not also a bad reference."""
    return [name for _, data in entries if isinstance(name := data.get("name"), str)]


def _syntax_error(source: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """tomllib says ``Message (at line L, column C)``; turn that into our format."""
    message = str(exc)
    line: int | None = None
    column: int | None = None
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if match is not None:
        message, line, column = match.group(1), int(match.group(2)), int(match.group(3))
    elif message.endswith(" (at end of document)"):
        message = message.removesuffix(" (at end of document)")
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return ConfigError(
        source, line, "", f"invalid TOML: {message[:1].lower()}{message[1:]}", column
    )


def _parse(
    text: str, source: str, base_dir: Path, flags: Flags | None = None
) -> tuple[Config, Report]:
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(
            source, None, "", f"over {MAX_CONFIG_CHARS} characters; is this a policy file?"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(source, text, exc) from None
    except RecursionError:
        raise ConfigError(source, None, "", "invalid TOML: nested too deeply") from None
    except ValueError:
        # tomllib lets int() refuse integers over sys.get_int_max_str_digits().
        digits = re.search(r"[0-9A-Fa-f_]{4000,}", text)
        line = None if digits is None else text.count("\n", 0, digits.start()) + 1
        raise ConfigError(
            source, line, "", "invalid TOML: an integer with too many digits"
        ) from None

    from_flags = _apply_flags(data, flags) if flags is not None else frozenset()
    report = Report(source, Locator(text), data, from_flags)
    for key in data:
        if key not in _TOP_KEYS:
            report.error(
                (key,),
                "unknown key"
                + (suggest(key, _TOP_KEYS) or f"; expected one of {', '.join(_TOP_KEYS)}"),
            )

    wedge, fqdn_written = read_wedge(report, data.get("wedge"))
    sections = {section: _entries(report, data, section) for section in SECTIONS}
    for entries in sections.values():
        _check_names(report, entries)

    listeners = read_listeners(
        report, sections["listener"], base_dir, None if wedge is None else wedge.fqdn, fqdn_written
    )
    media = read_media(report, data.get("media"), listeners[0][1] if listeners else None)
    if data.get("listener", []) == []:
        report.error(("listener",), "at least one [[listener]] is required")

    # References are checked against every written name, so a listener with a bad
    # bind is still one a trunk may name: one mistake, one error.
    listener_transports: dict[str, Transport | None] = dict.fromkeys(
        _raw_names(sections["listener"])
    )
    listener_transports.update({listener.name: listener.transport for _, listener in listeners})
    trunks = read_trunks(report, sections["trunk"], listener_transports, base_dir)
    listener_names = list(listener_transports)
    trunk_names = _raw_names(sections["trunk"])
    routes = read_routes(report, sections["route"], listener_names, trunk_names)
    if wedge is not None and media is not None:
        _check_workers(report, wedge.workers, media)
    report.raise_if_any()
    assert wedge is not None and media is not None
    return (
        Config(
            wedge=wedge,
            media=media,
            listeners=tuple(listener for _, listener in listeners),
            trunks=tuple(trunks),
            routes=tuple(routes),
            source=source,
        ),
        report,
    )


def _check_workers(report: Report, workers: int, media: MediaSettings) -> None:
    """Each SIP worker relays its calls' media on its own slice of the ports."""
    builtin = media.relay is MediaRelay.BUILTIN or media.fallback is MediaRelay.BUILTIN
    if workers == 1 or not builtin:
        return
    first, last = media.ports
    needed = workers * media.workers * 4
    if last - first + 1 < needed:
        report.error(
            ("wedge", "workers"),
            f"{workers} workers with {media.workers} relay workers each need at least "
            f"{needed} media ports; [media] ports has {last - first + 1}",
        )


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def parse_config(text: str, source: str, base_dir: Path) -> Config:
    """Validate a policy file's text. Pure: certificate files are not looked at.

    Args:
        text: the TOML text.
        source: the file name error messages start with.
        base_dir: the directory relative ``cert`` and ``key`` paths are resolved
            against (the policy file's directory); joined, never resolved.

    Raises:
        ConfigError: the text is not TOML, or breaks the schema. Every schema
            problem is found in one pass; several come as :class:`ConfigErrors`.
    """
    return _parse(text, source, base_dir)[0]


def load_config(path: Path) -> Config:
    """Read and validate a policy file, and check that its certificate and key
    files exist (readable files are the TLS layer's to check).

    Raises:
        ConfigError: as :func:`parse_config`, or the file cannot be read, is not
            UTF-8, or names certificate files that do not exist.
    """
    return config_with_flags(path, Flags())


@dataclass(frozen=True, slots=True, kw_only=True)
class Flags:
    """``wedge run``'s command-line settings; each one given overrides the file."""

    listen: tuple[str, ...] = ()
    """``PROTO:HOST:PORT[;advertise=HOST[:PORT]]`` each; any replace the file's listeners."""
    pbx: str | None = None
    """A SIP URI: the trunk ``pbx`` (replacing one of that name), and a last route
    to it for whatever no other route takes."""
    fqdn: str | None = None
    cert: str | None = None
    """Certificate chain for every tls/wss listener."""
    key: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    media: str | None = None
    """``builtin``, ``none`` or ``rtpengine``."""
    media_rtpengine: tuple[str, ...] = ()
    """``HOST:PORT[;weight=N]`` each: rtpengine instances (and relay ``rtpengine``)."""
    media_fallback: str | None = None
    """``builtin`` or ``none``: what new calls use when no rtpengine answers."""
    media_ports: str | None = None
    """``FIRST-LAST``."""
    media_advertise: str | None = None
    workers: int | None = None


def config_with_flags(path: Path | None, flags: Flags) -> Config:
    """A policy file (if any) with the command line's settings on top, validated,
    with its certificate files checked.

    Raises:
        ConfigError: as :func:`load_config`; entries that came from the command line
            are named by the flag (``listener "udp-1"``) and have no line.
    """
    if path is None:
        source, text, base_dir = "command line", "", Path.cwd()
    else:
        source, text, base_dir = str(path), _read(path), path.parent
    config, report = _parse(text, source, base_dir, flags)
    for i, listener in enumerate(config.listeners):
        for key, file in (("cert", listener.cert), ("key", listener.key)):
            if file is not None and not file.is_file():
                report.error(
                    ("listener", i, key),
                    f"no such file: {file} (`wedge certs init` makes development ones)",
                )
        files: list[tuple[KeyPath, Path | None]] = [
            (("listener", i, "key_passphrase_file"), listener.key_passphrase_file),
            (("listener", i, "client_ca"), listener.client_ca),
        ]
        for j, entry in enumerate(listener.sni):
            files += [
                (("listener", i, "sni", j, "cert"), entry.cert),
                (("listener", i, "sni", j, "key"), entry.key),
                (("listener", i, "sni", j, "key_passphrase_file"), entry.key_passphrase_file),
            ]
        _check_files(report, files)
    for i, trunk in enumerate(config.trunks):
        tls = trunk.tls
        if tls is None:
            continue
        identity = tls.identity
        _check_files(
            report,
            [
                (("trunk", i, "tls_ca"), tls.ca),
                (("trunk", i, "tls_cert"), identity.cert if identity else None),
                (("trunk", i, "tls_key"), identity.key if identity else None),
                (
                    ("trunk", i, "tls_key_passphrase_file"),
                    identity.key_passphrase_file if identity else None,
                ),
            ],
        )
    report.raise_if_any()
    return config


def _check_files(report: Report, files: Sequence[tuple[KeyPath, Path | None]]) -> None:
    """Every named file exists (what is in them is the TLS layer's to check)."""
    for path, file in files:
        if file is not None and not file.is_file():
            report.error(path, f"no such file: {file}")


def _read(path: Path) -> str:
    source = str(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_CONFIG_CHARS * 4 + 1)  # UTF-8: at most 4 bytes a char
    except OSError as exc:
        raise ConfigError(source, None, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, line, "", "not UTF-8 text (TOML is UTF-8)") from None


def _apply_flags(data: dict[str, Any], flags: Flags) -> frozenset[tuple[str, int]]:
    """Write the command line's settings into the policy's TOML data.

    Returns the ``(section, index)`` of every entry the flags wrote, so errors in
    them are not pinned on a line of the file.
    """
    written: set[tuple[str, int]] = set()
    wedge = data.setdefault("wedge", {})
    if isinstance(wedge, dict):
        for key, value in (
            ("fqdn", flags.fqdn),
            ("log_level", flags.log_level),
            ("log_format", flags.log_format),
            ("workers", flags.workers),
        ):
            if value is not None:
                wedge[key] = value
    media = data.setdefault("media", {})
    if isinstance(media, dict):
        for key, value in (
            ("relay", flags.media),
            ("ports", flags.media_ports),
            ("advertise", flags.media_advertise),
            ("fallback", flags.media_fallback),
        ):
            if value is not None:
                media[key] = value
        if flags.media_rtpengine:
            media["relay"] = "rtpengine"
            media["rtpengine"] = list(flags.media_rtpengine)
    if flags.listen:
        data["listener"] = [_listen_flag(text, i) for i, text in enumerate(flags.listen, 1)]
        written.update(("listener", i) for i in range(len(flags.listen)))
    if flags.cert is not None or flags.key is not None:
        for listener in data.get("listener", []):
            if isinstance(listener, dict) and listener.get("transport") in ("tls", "wss"):
                listener["cert"] = flags.cert
                listener["key"] = flags.key
    if flags.pbx is not None:
        trunks = [
            t for t in data.get("trunk", []) if not (isinstance(t, dict) and t.get("name") == "pbx")
        ]
        trunks.append({"name": "pbx", "uri": flags.pbx})
        data["trunk"] = trunks
        written.add(("trunk", len(trunks) - 1))
        routes = data.setdefault("route", [])
        if not any(isinstance(r, dict) and set(r) <= {"name", "to_trunk"} for r in routes):
            routes.append({"name": "default", "to_trunk": "pbx"})
            written.add(("route", len(routes) - 1))
    return frozenset(written)


def _listen_flag(text: str, number: int) -> dict[str, Any]:
    """``udp:127.0.0.1:5060;advertise=sbc.example.com:5060`` as a ``[[listener]]`` table."""
    spec, _, options = text.partition(";")
    transport, _, bind = spec.partition(":")
    table: dict[str, Any] = {"name": f"{transport}-{number}", "transport": transport, "bind": bind}
    for option in filter(None, options.split(";")):
        key, _, value = option.partition("=")
        table[key.strip()] = value.strip()
    return table
