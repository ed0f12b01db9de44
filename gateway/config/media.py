"""The [media] table: which relay carries media, where it binds and what it
advertises, its ports, and the rtpengine instances it drives."""

from __future__ import annotations

from gateway.config.locator import KeyPath
from gateway.config.schema import Listener, MediaRelay, MediaSettings, RtpengineInstance
from gateway.config.tables import Invalid, Report, Table, show
from gateway.config.values import ipv4, ipv6, is_hostname, parse_port, port_range, split_host_port

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


def read_media(report: Report, data: object, first: Listener | None) -> MediaSettings | None:
    """The ``[media]`` table. By default the relay binds where the first listener
    does, and a relay bound to a wildcard advertises that listener's address."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        report.error(("media",), f"expected a table ([media]), got {show(data)}")
        return None
    table = Table(report, ("media",), data, _MEDIA_KEYS)
    errors = len(report.errors)
    defaults = MediaSettings()
    relay = table.choice("relay", MediaRelay)
    bind = table.string("bind")
    advertise = table.string("advertise")
    for key, value in (("bind", bind), ("advertise", advertise)):
        if value is not None and ipv4(value) is None and ipv6(value) is None:
            table.error(key, f"expected an IP address, got {show(value)}")
    ports = defaults.ports
    text = table.string("ports")
    if text is not None:
        try:
            ports = port_range(text)
        except Invalid as exc:
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
        if ipv4(host) is not None or ipv6(host) is not None:
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


def _rtpengine_instances(table: Table) -> list[RtpengineInstance]:
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
        table.error("rtpengine", f"expected an array of host:port strings, got {show(value)}")
        return []
    instances: list[RtpengineInstance] = []
    for path, item in entries:
        try:
            if not isinstance(item, str):
                raise Invalid(f"expected a host:port string, got {show(item)}")
            instance = _rtpengine_instance(item)
        except Invalid as exc:
            table.report.error(path, str(exc))
            continue
        if any((i.host, i.port) == (instance.host, instance.port) for i in instances):
            table.report.error(path, f"{show(item)} is listed twice")
            continue
        instances.append(instance)
    return instances


def _rtpengine_instance(text: str) -> RtpengineInstance:
    """``host:port`` or ``host:port;weight=N``: an rtpengine's ng address (UDP)."""
    address, _, options = text.partition(";")
    host, is_v6, port = split_host_port(address.strip())
    if port is None:
        raise Invalid(f"expected host:port (rtpengine's --listen-ng), got {show(text)}")
    if not is_v6 and ipv4(host) is None and not is_hostname(host):
        raise Invalid(f"expected an IP address or host name, got {show(host)}")
    weight = 1
    for option in filter(None, (part.strip() for part in options.split(";"))):
        key, equals, number = (part.strip() for part in option.partition("="))
        if key != "weight" or not equals:
            raise Invalid(f"unknown option {show(option)}; expected weight=N")
        if not number.isdigit() or not 1 <= int(number) <= 1000:
            raise Invalid(f"weight: expected a whole number from 1 to 1000, got {show(number)}")
        weight = int(number)
    return RtpengineInstance(host, parse_port(port), weight)
