"""Errors of the SIP layer.

The tree::

    SipError
    ├── ParseError           bytes from a peer that are not a valid SIP message
    └── LocalProtocolError   our own code misused the API (a bug, never peer input)

A :class:`ParseError` carries the status a server answers a bad request with
(400 unless a more specific code applies: 505 for an unknown SIP version, 513
for a message over the size limits, 416 for an unsupported URI scheme) and a
reason short and safe enough to go into that response's reason phrase. A bad
*response* is never answered: RFC 3261 §18.1.2 says to drop it.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ParseError", "SipError"]


class SipError(Exception):
    """Root of every error raised by :mod:`gateway.sip`."""


class ParseError(SipError):
    """A peer sent something that is not valid SIP.

    Args:
        reason: what is wrong, e.g. ``"missing Call-ID"``; printable ASCII only.
        status: the response code a server should answer a request with.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol does not allow."""
