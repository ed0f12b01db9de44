"""Certificate pinning (RFC 7469 ``pin-sha256``) and the checks made on a TLS peer
after its handshake.

A pin is the base64 SHA-256 of a certificate's DER SubjectPublicKeyInfo, so it
survives renewals that keep the key, and several pins can be listed for a key
rotation (RFC 7469 §4.3 wants a backup pin). As in RFC 7469 §2.6, a chain matches
when *any* of its certificates has a pinned key: pin the leaf's key, or the key of
the CA that issues the peer's certificates.

Pure: the chain comes in as DER bytes (what the TLS library handed over), the
verdict goes out as a :class:`Refusal` or None.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from certs.check import certificate_names, covers
from certs.generate import spki_pin_sha256

__all__ = ["PeerRule", "Refusal", "chain_pins", "check_peer", "parse_pin"]

_PIN_DIRECTIVE = re.compile(r'\s*pin-sha256\s*=\s*"([^"]*)"\s*', re.IGNORECASE)


def parse_pin(text: str) -> str:
    """A pin as a policy writes it: the base64 value, or ``pin-sha256="..."`` as in
    an HTTP Public-Key-Pins header. ValueError when it is not 32 bytes of base64."""
    match = _PIN_DIRECTIVE.fullmatch(text)
    value = (match.group(1) if match else text).strip()
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not base64: {value!r}") from None
    if len(digest) != 32:
        raise ValueError(f"a SHA-256 pin is 32 bytes, this one {len(digest)}")
    return base64.b64encode(digest).decode("ascii")


def chain_pins(chain: Sequence[bytes]) -> list[str]:
    """The pin of each certificate of a DER chain, leaf first; an undecodable
    certificate gives ``"?"``, which matches no pin."""
    pins = []
    for der in chain:
        try:
            pins.append(spki_pin_sha256(x509.load_der_x509_certificate(der)))
        except ValueError:
            pins.append("?")
    return pins


@dataclass(frozen=True, slots=True)
class PeerRule:
    """What a TLS peer of one trunk must present, beyond a chain the TLS library
    verified against the trunk's CA bundle."""

    trunk: str
    """The trunk's name, for the log."""
    pins: tuple[str, ...] = ()
    """Accepted pins; empty: no pinning."""
    name: str | None = None
    """A host the peer's certificate must cover when *it* connected to us (on
    connections we open, the TLS library checks the name we dialled)."""
    require_cert: bool = False
    """A peer that connected to us must present a certificate."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a peer is refused, and what it presented."""

    reason: str
    presented: str = "-"
    """The pin of the peer's certificate, or ``-`` when it sent none."""


def check_peer(chain: Sequence[bytes], rule: PeerRule, *, inbound: bool) -> Refusal | None:
    """Check a peer's verified chain (DER, leaf first) against ``rule``.

    ``inbound``: the peer connected to us, so its certificate is a client
    certificate, optional at the TLS layer.
    """
    if not chain:
        if rule.pins or (inbound and rule.require_cert):
            return Refusal("no certificate presented")
        return None
    pins = chain_pins(chain)
    presented = pins[0]
    if inbound and rule.name is not None:
        try:
            leaf = x509.load_der_x509_certificate(chain[0])
        except ValueError:
            return Refusal("undecodable certificate", presented)
        if not covers(leaf, rule.name):
            dns, ips = certificate_names(leaf)
            listed = ", ".join([*dns, *ips]) or "no names"
            return Refusal(f"certificate is not for {rule.name} (it names {listed})", presented)
    if rule.pins and not set(pins) & set(rule.pins):
        return Refusal("pin mismatch", presented)
    return None
