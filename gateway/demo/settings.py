"""The demo PBX's settings: who may use it, and how long it waits for what.

A module of their own because the command (:mod:`gateway.demo.run`) writes them and
every part of the PBX's core reads them (:mod:`gateway.demo.pbx` and the parts it
delegates to), without any of those importing one another for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.transaction import TimerConfig

__all__ = ["PbxSettings"]


@dataclass(frozen=True, slots=True)
class PbxSettings:
    users: Mapping[str, str] | None = None
    """name -> password: only these may register and call, with Digest auth.
    None: any name, no password."""
    realm: str = "wedge-demo"
    ring_timeout: float = 45.0
    """Seconds a callee's browser may ring before the caller gets 480 No Answer."""
    keepalive: float = 5.0
    """Seconds between the in-dialog OPTIONS that check each answered leg."""
    probe_timeout: float = 2.0
    """Seconds a registered browser has to answer the OPTIONS that checks on it."""
    timers: TimerConfig = field(default_factory=TimerConfig)
