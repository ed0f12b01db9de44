"""The [wedge] table: global settings (advertised FQDN, logging, RFC 3261 timers)."""

from __future__ import annotations

from gateway.config.schema import LogFormat, LogLevel, WedgeSettings
from gateway.config.tables import Report, Table, header_text, seconds_or_zero, show
from gateway.config.values import dns_server, is_hostname, parse_target

MAX_WORKERS = 64

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
    "workers",
)


def read_wedge(report: Report, data: object) -> tuple[WedgeSettings | None, bool]:
    """The settings, and whether ``fqdn`` was written at all (even if wrong)."""
    if data is None:
        return WedgeSettings(), False
    if not isinstance(data, dict):
        report.error(("wedge",), f"expected a table ([wedge]), got {show(data)}")
        return None, False
    table = Table(report, ("wedge",), data, _WEDGE_KEYS)
    errors = len(report.errors)
    fqdn = table.string("fqdn")
    if fqdn is not None and not is_hostname(fqdn):
        table.error("fqdn", f"expected a host name, got {show(fqdn)}")
    log_level = table.choice("log_level", LogLevel)
    log_format = table.choice("log_format", LogFormat)
    defaults = WedgeSettings()
    t1 = table.seconds("t1")
    t2 = table.seconds("t2")
    t4 = table.seconds("t4")
    dns_servers = table.strings("dns_servers", dns_server)
    nat_keepalive = table.seconds("nat_keepalive")
    user_agent = header_text(table, "user_agent")
    cert_warn_days = table.integer("cert_warn_days", 0, 3650)
    cert_watch = seconds_or_zero(table, "cert_watch")
    workers = table.integer("workers", 1, MAX_WORKERS)
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
            workers=workers or defaults.workers,
            dns_servers=tuple(
                (host, port) for host, port in (parse_target(text) for text in dns_servers)
            ),
        ),
        fqdn is not None,
    )
