"""A dialog as one end of it keeps it (RFC 3261 §12), and the requests it sends in it.

The demo PBX is a user agent on each leg of a call: the caller's INVITE makes a
dialog in which it is the UAS (§12.1.1), its own INVITE to a callee one in which
it is the UAC (§12.1.2). Both keep the same things: Call-ID, tags, the route set,
the remote target, the CSeq numbers, and the flow where requests leave (the first
hop of the route set: Wedge). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sip import Flow, Headers, NameAddr, ParseError, Request, Response, SipUri
from gateway.sip.flow import Address

__all__ = ["Dialog", "first_hop", "uri_address"]

USER_AGENT = "Wedge demo PBX"


def uri_address(uri_text: str) -> Address | None:
    """The address a ``sip:`` URI (or a name-addr holding one) points at, by its
    host and port (no DNS: the demo only ever routes to IP addresses)."""
    try:
        uri = NameAddr.parse(uri_text.strip(), "route").uri
    except ParseError:  # a peer's bad URI only costs its own request
        return None
    if not isinstance(uri, SipUri):
        return None
    host = (uri.maddr or uri.host).strip("[]")
    return host, uri.port or 5060


def first_hop(routes: list[str], target: str, local: Address) -> Flow | None:
    """Where a request with ``routes`` (loose routing, §16.12) to ``target`` leaves."""
    address = uri_address(routes[0] if routes else target)
    return None if address is None else Flow("udp", local, address)


@dataclass(slots=True, eq=False)
class Dialog:
    """One dialog, from our side."""

    call_id: str
    local: str
    """Our From (UAC) or To (UAS) header value, with our tag."""
    remote: str
    """Theirs, with their tag."""
    target: str
    """The remote target: their Contact URI."""
    routes: list[str]
    """The route set, in the order it goes in Route headers."""
    flow: Flow
    """The first hop, where every request in the dialog is sent."""
    local_cseq: int
    remote_cseq: int

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, flow: Flow) -> Dialog | None:
        """§12.1.1: the dialog the INVITE makes with us as the UAS."""
        contacts = invite.contacts
        if not contacts:
            return None
        routes = invite.headers.values("record-route")
        hop = first_hop(routes, contacts[0].uri_text, flow.local)
        if hop is None:
            return None
        return cls(
            invite.call_id,
            f"{invite.headers.get('to')};tag={local_tag}",
            invite.headers.get("from") or "",
            contacts[0].uri_text,
            routes,
            hop,
            0,
            invite.cseq.number,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, local: Address) -> Dialog | None:
        """§12.1.2: the dialog a 2xx to our INVITE makes."""
        contacts = response.contacts
        if not contacts:
            return None
        routes = list(reversed(response.headers.values("record-route")))
        hop = first_hop(routes, contacts[0].uri_text, local)
        if hop is None:
            return None
        return cls(
            invite.call_id,
            invite.headers.get("from") or "",
            response.headers.get("to") or "",
            contacts[0].uri_text,
            routes,
            hop,
            invite.cseq.number,
            0,
        )

    def request(
        self,
        method: str,
        via: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        cseq: int | None = None,
    ) -> Request:
        """A request in this dialog (§12.2.1.1); a new CSeq unless ``cseq`` is given
        (the ACK and CANCEL reuse their INVITE's)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        pairs = [("Via", via), ("Max-Forwards", "70")]
        pairs += [("Route", route) for route in self.routes]
        pairs += [
            ("From", self.local),
            ("To", self.remote),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            *extra,
            ("User-Agent", USER_AGENT),
        ]
        if content_type is not None:
            pairs.append(("Content-Type", content_type))
        pairs.append(("Content-Length", str(len(body))))
        return Request(method, self.target, Headers.of(pairs), body)
