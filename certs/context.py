"""TLS contexts for the stream and WebSocket shells.

One place decides protocol versions and ciphers, so the TLS listener, the WSS
listener and outbound trunk connections agree. TLS 1.2 is the floor: RFC 8996
retires 1.0 and 1.1, and SIP peers that still need them (RFC 5630 era phones) are
not worth the downgrade surface.
"""

from __future__ import annotations

import os
import ssl

__all__ = ["TLS12_CIPHERS", "client_context", "server_context"]

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


def _harden(context: ssl.SSLContext, ciphers: str) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
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
) -> ssl.SSLContext:
    """A listener's context.

    With ``ca_file`` the listener asks for a client certificate and verifies it
    against that CA when one is sent; ``require_client_cert`` refuses clients
    without one (mutual TLS toward trunks).
    """
    if require_client_cert and ca_file is None:
        raise ValueError("require_client_cert needs ca_file to verify client certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, ciphers)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert_file, key_file)
    if ca_file is not None:
        context.load_verify_locations(ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(
    *,
    ca_file: StrPath | None = None,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    verify: bool = True,
    ciphers: str = TLS12_CIPHERS,
) -> ssl.SSLContext:
    """A context for connections Wedge opens.

    Verification (chain and host name) is on unless ``verify`` is False; the trust
    store is ``ca_file``, else the system's. ``cert_file``/``key_file`` present a
    client certificate for mutual TLS.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    _harden(context, ciphers)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        context.load_verify_locations(ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context
