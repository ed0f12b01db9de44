"""The TLS keys of a policy, the shipped TLS policies, and certificate files at start."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certs.generate import cert_pem, key_pem, make_ca, make_certificate, spki_pin_sha256
from gateway.cli import main
from gateway.config import (
    CertFiles,
    ConfigError,
    TlsVersion,
    TrunkTarget,
    TrunkTls,
    load_config,
    parse_config,
)
from gateway.tls import TlsManager, TlsSetupError

ROOT = Path(__file__).resolve().parents[3]
BASE = Path("/etc/wedge")
NOW = datetime.now(UTC)

TLS_LISTENER = """\
[[listener]]
name = "teams"
transport = "tls"
bind = "127.0.0.1:5061"
advertise = "sbc.example.com"
cert = "sbc.pem"
key = "sbc.key"
"""


def parse(text: str) -> object:
    return parse_config(textwrap.dedent(text), "p.toml", BASE)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return [str(error) for error in caught.value.errors]


def test_listener_tls_keys() -> None:
    config = parse_config(
        TLS_LISTENER
        + textwrap.dedent("""\
        key_passphrase_env = "SBC_PASS"
        sni = [{ cert = "b.pem", key = "b.key", key_passphrase_file = "b.pass" }]
        tls_min_version = "1.3"
        ciphers = "ECDHE-RSA-AES256-GCM-SHA384"
        client_ca = "clients.pem"
        require_client_cert = true
        x_ms_sbc = true
        rewrite_contact = true
        """),
        "p.toml",
        BASE,
    )
    listener = config.listener("teams")
    assert listener.key_passphrase_env == "SBC_PASS"
    assert listener.sni == (
        CertFiles(cert=BASE / "b.pem", key=BASE / "b.key", key_passphrase_file=BASE / "b.pass"),
    )
    assert listener.tls_min_version is TlsVersion.V1_3
    assert listener.ciphers == "ECDHE-RSA-AES256-GCM-SHA384"
    assert (listener.client_ca, listener.require_client_cert) == (BASE / "clients.pem", True)
    assert listener.x_ms_sbc == "Wedge/SBC/{version}" and listener.rewrite_contact


def test_listener_tls_key_mistakes() -> None:
    udp = '[[listener]]\nname = "u"\ntransport = "udp"\nbind = "127.0.0.1:5060"\n'
    assert errors(udp + 'sni = []\nciphers = "x"\n') == [
        'p.toml:5: listener "u".sni: expected an array of { cert = "...", key = "..." } tables, '
        "got an array",
        'p.toml:5: listener "u".sni: only tls and wss listeners take one, not udp',
        'p.toml:6: listener "u".ciphers: only tls and wss listeners take one, not udp',
    ]
    assert errors(
        TLS_LISTENER
        + 'key_passphrase_env = "1X"\nrequire_client_cert = true\ntls_min_version = "1.1"\n'
        + 'x_ms_sbc = "a\\nb"\nsni = [{ cert = "b.pem" }]\n'
    ) == [
        'p.toml:8: listener "teams".key_passphrase_env: expected an environment variable '
        "name, got '1X'",
        'p.toml:9: listener "teams".require_client_cert: needs client_ca: the CA bundle that '
        "client certificates must chain to",
        "p.toml:10: listener \"teams\".tls_min_version: expected one of 1.2, 1.3, got '1.1'; "
        'did you mean "1.3"?',
        'p.toml:11: listener "teams".x_ms_sbc: expected printable ASCII text of at most 200 '
        "characters, got 'a\\nb'",
        'p.toml:12: listener "teams".sni[1].key: missing required key',
    ]
    assert errors(TLS_LISTENER + 'key_passphrase_env = "A"\nkey_passphrase_file = "p"\n') == [
        'p.toml:9: listener "teams".key_passphrase_file: give key_passphrase_env or '
        "key_passphrase_file, not both"
    ]


TRUNK = """\
[[trunk]]
name = "teams"
uri = "sip:sip.pstnhub.example:5061;transport=tls"
"""


def test_trunk_tls_keys() -> None:
    pin = spki_pin_sha256(make_ca("x", now=NOW)[0])
    config = parse_config(
        TLS_LISTENER
        + TRUNK
        + textwrap.dedent(f"""\
        targets = [{{ address = "192.0.2.1:5061", tls_name = "SIP2.pstnhub.example." }}]
        tls_ca = "ms.pem"
        tls_name = "sip.pstnhub.example"
        tls_cert = "c.pem"
        tls_key = "c.key"
        tls_key_passphrase_env = "C_PASS"
        require_client_cert = true
        pin_sha256 = ["{pin}", 'pin-sha256="{pin}"']
        """),
        "p.toml",
        BASE,
    )
    trunk = config.trunk("teams")
    assert trunk.targets == (
        TrunkTarget(host="192.0.2.1", port=5061, tls_name="sip2.pstnhub.example"),
    )
    assert trunk.options_interval == 60.0  # tls trunks are kept alive by default
    assert trunk.tls == TrunkTls(
        ca=BASE / "ms.pem",
        name="sip.pstnhub.example",
        identity=CertFiles(cert=BASE / "c.pem", key=BASE / "c.key", key_passphrase_env="C_PASS"),
        require_client_cert=True,
        pins=(pin,),
    )
    plain = parse_config(TLS_LISTENER + TRUNK, "p.toml", BASE).trunk("teams")
    assert plain.tls == TrunkTls()


def test_trunk_tls_key_mistakes() -> None:
    udp_trunk = '[[trunk]]\nname = "pbx"\nuri = "sip:192.0.2.9"\n'
    found = errors(TLS_LISTENER + udp_trunk + 'tls_ca = "x.pem"\npin_sha256 = ["AAAA"]\n')
    assert found == [
        'p.toml:11: trunk "pbx".tls_ca: only tls trunks take one, not udp',
        'p.toml:12: trunk "pbx".pin_sha256[1]: expected a pin-sha256 value (base64 of a '
        "SHA-256: 44 characters; `wedge certs pin FILE` prints one): a SHA-256 pin is 32 "
        "bytes, this one 3",
        'p.toml:12: trunk "pbx".pin_sha256: only tls trunks take one, not udp',
    ]
    found = errors(TLS_LISTENER + TRUNK + 'tls_cert = "c.pem"\npin_sha256 = []\n')
    assert found == [
        'p.toml:11: trunk "teams".tls_cert: needs tls_key too (the client certificate and its key)',
        'p.toml:12: trunk "teams".pin_sha256: empty; leave the key out for no pinning',
    ]
    found = errors(TLS_LISTENER + udp_trunk + 'tls_name = "x.example"\n')
    assert found == ['p.toml:11: trunk "pbx".tls_name: only tls trunks take one, not udp']


def test_wedge_tls_keys() -> None:
    config = parse_config(
        '[wedge]\nuser_agent = "Acme SBC {version}"\ncert_warn_days = 45\ncert_watch = 0\n'
        + TLS_LISTENER,
        "p.toml",
        BASE,
    )
    assert config.wedge.user_agent == "Acme SBC {version}"
    assert (config.wedge.cert_warn_days, config.wedge.cert_watch) == (45, 0.0)


# -- the shipped TLS policies, with certificates made here ---------------------------


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_shipped_tls_policies_pass_check_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, ca_key = make_ca("Test Public CA", now=NOW)
    sbc, sbc_key = make_certificate(ca, ca_key, "sbc.contoso.com", now=NOW, also_client=True)
    teams = tmp_path / "teams"
    shutil.copy(ROOT / "policies" / "teams-direct-routing.toml", teams.with_suffix(".toml"))
    _write(tmp_path / "certs" / "sbc.pem", cert_pem(sbc) + cert_pem(ca))
    _write(tmp_path / "certs" / "sbc.key", key_pem(sbc_key))
    _write(tmp_path / "certs" / "microsoft-roots.pem", cert_pem(ca))

    acme, acme_key = make_certificate(ca, ca_key, "sbc.acme.example", now=NOW)
    other, other_key = make_certificate(ca, ca_key, "sbc-b.acme.example", now=NOW)
    mtls = tmp_path / "enterprise-mtls.toml"
    shutil.copy(ROOT / "policies" / "enterprise-mtls.toml", mtls)
    _write(tmp_path / "certs" / "sbc.pem", cert_pem(sbc) + cert_pem(ca))
    for name, cert, key in (("sbc", acme, acme_key), ("sbc-b", other, other_key)):
        _write(tmp_path / "mtls" / "certs" / f"{name}.pem", cert_pem(cert) + cert_pem(ca))
        _write(tmp_path / "mtls" / "certs" / f"{name}.key", key_pem(key, b"correct horse"))
    _write(tmp_path / "mtls" / "certs" / "partner-ca.pem", cert_pem(ca))
    shutil.move(mtls, tmp_path / "mtls" / "enterprise-mtls.toml")
    mtls = tmp_path / "mtls" / "enterprise-mtls.toml"

    assert main(["check-config", str(teams.with_suffix(".toml"))]) == 0
    assert "teams.toml: ok (2 listeners, 2 trunks, 2 routes)" in capsys.readouterr().out
    # The encrypted keys need their passphrase, from the environment.
    monkeypatch.delenv("WEDGE_KEY_PASSPHRASE", raising=False)
    assert main(["check-config", str(mtls)]) == 1
    assert "$WEDGE_KEY_PASSPHRASE: the key passphrase variable is not set" in (
        capsys.readouterr().out
    )
    monkeypatch.setenv("WEDGE_KEY_PASSPHRASE", "correct horse")
    assert main(["check-config", str(mtls)]) == 0
    assert "enterprise-mtls.toml: ok (2 listeners, 2 trunks, 2 routes)" in capsys.readouterr().out


# -- certificate files at start ------------------------------------------------------


def start_problems(tmp_path: Path, chain: bytes, key: bytes) -> list[str]:
    _write(tmp_path / "sbc.pem", chain)
    _write(tmp_path / "sbc.key", key)
    (tmp_path / "p.toml").write_text(TLS_LISTENER)
    config = load_config(tmp_path / "p.toml")
    with pytest.raises(TlsSetupError) as caught:
        TlsManager(config, now=lambda: NOW).load()
    return caught.value.problems


def test_bad_certificate_files_refuse_the_start_naming_file_and_problem(tmp_path: Path) -> None:
    ca, ca_key = make_ca("CA", now=NOW)
    good, good_key = make_certificate(ca, ca_key, "sbc.example.com", now=NOW)
    cert = str(tmp_path / "sbc.pem")
    key = str(tmp_path / "sbc.key")
    expired, expired_key = make_certificate(
        ca, ca_key, "sbc.example.com", now=NOW - timedelta(days=60), days=30
    )
    stranger = key_pem(ec.generate_private_key(ec.SECP256R1()))
    wrong_name, wrong_key = make_certificate(ca, ca_key, "other.example.com", now=NOW)
    cases = [
        (b"", key_pem(good_key), f"{cert}: no PEM certificate in it"),
        (
            cert_pem(good).replace(b"MII", b"MIX"),
            key_pem(good_key),
            f"{cert}: garbled PEM certificate",
        ),
        (
            cert_pem(expired),
            key_pem(expired_key),
            f"{cert}: the certificate (CN=sbc.example.com) expired on",
        ),
        (cert_pem(good), stranger, f"{key}: does not match the certificate in {cert}"),
        (
            cert_pem(wrong_name),
            key_pem(wrong_key),
            f"{cert}: the certificate (CN=other.example.com) does not cover sbc.example.com",
        ),
        (cert_pem(ca) + cert_pem(good), key_pem(good_key), "does not match the certificate"),
    ]
    for chain, key_data, words in cases:
        (problem,) = start_problems(tmp_path, chain, key_data)
        assert words in problem, problem
        assert problem.endswith('(listener "teams")')


def test_certs_pin_prints_each_certificates_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, ca_key = make_ca("Pin CA", now=NOW)
    leaf, _ = make_certificate(ca, ca_key, "sbc.example.com", now=NOW)
    _write(tmp_path / "chain.pem", cert_pem(leaf) + cert_pem(ca))
    assert main(["certs", "pin", str(tmp_path / "chain.pem")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'chain.pem'}: CN=sbc.example.com pin-sha256={spki_pin_sha256(leaf)}",
        f"{tmp_path / 'chain.pem'}: CN=Pin CA pin-sha256={spki_pin_sha256(ca)}",
    ]
    assert main(["certs", "pin", str(tmp_path / "none.pem")]) == 1
    assert "none.pem: no such file" in capsys.readouterr().err


def test_an_advertised_address_not_in_the_certificate_is_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca, ca_key = make_ca("CA", now=NOW)
    cert, key = make_certificate(ca, ca_key, "sbc.example.com", now=NOW)
    _write(tmp_path / "sbc.pem", cert_pem(cert))
    _write(tmp_path / "sbc.key", key_pem(key))
    (tmp_path / "p.toml").write_text(TLS_LISTENER.replace('advertise = "sbc.example.com"\n', ""))
    TlsManager(load_config(tmp_path / "p.toml"), now=lambda: NOW).load()
    assert "does not cover 127.0.0.1 (it names sbc.example.com)" in caplog.text
