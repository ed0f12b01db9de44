"""The Flow: which socket a message came in on or goes out on.

Pure code never sees sockets; it names them with Flows, and only the transport
shells turn a Flow back into a socket (ARCHITECTURE.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RELIABLE_TRANSPORTS", "TRANSPORTS", "Address", "Flow"]

Address = tuple[str, int]

TRANSPORTS = frozenset({"udp", "tcp", "tls", "ws", "wss"})
RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class Flow:
    """One path between a local socket and a remote address.

    Attributes:
        transport: ``udp``, ``tcp``, ``tls``, ``ws`` or ``wss``.
        local: the address of our socket (the listener's bound address).
        remote: the peer's address as the socket sees it (after any NAT).
        connection: the connection's id for stream and WebSocket transports, so a
            new connection from the same address is a different flow; 0 for UDP.
    """

    transport: str
    local: Address
    remote: Address
    connection: int = 0

    @property
    def reliable(self) -> bool:
        """True where the transport retransmits for us (RFC 3261 §17: no Timer A/E/G)."""
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        conn = f"#{self.connection}" if self.connection else ""
        return f"{self.transport}:{self.remote[0]}:{self.remote[1]}{conn}"
