"""SDP for the service extensions: read the offer Wedge's relay sent, write the answer.

The PBX answers as a plain RTP phone would (``RTP/AVP``, no ICE, no crypto): one
G.711 codec, PCMU first, and telephone-event when offered, so DTMF reaches 602 as
RFC 4733 events. Only the first usable audio stream is accepted; any other stream
is answered with port zero (RFC 3264 §6). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.demo.g711 import PCMA, PCMU
from gateway.demo.players import MediaFormat
from sdp import Direction, SdpError, parse
from sdp.offer_answer import codecs_of, effective_direction

__all__ = ["ServiceOffer", "answer", "read_offer"]


@dataclass(frozen=True, slots=True)
class ServiceOffer:
    """What the PBX takes from an offer."""

    address: tuple[str, int]
    """Where to send RTP: the offer's connection address and port."""
    media: MediaFormat
    direction: Direction
    """The direction the offerer wrote (sendonly when it holds the call)."""
    index: int
    """Which ``m=`` line was accepted."""
    streams: tuple[tuple[str, str, str], ...]
    """Each offered ``m=`` line's media type, proto and first format, to answer line
    for line."""


def read_offer(body: bytes) -> ServiceOffer:
    """The stream and codec to use; :class:`SdpError` when nothing fits (488)."""
    sd = parse(body)
    streams = tuple((media.media, media.proto, media.formats[0]) for media in sd.media)
    for index, media in enumerate(sd.media):
        if media.media != "audio" or media.rejected or media.proto.upper() != "RTP/AVP":
            continue
        codecs = codecs_of(media)
        chosen = None
        for law in (PCMU, PCMA):
            chosen = next((pt for pt, codec in codecs.items() if codec.matches(law, 8000)), None)
            if chosen is not None:
                break
        if chosen is None:
            continue
        events = next(
            (pt for pt, codec in codecs.items() if codec.matches("telephone-event", 8000)),
            None,
        )
        connection = media.connection or sd.connection
        if connection is None:
            raise SdpError("no c= line for the audio stream")
        return ServiceOffer(
            (connection.address, media.port),
            MediaFormat(law, chosen, events),
            effective_direction(sd, media),
            index,
            streams,
        )
    raise SdpError("no RTP/AVP audio stream with PCMU or PCMA")


def answer(offer: ServiceOffer, address: str, port: int, session: int, version: int) -> bytes:
    """The answer for ``offer``, our RTP on ``address:port`` (RTCP on the next port).

    ``session`` and ``version`` fill ``o=``: the version goes up by one with each
    new answer in the dialog (RFC 3264 §8).
    """
    media = offer.media
    direction = Direction.of(sends=offer.direction.receives, receives=offer.direction.sends)
    ip = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o=wedge-demo {session} {version} IN {ip} {address}",
        "s=Wedge demo PBX",
        f"c=IN {ip} {address}",
        "t=0 0",
    ]
    for index, (kind, proto, first) in enumerate(offer.streams):
        if index != offer.index:
            # RFC 3264 §6: a rejected stream keeps its line, with port zero.
            lines.append(f"m={kind} 0 {proto} {first}")
            continue
        formats = [str(media.payload_type)]
        if media.events is not None:
            formats.append(str(media.events))
        lines.append(f"m=audio {port} RTP/AVP {' '.join(formats)}")
        lines.append(f"a=rtpmap:{media.payload_type} {media.law}/8000")
        if media.events is not None:
            lines.append(f"a=rtpmap:{media.events} telephone-event/8000")
            lines.append(f"a=fmtp:{media.events} 0-15")
        lines.append("a=ptime:20")
        lines.append(f"a=rtcp:{port + 1}")
        lines.append(f"a={direction.value}")
    return ("\r\n".join(lines) + "\r\n").encode()
