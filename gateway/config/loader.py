"""Reading a policy: TOML text and command-line flags in, a Config or ConfigErrors out."""

from __future__ import annotations

import difflib
import enum
import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from certs.pinning import parse_pin
from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.locator import BARE_KEY, KeyPath, Locator
from gateway.config.schema import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MEDIA_PROFILES,
    MAX_CONFIG_CHARS,
    MAX_DURATION,
    CertFiles,
    Config,
    Listener,
    LogFormat,
    LogLevel,
    MediaProfile,
    MediaRelay,
    MediaSettings,
    Route,
    RtpengineInstance,
    TlsVersion,
    Transport,
    Trunk,
    TrunkTarget,
    TrunkTls,
    WedgeSettings,
)
from gateway.sip.errors import ParseError
from gateway.sip.uri import SipUri, parse_uri
from sdp.offer_answer import CodecSpec

# ---------------------------------------------------------------------------
# Error collection and typed reads
# ---------------------------------------------------------------------------

_SECTIONS = ("listener", "trunk", "route")
_TOP_KEYS = ("wedge", "media", *_SECTIONS)
_WEDGE_KEYS = (
    "fqdn",
    "log_level",
    "log_format",
    "t1",
    "t2",
    "t4",
    "dns_servers",
    "nat_keepalive",
    "user_agent",
    "cert_warn_days",
    "cert_watch",
)
_MEDIA_KEYS = (
    "relay",
    "bind",
    "advertise",
    "ports",
    "timeout",
    "hold_timeout",
    "workers",
    "rtpengine",
    "fallback",
)
_LISTENER_KEYS = (
    "name",
    "transport",
    "bind",
    "advertise",
    "cert",
    "key",
    "origins",
    "idle_timeout",
    "key_passphrase_env",
    "key_passphrase_file",
    "sni",
    "tls_min_version",
    "ciphers",
    "client_ca",
    "require_client_cert",
    "x_ms_sbc",
    "rewrite_contact",
)
# Listener keys only tls and wss listeners take.
_SECURE_LISTENER_KEYS = (
    "key_passphrase_env",
    "key_passphrase_file",
    "sni",
    "tls_min_version",
    "ciphers",
    "client_ca",
    "require_client_cert",
)
_SNI_KEYS = ("cert", "key", "key_passphrase_env", "key_passphrase_file")
DEFAULT_X_MS_SBC = "Wedge/SBC/{version}"
"""``x_ms_sbc = true``: Microsoft's vendor/model/firmware triple for Wedge."""
_TRUNK_KEYS = (
    "name",
    "uri",
    "transport",
    "media_profile",
    "codecs",
    "rtpengine_flags",
    "listener",
    "targets",
    "options_interval",
    "options_timeout",
    "down_after",
    "up_after",
    "tls_ca",
    "tls_name",
    "tls_cert",
    "tls_key",
    "tls_key_passphrase_env",
    "tls_key_passphrase_file",
    "tls_min_version",
    "ciphers",
    "require_client_cert",
    "pin_sha256",
)
# Trunk keys only tls trunks take.
_TLS_TRUNK_KEYS = _TRUNK_KEYS[_TRUNK_KEYS.index("tls_ca") :]
_TARGET_KEYS = ("address", "priority", "weight", "tls_name")
# An environment variable name (POSIX portable).
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DEFAULT_OPTIONS_INTERVAL_TLS = 60.0
"""Seconds between OPTIONS probes of a tls trunk's targets when the policy says
nothing: Microsoft's Direct Routing counts a trunk healthy while it sees OPTIONS
every minute or so."""
_ROUTE_KEYS = (
    "name",
    "from_listener",
    "from_trunk",
    "from_source",
    "user_prefix",
    "domain",
    "to_trunk",
    "strip_prefix",
    "add_prefix",
    "e164",
)

# Names are for logs, metrics and references: letters, digits and . _ - only.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _quote(text: str) -> str:
    """A name or key in double quotes, escaped so it is one printable ASCII line."""
    return json.dumps(text)


def _show(value: object) -> str:
    """A TOML value as an error message shows it: strings in quotes, cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean "x"?`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {_quote(close[0])}?" if close else ""


class _Invalid(Exception):
    """A value is wrong; the message says how. Caught and reported by the caller."""


class _Report:
    """Collects errors for one document, naming keys and finding their lines."""

    def __init__(
        self,
        source: str,
        locator: Locator | None,
        data: dict[str, object],
        from_flags: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.source = source
        self.locator = locator
        # Entries the command line wrote: they have no line in the file.
        self.from_flags = from_flags
        self.errors: list[ConfigError] = []
        # Entries are named by their name when it is a valid one.
        self.names: dict[tuple[str, int], str] = {}
        for section in _SECTIONS:
            entries = data.get(section)
            if not isinstance(entries, list):
                continue
            for i, entry in enumerate(entries):
                if isinstance(entry, dict):
                    name = entry.get("name")
                    if isinstance(name, str) and _NAME_RE.fullmatch(name):
                        self.names[(section, i)] = name

    def key(self, path: KeyPath) -> str:
        """``listener "browsers".origins[2]`` for ``("listener", 0, "origins", 1)``."""
        parts: list[str] = []
        for i, part in enumerate(path):
            if isinstance(part, int):
                name = self.names.get((str(path[0]), part)) if i == 1 else None
                parts[-1] += f" {_quote(name)}" if name is not None else f"[{part + 1}]"
            else:
                parts.append(part if BARE_KEY.fullmatch(part) else _quote(part))
        return ".".join(parts)

    def line(self, path: KeyPath) -> int | None:
        if self.locator is None or tuple(path[:2]) in self.from_flags:
            return None
        return self.locator.line(path)

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.source, self.line(path), self.key(path), message))

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        # Stable: errors on one line keep the order they were found in.
        errors = sorted(self.errors, key=lambda e: math.inf if e.line is None else e.line)
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)


_E = TypeVar("_E", bound=enum.StrEnum)


class _Table:
    """Typed reads from one table. Every problem becomes an error and the read
    returns None (absent or wrong); :meth:`finish` reports keys the schema lacks."""

    def __init__(
        self, report: _Report, path: KeyPath, data: dict[str, object], known: Sequence[str]
    ) -> None:
        self.report = report
        self.path = path
        self.data = data
        self.known = known

    def error(self, key: str, message: str) -> None:
        self.report.error((*self.path, key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, required: bool) -> object | None:
        if key in self.data:
            return self.data[key]
        if required:
            self.error(key, "missing required key")
        return None

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {_show(value)}")
            return None
        if not value:
            self.error(key, "empty; leave the key out instead" if not required else "empty")
            return None
        return value

    def name(self, key: str = "name", *, required: bool = True) -> str | None:
        value = self.string(key, required=required)
        if value is not None and _NAME_RE.fullmatch(value) is None:
            self.error(
                key,
                "expected a name of letters, digits, '.', '_' and '-' (at most 64, "
                f"starting with a letter or digit), got {_show(value)}",
            )
            return None
        return value

    def choice(self, key: str, kind: type[_E], *, required: bool = False) -> _E | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            choices = [member.value for member in kind]
            self.error(
                key,
                f"expected one of {', '.join(choices)}, got {_show(value)}"
                + _suggest(value, choices),
            )
            return None

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.raw(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(key, f"expected a whole number from {low} to {high}, got {_show(value)}")
            return None
        return value

    def seconds(self, key: str) -> float | None:
        value = self.raw(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"expected a number of seconds, got {_show(value)}")
            return None
        if not 0 < value <= MAX_DURATION:  # also false for nan
            self.error(key, f"expected seconds in (0, {MAX_DURATION:g}], got {_show(value)}")
            return None
        return float(value)

    def strings(self, key: str, convert: Callable[[str], str]) -> list[str]:
        """An array of strings, each passed through ``convert`` (which raises
        :class:`_Invalid`); bad items are reported, in order, and left out."""
        value = self.raw(key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"expected an array of strings, got {_show(value)}")
            return []
        items: list[str] = []
        for i, item in enumerate(value):
            try:
                if not isinstance(item, str):
                    raise _Invalid(f"expected a string, got {_show(item)}")
                if not item:
                    raise _Invalid("empty")
                items.append(convert(item))
            except _Invalid as exc:
                self.report.error((*self.path, key, i), str(exc))
        return items

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                suggestion = _suggest(key, self.known)
                self.error(
                    key,
                    "unknown key" + (suggestion or f"; expected one of {', '.join(self.known)}"),
                )


# ---------------------------------------------------------------------------
# Hosts and ports
# ---------------------------------------------------------------------------

# RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel [ "." ]; a top label
# starts with a letter, so "10.0.0.300" is neither a name nor an address.
_HOSTNAME_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)
_PORT_RE = re.compile(r"[0-9]{1,5}")


def _is_hostname(text: str) -> bool:
    return len(text) <= 254 and _HOSTNAME_RE.fullmatch(text) is not None


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _port(text: str) -> int:
    if _PORT_RE.fullmatch(text) is None or not 1 <= int(text) <= 65535:
        raise _Invalid(f"expected a port 1..65535, got {_show(text)}")
    return int(text)


def _split_host_port(text: str) -> tuple[str, bool, str | None]:
    """``host[:port]`` into (host without brackets, is IPv6, port text or None)."""
    if text.startswith("["):
        close = text.find("]")
        rest = text[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            raise _Invalid(f"expected [IPv6 address] or [IPv6 address]:port, got {_show(text)}")
        if _ipv6(text[1:close]) is None:
            raise _Invalid(f"not an IPv6 address: {_show(text[1:close])}")
        return text[1:close], True, rest[1:] if rest else None
    if text.count(":") > 1:
        raise _Invalid(f"an IPv6 address needs brackets, as in [::1]:5060; got {_show(text)}")
    host, colon, port = text.partition(":")
    return host, False, port if colon else None


def _parse_bind(text: str) -> tuple[str, int]:
    host, is_v6, port = _split_host_port(text)
    if port is None:
        raise _Invalid(f"expected host:port, got {_show(text)}")
    if not is_v6 and _ipv4(host) is None:
        raise _Invalid(
            "expected an IP address to bind (0.0.0.0 or [::] for every interface), "
            f"got {_show(host)}"
        )
    return host, _port(port)


def _dns_server(text: str) -> str:
    """``ip:port`` of a DNS server: checked here, parsed where the settings are built."""
    _parse_target(text)
    return text


def _parse_target(text: str) -> tuple[str, int]:
    """A trunk target's ``ip:port`` (a name belongs in the trunk's ``uri``, for DNS)."""
    host, is_v6, port = _split_host_port(text)
    if port is None:
        raise _Invalid(f"expected ip:port, got {_show(text)}")
    if not is_v6 and _ipv4(host) is None:
        raise _Invalid(
            f"expected an IP address (give a host name as the trunk's uri), got {_show(host)}"
        )
    return host, _port(port)


def _parse_advertise(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with the host in SIP header form (IPv6 bracketed)."""
    host, is_v6, port = _split_host_port(text)
    if is_v6:
        host = f"[{host}]"
    elif _ipv4(host) is None and not _is_hostname(host):
        raise _Invalid(f"expected a host name or IP address, got {_show(host)}")
    return host, None if port is None else _port(port)


def _host_key(host: str) -> str:
    """A host in the form routes compare: IPv6 bracketed and compressed, IPv4
    canonical, names lower case without a trailing dot (RFC 3261 §19.1.4)."""
    if host.startswith("[") and host.endswith("]"):
        v6 = _ipv6(host[1:-1])
        if v6 is not None:
            return f"[{v6.compressed}]"
    elif ":" in host:
        v6 = _ipv6(host)
        if v6 is not None:
            return f"[{v6.compressed}]"
    v4 = _ipv4(host)
    if v4 is not None:
        return str(v4)
    return host.lower().removesuffix(".")


def _is_host(text: str) -> bool:
    """A host name, an IPv4 address, or an IPv6 address with or without brackets."""
    if text.startswith("[") and text.endswith("]"):
        return _ipv6(text[1:-1]) is not None
    return _is_hostname(text) or _ipv4(text) is not None or _ipv6(text) is not None


# RFC 6454 §6.1: an origin is scheme "://" host [ ":" port ], nothing after it.
_ORIGIN_RE = re.compile(
    r"(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]?#@\s]+)(?::([0-9]{1,5}))?", re.IGNORECASE
)


def _network(text: str) -> str:
    """An IPv4 or IPv6 network in CIDR form (a bare address is a /32 or /128)."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise _Invalid(
            f"expected an address or network such as 192.0.2.0/24, got {_show(text)}"
        ) from None


def _origin(text: str) -> str:
    match = _ORIGIN_RE.fullmatch(text)
    if match is None or not _is_host(match.group(2)):
        raise _Invalid(
            f"expected an origin such as https://phone.example.com (no path), got {_show(text)}"
        )
    if match.group(3) is not None:
        _port(match.group(3))
    return text.lower()


# A user-part prefix: RFC 3261 §25.1 user characters (unreserved, escaped,
# user-unreserved), plus '#' as gateway.sip.uri accepts it.
_USER_PREFIX_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/#]|%[0-9A-Fa-f]{2})+")


# ---------------------------------------------------------------------------
# TLS keys: shared by listeners and trunks
# ---------------------------------------------------------------------------

# A header value Wedge writes as given: printable ASCII, no line breaks.
_HEADER_TEXT_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")


def _header_text(table: _Table, key: str) -> str | None:
    value = table.string(key)
    if value is not None and _HEADER_TEXT_RE.fullmatch(value) is None:
        table.error(
            key, f"expected printable ASCII text of at most 200 characters, got {_show(value)}"
        )
        return None
    return value


def _seconds_or_zero(table: _Table, key: str) -> float | None:
    """Seconds, where 0 switches the thing off."""
    value = table.raw(key, False)
    if value is not None and not isinstance(value, bool) and value == 0:
        return 0.0
    return table.seconds(key)


def _boolean(table: _Table, key: str) -> bool | None:
    value = table.raw(key, False)
    if value is not None and not isinstance(value, bool):
        table.error(key, f"expected true or false, got {_show(value)}")
        return None
    return value


def _key_passphrase(table: _Table, prefix: str = "") -> tuple[str | None, str | None]:
    """``key_passphrase_env`` / ``key_passphrase_file`` (one of them at most)."""
    env_key, file_key = f"{prefix}key_passphrase_env", f"{prefix}key_passphrase_file"
    env = table.string(env_key)
    if env is not None and _ENV_RE.fullmatch(env) is None:
        table.error(env_key, f"expected an environment variable name, got {_show(env)}")
        env = None
    file = table.string(file_key)
    if env is not None and file is not None:
        table.error(file_key, f"give {env_key} or {file_key}, not both")
    return env, file


def _pins(table: _Table, key: str) -> list[str]:
    def pin(text: str) -> str:
        try:
            return parse_pin(text)
        except ValueError as exc:
            raise _Invalid(
                f"expected a pin-sha256 value (base64 of a SHA-256: 44 characters; "
                f"`wedge certs pin FILE` prints one): {exc}"
            ) from None

    pins = table.strings(key, pin)
    if table.has(key) and isinstance(table.raw(key, False), list) and not table.raw(key, False):
        table.error(key, "empty; leave the key out for no pinning")
    return pins


def _inline_tables(table: _Table, key: str, known: Sequence[str], example: str) -> list[_Table]:
    """``key``: a non-empty array of inline tables like ``example``, each as a
    :class:`_Table`; what is not one is reported and left out."""
    value = table.raw(key, False)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        table.error(key, f"expected an array of {example} tables, got {_show(value)}")
        return []
    entries: list[_Table] = []
    for i, item in enumerate(value):
        path = (*table.path, key, i)
        if isinstance(item, dict):
            entries.append(_Table(table.report, path, item, known))
        else:
            table.report.error(path, f"expected {example}, got {_show(item)}")
    return entries


def _sni(table: _Table, base_dir: Path) -> list[CertFiles]:
    """A listener's ``sni``: an array of ``{ cert, key, ... }`` tables."""
    found: list[CertFiles] = []
    for entry in _inline_tables(table, "sni", _SNI_KEYS, '{ cert = "...", key = "..." }'):
        errors = len(table.report.errors)
        cert = entry.string("cert", required=True)
        key = entry.string("key", required=True)
        env, file = _key_passphrase(entry)
        entry.finish()
        if len(table.report.errors) > errors or cert is None or key is None:
            continue
        found.append(
            CertFiles(
                cert=base_dir / cert,
                key=base_dir / key,
                key_passphrase_env=env,
                key_passphrase_file=None if file is None else base_dir / file,
            )
        )
    return found


# ---------------------------------------------------------------------------
# The sections
# ---------------------------------------------------------------------------


def _wedge(report: _Report, data: object) -> tuple[WedgeSettings | None, bool]:
    """The settings, and whether ``fqdn`` was written at all (even if wrong)."""
    if data is None:
        return WedgeSettings(), False
    if not isinstance(data, dict):
        report.error(("wedge",), f"expected a table ([wedge]), got {_show(data)}")
        return None, False
    table = _Table(report, ("wedge",), data, _WEDGE_KEYS)
    errors = len(report.errors)
    fqdn = table.string("fqdn")
    if fqdn is not None and not _is_hostname(fqdn):
        table.error("fqdn", f"expected a host name, got {_show(fqdn)}")
    log_level = table.choice("log_level", LogLevel)
    log_format = table.choice("log_format", LogFormat)
    defaults = WedgeSettings()
    t1 = table.seconds("t1")
    t2 = table.seconds("t2")
    t4 = table.seconds("t4")
    dns_servers = table.strings("dns_servers", _dns_server)
    nat_keepalive = table.seconds("nat_keepalive")
    user_agent = _header_text(table, "user_agent")
    cert_warn_days = table.integer("cert_warn_days", 0, 3650)
    cert_watch = _seconds_or_zero(table, "cert_watch")
    if t1 is not None and t2 is not None and t1 > t2:
        key = "t2" if table.has("t2") else "t1"
        table.error(key, f"t1 ({t1:g}) must not exceed t2 ({t2:g}) (RFC 3261 §17.1.2.2)")
    elif table.has("t1") and not table.has("t2") and t1 is not None and t1 > defaults.t2:
        table.error("t1", f"t1 ({t1:g}) must not exceed t2 (default {defaults.t2:g}); set t2")
    elif table.has("t2") and not table.has("t1") and t2 is not None and t2 < defaults.t1:
        table.error("t2", f"t2 ({t2:g}) must be at least t1 (default {defaults.t1:g}); set t1")
    table.finish()
    if len(report.errors) > errors:
        return None, fqdn is not None or table.has("fqdn")
    return (
        WedgeSettings(
            fqdn=fqdn,
            log_level=log_level or defaults.log_level,
            log_format=log_format or defaults.log_format,
            t1=defaults.t1 if t1 is None else t1,
            t2=defaults.t2 if t2 is None else t2,
            t4=defaults.t4 if t4 is None else t4,
            nat_keepalive=nat_keepalive or 0.0,
            user_agent=user_agent or defaults.user_agent,
            cert_warn_days=defaults.cert_warn_days if cert_warn_days is None else cert_warn_days,
            cert_watch=defaults.cert_watch if cert_watch is None else cert_watch,
            dns_servers=tuple(
                (host, port) for host, port in (_parse_target(text) for text in dns_servers)
            ),
        ),
        fqdn is not None,
    )


def _media(report: _Report, data: object, first: Listener | None) -> MediaSettings | None:
    """The ``[media]`` table. By default the relay binds where the first listener
    does, and a relay bound to a wildcard advertises that listener's address."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        report.error(("media",), f"expected a table ([media]), got {_show(data)}")
        return None
    table = _Table(report, ("media",), data, _MEDIA_KEYS)
    errors = len(report.errors)
    defaults = MediaSettings()
    relay = table.choice("relay", MediaRelay)
    bind = table.string("bind")
    advertise = table.string("advertise")
    for key, value in (("bind", bind), ("advertise", advertise)):
        if value is not None and _ipv4(value) is None and _ipv6(value) is None:
            table.error(key, f"expected an IP address, got {_show(value)}")
    ports = defaults.ports
    text = table.string("ports")
    if text is not None:
        try:
            ports = _port_range(text)
        except _Invalid as exc:
            table.error("ports", str(exc))
    timeout = table.seconds("timeout")
    hold_timeout = table.seconds("hold_timeout")
    workers = table.integer("workers", 1, 64)
    rtpengine = _rtpengine_instances(table)
    fallback = table.choice("fallback", MediaRelay)
    if fallback is MediaRelay.RTPENGINE:
        table.error("fallback", "expected builtin or none (the relay rtpengine falls back to)")
    if relay is MediaRelay.RTPENGINE and not rtpengine and not table.has("rtpengine"):
        table.error(
            "relay",
            'relay = "rtpengine" needs its instances: rtpengine = ["host:port", ...] '
            "(each rtpengine's --listen-ng)",
        )
    table.finish()
    bind = bind or (first.bind_host if first is not None else "127.0.0.1")
    wildcard = bind in ("0.0.0.0", "::")
    if wildcard and advertise is None and first is not None:
        host = first.advertise_host
        if _ipv4(host) is not None or _ipv6(host) is not None:
            advertise = host
    builtin = (relay or defaults.relay) is MediaRelay.BUILTIN or (
        relay is MediaRelay.RTPENGINE and fallback is MediaRelay.BUILTIN
    )
    if builtin and workers and (ports[1] - ports[0] + 1) // 2 < workers * 2:
        table.error("workers", f"{workers} workers need at least {workers * 4} media ports")
    if builtin and wildcard and advertise is None:
        report.error(
            ("media", "advertise"),
            f"media binds to {bind}: set the address peers send media to (advertise)",
        )
    if len(report.errors) > errors:
        return None
    return MediaSettings(
        relay=relay or defaults.relay,
        bind=bind,
        advertise=advertise,
        ports=ports,
        timeout=timeout or defaults.timeout,
        hold_timeout=hold_timeout or defaults.hold_timeout,
        workers=workers or defaults.workers,
        rtpengine=tuple(rtpengine),
        fallback=fallback or defaults.fallback,
    )


def _rtpengine_instances(table: _Table) -> list[RtpengineInstance]:
    """``rtpengine``: one ``host:port[;weight=N]`` string, or an array of them."""
    value = table.raw("rtpengine", False)
    if value is None:
        return []
    entries: list[tuple[KeyPath, object]]
    if isinstance(value, str):
        entries = [((*table.path, "rtpengine"), value)]
    elif isinstance(value, list) and value:
        entries = [((*table.path, "rtpengine", i), item) for i, item in enumerate(value)]
    elif isinstance(value, list):
        table.error("rtpengine", "empty; give at least one host:port")
        return []
    else:
        table.error("rtpengine", f"expected an array of host:port strings, got {_show(value)}")
        return []
    instances: list[RtpengineInstance] = []
    for path, item in entries:
        try:
            if not isinstance(item, str):
                raise _Invalid(f"expected a host:port string, got {_show(item)}")
            instance = _rtpengine_instance(item)
        except _Invalid as exc:
            table.report.error(path, str(exc))
            continue
        if any((i.host, i.port) == (instance.host, instance.port) for i in instances):
            table.report.error(path, f"{_show(item)} is listed twice")
            continue
        instances.append(instance)
    return instances


def _rtpengine_instance(text: str) -> RtpengineInstance:
    """``host:port`` or ``host:port;weight=N``: an rtpengine's ng address (UDP)."""
    address, _, options = text.partition(";")
    host, is_v6, port = _split_host_port(address.strip())
    if port is None:
        raise _Invalid(f"expected host:port (rtpengine's --listen-ng), got {_show(text)}")
    if not is_v6 and _ipv4(host) is None and not _is_hostname(host):
        raise _Invalid(f"expected an IP address or host name, got {_show(host)}")
    weight = 1
    for option in filter(None, (part.strip() for part in options.split(";"))):
        key, equals, number = (part.strip() for part in option.partition("="))
        if key != "weight" or not equals:
            raise _Invalid(f"unknown option {_show(option)}; expected weight=N")
        if not number.isdigit() or not 1 <= int(number) <= 1000:
            raise _Invalid(f"weight: expected a whole number from 1 to 1000, got {_show(number)}")
        weight = int(number)
    return RtpengineInstance(host, _port(port), weight)


def _port_range(text: str) -> tuple[int, int]:
    """``40000-49999``: an inclusive range with room for a few calls."""
    first, dash, last = text.partition("-")
    if not dash or not _PORT_RE.fullmatch(first) or not _PORT_RE.fullmatch(last):
        raise _Invalid(f"expected FIRST-LAST, e.g. 40000-49999, got {_show(text)}")
    low, high = int(first), int(last)
    if not 1024 <= low < high <= 65535:
        raise _Invalid(f"expected 1024 <= FIRST < LAST <= 65535, got {_show(text)}")
    if high - low < 3:
        raise _Invalid(f"{_show(text)} has room for no call; give at least 4 ports")
    return low, high


def _entries(
    report: _Report, data: dict[str, object], section: str
) -> list[tuple[KeyPath, dict[str, object]]]:
    """The tables of ``[[section]]`` with their paths; anything else is reported."""
    value = data.get(section)
    if value is None:
        return []
    if not isinstance(value, list):
        report.error((section,), f"expected an array of tables ([[{section}]]), got {_show(value)}")
        return []
    entries: list[tuple[KeyPath, dict[str, object]]] = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            entries.append(((section, i), entry))
        else:
            report.error((section, i), f"expected a table, got {_show(entry)}")
    return entries


def _listener(
    report: _Report,
    path: KeyPath,
    data: dict[str, object],
    base_dir: Path,
    fqdn: str | None,
    fqdn_written: bool,
) -> Listener | None:
    table = _Table(report, path, data, _LISTENER_KEYS)
    errors = len(report.errors)
    name = table.name()
    transport = table.choice("transport", Transport, required=True)
    bind_text = table.string("bind", required=True)
    bind: tuple[str, int] | None = None
    if bind_text is not None:
        try:
            bind = _parse_bind(bind_text)
        except _Invalid as exc:
            table.error("bind", str(exc))
    advertise_text = table.string("advertise")
    advertise: tuple[str, int | None] | None = None
    if advertise_text is not None:
        try:
            advertise = _parse_advertise(advertise_text)
        except _Invalid as exc:
            table.error("advertise", str(exc))
    cert = table.string("cert")
    key = table.string("key")
    origins = table.strings("origins", _origin)
    idle_timeout = table.seconds("idle_timeout")
    passphrase_env, passphrase_file = _key_passphrase(table)
    sni = _sni(table, base_dir)
    tls_min_version = table.choice("tls_min_version", TlsVersion)
    ciphers = table.string("ciphers")
    client_ca = table.string("client_ca")
    require_client_cert = _boolean(table, "require_client_cert")
    x_ms_sbc_value = table.raw("x_ms_sbc", False)
    x_ms_sbc: str | None = None
    if x_ms_sbc_value is True:
        x_ms_sbc = DEFAULT_X_MS_SBC
    elif x_ms_sbc_value is not False and x_ms_sbc_value is not None:
        x_ms_sbc = _header_text(table, "x_ms_sbc")
    rewrite_contact = _boolean(table, "rewrite_contact")
    table.finish()

    if transport is not None:
        if transport.secure:
            for file_key, value in (("cert", cert), ("key", key)):
                if value is None and not table.has(file_key):
                    what = "certificate" if file_key == "cert" else "private key"
                    table.error(
                        file_key,
                        f"missing required key: a {transport} listener needs a {what} file",
                    )
        else:
            for file_key in ("cert", "key", *_SECURE_LISTENER_KEYS):
                if table.has(file_key):
                    table.error(file_key, f"only tls and wss listeners take one, not {transport}")
        if require_client_cert and client_ca is None and transport.secure:
            table.error(
                "require_client_cert",
                "needs client_ca: the CA bundle that client certificates must chain to",
            )
        if table.has("origins") and not transport.websocket:
            table.error("origins", f"only ws and wss listeners check origins, not {transport}")
        if table.has("idle_timeout") and transport is Transport.UDP:
            table.error("idle_timeout", "udp has no connections to time out")
        if bind is not None and advertise is None and not table.has("advertise"):
            wildcard = ipaddress.ip_address(bind[0]).is_unspecified
            uses_fqdn = transport.secure and (fqdn is not None or fqdn_written)
            if wildcard and not uses_fqdn:
                table.error(
                    "advertise",
                    f"missing: the listener binds the wildcard address {bind[0]}, so say "
                    "which address peers reach it at"
                    + (" (or set [wedge] fqdn)" if transport.secure else ""),
                )

    if len(report.errors) > errors:
        return None
    assert name is not None and transport is not None and bind is not None
    bind_host, bind_port = bind
    if advertise is not None:
        advertise_host, advertise_port = advertise[0], advertise[1] or bind_port
    elif transport.secure and fqdn is not None:
        advertise_host, advertise_port = fqdn, bind_port
    else:
        advertise_host = f"[{bind_host}]" if ":" in bind_host else bind_host
        advertise_port = bind_port
    if not transport.secure:
        cert_path = key_path = None
    else:
        assert cert is not None and key is not None
        cert_path, key_path = base_dir / cert, base_dir / key
    if transport is Transport.UDP:
        idle = None
    else:
        idle = DEFAULT_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
    return Listener(
        name=name,
        transport=transport,
        bind_host=bind_host,
        bind_port=bind_port,
        advertise_host=advertise_host,
        advertise_port=advertise_port,
        cert=cert_path,
        key=key_path,
        origins=tuple(origins),
        idle_timeout=idle,
        key_passphrase_env=passphrase_env,
        key_passphrase_file=None if passphrase_file is None else base_dir / passphrase_file,
        sni=tuple(sni),
        tls_min_version=tls_min_version or TlsVersion.V1_2,
        ciphers=ciphers,
        client_ca=None if client_ca is None else base_dir / client_ca,
        require_client_cert=bool(require_client_cert),
        x_ms_sbc=x_ms_sbc,
        rewrite_contact=bool(rewrite_contact),
    )


def _check_binds(report: _Report, listeners: Sequence[tuple[KeyPath, Listener]]) -> None:
    """Two listeners cannot bind the same port (udp and tcp ports are separate;
    tcp, tls, ws and wss share TCP's). A wildcard overlaps every address of its
    family."""
    seen: list[tuple[KeyPath, Listener, str, ipaddress.IPv4Address | ipaddress.IPv6Address]] = []
    for path, listener in listeners:
        kind = "udp" if listener.transport is Transport.UDP else "tcp"
        address = ipaddress.ip_address(listener.bind_host.partition("%")[0])
        for other_path, other, other_kind, other_address in seen:
            if (
                kind == other_kind
                and listener.bind_port == other.bind_port
                and address.version == other_address.version
                and (
                    address == other_address
                    or address.is_unspecified
                    or other_address.is_unspecified
                )
            ):
                line = report.line((*other_path, "bind"))
                at = f" (line {line})" if line is not None else ""
                report.error(
                    (*path, "bind"),
                    f"{kind} port {listener.bind_port} is already bound by listener "
                    f"{_quote(other.name)}{at} on {other.bind_host}",
                )
                break
        seen.append((path, listener, kind, address))


# The transports a sip: URI's ;transport= names (RFC 3261 §19.1.1, RFC 7118 §5),
# and what they mean under sips: (RFC 3261 §26.2.2: TLS over TCP, WSS over WS).
_URI_TRANSPORTS = {
    "udp": Transport.UDP,
    "tcp": Transport.TCP,
    "tls": Transport.TLS,
    "ws": Transport.WS,
    "wss": Transport.WSS,
}
_SIPS_TRANSPORTS = {
    "tcp": Transport.TLS,
    "tls": Transport.TLS,
    "ws": Transport.WSS,
    "wss": Transport.WSS,
}


def _trunk(
    report: _Report,
    path: KeyPath,
    data: dict[str, object],
    listeners: dict[str, Transport | None],
    base_dir: Path = Path(),
) -> Trunk | None:
    table = _Table(report, path, data, _TRUNK_KEYS)
    errors = len(report.errors)
    name = table.name()
    uri_text = table.string("uri", required=True)
    transport = table.choice("transport", Transport)
    media_profile = table.choice("media_profile", MediaProfile)
    codecs = table.strings("codecs", _codec)
    rtpengine_flags = table.strings("rtpengine_flags", _ng_flag)
    listener = table.name("listener", required=False)
    targets = _targets(table)
    options_interval = table.seconds("options_interval")
    options_timeout = table.seconds("options_timeout")
    down_after = table.integer("down_after", 1, 100)
    up_after = table.integer("up_after", 1, 100)
    tls = _trunk_tls(table, base_dir)
    table.finish()

    uri_transport: Transport | None = None
    uri: SipUri | None = None
    if uri_text is not None:
        try:
            parsed = parse_uri(uri_text)
        except ParseError as exc:
            table.error("uri", f"{exc.reason}: {_show(uri_text)}")
        else:
            if not isinstance(parsed, SipUri):
                table.error("uri", f"expected a sip: or sips: URI, got {_show(uri_text)}")
            elif parsed.port == 0:
                table.error("uri", f"expected a port 1..65535, got 0 in {_show(uri_text)}")
            else:
                uri = parsed
    if uri is not None and uri.transport is not None:
        known = _SIPS_TRANSPORTS if uri.is_secure else _URI_TRANSPORTS
        uri_transport = known.get(uri.transport)
        if uri_transport is None:
            table.error(
                "uri",
                f"unsupported transport {_show(uri.transport)} for a {uri.scheme}: URI "
                f"(expected one of {', '.join(known)})",
            )
    if uri is not None and transport is not None:
        if uri_transport is not None and transport is not uri_transport:
            table.error(
                "transport", f"{transport} conflicts with the URI's ;transport={uri.transport}"
            )
        elif uri.is_secure and not transport.secure:
            table.error("transport", f"a sips: URI needs tls or wss, not {transport}")
    effective = transport or uri_transport
    if effective is None and uri is not None:
        effective = Transport.TLS if uri.is_secure else Transport.UDP
    if listener is not None:
        if listener not in listeners:
            table.error(
                "listener", f"no listener named {_quote(listener)}" + _suggest(listener, listeners)
            )
        else:
            listener_transport = listeners[listener]
            if (
                listener_transport is not None
                and effective is not None
                and listener_transport is not effective
            ):
                table.error(
                    "listener",
                    f"listener {_quote(listener)} is {listener_transport}, but the trunk "
                    f"uses {effective}",
                )

    if effective is not None and effective is not Transport.TLS:
        for key in _TLS_TRUNK_KEYS:
            if table.has(key):
                table.error(key, f"only tls trunks take one, not {effective}")
        if any(target.tls_name is not None for target in targets):
            table.error("targets", f"tls_name: only tls trunks take one, not {effective}")
    if (
        options_interval is None
        and effective is Transport.TLS
        and not table.has("options_interval")
    ):
        options_interval = _DEFAULT_OPTIONS_INTERVAL_TLS

    if len(report.errors) > errors:
        return None
    assert name is not None and uri_text is not None and effective is not None
    return Trunk(
        name=name,
        uri=uri_text,
        transport=effective,
        media_profile=media_profile or DEFAULT_MEDIA_PROFILES[effective],
        codecs=tuple(codecs),
        rtpengine_flags=tuple(rtpengine_flags),
        listener=listener,
        targets=tuple(targets),
        options_interval=options_interval,
        options_timeout=options_timeout or 2.0,
        down_after=down_after or 3,
        up_after=up_after or 2,
        tls=(tls or TrunkTls()) if effective is Transport.TLS else None,
    )


def _codec(text: str) -> str:
    try:
        CodecSpec.parse(text)
    except ValueError:
        raise _Invalid(f"expected a codec as name[/rate[/channels]], got {_show(text)}") from None
    return text


_NG_FLAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=:/-]{0,99}")


def _ng_flag(text: str) -> str:
    if _NG_FLAG_RE.fullmatch(text) is None:
        raise _Invalid(f"expected an rtpengine flag such as record-call, got {_show(text)}")
    return text


def _trunk_tls(table: _Table, base_dir: Path) -> TrunkTls | None:
    """A trunk's ``tls_*`` keys and ``pin_sha256``; None when one is wrong."""
    errors = len(table.report.errors)
    ca = table.string("tls_ca")
    name = table.string("tls_name")
    if name is not None and not _is_host(name):
        table.error("tls_name", f"expected a host name, got {_show(name)}")
    cert = table.string("tls_cert")
    key = table.string("tls_key")
    for have, missing in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
        if table.has(have) and not table.has(missing):
            table.error(have, f"needs {missing} too (the client certificate and its key)")
    env, file = _key_passphrase(table, "tls_")
    if (env is not None or file is not None) and key is None:
        table.error(
            "tls_key_passphrase_env" if env is not None else "tls_key_passphrase_file",
            "a passphrase for tls_key, which is not given",
        )
    min_version = table.choice("tls_min_version", TlsVersion)
    ciphers = table.string("ciphers")
    require = _boolean(table, "require_client_cert")
    pins = _pins(table, "pin_sha256")
    if len(table.report.errors) > errors:
        return None
    identity = None
    if cert is not None and key is not None:
        identity = CertFiles(
            cert=base_dir / cert,
            key=base_dir / key,
            key_passphrase_env=env,
            key_passphrase_file=None if file is None else base_dir / file,
        )
    return TrunkTls(
        ca=None if ca is None else base_dir / ca,
        name=None if name is None else name.lower().rstrip("."),
        identity=identity,
        ciphers=ciphers,
        min_version=min_version or TlsVersion.V1_2,
        require_client_cert=bool(require),
        pins=tuple(dict.fromkeys(pins)),
    )


def _targets(table: _Table) -> list[TrunkTarget]:
    """A trunk's ``targets``: an array of ``{ address, priority, weight }`` tables."""
    targets: list[TrunkTarget] = []
    for entry in _inline_tables(table, "targets", _TARGET_KEYS, '{ address = "host:port" }'):
        address = entry.string("address", required=True)
        priority = entry.integer("priority", 0, 65535)
        weight = entry.integer("weight", 0, 65535)
        tls_name = entry.string("tls_name")
        if tls_name is not None and not _is_hostname(tls_name):
            entry.error("tls_name", f"expected a host name, got {_show(tls_name)}")
            continue
        entry.finish()
        if address is None:
            continue
        try:
            host, port = _parse_target(address)
        except _Invalid as exc:
            entry.error("address", str(exc))
            continue
        targets.append(
            TrunkTarget(
                host=host,
                port=port,
                priority=10 if priority is None else priority,
                weight=1 if weight is None else weight,
                tls_name=None if tls_name is None else tls_name.lower().rstrip("."),
            )
        )
    return targets


def _route(
    report: _Report,
    path: KeyPath,
    data: dict[str, object],
    listeners: Sequence[str],
    trunks: Sequence[str],
) -> Route | None:
    table = _Table(report, path, data, _ROUTE_KEYS)
    errors = len(report.errors)
    name = table.name()
    references = (
        ("from_listener", "listener", listeners, False),
        ("from_trunk", "trunk", trunks, False),
        ("to_trunk", "trunk", trunks, True),
    )
    found: dict[str, str | None] = {}
    for key, kind, names, required in references:
        value = found[key] = table.name(key, required=required)
        if value is not None and value not in names:
            table.error(key, f"no {kind} named {_quote(value)}" + _suggest(value, names))
    user_prefix = table.string("user_prefix")
    if user_prefix is not None and _USER_PREFIX_RE.fullmatch(user_prefix) is None:
        table.error(
            "user_prefix", f"expected characters of a SIP user part, got {_show(user_prefix)}"
        )
    domain = table.string("domain")
    if domain is not None and not _is_host(domain):
        table.error("domain", f"expected a host name or IP address, got {_show(domain)}")
    sources = table.strings("from_source", _network)
    rewrites = {key: table.string(key) for key in ("strip_prefix", "add_prefix")}
    for key, value in rewrites.items():
        if value is not None and _USER_PREFIX_RE.fullmatch(value) is None:
            table.error(key, f"expected characters of a SIP user part, got {_show(value)}")
    e164 = table.raw("e164", False)
    if e164 is not None and not isinstance(e164, bool):
        table.error("e164", f"expected true or false, got {_show(e164)}")
    table.finish()

    if len(report.errors) > errors:
        return None
    assert name is not None and found["to_trunk"] is not None
    return Route(
        name=name,
        from_listener=found["from_listener"],
        from_trunk=found["from_trunk"],
        user_prefix=user_prefix,
        domain=None if domain is None else _host_key(domain),
        from_source=tuple(ipaddress.ip_network(text) for text in sources),
        to_trunk=found["to_trunk"],
        strip_prefix=rewrites["strip_prefix"],
        add_prefix=rewrites["add_prefix"],
        e164=e164 is True,
    )


def _check_names(report: _Report, entries: Sequence[tuple[KeyPath, dict[str, object]]]) -> None:
    first: dict[str, KeyPath] = {}
    for path, data in entries:
        name = data.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            line = report.line((*first[name], "name"))
            at = f" at line {line}" if line is not None else ""
            report.error((*path, "name"), f"{_quote(name)} is already used{at}")
        else:
            first[name] = path


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
) -> tuple[Config, _Report]:
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
    report = _Report(source, Locator(text), data, from_flags)
    for key in data:
        if key not in _TOP_KEYS:
            report.error(
                (key,),
                "unknown key"
                + (_suggest(key, _TOP_KEYS) or f"; expected one of {', '.join(_TOP_KEYS)}"),
            )

    wedge, fqdn_written = _wedge(report, data.get("wedge"))
    sections = {section: _entries(report, data, section) for section in _SECTIONS}
    for entries in sections.values():
        _check_names(report, entries)

    listeners: list[tuple[KeyPath, Listener]] = []
    for path, entry in sections["listener"]:
        listener = _listener(
            report, path, entry, base_dir, None if wedge is None else wedge.fqdn, fqdn_written
        )
        if listener is not None:
            listeners.append((path, listener))
    _check_binds(report, listeners)
    media = _media(report, data.get("media"), listeners[0][1] if listeners else None)
    if data.get("listener", []) == []:
        report.error(("listener",), "at least one [[listener]] is required")

    # References are checked against every written name, so a listener with a bad
    # bind is still one a trunk may name: one mistake, one error.
    listener_transports: dict[str, Transport | None] = dict.fromkeys(
        _raw_names(sections["listener"])
    )
    listener_transports.update({listener.name: listener.transport for _, listener in listeners})
    trunks = [
        trunk
        for path, entry in sections["trunk"]
        if (trunk := _trunk(report, path, entry, listener_transports, base_dir)) is not None
    ]
    listener_names = list(listener_transports)
    trunk_names = _raw_names(sections["trunk"])
    routes: list[Route] = []
    for position, (path, entry) in enumerate(sections["route"]):
        route = _route(report, path, entry, listener_names, trunk_names)
        if route is None:
            continue
        routes.append(route)
        later = len(sections["route"]) - 1 - position
        if later and not (
            route.from_listener
            or route.from_trunk
            or route.user_prefix
            or route.domain
            or route.from_source
        ):
            report.error(
                path,
                f"matches every request, so the {_count(later, 'route')} after it never "
                "match; move it last",
            )
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


def _check_files(report: _Report, files: Sequence[tuple[KeyPath, Path | None]]) -> None:
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


def choose_route(
    config: Config,
    listener_name: str,
    source_trunk: str | None,
    ruri_user: str | None,
    ruri_host: str,
    source_ip: str | None = None,
) -> Route | None:
    """The first route, in file order, whose every condition holds; None if none.

    Args:
        listener_name: the listener the request came in on.
        source_trunk: the trunk whose address the request came from, or None.
        ruri_user: the Request-URI's user part as written (escapes kept), or None
            when it has none; a route with ``user_prefix`` never matches None.
        ruri_host: the Request-URI's host as written (IPv6 bracketed or not);
            compared case-insensitively, as an address for IP literals.
        source_ip: the address the request came from, for ``from_source``; a
            route with ``from_source`` never matches None.
    """
    host_key: str | None = None
    for route in config.routes:
        if route.from_listener is not None and route.from_listener != listener_name:
            continue
        if route.from_trunk is not None and route.from_trunk != source_trunk:
            continue
        if route.from_source and (
            source_ip is None
            or not any(ipaddress.ip_address(source_ip) in net for net in route.from_source)
        ):
            continue
        if route.user_prefix is not None and (
            ruri_user is None or not ruri_user.startswith(route.user_prefix)
        ):
            continue
        if route.domain is not None:
            if host_key is None:
                host_key = _host_key(ruri_host)
            if route.domain != host_key:
                continue
        return route
    return None
