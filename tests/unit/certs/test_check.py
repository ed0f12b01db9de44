"""certs.check, certs.load, certs.pinning: certificates and files in, verdicts out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certs.check import check_chain, covers, name_matches
from certs.generate import cert_pem, key_pem, make_ca, make_certificate, spki_pin_sha256
from certs.load import CertificateError, KeyFiles, read_passphrase
from certs.pinning import PeerRule, check_peer, parse_pin

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CA, CA_KEY = make_ca("Test CA", now=NOW - timedelta(days=10))
LEAF, LEAF_KEY = make_certificate(CA, CA_KEY, "sbc.example.com", now=NOW - timedelta(days=10))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("sbc.example.com", "SBC.Example.com.", True),
        ("*.example.com", "sbc.example.com", True),
        ("*.example.com", "a.sbc.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("*.com", "example.com", False),  # never right under a TLD
        ("s*.example.com", "sbc.example.com", False),  # a partial wildcard is no wildcard
        ("sbc.example.com", "other.example.com", False),
    ],
)
def test_rfc_2818_names(pattern: str, host: str, matches: bool) -> None:
    assert name_matches(pattern, host) is matches


def test_names_and_addresses_come_from_the_san_or_else_the_cn() -> None:
    cert, _ = make_certificate(CA, CA_KEY, "x", ["*.pstnhub.example"], ["127.0.0.1"], now=NOW)
    assert covers(cert, "sip2.pstnhub.example") and covers(cert, "127.0.0.1")
    assert not covers(cert, "x") and not covers(cert, "::1")
    # No DNS names at all: the CN counts (RFC 6125 §6.4.4).
    key = ec.generate_private_key(ec.SECP256R1())
    cn_only = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sbc.example.net")]))
        .issuer_name(CA.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=90))
        .sign(CA_KEY, hashes.SHA256())
    )
    assert covers(cn_only, "sbc.example.net")


def test_a_good_chain_passes_and_counts_its_days() -> None:
    report = check_chain([LEAF, CA], NOW, names=["sbc.example.com"])
    assert report.problems == () and report.warnings == ()
    assert report.days_left == 825 - 10  # the leaf ends first


def test_every_problem_is_named() -> None:
    expired, _ = make_certificate(
        CA, CA_KEY, "old.example.com", now=NOW - timedelta(days=100), days=30
    )
    report = check_chain([expired, CA], NOW, names=["sbc.example.com"])
    assert report.problems == (
        "the certificate (CN=old.example.com) does not cover sbc.example.com "
        "(it names old.example.com)",
        "the certificate (CN=old.example.com) expired on 2025-12-21 12:00 UTC",
    )
    other_ca, _ = make_ca("Other CA", now=NOW)
    (problem,) = check_chain([LEAF, other_ca], NOW).problems
    assert problem.startswith(
        "the chain is out of order: certificate 2 (CN=Other CA) did not issue certificate 1"
    )
    (problem,) = check_chain([CA, LEAF], NOW).problems  # reversed
    assert "out of order" in problem


def test_weak_keys_are_refused() -> None:
    for key, words in (
        (rsa.generate_private_key(65537, 1024), "its RSA key has 1024 bits; at least 2048"),
        (ec.generate_private_key(ec.SECP192R1()), "its EC key is on secp192r1"),
    ):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
            .issuer_name(CA.subject)
            .public_key(key.public_key())
            .serial_number(9)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=90))
        )
        (problem,) = check_chain([builder.sign(CA_KEY, hashes.SHA256())], NOW).problems
        assert words in problem
    strong = rsa.generate_private_key(65537, 2048)
    cert, _ = make_certificate(CA, CA_KEY, "rsa", now=NOW, key=strong)  # type: ignore[arg-type]
    assert check_chain([cert], NOW).problems == ()


def test_expiry_warning() -> None:
    soon, _ = make_certificate(CA, CA_KEY, "soon", now=NOW - timedelta(days=80), days=90)
    report = check_chain([soon], NOW, warn_days=30)
    assert report.problems == () and report.days_left == 10
    assert report.warnings == ("the certificate (CN=soon) expires in 10 days, on 2026-03-11 UTC",)


# -- loading ---------------------------------------------------------------------


def files(tmp_path: Path, *, chain: bytes, key: bytes, **options: object) -> KeyFiles:
    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    folder.mkdir()
    (folder / "c.pem").write_bytes(chain)
    (folder / "k.pem").write_bytes(key)
    return KeyFiles(folder / "c.pem", folder / "k.pem", **options)  # type: ignore[arg-type]


def problem(files: KeyFiles) -> str:
    with pytest.raises(CertificateError) as caught:
        files.load()
    return str(caught.value)


def test_bad_files_say_which_and_why(tmp_path: Path) -> None:
    chain, key = cert_pem(LEAF) + cert_pem(CA), key_pem(LEAF_KEY)
    assert files(tmp_path, chain=chain, key=key).load().leaf == LEAF
    other = key_pem(ec.generate_private_key(ec.SECP256R1()))
    cases = {
        "no such file (the certificate chain)": KeyFiles(tmp_path / "nope.pem", tmp_path / "k"),
        "c.pem: no PEM certificate in it (this is a private key)": files(
            tmp_path, chain=key, key=key
        ),
        "c.pem: garbled PEM certificate": files(
            tmp_path, chain=chain.replace(b"MI", b"xx", 1), key=key
        ),
        "k.pem: does not match the certificate in": files(tmp_path, chain=chain, key=other),
        "k.pem: no PEM private key in it (this is a certificate)": files(
            tmp_path, chain=chain, key=chain
        ),
    }
    for words, case in cases.items():
        assert words in problem(case)


def test_encrypted_keys_take_a_passphrase_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain, key = cert_pem(LEAF), key_pem(LEAF_KEY, b"s3cret")
    assert b"ENCRYPTED" in key
    assert "the key is encrypted: set key_passphrase_env" in problem(
        files(tmp_path, chain=chain, key=key)
    )
    monkeypatch.setenv("WEDGE_TEST_PASS", "s3cret")
    assert files(tmp_path, chain=chain, key=key, passphrase_env="WEDGE_TEST_PASS").load()
    monkeypatch.setenv("WEDGE_TEST_PASS", "wrong")
    assert "wrong passphrase" in problem(
        files(tmp_path, chain=chain, key=key, passphrase_env="WEDGE_TEST_PASS")
    )
    (tmp_path / "pass").write_bytes(b"s3cret\n")
    assert files(tmp_path, chain=chain, key=key, passphrase_file=tmp_path / "pass").load()
    with pytest.raises(CertificateError, match=r"\$UNSET_VAR: the key passphrase variable"):
        read_passphrase("UNSET_VAR", None)


# -- pins ------------------------------------------------------------------------


def test_pins_parse_and_match_any_certificate_of_the_chain() -> None:
    pin = spki_pin_sha256(LEAF)
    assert parse_pin(pin) == pin and parse_pin(f'pin-sha256="{pin}"') == pin
    for bad in ("not base64!", "AAAA"):
        with pytest.raises(ValueError):
            parse_pin(bad)
    chain = [der(LEAF), der(CA)]
    assert check_peer(chain, PeerRule("t", pins=(pin,)), inbound=False) is None
    assert check_peer(chain, PeerRule("t", pins=(spki_pin_sha256(CA),)), inbound=False) is None
    refusal = check_peer(chain, PeerRule("t", pins=("A" * 43 + "=",)), inbound=False)
    assert refusal is not None and (refusal.reason, refusal.presented) == ("pin mismatch", pin)


def test_inbound_peers_need_a_certificate_with_the_trunks_name() -> None:
    rule = PeerRule("teams", name="sip.pstnhub.example", require_cert=True)
    refusal = check_peer([], rule, inbound=True)
    assert refusal is not None and refusal.reason == "no certificate presented"
    refusal = check_peer([der(LEAF)], rule, inbound=True)
    assert refusal is not None
    assert refusal.reason == "certificate is not for sip.pstnhub.example (it names sbc.example.com)"
    teams, _ = make_certificate(CA, CA_KEY, "x", ["*.pstnhub.example"], now=NOW, client=True)
    assert check_peer([der(teams)], rule, inbound=True) is None
    assert check_peer([], PeerRule("pbx"), inbound=True) is None
