"""What some peers expect of an SBC beyond RFC 3261: identification and Contact rewriting.

Microsoft's Direct Routing (and the SBCs certified for it) is the model:

- ``X-MS-SBC: vendor/model/version`` names the SBC on every message it sends to
  the peer; Wedge writes it on messages leaving a listener configured with
  ``x_ms_sbc``.
- The peer wants the SBC's FQDN as the host of every Contact it receives (an IP
  address there is answered 403). As a proxy Wedge would leave Contacts alone:
  Record-Route already names it, and the peer sends in-dialog requests by the
  route. A listener with ``rewrite_contact`` makes every Contact leaving it name
  the listener's advertised host, port and transport, and keeps the original
  host, port and transport in a parameter of its own (``w-c``), so a request
  that comes back addressed to the rewritten Contact gets its original
  Request-URI again before it is routed on.

Pure: messages in, messages edited in place.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from gateway.proxy.routing import Listener
from gateway.sip import NameAddr, Request, Response, SipUri

__all__ = ["CONTACT_MARK", "X_MS_SBC", "restore_target", "rewrite_contacts"]

X_MS_SBC = "X-MS-SBC"
# A URI's transport parameter per listener transport (RFC 7118 §5.2: "ws" for both
# WebSocket kinds); none for udp, the default.
_URI_TRANSPORT = {"tcp": "tcp", "tls": "tls", "ws": "ws", "wss": "ws"}
CONTACT_MARK = "w-c"
"""The URI parameter that carries a rewritten Contact's original host, port and
transport (base64url of ``host|port|transport``, without padding)."""


def _encode(uri: SipUri) -> str:
    text = f"{uri.host}|{uri.port or ''}|{uri.transport or ''}"
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _decode(value: str) -> tuple[str, int | None, str | None] | None:
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    host, _, rest = text.partition("|")
    port, _, transport = rest.partition("|")
    if not host or (port and not port.isdigit()) or len(port) > 5:
        return None
    return host, int(port) if port else None, transport or None


def rewrite_contacts(message: Request | Response, listener: Listener) -> None:
    """Every sip: Contact names ``listener``'s advertised host, port and transport."""
    if "contact" not in message.headers or message.headers.get("contact") == "*":
        return
    host, port = listener.advertise
    rewritten: list[str] = []
    changed = False
    for contact in message.contacts:
        uri = contact.uri
        if not isinstance(uri, SipUri) or uri.has_param(CONTACT_MARK):
            rewritten.append(str(contact))
            continue
        new = uri.replace(host=host, port=port).with_param(CONTACT_MARK, _encode(uri))
        transport = _URI_TRANSPORT.get(listener.transport)
        new = (
            new.with_param("transport", transport) if transport else new.without_param("transport")
        )
        rewritten.append(str(NameAddr(new, contact.display_name, contact.params)))
        changed = True
    if changed:
        message.headers.set("Contact", ", ".join(rewritten))


def restore_target(request: Request, is_ours: Callable[[SipUri], bool]) -> bool:
    """A Request-URI that is one of our rewritten Contacts gets its original host,
    port and transport back. Returns True when it did."""
    ruri = request.ruri
    if not isinstance(ruri, SipUri):
        return False
    mark = ruri.param(CONTACT_MARK)
    if mark is None or not is_ours(ruri):
        return False
    original = _decode(mark)
    if original is None:
        return False
    host, port, transport = original
    uri = ruri.replace(host=host, port=port).without_param(CONTACT_MARK)
    uri = uri.with_param("transport", transport) if transport else uri.without_param("transport")
    request.uri = str(uri)
    return True
