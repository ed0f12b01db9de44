"""Errors of the SDP package.

The tree::

    SdpError      a peer's session description is malformed or cannot be used
    ValueError    (built in) our own code passed a bad value to an editing call

An :class:`SdpError` carries the SIP status to answer with and a reason short and
safe enough for that response's reason phrase. RFC 3261 §21.4.26 gives 488 (Not
Acceptable Here) for a session description that cannot be accepted, and that is the
default; the caller may prefer 400 for a body that is not SDP at all. Peer text in
a reason is escaped and cut short by :func:`show`.
"""

from __future__ import annotations

__all__ = ["SdpError", "show"]

_SHOW_MAX = 32
"""Characters of peer text quoted in a reason; the rest becomes an ellipsis."""


class SdpError(Exception):
    """A peer sent SDP that is malformed or that we cannot use.

    Args:
        reason: what is wrong, e.g. ``"missing o= line"``; printable ASCII only.
        status: the SIP response code for the request that carried it.
    """

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def show(text: str) -> str:
    """Quote peer text for a reason phrase: printable ASCII only, at most a few words."""
    cut = text[:_SHOW_MAX]
    quoted = ascii(cut)[1:-1].replace('"', "'")
    return f'"{quoted}..."' if len(text) > _SHOW_MAX else f'"{quoted}"'
