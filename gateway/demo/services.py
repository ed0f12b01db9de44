"""The demo PBX's service extensions: 600 echo, 601 chime and tone, 602 DTMF readback.

The PBX answers these calls itself, as a plain RTP phone would: the SDP is read and
written by :mod:`gateway.demo.offer`, and the media is played by the shell, one
:mod:`~gateway.demo.players` player per call, asked for in
:mod:`~gateway.demo.media_requests`. So a service call is answered in two steps:
:meth:`Services.start` asks for a player
(:class:`~gateway.demo.media_requests.OpenMedia`), and
:meth:`Services.opened` answers the INVITE once the shell says where the player
listens. In the call, a re-INVITE (hold, resume) updates the player, a key sent in
an INFO goes to it, and the keys 602 reads back go to the browser in an INFO
(``text/plain``) too.
"""

from __future__ import annotations

import itertools
import logging

from gateway.demo.calls import Call, Calls, Leg
from gateway.demo.media_requests import KeyPressed, OpenMedia, UpdateMedia
from gateway.demo.offer import answer, read_offer
from gateway.demo.wire import Wire
from gateway.sip import Flow, Request
from gateway.sip.flow import Address
from sdp import SdpError

__all__ = ["Services"]

logger = logging.getLogger("wedge.demo")


class Services:
    """See the module docstring.

    Args:
        wire: the PBX's way out.
        calls: the calls under way; a service call's one leg is answered and ended
            there.
    """

    def __init__(self, wire: Wire, calls: Calls) -> None:
        self._wire = wire
        self._calls = calls
        self._sessions = itertools.count(1)

    def start(self, call: Call, extension: str) -> None:
        """A new call to ``extension``: ask the shell for its player."""
        leg = call.caller
        assert leg is not None
        try:
            offer = read_offer(leg.invite.body)
        except SdpError as exc:
            self._calls.end(call, 488, f"the offer has no usable audio: {exc}")
            return
        logger.info("call from=%s to=%s (service)", leg.user, extension)
        call.extension, call.offer = extension, offer
        self._calls.busy(call, leg.user, True)
        self._wire.media(OpenMedia(leg.call_id, extension, offer))

    def opened(self, leg: Leg, address: Address) -> None:
        """The player of ``leg``'s call listens on ``address``: answer the INVITE."""
        call = leg.call
        call.media = address
        self._calls.answer(leg, 200, body=self._answer(call), content_type="application/sdp")

    def read_back(self, leg: Leg, digits: str) -> None:
        """602 played ``digits`` back: tell the browser too, in an INFO."""
        if leg.up and leg.dialog is not None:
            wire = self._wire
            wire.send(
                leg.dialog.request(
                    "INFO", wire.via(), body=digits.encode(), content_type="text/plain"
                ),
                leg.dialog.flow,
            )

    def request(self, leg: Leg, request: Request, flow: Flow) -> None:
        """A request in a service call's dialog (BYE and OPTIONS aside)."""
        call = leg.call
        reply = self._wire.reply
        if request.method == "INVITE":
            if leg.ok is not None:
                reply(request, 500, extra=(("Retry-After", "1"),))
                return
            try:
                offer = read_offer(request.body) if request.body else call.offer
            except SdpError as exc:
                reply(request, 488, warning=f"no usable audio: {exc}")
                return
            assert offer is not None
            call.offer = offer
            self._wire.media(UpdateMedia(leg.call_id, offer))
            self._calls.answer(
                leg,
                200,
                body=self._answer(call),
                content_type="application/sdp",
                request=(request, flow),
            )
        elif request.method == "INFO":
            reply(request, 200)
            content = request.content_type
            if content is not None and content.mime == "application/dtmf-relay":
                for line in request.body.decode("utf-8", "replace").splitlines():
                    name, _, value = line.partition("=")
                    if name.strip().lower() == "signal" and value.strip():
                        self._wire.media(KeyPressed(leg.call_id, value.strip()[:1].upper()))
        else:
            reply(request, 200 if request.method == "UPDATE" and not request.body else 501)

    def _answer(self, call: Call) -> bytes:
        """The SDP answer to the call's offer, a new ``o=`` version each time."""
        assert call.offer is not None and call.media is not None
        if not call.sdp_session:
            call.sdp_session = next(self._sessions)
        call.sdp_version += 1
        return answer(call.offer, call.media[0], call.media[1], call.sdp_session, call.sdp_version)
