"""The relay's fast path in C (``media/_forward.c``), where Wedge was built with it.

Once a stream is established, every packet of it gets the same treatment from
:meth:`media.relay.RelayPort.receive`; :meth:`~media.relay.RelayPort.sync` writes
that treatment into the port's :class:`Forwarder`, which then reads the socket and
forwards those packets without creating a Python object, handing everything else to
``receive``. ``bench/relay.py`` measures what that buys.

Without the extension (installed with no C compiler, or with ``WEDGE_PURE=1``, or
not on Linux) :data:`NATIVE` is False: the shell hands each datagram to ``receive``,
and streams count into the pure Python :class:`media.rtp.ReceiveStats`.
"""

from __future__ import annotations

from media import rtp, srtp

__all__ = ["NATIVE", "Forwarder", "new_stats"]

try:
    from media._forward import Forwarder, ReceiveStats, use_libsrtp
except ImportError:
    NATIVE = False
else:
    NATIVE = True
    _functions = srtp.libsrtp_functions()
    if _functions is not None:
        use_libsrtp(*_functions)


def new_stats() -> rtp.RtpStats:
    """A stream's receive statistics: in C when the fast path counts into them."""
    return ReceiveStats() if NATIVE else rtp.ReceiveStats()
