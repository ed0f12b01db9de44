"""Reading certificate chains and private keys from PEM files, with clear errors.

Every failure is a :class:`CertificateError` naming the file and the problem in
words an operator can act on ("the key is encrypted: set key_passphrase_env or
key_passphrase_file", "garbled PEM certificate"), because these files come from
people and other tools and arrive damaged, swapped or stale.

A key may be encrypted; its passphrase comes from an environment variable or a
file (a secret mounted by the orchestrator), never from the policy itself, which
is meant to be shared and versioned. Nothing here is cached: a reload reads the
files again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

__all__ = [
    "MAX_PEM_BYTES",
    "CertificateError",
    "KeyFiles",
    "Loaded",
    "PrivateKey",
    "read_certificates",
    "read_passphrase",
    "read_private_key",
]

MAX_PEM_BYTES = 1_000_000
"""The largest certificate or key file read: a long chain is a few kilobytes, and a
CA bundle of every public root some 200 kB. Anything bigger is the wrong file."""

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)


class CertificateError(Exception):
    """A certificate, key or passphrase source that cannot be used.

    Attributes:
        path: the file (or ``$NAME`` for an environment variable) at fault.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise CertificateError(path, f"no such file (the {what})") from None
    except IsADirectoryError:
        raise CertificateError(path, f"is a directory, not the {what}") from None
    except OSError as exc:
        raise CertificateError(path, f"cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise CertificateError(path, f"over {MAX_PEM_BYTES} bytes; is this the {what}?")
    return data


def read_certificates(path: Path, what: str = "certificate chain") -> list[x509.Certificate]:
    """Every certificate of a PEM file, in file order (leaf first for a chain)."""
    data = _read(path, what)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        hint = " (this is a private key)" if b"PRIVATE KEY-----" in data else ""
        raise CertificateError(path, f"no PEM certificate in it{hint}")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(path, f"garbled PEM certificate: {_first_line(exc)}") from None


def read_passphrase(env: str | None, file: Path | None) -> bytes | None:
    """A key's passphrase from the environment variable ``env`` or from ``file``
    (its first line, without the line end); None when neither is given."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise CertificateError(f"${env}", "the key passphrase variable is not set")
        return value.encode("utf-8")
    if file is not None:
        data = _read(file, "key passphrase file")
        line = data.split(b"\n", 1)[0].removesuffix(b"\r")
        if not line:
            raise CertificateError(file, "the key passphrase file is empty")
        return line
    return None


def read_private_key(path: Path, passphrase: bytes | None) -> PrivateKey:
    """The private key of a PEM file, decrypted with ``passphrase`` if it is encrypted."""
    data = _read(path, "private key")
    if b"PRIVATE KEY-----" not in data:
        hint = " (this is a certificate)" if b"BEGIN CERTIFICATE" in data else ""
        raise CertificateError(path, f"no PEM private key in it{hint}")
    encrypted = b"ENCRYPTED" in data
    if encrypted and passphrase is None:
        raise CertificateError(
            path, "the key is encrypted: set key_passphrase_env or key_passphrase_file"
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        if encrypted:
            raise CertificateError(path, "wrong passphrase, or a damaged key") from None
        raise CertificateError(path, f"garbled PEM private key: {_first_line(exc)}") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and kin
        raise CertificateError(path, f"unusable private key: {_first_line(exc)}") from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey
        | dsa.DSAPrivateKey,
    ):
        raise CertificateError(path, f"unusable private key type {type(key).__name__}")
    return key


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """A certificate chain file and its private key file, with where the key's
    passphrase comes from (if it is encrypted)."""

    cert: Path
    key: Path
    passphrase_env: str | None = None
    passphrase_file: Path | None = None

    def passphrase(self) -> bytes | None:
        return read_passphrase(self.passphrase_env, self.passphrase_file)

    def load(self) -> Loaded:
        """Read both files now. The key must belong to the first certificate."""
        chain = read_certificates(self.cert)
        passphrase = self.passphrase()
        key = read_private_key(self.key, passphrase)
        if _spki(key.public_key()) != _spki(chain[0].public_key()):
            raise CertificateError(
                self.key, f"does not match the certificate in {self.cert} (another key pair)"
            )
        return Loaded(self, tuple(chain), key, passphrase)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What :meth:`KeyFiles.load` read: the chain (leaf first) and the key."""

    files: KeyFiles
    chain: Sequence[x509.Certificate]
    key: PrivateKey
    passphrase: bytes | None

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _spki(public: object) -> bytes:
    assert hasattr(public, "public_bytes")
    data: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
