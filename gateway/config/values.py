"""Values written as text: hosts, ports, addresses, networks, origins, codecs and
pins. The parsers return the value or raise Invalid, whose message says what is wrong."""

from __future__ import annotations

import ipaddress
import re

from certs.pinning import parse_pin
from gateway.config.tables import Invalid, show
from sdp.offer_answer import CodecSpec

# RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel [ "." ]; a top label
# starts with a letter, so "10.0.0.300" is neither a name nor an address.
_HOSTNAME_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)
_PORT_RE = re.compile(r"[0-9]{1,5}")


def is_hostname(text: str) -> bool:
    return len(text) <= 254 and _HOSTNAME_RE.fullmatch(text) is not None


def ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def ipv6(text: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def parse_port(text: str) -> int:
    if _PORT_RE.fullmatch(text) is None or not 1 <= int(text) <= 65535:
        raise Invalid(f"expected a port 1..65535, got {show(text)}")
    return int(text)


def split_host_port(text: str) -> tuple[str, bool, str | None]:
    """``host[:port]`` into (host without brackets, is IPv6, port text or None)."""
    if text.startswith("["):
        close = text.find("]")
        rest = text[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            raise Invalid(f"expected [IPv6 address] or [IPv6 address]:port, got {show(text)}")
        if ipv6(text[1:close]) is None:
            raise Invalid(f"not an IPv6 address: {show(text[1:close])}")
        return text[1:close], True, rest[1:] if rest else None
    if text.count(":") > 1:
        raise Invalid(f"an IPv6 address needs brackets, as in [::1]:5060; got {show(text)}")
    host, colon, port = text.partition(":")
    return host, False, port if colon else None


def parse_bind(text: str) -> tuple[str, int]:
    host, is_v6, port = split_host_port(text)
    if port is None:
        raise Invalid(f"expected host:port, got {show(text)}")
    if not is_v6 and ipv4(host) is None:
        raise Invalid(
            "expected an IP address to bind (0.0.0.0 or [::] for every interface), "
            f"got {show(host)}"
        )
    return host, parse_port(port)


def dns_server(text: str) -> str:
    """``ip:port`` of a DNS server: checked here, parsed where the settings are built."""
    parse_target(text)
    return text


def parse_target(text: str) -> tuple[str, int]:
    """A trunk target's ``ip:port`` (a name belongs in the trunk's ``uri``, for DNS)."""
    host, is_v6, port = split_host_port(text)
    if port is None:
        raise Invalid(f"expected ip:port, got {show(text)}")
    if not is_v6 and ipv4(host) is None:
        raise Invalid(
            f"expected an IP address (give a host name as the trunk's uri), got {show(host)}"
        )
    return host, parse_port(port)


def parse_advertise(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with the host in SIP header form (IPv6 bracketed)."""
    host, is_v6, port = split_host_port(text)
    if is_v6:
        host = f"[{host}]"
    elif ipv4(host) is None and not is_hostname(host):
        raise Invalid(f"expected a host name or IP address, got {show(host)}")
    return host, None if port is None else parse_port(port)


def host_key(host: str) -> str:
    """A host in the form routes compare: IPv6 bracketed and compressed, IPv4
    canonical, names lower case without a trailing dot (RFC 3261 §19.1.4)."""
    if host.startswith("[") and host.endswith("]"):
        v6 = ipv6(host[1:-1])
        if v6 is not None:
            return f"[{v6.compressed}]"
    elif ":" in host:
        v6 = ipv6(host)
        if v6 is not None:
            return f"[{v6.compressed}]"
    v4 = ipv4(host)
    if v4 is not None:
        return str(v4)
    return host.lower().removesuffix(".")


def is_host(text: str) -> bool:
    """A host name, an IPv4 address, or an IPv6 address with or without brackets."""
    if text.startswith("[") and text.endswith("]"):
        return ipv6(text[1:-1]) is not None
    return is_hostname(text) or ipv4(text) is not None or ipv6(text) is not None


# RFC 6454 §6.1: an origin is scheme "://" host [ ":" port ], nothing after it.
_ORIGIN_RE = re.compile(
    r"(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]?#@\s]+)(?::([0-9]{1,5}))?", re.IGNORECASE
)


def network(text: str) -> str:
    """An IPv4 or IPv6 network in CIDR form (a bare address is a /32 or /128)."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise Invalid(
            f"expected an address or network such as 192.0.2.0/24, got {show(text)}"
        ) from None


def origin(text: str) -> str:
    match = _ORIGIN_RE.fullmatch(text)
    if match is None or not is_host(match.group(2)):
        raise Invalid(
            f"expected an origin such as https://phone.example.com (no path), got {show(text)}"
        )
    if match.group(3) is not None:
        parse_port(match.group(3))
    return text.lower()


def port_range(text: str) -> tuple[int, int]:
    """``40000-49999``: an inclusive range with room for a few calls."""
    first, dash, last = text.partition("-")
    if not dash or not _PORT_RE.fullmatch(first) or not _PORT_RE.fullmatch(last):
        raise Invalid(f"expected FIRST-LAST, e.g. 40000-49999, got {show(text)}")
    low, high = int(first), int(last)
    if not 1024 <= low < high <= 65535:
        raise Invalid(f"expected 1024 <= FIRST < LAST <= 65535, got {show(text)}")
    if high - low < 3:
        raise Invalid(f"{show(text)} has room for no call; give at least 4 ports")
    return low, high


def codec(text: str) -> str:
    try:
        CodecSpec.parse(text)
    except ValueError:
        raise Invalid(f"expected a codec as name[/rate[/channels]], got {show(text)}") from None
    return text


_NG_FLAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=:/-]{0,99}")


def ng_flag(text: str) -> str:
    if _NG_FLAG_RE.fullmatch(text) is None:
        raise Invalid(f"expected an rtpengine flag such as record-call, got {show(text)}")
    return text


def pin_sha256(text: str) -> str:
    """A ``pin_sha256`` item, as plain base64."""
    try:
        return parse_pin(text)
    except ValueError as exc:
        raise Invalid(
            f"expected a pin-sha256 value (base64 of a SHA-256: 44 characters; "
            f"`wedge certs pin FILE` prints one): {exc}"
        ) from None
