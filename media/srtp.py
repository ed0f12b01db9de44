"""SRTP and SRTCP for one leg (RFC 3711), keyed by SDES (RFC 4568) or DTLS (RFC 5764).

Pure: packets in, packets out. libsrtp (through pylibsrtp) does the cryptography;
this module picks the policy, splits the keys, and turns libsrtp's failures into one
exception type the relay can count.

A leg has two directions, so an :class:`SrtpContext` holds two libsrtp sessions:

- the *outbound* one protects what the relay sends to the party, with any SSRC
  (``ssrc_any_outbound``), and tolerates a packet sent twice (``allow_repeat_tx``:
  the relay forwards what it receives, and a party that retransmits would otherwise
  make libsrtp refuse the repeat);
- the *inbound* one authenticates and decrypts what the party sends, with any SSRC
  (``ssrc_any_inbound``) and libsrtp's default replay window. libsrtp adds a stream
  for a new SSRC only after a packet from it authenticates, so a party without the
  keys cannot make it allocate.

This is the per-packet hot path: no logging, no copies beyond the one libsrtp's
binding makes, and exceptions only for packets that fail. pylibsrtp's own
``Session.protect`` allocates a C integer and checks its argument's type on every
call, which measured 1.5-2.5 us of the 3-4 us a packet took; :func:`_processor`
calls the same libsrtp function through pylibsrtp's binding with that integer made
once per session (falling back to the public method if a pylibsrtp release moves
what it relies on), and the context hands out those functions themselves rather
than methods that call them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pylibsrtp

__all__ = [
    "DTLS_PROFILES",
    "SUITES",
    "SrtpContext",
    "SrtpError",
    "SrtpSuite",
    "libsrtp_functions",
]


class SrtpError(Exception):
    """A packet failed authentication, the replay check or decryption.

    The message is libsrtp's short reason ("authentication failure", "replay check
    failed (bad index)", ...): enough for a counter or a debug line.
    """


@dataclass(frozen=True, slots=True)
class SrtpSuite:
    """One crypto suite: its libsrtp profile and master key and salt lengths."""

    name: str
    """The SDES name (RFC 4568 §6.2, RFC 7714 §14.2), as in ``a=crypto``."""
    dtls_name: str
    """The DTLS-SRTP protection profile name (RFC 5764 §4.1.2, RFC 7714 §14.2)."""
    profile: int
    """The ``pylibsrtp.Policy.SRTP_PROFILE_*`` constant."""
    key_length: int
    """Master key bytes."""
    salt_length: int
    """Master salt bytes."""

    @property
    def master_length(self) -> int:
        """Bytes of key plus salt, the length of an SDES ``inline:`` key (decoded)."""
        return self.key_length + self.salt_length


_Policy = pylibsrtp.Policy

SUITES: Mapping[str, SrtpSuite] = {
    suite.name: suite
    for suite in (
        # RFC 4568 §6.2.1: AES Counter Mode, HMAC-SHA1 tag of 80 bits; the suite every
        # SRTP peer implements (RFC 5764 §4.1.2 makes it mandatory for DTLS-SRTP too).
        SrtpSuite(
            "AES_CM_128_HMAC_SHA1_80",
            "SRTP_AES128_CM_SHA1_80",
            _Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
            16,
            14,
        ),
        # RFC 4568 §6.2.2: the same with a 32-bit RTP tag (SRTCP keeps 80 bits).
        SrtpSuite(
            "AES_CM_128_HMAC_SHA1_32",
            "SRTP_AES128_CM_SHA1_32",
            _Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
            16,
            14,
        ),
        # RFC 7714 §12: AES-GCM with a 96-bit salt; pylibsrtp 1.0 ships a libsrtp
        # built with it, so browsers that prefer GCM get it.
        SrtpSuite(
            "AEAD_AES_128_GCM",
            "SRTP_AEAD_AES_128_GCM",
            _Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
            16,
            12,
        ),
        SrtpSuite(
            "AEAD_AES_256_GCM",
            "SRTP_AEAD_AES_256_GCM",
            _Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
            32,
            12,
        ),
    )
}
"""Supported suites by SDES name."""

DTLS_PROFILES: Mapping[str, SrtpSuite] = {suite.dtls_name: suite for suite in SUITES.values()}
"""The same suites by DTLS-SRTP protection profile name (what OpenSSL reports)."""


_TOO_LONG = "packet too long"
"""pylibsrtp raises ``ValueError`` for one reason only once the keys are set: a packet
longer than its buffer less the trailer it reserves."""


def _suite(name: str) -> SrtpSuite:
    suite = SUITES.get(name) or DTLS_PROFILES.get(name)
    if suite is None:
        raise ValueError(f"unsupported SRTP suite {name!r}")
    return suite


def _session(suite: SrtpSuite, key: bytes, ssrc_type: int, *, outbound: bool) -> pylibsrtp.Session:
    if len(key) != suite.master_length:
        raise ValueError(
            f"{suite.name} needs {suite.master_length} bytes of key and salt, got {len(key)}"
        )
    policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=suite.profile)
    if outbound:
        policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy)


_Process = Callable[[bytes], bytes]


def _processor(session: pylibsrtp.Session, name: str, trailer: int) -> _Process:
    """``session.<name>`` (protect, unprotect...), without pylibsrtp's per-call costs,
    raising :class:`SrtpError` for a packet it cannot process.

    libsrtp processes the packet in place in the session's buffer, writing the new
    length into an ``int *``: the same buffer and C function pylibsrtp's method uses,
    with the integer allocated once here. The copy out (``buffer[0:n]``) is the one
    the method makes too.
    """
    try:
        from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

        srtp: Any = session._srtp[0]
        cdata: Any = session._cdata
        buffer: Any = session._buffer
        function: Any = getattr(lib, f"srtp_{name}")
        errors: list[str] = pylibsrtp.ERRORS
    except (ImportError, AttributeError):
        return _checked(getattr(session, name))
    room = len(cdata) - trailer
    length = ffi.new("int *")

    def process(packet: bytes) -> bytes:
        size = len(packet)
        if size > room:
            raise SrtpError(_TOO_LONG)
        buffer[0:size] = packet
        length[0] = size
        status = function(srtp, cdata, length)
        if status:
            raise SrtpError(errors[status] if status < len(errors) else str(status))
        result: bytes = buffer[0 : length[0]]
        return result

    return process


def _checked(method: _Process) -> _Process:
    """pylibsrtp's own ``method``, its exceptions turned into :class:`SrtpError`."""

    def checked(packet: bytes) -> bytes:
        try:
            return method(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None
        except ValueError:
            raise SrtpError(_TOO_LONG) from None

    return checked


_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
"""libsrtp 2's signature of srtp_protect and its three siblings, as cffi spells it: the
one media/_forward.c calls them with."""


@functools.cache
def libsrtp_functions() -> tuple[int, int, int, int] | None:
    """The addresses of libsrtp's srtp_protect, srtp_unprotect, srtp_protect_rtcp and
    srtp_unprotect_rtcp in pylibsrtp's binding, for the relay's fast path; None when
    this pylibsrtp does not expose them with libsrtp 2's signature."""
    try:
        from pylibsrtp._binding import ffi, lib

        names = ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp")
        pointers = [ffi.addressof(lib, name) for name in names]
        if any(ffi.typeof(pointer).cname != _SIGNATURE for pointer in pointers):
            return None
        first, second, third, fourth = (int(ffi.cast("uintptr_t", p)) for p in pointers)
    except (ImportError, AttributeError):
        return None
    return first, second, third, fourth


def _address(session: pylibsrtp.Session) -> int | None:
    """The address of ``session``'s libsrtp session (its ``srtp_t``)."""
    try:
        from pylibsrtp._binding import ffi

        return int(ffi.cast("uintptr_t", session._srtp[0]))
    except (ImportError, AttributeError):
        return None


class SrtpContext:
    """One leg's SRTP: protects what the relay sends, unprotects what it receives.

    ``tx_key`` and ``rx_key`` are each master key followed by master salt, of the
    suite's length; a wrong length or an unknown suite is a ``ValueError``.

    Each of its four functions (:attr:`protect`, :attr:`protect_rtcp`,
    :attr:`unprotect`, :attr:`unprotect_rtcp`) raises :class:`SrtpError`, and nothing
    else, for a packet it cannot process, including one too long for pylibsrtp's
    1,500-byte working buffer, which also keeps room for the longest trailer libsrtp
    may add: at most 1,356 bytes go in to :attr:`protect` and 1,352 to
    :attr:`protect_rtcp` (RTP from a plain leg can be that long, so this is a peer's
    doing, not ours).
    """

    __slots__ = (
        "_rx",
        "_tx",
        "protect",
        "protect_rtcp",
        "sessions",
        "suite",
        "unprotect",
        "unprotect_rtcp",
    )

    def __init__(self, suite: str, tx_key: bytes, rx_key: bytes) -> None:
        self.suite: SrtpSuite = _suite(suite)
        self._tx = _session(self.suite, tx_key, _Policy.SSRC_ANY_OUTBOUND, outbound=True)
        self._rx = _session(self.suite, rx_key, _Policy.SSRC_ANY_INBOUND, outbound=False)
        # Functions rather than methods, one call less per packet. The trailers are
        # libsrtp's worst cases (auth tag, MKI; SRTCP index): pylibsrtp's limits.
        self.protect = _processor(self._tx, "protect", 16 + 128)
        """Encrypt and authenticate one RTP packet for sending."""
        self.protect_rtcp = _processor(self._tx, "protect_rtcp", 4 + 16 + 128)
        """Encrypt and authenticate one RTCP compound packet for sending."""
        self.unprotect = _processor(self._rx, "unprotect", 0)
        """Authenticate, replay-check and decrypt one received SRTP packet."""
        self.unprotect_rtcp = _processor(self._rx, "unprotect_rtcp", 0)
        """Authenticate, replay-check and decrypt one received SRTCP packet."""
        # Addresses only where the fast path may call libsrtp with them: without its
        # functions it refuses a session, and the relay's Python does the work.
        tx = rx = None
        if libsrtp_functions() is not None:
            tx, rx = _address(self._tx), _address(self._rx)
        self.sessions = None if tx is None or rx is None else (tx, rx)
        """The addresses of the outbound and inbound libsrtp sessions, which the relay's
        fast path uses while it holds this context (None: it cannot)."""

    @classmethod
    def from_dtls(cls, profile: str, material: bytes, *, is_client: bool) -> SrtpContext:
        """Keys exported from a DTLS association (RFC 5764 §4.2).

        ``material`` is the exporter output for label ``EXTRACTOR-dtls_srtp``, laid out
        as client_write_key | server_write_key | client_salt | server_salt. The client
        sends with the client's key and salt, the server with the server's.
        ``profile`` is a DTLS protection profile name or an SDES suite name.
        """
        suite = _suite(profile)
        key, salt = suite.key_length, suite.salt_length
        if len(material) != 2 * (key + salt):
            raise ValueError(f"{suite.dtls_name} needs {2 * (key + salt)} bytes of material")
        client = material[:key] + material[2 * key : 2 * key + salt]
        server = material[key : 2 * key] + material[2 * key + salt :]
        if is_client:
            return cls(suite.name, client, server)
        return cls(suite.name, server, client)
