"""What the demo PBX's core asks of the shell's media players, one request per step.

The core is pure, so it opens no RTP socket: for a call to a service extension
(:mod:`gateway.demo.services`) it says what the shell (:mod:`gateway.demo.shell`)
must do with that call's player, and the shell hands back where the player listens
(:meth:`~gateway.demo.pbx.DemoPbx.media_opened`) or that it could not
(:meth:`~gateway.demo.pbx.DemoPbx.media_failed`). The requests are a module of their
own because both sides use them, and several parts of the core make them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.demo.offer import ServiceOffer

__all__ = ["CloseMedia", "KeyPressed", "MediaRequest", "OpenMedia", "UpdateMedia"]


@dataclass(frozen=True, slots=True)
class OpenMedia:
    """Start the player of ``extension``; answer with
    :meth:`~gateway.demo.pbx.DemoPbx.media_opened`."""

    call_id: str
    extension: str
    offer: ServiceOffer


@dataclass(frozen=True, slots=True)
class UpdateMedia:
    """A re-INVITE changed the far end's address or direction (hold, resume)."""

    call_id: str
    offer: ServiceOffer


@dataclass(frozen=True, slots=True)
class CloseMedia:
    call_id: str


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """A key sent in SIP INFO (``application/dtmf-relay``) rather than in RTP."""

    call_id: str
    key: str


MediaRequest = OpenMedia | UpdateMedia | CloseMedia | KeyPressed
