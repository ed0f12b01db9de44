"""The wedge command's own jobs: certs init, check-message, run's argument checks."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_certs_init_makes_a_ca_and_certificates_that_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "--fqdn", "sbc.example.test", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "pin-sha256 (RFC 7469): " in printed and "SHA-256 fingerprint: " in printed
    server = x509.load_pem_x509_certificates((tmp_path / "server.pem").read_bytes())
    names = server[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "sbc.example.test" in names.get_values_for_type(x509.DNSName)
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0
    # The chain and key load into a TLS context, and a client trusting ca.pem accepts it.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    assert client.cert_store_stats()["x509_ca"] == 1


def test_example_policy_loads_once_its_certificates_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "policies" / "example.toml", tmp_path / "example.toml")
    assert main(["check-config", str(tmp_path / "example.toml")]) == 1
    main(["certs", "init", "--fqdn", "sbc.example.com", "--out", str(tmp_path / "certs")])
    capsys.readouterr()
    assert main(["check-config", str(tmp_path / "example.toml")]) == 0
    assert "ok (3 listeners, 2 trunks, 3 routes)" in capsys.readouterr().out


def test_certs_init_refuses_a_bad_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "init", "--fqdn", "not a name"]) == 2
    assert "is not a host name" in capsys.readouterr().err


def test_check_message_says_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    data = ROOT / "tests" / "data" / "sip" / "rfc4475"
    assert main(["check-message", str(data / "wsinv.dat"), str(data / "badvers.dat")]) == 1
    out = capsys.readouterr().out
    assert "wsinv.dat: valid: INVITE sip:vivekg@chair-dnrc.example.com;unknownparam" in out
    assert "badvers.dat: invalid: SIP version not supported (a request gets 505)" in out


def test_run_needs_a_policy_or_listen_and_pbx(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--listen", "udp:127.0.0.1:5060"]) == 2
    assert "give --config FILE, or at least --listen and --pbx" in capsys.readouterr().err


def test_run_reports_a_bad_flag_like_a_bad_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--listen", "udp:127.0.0.1", "--pbx", "sip:127.0.0.1:5080"]) == 1
    assert 'listener "udp-1".bind: expected host:port' in capsys.readouterr().err


def test_run_media_flag_takes_one_relay_or_rtpengine_instances(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["run", "--listen", "udp:127.0.0.1:5060", "--pbx", "sip:127.0.0.1:5080"]
    assert main([*base, "--media", "rtpengine:127.0.0.1:2223", "--media", "builtin"]) == 2
    assert "give one relay (builtin, none), or rtpengine:HOST:PORT ones" in capsys.readouterr().err
    assert main([*base, "--media", "kurento"]) == 2
    assert "--media 'kurento': expected builtin, none or rtpengine:HOST:PORT" in (
        capsys.readouterr().err
    )
    assert main([*base, "--media", "rtpengine:127.0.0.1"]) == 1
    assert "media.rtpengine[1]: expected host:port" in capsys.readouterr().err
