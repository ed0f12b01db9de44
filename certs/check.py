"""What a certificate must be before Wedge serves it: the checks run at start and reload.

Pure: certificates and ``now`` in, problems out. A listener's certificate must

- name the host the listener advertises: a subjectAltName DNS entry, with RFC 2818
  §3.1's wildcard of exactly one left-most label (``*.example.com`` covers
  ``sbc.example.com``, not ``a.sbc.example.com`` nor ``example.com``), or the
  subject CN when the certificate has no DNS names at all; an IP address only by
  an iPAddress entry (RFC 2818 §3.1 again);
- be valid now, and so must every certificate after it in the file;
- have a key peers accept: RSA of 2048 bits or more, or ECDSA on P-256 or larger
  (what Microsoft's Direct Routing and the CA/Browser Forum ask for);
- come with its chain in order: each certificate issued (and signed) by the next.

Problems are sentences; the caller puts the file name in front.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "ACCEPTED_CURVES",
    "MIN_RSA_BITS",
    "Report",
    "certificate_names",
    "check_chain",
    "covers",
    "describe",
    "name_matches",
]

MIN_RSA_BITS = 2048
ACCEPTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of :func:`check_chain`: problems refuse the file, warnings do not."""

    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    days_left: int
    """Whole days until the first certificate of the chain to expire does."""


def describe(cert: x509.Certificate) -> str:
    """``CN=sbc.example.com`` (or the whole subject when it has no CN)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return f"CN={names[0].value!s}"
    return cert.subject.rfc4514_string() or "an empty subject"


def certificate_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses a certificate is for: its subjectAltName
    entries, or the subject CN when there are no DNS entries (RFC 6125 §6.4.4)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns, ips = [], []
    else:
        dns = [str(name) for name in san.get_values_for_type(x509.DNSName)]
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    if not dns:
        dns = [
            str(attribute.value)
            for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if _looks_like_a_name(str(attribute.value))
        ]
    return dns, ips


def _looks_like_a_name(text: str) -> bool:
    return "." in text and " " not in text and not _is_ip(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def name_matches(pattern: str, host: str) -> bool:
    """RFC 2818 §3.1 / RFC 6125 §6.4.3: ``pattern`` (a certificate's DNS name) covers
    ``host``. A ``*`` only as the whole left-most label, standing for exactly one
    label, and never directly under a top-level domain (``*.com``)."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if not pattern or not host:
        return False
    if not pattern.startswith("*."):
        return pattern == host
    suffix = pattern[2:]
    if "*" in suffix or suffix.count(".") < 1:
        return False
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == suffix


def covers(cert: x509.Certificate, host: str) -> bool:
    """The certificate is for ``host``: a name or an IP address (brackets allowed)."""
    dns, ips = certificate_names(cert)
    bare = host.strip("[]")
    if _is_ip(bare):
        wanted = ipaddress.ip_address(bare)
        return any(ipaddress.ip_address(ip) == wanted for ip in ips)
    return any(name_matches(pattern, host) for pattern in dns)


def _key_problem(cert: x509.Certificate) -> str | None:
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            return f"its RSA key has {public.key_size} bits; at least {MIN_RSA_BITS} are needed"
        return None
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in ACCEPTED_CURVES:
            return (
                f"its EC key is on {public.curve.name}; use P-256 or larger "
                f"({', '.join(ACCEPTED_CURVES)})"
            )
        return None
    return (
        f"its key type ({type(public).__name__.removeprefix('_')}) is not accepted: "
        f"use RSA of {MIN_RSA_BITS}+ bits or ECDSA P-256"
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, or a key type that cannot sign
        return False
    return True


def check_chain(
    chain: Sequence[x509.Certificate],
    now: datetime,
    *,
    names: Sequence[str] = (),
    warn_days: int = 30,
) -> Report:
    """Check a chain (leaf first) as the module docstring says.

    Args:
        chain: the certificates of one file, in file order.
        now: the time to check validity at (aware, UTC).
        names: hosts the leaf must cover (the advertised FQDN or address).
        warn_days: a certificate expiring within this many days gets a warning.
    """
    problems: list[str] = []
    warnings: list[str] = []
    if not chain:
        return Report(("no certificate in it",), (), 0)
    leaf = chain[0]
    for host in names:
        if not covers(leaf, host):
            dns, ips = certificate_names(leaf)
            listed = ", ".join([*dns, *ips]) or "no names"
            problems.append(
                f"the certificate ({describe(leaf)}) does not cover {host} (it names {listed})"
            )
    key = _key_problem(leaf)
    if key is not None:
        problems.append(f"the certificate ({describe(leaf)}): {key}")
    days_left = 10**6
    for position, cert in enumerate(chain, 1):
        which = "the certificate" if position == 1 else f"certificate {position} of the chain"
        after = cert.not_valid_after_utc
        before = cert.not_valid_before_utc
        if after <= now:
            problems.append(f"{which} ({describe(cert)}) expired on {after:%Y-%m-%d %H:%M} UTC")
        elif before > now:
            problems.append(
                f"{which} ({describe(cert)}) is not valid before {before:%Y-%m-%d %H:%M} UTC"
            )
        else:
            left = (after - now).days
            days_left = min(days_left, left)
            if left < warn_days:
                warnings.append(
                    f"{which} ({describe(cert)}) expires in {left} days, on {after:%Y-%m-%d} UTC"
                )
    for position, (cert, issuer) in enumerate(itertools.pairwise(chain), 1):
        if not _issued_by(cert, issuer):
            problems.append(
                f"the chain is out of order: certificate {position + 1} ({describe(issuer)}) "
                f"did not issue certificate {position} ({describe(cert)}, issued by "
                f"{_issuer(cert)}); put the leaf first, then each issuer"
            )
            break
    return Report(tuple(problems), tuple(warnings), 0 if problems else days_left)


def _issuer(cert: x509.Certificate) -> str:
    names = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={names[0].value!s}" if names else cert.issuer.rfc4514_string()
