"""[[listener]] tables: the sockets Wedge listens on, with their TLS keys and SNI
certificates, and the check that no two of them bind the same port."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

from gateway.config.locator import KeyPath
from gateway.config.schema import DEFAULT_IDLE_TIMEOUT, CertFiles, Listener, TlsVersion, Transport
from gateway.config.tables import (
    Invalid,
    Report,
    Table,
    boolean,
    header_text,
    inline_tables,
    key_passphrase,
    quote,
)
from gateway.config.values import origin, parse_advertise, parse_bind

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


def read_listeners(
    report: Report,
    entries: Sequence[tuple[KeyPath, dict[str, object]]],
    base_dir: Path,
    fqdn: str | None,
    fqdn_written: bool,
) -> list[tuple[KeyPath, Listener]]:
    """The valid listeners with their paths; ``fqdn`` is [wedge] fqdn, and
    ``fqdn_written`` whether the policy gives one at all (even a wrong one)."""
    listeners: list[tuple[KeyPath, Listener]] = []
    for path, entry in entries:
        listener = _listener(report, path, entry, base_dir, fqdn, fqdn_written)
        if listener is not None:
            listeners.append((path, listener))
    _check_binds(report, listeners)
    return listeners


def _listener(
    report: Report,
    path: KeyPath,
    data: dict[str, object],
    base_dir: Path,
    fqdn: str | None,
    fqdn_written: bool,
) -> Listener | None:
    table = Table(report, path, data, _LISTENER_KEYS)
    errors = len(report.errors)
    name = table.name()
    transport = table.choice("transport", Transport, required=True)
    bind_text = table.string("bind", required=True)
    bind: tuple[str, int] | None = None
    if bind_text is not None:
        try:
            bind = parse_bind(bind_text)
        except Invalid as exc:
            table.error("bind", str(exc))
    advertise_text = table.string("advertise")
    advertise: tuple[str, int | None] | None = None
    if advertise_text is not None:
        try:
            advertise = parse_advertise(advertise_text)
        except Invalid as exc:
            table.error("advertise", str(exc))
    cert = table.string("cert")
    key = table.string("key")
    origins = table.strings("origins", origin)
    idle_timeout = table.seconds("idle_timeout")
    passphrase_env, passphrase_file = key_passphrase(table)
    sni = _sni(table, base_dir)
    tls_min_version = table.choice("tls_min_version", TlsVersion)
    ciphers = table.string("ciphers")
    client_ca = table.string("client_ca")
    require_client_cert = boolean(table, "require_client_cert")
    x_ms_sbc_value = table.raw("x_ms_sbc", False)
    x_ms_sbc: str | None = None
    if x_ms_sbc_value is True:
        x_ms_sbc = DEFAULT_X_MS_SBC
    elif x_ms_sbc_value is not False and x_ms_sbc_value is not None:
        x_ms_sbc = header_text(table, "x_ms_sbc")
    rewrite_contact = boolean(table, "rewrite_contact")
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


def _sni(table: Table, base_dir: Path) -> list[CertFiles]:
    """A listener's ``sni``: an array of ``{ cert, key, ... }`` tables."""
    found: list[CertFiles] = []
    for entry in inline_tables(table, "sni", _SNI_KEYS, '{ cert = "...", key = "..." }'):
        errors = len(table.report.errors)
        cert = entry.string("cert", required=True)
        key = entry.string("key", required=True)
        env, file = key_passphrase(entry)
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


def _check_binds(report: Report, listeners: Sequence[tuple[KeyPath, Listener]]) -> None:
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
                    f"{quote(other.name)}{at} on {other.bind_host}",
                )
                break
        seen.append((path, listener, kind, address))
