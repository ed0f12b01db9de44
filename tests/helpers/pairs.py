"""Two transaction layers wired back to back in memory, and the messages they trade.

Modelled on aioquic's ``tests/test_connection.py`` (``client_and_server``,
``transfer``, ``drop``) and aiortc's ``loss_pattern``: a UAC-side layer and a
UAS-side layer exchange real bytes (serialized, then parsed again) with no
socket, and a test decides which datagrams get lost. Addresses are RFC 5737
documentation addresses; every id is fixed so runs are repeatable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.sip.flow import Flow
from gateway.sip.headers import Headers
from gateway.sip.message import Request, Response, parse_message
from gateway.transaction.layer import TimerConfig, TransactionLayer

UAC_ADDR = ("192.0.2.10", 5060)
UAS_ADDR = ("192.0.2.20", 5060)
CALL_ID = "a84b4c76e66710@192.0.2.10"
FROM_TAG = "1928301774"
TO_TAG = "a6c85cf"
BRANCH = "z9hG4bK776asdhds"

Drop = Callable[[bytes], bool]
"""Decides, per datagram, whether the network loses it."""


def mirror(flow: Flow) -> Flow:
    """The same path as the other end sees it."""
    return Flow(flow.transport, flow.remote, flow.local, flow.connection)


def loss_pattern(pattern: Iterable[bool]) -> Drop:
    """Lose datagrams by ``pattern``, repeated: ``[True, False]`` loses every other one."""
    steps = list(pattern)
    count = 0

    def drop(data: bytes) -> bool:
        nonlocal count
        lost = steps[count % len(steps)]
        count += 1
        return lost

    return drop


def lose_all(data: bytes) -> bool:
    """A network that delivers nothing."""
    return True


def transfer(
    src: TransactionLayer, dst: TransactionLayer, now: float, drop: Drop | None = None
) -> list[bytes]:
    """Move every datagram ``src`` wants to send into ``dst``; return those delivered.

    Each one is parsed again on arrival, as the engine would, and arrives on the
    mirrored flow.
    """
    delivered = []
    for data, flow in src.datagrams_to_send():
        if drop is not None and drop(data):
            continue
        dst.receive(parse_message(data), mirror(flow), now)
        delivered.append(data)
    return delivered


def discard(layer: TransactionLayer) -> list[bytes]:
    """Throw away what ``layer`` wants to send (all of it is lost); return it."""
    return [data for data, _ in layer.datagrams_to_send()]


def start_lines(datagrams: Iterable[bytes]) -> list[str]:
    """The first line of each datagram, for compact assertions."""
    return [data.split(b"\r\n", 1)[0].decode() for data in datagrams]


@dataclass
class Pair:
    """A UAC-side and a UAS-side layer and the flow each sends on."""

    uac: TransactionLayer
    uas: TransactionLayer
    uac_flow: Flow
    uas_flow: Flow

    def to_uas(self, now: float, drop: Drop | None = None) -> list[bytes]:
        return transfer(self.uac, self.uas, now, drop)

    def to_uac(self, now: float, drop: Drop | None = None) -> list[bytes]:
        return transfer(self.uas, self.uac, now, drop)


def client_and_server(
    transport: str = "udp", config: TimerConfig | None = None, connection: int = 0
) -> Pair:
    """Two fresh layers joined by one flow of ``transport``."""
    if connection == 0 and transport != "udp":
        connection = 1
    uac_flow = Flow(transport, UAC_ADDR, UAS_ADDR, connection)
    return Pair(TransactionLayer(config), TransactionLayer(config), uac_flow, mirror(uac_flow))


# -- messages ----------------------------------------------------------------------


def request(
    method: str = "INVITE",
    *,
    branch: str | None = BRANCH,
    cseq: int = 1,
    cseq_method: str | None = None,
    uri: str = "sip:bob@biloxi.example.com",
    transport: str = "UDP",
    to_tag: str | None = None,
    call_id: str = CALL_ID,
    routes: tuple[str, ...] = (),
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    """A request as a UAC at 192.0.2.10 sends it (RFC 3261 §8.1.1)."""
    via = f"SIP/2.0/{transport} {UAC_ADDR[0]}:{UAC_ADDR[1]}"
    if branch is not None:
        via += f";branch={branch}"
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    pairs = [("Via", via), ("Max-Forwards", "70")]
    pairs.extend(("Route", route) for route in routes)
    pairs += [
        ("From", f"Alice <sip:alice@atlanta.example.com>;tag={FROM_TAG}"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {cseq_method or method}"),
        ("Contact", f"<sip:alice@{UAC_ADDR[0]}>"),
        *extra,
        ("Content-Length", "0"),
    ]
    return Request(method, uri, Headers.of(pairs))


def response_to(
    req: Request, status: int, reason: str | None = None, *, to_tag: str | None = TO_TAG
) -> Response:
    """A response built from ``req`` by RFC 3261 §8.2.6 (a tag added unless 100)."""
    headers = req.headers
    to = headers.get("to") or ""
    if status > 100 and to_tag is not None and ";tag=" not in to:
        to += f";tag={to_tag}"
    pairs = [("Via", value) for value in headers.get_all("via")]
    pairs += [
        ("From", headers.get("from") or ""),
        ("To", to),
        ("Call-ID", headers.get("call-id") or ""),
        ("CSeq", headers.get("cseq") or ""),
        ("Content-Length", "0"),
    ]
    return Response(status, reason or _REASONS.get(status, "Whatever"), Headers.of(pairs))


def ack_for_2xx(invite: Request, ok: Response, branch: str = "z9hG4bK5d7b.ack") -> Request:
    """The UAC core's ACK for a 2xx: a new transaction, hence a new branch (§13.2.2.4)."""
    to = ok.headers.get("to") or ""
    pairs = [
        ("Via", f"SIP/2.0/UDP {UAC_ADDR[0]}:{UAC_ADDR[1]};branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("from") or ""),
        ("To", to),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} ACK"),
        ("Content-Length", "0"),
    ]
    return Request("ACK", invite.uri, Headers.of(pairs))


def parsed(message: Request | Response) -> Request | Response:
    """``message`` after a trip through the wire format."""
    return parse_message(bytes(message))


_REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    302: "Moved Temporarily",
    404: "Not Found",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    503: "Service Unavailable",
}
