"""media.srtp: SDES- and DTLS-keyed contexts, failures, and pylibsrtp as the far peer.

A leg's peer is someone else's SRTP stack (a SIP trunk, a browser); pylibsrtp used
directly, with keys split by hand, stands in for it.
"""

from __future__ import annotations

import pylibsrtp
import pytest

from media import srtp
from media.srtp import DTLS_PROFILES, SUITES, SrtpContext, SrtpError

SUITE_NAMES = sorted(SUITES)


def key(suite: str, fill: int) -> bytes:
    """A master key and salt of ``suite``'s length, all bytes ``fill``."""
    return bytes([fill]) * SUITES[suite].master_length


def rtp(seq: int, ssrc: int = 0x11223344, size: int = 172) -> bytes:
    """A PCMU packet: 12-byte header (V=2, PT 0) and ``size - 12`` bytes of payload."""
    header = bytes([0x80, 0x00]) + seq.to_bytes(2) + (seq * 160).to_bytes(4) + ssrc.to_bytes(4)
    return header + bytes(i & 0xFF for i in range(size - 12))


def rtcp_rr(ssrc: int = 0x11223344) -> bytes:
    """A receiver report with one report block (RFC 3550 §6.4.2): 32 bytes."""
    block = (0x55667788).to_bytes(4) + bytes(20)
    return bytes([0x81, 201]) + (7).to_bytes(2) + ssrc.to_bytes(4) + block


def pair(suite: str) -> tuple[SrtpContext, SrtpContext]:
    """Two ends keyed SDES-style: each one's send key is the other's receive key."""
    a_key, b_key = key(suite, 0xA5), key(suite, 0x5A)
    return SrtpContext(suite, a_key, b_key), SrtpContext(suite, b_key, a_key)


def peer_sessions(suite: str, tx_key: bytes, rx_key: bytes) -> tuple[pylibsrtp.Session, ...]:
    """A far end built on pylibsrtp directly: (its sender, its receiver)."""
    profile = SUITES[suite].profile
    tx = pylibsrtp.Policy(tx_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    rx = pylibsrtp.Policy(rx_key, pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    return pylibsrtp.Session(tx), pylibsrtp.Session(rx)


def test_suites_cover_the_sdes_and_dtls_names() -> None:
    assert set(SUITES) == {
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AEAD_AES_128_GCM",
        "AEAD_AES_256_GCM",
    }
    assert {suite.name for suite in DTLS_PROFILES.values()} == set(SUITES)
    assert SUITES["AES_CM_128_HMAC_SHA1_80"].master_length == 30  # RFC 4568 §6.1
    assert SUITES["AEAD_AES_128_GCM"].master_length == 28  # RFC 7714 §12
    assert SUITES["AEAD_AES_256_GCM"].master_length == 44


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_sdes_keys_both_directions(suite: str) -> None:
    a, b = pair(suite)
    for seq in range(1, 5):
        packet = rtp(seq)
        protected = a.protect(packet)
        assert protected != packet
        assert len(protected) > len(packet)
        assert b.unprotect(protected) == packet
        back = rtp(seq, ssrc=0x99887766)
        assert a.unprotect(b.protect(back)) == back


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_rtcp_both_directions(suite: str) -> None:
    a, b = pair(suite)
    report = rtcp_rr()
    assert b.unprotect_rtcp(a.protect_rtcp(report)) == report
    assert a.unprotect_rtcp(b.protect_rtcp(report)) == report
    assert b.unprotect_rtcp(a.protect_rtcp(report)) == report  # the SRTCP index advanced


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_tampered_packet_fails_authentication(suite: str) -> None:
    a, b = pair(suite)
    protected = bytearray(a.protect(rtp(1)))
    protected[20] ^= 0x01
    with pytest.raises(SrtpError):
        b.unprotect(bytes(protected))
    report = bytearray(a.protect_rtcp(rtcp_rr()))
    report[10] ^= 0x80
    with pytest.raises(SrtpError):
        b.unprotect_rtcp(bytes(report))


def test_replayed_packet_is_refused() -> None:
    a, b = pair("AES_CM_128_HMAC_SHA1_80")
    protected = a.protect(rtp(7))
    b.unprotect(protected)
    with pytest.raises(SrtpError, match="replay"):
        b.unprotect(protected)
    report = a.protect_rtcp(rtcp_rr())
    b.unprotect_rtcp(report)
    with pytest.raises(SrtpError, match="replay"):
        b.unprotect_rtcp(report)


def test_wrong_key_fails_authentication() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    sender = SrtpContext(suite, key(suite, 1), key(suite, 2))
    receiver = SrtpContext(suite, key(suite, 2), key(suite, 3))
    with pytest.raises(SrtpError, match="authentication"):
        receiver.unprotect(sender.protect(rtp(1)))


def test_relay_may_send_the_same_packet_twice() -> None:
    # allow_repeat_tx: forwarding a retransmission must not make libsrtp refuse it.
    a, b = pair("AES_CM_128_HMAC_SHA1_80")
    packet = rtp(3)
    first, second = a.protect(packet), a.protect(packet)
    assert first == second
    assert b.unprotect(first) == packet


@pytest.mark.parametrize("data", [b"", b"\x80", rtp(1)[:11], bytes(1600)])
def test_junk_raises_only_srtp_error(data: bytes) -> None:
    _a, b = pair("AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(SrtpError):
        b.unprotect(data)
    with pytest.raises(SrtpError):
        b.unprotect_rtcp(data)


def test_longest_packets_fit_and_longer_raise_srtp_error() -> None:
    a, b = pair("AES_CM_128_HMAC_SHA1_80")
    longest = rtp(1, size=1500 - pylibsrtp.SRTP_MAX_TRAILER_LEN)
    assert b.unprotect(a.protect(longest)) == longest
    with pytest.raises(SrtpError, match="too long"):
        a.protect(longest + b"x")
    with pytest.raises(SrtpError, match="too long"):
        a.protect_rtcp(rtcp_rr() + bytes(1500))


def test_bad_keys_and_suites_are_value_errors() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    with pytest.raises(ValueError, match="30 bytes"):
        SrtpContext(suite, bytes(29), key(suite, 1))
    with pytest.raises(ValueError, match="30 bytes"):
        SrtpContext(suite, key(suite, 1), bytes(31))
    with pytest.raises(ValueError, match="unsupported"):
        SrtpContext("F8_128_HMAC_SHA1_80", bytes(30), bytes(30))
    with pytest.raises(ValueError, match="material"):
        SrtpContext.from_dtls("SRTP_AES128_CM_SHA1_80", bytes(59), is_client=True)


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_interop_with_pylibsrtp_peer(suite: str) -> None:
    ours_tx, ours_rx = key(suite, 0x11), key(suite, 0x22)
    ours = SrtpContext(suite, ours_tx, ours_rx)
    peer_tx, peer_rx = peer_sessions(suite, tx_key=ours_rx, rx_key=ours_tx)
    for seq in range(100, 103):
        packet = rtp(seq)
        assert peer_rx.unprotect(ours.protect(packet)) == packet
        assert ours.unprotect(peer_tx.protect(packet)) == packet
    report = rtcp_rr()
    assert peer_rx.unprotect_rtcp(ours.protect_rtcp(report)) == report
    assert ours.unprotect_rtcp(peer_tx.protect_rtcp(report)) == report


@pytest.mark.parametrize("profile", sorted(DTLS_PROFILES))
def test_from_dtls_splits_keys_as_rfc_5764(profile: str) -> None:
    suite = DTLS_PROFILES[profile]
    k, s = suite.key_length, suite.salt_length
    client_key, server_key = bytes([1]) * k, bytes([2]) * k
    client_salt, server_salt = bytes([3]) * s, bytes([4]) * s
    material = client_key + server_key + client_salt + server_salt  # RFC 5764 §4.2

    client = SrtpContext.from_dtls(profile, material, is_client=True)
    server = SrtpContext.from_dtls(profile, material, is_client=False)
    packet = rtp(1)
    assert server.unprotect(client.protect(packet)) == packet
    assert client.unprotect(server.protect(packet)) == packet

    # The client writes with client_write_key and salt; check against a peer keyed
    # by hand, so a swap in both ends at once cannot pass unnoticed.
    peer_tx, peer_rx = peer_sessions(
        suite.name, tx_key=server_key + server_salt, rx_key=client_key + client_salt
    )
    assert peer_rx.unprotect(client.protect(rtp(2))) == rtp(2)
    assert client.unprotect(peer_tx.protect(rtp(3))) == rtp(3)


def test_from_dtls_accepts_the_sdes_name_too() -> None:
    material = bytes(range(60))
    context = SrtpContext.from_dtls("AES_CM_128_HMAC_SHA1_80", material, is_client=True)
    assert context.suite is SUITES["AES_CM_128_HMAC_SHA1_80"]


def test_the_fast_path_is_in_use_and_writes_what_pylibsrtp_writes() -> None:
    """The relay's protect goes straight to libsrtp (see media.srtp._processor); its
    output must be byte for byte what pylibsrtp's own Session makes with the key."""
    import os
    import struct

    import pylibsrtp

    key = os.urandom(30)
    context = SrtpContext("AES_CM_128_HMAC_SHA1_80", key, os.urandom(30))
    assert context.protect.__name__ == "process", "fell back to pylibsrtp's method"
    policy = pylibsrtp.Policy(
        key=key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    reference = pylibsrtp.Session(policy)
    for seq in range(1, 50):
        packet = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 42) + bytes(range(160))
        assert context.protect(packet) == reference.protect(packet)


def test_without_pylibsrtp_internals_its_methods_serve_with_the_same_errors() -> None:
    """Should a pylibsrtp release move what the fast path reads, the context falls back
    to pylibsrtp's public methods, and still raises SrtpError alone."""
    from typing import cast

    from media.srtp import _processor

    class PublicOnly:
        """A Session seen through its public methods only."""

        def __init__(self, session: pylibsrtp.Session) -> None:
            self.protect = session.protect
            self.unprotect = session.unprotect

    suite = "AES_CM_128_HMAC_SHA1_80"
    sender, receiver = peer_sessions(suite, key(suite, 1), key(suite, 1))
    protect = _processor(cast(pylibsrtp.Session, PublicOnly(sender)), "protect", 0)
    unprotect = _processor(cast(pylibsrtp.Session, PublicOnly(receiver)), "unprotect", 0)
    assert protect.__name__ != "process"
    assert unprotect(protect(rtp(1))) == rtp(1)
    with pytest.raises(SrtpError, match="authentication"):
        unprotect(rtp(2))
    with pytest.raises(SrtpError, match="too long"):
        protect(rtp(1, size=1600))


def test_libsrtp_sessions_are_offered_to_the_fast_path_only_with_its_functions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = bytes(range(30))
    if srtp.libsrtp_functions() is not None:
        sessions = SrtpContext("AES_CM_128_HMAC_SHA1_80", key, key).sessions
        assert sessions is not None and all(sessions)
    # A pylibsrtp whose functions do not have the signature the fast path calls:
    # no addresses, so the relay's Python keeps these packets.
    monkeypatch.setattr(srtp, "libsrtp_functions", lambda: None)
    assert SrtpContext("AES_CM_128_HMAC_SHA1_80", key, key).sessions is None
