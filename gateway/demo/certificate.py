"""The demo's HTTPS/WSS certificate: self-signed, made on first run, kept for the next.

It lives in the user's data directory (``$XDG_DATA_HOME/wedge/demo``, else
``~/.local/share/wedge/demo``), so a browser told once to trust it (or to accept it
after checking its fingerprint) keeps trusting it. It names ``localhost``,
``127.0.0.1``, ``::1`` and the address the demo listens on; it is made again when
it is about to expire, cannot be read, or does not name that address.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.generate import cert_pem, key_pem, write_pem

__all__ = ["DemoCertificate", "data_dir", "ensure_certificate", "fingerprint"]

DAYS = 365
"""Lifetime of the certificate."""
RENEW_BEFORE = timedelta(days=7)
"""A certificate this close to its end is replaced."""
CERT_FILE = "demo-cert.pem"
KEY_FILE = "demo-key.pem"


@dataclass(frozen=True, slots=True)
class DemoCertificate:
    cert: Path
    key: Path
    fingerprint: str
    """SHA-256 of the certificate, colon-separated upper-case hex, as browsers show it."""
    created: bool
    """Made by this run (else reused from an earlier one)."""


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the demo keeps its files (XDG Base Directory: data, not config or cache)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/share")
    return Path(base) / "wedge" / "demo"


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def ensure_certificate(folder: Path, host: str, now: datetime) -> DemoCertificate:
    """The certificate and key in ``folder`` for ``host``, made (again) if needed.

    Raises:
        OSError: ``folder`` cannot be made or written.
    """
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    current = _usable(cert_path, key_path, host, now)
    if current is not None:
        return DemoCertificate(cert_path, key_path, fingerprint(current), False)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = _make(host, now)
    write_pem(key_path, key_pem(key))
    write_pem(cert_path, cert_pem(cert))
    return DemoCertificate(cert_path, key_path, fingerprint(cert), True)


def _names(host: str) -> tuple[list[str], list[str]]:
    dns, ips = ["localhost"], ["127.0.0.1", "::1"]
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        if host not in dns:
            dns.append(host)
    else:
        if ip not in ips:
            ips.append(ip)
    return dns, ips


def _usable(cert_path: Path, key_path: Path, host: str, now: datetime) -> x509.Certificate | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return None
    dns, ips = _names(host)
    have_dns = set(names.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    if not set(dns) <= have_dns or not set(ips) <= have_ips:
        return None
    return cert


def _make(host: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed serverAuth certificate for the names of ``host``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Wedge demo")])
    dns, ips = _names(host)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key
