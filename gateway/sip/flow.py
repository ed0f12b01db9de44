"""The Flow: which socket a message came in on or goes out on.

Pure code never sees sockets; it names them with Flows, and only the transport
shells turn a Flow back into a socket (ARCHITECTURE.md §4).
"""

from __future__ import annotations

from typing import Final

__all__ = ["RELIABLE_TRANSPORTS", "TRANSPORTS", "Address", "Flow"]

Address = tuple[str, int]

TRANSPORTS = frozenset({"udp", "tcp", "tls", "ws", "wss"})
RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})


class Flow:
    """One path between a local socket and a remote address. Immutable, hashable.

    Attributes:
        transport: ``udp``, ``tcp``, ``tls``, ``ws`` or ``wss``.
        local: the address of our socket (the listener's bound address).
        remote: the peer's address as the socket sees it (after any NAT).
        connection: the connection's id for stream and WebSocket transports, so a
            new connection from the same address is a different flow; 0 for UDP.
    """

    # Written out rather than a frozen dataclass: every message makes, hashes and
    # compares flows, and methods that ``dataclasses`` generates stay interpreted
    # Python in the compiled build (setup.py), several times the cost of these.
    __slots__ = ("connection", "local", "remote", "transport")

    def __init__(
        self, transport: str, local: Address, remote: Address, connection: int = 0
    ) -> None:
        self.transport: Final = transport
        self.local: Final = local
        self.remote: Final = remote
        self.connection: Final = connection

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return (
            self.remote == other.remote
            and self.connection == other.connection
            and self.transport == other.transport
            and self.local == other.local
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.local, self.remote, self.connection))

    def __repr__(self) -> str:
        return (
            f"Flow(transport={self.transport!r}, local={self.local!r}, "
            f"remote={self.remote!r}, connection={self.connection!r})"
        )

    @property
    def reliable(self) -> bool:
        """True where the transport retransmits for us (RFC 3261 §17: no Timer A/E/G)."""
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        conn = f"#{self.connection}" if self.connection else ""
        return f"{self.transport}:{self.remote[0]}:{self.remote[1]}{conn}"
