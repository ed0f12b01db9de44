"""media.dtls: two endpoints wired in memory, fingerprints, loss, garbage and fuzz.

Modelled on aioquic's ``client_and_server``/``transfer``: a client and a server
trade real datagrams with no socket, and the test decides which ones get lost,
duplicated or reordered. Only one test needs OpenSSL's real clock (its first
retransmission waits a full second); it runs when ``WEDGE_SLOW_UNIT_TESTS=1``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from media.dtls import (
    DEFAULT_SRTP_PROFILES,
    DTLS_MTU,
    MAX_DATAGRAM_SIZE,
    MAX_PENDING_DATAGRAMS,
    DtlsCertificate,
    DtlsRole,
    DtlsSrtpEndpoint,
    DtlsState,
    fingerprint_of,
)
from media.srtp import DTLS_PROFILES, SrtpContext
from sdp.attributes import Fingerprint

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLIENT_CERT = DtlsCertificate.generate(NOW)
SERVER_CERT = DtlsCertificate.generate(NOW)
OTHER_CERT = DtlsCertificate.generate(NOW)

Datagrams = list[bytes]
Network = Callable[[Datagrams], Datagrams]
"""What the path does to one side's output: lose, duplicate or reorder it."""


def deliver(datagrams: Datagrams) -> Datagrams:
    return datagrams


def endpoints(
    *,
    client_expects: Sequence[Fingerprint] = (SERVER_CERT.fingerprint,),
    server_expects: Sequence[Fingerprint] = (CLIENT_CERT.fingerprint,),
    client_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
    server_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
    mtu: int = DTLS_MTU,
) -> tuple[DtlsSrtpEndpoint, DtlsSrtpEndpoint]:
    client = DtlsSrtpEndpoint(
        CLIENT_CERT, DtlsRole.CLIENT, client_expects, srtp_profiles=client_profiles, mtu=mtu
    )
    server = DtlsSrtpEndpoint(
        SERVER_CERT, DtlsRole.SERVER, server_expects, srtp_profiles=server_profiles, mtu=mtu
    )
    return client, server


def transfer(src: DtlsSrtpEndpoint, dst: DtlsSrtpEndpoint, network: Network = deliver) -> Datagrams:
    """Move what ``src`` wants to send into ``dst``; return what was sent."""
    sent = src.datagrams_to_send()
    for datagram in network(sent):
        dst.receive(datagram)
    return sent


def handshake(
    client: DtlsSrtpEndpoint,
    server: DtlsSrtpEndpoint,
    network: Network = deliver,
    rounds: int = 8,
) -> list[Datagrams]:
    """Start the client and trade flights until both settle; return every flight."""
    client.start()
    server.start()
    flights = []
    for _ in range(rounds):
        flights.append(transfer(client, server, network))
        flights.append(transfer(server, client, network))
        if DtlsState.CONNECTING not in (client.state, server.state):
            break
    return flights


def rtp(seq: int) -> bytes:
    header = bytes([0x80, 0x6F]) + seq.to_bytes(2) + (seq * 960).to_bytes(4) + bytes(4)
    return header + bytes(160)


RTCP_RR = bytes([0x80, 201, 0, 1]) + bytes(4)


def assert_keys_interoperate(a: SrtpContext | None, b: SrtpContext | None) -> None:
    assert a is not None
    assert b is not None
    for seq in (1, 2):
        assert b.unprotect(a.protect(rtp(seq))) == rtp(seq)
        assert a.unprotect(b.protect(rtp(seq))) == rtp(seq)
    assert b.unprotect_rtcp(a.protect_rtcp(RTCP_RR)) == RTCP_RR
    assert a.unprotect_rtcp(b.protect_rtcp(RTCP_RR)) == RTCP_RR


# -- certificates -------------------------------------------------------------------------


def test_certificate_is_self_signed_p256_for_thirty_days() -> None:
    cert = CLIENT_CERT.certificate
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    assert cert.issuer == cert.subject
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - NOW == timedelta(days=30)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca is False
    names = {c.certificate.subject.rfc4514_string() for c in (CLIENT_CERT, SERVER_CERT)}
    assert len(names) == 2


def test_certificate_fingerprint_is_upper_case_sha256_pairs() -> None:
    fingerprint = CLIENT_CERT.fingerprint
    assert fingerprint.hash_function == "sha-256"
    assert fingerprint.fingerprint == fingerprint.fingerprint.upper()
    assert len(fingerprint.fingerprint.split(":")) == 32
    assert fingerprint.digest() == CLIENT_CERT.certificate.fingerprint(
        CLIENT_CERT.certificate.signature_hash_algorithm  # type: ignore[arg-type]
    )
    assert str(fingerprint_of(CLIENT_CERT.certificate, "SHA-1")).startswith("sha-1 ")


def test_generate_with_a_given_key_is_repeatable_in_its_fingerprint() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    one = DtlsCertificate.generate(NOW, key=key)
    two = DtlsCertificate.generate(NOW, key=key)
    assert one.key is key
    assert one.certificate.subject == two.certificate.subject


# -- handshake ----------------------------------------------------------------------------


def test_handshake_connects_and_keys_interoperate() -> None:
    client, server = endpoints()
    assert (client.state, server.state) == (DtlsState.CONNECTING, DtlsState.CONNECTING)
    assert client.get_timeout() is None  # not started
    handshake(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    assert client.failure_reason is None
    assert server.failure_reason is None
    assert client.srtp_profile == server.srtp_profile == "SRTP_AEAD_AES_128_GCM"
    assert_keys_interoperate(client.srtp, server.srtp)
    assert client.get_timeout() is None
    assert server.get_timeout() is None


@pytest.mark.parametrize("profile", sorted(DTLS_PROFILES))
def test_each_srtp_profile(profile: str) -> None:
    client, server = endpoints(client_profiles=[profile], server_profiles=[profile])
    handshake(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    assert client.srtp_profile == server.srtp_profile == profile
    assert client.srtp is not None
    assert client.srtp.suite is DTLS_PROFILES[profile]
    assert_keys_interoperate(client.srtp, server.srtp)


def test_client_offering_only_the_mandatory_profile_gets_it() -> None:
    client, server = endpoints(client_profiles=["SRTP_AES128_CM_SHA1_80"])
    handshake(client, server)
    assert client.srtp_profile == server.srtp_profile == "SRTP_AES128_CM_SHA1_80"
    assert_keys_interoperate(client.srtp, server.srtp)


def test_no_common_srtp_profile_fails_both() -> None:
    client, server = endpoints(
        client_profiles=["SRTP_AEAD_AES_256_GCM"], server_profiles=["SRTP_AES128_CM_SHA1_80"]
    )
    handshake(client, server)
    assert client.state is DtlsState.FAILED
    assert server.state is DtlsState.FAILED
    assert client.failure_reason is not None
    assert "SRTP profile" in client.failure_reason
    assert client.srtp is None
    assert server.srtp is None


def test_unknown_srtp_profile_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="SRTP_NULL_SHA1_80"):
        endpoints(client_profiles=["SRTP_NULL_SHA1_80"])
    with pytest.raises(ValueError, match="unsupported"):
        endpoints(server_profiles=[])
    with pytest.raises(ValueError, match="MTU"):
        endpoints(mtu=200)


def test_start_is_idempotent_and_a_no_op_for_the_server() -> None:
    client, server = endpoints()
    server.start()
    assert server.datagrams_to_send() == []
    assert server.get_timeout() is None  # nothing sent, nothing to retransmit
    client.start()
    hello = client.datagrams_to_send()
    assert len(hello) == 1
    assert hello[0][0] == 22  # handshake record
    client.start()
    assert client.datagrams_to_send() == []


def test_small_mtu_keeps_every_datagram_within_it() -> None:
    client, server = endpoints(mtu=300)
    flights = handshake(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    sizes = [len(datagram) for flight in flights for datagram in flight]
    assert max(sizes) <= 300
    assert len(flights[1]) > 1  # the server's certificate flight needed several


# -- fingerprints -------------------------------------------------------------------------


def test_server_fingerprint_mismatch_fails_with_both_fingerprints() -> None:
    client, server = endpoints(client_expects=[OTHER_CERT.fingerprint])
    handshake(client, server)
    assert client.state is DtlsState.FAILED
    reason = client.failure_reason
    assert reason is not None
    assert f"expected {OTHER_CERT.fingerprint}" in reason
    assert f"presented {SERVER_CERT.fingerprint}" in reason
    assert client.srtp is None
    # The client's alert tells the server, which fails too and keys nothing.
    assert server.state is DtlsState.FAILED
    assert server.srtp is None
    assert server.failure_reason is not None
    assert "alert" in server.failure_reason


def test_client_fingerprint_mismatch_fails_the_server() -> None:
    client, server = endpoints(server_expects=[OTHER_CERT.fingerprint])
    handshake(client, server)
    assert server.state is DtlsState.FAILED
    assert server.failure_reason is not None
    assert f"expected {OTHER_CERT.fingerprint}" in server.failure_reason
    assert f"presented {CLIENT_CERT.fingerprint}" in server.failure_reason
    assert server.srtp is None
    assert client.state is DtlsState.FAILED
    assert client.srtp is None


@pytest.mark.parametrize("hash_function", ["sha-1", "sha-256", "sha-384", "sha-512", "SHA-256"])
def test_fingerprint_with_each_hash_function(hash_function: str) -> None:
    client, server = endpoints(
        client_expects=[fingerprint_of(SERVER_CERT.certificate, hash_function)],
        server_expects=[fingerprint_of(CLIENT_CERT.certificate, hash_function)],
    )
    handshake(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)


def test_strongest_hash_offered_is_the_one_checked() -> None:
    right_sha1 = fingerprint_of(SERVER_CERT.certificate, "sha-1")
    wrong_sha1 = fingerprint_of(OTHER_CERT.certificate, "sha-1")
    right_sha256 = SERVER_CERT.fingerprint
    wrong_sha256 = OTHER_CERT.fingerprint

    client, server = endpoints(client_expects=[wrong_sha1, right_sha256])
    handshake(client, server)
    assert client.state is DtlsState.CONNECTED

    client, server = endpoints(client_expects=[right_sha1, wrong_sha256])
    handshake(client, server)
    assert client.state is DtlsState.FAILED


def test_any_of_several_fingerprints_with_that_hash_matches() -> None:
    # RFC 8842: a peer with several certificates lists a fingerprint for each.
    client, server = endpoints(client_expects=[OTHER_CERT.fingerprint, SERVER_CERT.fingerprint])
    handshake(client, server)
    assert client.state is DtlsState.CONNECTED


@pytest.mark.parametrize(
    "fingerprints",
    [
        [],
        [Fingerprint("md5", "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF")],
        [Fingerprint("sha-256", "not:hex")],
    ],
    ids=["none", "md5", "malformed"],
)
def test_no_usable_fingerprint_fails_at_once(fingerprints: list[Fingerprint]) -> None:
    client, _server = endpoints(client_expects=fingerprints)
    assert client.state is DtlsState.FAILED
    assert client.failure_reason is not None
    assert "no usable remote fingerprint" in client.failure_reason
    client.start()
    assert client.datagrams_to_send() == []
    assert client.get_timeout() is None


# -- loss, duplication, reordering, late records ------------------------------------------


def test_duplicated_datagrams_do_not_disturb_the_handshake() -> None:
    client, server = endpoints()
    handshake(client, server, network=lambda sent: [d for d in sent for _ in (0, 1)])
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    assert_keys_interoperate(client.srtp, server.srtp)


def test_reordered_datagrams_within_a_flight_are_reassembled() -> None:
    client, server = endpoints(mtu=300)
    client.start()
    transfer(client, server)
    flight = transfer(server, client, network=lambda sent: sent[::-1])
    assert len(flight) > 1  # ServerHello ... ServerHelloDone, in pieces
    handshake(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    # Not so a flight that ends in ChangeCipherSpec: DTLS 1.2 drops a CCS that arrives
    # before the messages it follows, and only the client's retransmission recovers.


def test_lost_first_flight_arms_the_retransmission_timer() -> None:
    client, _server = endpoints()
    client.start()
    assert client.datagrams_to_send()  # lost
    timeout = client.get_timeout()
    assert timeout is not None
    assert 0 < timeout <= 1.0  # RFC 6347 §4.2.4.1: initial timer 1 s
    client.handle_timeout()  # too early: nothing to resend
    assert client.datagrams_to_send() == []
    assert client.state is DtlsState.CONNECTING


def test_lost_first_flight_is_recovered_by_handle_timeout() -> None:
    # OpenSSL's first DTLS retransmission waits 1 s of real time; its clock cannot be
    # faked, so this test takes that second.
    client, server = endpoints()
    client.start()
    hello = client.datagrams_to_send()  # lost
    timeout = client.get_timeout()
    assert timeout is not None
    time.sleep(timeout + 0.01)
    client.handle_timeout()
    again = client.datagrams_to_send()
    assert [len(d) for d in again] == [len(d) for d in hello]
    for datagram in again:
        server.receive(datagram)
    for _ in range(4):
        transfer(server, client)
        transfer(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    assert_keys_interoperate(client.srtp, server.srtp)


def test_repeated_final_flight_after_connecting_is_harmless() -> None:
    client, server = endpoints()
    flights = handshake(client, server)
    for datagram in flights[2]:  # the client's Certificate ... Finished flight, again
        server.receive(datagram)
    for datagram in server.datagrams_to_send():
        client.receive(datagram)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    assert_keys_interoperate(client.srtp, server.srtp)


def test_close_notify_closes_the_peer_which_answers() -> None:
    client, server = endpoints()
    handshake(client, server)
    client.close()
    assert client.state is DtlsState.CLOSED
    notify = transfer(client, server)
    assert len(notify) == 1
    assert notify[0][0] == 21  # alert
    assert server.state is DtlsState.CLOSED
    assert server.failure_reason is None
    assert len(transfer(server, client)) == 1  # its own close_notify, ignored by a closed client
    assert client.state is DtlsState.CLOSED
    assert client.srtp is not None  # in-flight packets may still need the keys
    client.close()
    assert client.datagrams_to_send() == []


def test_close_while_connecting_sends_nothing() -> None:
    client, _server = endpoints()
    client.start()
    client.datagrams_to_send()
    client.close()
    assert client.state is DtlsState.CLOSED
    assert client.datagrams_to_send() == []
    assert client.get_timeout() is None


def record(body: bytes, content_type: int = 22) -> bytes:
    """One DTLS 1.2 record around ``body`` (RFC 6347 §4.1)."""
    return bytes([content_type, 0xFE, 0xFD]) + bytes(8) + len(body).to_bytes(2) + body


class FloodingConnection:
    """Stands in for pyOpenSSL: its outgoing BIO holds ``output``, handed out in reads."""

    def __init__(self, output: bytes) -> None:
        self.output = output

    def do_handshake(self) -> None:
        raise SSL.WantReadError()

    def bio_read(self, size: int) -> bytes:
        if not self.output:
            raise SSL.WantReadError()
        chunk, self.output = self.output[:size], self.output[size:]
        return chunk


def test_records_are_packed_into_datagrams_without_splitting_one() -> None:
    records = [record(bytes([n]) * (40 + 7 * n)) for n in range(60)]
    blob = b"".join(records)
    client = DtlsSrtpEndpoint(CLIENT_CERT, DtlsRole.CLIENT, [SERVER_CERT.fingerprint])
    client._connection = FloodingConnection(blob)  # type: ignore[assignment]
    client.start()
    datagrams = client.datagrams_to_send()
    assert b"".join(datagrams) == blob
    assert all(len(datagram) <= DTLS_MTU for datagram in datagrams)
    boundaries = {sum(map(len, records[:n])) for n in range(len(records) + 1)}
    offset = 0
    for datagram in datagrams:
        offset += len(datagram)
        assert offset in boundaries


def test_pending_output_is_capped_when_nobody_drains() -> None:
    # OpenSSL never floods us, but a peer provoking flight after flight into a shell
    # that stopped draining must not grow memory without bound.
    flood = record(bytes(1100)) * (4 * MAX_PENDING_DATAGRAMS) + bytes(70000)
    client = DtlsSrtpEndpoint(CLIENT_CERT, DtlsRole.CLIENT, [SERVER_CERT.fingerprint])
    connection = FloodingConnection(flood)
    client._connection = connection  # type: ignore[assignment]
    client.start()
    assert connection.output == b""  # read out, not left to pile up in the BIO
    assert len(client.datagrams_to_send()) == MAX_PENDING_DATAGRAMS


# -- garbage and fuzz ---------------------------------------------------------------------

DTLS_HEADER = st.builds(
    lambda content, epoch, length, body: (
        bytes([content, 0xFE, 0xFD]) + epoch.to_bytes(2) + bytes(6) + length.to_bytes(2) + body
    ),
    st.sampled_from([20, 21, 22, 23, 24, 25]),
    st.integers(0, 2),
    st.integers(0, 0xFFFF),
    st.binary(max_size=300),
)
DATAGRAMS = st.one_of(st.binary(max_size=400), DTLS_HEADER)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x00\x00",  # STUN
        b"\x80\x00" + bytes(20),  # RTP
        b"\x16" * 50,
        b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\x00\x20" + bytes(32),
        b"\x16\xfe\xfd" + bytes(MAX_DATAGRAM_SIZE),
    ],
    ids=["empty", "stun", "rtp", "bytes", "app-data", "oversized"],
)
def test_garbage_is_ignored_and_the_handshake_still_completes(data: bytes) -> None:
    client, server = endpoints()
    server.receive(data)
    assert server.state is DtlsState.CONNECTING
    assert server.datagrams_to_send() == []
    handshake(client, server)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)
    client.receive(data)
    server.receive(data)
    assert (client.state, server.state) == (DtlsState.CONNECTED, DtlsState.CONNECTED)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x15\xfe\xfd\x00\x00" + bytes(6) + b"\x00\x02\x02\x28", "handshake failure"),
        (b"\x16\xfe\xfd" + bytes(8) + b"\x00\x05hello", "unexpected message"),
    ],
    ids=["fatal-alert", "bad-handshake-message"],
)
def test_fatal_input_during_handshake_fails_with_reason(data: bytes, reason: str) -> None:
    # Before the handshake ends nothing is authenticated: a fatal alert or a broken
    # handshake message ends the attempt (the relay only lets ICE-checked sources in).
    client, server = endpoints()
    server.receive(data)
    assert server.state is DtlsState.FAILED
    assert server.failure_reason is not None
    assert reason in server.failure_reason
    assert all(datagram[0] == 21 for datagram in server.datagrams_to_send())  # an alert, if any
    client.start()
    transfer(client, server)  # a failed endpoint ignores everything
    assert server.datagrams_to_send() == []
    assert server.get_timeout() is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DATAGRAMS, max_size=4))
def test_fuzz_receive_never_raises(datagrams: list[bytes]) -> None:
    client, server = endpoints()
    client.start()
    hello = client.datagrams_to_send()
    for datagram in datagrams:
        server.receive(datagram)
        client.receive(datagram)
    for datagram in hello:
        server.receive(datagram)
    for datagram in datagrams:
        server.receive(datagram)
    assert len(server.datagrams_to_send()) <= MAX_PENDING_DATAGRAMS
    client.get_timeout()
    client.handle_timeout()


@pytest.fixture(scope="module")
def connected() -> tuple[DtlsSrtpEndpoint, DtlsSrtpEndpoint]:
    client, server = endpoints()
    handshake(client, server)
    return client, server


@settings(max_examples=300)
@given(st.lists(DATAGRAMS, max_size=4))
def test_fuzz_receive_when_connected_never_raises(
    connected: tuple[DtlsSrtpEndpoint, DtlsSrtpEndpoint], datagrams: list[bytes]
) -> None:
    client, server = connected
    assert server.state is DtlsState.CONNECTED
    for datagram in datagrams:
        client.receive(datagram)
        server.receive(datagram)
    assert server.state is DtlsState.CONNECTED  # epoch-0 junk cannot end it
    client.datagrams_to_send()
    server.datagrams_to_send()
