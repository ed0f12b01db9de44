"""DTLS-SRTP (RFC 5763, RFC 5764): one DTLS association that yields SRTP keys.

Theory of operation. pyOpenSSL drives OpenSSL over a pair of memory BIOs, so this
module touches no socket: the relay hands every DTLS datagram (first byte 20..63,
RFC 7983) to :meth:`DtlsSrtpEndpoint.receive`, then sends what
:meth:`~DtlsSrtpEndpoint.datagrams_to_send` returns to the party. Once the handshake
is done and the peer's certificate matched the ``a=fingerprint`` from its SDP,
:attr:`~DtlsSrtpEndpoint.srtp` holds an :class:`~media.srtp.SrtpContext` keyed from
the DTLS exporter (RFC 5764 §4.2), and DTLS has no more work to do but answer a
retransmitted flight or a ``close_notify``.

Inputs and outputs:

- ``start()``, ``receive(datagram)``, ``handle_timeout()`` and ``close()`` may
  produce output: call ``datagrams_to_send()`` after each;
- ``get_timeout()`` says how many seconds until ``handle_timeout()`` is due (DTLS
  retransmits a lost flight itself, RFC 6347 §4.2.4);
- ``state`` and ``failure_reason`` say how it went; nothing here raises for
  anything a peer sends.

The one impurity: OpenSSL reads its own clock for the retransmission timer, which
is why the timer is a relative ``get_timeout()`` rather than a deadline, and why
retransmission timing is tested against real time, not a fake clock.

Roles come from SDP (RFC 5763 §5): the side that answered or offered
``a=setup:active`` is the DTLS client, ``passive`` the server. An association is
for one pair of certificates and one 5-tuple's life: after an ICE restart that
changes the path, or a new remote fingerprint (RFC 5763 §5: a changed fingerprint
means a new session), the caller makes a new :class:`DtlsSrtpEndpoint`; this object
never re-handshakes (renegotiation is disabled).

Only DTLS 1.2 (RFC 6347). Every browser speaks it, and DTLS 1.0 is deprecated
(RFC 8996). DTLS 1.3 (RFC 9147) would need both the OpenSSL linked here and the
peers to support it for DTLS-SRTP, and the OpenSSL bundled with pyOpenSSL here has
no DTLS 1.3 at all; browsers that do offer it still fall back to 1.2, so pinning 1.2
costs nothing and keeps one code path to test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto

from certs.generate import make_self_signed
from media.srtp import DTLS_PROFILES, SrtpContext
from sdp.attributes import Fingerprint

__all__ = [
    "DEFAULT_SRTP_PROFILES",
    "DTLS_MTU",
    "MAX_DATAGRAM_SIZE",
    "MAX_PENDING_DATAGRAMS",
    "MIN_MTU",
    "DtlsCertificate",
    "DtlsRole",
    "DtlsSrtpEndpoint",
    "DtlsState",
    "fingerprint_of",
]

DTLS1_2_VERSION: Final = 0xFEFD
"""``{254, 253}`` on the wire (RFC 6347 §4.1); pyOpenSSL has no constant for it."""

DTLS_MTU = 1200
"""Largest datagram we send. What browsers use for DTLS: it fits the IPv6 minimum
MTU (1280) less IP and UDP headers, and any TURN or VPN overhead on the way."""

MIN_MTU = 256
"""The smallest MTU OpenSSL's DTLS accepts (``dtls1_min_mtu`` with a memory BIO)."""

MAX_DATAGRAM_SIZE = 16384
"""Largest datagram :meth:`DtlsSrtpEndpoint.receive` accepts; larger ones are
ignored. Peers send at most their path MTU; OpenSSL reads one datagram into a buffer
of about a maximum record (2**14 bytes plus overhead), so this never truncates."""

MAX_PENDING_DATAGRAMS = 32
"""Datagrams held for :meth:`DtlsSrtpEndpoint.datagrams_to_send`; beyond this the
newest are dropped (DTLS retransmits them). A whole flight is a handful, so only a
shell that never drains, fed by a peer that keeps provoking retransmissions, gets
here."""

_MAX_OUTPUT_PER_CALL = 65536
"""Bytes read from OpenSSL's outgoing BIO per call; one flight is a few kilobytes."""

_MAX_RECORDS_PER_CALL = 64
"""Records processed per received datagram once connected (a 1,200-byte datagram
holds at most 92 empty records; 64 is plenty for anything real)."""

_RECORD_HEADER = 13
"""type(1) version(2) epoch(2) sequence_number(6) length(2), RFC 6347 §4.1."""

_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
"""RFC 5764 §4.2: the exporter label for SRTP keying material."""

DEFAULT_SRTP_PROFILES: tuple[str, ...] = ("SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80")
"""Offered in this order: GCM where the peer has it (Chrome and Firefox do; it is
cheaper and authenticates with a 128-bit tag), else the mandatory one (RFC 5764
§4.1.2)."""

# ECDHE only (forward secrecy), AEAD first. ECDSA suites serve our own P-256 key; the
# RSA ones let the relay, as a DTLS client, talk to a server with an RSA certificate
# (some SIP equipment). The CBC-SHA pair stays for older peers that still offer it.
_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA"
)

# RFC 8122 §5 hash functions, weakest first. MD2 and MD5 are left out on purpose
# (RFC 8122 §5 forbids them), so a fingerprint naming them is unusable.
_HASHES: Mapping[str, hashes.HashAlgorithm] = {
    "sha-1": hashes.SHA1(),
    "sha-224": hashes.SHA224(),
    "sha-256": hashes.SHA256(),
    "sha-384": hashes.SHA384(),
    "sha-512": hashes.SHA512(),
}
_STRENGTH = {name: rank for rank, name in enumerate(_HASHES)}


class DtlsRole(StrEnum):
    """Which side sends the ClientHello (RFC 5763 §5: ``a=setup:active`` is the client)."""

    CLIENT = "client"
    SERVER = "server"


class DtlsState(StrEnum):
    """Where an association is; ``failed`` and ``closed`` are final."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


def fingerprint_of(certificate: x509.Certificate, hash_function: str = "sha-256") -> Fingerprint:
    """``certificate``'s ``a=fingerprint`` with ``hash_function`` (RFC 8122 §5)."""
    algorithm = _HASHES[hash_function.lower()]
    return Fingerprint.from_digest(hash_function.lower(), certificate.fingerprint(algorithm))


class DtlsCertificate:
    """The relay's self-signed DTLS certificate and key.

    One serves every association (browsers do the same per peer connection): the
    fingerprint goes in each SDP answer, and the OpenSSL context built from it is
    made once per SRTP profile list and shared.
    """

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self.key = key
        self.fingerprint: Fingerprint = fingerprint_of(certificate)
        """sha-256, upper-case hex pairs: what goes in ``a=fingerprint``."""
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}

    @classmethod
    def generate(
        cls, now: datetime, *, key: ec.EllipticCurvePrivateKey | None = None
    ) -> DtlsCertificate:
        """A fresh ECDSA P-256 certificate valid for 30 days from ``now``.

        The common name is derived from the public key, so it differs per certificate
        without drawing on another source of randomness; nobody checks it.
        """
        key = key or ec.generate_private_key(ec.SECP256R1())
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        name = "wedge-" + digest.finalize()[:8].hex()
        certificate, key = make_self_signed(name, now=now, key=key)
        return cls(certificate, key)

    def _context(self, srtp_profiles: tuple[str, ...]) -> SSL.Context:
        """The OpenSSL context for associations offering ``srtp_profiles``."""
        context = self._contexts.get(srtp_profiles)
        if context is None:
            context = self._contexts[srtp_profiles] = _make_context(self, srtp_profiles)
        return context


def _make_context(certificate: DtlsCertificate, srtp_profiles: tuple[str, ...]) -> SSL.Context:
    context = SSL.Context(SSL.DTLS_METHOD)
    context.set_min_proto_version(DTLS1_2_VERSION)
    context.set_max_proto_version(DTLS1_2_VERSION)
    # No tickets or session cache: every association is a full handshake with fresh
    # SRTP keys. No renegotiation: a new handshake is a new endpoint. No MTU query:
    # a memory BIO has no path MTU; we set DTLS_MTU on each connection.
    context.set_options(
        SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_QUERY_MTU | SSL.OP_NO_COMPRESSION
    )
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_cipher_list(_CIPHERS)
    context.use_certificate(certificate.certificate)
    context.use_privatekey(certificate.key)
    # Both sides must show a certificate (RFC 5763 §5): the server asks for the
    # client's, and an empty answer fails the handshake. The certificate is
    # self-signed, so chain checks are meaningless; the callback accepts every chain
    # and checks the leaf against the SDP fingerprint instead.
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify)
    # RFC 5764 §4.1.1: the use_srtp extension, in our order of preference.
    context.set_tlsext_use_srtp(":".join(srtp_profiles).encode("ascii"))
    return context


def _verify(connection: SSL.Connection, cert: crypto.X509, error: int, depth: int, ok: int) -> bool:
    endpoint = connection.get_app_data()
    if depth != 0 or not isinstance(endpoint, DtlsSrtpEndpoint):
        return True  # only the peer's own certificate is pinned
    return endpoint._check_certificate(cert.to_cryptography()) is None


def _describe(exc: SSL.Error) -> str:
    """OpenSSL's error queue as one line: the reasons, without library names."""
    queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [str(item[2]) for item in queue if isinstance(item, tuple) and len(item) > 2]
    return "; ".join(reason for reason in reasons if reason) or repr(exc)


def _split_records(data: bytes, mtu: int) -> list[bytes]:
    """Pack OpenSSL's records into datagrams of at most ``mtu`` bytes.

    A memory BIO is a byte stream, but a DTLS record must not straddle datagrams
    (RFC 6347 §4.1.1); several may share one. OpenSSL sizes each record to fit
    ``mtu``, so a record alone always fits.
    """
    datagrams: list[bytes] = []
    start = position = 0
    size = len(data)
    while position + _RECORD_HEADER <= size:
        end = position + _RECORD_HEADER + int.from_bytes(data[position + 11 : position + 13])
        if end > size:
            break
        if end - start > mtu and position > start:
            datagrams.append(data[start:position])
            start = position
        position = end
    if start < size:
        datagrams.append(data[start:])
    return datagrams


class DtlsSrtpEndpoint:
    """One DTLS association over a memory BIO (pyOpenSSL, ``DTLS_METHOD``).

    ``remote_fingerprints`` are the peer's ``a=fingerprint`` lines. The strongest
    hash function among them that we support is the one checked, and the peer's
    certificate must match one fingerprint with that hash (RFC 8122 §5). With none
    usable, the endpoint starts out failed, saying why.

    ``srtp_profiles`` are DTLS-SRTP protection profile names
    (:data:`media.srtp.DTLS_PROFILES`), most preferred first.
    """

    def __init__(
        self,
        certificate: DtlsCertificate,
        role: DtlsRole,
        remote_fingerprints: Sequence[Fingerprint],
        *,
        srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
        mtu: int = DTLS_MTU,
    ) -> None:
        profiles = tuple(srtp_profiles)
        unknown = [name for name in profiles if name not in DTLS_PROFILES]
        if unknown or not profiles:
            raise ValueError(f"unsupported SRTP profiles {unknown or profiles!r}")
        if not MIN_MTU <= mtu <= MAX_DATAGRAM_SIZE:
            raise ValueError(f"DTLS MTU {mtu} outside {MIN_MTU}..{MAX_DATAGRAM_SIZE}")
        self.role = role
        self.state = DtlsState.CONNECTING
        self.failure_reason: str | None = None
        """Why the association failed, in words for an operator's log."""
        self.srtp: SrtpContext | None = None
        """This leg's SRTP, set once connected."""
        self.srtp_profile: str | None = None
        """The negotiated DTLS-SRTP profile, once connected."""
        self.started = False
        """Whether :meth:`start` ran."""
        self._mtu = mtu
        self._pending: list[bytes] = []
        self._mismatch: str | None = None
        self._hash, self._expected = _usable_fingerprints(remote_fingerprints)

        self._connection = connection = SSL.Connection(certificate._context(profiles), None)
        connection.set_app_data(self)
        connection.set_ciphertext_mtu(mtu)
        if role is DtlsRole.CLIENT:
            connection.set_connect_state()
        else:
            connection.set_accept_state()
        if not self._expected:
            offered = ", ".join(str(fp) for fp in remote_fingerprints) or "none"
            self._fail(f"no usable remote fingerprint (offered: {offered})")

    # -- inputs ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin: a client sends its ClientHello; a server waits for one.

        Produces output: call :meth:`datagrams_to_send`.
        """
        if self.started:
            return
        self.started = True
        if self.role is DtlsRole.CLIENT and self.state is DtlsState.CONNECTING:
            self._handshake()
            self._drain()

    def receive(self, data: bytes) -> None:
        """One DTLS datagram from the peer. Never raises.

        Anything else (empty, oversized, a first byte outside 20..63) is ignored;
        OpenSSL itself silently drops records that do not parse or authenticate
        (RFC 6347 §4.1.2.7). A fatal alert fails the association; ``close_notify``
        closes it. Produces output: call :meth:`datagrams_to_send`.
        """
        if self.state is DtlsState.FAILED or self.state is DtlsState.CLOSED:
            return
        if not 0 < len(data) <= MAX_DATAGRAM_SIZE or not 20 <= data[0] <= 63:
            return
        self.started = True
        try:
            self._connection.bio_write(data)
        except SSL.Error as exc:  # pragma: no cover - a memory BIO grows, it does not fail
            self._fail(f"DTLS input failed: {_describe(exc)}")
            return
        if self.state is DtlsState.CONNECTING:
            self._handshake()
        if self.state is DtlsState.CONNECTED:
            self._read_records()
        self._drain()

    def get_timeout(self) -> float | None:
        """Seconds until :meth:`handle_timeout` is due, or None when no timer runs.

        Only the handshake has a timer: after it, a lost final flight is recovered by
        the peer retransmitting its own, which :meth:`receive` answers.
        """
        if self.state is not DtlsState.CONNECTING or not self.started:
            return None
        return self._connection.DTLSv1_get_timeout()

    def handle_timeout(self) -> None:
        """Retransmit the last flight if OpenSSL's timer expired (RFC 6347 §4.2.4).

        OpenSSL doubles the timer on each retransmission and gives up after a dozen,
        which fails the association; callers usually give up sooner, with the call.
        Produces output: call :meth:`datagrams_to_send`.
        """
        if self.state is not DtlsState.CONNECTING or not self.started:
            return
        try:
            self._connection.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"DTLS handshake timed out: {_describe(exc)}")
        self._drain()

    def close(self) -> None:
        """Send ``close_notify`` if connected; the association is closed either way.

        :attr:`srtp` stays set: packets already in flight may still need it.
        Produces output: call :meth:`datagrams_to_send`.
        """
        if self.state is DtlsState.FAILED or self.state is DtlsState.CLOSED:
            return
        if self.state is DtlsState.CONNECTED:
            self._close_notify()
            self._drain()
        self.state = DtlsState.CLOSED

    # -- output ---------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[bytes]:
        """The datagrams to send to the peer, oldest first; the queue is emptied."""
        pending = self._pending
        if not pending:
            return []
        self._pending = []
        return pending

    # -- internals ------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.ZeroReturnError:
            self._fail("peer closed the association during the handshake")
            return
        except SSL.Error as exc:
            self._fail(self._mismatch or f"DTLS handshake failed: {_describe(exc)}")
            return
        self._connected()

    def _connected(self) -> None:
        connection = self._connection
        # The verify callback already rejected a wrong certificate during the
        # handshake; check again here so a path that skipped the callback cannot
        # leave the peer unauthenticated.
        peer = connection.get_peer_certificate(as_cryptography=True)
        reason = "peer sent no certificate" if peer is None else self._check_certificate(peer)
        if reason is not None:
            self._close_notify()
            self._fail(reason)
            return
        name = connection.get_selected_srtp_profile().decode("ascii", "replace")
        suite = DTLS_PROFILES.get(name)
        if suite is None:
            self._close_notify()
            self._fail(
                "no common SRTP profile in use_srtp"
                + (f" (peer chose {name})" if name else " (peer offered none of ours)")
            )
            return
        material = connection.export_keying_material(
            _EXPORTER_LABEL, 2 * (suite.key_length + suite.salt_length)
        )
        self.srtp = SrtpContext.from_dtls(name, material, is_client=self.role is DtlsRole.CLIENT)
        self.srtp_profile = name
        self.state = DtlsState.CONNECTED

    def _read_records(self) -> None:
        # After the handshake the only records we expect are a retransmitted flight
        # (OpenSSL answers a repeated Finished by resending its own), alerts, and
        # application data, which DTLS-SRTP does not use and we discard.
        for _ in range(_MAX_RECORDS_PER_CALL):
            try:
                self._connection.recv(MAX_DATAGRAM_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self._close_notify()  # RFC 5246 §7.2.1: answer with our own
                self.state = DtlsState.CLOSED
                return
            except SSL.Error as exc:
                self._fail(f"DTLS failed after the handshake: {_describe(exc)}")
                return

    def _close_notify(self) -> None:
        with contextlib.suppress(SSL.Error):  # a peer that is gone needs no goodbye
            self._connection.shutdown()

    def _check_certificate(self, certificate: x509.Certificate) -> str | None:
        """None if ``certificate`` matches a remote fingerprint, else why not."""
        presented = fingerprint_of(certificate, self._hash)
        if presented.digest() in self._expected:
            return None
        expected = " or ".join(f"{self._hash} {fp}" for fp in self._expected.values())
        self._mismatch = (
            f"peer certificate does not match the SDP fingerprint: "
            f"expected {expected}, presented {presented}"
        )
        return self._mismatch

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self.failure_reason = reason
        self.srtp = None
        self._drain()  # an alert OpenSSL queued for the peer

    def _drain(self) -> None:
        connection = self._connection
        try:
            data = connection.bio_read(_MAX_OUTPUT_PER_CALL)
        except SSL.Error:
            return  # WantReadError: nothing to send
        if len(data) == _MAX_OUTPUT_PER_CALL:
            # Far more than any flight: drop the rest rather than let it build up.
            # Records may be cut; the peer discards them, and DTLS retransmits.
            with contextlib.suppress(SSL.Error):
                while connection.bio_read(_MAX_OUTPUT_PER_CALL):
                    pass
        room = MAX_PENDING_DATAGRAMS - len(self._pending)
        if room > 0:
            self._pending.extend(_split_records(data, self._mtu)[:room])


def _usable_fingerprints(
    fingerprints: Sequence[Fingerprint],
) -> tuple[str, dict[bytes, str]]:
    """The strongest supported hash among ``fingerprints``, and their digests with it."""
    usable = [fp for fp in fingerprints if fp.hash_function.lower() in _HASHES]
    if not usable:
        return "sha-256", {}
    strongest = max((fp.hash_function.lower() for fp in usable), key=_STRENGTH.__getitem__)
    expected: dict[bytes, str] = {}
    for fp in usable:
        if fp.hash_function.lower() == strongest:
            try:
                expected[fp.digest()] = fp.fingerprint
            except ValueError:
                continue  # not hex pairs: cannot match anything
    return strongest, expected
