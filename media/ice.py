"""The ICE-lite agent of one relay port (RFC 8445 §2.5), with consent freshness (RFC 7675).

Theory of operation. Toward a browser the relay is an ICE-lite agent: it offers one
host candidate per port, never sends a check, and answers the checks the browser
sends. The browser is the full agent, so it controls (RFC 8445 §6.1.1: "the full
agent MUST take the controlling role, and the lite agent MUST take the controlled
role"); it chooses the pair and nominates it with USE-CANDIDATE. What is left for a
lite agent is a STUN server with three extra duties:

1. authenticate each Binding request with the short-term credentials from the SDP
   (RFC 8445 §7.2.2: USERNAME is ``<our ufrag>:<their ufrag>`` and MESSAGE-INTEGRITY
   is keyed with our password) and answer it with the address it came from
   (XOR-MAPPED-ADDRESS), signed with our password and fingerprinted;
2. remember which source addresses passed a check: media and DTLS are accepted only
   from those (:meth:`IceLite.is_valid`), and the relay sends to :attr:`IceLite.selected`;
3. notice when the browser stops checking (:meth:`IceLite.consent_expired`).

:class:`IceLite` is pure: bytes, an address and ``now`` in, the bytes to send back out.
STUN is encoded and decoded by aioice's codec (``aioice.stun``); only the rarely used
UNKNOWN-ATTRIBUTES attribute, which aioice has no row for, is appended by hand.

The choices, where the RFCs leave one:

- **Silent drop or error response.** RFC 8489 §6.3 discards whatever is not a
  well-formed STUN message (bad header, magic cookie, length or FINGERPRINT), and
  indications never get a response; a lite agent sends no requests, so a response is
  stray and dropped too. Requests for other methods are dropped (a media port is not a
  TURN server). A Binding request that fails authentication gets the error RFC 8489
  §9.1.3 prescribes for short-term credentials: 400 when USERNAME or MESSAGE-INTEGRITY
  is missing, 401 when the username is not ours or the integrity check fails, neither
  signed (we hold no key the sender proved it has). A 401 is also what a browser
  expects during the short races of an ICE restart: Chrome treats it as recoverable
  and checks again, where a 400 would make it give the pair up.
- **Whose ufrag.** RFC 8445 §7.3 requires only the part before the colon to be ours.
  The part after it is checked against the browser's ufrag once :meth:`IceLite.set_remote`
  has told us what it is; before that (the browser may check before its answer
  reaches us), any is accepted: the password is what authenticates.
- **Unknown attributes.** After authentication, a comprehension-required attribute
  (type below 0x8000) that aioice does not know gets 420 with UNKNOWN-ATTRIBUTES
  (RFC 8489 §6.3.1); this is how an RFC 8489 client learns that we only speak
  MESSAGE-INTEGRITY (SHA-1), which is all ICE uses. Browsers' own attributes
  (GOOG-NETWORK-INFO ...) are comprehension-optional and ignored.
- **Role conflict.** A lite agent can never take the controlling role, so it acts as
  if its tie-breaker were the largest possible value: by RFC 8445 §7.3.1.1 a request
  with ICE-CONTROLLED ("the agent's tiebreaker value is larger than or equal to the
  contents of the ICE-CONTROLLED attribute") gets 487 Role Conflict, signed, and the
  full agent switches to controlling (§7.2.5.1). ICE-CONTROLLING is the normal case;
  a request with neither cannot show a conflict (§7.3.1.1) and is answered.
- **Nomination.** RFC 8445 §8.1.1 lets the controlling agent nominate one pair, so
  the latest USE-CANDIDATE is followed: it is the only one, or the browser
  renominating after a network change, which is what it wants. Before any nomination
  the latest validated address is selected, so media can start at once.
- **ICE restart** (RFC 8445 §9): new credentials on either side (:meth:`IceLite.set_remote`
  returns True, :meth:`IceLite.set_local`) flush the validated addresses and the
  nomination. But "data can continue to be sent using existing data sessions"
  (§9): the address selected before the restart stays selected and valid, with its
  consent clock, until a pair is nominated under the new credentials.
- **Consent** (RFC 7675). A lite agent sends no consent checks, it only answers them
  (RFC 7675 §4). The browser checks its selected pair every few seconds and stops
  sending once 30 s pass without an answer (§5.1), so no valid check from the selected
  address for ``consent_timeout`` seconds means the browser is gone, or has given up
  on us. Before the first successful check nothing is selected and nothing expires:
  how long to wait for ICE to start is the call's setup timer's business.
- **Bounded state.** At most :data:`MAX_VALID_ADDRESSES` validated addresses; the one
  checked least recently goes first, but never the nominated one. Only a sender that
  knows our password can add one.

Hot path: :meth:`IceLite.handle` runs for STUN only, a few packets per second per
call; it logs only when debug logging was on at start.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections import Counter, OrderedDict

from aioice import stun

__all__ = ["CONSENT_TIMEOUT", "MAX_VALID_ADDRESSES", "Address", "IceLite"]

logger = logging.getLogger("wedge.media")

Address = tuple[str, int]

MAX_VALID_ADDRESSES = 16
"""Validated source addresses kept per port. A browser checks one pair per candidate
of its own (host, server-reflexive and relayed, per interface and family): a handful."""

CONSENT_TIMEOUT = 30.0
"""Seconds without a valid check before consent is lost (RFC 7675 §5.1)."""

_COOKIE = struct.pack("!I", stun.COOKIE)
_ATTRIBUTE = struct.Struct("!HH")  # type, length (RFC 8489 §14)
_MESSAGE_INTEGRITY = 0x0008
_UNKNOWN_ATTRIBUTES = 0x000A  # RFC 8489 §14.9
_FINGERPRINT = 0x8028
_COMPREHENSION_OPTIONAL = 0x8000  # RFC 8489 §14: types from here on may be ignored


class IceLite:
    """One relay port's ICE-lite agent.

    Args:
        local_ufrag: our ``a=ice-ufrag`` on this port's leg.
        local_pwd: our ``a=ice-pwd``; the key of the short-term credential.
        consent_timeout: seconds without a valid check from the selected address
            before :meth:`consent_expired` says so.

    Attributes:
        dropped: why datagrams got no success response, counted: ``malformed``,
            ``bad fingerprint``, ``not binding``, ``indication``, ``response``
            (dropped silently); ``missing credentials`` (400), ``unknown username``,
            ``bad integrity`` (401), ``unknown attribute`` (420), ``role conflict`` (487)
            (answered with that error).
    """

    __slots__ = (
        "_checked",
        "_debug",
        "_held",
        "_key",
        "_latest",
        "_local_ufrag",
        "_nominated",
        "_remote",
        "consent_timeout",
        "dropped",
    )

    def __init__(
        self, local_ufrag: str, local_pwd: str, *, consent_timeout: float = CONSENT_TIMEOUT
    ) -> None:
        self._local_ufrag = local_ufrag
        self._key = local_pwd.encode()
        self._remote: tuple[str, str] | None = None
        self.consent_timeout = consent_timeout
        self.dropped: Counter[str] = Counter()
        # Validated address -> time of its latest successful check, least recent first.
        self._checked: OrderedDict[Address, float] = OrderedDict()
        self._latest: Address | None = None
        self._nominated: Address | None = None
        # Across an ICE restart: the address selected before it, and its last check.
        self._held: tuple[Address, float] | None = None
        self._debug = logger.isEnabledFor(logging.DEBUG)

    # -- credentials (from the offer/answer) ------------------------------------------

    def set_remote(self, ufrag: str, pwd: str) -> bool:
        """Take the browser's ``a=ice-ufrag`` and ``a=ice-pwd``.

        Returns:
            True if they replace different known ones: an ICE restart (RFC 8445 §9),
            and the validated addresses are forgotten. False the first time and when
            they are unchanged.
        """
        remote = (ufrag, pwd)
        if remote == self._remote:
            return False
        known = self._remote is not None
        self._remote = remote
        if known:
            self._restart()
        return known

    def set_local(self, ufrag: str, pwd: str) -> None:
        """Use new credentials of our own, as an ICE restart requires (RFC 8445 §9)."""
        key = pwd.encode()
        if ufrag == self._local_ufrag and key == self._key:
            return
        self._local_ufrag, self._key = ufrag, key
        self._restart()

    def _restart(self) -> None:
        selected = self.selected
        if selected is not None:
            self._held = (selected, self._last_check(selected))
        self._checked.clear()
        self._latest = self._nominated = None
        if self._debug:
            logger.debug("= ice restart, holding %s", selected)

    # -- the STUN path ----------------------------------------------------------------

    def handle(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """Answer one STUN datagram (first byte 0 to 3, RFC 7983) from ``addr``.

        Never raises for anything in ``data``.

        Returns:
            The response to send back to ``addr``: a Binding success response, or the
            error response the RFCs ask for. None when the datagram is dropped silently.
        """
        request = self._parse(data, addr)
        if request is None:
            return None
        if request.message_method != stun.Method.BINDING:
            self._count("not binding", addr)
            return None
        if request.message_class != stun.Class.REQUEST:
            # RFC 8489 §6.3.2: no response to an indication (ICE keepalives may be
            # Binding indications, RFC 8445 §11); we send no requests, so any
            # response is stray.
            reason = "indication" if request.message_class == stun.Class.INDICATION else "response"
            self._count(reason, addr)
            return None

        # RFC 8489 §9.1.3, in its order. A failed check gets no MESSAGE-INTEGRITY.
        username = request.attributes.get("USERNAME")
        if username is None or "MESSAGE-INTEGRITY" not in request.attributes:
            return self._reject(request, "missing credentials", 400, "Bad Request", addr)
        if not self._ours(username):
            return self._reject(request, "unknown username", 401, "Unauthenticated", addr)
        if not request.check_message_integrity(self._key):
            return self._reject(request, "bad integrity", 401, "Unauthenticated", addr)

        # Authenticated: every response from here on is signed (RFC 8489 §9.1.3).
        unknown = _unknown_required(data)
        if unknown:
            self._count("unknown attribute", addr)
            return _unknown_attributes_error(request, unknown, self._key)
        if "ICE-CONTROLLED" in request.attributes:
            # RFC 8445 §7.3.1.1 with a tie-breaker no value can beat (module docstring).
            self._count("role conflict", addr)
            return _error(request, 487, "Role Conflict", self._key)

        self._validate(addr, "USE-CANDIDATE" in request.attributes, now)
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.RESPONSE,
            request.transaction_id,
            {"XOR-MAPPED-ADDRESS": _as_seen(addr)},
        )
        response.add_message_integrity(self._key)  # and FINGERPRINT, which ICE uses (RFC 8445 §7)
        return bytes(response)

    def _parse(self, data: bytes, addr: Address) -> stun.Message | None:
        # RFC 8489 §6.3: the two top bits zero, the magic cookie, a length that is a
        # multiple of 4 (§5); aioice checks that the length matches and the FINGERPRINT.
        if (
            len(data) < stun.HEADER_LENGTH
            or data[0] & 0xC0
            or data[3] & 0x03
            or data[4:8] != _COOKIE
        ):
            self._count("malformed", addr)
            return None
        try:
            return stun.parse_message(data)
        except (ValueError, struct.error):  # UnicodeDecodeError is a ValueError
            self._count("bad fingerprint" if _bad_fingerprint(data) else "malformed", addr)
            return None

    def _ours(self, username: str) -> bool:
        local, colon, remote = username.partition(":")
        if not colon or local != self._local_ufrag:
            return False
        return self._remote is None or remote == self._remote[0]

    def _validate(self, addr: Address, nominate: bool, now: float) -> None:
        checked = self._checked
        new = addr not in checked
        checked[addr] = now
        checked.move_to_end(addr)
        self._latest = addr
        if new and len(checked) > MAX_VALID_ADDRESSES:
            del checked[next(a for a in checked if a != self._nominated)]
        if nominate and addr != self._nominated:
            self._nominated = addr
            self._held = None  # a restart is complete once a new pair is nominated
            if self._debug:
                logger.debug("= ice nominated %s", addr)

    def _reject(
        self, request: stun.Message, reason: str, code: int, phrase: str, addr: Address
    ) -> bytes:
        self._count(reason, addr)
        return _error(request, code, phrase, None)

    def _count(self, reason: str, addr: Address) -> None:
        self.dropped[reason] += 1
        if self._debug:
            logger.debug("! stun from %s: %s", addr, reason)

    # -- what the relay asks ----------------------------------------------------------

    def is_valid(self, addr: Address) -> bool:
        """Whether a check from ``addr`` succeeded, so media from it is accepted."""
        held = self._held
        return addr in self._checked or (held is not None and held[0] == addr)

    @property
    def selected(self) -> Address | None:
        """Where media goes: the nominated address; across a restart the one held
        from before it; else the latest validated. None before any check succeeds."""
        if self._nominated is not None:
            return self._nominated
        if self._held is not None:
            return self._held[0]
        return self._latest

    @property
    def consent_deadline(self) -> float | None:
        """When consent runs out unless the selected address checks again (None:
        nothing selected). The shell can arm its timer with it."""
        selected = self.selected
        if selected is None:
            return None
        return self._last_check(selected) + self.consent_timeout

    def consent_expired(self, now: float) -> bool:
        """Whether the selected address has sent no valid check for ``consent_timeout``
        seconds (RFC 7675 §5.1). False while nothing is selected."""
        deadline = self.consent_deadline
        return deadline is not None and now >= deadline

    def _last_check(self, addr: Address) -> float:
        last = self._checked.get(addr)
        if last is None:
            held = self._held
            assert held is not None and held[0] == addr, "only selected addresses are asked"
            last = held[1]
        return last


def _error(request: stun.Message, code: int, phrase: str, key: bytes | None) -> bytes:
    """A Binding error response, signed with ``key`` unless it is None."""
    response = stun.Message(
        stun.Method.BINDING,
        stun.Class.ERROR,
        request.transaction_id,
        {"ERROR-CODE": (code, phrase)},
    )
    if key is None:
        response.add_fingerprint()
    else:
        response.add_message_integrity(key)
    return bytes(response)


def _unknown_required(data: bytes) -> list[int]:
    """The comprehension-required attribute types aioice does not know, among the
    authenticated ones (those before MESSAGE-INTEGRITY); ``data`` has parsed."""
    unknown: list[int] = []
    pos = stun.HEADER_LENGTH
    while pos + _ATTRIBUTE.size <= len(data):
        kind, length = _ATTRIBUTE.unpack_from(data, pos)
        if kind == _MESSAGE_INTEGRITY:
            break
        if (
            kind < _COMPREHENSION_OPTIONAL
            and kind not in stun.ATTRIBUTES_BY_TYPE
            and kind not in unknown
        ):
            unknown.append(kind)
        pos += _ATTRIBUTE.size + length + stun.padding_length(length)
    return unknown


def _unknown_attributes_error(request: stun.Message, unknown: list[int], key: bytes) -> bytes:
    """420 with UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1, §14.9), signed.

    aioice's attribute table has no UNKNOWN-ATTRIBUTES row, so that attribute is
    appended to aioice's encoding here, followed by MESSAGE-INTEGRITY and FINGERPRINT
    computed with aioice's own helpers. Each listed type cost the sender at least four
    bytes and costs two here: the answer is never larger than the request.
    """
    response = stun.Message(
        stun.Method.BINDING,
        stun.Class.ERROR,
        request.transaction_id,
        {"ERROR-CODE": (420, "Unknown Attribute")},
    )
    value = struct.pack(f"!{len(unknown)}H", *unknown)
    data = (
        bytes(response)
        + _ATTRIBUTE.pack(_UNKNOWN_ATTRIBUTES, len(value))
        + value
        + bytes(stun.padding_length(len(value)))
    )
    # Each helper sets the header's length to cover the attribute it computes.
    integrity = stun.message_integrity(data, key)
    data += _ATTRIBUTE.pack(_MESSAGE_INTEGRITY, len(integrity)) + integrity
    fingerprint = stun.message_fingerprint(data)
    data += _ATTRIBUTE.pack(_FINGERPRINT, 4) + struct.pack("!I", fingerprint)
    return stun.set_body_length(data, len(data) - stun.HEADER_LENGTH)


def _bad_fingerprint(data: bytes) -> bool:
    """Whether ``data`` ends in a FINGERPRINT attribute with the wrong value."""
    end = len(data) - stun.FINGERPRINT_LENGTH
    if end < stun.HEADER_LENGTH:
        return False
    kind, length = _ATTRIBUTE.unpack_from(data, end)
    if kind != _FINGERPRINT or length != 4:
        return False
    (value,) = struct.unpack_from("!I", data, end + _ATTRIBUTE.size)
    return bool(value != stun.message_fingerprint(data[:end]))


def _as_seen(addr: Address) -> Address:
    """``addr`` as the browser knows it: an IPv4-mapped IPv6 address, as a dual-stack
    socket reports an IPv4 peer, goes back to IPv4 (RFC 4291 §2.5.5.2)."""
    host, port = addr
    if ":" in host:
        mapped = ipaddress.IPv6Address(host.partition("%")[0]).ipv4_mapped
        if mapped is not None:
            return (str(mapped), port)
    return addr
