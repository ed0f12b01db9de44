"""The demo PBX in memory, with Wedge played by the test: messages as Wedge forwards
them (its Via on top, its Record-Route and Path entries), bytes in, bytes out."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from gateway.demo.media_requests import MediaRequest
from gateway.demo.pbx import DemoPbx
from gateway.demo.settings import PbxSettings
from gateway.sip import Flow, Request, Response, parse_message

PBX = ("127.0.0.1", 5090)
WEDGE = ("127.0.0.1", 5070)
FLOW = Flow("udp", PBX, WEDGE)

RELAY_OFFER = (
    b"v=0\r\n"
    b"o=- 1 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 111 0 8 126\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:126 telephone-event/8000\r\n"
    b"a=rtcp:40001\r\n"
    b"a=sendrecv\r\n"
)
"""An offer as Wedge's relay writes it for the PBX leg: plain RTP, the browser's codecs."""


def path(user: str) -> str:
    """The Path entry Wedge adds to a browser's REGISTER (its flow token in the user part)."""
    return f"<sip:tok-{user}@127.0.0.1:5070;lr;ob>"


def contact(user: str) -> str:
    return f"sip:{user}x@{user}.invalid;transport=ws"


def message(
    method: str,
    ruri: str,
    *,
    user: str,
    to: str,
    call_id: str,
    cseq: int,
    branch: str,
    to_tag: str | None = None,
    from_tag: str = "ftag",
    body: bytes = b"",
    headers: tuple[str, ...] = (),
) -> bytes:
    """A request from browser ``user`` to ``to``, as Wedge forwards it to the PBX."""
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{branch};rport",
        f"Via: SIP/2.0/WSS {user}.invalid;branch=z9hG4bKjs{branch}",
        "Max-Forwards: 69",
        f"From: <sip:{user}@127.0.0.1>;tag={from_tag}",
        f"To: <sip:{to}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *headers,
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def register(
    user: str,
    *,
    call_id: str | None = None,
    cseq: int = 1,
    expires: int = 600,
    branch: str | None = None,
    headers: tuple[str, ...] = (),
    contact_uri: str | None = None,
) -> bytes:
    return message(
        "REGISTER",
        "sip:127.0.0.1:5090",
        user=user,
        to=user,
        call_id=call_id or f"reg-{user}",
        cseq=cseq,
        branch=branch or re.sub(r"[^A-Za-z0-9]", "", f"reg{user}{call_id}{cseq}"),
        from_tag=f"r{user}",
        headers=(
            f"Contact: <{contact_uri or contact(user)}>;expires={expires}",
            f"Path: {path(user)}",
            "Supported: path, outbound",
            *headers,
        ),
    )


def invite(
    caller: str,
    callee: str,
    *,
    call_id: str = "call-1",
    branch: str = "inv1",
    cseq: int = 1,
    body: bytes = RELAY_OFFER,
    to_tag: str | None = None,
    headers: tuple[str, ...] = (),
) -> bytes:
    return message(
        "INVITE",
        f"sip:{callee}@127.0.0.1:5090",
        user=caller,
        to=callee,
        call_id=call_id,
        cseq=cseq,
        branch=branch,
        from_tag=f"{caller}-tag",
        to_tag=to_tag,
        body=body,
        headers=(
            "Record-Route: <sip:rr-udp@127.0.0.1:5070;lr;r2=on>",
            f"Record-Route: <sip:rr-{caller}@127.0.0.1:8443;transport=ws;lr;r2=on>",
            f"Contact: <{contact(caller)};ob>",
            *headers,
        ),
    )


def reply(
    request: Request,
    status: int,
    reason: str = "OK",
    *,
    tag: str = "bobtag",
    body: bytes = b"",
    headers: tuple[str, ...] = (),
) -> bytes:
    """The browser's response to a request the PBX sent it, as Wedge passes it back."""
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {via}" for via in request.headers.get_all("via")]
    lines.append(f"From: {request.headers.get('from')}")
    to = request.headers.get("to") or ""
    if status > 100 and ";tag=" not in to:
        to += f";tag={tag}"
    lines += [f"To: {to}", f"Call-ID: {request.call_id}", f"CSeq: {request.cseq}"]
    if request.method == "INVITE" and 100 < status < 300:
        lines += [
            "Record-Route: <sip:rr-callee@127.0.0.1:8443;transport=ws;lr;r2=on>",
            "Record-Route: <sip:rr-udp@127.0.0.1:5070;lr;r2=on>",
            f"Contact: <{request.uri};ob>",
        ]
    lines += list(headers)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ack(
    call_id: str, caller: str, callee: str, to_tag: str, cseq: int = 1, branch: str = "ack1"
) -> bytes:
    return message(
        "ACK",
        "sip:pbx@127.0.0.1:5090",
        user=caller,
        to=callee,
        call_id=call_id,
        cseq=cseq,
        branch=branch,
        from_tag=f"{caller}-tag",
        to_tag=to_tag,
        headers=("Route: <sip:rr-udp@127.0.0.1:5070;lr;r2=on>",),
    )


@dataclass
class Net:
    """The PBX, and the clock; every input returns what the PBX sent (to Wedge)."""

    settings: PbxSettings = field(default_factory=PbxSettings)
    now: float = 100.0
    pbx: DemoPbx = field(init=False)

    def __post_init__(self) -> None:
        counter = itertools.count(1)
        self.pbx = DemoPbx(PBX, self.settings, lambda: f"id{next(counter)}")

    def send(self, data: bytes) -> list[Request | Response]:
        self.pbx.receive(data, FLOW, self.now)
        return self.out()

    def tick(self, seconds: float) -> list[Request | Response]:
        self.now += seconds
        self.pbx.handle_timer(self.now)
        return self.out()

    def run(self, seconds: float, step: float = 0.05) -> list[Request | Response]:
        """Let ``seconds`` pass, firing every timer on the way."""
        out: list[Request | Response] = []
        end = self.now + seconds
        while True:
            deadline = self.pbx.get_timer()
            if deadline is None or deadline > end:
                break
            out += self.tick(max(deadline - self.now, 0.0))
        self.now = end
        return out

    def out(self) -> list[Request | Response]:
        messages = []
        for data, flow in self.pbx.datagrams_to_send():
            assert flow.remote == WEDGE and flow.local == PBX, flow
            messages.append(parse_message(data))
        return messages

    def media(self) -> list[MediaRequest]:
        return self.pbx.media_requests()


def responses(messages: list[Request | Response], status: int | None = None) -> list[Response]:
    return [
        m for m in messages if isinstance(m, Response) and (status is None or m.status == status)
    ]


def requests(messages: list[Request | Response], method: str) -> list[Request]:
    return [m for m in messages if isinstance(m, Request) and m.method == method]


def the_response(messages: list[Request | Response], status: int) -> Response:
    """The one response with ``status`` among ``messages``."""
    found = responses(messages, status)
    assert len(found) == 1, messages
    return found[0]


def the_request(messages: list[Request | Response], method: str) -> Request:
    """The one ``method`` request among ``messages``."""
    found = requests(messages, method)
    assert len(found) == 1, messages
    return found[0]
