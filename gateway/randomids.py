"""Random hex ids for Via branches and tags, from the OS's CSPRNG in batches.

A proxied call takes several ids (branches, a To tag), and ``secrets.token_hex``
makes a ``getrandom`` system call for each: about one percent of a SIP worker's
time under load. :class:`RandomIds` draws a few KiB at a time instead, so the ids
stay as unguessable (a guessed tag helps forge a BYE) for a system call every few
hundred ids. A forked child starts with an empty batch, so that SIP workers never
hand out the same ids.
"""

from __future__ import annotations

import os
import weakref

__all__ = ["RandomIds"]

BATCH = 512
"""Ids drawn per system call."""


class RandomIds:
    """A callable that returns ``size`` random bytes as hex on each call."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pool = b""
        self._offset = 0
        _LIVE.add(self)

    def __call__(self) -> str:
        start = self._offset
        end = start + self._size
        if end > len(self._pool):
            self._pool = os.urandom(self._size * BATCH)
            start, end = 0, self._size
        self._offset = end
        return self._pool[start:end].hex()

    def forget(self) -> None:
        """Drop the batch drawn so far (a forked child must not reuse its parent's)."""
        self._pool = b""
        self._offset = 0


_LIVE: weakref.WeakSet[RandomIds] = weakref.WeakSet()


def _after_fork() -> None:
    for ids in _LIVE:
        ids.forget()


os.register_at_fork(after_in_child=_after_fork)
