"""SIP messages for tests: RFC 5737 addresses, fixed ids, CRLF line ends."""

from __future__ import annotations

from gateway.sip import Request

SDP = (
    b"v=0\r\n"
    b"o=- 4858251974351650128 2 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 9 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=rtcp:49171 IN IP4 192.0.2.10\r\n"
    b"a=ssrc:1234567890 cname:alice@atlanta.example.com\r\n"
    b"a=sendrecv\r\n"
)


def invite(
    *,
    branch: str = "z9hG4bK74bf9",
    call_id: str = "3848276298220188511@192.0.2.10",
    cseq: int = 1,
    body: bytes = SDP,
    extra: str = "",
) -> bytes:
    """A typical INVITE with SDP, about 1 KB, as a SIP phone sends it."""
    head = (
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        "Contact: <sip:alice@192.0.2.10:5060;transport=udp>"
        ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"\r\n'
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY, MESSAGE\r\n"
        "Supported: replaces, timer, outbound, path\r\n"
        "User-Agent: Wedge test phone 1.0\r\n"
        "Session-Expires: 1800\r\n"
        "Content-Type: application/sdp\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def response(
    status: int = 200,
    reason: str = "OK",
    *,
    branch: str = "z9hG4bK74bf9",
    to_tag: str = "8321234356",
    cseq: str = "1 INVITE",
) -> bytes:
    return (
        f"SIP/2.0 {status} {reason}\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport=5060;received=192.0.2.10\r\n"
        'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
        f"To: Bob <sip:bob@biloxi.example.com>;tag={to_tag}\r\n"
        "Call-ID: 3848276298220188511@192.0.2.10\r\n"
        f"CSeq: {cseq}\r\n"
        "Contact: <sip:bob@192.0.2.20:5060>\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def answer(
    request: Request,
    status: int,
    reason: str,
    *,
    to_tag: str = "pbx1",
    contact: str = "sip:600@192.0.2.20:5060",
    body: str = "",
) -> bytes:
    """A UAS's response to ``request`` (RFC 3261 §8.2.6, §12.1.1): Via lines, From,
    Call-ID and CSeq copied, To with ``to_tag`` unless it has one, the
    Record-Route echoed, a Contact, and an SDP ``body`` if given."""
    headers = request.headers
    to = headers.get("to") or ""
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {value}" for value in headers.get_all("via")]
    lines += [f"Record-Route: {value}" for value in headers.get_all("record-route")]
    lines += [
        f"From: {headers.get('from')}",
        f"To: {to}" if request.to.tag else f"To: {to};tag={to_tag}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {headers.get('cseq')}",
        f"Contact: <{contact}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
