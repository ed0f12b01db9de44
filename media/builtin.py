"""The built-in relay as a :class:`~media.control.MediaControl`: sessions by Call-ID.

Nothing here waits: the methods are coroutines only to fit the protocol that
rtpengine, a network service, also implements. Ports come from the shell's pool
(:mod:`media.endpoint`), time from its clock and its periodic
:meth:`BuiltinRelay.tick`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from media.control import CallStats, MediaError, Negotiation, TimeoutHandler
from media.relay import RelayPort
from media.session import MediaSession, PortAllocator, SessionSettings

__all__ = ["BuiltinRelay", "RelaySettings"]

logger = logging.getLogger("wedge.media")


class RelaySettings:
    """Timeouts of the built-in relay."""

    def __init__(self, timeout: float = 60.0, hold_timeout: float = 3600.0) -> None:
        self.timeout = timeout
        """Seconds without any media from any party that end a call (0: never)."""
        self.hold_timeout = hold_timeout
        """The same while every party has put the call on hold (0: never)."""


class BuiltinRelay:
    """Media sessions of the built-in relay.

    Args:
        session: what every session shares (address, DTLS certificate, randomness).
        allocate: the shell's port allocator.
        release: gives a closed port back to the shell.
        clock: the shell's clock, read when a session starts.
    """

    def __init__(
        self,
        session: SessionSettings,
        allocate: PortAllocator,
        release: Callable[[RelayPort], None],
        clock: Callable[[], float],
        settings: RelaySettings | None = None,
    ) -> None:
        self.session_settings = session
        self.settings = settings or RelaySettings()
        self._allocate = allocate
        self._release = release
        self._clock = clock
        self.sessions: dict[str, MediaSession] = {}
        self._timeout_handler: TimeoutHandler | None = None

    # -- MediaControl ------------------------------------------------------------------

    async def offer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        session = self.sessions.get(negotiation.call_id)
        new = session is None
        if session is None:
            session = MediaSession(negotiation.call_id, self.session_settings, self._allocate)
            session.started = self._clock()
            self.sessions[negotiation.call_id] = session
        try:
            return session.offer(negotiation, sdp)
        except MediaError:
            if new:
                self._end(negotiation.call_id)
            raise

    async def answer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        session = self.sessions.get(negotiation.call_id)
        if session is None:
            raise MediaError("answer for a call without media", 500)
        return session.answer(negotiation, sdp)

    async def delete(self, call_id: str) -> CallStats | None:
        return self._end(call_id)

    async def stats(self, call_id: str) -> CallStats | None:
        session = self.sessions.get(call_id)
        return None if session is None else session.stats()

    def on_timeout(self, handler: TimeoutHandler) -> None:
        self._timeout_handler = handler

    async def close(self) -> None:
        for call_id in list(self.sessions):
            self._end(call_id)

    # -- the shell's periodic call -------------------------------------------------------

    def tick(self, now: float) -> None:
        """DTLS retransmissions, and the end of calls whose media stopped."""
        timeout, hold_timeout = self.settings.timeout, self.settings.hold_timeout
        # Whether a call is on hold matters only once it has been silent for the shorter
        # limit, so the calls that carry media (nearly all) skip that question.
        shortest = min((limit for limit in (timeout, hold_timeout) if limit), default=math.inf)
        expired: list[tuple[str, float]] = []
        for call_id, session in self.sessions.items():
            last = session.started
            for port in session.ports():
                port.handle_timer(now)
                if port.last_received > last:
                    last = port.last_received
            silent = now - last
            if silent > shortest:
                limit = hold_timeout if session.held() else timeout
                if limit and silent > limit:
                    expired.append((call_id, silent))
        for call_id, silent in expired:
            logger.warning(
                "! media timeout call-id=%s: no media for %.0f s; ending the call",
                call_id,
                silent,
            )
            stats = self._end(call_id)
            if stats is not None and self._timeout_handler is not None:
                self._timeout_handler(call_id)

    def _end(self, call_id: str) -> CallStats | None:
        session = self.sessions.pop(call_id, None)
        if session is None:
            return None
        stats = session.stats()
        for port in session.release():
            self._release(port)
        return stats
