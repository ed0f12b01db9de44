"""What the transport shells and the engine promise each other.

A shell owns sockets. It hands every whole SIP message it receives to a
:class:`Receiver` together with the :class:`~gateway.sip.Flow` it came on, and
sends bytes on a Flow when asked. Pure code only ever sees Flows.
"""

from __future__ import annotations

from typing import Protocol

from gateway.sip import Flow
from gateway.sip.flow import Address

__all__ = ["Receiver", "Transport"]


class Receiver(Protocol):
    """The engine, as the shells see it. None of these may raise."""

    def message_received(self, data: bytes, flow: Flow) -> None:
        """One whole SIP message: a datagram, a WebSocket frame or a framed stream message."""

    def flow_failed(self, flow: Flow, reason: str) -> None:
        """A flow is gone or could not be set up (connection refused, reset, timed
        out, TLS handshake failed, closed by the peer or for idling). Requests
        waiting on it fail; a request toward a client on it gets 430 from now on.

        A dial that fails fails the connection-0 flow it was asked for; a
        connection Wedge opened that dies fails both its own flow and that
        connection-0 flow. :meth:`Transport.close` reports nothing."""


class Transport(Protocol):
    """One listener's shell: a bound socket, and the connections it accepted or opened."""

    name: str
    """The listener's name from the configuration."""
    transport: str
    """``udp``, ``tcp``, ``tls``, ``ws`` or ``wss``."""
    local: Address
    """The address the listener is bound to (the real port when 0 was asked for)."""

    def send(self, data: bytes, flow: Flow) -> None:
        """Send one message on ``flow``; never blocks, never raises.

        On a connection-oriented transport, ``flow.connection == 0`` asks for a
        connection to ``flow.remote``: an open one is reused, else one is opened
        and the message waits for it. ``flow.local`` is the listener's address,
        also for connections Wedge opens (their real source port is ephemeral).
        Failure is reported through :meth:`Receiver.flow_failed`.
        """

    async def close(self) -> None:
        """Stop listening and close every connection."""
