"""Flow tokens: a flow written into a URI, so a later request finds its way back.

Wedge puts a token in the user part of the Record-Route (and, later, Path)
entries it adds, in the spirit of RFC 5626 §5.2: when a request comes back along
that route, the token names the exact flow (the WebSocket, the TLS connection,
the NAT binding) to send it on, even though the UA's Contact may be an
unreachable ``.invalid`` host or a private address.

A token is opaque to everyone else and authenticated: an HMAC-SHA256 over its
contents with a secret only Wedge knows, so a peer can neither forge one nor
point Wedge at an address of its choosing (RFC 5626 §5.2: "the flow token MUST
be tamper-proof"). A damaged or forged token decodes to None.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import struct

from gateway.memo import remember
from gateway.sip.flow import TRANSPORTS, Address, Flow

__all__ = ["FlowTokens"]

_TRANSPORTS = sorted(TRANSPORTS)
MAX_REMEMBERED = 10_000
"""Tokens kept each way (decoded, encoded), oldest dropped first: about one per
live dialog side."""
_MAC_SIZE = 10  # 80 bits: RFC 2104 §5 allows truncating to half the hash and at least 80 bits.
# transport, connection id (which, with SIP workers, names its worker too), local
# port, remote port, then the two addresses.
_HEAD = struct.Struct("!BQHH")


class FlowTokens:
    """Encodes flows into tokens and back, with one secret.

    Args:
        secret: the HMAC key; at least 16 bytes.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a flow-token secret needs at least 16 bytes")
        self._secret = secret
        self._known: dict[str, Flow] = {}
        self._tokens: dict[Flow, str] = {}

    def encode(self, flow: Flow) -> str:
        """A token for ``flow``: URL-safe base64, fit for a SIP URI's user part.

        A flow's token never changes, and every call from a client flow needs it
        again: the tokens are remembered (a bounded number), as in :meth:`decode`.
        """
        token = self._tokens.get(flow)
        if token is None:
            token = remember(self._tokens, flow, self._encode(flow), MAX_REMEMBERED)
        return token

    def decode(self, token: str) -> Flow | None:
        """The flow a token names, or None if it is not one of ours.

        Every request of a dialog carries the same tokens, so the answers for
        good tokens are remembered (a bounded number); a bad one is checked anew.
        """
        known = self._known.get(token)
        if known is not None:
            return known
        decoded = self._decode(token)
        if decoded is not None:
            remember(self._known, token, decoded, MAX_REMEMBERED)
        return decoded

    def _encode(self, flow: Flow) -> str:
        local = _packed(flow.local[0])
        remote = _packed(flow.remote[0])
        if len(local) != len(remote):  # one of each family: write both as IPv6
            local, remote = _as_ipv6(local), _as_ipv6(remote)
        body = (
            _HEAD.pack(
                _TRANSPORTS.index(flow.transport),
                flow.connection,
                flow.local[1],
                flow.remote[1],
            )
            + bytes([len(local)])
            + local
            + remote
        )
        return _b64(body + self._mac(body))

    def _decode(self, token: str) -> Flow | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if len(body) <= _HEAD.size or not hmac.compare_digest(mac, self._mac(body)):
            return None
        transport, connection, local_port, remote_port = _HEAD.unpack_from(body)
        size = body[_HEAD.size]
        addresses = body[_HEAD.size + 1 :]
        if size not in (4, 16) or len(addresses) != 2 * size or transport >= len(_TRANSPORTS):
            return None
        local: Address = (_text(addresses[:size]), local_port)
        remote: Address = (_text(addresses[size:]), remote_port)
        return Flow(_TRANSPORTS[transport], local, remote, connection)

    def _mac(self, body: bytes) -> bytes:
        return hmac.digest(self._secret, body, hashlib.sha256)[:_MAC_SIZE]


# A proxy meets the same few addresses over and over: remember their forms.
@functools.lru_cache(maxsize=4096)
def _packed(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


@functools.lru_cache(maxsize=4096)
def _text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def _as_ipv6(packed: bytes) -> bytes:
    return packed if len(packed) == 16 else b"\0" * 10 + b"\xff\xff" + packed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
