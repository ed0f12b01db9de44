"""The shape of a policy: constants, enums and the frozen dataclasses it parses into."""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# A policy file is a few kilobytes. Anything past a megabyte is the wrong file (a
# log, a capture, /dev/zero), and refusing it early keeps the one read bounded.
MAX_CONFIG_CHARS = 1_000_000

# The longest duration any key accepts, in seconds: a day. Longer values are unit
# mistakes (milliseconds written as seconds), and 64*T1 must stay finite.
MAX_DURATION = 86_400.0

# How long a stream or WebSocket connection may stay silent before Wedge closes
# it, when the listener does not say. Five minutes outlasts CRLF and WebSocket
# keep-alives (RFC 5626 §4.4.1 suggests 95-120 s for stream flows).
DEFAULT_IDLE_TIMEOUT = 300.0


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


class Transport(enum.StrEnum):
    """A SIP transport; the values are the lower-case names used in Via and URIs."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    WS = "ws"
    WSS = "wss"

    @property
    def secure(self) -> bool:
        """True for the transports that need a certificate (tls, wss)."""
        return self is Transport.TLS or self is Transport.WSS

    @property
    def websocket(self) -> bool:
        """True for ws and wss (RFC 7118)."""
        return self is Transport.WS or self is Transport.WSS


class MediaProfile(enum.StrEnum):
    """How a leg's SDP looks (ARCHITECTURE.md §5)."""

    AVP = "avp"
    """``RTP/AVP``: plain RTP, no ICE, no crypto (a PBX over UDP or TCP)."""
    SAVP_SDES = "savp-sdes"
    """``RTP/SAVP`` with SDES ``a=crypto`` keys (a TLS trunk)."""
    SAVP_SDES_ICE = "savp-sdes-ice"
    """The same with ICE-lite (a TLS trunk that wants ICE)."""
    WEBRTC = "webrtc"
    """``UDP/TLS/RTP/SAVPF`` with ICE, DTLS-SRTP and rtcp-mux (a browser)."""
    TEAMS = "teams"
    """``RTP/SAVP`` with SDES, rtcp-mux, and hold as ``a=inactive`` only (Teams
    Direct Routing)."""


DEFAULT_MEDIA_PROFILES: dict[Transport, MediaProfile] = {
    Transport.UDP: MediaProfile.AVP,
    Transport.TCP: MediaProfile.AVP,
    Transport.TLS: MediaProfile.SAVP_SDES,
    Transport.WS: MediaProfile.WEBRTC,
    Transport.WSS: MediaProfile.WEBRTC,
}
"""The media profile a trunk gets when its policy names none, by its transport."""


class MediaRelay(enum.StrEnum):
    """Who carries the media of calls."""

    BUILTIN = "builtin"
    """Wedge's own relay (ICE-lite, DTLS-SRTP, SDES-SRTP, RTP)."""
    NONE = "none"
    """Nobody: SDP passes untouched and media flows end to end (signalling only)."""
    RTPENGINE = "rtpengine"
    """Sipwise rtpengine instances, driven over the ng protocol (``[media] rtpengine``)."""


@dataclass(frozen=True, slots=True)
class RtpengineInstance:
    """One rtpengine's ng control address (its ``--listen-ng``), and its share of new calls."""

    host: str
    """An IP address (IPv6 without brackets) or a host name, resolved at start."""
    port: int
    weight: int = 1
    """New calls are spread over live instances in proportion to their weights."""


DEFAULT_MEDIA_PORTS = (40000, 49999)
"""The UDP port range of the built-in relay (two ports per stream without rtcp-mux)."""


class LogLevel(enum.StrEnum):
    """The least severe log record Wedge emits; the names of :mod:`logging` levels."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    """How log records are written."""

    TEXT = "text"
    """One human-readable line per record."""
    JSON = "json"
    """One JSON object per line, for a log collector."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WedgeSettings:
    """The ``[wedge]`` table: settings for the whole process."""

    fqdn: str | None = None
    """The host name advertised by tls and wss listeners that have no
    ``advertise`` of their own (what their certificate names). None: not set."""

    log_level: LogLevel = LogLevel.INFO
    """The least severe record that gets logged."""

    log_format: LogFormat = LogFormat.TEXT
    """Human-readable lines or JSON lines."""

    t1: float = 0.5
    """RFC 3261 T1, seconds: the RTT estimate; first retransmission interval, and
    64*T1 is the transaction timeout (§17.1.1.1)."""

    t2: float = 4.0
    """RFC 3261 T2, seconds: the longest retransmission interval for non-INVITE
    requests and INVITE responses. At least T1."""

    t4: float = 5.0
    """RFC 3261 T4, seconds: the longest a message lives in the network."""

    dns_servers: tuple[tuple[str, int], ...] = ()
    """DNS servers (``ip:port``) for resolving trunks; empty: the system's."""

    nat_keepalive: float = 0.0
    """Seconds between keep-alives to UDP clients registered through Wedge, so
    their NAT bindings stay open; 0: none."""

    user_agent: str = "Wedge/{version}"
    """User-Agent of the requests Wedge makes itself (OPTIONS probes) and Server of
    its own responses; ``{version}`` is replaced by Wedge's version."""

    cert_warn_days: int = 30
    """A certificate in use that expires within this many days is logged as a
    warning, at start and once a day."""

    cert_watch: float = 60.0
    """Seconds between looks at the certificate files for changes (a change
    reloads them, like SIGHUP); 0: only SIGHUP reloads."""

    workers: int = 1
    """SIP worker processes sharing the listeners (one socket per UDP listener, the
    stream listeners' ports by SO_REUSEPORT); every message of a call is handled by
    one of them, chosen by its Call-ID. 1: one process, no workers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaSettings:
    """The ``[media]`` table: the relay calls' media goes through."""

    relay: MediaRelay = MediaRelay.BUILTIN

    bind: str | None = None
    """The address relay ports bind to; None: the first listener's bind address."""

    advertise: str | None = None
    """The address written in SDP, for a relay behind 1:1 NAT; None: the bind address."""

    ports: tuple[int, int] = DEFAULT_MEDIA_PORTS
    """The relay's UDP port range, inclusive."""

    timeout: float = 60.0
    """Seconds without media from anyone that end a call with BYE both ways."""

    hold_timeout: float = 3600.0
    """The same while every party holds the call (no one sends)."""

    workers: int = 1
    """Processes the built-in relay runs in, each with a slice of ``ports``: one
    relay process forwards what one core can, so give it the cores media needs."""

    rtpengine: tuple[RtpengineInstance, ...] = ()
    """With ``relay = "rtpengine"``: the instances (``host:port`` or ``host:port;weight=N``)."""

    fallback: MediaRelay = MediaRelay.NONE
    """With ``relay = "rtpengine"``: what carries a new call when no instance answers;
    ``builtin`` (the built-in relay, with ``bind``, ``advertise`` and ``ports``) or
    ``none`` (the call is refused with 503 and Retry-After; and Wedge does not start
    while no instance answers)."""


class TlsVersion(enum.StrEnum):
    """The lowest TLS version a listener or trunk accepts (1.0 and 1.1 never: RFC 8996)."""

    V1_2 = "1.2"
    V1_3 = "1.3"


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFiles:
    """A certificate chain file and its private key file (PEM), paths resolved
    against the policy file's directory, with where the key's passphrase comes
    from when the key is encrypted."""

    cert: Path
    key: Path
    key_passphrase_env: str | None = None
    """The environment variable holding the passphrase."""
    key_passphrase_file: Path | None = None
    """A file whose first line is the passphrase."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """One ``[[listener]]``: a socket Wedge accepts SIP on."""

    name: str
    """Unique among listeners; trunks and routes refer to it."""

    transport: Transport
    """The SIP transport the socket speaks."""

    bind_host: str
    """The IP address to bind, as :mod:`socket` wants it: IPv6 without brackets;
    ``0.0.0.0`` or ``::`` for every interface."""

    bind_port: int
    """The port to bind, 1..65535."""

    advertise_host: str
    """The host put in Via, Record-Route and Path for this socket, ready for a SIP
    header: a name, an IPv4 address or a bracketed IPv6 address. Taken from
    ``advertise``, else ``[wedge] fqdn`` for tls/wss, else the bind address (a
    wildcard bind must say what to advertise)."""

    advertise_port: int
    """The port put in those headers; the bind port unless ``advertise`` names one
    (a port-forwarding load balancer in front)."""

    cert: Path | None = None
    """tls/wss: the certificate chain file (PEM), relative paths resolved against
    the policy file's directory. None for other transports."""

    key: Path | None = None
    """tls/wss: the private key file (PEM), resolved like ``cert``."""

    origins: tuple[str, ...] = ()
    """ws/wss: the allowed ``Origin`` header values, lower case
    (``https://phone.example.com``). Empty: any origin, or none, is accepted."""

    idle_timeout: float | None = None
    """tcp/tls/ws/wss: seconds a connection may stay silent before it is closed.
    None for udp, which has no connections."""

    key_passphrase_env: str | None = None
    """tls/wss: the environment variable holding ``key``'s passphrase."""

    key_passphrase_file: Path | None = None
    """tls/wss: a file whose first line is ``key``'s passphrase."""

    sni: tuple[CertFiles, ...] = ()
    """tls/wss: more certificates, each served to clients that ask (SNI) for a
    name in its subjectAltName; the default (``cert``) serves the rest."""

    tls_min_version: TlsVersion = TlsVersion.V1_2
    """tls/wss: the lowest TLS version accepted."""

    ciphers: str | None = None
    """tls/wss: the TLS 1.2 cipher list (OpenSSL syntax); None: Wedge's default."""

    client_ca: Path | None = None
    """tls/wss: ask every client for a certificate and verify it against this CA
    bundle (trunks that require client certificates bring their own)."""

    require_client_cert: bool = False
    """tls/wss: refuse clients without a certificate (needs ``client_ca``)."""

    x_ms_sbc: str | None = None
    """``X-MS-SBC`` header value on messages leaving this listener (Microsoft's
    SBC identification); ``{version}`` is replaced by Wedge's version. None: none."""

    rewrite_contact: bool = False
    """Contacts of messages leaving this listener name the listener's advertised
    host and port, for peers that insist on the SBC's FQDN there (as a proxy,
    Wedge leaves them alone otherwise)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trunk:
    """One ``[[trunk]]``: a SIP peer that routes send requests to."""

    name: str
    """Unique among trunks; routes refer to it."""

    uri: str
    """Where requests go, a ``sip:`` or ``sips:`` URI as written in the policy
    (validated here, parsed again by the layer that resolves it, RFC 3263)."""

    transport: Transport
    """The transport towards the trunk: ``transport`` in the policy, else the URI's
    ``;transport=``, else udp (tls for ``sips:``)."""

    media_profile: MediaProfile
    """The SDP profile of this leg: ``media_profile`` in the policy, else
    :data:`DEFAULT_MEDIA_PROFILES` for the transport."""

    codecs: tuple[str, ...] = ()
    """Codecs offered to this trunk, ``name[/rate[/channels]]`` in the caller's order
    (telephone-event always stays, for DTMF); empty: whatever the caller offers."""

    rtpengine_flags: tuple[str, ...] = ()
    """Raw ng flags rtpengine gets for this trunk's leg (recording, transcoding...);
    ignored by the built-in relay."""

    listener: str | None = None
    """The name of the listener whose socket sends to the trunk (same transport),
    or None to let the transport layer choose."""

    targets: tuple[TrunkTarget, ...] = ()
    """Addresses to send to instead of resolving ``uri`` (RFC 3263), chosen by
    priority and weight as SRV records are (RFC 2782). Empty: resolve ``uri``."""

    options_interval: float | None = None
    """Seconds between OPTIONS probes of each target; None: no probes."""

    options_timeout: float = 2.0
    """A probe unanswered this long failed."""

    down_after: int = 3
    """Consecutive failures (calls or probes) that take a target out of use."""

    up_after: int = 2
    """Consecutive probe successes that bring it back."""

    tls: TrunkTls | None = None
    """tls trunks: certificates, verification and pins; None for other transports."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkTls:
    """The TLS side of a tls trunk (``tls_*``, ``pin_sha256`` and kin)."""

    ca: Path | None = None
    """The CA bundle the trunk's certificates must chain to; None: the system's."""

    name: str | None = None
    """The name the trunk's certificate must carry, sent as SNI; None: the URI's
    host (an address is checked against the certificate's IP entries)."""

    identity: CertFiles | None = None
    """The client certificate presented on connections Wedge opens to the trunk;
    None: the certificate of the listener the connection leaves from."""

    ciphers: str | None = None
    """The TLS 1.2 cipher list toward the trunk; None: Wedge's default."""

    min_version: TlsVersion = TlsVersion.V1_2

    require_client_cert: bool = False
    """Connections the trunk opens to Wedge (from its targets' addresses) must
    present a certificate verified against ``ca`` and naming ``name``."""

    pins: tuple[str, ...] = ()
    """RFC 7469 pin-sha256 values (base64); the trunk's chain must contain one of
    these keys, on connections either side opens. Empty: no pinning."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkTarget:
    """One ``targets`` entry of a trunk: an address, with SRV-style priority and weight."""

    host: str
    """An IP address, as :mod:`socket` wants it (IPv6 without brackets)."""

    port: int

    priority: int = 10
    """Lower is tried first (RFC 2782)."""

    weight: int = 1
    """Share of calls among targets of one priority (RFC 2782); 0: last resort."""

    tls_name: str | None = None
    """tls trunks: the name this target's certificate carries and SNI asks for
    (``sip2.pstnhub.microsoft.com``); None: the trunk's ``tls_name``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One ``[[route]]``. Every condition that is set must hold; none set matches
    every request. Routes are tried in file order (:func:`choose_route`)."""

    name: str
    """Unique among routes; shows up in logs."""

    from_listener: str | None = None
    """Match requests that arrived on this listener."""

    from_trunk: str | None = None
    """Match requests that came from this trunk's address."""

    user_prefix: str | None = None
    """Match a Request-URI whose user part starts with this, compared as written
    (escapes kept, case-sensitive like a user part, RFC 3261 §19.1.4)."""

    domain: str | None = None
    """Match a Request-URI whose host is this one, in the comparison form of
    :func:`~gateway.config.values.host_key`: lower case, no trailing dot, IPv6
    bracketed and compressed."""

    from_source: tuple[IPNetwork, ...] = ()
    """Match requests whose source address is in one of these networks
    (``["192.0.2.0/24", "2001:db8::/32"]``); empty: any source."""

    to_trunk: str
    """The trunk a matching request goes to."""

    strip_prefix: str | None = None
    """Number normalisation: remove this from the start of the user part, if there."""

    add_prefix: str | None = None
    """Number normalisation: then put this in front of it (``+44``, ``9``)."""

    e164: bool = False
    """Number normalisation: last, write the number in E.164 form with a leading
    ``+`` (visual separators ``-.()`` and spaces removed, RFC 3966 §5.1.1)."""

    def normalise(self, user: str) -> str:
        """The Request-URI user part as this route sends it on."""
        if self.strip_prefix is not None and user.startswith(self.strip_prefix):
            user = user[len(self.strip_prefix) :]
        if self.add_prefix is not None:
            user = self.add_prefix + user
        if self.e164:
            digits = re.sub(r"[-.() ]|%20", "", user).lstrip("+")
            user = f"+{digits}"
        return user


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A whole policy file, validated."""

    wedge: WedgeSettings
    """The ``[wedge]`` settings (all defaults when the table is absent)."""

    media: MediaSettings
    """The ``[media]`` settings (all defaults when the table is absent)."""

    listeners: tuple[Listener, ...]
    """At least one, in file order."""

    trunks: tuple[Trunk, ...]
    """In file order; may be empty."""

    routes: tuple[Route, ...]
    """In file order, which is the order they are tried in; may be empty."""

    source: str
    """The file the policy came from, as error messages name it."""

    def listener(self, name: str) -> Listener:
        """The listener called ``name``; KeyError if there is none."""
        for listener in self.listeners:
            if listener.name == name:
                return listener
        raise KeyError(name)

    def trunk(self, name: str) -> Trunk:
        """The trunk called ``name``; KeyError if there is none."""
        for trunk in self.trunks:
            if trunk.name == name:
                return trunk
        raise KeyError(name)
