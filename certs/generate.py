"""Development certificates as code: a CA, server and client certificates, SPKI pins.

Pure (ARCHITECTURE.md §3): every function takes what it needs, including ``now``,
and returns objects or PEM bytes; nothing here reads the clock or the file system,
except :func:`write_pem`, which the callers use at the edge. Key generation draws
from the operating system's randomness; pass ``key=`` and ``serial=`` where a test
needs the same certificate twice.

Keys are ECDSA P-256: every TLS stack Wedge talks to (browsers, Kamailio, Teams,
OpenSSL 1.1+) accepts them, and they are small and fast to sign with.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_DAYS",
    "CLOCK_SKEW",
    "DTLS_DAYS",
    "LEAF_DAYS",
    "cert_pem",
    "key_pem",
    "make_ca",
    "make_certificate",
    "make_self_signed",
    "spki_pin_sha256",
    "write_pem",
]

CA_DAYS = 3650
"""Lifetime of a development CA: long, since every leaf chains to it."""
LEAF_DAYS = 825
"""Lifetime of a leaf: the most Apple platforms accept for a TLS server certificate
from a private CA (2019 policy), so the web demo works in Safari too."""
DTLS_DAYS = 30
"""Lifetime of a self-signed DTLS certificate: peers pin it by fingerprint, not by
date, so a short life costs nothing and limits how long a leaked key is useful (the
WebRTC default in browsers is 30 days as well)."""
CLOCK_SKEW = timedelta(hours=1)
"""How far before ``now`` a certificate becomes valid, so a peer whose clock runs a
little behind ours does not reject a certificate made a second ago."""

Key = ec.EllipticCurvePrivateKey


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(
    common_name: str,
    *,
    now: datetime,
    days: int = CA_DAYS,
    key: Key | None = None,
    serial: int | None = None,
) -> tuple[x509.Certificate, Key]:
    """A self-signed CA that may sign leaves but no further CAs (path length 0)."""
    key = key or _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


def make_certificate(
    ca_cert: x509.Certificate,
    ca_key: Key,
    common_name: str,
    san_dns: Sequence[str] = (),
    san_ips: Sequence[str] = (),
    *,
    now: datetime,
    client: bool = False,
    days: int = LEAF_DAYS,
    key: Key | None = None,
    serial: int | None = None,
    also_client: bool = False,
) -> tuple[x509.Certificate, Key]:
    """A leaf signed by ``ca_cert``: serverAuth, or clientAuth when ``client``, or
    both when ``also_client`` (an SBC presents its certificate both ways: as the
    server to peers that call it, as the client on connections it opens).

    Names go in the subjectAltName, which is all TLS clients check (RFC 6125 §6.4.4);
    a server certificate given no names gets ``common_name`` as its one DNS name.
    """
    key = key or _new_key()
    public = key.public_key()
    if not san_dns and not san_ips and not client:
        san_dns = [common_name]
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in san_dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in san_ips]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
    if also_client and not client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,  # ECDHE_ECDSA signs; a P-256 key never enciphers
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_self_signed(
    common_name: str,
    *,
    now: datetime,
    days: int = DTLS_DAYS,
    key: Key | None = None,
    serial: int | None = None,
) -> tuple[x509.Certificate, Key]:
    """A self-signed end-entity certificate, as DTLS-SRTP uses (RFC 5763 §5).

    Nothing chains to it: the peer checks it against the ``a=fingerprint`` it got in
    SDP, so it carries no names and no extensions beyond "not a CA".
    """
    key = key or _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    return builder.sign(key, hashes.SHA256()), key


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate in PEM, as ``ssl.SSLContext.load_cert_chain`` reads it."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key, passphrase: bytes | None = None) -> bytes:
    """The private key in PKCS#8 PEM: unencrypted (development keys), or encrypted
    with ``passphrase`` (the best cipher the library offers)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def spki_pin_sha256(cert: x509.Certificate) -> str:
    """The RFC 7469 pin: base64 of the SHA-256 of the DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def write_pem(path: str | os.PathLike[str], data: bytes) -> None:
    """Write PEM bytes readable by the owner only: the same call writes private keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
