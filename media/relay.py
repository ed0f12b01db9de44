"""The relay's forwarding core: one :class:`RelayPort` per UDP port, pure.

Theory of operation. A call's media crosses two legs; on each leg the relay holds
one UDP port per stream, or one port for all streams when they are bundled
(RFC 9143), and a second port for RTCP on a leg that does not multiplex it
(RFC 3605). A :class:`StreamEnd` is one ``m=`` line of one leg; its ``peer`` is the
same line on the other leg. A datagram that arrives on a port is sorted by its first
byte (RFC 7983):

- STUN goes to the port's ICE-lite agent, which answers it;
- DTLS goes to the port's DTLS endpoint, which may answer, and which yields the
  SRTP keys once the handshake is done (RFC 5764);
- RTP and RTCP are checked (source, SRTP authentication), counted, and sent on by the
  peer stream's port, protected for that leg if it is SRTP.

Where media goes on a leg: with ICE, the address the browser nominated; without,
the address from the SDP until the first packet from the peer, then wherever that
packet came from (symmetric latching, which gets media through NATs). Once latched,
packets from other addresses are dropped. On an SRTP leg a packet must
authenticate before it can move the latch, so a forged packet cannot steal a call.

The shell gives each port a ``send`` function (the socket's ``sendto``) and a clock,
and makes :meth:`RelayPort.receive` the socket's datagram handler. This is the hot
path: for most packets that one call does all the work but the statistics and SRTP,
it allocates only the packets SRTP makes, and it logs nothing but a bug of its own.

Where Wedge was built with its C fast path (:mod:`media.fastpath`), the shell reads
the socket with the port's :attr:`RelayPort.fast` instead, and :meth:`RelayPort.sync`
keeps it told what ``receive`` would do with an established stream's packets: from
which source it takes them, which SRTP session unprotects them, which ports they
leave by, protected how and sent where. Those packets it forwards itself; all else
comes to ``receive``. So every change to what decides that calls ``sync``: here
(latching, ICE checks, DTLS, consent) and in :mod:`media.session` (offer and answer).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from media.dtls import DtlsCertificate, DtlsRole, DtlsSrtpEndpoint, DtlsState
from media.fastpath import new_stats
from media.ice import IceLite
from media.rtp import (
    MIN_RTCP,
    MIN_RTP,
    RtpStats,
    is_dtls,
    is_rtp_or_rtcp,
    is_stun,
    rtcp_sender_ssrc,
    ssrc,
)
from media.srtp import SrtpContext, SrtpError
from sdp.attributes import Fingerprint

if TYPE_CHECKING:  # only built with a C compiler: see media.fastpath
    from media._forward import Forwarder

__all__ = ["Address", "RelayPort", "Send", "StreamEnd"]

logger = logging.getLogger("wedge.media")

Address = tuple[str, int]
Send = Callable[[bytes, Address], object]
"""Sends a datagram from the port; may raise ``OSError`` (the datagram is then lost)."""
Clock = Callable[[], float]
"""Seconds, monotonic: the shell's clock, read for every packet."""

_CLIENT_HELLO = 1
_DTLS_HEADER = 13
"""A DTLS record header (RFC 6347 §4.1); the handshake type follows it."""


class StreamEnd:
    """One stream (``m=`` line) on one leg: its ports, its peer, its counters."""

    __slots__ = ("index", "payload_types", "peer", "rtcp", "rtp", "sending", "stats")

    def __init__(self, index: int, rtp: RelayPort, rtcp: RelayPort) -> None:
        self.index = index
        self.rtp = rtp
        self.rtcp = rtcp
        """The same port as ``rtp`` when RTCP is multiplexed (RFC 5761)."""
        self.peer: StreamEnd | None = None
        self.payload_types: frozenset[int] = frozenset()
        """The payload types of this ``m=`` line, to tell bundled streams apart."""
        self.sending = True
        """The party sends on this stream (its direction allows it): for the timeout."""
        self.stats: RtpStats = new_stats()


class RelayPort:
    """One UDP port of the relay: what arrives on it, and what leaves from it.

    Args:
        number: the port, as written in SDP.
        send: sends a datagram from this port (the shell's socket).
        clock: the time media arrives at, for the jitter and the media timeout.
    """

    __slots__ = (
        "_by_payload_type",
        "_by_ssrc",
        "_certificate",
        "_dtls_role",
        "_last_received",
        "clock",
        "consent",
        "dropped",
        "dtls",
        "fast",
        "fingerprints",
        "ice",
        "latched",
        "number",
        "remote",
        "secure",
        "send",
        "srtp",
        "streams",
    )

    def __init__(self, number: int, send: Send, clock: Clock) -> None:
        self.number = number
        self.send = send
        self.clock = clock
        self.streams: list[StreamEnd] = []
        """The streams whose RTP (or, on an RTCP port, RTCP) arrives here."""
        self.remote: Address | None = None
        """Where media to the party goes when there is no ICE."""
        self.latched = False
        self.ice: IceLite | None = None
        self.dtls: DtlsSrtpEndpoint | None = None
        self.srtp: SrtpContext | None = None
        """Set for SRTP legs: by SDES at negotiation, by DTLS once connected."""
        self.secure = False
        """The leg is SRTP: nothing passes in or out before the keys are known."""
        self.fingerprints: tuple[Fingerprint, ...] = ()
        self.consent = True
        """RFC 7675: the party still sends consent checks (ICE legs only)."""
        self._last_received = 0.0
        self.dropped: Counter[str] = Counter()
        """Why packets were dropped here, counted (the fast path counts its own)."""
        self.fast: Forwarder | None = None
        """The C fast path reading this port's socket, where the shell has one."""
        self._by_payload_type: dict[int, StreamEnd] = {}
        self._by_ssrc: dict[int, StreamEnd] = {}
        self._certificate: DtlsCertificate | None = None
        self._dtls_role = DtlsRole.SERVER

    # -- configuration (at offer and answer) -------------------------------------------

    def serve(self, streams: list[StreamEnd]) -> None:
        """Carry ``streams`` on this port (several when bundled)."""
        self.streams = streams
        self._by_payload_type = {pt: s for s in streams for pt in s.payload_types}
        self._by_ssrc = {}

    def use_dtls(
        self, certificate: DtlsCertificate, role: DtlsRole, fingerprints: tuple[Fingerprint, ...]
    ) -> None:
        """Key SRTP by DTLS as ``role``, the peer proving one of ``fingerprints``.

        A new fingerprint or role starts a new association (RFC 5763 §5: a changed
        fingerprint is a new session); the same ones keep the running association,
        so a re-offer for hold or an ICE restart does not break the keys.
        """
        if self.dtls is not None and fingerprints == self.fingerprints and role == self._dtls_role:
            return
        self._certificate, self._dtls_role, self.fingerprints = certificate, role, fingerprints
        self.srtp = None
        self.dtls = DtlsSrtpEndpoint(certificate, role, fingerprints)
        self._start_dtls()

    def close(self) -> None:
        if self.dtls is not None:
            self.dtls.close()
            self._flush_dtls()

    def destination(self) -> Address | None:
        """Where this port sends to its party now."""
        if self.ice is not None:
            return self.ice.selected if self.consent else None
        return self.remote

    @property
    def last_received(self) -> float:
        """When the last RTP or RTCP packet arrived (0: never)."""
        fast = self.fast
        return self._last_received if fast is None else max(self._last_received, fast.last_received)

    @property
    def drops(self) -> int:
        """Packets dropped on this port, for every reason."""
        fast = self.fast
        return sum(self.dropped.values()) + (0 if fast is None else fast.dropped)

    # -- the fast path -------------------------------------------------------------------

    def sync(self) -> None:
        """Tell the fast path what :meth:`receive` now does with established streams.

        What leaves this port: to :meth:`destination`, protected if the leg is SRTP;
        none by the fast path before there is a destination, or keys on an SRTP leg.
        What arrives: only when the port carries one stream that has a peer, from the
        one source media is accepted from without a question (the latched address;
        with ICE, the selected one), and with the keys on an SRTP leg. Anything else
        is for :meth:`receive`, which also counts why a packet was dropped.
        """
        fast = self.fast
        if fast is None:
            return
        srtp = self.srtp
        ready = srtp is not None or not self.secure
        sessions = (0, 0) if srtp is None else srtp.sessions
        destination = self.destination()
        # A host name, not an address, stops the fast path's sending: receive sends.
        with contextlib.suppress(ValueError):
            if ready and sessions is not None and destination is not None:
                fast.send_to(destination, sessions[0], srtp)
            else:
                fast.send_to(None, 0, None)
        source = self._established_source()
        streams = self.streams
        peer = streams[0].peer if len(streams) == 1 else None
        if (
            source is None
            or peer is None
            or not ready
            or sessions is None
            or peer.rtp.fast is None
            or peer.rtcp.fast is None
        ):
            fast.disarm()
            return
        # A host name is no address the fast path can compare: accept disarms.
        with contextlib.suppress(ValueError):
            fast.accept(source, sessions[1], srtp, peer.rtp.fast, peer.rtcp.fast, streams[0].stats)

    def _established_source(self) -> Address | None:
        ice = self.ice
        if ice is not None:
            selected = ice.selected
            return selected if selected is not None and ice.is_valid(selected) else None
        return self.remote if self.latched else None

    # -- the hot path ---------------------------------------------------------------------
    #
    # Every packet of a call passes through ``receive``, which therefore does the common
    # work itself, from the datagram in to the datagram out: in CPython a call costs as
    # much as several of these checks. The rarer cases (bundled streams, RTCP routing,
    # STUN, DTLS) are a call away.

    def receive(self, data: bytes, source: Address) -> None:
        """One datagram from ``source``: the shell calls this straight from its socket.

        Never raises: for anything in ``data`` it counts a drop; a bug of ours is logged
        and loses the one packet (raised into the event loop, it would close the socket).
        """
        try:
            # RFC 7983 §7: 128-191 is RTP or RTCP; RFC 5761 §4: RTCP packet types are
            # 192-223 (see media.rtp). The size is checked first, so data[1] exists.
            size = len(data)
            if size < MIN_RTCP or not 127 < data[0] < 192:
                self._receive_other(data, source)
                return
            rtcp = 191 < data[1] < 224
            if size < MIN_RTP and not rtcp:
                self.dropped["short"] += 1
                return
            ice = self.ice
            if ice is not None:
                if not ice.is_valid(source):
                    self.dropped["unvalidated source"] += 1
                    return
            elif source != self.remote and self.latched:
                self.dropped["unlatched source"] += 1
                return
            srtp = self.srtp
            if srtp is not None:
                try:
                    data = srtp.unprotect_rtcp(data) if rtcp else srtp.unprotect(data)
                except SrtpError:
                    self.dropped["srtp"] += 1
                    return
            elif self.secure:
                self.dropped["before keys"] += 1
                return
            if ice is None and not self.latched:
                # Symmetric latching (RFC 4961): send where the party sends from.
                self.remote = source
                self.latched = True
                self.sync()
            now = self._last_received = self.clock()
            if rtcp:
                stream = self._rtcp_stream(data)
            else:
                streams = self.streams
                stream = streams[0] if len(streams) == 1 else self._rtp_stream(data)
                if stream is not None:
                    stream.stats.update(data, now)
            if stream is None:
                return
            peer = stream.peer
            if peer is None:
                self.dropped["no peer"] += 1
                return
            # Out through the peer stream's port to its party, protected if that leg is
            # SRTP: the drops count on that port.
            out = peer.rtcp if rtcp else peer.rtp
            destination = out.remote if out.ice is None else out.destination()
            if destination is None:
                out.dropped["no destination"] += 1
                return
            srtp = out.srtp
            if srtp is not None:
                try:
                    data = srtp.protect_rtcp(data) if rtcp else srtp.protect(data)
                except SrtpError:  # too long to protect: a peer's doing, not a bug
                    out.dropped["srtp protect"] += 1
                    return
            elif out.secure:
                out.dropped["before keys"] += 1
                return
            # Not out._send, nor contextlib.suppress: either costs more than the send.
            try:  # noqa: SIM105
                out.send(data, destination)
            except OSError:
                pass  # a full buffer, an ICMP error: lost, as on the network
        except Exception:
            logger.exception("! relay port %d: packet dropped", self.number)

    def _receive_other(self, data: bytes, source: Address) -> None:
        if not data:
            return
        first = data[0]
        if is_rtp_or_rtcp(first):
            self.dropped["short"] += 1
        elif is_stun(first):
            self._stun(data, source, self.clock())
        elif is_dtls(first):
            self._dtls(data, source)
        else:
            self.dropped["unknown"] += 1

    def _rtp_stream(self, data: bytes) -> StreamEnd | None:
        """The stream of an RTP packet on a port that carries several (RFC 9143)."""
        stream = self._by_payload_type.get(data[1] & 0x7F)
        if stream is None:
            self.dropped["unknown payload type"] += 1
            return None
        self._by_ssrc[ssrc(data)] = stream
        return stream

    def _rtcp_stream(self, data: bytes) -> StreamEnd | None:
        """The stream an RTCP packet is about: by its sender's SSRC when bundled."""
        streams = self.streams
        if not streams:
            self.dropped["no stream"] += 1
            return None
        if len(streams) == 1:
            return streams[0]
        return self._by_ssrc.get(rtcp_sender_ssrc(data), streams[0])

    def _send(self, data: bytes, destination: Address) -> None:
        try:  # noqa: SIM105
            self.send(data, destination)
        except OSError:
            pass  # as in receive

    # -- STUN and DTLS -------------------------------------------------------------------

    def _stun(self, data: bytes, source: Address, now: float) -> None:
        if self.ice is None:
            self.dropped["stun without ice"] += 1
            return
        reply = self.ice.handle(data, source, now)
        if reply is not None:
            self._send(reply, source)
            if self.ice.is_valid(source):
                self._start_dtls()
            self.sync()  # a new valid source, maybe a new selected one

    def _dtls(self, data: bytes, source: Address) -> None:
        dtls = self.dtls
        if dtls is None:
            self.dropped["dtls without dtls"] += 1
            return
        if self.ice is not None and not self.ice.is_valid(source):
            self.dropped["unvalidated source"] += 1
            return
        if (
            dtls.state is not DtlsState.CONNECTING
            and len(data) > _DTLS_HEADER
            and data[0] == 22
            and data[_DTLS_HEADER] == _CLIENT_HELLO
            and self._dtls_role is DtlsRole.SERVER
            and self._certificate is not None
        ):
            # The browser began a new handshake (after an ICE restart, say): a new
            # association replaces the old one, whose keys stay until it completes.
            dtls = self.dtls = DtlsSrtpEndpoint(
                self._certificate, DtlsRole.SERVER, self.fingerprints
            )
        if self.ice is None and self.remote != source:
            self.remote = source
        was = dtls.state
        dtls.receive(data)
        self._flush_dtls()
        if dtls.state is not was:
            self._dtls_changed(dtls)
        self.sync()  # a new remote, maybe the keys

    def _dtls_changed(self, dtls: DtlsSrtpEndpoint) -> None:
        if dtls.state is DtlsState.CONNECTED:
            self.srtp = dtls.srtp
            logger.info("DTLS connected port=%d peer=%s", self.number, self.destination())
        elif dtls.state is DtlsState.FAILED:
            logger.warning(
                "! DTLS failed port=%d peer=%s: %s; no media on this leg",
                self.number,
                self.destination(),
                dtls.failure_reason,
            )

    def _start_dtls(self) -> None:
        # A client can start only once it knows where the server is.
        dtls = self.dtls
        if (
            dtls is not None
            and self._dtls_role is DtlsRole.CLIENT
            and dtls.state is DtlsState.CONNECTING
            and not dtls.started
            and self.destination() is not None
        ):
            dtls.start()
            self._flush_dtls()

    def _flush_dtls(self) -> None:
        dtls = self.dtls
        destination = self.destination()
        if dtls is None:
            return
        for datagram in dtls.datagrams_to_send():
            if destination is not None:
                self._send(datagram, destination)

    def handle_timer(self, now: float) -> None:
        """Periodic work: consent freshness, DTLS retransmission."""
        ice = self.ice
        if ice is not None:
            # RFC 7675 §5.1: without consent, stop sending (and start again when the
            # party checks again, which refreshes it).
            consent = not ice.consent_expired(now)
            if consent != self.consent:
                self.consent = consent
                self.sync()
                logger.info(
                    "ICE consent %s port=%d peer=%s",
                    "regained" if consent else "lost: sending stops",
                    self.number,
                    ice.selected,
                )
        dtls = self.dtls
        if dtls is None or dtls.state is not DtlsState.CONNECTING:
            return
        timeout = dtls.get_timeout()
        if timeout is not None and timeout <= 0:
            dtls.handle_timeout()
            self._flush_dtls()
            self._dtls_changed(dtls)  # a retransmission may end in failure
