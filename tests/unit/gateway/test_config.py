"""Tests for gateway.config: policy files in, frozen values or file:line:key errors out."""

from __future__ import annotations

import contextlib
import textwrap
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli import main
from gateway.config import (
    DEFAULT_IDLE_TIMEOUT,
    MAX_CONFIG_CHARS,
    Config,
    ConfigError,
    ConfigErrors,
    Flags,
    Listener,
    LogFormat,
    LogLevel,
    MediaProfile,
    MediaRelay,
    Route,
    RtpengineInstance,
    Transport,
    Trunk,
    TrunkTarget,
    WedgeSettings,
    choose_route,
    config_with_flags,
    load_config,
    parse_config,
)
from gateway.config.locator import Locator

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
DATA = ROOT / "tests" / "data" / "config"
BASE = Path("/etc/wedge")

# A valid file to add one mistake to; line 1 is "[[listener]]".
GOOD = """\
[[listener]]
name = "pbx-side"
transport = "udp"
bind = "127.0.0.1:5060"

[[trunk]]
name = "pbx"
uri = "sip:127.0.0.1:5080"
"""


def parse(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "p.toml", BASE)


def errors(text: str) -> list[str]:
    """Every error for ``text``, one string each, in the order reported."""
    with pytest.raises(ConfigError) as info:
        parse(text)
    return [str(error) for error in info.value.errors]


def error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


# --- the shipped policies ----------------------------------------------------


def test_example_policy_parses() -> None:
    path = POLICIES / "example.toml"
    config = parse_config(path.read_text(), str(path), path.parent)
    assert config.wedge == WedgeSettings(
        fqdn="sbc.example.com",
        log_level=LogLevel.INFO,
        log_format=LogFormat.TEXT,
        nat_keepalive=25.0,
    )
    browsers = config.listener("browsers")
    assert browsers.transport is Transport.WSS
    assert (browsers.bind_host, browsers.bind_port) == ("0.0.0.0", 8443)
    assert (browsers.advertise_host, browsers.advertise_port) == ("sbc.example.com", 443)
    assert browsers.cert == POLICIES / "certs" / "server.pem"
    assert browsers.key == POLICIES / "certs" / "server.key"
    assert browsers.origins == ("https://phone.example.com",)
    assert browsers.idle_timeout == 300.0
    pbx_side = config.listener("pbx-side")
    assert (pbx_side.advertise_host, pbx_side.advertise_port) == ("10.0.0.1", 5060)
    assert pbx_side.idle_timeout is None and pbx_side.cert is None
    carrier_tls = config.listener("carrier-tls")
    assert carrier_tls.bind_host == "::"
    assert (carrier_tls.advertise_host, carrier_tls.advertise_port) == ("sbc.example.com", 5061)
    assert config.trunk("pbx") == Trunk(
        name="pbx",
        uri="sip:10.0.0.10:5060",
        transport=Transport.UDP,
        media_profile=MediaProfile.AVP,
        codecs=("PCMA", "PCMU", "G722"),
        listener="pbx-side",
        targets=(
            TrunkTarget(host="10.0.0.10", port=5060, priority=10, weight=60),
            TrunkTarget(host="10.0.0.11", port=5060, priority=10, weight=40),
            TrunkTarget(host="10.0.0.12", port=5060, priority=20, weight=1),
        ),
        options_interval=30.0,
    )
    carrier = config.trunk("carrier")
    assert (carrier.transport, carrier.media_profile) == (Transport.TLS, MediaProfile.SAVP_SDES)
    assert [route.name for route in config.routes] == [
        "pbx-international",
        "browsers-to-pbx",
        "carrier-to-pbx",
    ]
    assert config.source == str(path)


def test_example_policy_documents_every_key() -> None:
    text = (POLICIES / "example.toml").read_text()
    keys = [
        *("fqdn", "log_level", "log_format", "t1", "t2", "t4"),
        *("name", "transport", "bind", "advertise", "cert", "key", "origins", "idle_timeout"),
        *("uri", "media_profile", "listener"),
        *("from_listener", "from_trunk", "user_prefix", "domain", "to_trunk"),
    ]
    for key in keys:
        assert f"\n{key} = " in text, key


def test_minimal_policy_loads_without_certificates() -> None:
    config = load_config(POLICIES / "minimal.toml")
    assert config.listeners == (
        Listener(
            name="local",
            transport=Transport.UDP,
            bind_host="127.0.0.1",
            bind_port=5060,
            advertise_host="127.0.0.1",
            advertise_port=5060,
        ),
    )
    assert config.trunks == (
        Trunk(
            name="pbx",
            uri="sip:127.0.0.1:5080",
            transport=Transport.UDP,
            media_profile=MediaProfile.AVP,
        ),
    )
    assert config.routes == (Route(name="everything-to-pbx", to_trunk="pbx"),)
    assert config.wedge == WedgeSettings()


def test_example_policy_needs_its_certificates_to_load() -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(POLICIES / "example.toml")
    lines = (POLICIES / "example.toml").read_text().splitlines()

    def line_of(text: str, after: str) -> int:
        """The line of ``text`` after the line ``after`` (1-based)."""
        start = lines.index(after)
        return start + 1 + lines[start:].index(text)

    browsers, carrier_tls = 'name = "browsers"', 'name = "carrier-tls"'
    assert [(e.key, e.line) for e in info.value.errors] == [
        ('listener "browsers".cert', line_of('cert = "certs/server.pem"', browsers)),
        ('listener "browsers".key', line_of('key = "certs/server.key"', browsers)),
        ('listener "carrier-tls".cert', line_of('cert = "certs/server.pem"', carrier_tls)),
        ('listener "carrier-tls".key', line_of('key = "certs/server.key"', carrier_tls)),
        ('trunk "carrier".tls_ca', line_of('tls_ca = "certs/ca.pem"', 'name = "carrier"')),
        ('trunk "carrier".tls_cert', line_of('tls_cert = "certs/client.pem"', 'name = "carrier"')),
        ('trunk "carrier".tls_key', line_of('tls_key = "certs/client.key"', 'name = "carrier"')),
    ]


# --- load_config: the file checks --------------------------------------------


def test_load_config_resolves_paths_against_the_file() -> None:
    config = load_config(DATA / "tls-present.toml")
    listener = config.listener("browsers")
    assert listener.cert == DATA / "server.pem"
    assert listener.key == DATA / "server.key"
    assert listener.idle_timeout == DEFAULT_IDLE_TIMEOUT


def test_load_config_refuses_a_missing_certificate() -> None:
    path = DATA / "tls-missing.toml"
    parse_config(path.read_text(), str(path), path.parent)  # pure: files not looked at
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f'{path}:7: listener "carrier".cert: no such file: {DATA / "no-such-cert.pem"} '
        "(`wedge certs init` makes development ones)"
    )


def test_load_config_unreadable_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert str(info.value) == f"{tmp_path / 'absent.toml'}: cannot read: No such file or directory"
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"# ok\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == f"{bad}:2: not UTF-8 text (TOML is UTF-8)"


def test_load_config_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_config(path).listeners[0].name == "pbx-side"


def test_oversized_text_is_refused() -> None:
    text = "#" * (MAX_CONFIG_CHARS + 1)
    assert error(text) == f"p.toml: over {MAX_CONFIG_CHARS} characters; is this a policy file?"


# --- error format: exact strings ---------------------------------------------


def test_bad_bind_names_file_line_and_listener() -> None:
    text = """\
        [wedge]
        log_level = "debug"

        [[listener]]
        name = "browsers"
        transport = "ws"
        bind = "0.0.0.0"
        """
    assert error(text) == "p.toml:7: listener \"browsers\".bind: expected host:port, got '0.0.0.0'"


def test_error_attributes() -> None:
    with pytest.raises(ConfigError) as info:
        parse(GOOD.replace('"udp"', '"sctp"'))
    err = info.value
    assert (err.source, err.line, err.column) == ("p.toml", 3, None)
    assert err.key == 'listener "pbx-side".transport'
    assert err.message == "expected one of udp, tcp, tls, ws, wss, got 'sctp'"
    assert err.errors == (err,)


def test_missing_required_key_points_at_the_table_header() -> None:
    text = """\
        [[listener]]
        name = "a"
        transport = "udp"
        bind = "127.0.0.1:5060"

        [[listener]]
        name = "b"
        transport = "udp"
        """
    assert error(text) == 'p.toml:6: listener "b".bind: missing required key'


def test_unnamed_entries_are_counted_from_one() -> None:
    text = """\
        [[listener]]
        name = "a"
        transport = "udp"
        bind = "127.0.0.1:5060"

        [[listener]]
        transport = "udp"
        bind = "127.0.0.1:5070"
        """
    assert error(text) == "p.toml:6: listener[2].name: missing required key"


def test_invalid_name_is_not_used_to_name_the_entry() -> None:
    found = errors(GOOD.replace('name = "pbx-side"', 'name = "pbx side"'))
    assert found == [
        "p.toml:2: listener[1].name: expected a name of letters, digits, '.', '_' and '-' "
        "(at most 64, starting with a letter or digit), got 'pbx side'"
    ]


def test_unknown_key_suggests_the_close_one() -> None:
    text = GOOD.replace('transport = "udp"', 'trasnport = "udp"')
    assert errors(text) == [
        'p.toml:1: listener "pbx-side".transport: missing required key',
        'p.toml:3: listener "pbx-side".trasnport: unknown key; did you mean "transport"?',
    ]


def test_unknown_key_without_a_close_one_lists_the_keys() -> None:
    assert error(GOOD + 'colour = "blue"\n') == (
        'p.toml:9: trunk "pbx".colour: unknown key; expected one of '
        "name, uri, transport, media_profile, codecs, rtpengine_flags, listener, targets, "
        "options_interval, options_timeout, down_after, up_after, tls_ca, tls_name, "
        "tls_cert, tls_key, tls_key_passphrase_env, tls_key_passphrase_file, "
        "tls_min_version, ciphers, require_client_cert, pin_sha256"
    )


def test_unknown_top_level_table() -> None:
    text = GOOD + '\n[[routes]]\nname = "x"\nto_trunk = "pbx"\n'
    assert error(text) == 'p.toml:10: routes: unknown key; did you mean "route"?'


def test_wrong_types() -> None:
    text = """\
        [wedge]
        t1 = "fast"
        log_format = 1

        [[listener]]
        name = "x"
        transport = "tcp"
        bind = 5060
        idle_timeout = true
        """
    assert errors(text) == [
        "p.toml:2: wedge.t1: expected a number of seconds, got 'fast'",
        "p.toml:3: wedge.log_format: expected a string, got 1",
        'p.toml:8: listener "x".bind: expected a string, got 5060',
        'p.toml:9: listener "x".idle_timeout: expected a number of seconds, got true',
    ]


def test_enum_suggestion() -> None:
    assert error(GOOD.replace('"udp"', '"upd"')) == (
        'p.toml:3: listener "pbx-side".transport: expected one of udp, tcp, tls, ws, wss, '
        "got 'upd'; did you mean \"udp\"?"
    )


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("127.0.0.1:0", "expected a port 1..65535, got '0'"),
        ("127.0.0.1:65536", "expected a port 1..65535, got '65536'"),
        ("127.0.0.1:50x", "expected a port 1..65535, got '50x'"),
        ("127.0.0.1:", "expected a port 1..65535, got ''"),
        (":::5060", "an IPv6 address needs brackets, as in [::1]:5060; got ':::5060'"),
        ("[::1", "expected [IPv6 address] or [IPv6 address]:port, got '[::1'"),
        ("[::1]x", "expected [IPv6 address] or [IPv6 address]:port, got '[::1]x'"),
        ("[fe80::zz]:5060", "not an IPv6 address: 'fe80::zz'"),
        (
            "localhost:5060",
            "expected an IP address to bind (0.0.0.0 or [::] for every interface), got 'localhost'",
        ),
        (
            "10.0.0.300:5060",
            "expected an IP address to bind (0.0.0.0 or [::] for every interface), "
            "got '10.0.0.300'",
        ),
    ],
)
def test_bad_binds(bind: str, message: str) -> None:
    text = GOOD.replace("127.0.0.1:5060", bind)
    assert error(text) == f'p.toml:4: listener "pbx-side".bind: {message}'


def test_ipv6_bind_and_advertise() -> None:
    text = GOOD.replace('"127.0.0.1:5060"', '"[2001:db8::1]:5060"\nadvertise = "[2001:db8::2]"')
    listener = parse(text).listeners[0]
    assert (listener.bind_host, listener.bind_port) == ("2001:db8::1", 5060)
    assert (listener.advertise_host, listener.advertise_port) == ("[2001:db8::2]", 5060)
    text = GOOD.replace('"127.0.0.1:5060"', '"[2001:db8::1]:5060"')
    assert parse(text).listeners[0].advertise_host == "[2001:db8::1]"


@pytest.mark.parametrize(
    ("advertise", "host", "port"),
    [
        ("sbc.example.com", "sbc.example.com", 5060),
        ("sbc.example.com.:443", "sbc.example.com.", 443),
        ("192.0.2.7:5080", "192.0.2.7", 5080),
    ],
)
def test_advertise(advertise: str, host: str, port: int) -> None:
    text = GOOD.replace('"127.0.0.1:5060"', f'"0.0.0.0:5060"\nadvertise = "{advertise}"')
    listener = parse(text + '\n[media]\nadvertise = "192.0.2.9"\n').listeners[0]
    assert (listener.advertise_host, listener.advertise_port) == (host, port)


def test_bad_advertise() -> None:
    text = GOOD.replace('"127.0.0.1:5060"', '"127.0.0.1:5060"\nadvertise = "-bad-:5060"')
    assert error(text) == (
        "p.toml:5: listener \"pbx-side\".advertise: expected a host name or IP address, got '-bad-'"
    )


def test_wildcard_bind_needs_something_to_advertise() -> None:
    assert error(GOOD.replace("127.0.0.1:5060", "0.0.0.0:5060")) == (
        'p.toml:1: listener "pbx-side".advertise: missing: the listener binds the wildcard '
        "address 0.0.0.0, so say which address peers reach it at"
    )
    text = """\
        [[listener]]
        name = "b"
        transport = "wss"
        bind = "[::]:443"
        cert = "c.pem"
        key = "k.pem"
        """
    assert error(text) == (
        'p.toml:1: listener "b".advertise: missing: the listener binds the wildcard address '
        "::, so say which address peers reach it at (or set [wedge] fqdn)"
    )
    media = '[media]\nadvertise = "2001:db8::1"\n'
    policy = '[wedge]\nfqdn = "sbc.example.org"\n' + textwrap.dedent(text) + media
    listener = parse(policy).listeners[0]
    assert (listener.advertise_host, listener.advertise_port) == ("sbc.example.org", 443)
    assert listener.cert == BASE / "c.pem"


def test_media_binds_with_the_first_listener_and_needs_an_address_for_sdp() -> None:
    assert parse(GOOD).media.bind == "127.0.0.1"
    assert parse(GOOD).media.advertise is None
    wildcard = GOOD.replace('"127.0.0.1:5060"', '"0.0.0.0:5060"\nadvertise = "192.0.2.7"')
    assert (parse(wildcard).media.bind, parse(wildcard).media.advertise) == ("0.0.0.0", "192.0.2.7")
    by_name = GOOD.replace('"127.0.0.1:5060"', '"0.0.0.0:5060"\nadvertise = "sbc.example.org"')
    assert error(by_name) == (
        "p.toml: media.advertise: media binds to 0.0.0.0: set the address peers send media "
        "to (advertise)"
    )
    assert parse(by_name + '\n[media]\nrelay = "none"\n').media.relay == "none"
    assert parse(GOOD + "\n[media]\nworkers = 2\n").media.workers == 2
    assert error(GOOD + "\n[media]\nworkers = 0\n") == (
        "p.toml:11: media.workers: expected a whole number from 1 to 64, got 0"
    )
    assert error(GOOD + '\n[media]\nports = "40000-40009"\nworkers = 4\n') == (
        "p.toml:12: media.workers: 4 workers need at least 16 media ports"
    )
    assert error(GOOD + '\n[media]\nports = "50000-40000"\n') == (
        "p.toml:11: media.ports: expected 1024 <= FIRST < LAST <= 65535, got '50000-40000'"
    )


def test_media_on_rtpengine_instances_with_weights_and_a_fallback() -> None:
    media = parse(
        GOOD + '\n[media]\nrelay = "rtpengine"\nfallback = "builtin"\n'
        'rtpengine = ["127.0.0.1:2223", "[::1]:2224;weight=3", "rtpe.example.net:22222"]\n'
    ).media
    assert media.relay is MediaRelay.RTPENGINE and media.fallback is MediaRelay.BUILTIN
    assert media.rtpengine == (
        RtpengineInstance("127.0.0.1", 2223),
        RtpengineInstance("::1", 2224, 3),
        RtpengineInstance("rtpe.example.net", 22222),
    )
    one = parse(GOOD + '\n[media]\nrelay = "rtpengine"\nrtpengine = "127.0.0.1:2223"\n').media
    assert one.rtpengine == (RtpengineInstance("127.0.0.1", 2223),)
    assert one.fallback is MediaRelay.NONE
    # The built-in relay as fallback needs an address for SDP, like the built-in relay.
    wildcard = GOOD.replace('"127.0.0.1:5060"', '"0.0.0.0:5060"\nadvertise = "sbc.example.org"')
    rtpengine = '\n[media]\nrelay = "rtpengine"\nrtpengine = "127.0.0.1:2223"\n'
    assert parse(wildcard + rtpengine).media.fallback is MediaRelay.NONE
    assert error(wildcard + rtpengine + 'fallback = "builtin"\n') == (
        "p.toml:11: media.advertise: media binds to 0.0.0.0: set the address peers send media "
        "to (advertise)"
    )


def test_media_rtpengine_errors_name_the_line_and_key() -> None:
    assert error(GOOD + '\n[media]\nrelay = "rtpengine"\n') == (
        'p.toml:11: media.relay: relay = "rtpengine" needs its instances: '
        'rtpengine = ["host:port", ...] (each rtpengine\'s --listen-ng)'
    )
    assert errors(
        GOOD + '\n[media]\nrelay = "rtpengine"\nrtpengine = ["127.0.0.1", "h:2;weight=0",'
        ' "h:2;colour=red", 5, "h:2", "h:2", "no_such!:1"]\nfallback = "rtpengine"\n'
    ) == [
        "p.toml:12: media.rtpengine[1]: expected host:port (rtpengine's --listen-ng), "
        "got '127.0.0.1'",
        "p.toml:12: media.rtpengine[2]: weight: expected a whole number from 1 to 1000, got '0'",
        "p.toml:12: media.rtpengine[3]: unknown option 'colour=red'; expected weight=N",
        "p.toml:12: media.rtpengine[4]: expected a host:port string, got 5",
        "p.toml:12: media.rtpengine[6]: 'h:2' is listed twice",
        "p.toml:12: media.rtpengine[7]: expected an IP address or host name, got 'no_such!'",
        "p.toml:13: media.fallback: expected builtin or none (the relay rtpengine falls back to)",
    ]
    assert error(
        GOOD + '\n[media]\nrelay = "rtpengine"\nrtpengine = [\n  "h:1",\n  "h:x",\n]\n'
    ) == ("p.toml:14: media.rtpengine[2]: expected a port 1..65535, got 'x'")
    assert error(GOOD + '\n[media]\nrelay = "rtpengine"\nrtpengine = []\n') == (
        "p.toml:12: media.rtpengine: empty; give at least one host:port"
    )


def test_media_rtpengine_from_the_command_line() -> None:
    flags = Flags(
        listen=("udp:127.0.0.1:5060",),
        pbx="sip:127.0.0.1:5080",
        media_rtpengine=("127.0.0.1:2223", "127.0.0.2:2223;weight=2"),
        media_fallback="builtin",
    )
    media = config_with_flags(None, flags).media
    assert media.relay is MediaRelay.RTPENGINE and media.fallback is MediaRelay.BUILTIN
    assert media.rtpengine == (
        RtpengineInstance("127.0.0.1", 2223),
        RtpengineInstance("127.0.0.2", 2223, 2),
    )


def test_trunk_codecs_and_rtpengine_flags() -> None:
    text = GOOD.replace(
        'uri = "sip:127.0.0.1:5080"',
        'uri = "sip:127.0.0.1:5080"\ncodecs = ["PCMA", "opus/48000/2"]\n'
        'rtpengine_flags = ["record-call"]',
    )
    trunk = parse(text).trunks[0]
    assert trunk.codecs == ("PCMA", "opus/48000/2")
    assert trunk.rtpengine_flags == ("record-call",)
    uri = 'uri = "sip:127.0.0.1:5080"'
    bad = GOOD.replace(uri, uri + '\ncodecs = ["PCMA/x"]')
    assert error(bad).endswith(
        "trunk \"pbx\".codecs[1]: expected a codec as name[/rate[/channels]], got 'PCMA/x'"
    )


def test_fqdn_must_be_a_name() -> None:
    assert error('[wedge]\nfqdn = "192.0.2.1"\n' + GOOD) == (
        "p.toml:2: wedge.fqdn: expected a host name, got '192.0.2.1'"
    )


def test_transport_specific_keys() -> None:
    text = """\
        [[listener]]
        name = "tls"
        transport = "tls"
        bind = "127.0.0.1:5061"
        origins = ["https://a.example"]

        [[listener]]
        name = "udp"
        transport = "udp"
        bind = "127.0.0.1:5060"
        cert = "server.pem"
        idle_timeout = 30
        """
    assert errors(text) == [
        'p.toml:1: listener "tls".cert: missing required key: a tls listener needs a '
        "certificate file",
        'p.toml:1: listener "tls".key: missing required key: a tls listener needs a '
        "private key file",
        'p.toml:5: listener "tls".origins: only ws and wss listeners check origins, not tls',
        'p.toml:11: listener "udp".cert: only tls and wss listeners take one, not udp',
        'p.toml:12: listener "udp".idle_timeout: udp has no connections to time out',
    ]


def test_origins() -> None:
    text = """\
        [[listener]]
        name = "ws"
        transport = "ws"
        bind = "127.0.0.1:8080"
        origins = [
            "HTTPS://Phone.Example.com",
            "https://phone.example.com/app",
            7,
            "http://[::1]:8080",
        ]
        """
    assert errors(text) == [
        'p.toml:7: listener "ws".origins[2]: expected an origin such as '
        "https://phone.example.com (no path), got 'https://phone.example.com/app'",
        'p.toml:8: listener "ws".origins[3]: expected a string, got 7',
    ]
    text = text.replace('    "https://phone.example.com/app",\n', "").replace("    7,\n", "")
    listener = parse(text).listeners[0]
    assert listener.origins == ("https://phone.example.com", "http://[::1]:8080")


def test_empty_string_is_an_error() -> None:
    text = GOOD.replace('"127.0.0.1:5060"', '"127.0.0.1:5060"\nadvertise = ""')
    assert error(text) == (
        'p.toml:5: listener "pbx-side".advertise: empty; leave the key out instead'
    )


def test_duplicate_names() -> None:
    text = GOOD + '\n[[trunk]]\nname = "pbx"\nuri = "sip:127.0.0.1:5090"\n'
    assert error(text) == 'p.toml:11: trunk "pbx".name: "pbx" is already used at line 7'


def test_bind_clashes() -> None:
    text = """\
        [[listener]]
        name = "all"
        transport = "tcp"
        bind = "0.0.0.0:5060"
        advertise = "192.0.2.1"

        [[listener]]
        name = "udp"
        transport = "udp"
        bind = "127.0.0.1:5060"

        [[listener]]
        name = "ws"
        transport = "ws"
        bind = "127.0.0.1:5060"
        """
    assert error(text) == (
        'p.toml:15: listener "ws".bind: tcp port 5060 is already bound by listener "all" '
        "(line 4) on 0.0.0.0"
    )


def test_listener_section_shape() -> None:
    assert errors('[listener]\nname = "x"\n') == [
        "p.toml:1: listener: expected an array of tables ([[listener]]), got a table"
    ]
    assert errors("listener = [1]\n") == ["p.toml:1: listener[1]: expected a table, got 1"]
    assert errors("[wedge]\n") == ["p.toml: listener: at least one [[listener]] is required"]
    assert errors("wedge = 3\n" + GOOD) == ["p.toml:1: wedge: expected a table ([wedge]), got 3"]


def test_inline_tables_report_the_nearest_line() -> None:
    text = """\
        listener = [
            { name = "a", transport = "udp", bind = "127.0.0.1:5060" },
            { name = "b", transport = "udp", bind = "nowhere" },
        ]
        """
    # Keys inside an inline table have no line of their own: the entry's is used.
    assert error(text) == "p.toml:3: listener \"b\".bind: expected host:port, got 'nowhere'"


# --- timers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("t1 = 0", "wedge.t1: expected seconds in (0, 86400], got 0"),
        ("t4 = -1.5", "wedge.t4: expected seconds in (0, 86400], got -1.5"),
        ("t2 = nan", "wedge.t2: expected seconds in (0, 86400], got nan"),
        ("t2 = inf", "wedge.t2: expected seconds in (0, 86400], got inf"),
        ("t1 = 5", "wedge.t1: t1 (5) must not exceed t2 (default 4); set t2"),
        ("t2 = 0.25", "wedge.t2: t2 (0.25) must be at least t1 (default 0.5); set t1"),
        ("t1 = 2\nt2 = 1", "wedge.t2: t1 (2) must not exceed t2 (1) (RFC 3261 §17.1.2.2)"),
    ],
)
def test_bad_timers(table: str, message: str) -> None:
    found = error("[wedge]\n" + table + "\n" + GOOD)
    assert found.split(": ", 1)[1] == message
    assert found.startswith(f"p.toml:{1 + table.count(chr(10)) + 1}:")


def test_timers_accept_integers_and_defaults() -> None:
    settings_ = parse("[wedge]\nt1 = 1\nt2 = 8\n" + GOOD).wedge
    assert (settings_.t1, settings_.t2, settings_.t4) == (1.0, 8.0, 5.0)
    assert isinstance(settings_.t1, float)


# --- trunks ------------------------------------------------------------------


def trunk(lines: str) -> Trunk:
    return parse(GOOD.replace('uri = "sip:127.0.0.1:5080"\n', lines)).trunks[0]


def trunk_error(lines: str) -> str:
    return error(GOOD.replace('uri = "sip:127.0.0.1:5080"\n', lines))


@pytest.mark.parametrize(
    ("lines", "transport", "profile"),
    [
        ('uri = "sip:pbx.example.com"\n', Transport.UDP, MediaProfile.AVP),
        ('uri = "sip:pbx.example.com;transport=TCP"\n', Transport.TCP, MediaProfile.AVP),
        ('uri = "sips:pbx.example.com"\n', Transport.TLS, MediaProfile.SAVP_SDES),
        ('uri = "sips:pbx.example.com;transport=tcp"\n', Transport.TLS, MediaProfile.SAVP_SDES),
        ('uri = "sip:[2001:db8::5]:5060;transport=ws"\n', Transport.WS, MediaProfile.WEBRTC),
        ('uri = "sip:10.0.0.1"\ntransport = "wss"\n', Transport.WSS, MediaProfile.WEBRTC),
        (
            'uri = "sip:10.0.0.1"\ntransport = "tls"\nmedia_profile = "avp"\n',
            Transport.TLS,
            MediaProfile.AVP,
        ),
    ],
)
def test_trunk_defaults(lines: str, transport: Transport, profile: MediaProfile) -> None:
    found = trunk(lines)
    assert (found.transport, found.media_profile) == (transport, profile)
    assert found.uri == lines.split('"')[1]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('uri = "tel:+4930123"\n', "uri: expected a sip: or sips: URI, got 'tel:+4930123'"),
        ('uri = "sip:bad host"\n', "uri: malformed SIP URI: 'sip:bad host'"),
        ('uri = "sip:10.0.0.1:0"\n', "uri: expected a port 1..65535, got 0 in 'sip:10.0.0.1:0'"),
        (
            'uri = "sip:10.0.0.1;transport=sctp"\n',
            "uri: unsupported transport 'sctp' for a sip: URI (expected one of udp, tcp, tls, ws, "
            "wss)",
        ),
        (
            'uri = "sips:10.0.0.1;transport=udp"\n',
            "uri: unsupported transport 'udp' for a sips: URI (expected one of tcp, tls, ws, wss)",
        ),
        (
            'uri = "sip:10.0.0.1;transport=tcp"\ntransport = "udp"\n',
            "transport: udp conflicts with the URI's ;transport=tcp",
        ),
        (
            'uri = "sips:10.0.0.1"\ntransport = "tcp"\n',
            "transport: a sips: URI needs tls or wss, not tcp",
        ),
        (
            'uri = "sip:10.0.0.1"\nlistener = "pbx-sdie"\n',
            'listener: no listener named "pbx-sdie"; did you mean "pbx-side"?',
        ),
        (
            'uri = "sip:10.0.0.1"\ntransport = "tcp"\nlistener = "pbx-side"\n',
            'listener: listener "pbx-side" is udp, but the trunk uses tcp',
        ),
        (
            'uri = "sip:10.0.0.1"\nmedia_profile = "srtp"\n',
            "media_profile: expected one of avp, savp-sdes, savp-sdes-ice, webrtc, teams, "
            "got 'srtp'",
        ),
    ],
)
def test_bad_trunks(lines: str, message: str) -> None:
    found = trunk_error(lines)
    assert found.split(": ", 1)[1] == f'trunk "pbx".{message}'


def test_trunk_listener_same_transport() -> None:
    assert trunk('uri = "sip:10.0.0.1"\nlistener = "pbx-side"\n').listener == "pbx-side"


# --- routes ------------------------------------------------------------------

ROUTED = """\
[[listener]]
name = "browsers"
transport = "ws"
bind = "127.0.0.1:8080"

[[listener]]
name = "pbx-side"
transport = "udp"
bind = "127.0.0.1:5060"

[[trunk]]
name = "pbx"
uri = "sip:127.0.0.1:5080"

[[trunk]]
name = "carrier"
uri = "sip:192.0.2.50"

[[route]]
name = "pbx-international"
from_listener = "pbx-side"
from_trunk = "pbx"
user_prefix = "00"
to_trunk = "carrier"

[[route]]
name = "browsers-example"
from_listener = "browsers"
domain = "Example.COM."
to_trunk = "pbx"

[[route]]
name = "browsers-v6"
from_listener = "browsers"
domain = "2001:DB8::0:1"
to_trunk = "pbx"

[[route]]
name = "carrier-in"
from_trunk = "carrier"
to_trunk = "pbx"
"""


def test_route_values() -> None:
    config = parse(ROUTED)
    assert config.routes[1].domain == "example.com"
    assert config.routes[2].domain == "[2001:db8::1]"


@pytest.mark.parametrize(
    ("listener", "source", "user", "host", "expected"),
    [
        ("pbx-side", "pbx", "0049301234", "10.0.0.1", "pbx-international"),
        ("pbx-side", "pbx", "+49301234", "10.0.0.1", None),  # prefix fails
        ("pbx-side", None, "0049301234", "10.0.0.1", None),  # from_trunk fails
        ("browsers", "pbx", "0049301234", "10.0.0.1", None),  # from_listener fails
        ("pbx-side", "pbx", None, "10.0.0.1", None),  # no user, prefix wanted
        ("browsers", None, "alice", "EXAMPLE.com", "browsers-example"),
        ("browsers", None, None, "example.com.", "browsers-example"),
        ("browsers", None, "alice", "sub.example.com", None),
        ("browsers", None, "alice", "[2001:db8:0::1]", "browsers-v6"),
        ("browsers", None, "alice", "2001:db8::1", "browsers-v6"),
        ("browsers", "carrier", "alice", "example.com", "browsers-example"),  # file order
        ("browsers", "carrier", "alice", "example.net", "carrier-in"),
        ("pbx-side", "carrier", "00", "x", "carrier-in"),
    ],
)
def test_choose_route(
    listener: str, source: str | None, user: str | None, host: str, expected: str | None
) -> None:
    route = choose_route(parse(ROUTED), listener, source, user, host)
    assert (route.name if route else None) == expected


def test_choose_route_catch_all_and_none() -> None:
    assert choose_route(parse(GOOD), "pbx-side", None, "bob", "example.com") is None
    config = parse(GOOD + '\n[[route]]\nname = "all"\nto_trunk = "pbx"\n')
    route = choose_route(config, "pbx-side", None, None, "[::1]")
    assert route is not None and route.name == "all"


def test_bad_routes() -> None:
    text = GOOD + textwrap.dedent(
        """\

        [[route]]
        name = "all"
        to_trunk = "pbx"

        [[route]]
        name = "r2"
        from_listener = "pbx_side"
        from_trunk = "carrier"
        user_prefix = "00 49"
        domain = "exa mple.com"
        to_trunk = "pbx"

        [[route]]
        name = "r3"
        """
    )
    assert errors(text) == [
        'p.toml:10: route "all": matches every request, so the 2 routes after it never match; '
        "move it last",
        'p.toml:16: route "r2".from_listener: no listener named "pbx_side"; '
        'did you mean "pbx-side"?',
        'p.toml:17: route "r2".from_trunk: no trunk named "carrier"',
        "p.toml:18: route \"r2\".user_prefix: expected characters of a SIP user part, got '00 49'",
        "p.toml:19: route \"r2\".domain: expected a host name or IP address, got 'exa mple.com'",
        'p.toml:22: route "r3".to_trunk: missing required key',
    ]


# --- several errors at once ----------------------------------------------------


def test_all_errors_reported_in_one_pass() -> None:
    path = DATA / "broken.toml"
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert [str(e) for e in info.value.errors] == [
        f'{path}:3: wedge.log_levle: unknown key; did you mean "log_level"?',
        f'{path}:5: listener "browsers".cert: missing required key: a wss listener needs a '
        "certificate file",
        f'{path}:5: listener "browsers".key: missing required key: a wss listener needs a '
        "private key file",
        f"{path}:8: listener \"browsers\".bind: expected host:port, got '0.0.0.0'",
        f"{path}:12: trunk \"pbx\".uri: expected a sip: or sips: URI, got 'http://10.0.0.10'",
        f'{path}:16: route "all".to_trunk: no trunk named "pbxx"; did you mean "pbx"?',
    ]
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)
    assert (info.value.line, info.value.key) == (3, "wedge.log_levle")


def test_one_mistake_one_error() -> None:
    # The listener is broken, but a trunk and a route naming it are not told so.
    text = """\
        [[listener]]
        name = "side"
        transport = "udp"
        bind = "nowhere"

        [[trunk]]
        name = "pbx"
        uri = "sip:10.0.0.1"
        listener = "side"

        [[route]]
        name = "r"
        from_listener = "side"
        to_trunk = "pbx"
        """
    assert errors(text) == ["p.toml:4: listener \"side\".bind: expected host:port, got 'nowhere'"]


# --- TOML syntax ----------------------------------------------------------------


def test_toml_syntax_error_has_line_and_column() -> None:
    text = '[[listener]]\nname = "a"\ntransport "udp"\n'
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert (info.value.line, info.value.column) == (3, 11)
    assert str(info.value) == (
        "p.toml:3:11: invalid TOML: expected '=' after a key in a key/value pair"
    )


def test_toml_errors_without_position() -> None:
    assert error("a = 1\na = 2\n") == "p.toml:2:6: invalid TOML: cannot overwrite a value"
    assert error("a = 1\na = 2") == "p.toml:2: invalid TOML: cannot overwrite a value"
    assert error("x = 1\nbig = " + "9" * 5000 + "\n") == (
        "p.toml:2: invalid TOML: an integer with too many digits"
    )
    assert error("a = " + "[" * 5000 + "]" * 5000) == "p.toml: invalid TOML: nested too deeply"


# --- the line locator --------------------------------------------------------------


def test_locator_skips_values_that_look_like_keys() -> None:
    text = textwrap.dedent(
        """\
        # [[fake]] in a comment
        top = 1  # comment = 2
        [wedge]
        doc = \"\"\"
        [[listener]]
        nope = 1
        \"\"\"\"
        lit = '''
        [x]'''
        arr = [
          "a]", # a comment ] [
          { k = "}" },
        ]
        "quoted key" . 'dotted' = "v\\"al"
        after.dots = 3
        [[listener]]
        name = "a"
        [listener.tls]
        x = 1
        [[listener]]
        [[listener.sub]]
        [[listener.sub]]
        y = 2
        """
    )
    tomllib.loads(text)  # valid TOML
    locator = Locator(text)
    assert locator.line(("top",)) == 2
    assert locator.line(("wedge",)) == 3
    assert locator.line(("wedge", "doc")) == 4
    assert locator.line(("wedge", "lit")) == 8
    assert locator.line(("wedge", "arr")) == 10
    assert locator.line(("wedge", "arr", 0)) == 11
    assert locator.line(("wedge", "arr", 1)) == 12
    assert locator.line(("wedge", "arr", 1, "k")) == 12  # nearest: the item's line
    assert locator.line(("wedge", "quoted key", "dotted")) == 14
    assert locator.line(("wedge", "after", "dots")) == 15
    assert locator.line(("wedge", "after")) == 15
    assert locator.line(("listener", 0)) == 16
    assert locator.line(("listener", 0, "name")) == 17
    assert locator.line(("listener", 0, "tls", "x")) == 19
    assert locator.line(("listener", 1)) == 20
    assert locator.line(("listener", 1, "sub", 0)) == 21
    assert locator.line(("listener", 1, "sub", 1, "y")) == 23
    assert locator.line(("listener", 2)) == 16  # no such entry: nearest is [[listener]]
    assert locator.line(("nope",)) is None
    assert locator.line(("fake",)) is None


# Values that hold what looks like keys, headers, brackets and comments.
_TRICKY_VALUES = [
    "1",
    '"a = b"',
    "'[x]'",
    '"q\\"# ]"',
    '"""\n[[a]]\nk = 1\n"""',
    "'''\n= [\n'''",
    '"""x""""',
    "[\n  1, # ] [\n  2,\n]",
    '[ "]", { k = "}" }, [[]] ]',
    '{ a = "#", b = [1, 2] }',
    "1979-05-27 07:32:00Z",
    "[\n  [1, 2],\n  { a = 1, b = 2 }, 'x,'\n  , 3,\n]",
]
# Where the items of the array values above are, in lines after the key's.
_ITEM_LINES = {
    "[\n  [1, 2],\n  { a = 1, b = 2 }, 'x,'\n  , 3,\n]": (1, 2, 2, 3),
    "[\n  1, # ] [\n  2,\n]": (1, 2),
    '[ "]", { k = "}" }, [[]] ]': (0, 0, 0),
}


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "[[a]]", "[[b]]", "[[a.sub]]", "[t]"]),
            st.lists(st.sampled_from(_TRICKY_VALUES), max_size=4),
        ),
        max_size=6,
    )
)
def test_locator_finds_generated_keys(blocks: list[tuple[str, list[str]]]) -> None:
    lines: list[str] = []
    expected: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    tables = 0
    for header, values in blocks:
        if header.startswith("[["):
            name = header.strip("[]")
            if name == "a.sub":
                if ("a",) not in counts:
                    continue
                array: tuple[str | int, ...] = ("a", counts[("a",)] - 1, "sub")
            else:
                array = (name,)
            counts[array] = counts.get(array, 0) + 1
            table = (*array, counts[array] - 1)
            lines.append(header)
            expected[table] = len(lines)
        elif header == "[t]":
            tables += 1
            table = (f"t{tables}",)
            lines.append(f"[ t{tables} ]  # a [comment]")
            expected[table] = len(lines)
        for value in values:  # keys numbered across the file, so never repeated
            key = f"k{len(expected)}"
            lines.append(f"{key} = {value}")
            expected[(*table, key)] = len(lines)
            for item, offset in enumerate(_ITEM_LINES.get(value, ())):
                expected[(*table, key, item)] = len(lines) + offset
            lines[-1:] = lines[-1].split("\n")
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # the generator only writes valid TOML
    locator = Locator(text)
    for path, line in expected.items():
        assert locator.line(path) == line, (path, text)


@settings(max_examples=300)
@given(st.text(alphabet="[]{}=\"'#.,:\n ab01_-", max_size=60))
def test_locator_never_fails_on_valid_toml(text: str) -> None:
    try:
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return
    Locator(text)
    with contextlib.suppress(ConfigError):
        parse_config(text, "p.toml", BASE)


# --- properties ------------------------------------------------------------------


@settings(max_examples=300)
@given(st.text())
def test_any_text_gives_config_or_config_error(text: str) -> None:
    try:
        config = parse_config(text, "p.toml", BASE)
    except ConfigError as exc:
        assert exc.errors
        for err in exc.errors:
            assert str(err).startswith("p.toml")
    else:
        assert config.listeners


_EXAMPLE_LINES = (POLICIES / "example.toml").read_text().splitlines()
_FRAGMENTS = [
    '"udp"', '"0.0.0.0"', "5060", '"[::]:5060"', "true", "[]", '["x"]', '"pbx"', '""',
    '"sips:x;transport=udp"', "-1", "1e400", "{ a = 1 }", '"wss"', '"browsers"',
]  # fmt: skip


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_EXAMPLE_LINES) - 1),
            st.sampled_from(["drop", "dup", "value"]),
            st.sampled_from(_FRAGMENTS),
        ),
        max_size=6,
    )
)
def test_mutated_example_gives_config_or_config_error(
    edits: list[tuple[int, str, str]],
) -> None:
    lines = list(_EXAMPLE_LINES)
    for index, action, fragment in edits:
        index %= len(lines)
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif " = " in lines[index]:
            lines[index] = lines[index].split(" = ", 1)[0] + " = " + fragment
        if not lines:
            lines = [""]
    text = "\n".join(lines) + "\n"
    try:
        parse_config(text, "p.toml", POLICIES)
    except ConfigError as exc:
        for err in exc.errors:
            # Every schema error names a line that exists, unless none is knowable.
            if err.line is not None:
                assert 1 <= err.line <= len(lines)


# --- the command line ----------------------------------------------------------------


def test_cli_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    minimal = POLICIES / "minimal.toml"
    present = DATA / "tls-present.toml"
    assert main(["check-config", str(minimal), str(present)]) == 0
    assert capsys.readouterr().out == (
        f"{minimal}: ok (1 listener, 1 trunk, 1 route)\n"
        f"{present}: ok (1 listener, 0 trunks, 0 routes)\n"
    )
    broken = DATA / "broken.toml"
    assert main(["check-config", str(minimal), str(broken)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{minimal}: ok (1 listener, 1 trunk, 1 route)"
    assert len(out) == 7
    assert all(line.startswith(f"{broken}:") for line in out[1:])


def test_cli_check_message_still_works(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "options.sip"
    path.write_bytes(
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        b"Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert main(["check-message", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid: OPTIONS sip:bob@example.com")


def test_routes_match_source_networks_and_normalise_numbers() -> None:
    text = """\
        [[listener]]
        name = "pbx-side"
        transport = "udp"
        bind = "192.0.2.5:5060"

        [[trunk]]
        name = "carrier"
        uri = "sip:198.51.100.1"

        [[route]]
        name = "international"
        from_source = ["10.0.0.0/8", "2001:db8::/32"]
        user_prefix = "00"
        to_trunk = "carrier"
        strip_prefix = "00"
        e164 = true

        [[route]]
        name = "national"
        to_trunk = "carrier"
        strip_prefix = "0"
        add_prefix = "+44"
        """
    config = parse_config(textwrap.dedent(text), "p.toml", Path("."))
    international = choose_route(config, "pbx-side", None, "0044207", "x", "10.1.2.3")
    assert international is not None and international.name == "international"
    assert international.normalise("0044-20-7946.0000") == "+442079460000"
    national = choose_route(config, "pbx-side", None, "0044207", "x", "192.0.2.9")
    assert national is not None and national.name == "national"
    assert national.normalise("02079460000") == "+442079460000"
    v6 = choose_route(config, "pbx-side", None, "00", "x", "2001:db8::5")
    assert v6 is not None and v6.name == "international"


def test_bad_source_network_and_e164_are_reported() -> None:
    route = (
        '[[route]]\nname = "r9"\nto_trunk = "pbx"\nfrom_source = ["10.0.0.0/33"]\ne164 = "yes"\n'
    )
    found = errors(f"{GOOD}\n{route}")
    assert found[0].startswith('p.toml:13: route "r9".from_source[1]: expected an address')
    assert found[1] == "p.toml:14: route \"r9\".e164: expected true or false, got 'yes'"


def test_trunk_targets_and_probes() -> None:
    text = GOOD + (
        'targets = [{ address = "10.0.0.10:5060", priority = 10, weight = 60 },'
        ' { address = "[2001:db8::1]:5070" }]\n'
        "options_interval = 30\ndown_after = 1\n"
    )
    (trunk,) = parse(text).trunks
    assert [(t.host, t.port, t.priority, t.weight) for t in trunk.targets] == [
        ("10.0.0.10", 5060, 10, 60),
        ("2001:db8::1", 5070, 10, 1),
    ]
    assert (trunk.options_interval, trunk.down_after, trunk.up_after) == (30.0, 1, 2)


def test_bad_trunk_targets_are_reported() -> None:
    text = GOOD + (
        'targets = [{ address = "pbx.example.com:5060" }, { address = "10.0.0.1:5060", '
        'weight = -1 }, "10.0.0.2"]\ndown_after = 0\n'
    )
    found = errors(text)
    assert any("targets[1].address: expected an IP address" in line for line in found)
    assert any(
        "targets[2].weight: expected a whole number from 0 to 65535" in line for line in found
    )
    assert any("targets[3]: expected { address" in line for line in found)
    assert any("down_after: expected a whole number from 1 to 100, got 0" in line for line in found)


def test_sip_workers_split_the_media_ports() -> None:
    assert parse(GOOD).wedge.workers == 1
    assert parse("[wedge]\nworkers = 4\n" + GOOD).wedge.workers == 4
    assert error("[wedge]\nworkers = 65\n" + GOOD) == (
        "p.toml:2: wedge.workers: expected a whole number from 1 to 64, got 65"
    )
    few_ports = GOOD + '\n[media]\nports = "40000-40015"\nworkers = 2\n'
    assert parse(few_ports).media.workers == 2
    assert error("[wedge]\nworkers = 3\n" + few_ports) == (
        "p.toml:2: wedge.workers: 3 workers with 2 relay workers each need at least 24 "
        "media ports; [media] ports has 16"
    )
    # No built-in relay, no ports to share.
    assert parse("[wedge]\nworkers = 64\n" + GOOD + '\n[media]\nrelay = "none"\n').wedge.workers
    flagged = config_with_flags(None, Flags(listen=("udp:127.0.0.1:5060",), pbx="sip:p", workers=3))
    assert flagged.wedge.workers == 3
