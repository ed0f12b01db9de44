"""The demo PBX's registrar (RFC 3261 §10.3, RFC 3327 Path): one browser per name.

A name is held by one registration at a time, so "call bob" has one answer. A
REGISTER is decided by :meth:`Registrar.register`:

- the holder refreshing (same Call-ID, or same Contact) or leaving (``Expires: 0``)
  is done at once;
- a name nobody holds (or whose registration expired) is taken;
- a name another browser holds is :class:`Contested`: the PBX asks the holder with
  an OPTIONS along its Path (:meth:`Registrar.settle` takes the answer). A holder that
  answers keeps the name and the newcomer gets 403 "Name In Use"; a holder whose
  browser is gone (Wedge answers 430 Flow Failed for a closed WebSocket) loses it.

Pure: ``now`` is an argument, and nothing here sends anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.sip import NameAddr, ParseError, Request

__all__ = [
    "MAX_EXPIRES",
    "Binding",
    "Contested",
    "Refused",
    "Registered",
    "Registrar",
    "Unregistered",
    "valid_name",
]

MAX_EXPIRES = 600
"""The longest registration granted, in seconds; a client asking more gets this."""
DEFAULT_EXPIRES = 600
"""What a REGISTER that names no expiry gets."""
MAX_USERS = 1000
"""Names held at most: a demo, not a directory."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def valid_name(name: str) -> bool:
    """A demo user name: 1 to 32 letters, digits, ``.``, ``_`` or ``-``."""
    return _NAME.fullmatch(name) is not None


@dataclass(slots=True)
class Binding:
    """Who holds a name: the browser's Contact, and the Path that reaches it."""

    user: str
    contact: str
    """The Contact URI: the Request-URI of requests to this browser."""
    path: tuple[str, ...]
    """Path values as received (RFC 3327): the Route of requests to this browser."""
    call_id: str
    cseq: int
    expires_at: float
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    binding: Binding
    expires: int


@dataclass(frozen=True, slots=True)
class Unregistered:
    user: str


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str
    warning: str
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Contested:
    """Another browser holds the name: ask it (OPTIONS) before deciding."""

    holder: Binding
    newcomer: Binding
    expires: int


Outcome = Registered | Unregistered | Refused | Contested


class Registrar:
    """Names and their bindings. ``reserved``: names nobody may register (the
    service extensions)."""

    def __init__(self, reserved: frozenset[str] = frozenset()) -> None:
        self.reserved = reserved
        self._bindings: dict[str, Binding] = {}

    def __len__(self) -> int:
        return len(self._bindings)

    def lookup(self, user: str, now: float) -> Binding | None:
        """The live binding of ``user``, if any."""
        binding = self._bindings.get(user)
        if binding is not None and binding.expires_at <= now:
            del self._bindings[user]
            return None
        return binding

    def remove(self, binding: Binding) -> None:
        """Forget ``binding`` if it still holds its name (a browser found gone)."""
        if self._bindings.get(binding.user) is binding:
            del self._bindings[binding.user]

    def register(self, request: Request, user: str, now: float) -> Outcome:
        """Decide a REGISTER for ``user`` (already authenticated, if auth is on)."""
        if not valid_name(user):
            return Refused(
                403, "Invalid Name", f"{user!r} is not a usable name: use letters and digits"
            )
        if user in self.reserved:
            return Refused(403, "Reserved Name", f"{user} is a service extension of the PBX")
        try:
            contacts = request.contacts
            star = request.is_star_contact
        except ParseError as exc:
            return Refused(400, "Bad Contact", exc.reason)
        expires = _expires(request, contacts[0] if contacts and not star else None)
        holder = self.lookup(user, now)
        if star or expires == 0:
            if holder is not None and (
                holder.call_id == request.call_id
                or any(c.uri_text == holder.contact for c in contacts)
            ):
                del self._bindings[user]
            return Unregistered(user)
        if not contacts:
            return Refused(400, "No Contact", "the REGISTER has no Contact to register")
        if len(contacts) > 1:
            return Refused(400, "One Contact Only", "register one Contact at a time")
        granted = min(expires, MAX_EXPIRES)
        newcomer = Binding(
            user,
            contacts[0].uri_text,
            tuple(request.headers.values("path")),
            request.call_id,
            request.cseq.number,
            now + granted,
            request.from_.display,
        )
        if holder is None:
            if len(self._bindings) >= MAX_USERS:
                return Refused(503, "Too Many Users", "the demo PBX is full")
            self._bindings[user] = newcomer
            return Registered(newcomer, granted)
        if holder.call_id == request.call_id or holder.contact == newcomer.contact:
            if holder.call_id == request.call_id and request.cseq.number <= holder.cseq:
                return Refused(500, "Out Of Order", "CSeq went backwards (RFC 3261 §10.3)")
            holder.contact, holder.path = newcomer.contact, newcomer.path
            holder.call_id, holder.cseq = newcomer.call_id, newcomer.cseq
            holder.expires_at, holder.display = newcomer.expires_at, newcomer.display
            return Registered(holder, granted)
        return Contested(holder, newcomer, granted)

    def settle(self, contest: Contested, holder_alive: bool, now: float) -> Outcome:
        """The holder answered (``holder_alive``) or not: decide the contested REGISTER."""
        current = self.lookup(contest.holder.user, now)
        if holder_alive and current is contest.holder:
            return Refused(
                403,
                "Name In Use",
                f"{contest.holder.user} is already registered from another browser or tab",
            )
        if current is not None and current is not contest.holder:
            return Contested(current, contest.newcomer, contest.expires)
        self._bindings[contest.newcomer.user] = contest.newcomer
        return Registered(contest.newcomer, contest.expires)


def _expires(request: Request, contact: NameAddr | None) -> int:
    """RFC 3261 §10.2.1.1: the Contact's expires parameter, else the Expires header."""
    for text in (
        contact.param("expires") if contact is not None else None,
        request.headers.get("expires"),
    ):
        if text is not None and text.strip().isdigit():
            return int(text.strip())
    return DEFAULT_EXPIRES
