"""HTTP Digest authentication of SIP requests (RFC 3261 §22.4, RFC 2617), for the
demo PBX when it is given a users file.

MD5 with ``qop=auth`` (what browsers' SIP stacks, JsSIP among them, answer), or the
RFC 2069 form without qop. Nonces come from an injected source and live
:data:`NONCE_LIFETIME` seconds; an expired one is answered with ``stale=true`` so the
client retries without asking its user again. Pure: ``now`` is an argument.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping

from gateway.sip import Request

__all__ = ["NONCE_LIFETIME", "DigestAuth", "Verdict", "parse_credentials"]

NONCE_LIFETIME = 300.0
"""Seconds a nonce is accepted after it was issued."""
MAX_NONCES = 10_000
"""Nonces remembered at most; the oldest are forgotten first."""

_PARAM = re.compile(r'\s*([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)')


class Verdict(enum.Enum):
    """What :meth:`DigestAuth.check` found."""

    OK = "ok"
    MISSING = "missing"
    """No credentials for our realm: challenge."""
    STALE = "stale"
    """Right password, old nonce: challenge again with ``stale=true``."""
    WRONG = "wrong"
    """Credentials that do not match the user's password (or a nonce we never gave)."""
    UNKNOWN = "unknown"
    """A user name that is not in the users file."""


def parse_credentials(value: str) -> dict[str, str] | None:
    """The parameters of a ``Digest`` Authorization value, names in lower case."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    at = 0
    while at < len(rest):
        match = _PARAM.match(rest, at)
        if match is None:
            return None
        name, quoted, token = match.groups()
        params[name.lower()] = quoted.replace('\\"', '"') if quoted is not None else token
        at = match.end()
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestAuth:
    """Challenges and checks for ``users`` (name -> password) in ``realm``."""

    def __init__(self, realm: str, users: Mapping[str, str], nonces: Callable[[], str]):
        self.realm = realm
        self.users = dict(users)
        self._nonces = nonces
        self._issued: dict[str, float] = {}

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value with a fresh nonce."""
        nonce = self._nonces()
        self._issued[nonce] = now
        while len(self._issued) > MAX_NONCES:
            del self._issued[next(iter(self._issued))]
        value = f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
        return value + (", stale=true" if stale else "")

    def check(self, request: Request, header: str, now: float) -> tuple[Verdict, str | None]:
        """Check the credentials in ``header`` (Authorization or Proxy-Authorization).

        Returns the verdict and the user name the credentials claimed.
        """
        for value in request.headers.get_all(header):
            params = parse_credentials(value)
            if params is None or params.get("realm") != self.realm:
                continue
            username = params.get("username")
            if username is None:
                return Verdict.WRONG, None
            password = self.users.get(username)
            if password is None:
                return Verdict.UNKNOWN, username
            if not self._matches(params, request.method, username, password):
                return Verdict.WRONG, username
            issued = self._issued.get(params.get("nonce", ""))
            if issued is None:
                # Not ours (or long forgotten): the password was right, so a new
                # challenge lets the client try again without asking its user.
                return Verdict.STALE, username
            if now - issued > NONCE_LIFETIME:
                return Verdict.STALE, username
            return Verdict.OK, username
        return Verdict.MISSING, None

    def _matches(self, params: dict[str, str], method: str, username: str, password: str) -> bool:
        if params.get("algorithm", "MD5").upper() != "MD5":
            return False
        ha1 = _md5(f"{username}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{params.get('uri', '')}")
        nonce = params.get("nonce", "")
        qop = params.get("qop")
        if qop is None:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        elif qop.lower() == "auth":
            counter, cnonce = params.get("nc", ""), params.get("cnonce", "")
            expected = _md5(f"{ha1}:{nonce}:{counter}:{cnonce}:auth:{ha2}")
        else:
            return False
        return hmac.compare_digest(expected, params.get("response", "").lower())
