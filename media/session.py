"""One call's media in the built-in relay: the SDP side, pure.

Theory of operation. A :class:`MediaSession` holds one :class:`Leg` per party, named
by its dialog tag. An offer from party X to party Y does four things:

1. X's description teaches X's leg where X receives (``c=``/``m=``, ``a=rtcp``),
   how to check it (ICE credentials, DTLS fingerprint) and how it encrypts (SDES key);
2. each leg gets its ports (:class:`~media.relay.RelayPort`) for the streams, from the
   shell's allocator: one per stream, one for all streams a BUNDLE group shares, one
   more for RTCP where it is not multiplexed;
3. stream *i* of X's leg is paired with stream *i* of Y's leg (RFC 3264 keeps m= lines
   in place, so the index names a stream across every offer and answer);
4. the description is rewritten for Y's leg (:func:`sdp.rewrite.rewrite`), with the
   relay's address, ports, credentials, fingerprint and keys for that leg.

An answer does the same the other way, and completes what the offer left open: the
answerer's DTLS role and SDES key, and which streams it rejected.

Decisions:

- The relay takes the DTLS server role whenever it may (``a=setup:passive`` when it
  answers, ``actpass`` when it offers, so the browser answers ``active``). A browser
  is the full ICE agent: it learns first that the path works and sends its
  ClientHello at once, while the ICE-lite relay learns the browser's address only
  from its checks. Being the client would add a round trip and a race with the
  browser's first ClientHello. If a peer insists on ``passive``, the relay is the
  client.
- An ICE restart from a party (new ufrag/pwd, RFC 8445 §9) gets new relay credentials
  on that party's leg only; the other leg is not disturbed.
- When several answers come from forks (different To tags), the latest one owns the
  answerer's leg: its ports stay, its remote addresses and keys change.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from media.control import CallStats, LegStats, MediaError, Negotiation
from media.dtls import DtlsCertificate, DtlsRole
from media.ice import IceLite
from media.relay import Address, RelayPort, StreamEnd
from media.srtp import SUITES, SrtpContext
from sdp.attributes import (
    CRYPTO,
    FINGERPRINT,
    GROUP,
    ICE_PWD,
    ICE_UFRAG,
    RTCP,
    RTPMAP,
    SETUP,
    Crypto,
    Setup,
)
from sdp.errors import SdpError
from sdp.model import MediaDescription, SessionDescription, parse
from sdp.offer_answer import effective_direction, filter_codecs, follow_origin
from sdp.rewrite import (
    SDES_KEY_LENGTHS,
    DtlsParameters,
    IceParameters,
    MediaEndpoint,
    Profile,
    RelayEndpoints,
    SdesParameters,
    rewrite,
)

__all__ = ["Leg", "MediaSession", "PortAllocator", "SessionSettings"]

logger = logging.getLogger("wedge.media")

PortAllocator = Callable[[bool], tuple[RelayPort, RelayPort | None]]
"""Gives a new RTP port, and with ``True`` a second one for RTCP next to it.

Raises :class:`~media.control.MediaError` (503) when the range is exhausted."""

SDES_SUITE = "AES_CM_128_HMAC_SHA1_80"
"""The suite Wedge offers on SDES legs: the one every SRTP peer has (RFC 4568 §6.2.1)."""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What every session of a relay shares."""

    address: str
    """The relay's address as written in SDP (the advertised one behind 1:1 NAT)."""
    certificate: DtlsCertificate
    token: Callable[[int], bytes]
    """Random bytes: ICE credentials and SDES keys (the OS's randomness in production)."""


class Leg:
    """One party's side of the relay: its profile, its streams and the relay's
    credentials toward it."""

    def __init__(self, tag: str | None, profile: Profile) -> None:
        self.tag = tag
        self.profile = profile
        self.streams: list[StreamEnd | None] = []
        """Per ``m=`` line; None for a stream the relay does not carry."""
        self.ports: list[RelayPort] = []
        self.ice: IceParameters | None = None
        self.keys: dict[int, SdesParameters] = {}
        """The relay's SDES key per stream index on this leg."""
        self.remote_ice: tuple[str, str] | None = None
        self.last_sent: SessionDescription | None = None
        """The description last sent to this party (for ``o=``, RFC 3264 §8)."""
        self.mids: list[str] | None = None
        self.bundled = False
        self.dtls_role = DtlsRole.SERVER

    def stats(self) -> LegStats:
        stats = LegStats(self.tag or "-")
        main = True
        for stream in self.streams:
            if stream is None:
                continue
            received = stream.stats
            stats.packets += received.packets
            stats.bytes += received.bytes
            stats.lost += received.lost
            if main:
                stats.jitter_ms, main = received.jitter_ms, False
        stats.dropped = sum(port.drops for port in self.ports)
        return stats

    def release(self) -> list[RelayPort]:
        ports, self.ports, self.streams = self.ports, [], []
        for port in ports:
            port.close()
        return ports


class MediaSession:
    """The media of one call (one Call-ID) in the built-in relay."""

    def __init__(self, call_id: str, settings: SessionSettings, allocate: PortAllocator) -> None:
        self.call_id = call_id
        self.settings = settings
        self._allocate = allocate
        self.legs: list[Leg] = []
        self.started = 0.0

    # -- offer and answer --------------------------------------------------------------------

    def offer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        """The offer ``sdp`` from ``negotiation.from_tag``, as the other party should see it.

        Raises:
            MediaError: malformed or unusable description (488), no free port (503).
        """
        sd = _parse(sdp)
        try:
            source = self._leg(negotiation.from_tag, negotiation.source)
            target = self._other(source, negotiation.to_tag, negotiation.destination)
            if negotiation.codecs:
                try:
                    filter_codecs(sd, negotiation.codecs)
                except SdpError as exc:
                    raise MediaError(exc.reason, exc.status) from None
            self._learn(source, sd, offer=True)
            self._ports_for(target, sd, bundle=target.profile.bundle)
            self._pair(source, target)
            out = self._describe(target, sd, Setup.ACTPASS, bundle=target.profile.bundle, mids=None)
            return bytes(out)
        finally:
            self._sync()  # what changed, even if the offer failed part way

    def answer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        """The answer ``sdp`` from ``negotiation.from_tag`` to the party that offered.

        Raises:
            MediaError: no offer is outstanding, or the answer is unusable.
        """
        sd = _parse(sdp)
        try:
            offerer = self._find(negotiation.to_tag)
            if offerer is None:
                raise MediaError("answer without an offer", 500)
            source = self._answerer(offerer, negotiation.from_tag, negotiation.source)
            if len(sd.media) != len(source.streams):
                raise MediaError(
                    f"answer has {len(sd.media)} m= lines, offer had {len(source.streams)}"
                )
            for index, media in enumerate(sd.media):
                if media.rejected:
                    # RFC 3264 §6: the answerer declined this stream; so does the offerer's copy.
                    stream = source.streams[index]
                    if stream is not None and stream.peer is not None:
                        stream.peer.peer = None
                    source.streams[index] = None
            self._learn(source, sd, offer=False)
            self._pair(source, offerer)
            setup = Setup.PASSIVE if offerer.dtls_role is DtlsRole.SERVER else Setup.ACTIVE
            out = self._describe(
                offerer,
                sd,
                setup,
                bundle=offerer.bundled and offerer.profile.bundle,
                mids=offerer.mids,
            )
            return bytes(out)
        finally:
            self._sync()

    def _sync(self) -> None:
        # Offers and answers change ports, peers, addresses, ICE and keys: what the
        # fast path forwards (see media.relay).
        for port in self.ports():
            port.sync()

    # -- state for the relay ---------------------------------------------------------------

    def ports(self) -> list[RelayPort]:
        return [port for leg in self.legs for port in leg.ports]

    def held(self) -> bool:
        """No party is sending: hold both ways, so silence is no sign of a dead call."""
        return not any(
            stream is not None and stream.sending for leg in self.legs for stream in leg.streams
        )

    def stats(self) -> CallStats:
        return CallStats(self.call_id, [leg.stats() for leg in self.legs])

    def release(self) -> list[RelayPort]:
        """Close every port; the shell frees them."""
        return [port for leg in self.legs for port in leg.release()]

    # -- legs ----------------------------------------------------------------------------

    def _find(self, tag: str | None) -> Leg | None:
        return next((leg for leg in self.legs if tag is not None and leg.tag == tag), None)

    def _leg(self, tag: str, profile: Profile) -> Leg:
        leg = self._find(tag)
        if leg is None:
            # The party that did not know the other's tag when it offered, answering
            # or re-offering now with its own.
            leg = next((leg for leg in self.legs if leg.tag is None), None)
            if leg is None:
                leg = Leg(tag, profile)
                self.legs.append(leg)
            leg.tag = tag
        return leg

    def _other(self, leg: Leg, tag: str | None, profile: Profile) -> Leg:
        other = self._find(tag) if tag is not None else None
        if other is None:
            other = next((o for o in self.legs if o is not leg), None)
        if other is None:
            other = Leg(tag, profile)
            self.legs.append(other)
        elif tag is not None and other.tag != tag:
            other.tag = tag  # a fork answered first with another tag
        return other

    def _answerer(self, offerer: Leg, tag: str, profile: Profile) -> Leg:
        leg = next((o for o in self.legs if o is not offerer), None)
        if leg is None:
            raise MediaError("answer without an offer", 500)
        leg.tag = tag  # the latest fork to answer owns the leg
        leg.profile = profile
        return leg

    # -- learning a party's description -------------------------------------------------

    def _learn(self, leg: Leg, sd: SessionDescription, *, offer: bool) -> None:
        """What ``sd`` (from ``leg``'s party) says about where and how it receives."""
        profile = leg.profile
        try:
            leg.mids = [media.mid or str(i) for i, media in enumerate(sd.media)]
            bundle = _bundle_group(sd)
            leg.bundled = bool(bundle)
            if offer:
                self._ports_for(leg, sd, bundle=profile.bundle and bool(bundle), party=sd)
            restarted = False
            if profile.ice:
                restarted = self._learn_ice(leg, sd)
            for index, media in enumerate(sd.media):
                stream = leg.streams[index] if index < len(leg.streams) else None
                if stream is None:
                    continue
                self._learn_stream(leg, sd, media, stream)
                if profile.sdes:
                    self._learn_sdes(leg, index, media, stream, offer=offer)
            if profile.dtls:
                self._learn_dtls(leg, sd, offer=offer)
            _serve(leg)  # the payload types that tell bundled streams apart changed
            if restarted:
                logger.info("ICE restart call-id=%s leg=%s", self.call_id, leg.tag)
        except SdpError as exc:
            raise MediaError(exc.reason, exc.status) from None

    def _learn_stream(
        self, leg: Leg, sd: SessionDescription, media: MediaDescription, stream: StreamEnd
    ) -> None:
        stream.payload_types = frozenset(media.payload_types)
        stream.sending = effective_direction(sd, media).sends
        rtpmap = media.get(RTPMAP)
        if rtpmap is not None:
            stream.stats.set_clock_rate(rtpmap.clock_rate)
        if leg.profile.ice:
            return  # media goes where ICE says
        connection = media.connection or sd.connection
        if connection is None:
            raise SdpError(f"m={media.media} has no c= line")
        address: Address = (connection.address, media.port)
        # A hold with c=0.0.0.0 (RFC 2543 style) keeps the old address.
        if connection.address not in ("0.0.0.0", "::") and stream.rtp.remote != address:
            stream.rtp.remote, stream.rtp.latched = address, False
        if stream.rtcp is not stream.rtp:
            rtcp = media.get(RTCP)
            rtcp_port = rtcp.port if rtcp is not None else media.port + 1
            rtcp_host = rtcp.address if rtcp is not None and rtcp.address else address[0]
            if stream.rtcp.remote != (rtcp_host, rtcp_port):
                stream.rtcp.remote, stream.rtcp.latched = (rtcp_host, rtcp_port), False

    def _learn_ice(self, leg: Leg, sd: SessionDescription) -> bool:
        first = next((m for m in sd.media if not m.rejected), None)
        if first is None:
            return False
        ufrag = first.get(ICE_UFRAG) or sd.get(ICE_UFRAG)
        pwd = first.get(ICE_PWD) or sd.get(ICE_PWD)
        if ufrag is None or pwd is None:
            raise SdpError("ICE credentials (a=ice-ufrag, a=ice-pwd) missing")
        restarted = leg.remote_ice is not None and leg.remote_ice != (ufrag, pwd)
        leg.remote_ice = (ufrag, pwd)
        if leg.ice is None or restarted:
            # RFC 8445 §9: an ICE restart changes both sides' credentials.
            leg.ice = self._new_ice()
        for port in leg.ports:
            if port.ice is None:
                port.ice = IceLite(leg.ice.ufrag, leg.ice.pwd)
            elif restarted:
                port.ice.set_local(leg.ice.ufrag, leg.ice.pwd)
            port.ice.set_remote(ufrag, pwd)
        return restarted

    def _learn_dtls(self, leg: Leg, sd: SessionDescription, *, offer: bool) -> None:
        first = next((m for m in sd.media if not m.rejected), None)
        if first is None:
            return
        fingerprints = tuple(first.get_all(FINGERPRINT)) or tuple(sd.get_all(FINGERPRINT))
        if not fingerprints:
            raise SdpError("DTLS fingerprint (a=fingerprint) missing")
        setup = first.get(SETUP) or sd.get(SETUP) or (Setup.ACTPASS if offer else Setup.ACTIVE)
        # Their "passive" makes us the client; anything else leaves us the server.
        leg.dtls_role = DtlsRole.CLIENT if setup is Setup.PASSIVE else DtlsRole.SERVER
        for port in leg.ports:
            port.use_dtls(self.settings.certificate, leg.dtls_role, fingerprints)

    def _learn_sdes(
        self, leg: Leg, index: int, media: MediaDescription, stream: StreamEnd, *, offer: bool
    ) -> None:
        lines = media.get_all(CRYPTO)
        if offer:
            # RFC 4568 §7.1.2: the answerer picks one offered line and answers with its tag.
            # One key and no MKI (RFC 4568 §6.1): the relay keys a context per direction.
            chosen = next((c for c in lines if _usable(c)), None)
            if chosen is None:
                raise SdpError(f"m={media.media}: no usable a=crypto (need one of {SUITES})")
            ours = self._new_key(chosen.suite, chosen.tag)
        else:
            ours = leg.keys.get(index) or self._new_key(SDES_SUITE, 1)
            chosen = next((c for c in lines if c.tag == ours.tag), None)
            if chosen is None or chosen.suite != ours.suite:
                raise SdpError(f"m={media.media}: the answer accepts no offered a=crypto")
        leg.keys[index] = ours
        _key_port(stream.rtp, ours, chosen)
        if stream.rtcp is not stream.rtp:
            _key_port(stream.rtcp, ours, chosen)

    # -- ports and pairing ---------------------------------------------------------------

    def _ports_for(
        self,
        leg: Leg,
        sd: SessionDescription,
        *,
        bundle: bool,
        party: SessionDescription | None = None,
    ) -> None:
        """Give every carried stream of ``sd`` its ports on ``leg``, keeping existing ones.

        ``party`` is the leg's own description (its offer), whose ``a=rtcp-mux`` decides
        multiplexing; toward a party that has not spoken yet the profile decides.
        """
        shared: RelayPort | None = None
        for index, media in enumerate(sd.media):
            while len(leg.streams) <= index:
                leg.streams.append(None)
            carried = not media.rejected and media.is_rtp
            stream = leg.streams[index]
            if not carried:
                if stream is not None:
                    leg.streams[index] = None
                continue
            if stream is not None:
                shared = shared or stream.rtp
                continue
            mux = leg.profile.rtcp_mux or bundle
            if party is not None:
                mux = mux or media.has_attribute("rtcp-mux")
            if bundle and shared is not None:
                rtp = rtcp = shared
            else:
                rtp, second = self._allocate(not mux)
                rtcp = second or rtp
                leg.ports.append(rtp)
                if second is not None:
                    leg.ports.append(second)
                if bundle:
                    shared = rtp
            leg.streams[index] = StreamEnd(index, rtp, rtcp)
            if leg.profile.ice and leg.ice is not None:
                for port in (rtp, rtcp):
                    if port.ice is None:
                        port.ice = IceLite(leg.ice.ufrag, leg.ice.pwd)
                        if leg.remote_ice is not None:
                            port.ice.set_remote(*leg.remote_ice)
        if leg.profile.ice and leg.ice is None:
            leg.ice = self._new_ice()
            for port in leg.ports:
                port.ice = IceLite(leg.ice.ufrag, leg.ice.pwd)
        for port in leg.ports:
            port.secure = leg.profile.dtls or leg.profile.sdes
        _serve(leg)

    def _pair(self, a: Leg, b: Leg) -> None:
        for index in range(max(len(a.streams), len(b.streams))):
            one = a.streams[index] if index < len(a.streams) else None
            other = b.streams[index] if index < len(b.streams) else None
            if one is not None:
                one.peer = other
            if other is not None:
                other.peer = one

    # -- writing a description for a leg -------------------------------------------------

    def _describe(
        self,
        leg: Leg,
        sd: SessionDescription,
        setup: Setup,
        *,
        bundle: bool,
        mids: Sequence[str] | None,
    ) -> SessionDescription:
        profile = leg.profile
        endpoints: list[MediaEndpoint | None] = []
        for index, media in enumerate(sd.media):
            stream = leg.streams[index] if index < len(leg.streams) else None
            if stream is None or media.rejected or not media.is_rtp:
                endpoints.append(None)
                continue
            if profile.sdes and index not in leg.keys:
                leg.keys[index] = self._new_key(SDES_SUITE, 1)
            rtcp_port = None if stream.rtcp is stream.rtp else stream.rtcp.number
            endpoints.append(MediaEndpoint(stream.rtp.number, rtcp_port, leg.keys.get(index)))
        certificate = self.settings.certificate
        dtls = DtlsParameters(certificate.fingerprint, setup) if profile.dtls else None
        if mids is not None and len(mids) != len(sd.media):
            mids = None
        out = rewrite(
            sd,
            profile,
            RelayEndpoints(self.settings.address, tuple(endpoints)),
            ice=leg.ice if profile.ice else None,
            dtls=dtls,
            bundle=bundle,
            mids=mids,
        )
        follow_origin(out, leg.last_sent)
        leg.last_sent = out
        return out

    # -- secrets --------------------------------------------------------------------------

    def _new_ice(self) -> IceParameters:
        # RFC 8839 §5.4: ice-char is base64's alphabet; 4 and 22 characters are the minimum
        # lengths, and 24 bytes of randomness (128+ bits) in the password is what RFC 8445
        # §5.3 asks.
        token = self.settings.token
        ufrag = base64.b64encode(token(6)).decode("ascii")
        pwd = base64.b64encode(token(18)).decode("ascii")
        return IceParameters(ufrag, pwd)

    def _new_key(self, suite: str, tag: int) -> SdesParameters:
        return SdesParameters(self.settings.token(SDES_KEY_LENGTHS[suite]), tag, suite)


def _parse(sdp: bytes) -> SessionDescription:
    try:
        return parse(sdp)
    except SdpError as exc:
        raise MediaError(exc.reason, exc.status) from None


def _bundle_group(sd: SessionDescription) -> tuple[str, ...]:
    for group in sd.get_all(GROUP):
        if group.semantics == "BUNDLE":
            return group.mids
    return ()


def _usable(crypto: Crypto) -> bool:
    return crypto.suite in SUITES and len(crypto.keys) == 1 and crypto.keys[0].mki is None


def _serve(leg: Leg) -> None:
    """Tell each port of ``leg`` which streams arrive on it."""
    rtp: dict[int, list[StreamEnd]] = {}
    rtcp: dict[int, list[StreamEnd]] = {}
    ports = {id(port): port for port in leg.ports}
    for stream in leg.streams:
        if stream is None:
            continue
        rtp.setdefault(id(stream.rtp), []).append(stream)
        if stream.rtcp is not stream.rtp:
            rtcp.setdefault(id(stream.rtcp), []).append(stream)
    for key, port in ports.items():
        port.serve(rtp.get(key) or rtcp.get(key) or [])


def _key_port(port: RelayPort, ours: SdesParameters, theirs: Crypto) -> None:
    port.srtp = SrtpContext(ours.suite, ours.key, theirs.keys[0].key_bytes())
