"""The demo PBX's call handling, bytes in and bytes out (Wedge played by the test)."""

from __future__ import annotations

import hashlib
import re

import pytest

from gateway.demo.media_requests import CloseMedia, KeyPressed, OpenMedia, UpdateMedia
from gateway.demo.settings import PbxSettings
from gateway.sip import Request, Response
from sdp import parse
from tests.unit.gateway.demo.fake_wedge import (
    RELAY_OFFER,
    Net,
    ack,
    contact,
    invite,
    message,
    path,
    register,
    reply,
    requests,
    responses,
    the_request,
    the_response,
)

pytestmark = pytest.mark.unit

BOB_SDP = (
    b"v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40010 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n"
)
"""bob's answer as Wedge's relay writes it for the PBX leg."""
RELAY_OFFER_HELD = RELAY_OFFER.replace(b"a=sendrecv", b"a=sendonly")
RELAY_OFFER_OPUS = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
)


def registered(net: Net, *users: str) -> None:
    for user in users:
        ok = the_response(net.send(register(user)), 200)
        assert ok.contacts[0].uri_text == contact(user)


def warning(response: Response) -> str:
    value = response.headers.get("warning") or ""
    match = re.fullmatch(r'399 wedge-demo "(.*)"', value)
    assert match, value
    return match[1]


# -- registrations ----------------------------------------------------------------------


def test_register_echoes_path_and_caps_expiry() -> None:
    net = Net()
    ok = the_response(net.send(register("alice", expires=7200)), 200)
    assert ok.headers.get("contact") == f"<{contact('alice')}>;expires=600"
    assert ok.headers.get("path") == path("alice")
    binding = net.pbx.registrar.lookup("alice", net.now)
    assert binding is not None and binding.path == (path("alice"),)
    # A refresh (same Call-ID, higher CSeq), then leaving.
    assert responses(net.send(register("alice", cseq=2)), 200)
    ok = the_response(net.send(register("alice", cseq=3, expires=0)), 200)
    assert "contact" not in ok.headers
    assert net.pbx.registrar.lookup("alice", net.now) is None


@pytest.mark.parametrize(("name", "reason"), [("600", "Reserved Name"), ("x" * 33, "Invalid Name")])
def test_register_refuses_unusable_names(name: str, reason: str) -> None:
    refused = the_response(Net().send(register(name)), 403)
    assert refused.reason == reason


def test_second_registration_while_the_first_browser_answers() -> None:
    net = Net()
    registered(net, "alice")
    out = net.send(register("alice", call_id="reg-other", contact_uri="sip:other@o.invalid"))
    assert not responses(out)
    probe = the_request(out, "OPTIONS")
    assert probe.uri == contact("alice")
    assert probe.headers.get_all("route") == [path("alice")]
    refused = the_response(net.send(reply(probe, 200)), 403)
    assert refused.reason == "Name In Use"
    assert "already registered from another browser" in warning(refused)
    binding = net.pbx.registrar.lookup("alice", net.now)
    assert binding is not None and binding.contact == contact("alice")


@pytest.mark.parametrize("answer", [430, 408, None])
def test_second_registration_takes_over_from_a_gone_browser(answer: int | None) -> None:
    net = Net()
    registered(net, "alice")
    probe = the_request(
        net.send(register("alice", call_id="reg-new", contact_uri="sip:n@n.invalid")), "OPTIONS"
    )
    out = net.send(reply(probe, answer, "Flow Failed")) if answer else net.run(2.5)
    assert responses(out, 200), out
    binding = net.pbx.registrar.lookup("alice", net.now)
    assert binding is not None and binding.contact == "sip:n@n.invalid"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _digest(user: str, password: str, challenge: str, uri: str, method: str) -> str:
    """What a client answers to ``challenge`` (RFC 2617, MD5, qop=auth)."""
    nonce = re.search(r'nonce="([^"]+)"', challenge)[1]  # type: ignore[index]
    md5 = _md5
    ha1, ha2 = md5(f"{user}:wedge-demo:{password}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="wedge-demo", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, cnonce="c0ffee", qop=auth, nc=00000001'
    )


def test_users_file_means_digest_passwords() -> None:
    net = Net(PbxSettings(users={"alice": "wonderland"}))
    challenge = the_response(net.send(register("alice")), 401).headers.get("www-authenticate")
    assert challenge is not None and 'qop="auth"' in challenge
    wrong = _digest("alice", "rabbit", challenge, "sip:127.0.0.1:5090", "REGISTER")
    refused = the_response(
        net.send(register("alice", cseq=2, headers=(f"Authorization: {wrong}",))), 403
    )
    assert refused.reason == "Wrong Password"
    right = _digest("alice", "wonderland", challenge, "sip:127.0.0.1:5090", "REGISTER")
    assert responses(net.send(register("alice", cseq=3, headers=(f"Authorization: {right}",))), 200)
    stranger = _digest("mallory", "x", challenge, "sip:127.0.0.1:5090", "REGISTER")
    unknown = the_response(
        net.send(register("mallory", headers=(f"Authorization: {stranger}",))), 404
    )
    assert "no user mallory" in warning(unknown)
    # Calls need the password too (407), then go through.
    proxy_challenge = the_response(net.send(invite("alice", "600")), 407)
    value = proxy_challenge.headers.get("proxy-authenticate") or ""
    auth = _digest("alice", "wonderland", value, "sip:600@127.0.0.1:5090", "INVITE")
    net.send(
        invite("alice", "600", cseq=2, branch="inv2", headers=(f"Proxy-Authorization: {auth}",))
    )
    assert isinstance(net.media()[0], OpenMedia)


# -- service extensions -----------------------------------------------------------------


def test_echo_call_answers_with_plain_rtp() -> None:
    net = Net()
    out = net.send(invite("alice", "600"))
    assert [r.status for r in responses(out)] == [100]
    [opened] = net.media()
    assert isinstance(opened, OpenMedia) and opened.extension == "600"
    assert opened.offer.address == ("127.0.0.1", 40000)
    assert (opened.offer.media.law, opened.offer.media.payload_type, opened.offer.media.events) == (
        "PCMU",
        0,
        126,
    )
    net.pbx.media_opened("call-1", ("127.0.0.1", 30000), net.now)
    ok = the_response(net.out(), 200)
    assert ok.headers.get("contact") == "<sip:pbx@127.0.0.1:5090>"
    answer = parse(ok.body)
    [audio] = answer.media
    assert (audio.port, audio.proto, audio.formats) == (30000, "RTP/AVP", ["0", "126"])
    assert answer.connection is not None and answer.connection.address == "127.0.0.1"
    assert audio.direction is not None and audio.direction.value == "sendrecv"
    to_tag = ok.to.tag
    assert to_tag
    # The 2xx goes again until the ACK; then only the keep-alive remains.
    assert responses(net.tick(0.5), 200)
    assert not net.send(ack("call-1", "alice", "600", to_tag))
    assert not responses(net.run(3.0))
    # Hold: a sendonly offer gets a recvonly answer, and the player stops sending.
    out = net.send(
        invite("alice", "600", cseq=2, branch="inv2", to_tag=to_tag, body=RELAY_OFFER_HELD)
    )
    reanswer = the_response(out, 200)
    assert b"a=recvonly" in reanswer.body and b"o=wedge-demo 1 2 " in reanswer.body
    [update] = net.media()
    assert isinstance(update, UpdateMedia) and not update.offer.direction.receives
    net.send(ack("call-1", "alice", "600", to_tag, cseq=2, branch="ack2"))
    bye = message(
        "BYE",
        "sip:pbx@127.0.0.1:5090",
        user="alice",
        to="600",
        call_id="call-1",
        cseq=3,
        branch="bye1",
        from_tag="alice-tag",
        to_tag=to_tag,
    )
    assert the_response(net.send(bye), 200)
    assert net.media() == [CloseMedia("call-1")]
    assert net.pbx.calls() == 0


def test_dtmf_by_info_and_the_readback_info() -> None:
    net = Net()
    net.send(invite("alice", "602"))
    net.media()
    net.pbx.media_opened("call-1", ("127.0.0.1", 30000), net.now)
    to_tag = the_response(net.out(), 200).to.tag or ""
    net.send(ack("call-1", "alice", "602", to_tag))
    info = message(
        "INFO",
        "sip:pbx@127.0.0.1:5090",
        user="alice",
        to="602",
        call_id="call-1",
        cseq=2,
        branch="info1",
        from_tag="alice-tag",
        to_tag=to_tag,
        headers=("Content-Type: application/dtmf-relay",),
    ).replace(
        b"Content-Length: 0\r\n\r\n", b"Content-Length: 24\r\n\r\nSignal=7\r\nDuration=160\r\n"
    )
    assert the_response(net.send(info), 200)
    assert net.media() == [KeyPressed("call-1", "7")]
    net.pbx.read_back("call-1", "7", net.now)
    sent = the_request(net.out(), "INFO")
    assert sent.body == b"7" and sent.headers.get("content-type") == "text/plain"
    assert sent.uri == f"{contact('alice')};ob"
    assert sent.headers.get_all("route") == [
        "<sip:rr-udp@127.0.0.1:5070;lr;r2=on>",
        "<sip:rr-alice@127.0.0.1:8443;transport=ws;lr;r2=on>",
    ]


@pytest.mark.parametrize(
    ("callee", "status", "text"),
    [
        ("699", 404, "there is no extension 699: try 600, 601 or 602"),
        ("carol", 404, "nobody called carol is registered"),
        ("alice", 486, "that is you"),
    ],
)
def test_calls_that_cannot_be_made(callee: str, status: int, text: str) -> None:
    net = Net()
    registered(net, "alice")
    out = net.send(invite("alice", callee))
    refused = the_response(out, status)
    assert text in warning(refused)
    assert net.pbx.calls() == 0


def test_an_offer_without_g711_gets_488() -> None:
    net = Net()
    refused = the_response(net.send(invite("alice", "600", body=RELAY_OFFER_OPUS)), 488)
    assert "no usable audio" in warning(refused)


# -- calls between browsers -------------------------------------------------------------


def ring_bob(net: Net) -> Request:
    """alice calls bob: the PBX's INVITE to bob's browser (along his Path)."""
    registered(net, "alice", "bob")
    out = net.send(invite("alice", "bob"))
    assert [r.status for r in responses(out)] == [100]
    outgoing = the_request(out, "INVITE")
    assert outgoing.uri == contact("bob")
    assert outgoing.headers.get_all("route") == [path("bob")]
    assert outgoing.call_id != "call-1", "a new leg has a Call-ID of its own"
    assert outgoing.body == RELAY_OFFER
    assert (outgoing.headers.get("from") or "").startswith('"alice" <sip:alice@')
    assert outgoing.headers.get("to") == "<sip:bob@127.0.0.1:5090>"
    return outgoing


def test_alice_calls_bob_and_hangs_up() -> None:
    net = Net()
    outgoing = ring_bob(net)
    ringing = the_response(net.send(reply(outgoing, 180, "Ringing")), 180)
    alice_tag = ringing.to.tag
    assert alice_tag
    out = net.send(reply(outgoing, 200, body=BOB_SDP))
    acked = the_request(out, "ACK")
    assert acked.call_id == outgoing.call_id and acked.cseq.number == 1
    # The callee's route set, from its 2xx's Record-Route reversed.
    assert acked.headers.get_all("route") == [
        "<sip:rr-udp@127.0.0.1:5070;lr;r2=on>",
        "<sip:rr-callee@127.0.0.1:8443;transport=ws;lr;r2=on>",
    ]
    ok = the_response(out, 200)
    assert ok.body == BOB_SDP and ok.to.tag == alice_tag
    # A retransmitted 2xx from bob is ACKed again, and nothing else happens.
    again = net.send(reply(outgoing, 200, body=BOB_SDP))
    assert [m.method for m in requests(again, "ACK")] == ["ACK"] and not responses(again)
    net.send(ack("call-1", "alice", "bob", alice_tag))
    bye = message(
        "BYE",
        "sip:pbx@127.0.0.1:5090",
        user="alice",
        to="bob",
        call_id="call-1",
        cseq=2,
        branch="bye1",
        from_tag="alice-tag",
        to_tag=alice_tag,
    )
    out = net.send(bye)
    assert the_response(out, 200)
    to_bob = the_request(out, "BYE")
    assert to_bob.call_id == outgoing.call_id and to_bob.cseq.number == 2
    assert to_bob.headers.get("reason") == 'SIP;cause=200;text="alice hung up"'
    assert net.pbx.calls() == 0


def test_reinvite_crosses_over() -> None:
    net = Net()
    outgoing = ring_bob(net)
    out = net.send(reply(outgoing, 200, body=BOB_SDP))
    alice_tag = the_response(out, 200).to.tag or ""
    net.send(ack("call-1", "alice", "bob", alice_tag))
    hold = invite("alice", "bob", cseq=2, branch="inv2", to_tag=alice_tag, body=RELAY_OFFER_HELD)
    relayed = the_request(net.send(hold), "INVITE")
    assert relayed.call_id == outgoing.call_id and relayed.body == RELAY_OFFER_HELD
    answered = BOB_SDP + b"a=recvonly\r\n"
    out = net.send(reply(relayed, 200, body=answered))
    assert the_request(out, "ACK").cseq.number == relayed.cseq.number
    assert the_response(out, 200).body == answered


def test_cancel_while_ringing() -> None:
    net = Net()
    outgoing = ring_bob(net)
    net.send(reply(outgoing, 180, "Ringing"))
    cancel = message(
        "CANCEL",
        "sip:bob@127.0.0.1:5090",
        user="alice",
        to="bob",
        call_id="call-1",
        cseq=1,
        branch="inv1",
        from_tag="alice-tag",
    )
    out = net.send(cancel)
    assert {r.status for r in responses(out)} == {200, 487}
    to_bob = the_request(out, "CANCEL")
    assert to_bob.call_id == outgoing.call_id
    assert to_bob.headers.values("via")[0] == outgoing.headers.values("via")[0]
    # bob's browser answers the CANCEL and 487s its INVITE; nothing goes to alice.
    out = net.send(reply(outgoing, 487, "Request Terminated"))
    assert not responses(out)
    assert net.pbx.calls() == 0


@pytest.mark.parametrize(
    ("status", "expected", "text"),
    [
        (486, 486, "bob is busy"),
        (603, 603, "bob declined the call"),
        (430, 480, "bob's browser is not reachable any more"),
    ],
)
def test_callee_refusals_reach_the_caller(status: int, expected: int, text: str) -> None:
    net = Net()
    outgoing = ring_bob(net)
    out = net.send(reply(outgoing, status, "No"))
    assert text in warning(the_response(out, expected))
    gone = net.pbx.registrar.lookup("bob", net.now) is None
    assert gone == (status == 430), "only a dead flow costs bob his registration"


def test_ring_timeout_cancels_and_answers_480() -> None:
    net = Net(PbxSettings(ring_timeout=10.0))
    outgoing = ring_bob(net)
    net.send(reply(outgoing, 180, "Ringing"))
    out = net.run(10.2)
    assert "bob did not answer" in warning(the_response(out, 480))
    assert the_request(out, "CANCEL").call_id == outgoing.call_id


def test_a_browser_that_vanishes_mid_call_is_noticed() -> None:
    """The keep-alive OPTIONS to alice fails (her WebSocket is gone: Wedge says 430):
    both legs get a BYE, bob's with the reason, and alice's registration goes."""
    net = Net(PbxSettings(keepalive=5.0))
    outgoing = ring_bob(net)
    alice_tag = the_response(net.send(reply(outgoing, 200, body=BOB_SDP)), 200).to.tag or ""
    net.send(ack("call-1", "alice", "bob", alice_tag))
    probes = requests(net.run(5.0), "OPTIONS")
    assert {probe.call_id for probe in probes} == {"call-1", outgoing.call_id}
    to_alice = next(probe for probe in probes if probe.call_id == "call-1")
    to_bob = next(probe for probe in probes if probe.call_id != "call-1")
    net.send(reply(to_bob, 200))
    out = net.send(reply(to_alice, 430, "Flow Failed", tag=alice_tag))
    byes = {bye.call_id: bye for bye in requests(out, "BYE")}
    assert set(byes) == {"call-1", outgoing.call_id}
    assert byes[outgoing.call_id].headers.get("reason") == (
        'SIP;cause=200;text="alice\'s browser went away"'
    )
    check = the_request(out, "OPTIONS")  # out of dialog, along alice's Path
    assert check.uri == contact("alice") and check.headers.get_all("route") == [path("alice")]
    net.send(reply(check, 430, "Flow Failed"))
    assert net.pbx.registrar.lookup("alice", net.now) is None
    assert net.pbx.calls() == 0


def test_a_2xx_never_acked_ends_the_call() -> None:
    net = Net()
    net.send(invite("alice", "600"))
    net.media()
    net.pbx.media_opened("call-1", ("127.0.0.1", 30000), net.now)
    assert responses(net.out(), 200)
    out = net.run(40.0)
    assert len(responses(out, 200)) >= 5  # T1, 2T1, 4T1, T2, T2 ... (RFC 3261 §13.3.1.4)
    assert requests(out, "BYE")
    assert CloseMedia("call-1") in net.media()
