"""SIP messages, URIs and stream framing (RFC 3261 §7, §19, §20, §25). Pure: no I/O."""

from gateway.sip.errors import LocalProtocolError, ParseError, SipError
from gateway.sip.flow import Flow
from gateway.sip.framing import (
    FramingFailed,
    MessageFramed,
    PingReceived,
    PongReceived,
    StreamFramer,
)
from gateway.sip.headers import CSeq, Headers, MediaType, NameAddr, Via
from gateway.sip.message import (
    Message,
    Request,
    Response,
    make_cancel,
    make_response,
    parse_message,
    trying_bytes,
)
from gateway.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri

__all__ = [
    "AbsoluteUri",
    "CSeq",
    "Flow",
    "FramingFailed",
    "Headers",
    "LocalProtocolError",
    "MediaType",
    "Message",
    "MessageFramed",
    "NameAddr",
    "ParseError",
    "PingReceived",
    "PongReceived",
    "Request",
    "Response",
    "SipError",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "Via",
    "make_cancel",
    "make_response",
    "parse_message",
    "parse_uri",
    "trying_bytes",
]
