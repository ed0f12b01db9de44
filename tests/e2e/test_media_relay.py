"""The relay with SIP peers only: an SDES-SRTP trunk (built-in relay and rtpengine, see
``media_backend``), and the built-in relay's media timeout.

- A TLS trunk peer (this test, with an ``ssl`` SIP client and pylibsrtp, as a
  carrier's SBC would be) offers RTP/SAVP with an ``a=crypto`` key; the PBX (SIPp,
  ``-rtp_echo``) gets plain RTP/AVP. The peer sends SRTP to the relay and decrypts
  what comes back: its own payloads, so the relay decrypted toward the PBX and
  encrypted toward the trunk with the keys the SDP carried.
- Two SIPp phones set up a call and send no media: after the relay's timeout,
  Wedge sends a BYE to each (RFC 3326 Reason: media timeout).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
from typing import Any

import pytest

from media.srtp import SrtpContext
from sdp.attributes import CRYPTO
from sdp.model import parse
from tests.e2e.conftest import (
    ListenerSpec,
    Pki,
    Policy,
    SippFactory,
    WedgeFactory,
    free_port,
)
from tests.e2e.rtpengine import media_backend_fixture, rtpengine_fixture  # noqa: F401
from tests.e2e.siptls import UserAgent, connect_tls

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
SUITE = "AES_CM_128_HMAC_SHA1_80"
PACKETS = 50


def media_ports() -> str:
    first = free_port(LOCAL)
    first -= first % 2
    return f"{first}-{first + 99}"


def _rtp(seq: int, ssrc: int = 0x5EED) -> bytes:
    payload = bytes((seq + i) % 256 for i in range(160))  # each packet its own bytes
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


class RtpPeer(asyncio.DatagramProtocol):
    """The trunk's media socket: whatever arrives is queued."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def test_sdes_trunk_talks_to_a_plain_rtp_pbx(
    sipp: SippFactory, wedge: WedgeFactory, pki: Pki, media_backend: dict[str, Any]
) -> None:
    pbx = sipp(
        "uas_echo.xml",
        transport="udp",
        local_port=free_port(LOCAL),
        extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL)), "-rtp_echo"],
    )
    tls, core = free_port(LOCAL), free_port(LOCAL)
    wedge(
        Policy(
            listeners=[
                ListenerSpec("trunk-side", "tls", LOCAL, tls),
                ListenerSpec("core", "udp", LOCAL, core),
            ],
            trunks=[
                {
                    "name": "pbx",
                    "uri": f"sip:{LOCAL}:{pbx.local_port}",
                    "listener": "core",
                    "codecs": ["PCMU"],  # the carrier's PCMA never reaches the PBX
                }
            ],
            routes=[{"name": "all", "to_trunk": "pbx"}],
            media=media_backend,
        )
    )
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(RtpPeer, local_addr=(LOCAL, 0))
    rtp_port = transport.get_extra_info("sockname")[1]
    our_key = os.urandom(30)
    offer = (
        "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/SAVP 8 0 101\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a=crypto:1 {SUITE} inline:{base64.b64encode(our_key).decode()}\r\n"
        "a=rtcp-mux\r\na=sendrecv\r\n"
    )
    channel = await connect_tls(LOCAL, tls, pki.ca)
    host, port = channel.local
    ua = UserAgent(channel, contact=f"sip:carrier@{host}:{port};transport=tls")
    try:
        async with asyncio.timeout(20):
            ok = await ua.call(f"sip:600@{LOCAL}:{tls}", sdp=offer)
            answer = parse(ok.body)
            media = answer.media[0]
            assert media.proto == "RTP/SAVP", ok.body
            [crypto] = media.get_all(CRYPTO)
            assert (crypto.tag, crypto.suite) == (1, SUITE), crypto
            srtp = SrtpContext(SUITE, our_key, crypto.keys[0].key_bytes())
            relay = (LOCAL, media.port)
            for seq in range(1, PACKETS + 1):
                transport.sendto(srtp.protect(_rtp(seq)), relay)
                await asyncio.sleep(0.02)
            echoed: set[int] = set()
            while len(echoed) < PACKETS * 0.9:
                packet = srtp.unprotect(await asyncio.wait_for(peer.received.get(), 2))
                seq = struct.unpack("!H", packet[2:4])[0]
                assert packet == _rtp(seq), f"packet {seq} changed on the way"
                echoed.add(seq)
            await ua.send(ua.in_dialog("BYE"))
            await ua.expect_response(200, "BYE")
    finally:
        transport.close()
        await channel.close()
    result = await asyncio.to_thread(pbx.wait)
    assert result.returncode == 0, result.describe()
    invite = result.first("received", method="INVITE").request.body.decode()
    assert re.search(r"^m=audio \d+ RTP/AVP 0 101\r?$", invite, re.M), invite
    assert "a=crypto" not in invite, invite


def test_media_timeout_ends_the_call_with_bye_to_both(
    sipp: SippFactory, wedge: WedgeFactory
) -> None:
    callee = sipp(
        "uas_silent.xml",
        transport="udp",
        local_port=free_port(LOCAL),
        extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL))],
    )
    core = free_port(LOCAL)
    wedge(
        Policy(
            listeners=[ListenerSpec("core", "udp", LOCAL, core)],
            trunks=[{"name": "pbx", "uri": f"sip:{LOCAL}:{callee.local_port}"}],
            routes=[{"name": "all", "to_trunk": "pbx"}],
            media={"relay": "builtin", "ports": media_ports(), "timeout": 2.0},
        )
    )
    caller = sipp(
        "uac_silent.xml",
        transport="udp",
        local_port=free_port(LOCAL),
        remote=f"{LOCAL}:{core}",
        extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL))],
    ).wait()
    assert caller.returncode == 0, caller.describe()
    answered = callee.wait()
    assert answered.returncode == 0, answered.describe()
    for side in (caller, answered):
        bye = side.first("received", method="BYE").request
        assert bye.headers.get("reason") == 'SIP;cause=408;text="Media Timeout"', bye.headers
    to_caller = caller.first("received", method="BYE").request
    invite = caller.first("sent", method="INVITE").request
    assert to_caller.from_.tag == answered.first("sent", status=200).response.to.tag
    assert to_caller.to.tag == invite.from_.tag


def test_relay_workers_carry_calls_in_their_own_processes(
    sipp: SippFactory, wedge: WedgeFactory
) -> None:
    """``[media] workers = 2``: calls are relayed by worker processes, and the media
    timeout still reaches the proxy from there."""
    callee = sipp(
        "uas_silent.xml",
        transport="udp",
        local_port=free_port(LOCAL),
        extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL))],
    )
    core = free_port(LOCAL)
    running = wedge(
        Policy(
            listeners=[ListenerSpec("core", "udp", LOCAL, core)],
            trunks=[{"name": "pbx", "uri": f"sip:{LOCAL}:{callee.local_port}"}],
            routes=[{"name": "all", "to_trunk": "pbx"}],
            media={"relay": "builtin", "ports": media_ports(), "timeout": 2.0, "workers": 2},
        )
    )
    caller = sipp(
        "uac_silent.xml",
        transport="udp",
        local_port=free_port(LOCAL),
        remote=f"{LOCAL}:{core}",
        extra=["-mi", LOCAL, "-mp", str(free_port(LOCAL))],
    ).wait()
    assert caller.returncode == 0, caller.describe()
    assert callee.wait().returncode == 0
    assert len(re.findall(r"media worker \d pid=\d+", running.stderr)) == 2, running.stderr
    offer = caller.first("received", status=200).response.body.decode()
    assert re.search(r"^m=audio \d+ RTP/AVP 0", offer, re.M), offer
