"""[[trunk]] tables: the SIP peers Wedge sends to, with their targets, OPTIONS
probes and TLS client settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.config.locator import KeyPath
from gateway.config.schema import (
    DEFAULT_MEDIA_PROFILES,
    CertFiles,
    MediaProfile,
    TlsVersion,
    Transport,
    Trunk,
    TrunkTarget,
    TrunkTls,
)
from gateway.config.tables import (
    Invalid,
    Report,
    Table,
    boolean,
    inline_tables,
    key_passphrase,
    quote,
    show,
    suggest,
)
from gateway.config.values import codec, is_host, is_hostname, ng_flag, parse_target, pin_sha256
from gateway.sip.errors import ParseError
from gateway.sip.uri import SipUri, parse_uri

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
_DEFAULT_OPTIONS_INTERVAL_TLS = 60.0
"""Seconds between OPTIONS probes of a tls trunk's targets when the policy says
nothing: Microsoft's Direct Routing counts a trunk healthy while it sees OPTIONS
every minute or so."""


def read_trunks(
    report: Report,
    entries: Sequence[tuple[KeyPath, dict[str, object]]],
    listeners: dict[str, Transport | None],
    base_dir: Path,
) -> list[Trunk]:
    """The valid trunks. ``listeners``: every listener name a trunk may give, with
    its transport (None for a listener that is itself wrong)."""
    return [
        trunk
        for path, entry in entries
        if (trunk := _trunk(report, path, entry, listeners, base_dir)) is not None
    ]


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
    report: Report,
    path: KeyPath,
    data: dict[str, object],
    listeners: dict[str, Transport | None],
    base_dir: Path = Path(),
) -> Trunk | None:
    table = Table(report, path, data, _TRUNK_KEYS)
    errors = len(report.errors)
    name = table.name()
    uri_text = table.string("uri", required=True)
    transport = table.choice("transport", Transport)
    media_profile = table.choice("media_profile", MediaProfile)
    codecs = table.strings("codecs", codec)
    rtpengine_flags = table.strings("rtpengine_flags", ng_flag)
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
            table.error("uri", f"{exc.reason}: {show(uri_text)}")
        else:
            if not isinstance(parsed, SipUri):
                table.error("uri", f"expected a sip: or sips: URI, got {show(uri_text)}")
            elif parsed.port == 0:
                table.error("uri", f"expected a port 1..65535, got 0 in {show(uri_text)}")
            else:
                uri = parsed
    if uri is not None and uri.transport is not None:
        known = _SIPS_TRANSPORTS if uri.is_secure else _URI_TRANSPORTS
        uri_transport = known.get(uri.transport)
        if uri_transport is None:
            table.error(
                "uri",
                f"unsupported transport {show(uri.transport)} for a {uri.scheme}: URI "
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
                "listener", f"no listener named {quote(listener)}" + suggest(listener, listeners)
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
                    f"listener {quote(listener)} is {listener_transport}, but the trunk "
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


def _trunk_tls(table: Table, base_dir: Path) -> TrunkTls | None:
    """A trunk's ``tls_*`` keys and ``pin_sha256``; None when one is wrong."""
    errors = len(table.report.errors)
    ca = table.string("tls_ca")
    name = table.string("tls_name")
    if name is not None and not is_host(name):
        table.error("tls_name", f"expected a host name, got {show(name)}")
    cert = table.string("tls_cert")
    key = table.string("tls_key")
    for have, missing in (("tls_cert", "tls_key"), ("tls_key", "tls_cert")):
        if table.has(have) and not table.has(missing):
            table.error(have, f"needs {missing} too (the client certificate and its key)")
    env, file = key_passphrase(table, "tls_")
    if (env is not None or file is not None) and key is None:
        table.error(
            "tls_key_passphrase_env" if env is not None else "tls_key_passphrase_file",
            "a passphrase for tls_key, which is not given",
        )
    min_version = table.choice("tls_min_version", TlsVersion)
    ciphers = table.string("ciphers")
    require = boolean(table, "require_client_cert")
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


def _targets(table: Table) -> list[TrunkTarget]:
    """A trunk's ``targets``: an array of ``{ address, priority, weight }`` tables."""
    targets: list[TrunkTarget] = []
    for entry in inline_tables(table, "targets", _TARGET_KEYS, '{ address = "host:port" }'):
        address = entry.string("address", required=True)
        priority = entry.integer("priority", 0, 65535)
        weight = entry.integer("weight", 0, 65535)
        tls_name = entry.string("tls_name")
        if tls_name is not None and not is_hostname(tls_name):
            entry.error("tls_name", f"expected a host name, got {show(tls_name)}")
            continue
        entry.finish()
        if address is None:
            continue
        try:
            host, port = parse_target(address)
        except Invalid as exc:
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


def _pins(table: Table, key: str) -> list[str]:
    pins = table.strings(key, pin_sha256)
    if table.has(key) and isinstance(table.raw(key, False), list) and not table.raw(key, False):
        table.error(key, "empty; leave the key out for no pinning")
    return pins
