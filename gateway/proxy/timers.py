"""Deadlines with actions, for the proxy's own timers (Timer C, failover, probes).

One heap; cancelling a timer only forgets its token, and a stale entry is
skipped when it surfaces (the transaction layer keeps its timers the same way).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["Timers"]


class Timers:
    """Actions to run at deadlines. Pure: the caller says what time it is."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._actions: dict[int, Callable[[], None]] = {}
        self._tokens = itertools.count(1)

    def add(self, deadline: float, action: Callable[[], None]) -> int:
        """Run ``action`` at ``deadline``; the token returned cancels it."""
        token = next(self._tokens)
        self._actions[token] = action
        heapq.heappush(self._heap, (deadline, token))
        return token

    def cancel(self, token: int) -> None:
        self._actions.pop(token, None)

    def get_timer(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap and heap[0][1] not in self._actions:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> None:
        """Run every action whose deadline has come, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token = heapq.heappop(heap)
            action = self._actions.pop(token, None)
            if action is not None:
                action()

    def __len__(self) -> int:
        return len(self._actions)
