"""A call's media through the built-in relay, in memory: SDP in, SDP out, then packets.

The browser is simulated with the pieces a browser has (ICE checks built with
aioice's codec, a DTLS client, SRTP); the PBX sends and receives plain RTP. Ports
are :class:`RelayPort` objects whose ``send`` appends to a list: the network.
"""

from __future__ import annotations

import itertools
import struct
from datetime import UTC, datetime

import pytest
from aioice import stun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.control import MediaError, Negotiation
from media.dtls import DtlsCertificate, DtlsRole, DtlsSrtpEndpoint, DtlsState
from media.relay import Address, RelayPort
from media.session import MediaSession, SessionSettings
from media.srtp import SrtpContext
from sdp.attributes import CRYPTO, FINGERPRINT, ICE_PWD, ICE_UFRAG, RTCP, RTPMAP, SETUP, Setup
from sdp.model import SessionDescription, parse
from sdp.rewrite import AVP, SAVP_SDES, WEBRTC, Profile
from tests.helpers.golden import CHROME_AUDIO, CHROME_AUDIO_VIDEO, fixture

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, tzinfo=UTC)
RELAY = "203.0.113.5"
BROWSER: Address = ("192.0.2.10", 50000)
PBX: Address = ("192.0.2.50", 10036)
PBX_RTCP: Address = ("192.0.2.50", 10037)
CALL = "call-1@test"


class FastPath:
    """What RelayPort.sync last told a port's fast path (media/_forward.c's Forwarder):
    where it takes packets from, and where it sends them."""

    def __init__(self) -> None:
        self.last_received = 0.0
        self.dropped = 0
        self.source: Address | None = None
        self.destination: Address | None = None
        self.keys: tuple[int, int] = (0, 0)
        """The libsrtp sessions it was given: (inbound, outbound); 0 for none."""

    def accept(self, source: Address, rx: int, owner: object, *_: object) -> None:
        self.source, self.keys = source, (rx, self.keys[1])

    def disarm(self) -> None:
        self.source = None

    def send_to(self, destination: Address | None, tx: int, owner: object) -> None:
        self.destination, self.keys = destination, (self.keys[0], tx)


class Network:
    """Datagrams the relay sent: (from port, data, to address); and the ports' clock."""

    def __init__(self, fast: bool = False) -> None:
        self.fast = fast
        self.sent: list[tuple[int, bytes, Address]] = []
        self.ports: dict[int, RelayPort] = {}
        self.now = 1.0
        self._numbers = itertools.count(40000, 2)

    def allocate(self, pair: bool) -> tuple[RelayPort, RelayPort | None]:
        number = next(self._numbers)
        first = self._port(number)
        return first, self._port(number + 1) if pair else None

    def _port(self, number: int) -> RelayPort:
        port = RelayPort(
            number, lambda data, to: self.sent.append((number, data, to)), lambda: self.now
        )
        if self.fast:
            port.fast = FastPath()
        self.ports[number] = port
        return port

    def take(self, to: Address | None = None) -> list[tuple[int, bytes, Address]]:
        taken = [s for s in self.sent if to is None or s[2] == to]
        self.sent = [s for s in self.sent if s not in taken]
        return taken


@pytest.fixture(scope="module")
def relay_certificate() -> DtlsCertificate:
    return DtlsCertificate.generate(NOW)


@pytest.fixture(scope="module")
def browser_certificate() -> DtlsCertificate:
    return DtlsCertificate.generate(NOW)


def _session(network: Network, certificate: DtlsCertificate) -> MediaSession:
    seed = itertools.count(1)

    def token(length: int) -> bytes:
        start = next(seed) * 7
        return bytes((start + i) % 256 for i in range(length))

    return MediaSession(CALL, SessionSettings(RELAY, certificate, token), network.allocate)


def _negotiation(sender: str, receiver: str | None, source: Profile, dest: Profile) -> Negotiation:
    return Negotiation(CALL, sender, receiver, source, dest)


def _chrome_offer(browser: DtlsCertificate) -> bytes:
    text = fixture(CHROME_AUDIO).decode()
    old = next(line for line in text.splitlines() if line.startswith("a=fingerprint:"))
    return text.replace(old, f"a=fingerprint:{browser.fingerprint}").encode()


def _pbx_answer() -> bytes:
    return fixture("asterisk-20-answer.sdp")


def _rtp(seq: int, payload: bytes = b"\x55" * 160, pt: int = 0, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


def _rtcp_rr(ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


class Browser:
    """ICE checks, a DTLS client and SRTP, the way a browser reaches the relay."""

    def __init__(self, certificate: DtlsCertificate, answer: SessionDescription) -> None:
        media = answer.media[0]
        self.port = media.port
        self.ufrag = media.get(ICE_UFRAG) or ""
        self.pwd = media.get(ICE_PWD) or ""
        self.own_ufrag = "Me+N"  # the fixture's a=ice-ufrag
        self.dtls = DtlsSrtpEndpoint(certificate, DtlsRole.CLIENT, media.get_all(FINGERPRINT))

    def check(
        self, port: RelayPort, network: Network, nominate: bool = True, now: float = 1.0
    ) -> bool:
        attributes: dict[str, object] = {
            "USERNAME": f"{self.ufrag}:{self.own_ufrag}",
            "PRIORITY": 1,
            "ICE-CONTROLLING": 1,
        }
        if nominate:
            attributes["USE-CANDIDATE"] = None
        message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, b"x" * 12, attributes)
        message.add_message_integrity(self.pwd.encode())
        network.now = now
        port.receive(bytes(message), BROWSER)
        replies = network.take(BROWSER)
        response = stun.parse_message(replies[-1][1])
        return response.message_class is stun.Class.RESPONSE

    def handshake(self, port: RelayPort, network: Network) -> None:
        self.dtls.start()
        for _ in range(20):
            for datagram in self.dtls.datagrams_to_send():
                port.receive(datagram, BROWSER)
            for _, data, _ in network.take(BROWSER):
                self.dtls.receive(data)
            if self.dtls.state is DtlsState.CONNECTED and not network.sent:
                break
        assert self.dtls.state is DtlsState.CONNECTED, self.dtls.failure_reason

    @property
    def srtp(self) -> SrtpContext:
        assert self.dtls.srtp is not None
        return self.dtls.srtp


def _connected(
    network: Network, certificate: DtlsCertificate, answer: SessionDescription
) -> tuple[Browser, RelayPort]:
    """A browser that has passed its ICE check (at t=1) and its DTLS handshake with
    the relay port the ``answer`` names."""
    browser = Browser(certificate, answer)
    web_port = network.ports[browser.port]
    assert browser.check(web_port, network)
    browser.handshake(web_port, network)
    return browser, web_port


def _browser_call(
    network: Network, relay: DtlsCertificate, browser: DtlsCertificate
) -> tuple[MediaSession, SessionDescription, SessionDescription]:
    session = _session(network, relay)
    offer = parse(session.offer(_negotiation("alice", None, WEBRTC, AVP), _chrome_offer(browser)))
    answer = parse(session.answer(_negotiation("pbx", "alice", AVP, WEBRTC), _pbx_answer()))
    return session, offer, answer


def test_the_offer_to_the_pbx_is_plain_rtp_at_the_relay(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    _, offer, _ = _browser_call(network, relay_certificate, browser_certificate)
    media = offer.media[0]
    assert media.proto == "RTP/AVP"
    assert media.connection is not None and media.connection.address == RELAY
    rtcp = media.get(RTCP)
    assert rtcp is not None and rtcp.port == media.port + 1
    text = str(offer)
    for gone in ("ice-", "fingerprint", "setup", "candidate", "ssrc", "extmap", "group"):
        assert f"a={gone}" not in text, gone
    assert "a=rtpmap:111 opus/48000/2" in text  # codecs pass through


def test_the_answer_to_the_browser_is_ice_lite_dtls_passive_with_its_mid(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    _, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    media = answer.media[0]
    assert media.proto == "UDP/TLS/RTP/SAVPF"
    assert media.port != offer.media[0].port
    assert media.mid == "0"
    assert answer.attribute("group") == "BUNDLE 0"
    assert answer.has_attribute("ice-lite")
    assert media.get(SETUP) is Setup.PASSIVE
    assert media.get(FINGERPRINT) == relay_certificate.fingerprint
    assert media.has_attribute("rtcp-mux")
    assert f"{RELAY} {media.port} typ host" in str(answer)


def test_audio_flows_both_ways_between_dtls_srtp_and_rtp(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    session, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    browser = Browser(browser_certificate, answer)
    web_port = network.ports[browser.port]
    pbx_port = network.ports[offer.media[0].port]
    rtcp_port = network.ports[offer.media[0].port + 1]

    # Nothing passes before ICE and DTLS are done.
    web_port.receive(b"\x80" + bytes(40), BROWSER)
    assert network.take() == []
    assert browser.check(web_port, network)
    browser.handshake(web_port, network)

    # Browser -> PBX: SRTP in, RTP out to the address the PBX's answer gave.
    packet = _rtp(1)
    web_port.receive(browser.srtp.protect(packet), BROWSER)
    assert network.take() == [(pbx_port.number, packet, PBX)]

    # PBX -> browser: RTP in (latched to where it came from), SRTP out.
    reply = _rtp(7, b"\x11" * 160, ssrc=0x9999)
    pbx_port.receive(reply, PBX)
    [(source, data, to)] = network.take()
    assert (source, to) == (web_port.number, BROWSER)
    assert browser.srtp.unprotect(data) == reply

    # RTCP from the PBX's own RTCP port reaches the browser, multiplexed.
    rtcp = _rtcp_rr(0x9999)
    rtcp_port.receive(rtcp, PBX_RTCP)
    [(source, data, to)] = network.take()
    assert (source, to) == (web_port.number, BROWSER)
    assert browser.srtp.unprotect_rtcp(data) == rtcp

    stats = session.stats()
    assert [leg.packets for leg in stats.legs] == [1, 1]


def test_forged_and_unvalidated_packets_are_counted_and_dropped(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    _, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    browser, web_port = _connected(network, browser_certificate, answer)
    pbx_port = network.ports[offer.media[0].port]
    web_port.receive(_rtp(1) + bytes(10), BROWSER)  # not authenticated
    web_port.receive(browser.srtp.protect(_rtp(2)), ("198.51.100.1", 1))
    assert network.take() == []
    assert web_port.dropped["srtp"] == 1
    assert web_port.dropped["unvalidated source"] == 1
    # Once the PBX is latched, another source cannot take its place.
    pbx_port.receive(_rtp(1), PBX)
    network.take()
    pbx_port.receive(_rtp(2), ("198.51.100.1", 9))
    assert network.take() == []
    assert pbx_port.dropped["unlatched source"] == 1


def test_a_hold_reoffer_keeps_ports_and_dtls(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    session, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    browser, web_port = _connected(network, browser_certificate, answer)
    hold = _chrome_offer(browser_certificate).replace(b"a=sendrecv", b"a=sendonly")
    again = parse(session.offer(_negotiation("alice", "pbx", WEBRTC, AVP), hold))
    assert again.media[0].port == offer.media[0].port
    assert again.origin.version == offer.origin.version + 1
    assert "a=sendonly" in str(again)
    pbx_hold = _pbx_answer().replace(b"a=sendrecv", b"a=recvonly")
    held = parse(session.answer(_negotiation("pbx", "alice", AVP, WEBRTC), pbx_hold))
    assert held.media[0].port == answer.media[0].port
    assert held.media[0].get(ICE_UFRAG) == answer.media[0].get(ICE_UFRAG)
    assert web_port.dtls is not None and web_port.dtls.state is DtlsState.CONNECTED
    packet = _rtp(3)
    web_port.receive(browser.srtp.protect(packet), BROWSER)
    assert network.take() == [(offer.media[0].port, packet, PBX)]


def test_an_ice_restart_gets_new_relay_credentials_and_media_continues(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    session, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    browser, web_port = _connected(network, browser_certificate, answer)
    restart = (
        _chrome_offer(browser_certificate)
        .replace(b"a=ice-ufrag:Me+N", b"a=ice-ufrag:New1")
        .replace(b"ejnuIZ59sEhHwh+G5lpWSFr0", b"NewPasswordOf24chars0000")
    )
    session.offer(_negotiation("alice", "pbx", WEBRTC, AVP), restart)
    after = parse(session.answer(_negotiation("pbx", "alice", AVP, WEBRTC), _pbx_answer()))
    assert after.media[0].get(ICE_UFRAG) != answer.media[0].get(ICE_UFRAG)
    assert after.media[0].port == answer.media[0].port
    browser.ufrag = after.media[0].get(ICE_UFRAG) or ""
    browser.pwd = after.media[0].get(ICE_PWD) or ""
    browser.own_ufrag = "New1"
    assert browser.check(web_port, network)
    packet = _rtp(4)
    web_port.receive(browser.srtp.protect(packet), BROWSER)
    assert network.take() == [(offer.media[0].port, packet, PBX)]


def test_sdes_trunk_to_plain_pbx(relay_certificate: DtlsCertificate) -> None:
    network = Network()
    session = _session(network, relay_certificate)
    trunk_offer = fixture("trunk-savp-offer.sdp")
    out = parse(session.offer(_negotiation("trunk", None, SAVP_SDES, AVP), trunk_offer))
    assert out.media[0].proto == "RTP/AVP" and "a=crypto" not in str(out)
    back = parse(session.answer(_negotiation("pbx", "trunk", AVP, SAVP_SDES), _pbx_answer()))
    media = back.media[0]
    assert media.proto == "RTP/SAVP"
    [ours] = media.get_all(CRYPTO)
    # The first offered line has an MKI, which the relay does not take: the second.
    offered = parse(trunk_offer).media[0].get_all(CRYPTO)[1]
    assert (ours.tag, ours.suite) == (offered.tag, offered.suite)
    trunk = SrtpContext(ours.suite, offered.keys[0].key_bytes(), ours.keys[0].key_bytes())
    trunk_port = network.ports[media.port]
    pbx_port = network.ports[out.media[0].port]
    trunk_address = ("198.51.100.7", 30000)
    packet = _rtp(1)
    trunk_port.receive(trunk.protect(packet), trunk_address)
    assert network.take() == [(pbx_port.number, packet, PBX)]
    pbx_port.receive(_rtp(2), PBX)
    [(_, data, to)] = network.take()
    assert to == trunk_address  # latched on the authenticated packet
    assert trunk.unprotect(data) == _rtp(2)


def test_malformed_sdp_is_a_488_naming_the_problem(relay_certificate: DtlsCertificate) -> None:
    session = _session(Network(), relay_certificate)
    with pytest.raises(MediaError) as caught:
        session.offer(_negotiation("a", None, AVP, AVP), b"v=0\r\nm=audio x RTP/AVP 0\r\n")
    assert caught.value.status == 488
    assert caught.value.reason


def test_a_webrtc_offer_without_ice_credentials_is_refused(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    session = _session(Network(), relay_certificate)
    offer = b"\r\n".join(
        line
        for line in _chrome_offer(browser_certificate).split(b"\r\n")
        if not line.startswith(b"a=ice-")
    )
    with pytest.raises(MediaError, match="ICE credentials"):
        session.offer(_negotiation("a", None, WEBRTC, AVP), offer)


def test_bundled_audio_and_video_split_toward_the_pbx_and_join_back(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    session = _session(network, relay_certificate)
    text = fixture(CHROME_AUDIO_VIDEO).decode()
    old = next(line for line in text.splitlines() if line.startswith("a=fingerprint:"))
    chrome = text.replace(old, f"a=fingerprint:{browser_certificate.fingerprint}").encode()
    offer = parse(session.offer(_negotiation("alice", None, WEBRTC, AVP), chrome))
    audio, video = offer.media
    assert audio.port != video.port, "one PBX port per stream"
    assert "a=group" not in str(offer)
    pbx = (
        b"v=0\r\no=pbx 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n"
        b"m=audio 10036 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
        b"m=video 10038 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
    )
    answer = parse(session.answer(_negotiation("pbx", "alice", AVP, WEBRTC), pbx))
    assert answer.attribute("group") == "BUNDLE 0 1"
    first, second = answer.media
    assert first.port == second.port, "bundled: one relay port (RFC 9143)"
    assert [first.mid, second.mid] == ["0", "1"]
    # RFC 9143 §7.1.3: transport attributes on the tagged m= line only.
    assert first.get(ICE_UFRAG) and first.get(FINGERPRINT)
    assert second.get(ICE_UFRAG) is None and second.get(FINGERPRINT) is None

    browser = Browser(browser_certificate, answer)
    browser.own_ufrag = parse(chrome).media[0].get(ICE_UFRAG) or ""
    web_port = network.ports[first.port]
    assert browser.check(web_port, network)
    browser.handshake(web_port, network)
    sound, picture = _rtp(1, pt=111, ssrc=1), _rtp(1, b"\x99" * 900, pt=96, ssrc=2)
    web_port.receive(browser.srtp.protect(sound), BROWSER)
    web_port.receive(browser.srtp.protect(picture), BROWSER)
    assert network.take() == [
        (audio.port, sound, ("192.0.2.50", 10036)),
        (video.port, picture, ("192.0.2.50", 10038)),
    ]
    back = _rtp(5, b"\x42" * 900, pt=96, ssrc=9)
    network.ports[video.port].receive(back, ("192.0.2.50", 10038))
    [(source, data, to)] = network.take()
    assert (source, to) == (first.port, BROWSER)
    assert browser.srtp.unprotect(data) == back
    # RTCP from the browser about the video goes to the PBX's video RTCP port.
    report = struct.pack("!BBHI", 0x80, 200, 1, 2)
    web_port.receive(browser.srtp.protect_rtcp(report), BROWSER)
    [(source, data, to)] = network.take()
    assert (source, data, to) == (video.port + 1, report, ("192.0.2.50", 10039))


def test_without_consent_checks_the_relay_stops_sending_to_the_browser(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    _, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    browser, web_port = _connected(network, browser_certificate, answer)
    pbx_port = network.ports[offer.media[0].port]
    network.now = 30.0
    web_port.handle_timer(30.0)
    pbx_port.receive(_rtp(1), PBX)
    assert len(network.take(BROWSER)) == 1
    network.now = 31.5
    web_port.handle_timer(31.5)  # RFC 7675: 30 s without a check
    pbx_port.receive(_rtp(2), PBX)
    assert network.take(BROWSER) == []
    assert web_port.dropped["no destination"] == 1
    browser.check(web_port, network, now=32.0)  # consent again
    web_port.handle_timer(32.0)
    pbx_port.receive(_rtp(3), PBX)
    assert len(network.take(BROWSER)) == 1


def test_the_fast_path_takes_a_browser_stream_once_ice_and_dtls_are_done(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network(fast=True)
    _, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    web_port = network.ports[answer.media[0].port]
    pbx_port = network.ports[offer.media[0].port]
    web, pbx = web_port.fast, pbx_port.fast
    assert isinstance(web, FastPath) and isinstance(pbx, FastPath)
    # No ICE check yet: nowhere to send, no source to take; no keys either.
    assert (web.source, web.destination) == (None, None)
    # The PBX's address is in its answer, but only a packet from it latches.
    assert (pbx.source, pbx.destination) == (None, PBX)
    browser, _ = _connected(network, browser_certificate, answer)
    assert (web.source, web.destination) == (BROWSER, BROWSER)
    assert all(web.keys)  # SRTP both ways, by the DTLS keys
    pbx_port.receive(_rtp(1), PBX)
    assert (pbx.source, pbx.keys) == (PBX, (0, 0))
    network.now = 31.5
    web_port.handle_timer(31.5)  # RFC 7675: consent lost, sending stops
    assert web.destination is None
    browser.check(web_port, network, now=32.0)
    web_port.handle_timer(32.0)
    assert web.destination == BROWSER


def test_the_latest_fork_to_answer_owns_the_callee_leg(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    network = Network()
    session = _session(network, relay_certificate)
    offer = parse(
        session.offer(_negotiation("alice", None, WEBRTC, AVP), _chrome_offer(browser_certificate))
    )
    early = parse(session.answer(_negotiation("fork-a", "alice", AVP, WEBRTC), _pbx_answer()))
    other = _pbx_answer().replace(b"192.0.2.50", b"192.0.2.60").replace(b"10036", b"20000")
    final = parse(session.answer(_negotiation("fork-b", "alice", AVP, WEBRTC), other))
    assert final.media[0].port == early.media[0].port  # the browser sees one relay port
    browser, web_port = _connected(network, browser_certificate, final)
    web_port.receive(browser.srtp.protect(_rtp(1)), BROWSER)
    assert network.take() == [(offer.media[0].port, _rtp(1), ("192.0.2.60", 20000))]
    assert [leg.tag for leg in session.legs] == ["alice", "fork-b"]


def test_a_trunk_codec_allow_list_keeps_telephone_event(
    relay_certificate: DtlsCertificate, browser_certificate: DtlsCertificate
) -> None:
    session = _session(Network(), relay_certificate)
    negotiation = Negotiation(CALL, "alice", None, WEBRTC, AVP, ("PCMA",))
    offer = parse(session.offer(negotiation, _chrome_offer(browser_certificate)))
    media = offer.media[0]
    assert [m.encoding for m in media.get_all(RTPMAP)] == ["PCMA", "telephone-event"]
    with pytest.raises(MediaError, match="no acceptable codec"):
        session.offer(
            Negotiation("call-2", "bob", None, WEBRTC, AVP, ("G729",)),
            _chrome_offer(browser_certificate),
        )


@given(data=st.binary(max_size=1500))
@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_garbage_on_media_ports_never_raises_and_never_reaches_a_leg_without_keys(
    relay_certificate: DtlsCertificate,
    browser_certificate: DtlsCertificate,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
) -> None:
    network = Network()
    _, offer, answer = _browser_call(network, relay_certificate, browser_certificate)
    web_port = network.ports[answer.media[0].port]
    pbx_port = network.ports[offer.media[0].port]
    for port in (web_port, pbx_port):
        port.receive(data, ("198.51.100.9", 4000))
    # A STUN-looking datagram may be answered (to its sender); nothing is forwarded.
    sent = network.take()
    assert all(to == ("198.51.100.9", 4000) for _, _, to in sent), sent
    assert "packet dropped" not in caplog.text  # counted as a drop, not caught as a bug
