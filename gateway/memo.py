"""Bounded memories: what the per-message path computes once and looks up after."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(known: dict[K, V], key: K, value: V, limit: int) -> V:
    """Store ``value`` under ``key``, dropping the oldest entry once ``limit`` are
    kept (dicts keep their order), so values that never repeat cost one insertion
    each and the memory stays bounded. Returns ``value``."""
    if len(known) >= limit:
        del known[next(iter(known))]
    known[key] = value
    return value
