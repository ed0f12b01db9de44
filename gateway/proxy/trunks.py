"""Trunk targets: which are up, which to try next, when to probe them.

A trunk has one or more targets (from RFC 3263 resolution of its URI, or listed in
the policy), in failover order. :class:`TrunkHealth` keeps one state per target:

- a target goes **down** after ``down_after`` consecutive failures (a call that
  got no answer in time, a transport error, a 503, an OPTIONS probe that failed)
  and comes back **up** after ``up_after`` consecutive successes of its probes;
- a 503 with Retry-After takes a target out of rotation for that long, whatever
  its count (RFC 3261 §21.5.4, RFC 3263 §4.3);
- probes are OPTIONS requests, one per target every ``interval`` seconds, which
  the proxy core sends and reports back; their deadlines are kept here.

Pure: ``now`` is an argument and nothing here sends anything.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.sip.flow import Address

__all__ = ["HealthSettings", "TargetKey", "TrunkHealth"]

logger = logging.getLogger("wedge.trunks")

TargetKey = tuple[str, str, Address]
"""(trunk name, transport, address): one target of one trunk."""

MAX_RETRY_AFTER = 3600.0
"""The longest a Retry-After may keep a target out (a peer's typo must not mean a day)."""
REST_WITHOUT_PROBES = 30.0
"""A failing target of a trunk that is not probed rests this long, then is tried
again: without probes, nothing else would ever bring it back."""


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How one trunk's targets are watched."""

    interval: float = 0.0
    """Seconds between OPTIONS probes of each target; 0 probes nothing."""
    timeout: float = 2.0
    """A probe with no answer in this many seconds failed."""
    down_after: int = 3
    """Consecutive failures that take a target down."""
    up_after: int = 2
    """Consecutive probe successes that bring a down target back."""


@dataclass(slots=True)
class _State:
    up: bool = True
    failures: int = 0
    successes: int = 0
    resting_until: float = 0.0
    """Retry-After: not to be tried before this time."""
    probe_token: int = 0
    last_reason: str = ""


@dataclass(slots=True)
class TrunkHealth:
    """The health of every trunk target Wedge knows of."""

    settings: dict[str, HealthSettings] = field(default_factory=dict)
    """Per trunk name; a trunk without an entry gets the defaults (no probing)."""
    _states: dict[TargetKey, _State] = field(default_factory=dict)
    _probes: list[tuple[float, int, TargetKey]] = field(default_factory=list)
    _tokens: int = 0

    def _settings(self, trunk: str) -> HealthSettings:
        return self.settings.get(trunk) or HealthSettings()

    def _state(self, key: TargetKey, now: float) -> _State:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
            if self._settings(key[0]).interval > 0:
                self._schedule(key, state, now)
        return state

    # -- choosing ------------------------------------------------------------

    def usable(self, keys: Sequence[TargetKey], now: float) -> list[TargetKey]:
        """The targets of ``keys`` worth trying now, in their order."""
        return [
            key
            for key in keys
            if (state := self._state(key, now)).up and state.resting_until <= now
        ]

    def is_up(self, key: TargetKey) -> bool:
        state = self._states.get(key)
        return state is None or state.up

    # -- what happened -------------------------------------------------------

    def failed(
        self, key: TargetKey, now: float, reason: str, retry_after: float | None = None
    ) -> None:
        """A request to ``key`` failed (no answer in time, transport error, 503)."""
        state = self._state(key, now)
        state.successes = 0
        state.failures += 1
        state.last_reason = reason
        if retry_after is not None:
            state.resting_until = now + min(retry_after, MAX_RETRY_AFTER)
            logger.warning(
                "trunk target resting trunk=%s target=%s:%s:%d seconds=%.0f reason=%r",
                key[0],
                key[1],
                *key[2],
                min(retry_after, MAX_RETRY_AFTER),
                reason,
            )
        settings = self._settings(key[0])
        if state.up and state.failures >= settings.down_after:
            if settings.interval <= 0:
                state.failures = 0
                state.resting_until = max(state.resting_until, now + REST_WITHOUT_PROBES)
                logger.warning(
                    "trunk target resting trunk=%s target=%s:%s:%d seconds=%.0f reason=%r",
                    key[0],
                    key[1],
                    *key[2],
                    REST_WITHOUT_PROBES,
                    reason,
                )
                return
            state.up = False
            logger.warning(
                "trunk target down trunk=%s target=%s:%s:%d failures=%d reason=%r",
                key[0],
                key[1],
                *key[2],
                state.failures,
                reason,
            )

    def succeeded(self, key: TargetKey, now: float, *, probe: bool = False) -> None:
        """``key`` answered. A down target comes back only through its probes."""
        state = self._state(key, now)
        state.failures = 0
        if state.up:
            return
        if not probe:
            # A call that got through: the target is clearly alive.
            state.successes = self._settings(key[0]).up_after
        else:
            state.successes += 1
        if state.successes >= self._settings(key[0]).up_after:
            state.up = True
            state.successes = 0
            logger.warning("trunk target up trunk=%s target=%s:%s:%d", key[0], key[1], *key[2])

    # -- probing -------------------------------------------------------------

    def watch(self, keys: list[TargetKey], now: float) -> None:
        """Start watching targets (probing them, where their trunk says so)."""
        for key in keys:
            self._state(key, now)

    def due(self, now: float) -> list[TargetKey]:
        """The targets to probe now; each is scheduled again ``interval`` later."""
        due: list[TargetKey] = []
        while self._probes and self._probes[0][0] <= now:
            _, token, key = heapq.heappop(self._probes)
            state = self._states.get(key)
            if state is None or state.probe_token != token:
                continue
            due.append(key)
            self._schedule(key, state, now)
        return due

    def get_timer(self) -> float | None:
        while self._probes:
            _, token, key = self._probes[0]
            state = self._states.get(key)
            if state is not None and state.probe_token == token:
                return self._probes[0][0]
            heapq.heappop(self._probes)
        return None

    def probe_timeout(self, trunk: str) -> float:
        return self._settings(trunk).timeout

    def _schedule(self, key: TargetKey, state: _State, now: float) -> None:
        self._tokens += 1
        state.probe_token = self._tokens
        heapq.heappush(self._probes, (now + self._settings(key[0]).interval, self._tokens, key))
