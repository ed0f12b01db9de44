"""The one way out of the demo PBX's core: SIP sent, timers armed, media asked for.

The core (:mod:`gateway.demo.pbx`) owns one :class:`Wire` and hands it to each of
its parts (:mod:`~gateway.demo.registration`, :mod:`~gateway.demo.calls`,
:mod:`~gateway.demo.services`, :mod:`~gateway.demo.bridge`). Through it they send
requests (with a handler for the responses) and responses, put bytes on the wire
outside any transaction, arm and cancel timers, and ask the shell's players for
media; none of them sees the transaction layer's events, which the core reads and
routes (the responses to a request reach the handler given with it, here). The
wire also carries the time of the input being handled (``now``), which the core
sets: nothing here reads a clock.

With it, the little the parts share about how the PBX writes SIP: what it allows
(:data:`ALLOW`), which answers mean a browser is gone (:data:`GONE`), its Via and
Warning headers.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.demo.dialog import USER_AGENT
from gateway.demo.media_requests import MediaRequest
from gateway.proxy.timers import Timers
from gateway.sip import Flow, Request, Response, make_response
from gateway.sip.flow import Address
from gateway.transaction import TransactionKey, TransactionLayer

__all__ = ["ALLOW", "GONE", "Handler", "Wire", "quoted", "warning_header"]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
GONE = frozenset({408, 430, 481, 503})
"""Final responses that say the browser is not there any more: no answer (408),
its WebSocket closed (430 Flow Failed, RFC 5626), the dialog unknown to it (481),
Wedge cannot reach it (503)."""

# A handler for the responses to one request the PBX sent: every response, then
# None if the transaction ended without a final one (timeout, transport failure).
Handler = Callable[[Response | None], None]


def quoted(text: str) -> str:
    """``text`` for a quoted-string (a Warning's text, a Reason's ``text=``)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def warning_header(text: str) -> tuple[str, str]:
    """The Warning header that tells the browser's user why (RFC 3261 §20.43)."""
    return ("Warning", f'399 wedge-demo "{quoted(text)}"')


class Wire:
    """See the module docstring.

    Args:
        local: the address of the PBX's UDP socket (Via, Contact, where requests
            leave from).
        layer: the transaction layer every request and response goes through.
        ids: unique tokens for tags, branches and Call-IDs.
    """

    def __init__(self, local: Address, layer: TransactionLayer, ids: Callable[[], str]) -> None:
        self.local = local
        self.layer = layer
        self.new_id = ids
        self.now = 0.0
        """The time of the input being handled; set by the core."""
        self._timers = Timers()
        self._out: list[tuple[bytes, Flow]] = []
        self._media: list[MediaRequest] = []
        self._handlers: dict[TransactionKey, Handler] = {}

    # -- for the parts: sending -------------------------------------------------------

    def send(self, request: Request, flow: Flow, handler: Handler | None = None) -> TransactionKey:
        """Send ``request`` in a client transaction; ``handler`` gets its responses."""
        key = self.layer.send_request(request, flow, self.now)
        if handler is not None:
            self._handlers[key] = handler
        return key

    def respond(self, response: Response) -> None:
        """Send ``response`` in the server transaction of its request."""
        self.layer.send_response(response, self.now)

    def reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        warning: str | None = None,
    ) -> None:
        """A response to ``request`` outside any call (a new To tag each time)."""
        pairs = list(extra)
        if warning:
            pairs.append(warning_header(warning))
        pairs.append(("User-Agent", USER_AGENT))
        response = make_response(request, status, reason, to_tag=self.new_id(), extra=tuple(pairs))
        self.respond(response)

    def resend(self, data: bytes, flow: Flow) -> None:
        """Bytes straight to ``flow``, outside any transaction: a 2xx again until its
        ACK comes, the ACK of a 2xx (RFC 3261 §13.3.1.4, §13.2.2.4)."""
        self._out.append((data, flow))

    def media(self, request: MediaRequest) -> None:
        """Ask the shell's media players for ``request``."""
        self._media.append(request)

    def via(self) -> str:
        """A Via for a new request, with a new branch."""
        return f"SIP/2.0/UDP {self.host()};branch=z9hG4bK{self.new_id()};rport"

    def host(self) -> str:
        """The PBX's host and port as they go in a URI."""
        host, port = self.local
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    # -- for the parts: timers -------------------------------------------------------

    def after(self, delay: float, action: Callable[[], None]) -> int:
        """Run ``action`` ``delay`` seconds from now; the token cancels it."""
        return self._timers.add(self.now + delay, action)

    def cancel_timer(self, token: int) -> None:
        self._timers.cancel(token)

    # -- for the core ------------------------------------------------------------------

    def response_received(self, key: TransactionKey, response: Response) -> None:
        # The handler is kept until the transaction ends: a 2xx to an INVITE comes
        # again while the ACK is lost, and must be ACKed again.
        handler = self._handlers.get(key)
        if handler is not None:
            handler(response)

    def transaction_failed(self, key: TransactionKey) -> None:
        """No final response will come (timeout, transport failure)."""
        handler = self._handlers.pop(key, None)
        if handler is not None:
            handler(None)

    def transaction_ended(self, key: TransactionKey) -> None:
        self._handlers.pop(key, None)

    def run_timers(self, now: float) -> None:
        self._timers.run_due(now)

    def deadline(self) -> float | None:
        """The earliest deadline of the parts' timers and the transaction layer's."""
        deadlines = (self.layer.get_timer(), self._timers.get_timer())
        return min((d for d in deadlines if d is not None), default=None)

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        out = self._out + self.layer.datagrams_to_send()
        self._out = []
        return out

    def media_requests(self) -> list[MediaRequest]:
        requests, self._media = self._media, []
        return requests
