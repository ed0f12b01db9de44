"""Wedge's configuration: a policy file in, frozen values or errors out.

A policy file (``policies/*.toml``, documented key by key in
``policies/example.toml``) has four parts::

    [wedge]        global settings: advertised FQDN, logging, RFC 3261 timers
    [media]        the media relay: built-in, rtpengine or none, its address and ports
    [[listener]]   sockets Wedge listens on (udp, tcp, tls, ws, wss)
    [[trunk]]      SIP peers Wedge sends to (a PBX, a carrier, a Teams-style trunk)
    [[route]]      which trunk an initial request goes to; first match wins

:func:`parse_config` is pure: text in, a :class:`Config` or a :class:`ConfigError`
out, so a bad policy is a unit test. :func:`load_config` is the thin wrapper that
reads the file and checks that certificate files exist, the only I/O here.
Decisions over the values (:func:`choose_route`) are pure functions too; code
is handed a :class:`Config`, it never reads one globally (STYLE.md §3.4).

Errors::

    ConfigError        one problem: source file, line, dotted key, message
    └── ConfigErrors   several problems found in one pass, sorted by line

Both have an ``errors`` tuple (a lone :class:`ConfigError` is its own one-element
tuple), so ``for err in exc.errors: print(err)`` prints one line per problem::

    policies/x.toml:12: listener "browsers".bind: expected host:port, got '0.0.0.0'

Keys name array entries by their ``name`` when it is valid (``listener
"browsers"``), else by 1-based position (``listener[2]``), the way an operator
counts them in the file. Line numbers come from :class:`~gateway.config.locator.Locator`, a scan of
the text that tomllib has already accepted (tomllib reports no value positions).

Modules::

    loader       parse_config, load_config, Flags: the document and the command line
    wedge        [wedge]
    media        [media] and its rtpengine instances
    listeners    [[listener]], their TLS keys and SNI, clashing binds
    trunks       [[trunk]], their targets and TLS
    routes       [[route]] and choose_route
    tables       error collection (Report) and typed reads (Table)
    values       hosts, ports, addresses, origins, codecs, pins written as text
    schema       the frozen values a policy parses into
    errors       ConfigError, ConfigErrors
    locator      the line each key is written on
"""

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import Flags, config_with_flags, load_config, parse_config
from gateway.config.routes import choose_route
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

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MEDIA_PROFILES",
    "MAX_CONFIG_CHARS",
    "MAX_DURATION",
    "CertFiles",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "Flags",
    "Listener",
    "LogFormat",
    "LogLevel",
    "MediaProfile",
    "MediaRelay",
    "MediaSettings",
    "Route",
    "RtpengineInstance",
    "TlsVersion",
    "Transport",
    "Trunk",
    "TrunkTarget",
    "TrunkTls",
    "WedgeSettings",
    "choose_route",
    "config_with_flags",
    "load_config",
    "parse_config",
]
