"""TLS contexts for the stream and WebSocket shells.

One place decides protocol versions and ciphers, so the TLS listener, the WSS
listener and outbound trunk connections agree. TLS 1.2 is the floor: RFC 8996
retires 1.0 and 1.1, and SIP peers that still need them (RFC 5630 era phones) are
not worth the downgrade surface.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from certs.check import certificate_names
from certs.load import CertificateError, KeyFiles, Loaded, read_certificates

__all__ = [
    "NO_CLIENT_CERT",
    "TLS12_CIPHERS",
    "ClientTls",
    "ClientVerify",
    "ServerTls",
    "client_context",
    "server_context",
]

StrPath = str | os.PathLike[str]

TLS12_CIPHERS = ":".join(
    [
        # Mozilla "intermediate": forward secrecy and AEAD only. TLS 1.3 suites are
        # configured separately by OpenSSL and are all acceptable. The RSA entries
        # matter for peers with RSA certificates (Microsoft Teams Direct Routing
        # offers ECDHE-RSA-AES256-GCM-SHA384 first).
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
"""TLS 1.2 cipher list; pass ``ciphers=`` to widen it for a legacy trunk."""


def _harden(
    context: ssl.SSLContext,
    ciphers: str,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> None:
    # 1.3 only when asked; never below 1.2, whatever the caller passed.
    tls13 = min_version is ssl.TLSVersion.TLSv1_3
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    # CRIME (compression) and client-initiated renegotiation are attack surface
    # with no use for SIP signalling.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def server_context(
    cert_file: StrPath,
    key_file: StrPath,
    *,
    ca_file: StrPath | None = None,
    require_client_cert: bool = False,
    ciphers: str = TLS12_CIPHERS,
    password: bytes | None = None,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    trust_system: bool = False,
) -> ssl.SSLContext:
    """A listener's context.

    With ``ca_file`` (or ``trust_system``: the system's public roots) the listener
    asks for a client certificate and verifies it when one is sent;
    ``require_client_cert`` refuses clients without one (mutual TLS toward
    trunks). ``password`` decrypts an encrypted key.
    """
    if require_client_cert and ca_file is None and not trust_system:
        raise ValueError("require_client_cert needs ca_file to verify client certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, ciphers, min_version)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert_file, key_file, password=password)
    if ca_file is not None or trust_system:
        if ca_file is not None:
            context.load_verify_locations(ca_file)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(
    *,
    ca_file: StrPath | None = None,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    verify: bool = True,
    ciphers: str = TLS12_CIPHERS,
    password: bytes | None = None,
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    """A context for connections Wedge opens.

    Verification (chain and host name) is on unless ``verify`` is False; the trust
    store is ``ca_file``, else the system's. ``cert_file``/``key_file`` present a
    client certificate for mutual TLS; ``password`` decrypts an encrypted key.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    _harden(context, ciphers, min_version)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        context.load_verify_locations(ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file, password=password)
    return context


# -- reloadable contexts -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientVerify:
    """How a listener treats the client certificates of one kind of peer."""

    ca_file: Path | None = None
    """The trust anchors; None (with ``request``) trusts the system's public roots."""
    request: bool = False
    """Ask for a client certificate, and verify it when one is sent."""
    require: bool = False
    """Refuse a client that sends none."""


NO_CLIENT_CERT = ClientVerify()
"""Ask no client certificate (what browsers and most phones get)."""


@dataclass(slots=True)
class ServerGeneration:
    """One reading of a listener's files: what :meth:`ServerTls.prepare` built."""

    loaded: list[Loaded]
    """The default certificate first, then the SNI ones, in configuration order."""
    contexts: dict[ClientVerify, list[ssl.SSLContext]] = field(default_factory=dict)
    exact: dict[str, int] = field(default_factory=dict)
    wildcard: dict[str, int] = field(default_factory=dict)

    def select(self, server_name: str | None) -> int:
        """The certificate for an SNI name: an exact DNS name first, then a
        ``*.`` name of one label (RFC 6125 §6.4.3); the default otherwise."""
        if not server_name:
            return 0
        name = server_name.lower().rstrip(".")
        index = self.exact.get(name)
        if index is None:
            index = self.wildcard.get(name.partition(".")[2], 0)
        return index


class ServerTls:
    """A TLS or WSS listener's certificates: a default one, more chosen by SNI, and
    a new reading of the files on demand (reload) without touching connections.

    Every context handed out has an SNI callback that moves the handshake onto the
    *current* generation's context for the name the client asked for, so contexts
    given to a server long ago (the WebSocket server keeps the first one) serve
    the newest certificates. A handshake in progress, and every established
    connection, keeps the certificate it started with.

    A context exists per certificate and per :class:`ClientVerify` profile, since
    TLS settings are fixed when a connection starts: the listener's own profile
    and one per trunk whose peers must present client certificates.
    """

    def __init__(
        self,
        default: KeyFiles,
        sni: Sequence[KeyFiles] = (),
        *,
        profiles: Sequence[ClientVerify] = (NO_CLIENT_CERT,),
        ciphers: str = TLS12_CIPHERS,
        min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ) -> None:
        self.files = (default, *sni)
        self.profiles = tuple(dict.fromkeys(profiles)) or (NO_CLIENT_CERT,)
        self.ciphers = ciphers
        self.min_version = min_version
        self._current: ServerGeneration | None = None

    @property
    def loaded(self) -> list[Loaded]:
        """The certificates in use (empty before the first :meth:`commit`)."""
        return self._current.loaded if self._current is not None else []

    def prepare(self) -> ServerGeneration:
        """Read every file and build every context, without using them yet.

        Raises:
            CertificateError: a file is missing, damaged, or refused by OpenSSL.
        """
        for profile in self.profiles:
            if profile.request and profile.ca_file is not None:
                read_certificates(profile.ca_file, "CA bundle")
        loaded = [files.load() for files in self.files]
        generation = ServerGeneration(loaded)
        for index, item in enumerate(loaded[1:], 1):
            dns, _ = certificate_names(item.leaf)
            for name in dns:
                name = name.lower().rstrip(".")
                if name.startswith("*."):
                    generation.wildcard.setdefault(name[2:], index)
                else:
                    generation.exact.setdefault(name, index)
        for profile in self.profiles:
            generation.contexts[profile] = [self._context(item, profile) for item in loaded]
        return generation

    def commit(self, generation: ServerGeneration) -> None:
        """Serve ``generation`` to every handshake from now on."""
        self._current = generation

    def context(self, profile: ClientVerify = NO_CLIENT_CERT) -> ssl.SSLContext:
        """The default certificate's context for ``profile`` (the SNI callback
        switches certificates during the handshake)."""
        assert self._current is not None, "commit() first"
        contexts = self._current.contexts.get(profile) or self._current.contexts[self.profiles[0]]
        return contexts[0]

    def _context(self, item: Loaded, profile: ClientVerify) -> ssl.SSLContext:
        files = item.files
        try:
            context = server_context(
                files.cert,
                files.key,
                password=item.passphrase,
                ca_file=profile.ca_file if profile.request else None,
                trust_system=profile.request and profile.ca_file is None,
                require_client_cert=profile.require and profile.request,
                ciphers=self.ciphers,
                min_version=self.min_version,
            )
        except ssl.SSLError as exc:
            raise CertificateError(files.cert, f"refused by OpenSSL: {exc.reason or exc}") from None
        except OSError as exc:
            raise CertificateError(files.cert, f"cannot read: {exc.strerror or exc}") from None

        def switch(
            connection: ssl.SSLObject | ssl.SSLSocket,
            server_name: str | None,
            _context: ssl.SSLContext,
            profile: ClientVerify = profile,
        ) -> None:
            current = self._current
            if current is None:
                return
            contexts = current.contexts.get(profile)
            if contexts is None:
                return
            wanted = contexts[current.select(server_name)]
            if connection.context is not wanted:
                connection.context = wanted

        context.sni_callback = switch
        return context


class ClientTls:
    """The context for connections Wedge opens to one trunk, reloadable like
    :class:`ServerTls`: its CA bundle and the client certificate it presents."""

    def __init__(
        self,
        *,
        ca_file: Path | None = None,
        identity: KeyFiles | None = None,
        ciphers: str = TLS12_CIPHERS,
        min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ) -> None:
        self.ca_file = ca_file
        self.identity = identity
        self.ciphers = ciphers
        self.min_version = min_version
        self._current: tuple[ssl.SSLContext, Loaded | None] | None = None

    @property
    def loaded(self) -> Loaded | None:
        return self._current[1] if self._current is not None else None

    def prepare(self) -> tuple[ssl.SSLContext, Loaded | None]:
        """Read the files and build the context, without using it yet.

        Raises:
            CertificateError: a file is missing, damaged, or refused by OpenSSL.
        """
        if self.ca_file is not None:
            read_certificates(self.ca_file, "CA bundle")
        item = self.identity.load() if self.identity is not None else None
        try:
            context = client_context(
                ca_file=self.ca_file,
                cert_file=item.files.cert if item is not None else None,
                key_file=item.files.key if item is not None else None,
                password=item.passphrase if item is not None else None,
                ciphers=self.ciphers,
                min_version=self.min_version,
            )
        except ssl.SSLError as exc:
            at = item.files.cert if item is not None else self.ca_file
            raise CertificateError(at or "-", f"refused by OpenSSL: {exc.reason or exc}") from None
        except OSError as exc:
            at = item.files.cert if item is not None else self.ca_file
            raise CertificateError(at or "-", f"cannot read: {exc.strerror or exc}") from None
        return context, item

    def commit(self, prepared: tuple[ssl.SSLContext, Loaded | None]) -> None:
        self._current = prepared

    @property
    def context(self) -> ssl.SSLContext:
        assert self._current is not None, "commit() first"
        return self._current[0]
