"""The per-call media glue: offer/answer classification and message order, pure."""

from __future__ import annotations

import pytest

from gateway.proxy.call import CallMedia, MediaJob, profile_for
from gateway.sip import Request, Response, parse_message
from media.control import MediaError
from sdp.rewrite import AVP, SAVP_SDES, WEBRTC
from tests.helpers.messages import SDP, answer, invite

pytestmark = pytest.mark.unit

CALL_ID = "3848276298220188511@192.0.2.10"
CALLER = "9fxced76sl"


def _invite(body: bytes = SDP) -> Request:
    message = parse_message(invite(body=body))
    assert isinstance(message, Request)
    return message


def _response(request: Request, status: int, body: str = "", tag: str = "pbx1") -> Response:
    reason = "OK" if status == 200 else "Progress"
    message = parse_message(answer(request, status, reason, to_tag=tag, body=body))
    assert isinstance(message, Response)
    return message


def _ack(body: bytes = b"") -> Request:
    headers = (
        "ACK sip:600@192.0.2.20:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack1\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
        "To: <sip:bob@biloxi.example.com>;tag=pbx1\r\n"
        f"Call-ID: {CALL_ID}\r\n"
        "CSeq: 1 ACK\r\n"
    )
    if body:
        headers += "Content-Type: application/sdp\r\n"
    message = parse_message(f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert isinstance(message, Request)
    return message


class Recorder:
    """What was sent, in order, and what failed."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.failed: list[tuple[str, MediaError]] = []

    def carry(self, media: CallMedia, name: str, message: Request | Response) -> None:
        media.carry(
            message,
            lambda: self.sent.append(name),
            lambda error: self.failed.append((name, error)),
        )


def _started() -> CallMedia:
    media = CallMedia()
    media.start(CALL_ID, CALLER, WEBRTC, AVP)
    return media


def _one(media: CallMedia) -> MediaJob:
    jobs = media.jobs()
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_profiles_follow_the_transport_unless_policy_names_one() -> None:
    assert profile_for("wss") is WEBRTC
    assert profile_for("ws") is WEBRTC
    assert profile_for("udp") is AVP
    assert profile_for("tls") is SAVP_SDES
    assert profile_for("udp", "savp-sdes") is SAVP_SDES


def test_a_call_without_media_state_passes_at_once() -> None:
    media, record = CallMedia(), Recorder()
    record.carry(media, "invite", _invite())
    assert record.sent == ["invite"]
    assert media.jobs() == []


def test_an_offer_waits_for_the_relay_and_later_messages_wait_behind_it() -> None:
    media, record = _started(), Recorder()
    request = _invite()
    record.carry(media, "invite", request)
    job = _one(media)
    assert (job.kind, job.sdp) == ("offer", SDP)
    assert job.negotiation is not None
    assert (job.negotiation.from_tag, job.negotiation.to_tag) == (CALLER, None)
    assert (job.negotiation.source, job.negotiation.destination) == (WEBRTC, AVP)
    record.carry(media, "trying", _response(request, 100))  # no SDP, but in line
    assert record.sent == []
    media.done(job.ticket, b"v=0\r\nrewritten\r\n")
    assert record.sent == ["invite", "trying"]
    assert request.body == b"v=0\r\nrewritten\r\n"
    assert request.headers.get("content-length") == str(len(request.body))


def test_the_answer_in_183_and_200_goes_to_the_relay_once() -> None:
    media, record = _started(), Recorder()
    request = _invite()
    record.carry(media, "invite", request)
    media.done(_one(media).ticket, b"offer-out")
    answer_sdp = SDP.decode().replace("192.0.2.10", "192.0.2.20")
    early = _response(request, 183, answer_sdp)
    record.carry(media, "183", early)
    job = _one(media)
    assert job.kind == "answer"
    assert job.negotiation is not None
    assert (job.negotiation.from_tag, job.negotiation.to_tag) == ("pbx1", CALLER)
    assert (job.negotiation.source, job.negotiation.destination) == (AVP, WEBRTC)
    media.done(job.ticket, b"answer-out")
    final = _response(request, 200, answer_sdp)
    record.carry(media, "200", final)
    assert media.jobs() == []  # the same answer again: last rewrite reused
    assert final.body == b"answer-out"
    record.carry(media, "ack", _ack())
    assert record.sent == ["invite", "183", "200", "ack"]


def test_a_late_offer_comes_in_the_200_and_its_answer_in_the_ack() -> None:
    media, record = _started(), Recorder()
    request = _invite(body=b"")
    record.carry(media, "invite", request)
    assert media.jobs() == [] and record.sent == ["invite"]
    record.carry(media, "200", _response(request, 200, SDP.decode()))
    offer = _one(media)
    assert offer.kind == "offer"
    assert offer.negotiation is not None and offer.negotiation.from_tag == "pbx1"
    assert offer.negotiation.destination is WEBRTC
    media.done(offer.ticket, b"offer-out")
    record.carry(media, "ack", _ack(SDP))
    reply = _one(media)
    assert reply.kind == "answer"
    assert reply.negotiation is not None and reply.negotiation.from_tag == CALLER
    media.done(reply.ticket, b"answer-out")
    assert record.sent == ["invite", "200", "ack"]


def test_a_refused_offer_fails_and_the_queue_moves_on() -> None:
    media, record = _started(), Recorder()
    request = _invite()
    record.carry(media, "invite", request)
    record.carry(media, "trying", _response(request, 100))
    media.done(_one(media).ticket, MediaError("no codec", 488))
    assert [(name, error.status) for name, error in record.failed] == [("invite", 488)]
    assert record.sent == ["trying"]


def test_end_deletes_after_the_job_under_way() -> None:
    media, record = _started(), Recorder()
    record.carry(media, "invite", _invite())
    offer = _one(media)
    media.end(CALL_ID)
    assert media.jobs() == []  # the delete waits for the offer
    media.done(offer.ticket, b"offer-out")
    delete = _one(media)
    assert (delete.kind, delete.call_id) == ("delete", CALL_ID)
    media.done(delete.ticket, None)
    assert CALL_ID not in media
    media.end(CALL_ID)  # twice is harmless
    assert media.jobs() == []


def test_a_reoffer_from_the_callee_is_an_offer_from_its_tag() -> None:
    media, record = _started(), Recorder()
    request = _invite()
    record.carry(media, "invite", request)
    media.done(_one(media).ticket, b"offer-out")
    record.carry(media, "200", _response(request, 200, SDP.decode()))
    media.done(_one(media).ticket, b"answer-out")
    reinvite_text = (
        invite(body=SDP.replace(b"sendrecv", b"sendonly"))
        .decode()
        .replace("tag=9fxced76sl", "tag=pbx1")
        .replace("To: Bob <sip:bob@biloxi.example.com>", f"To: <sip:a@b>;tag={CALLER}")
    )
    reinvite = parse_message(reinvite_text.encode())
    assert isinstance(reinvite, Request)
    record.carry(media, "reinvite", reinvite)
    job = _one(media)
    assert job.kind == "offer"
    assert job.negotiation is not None
    assert (job.negotiation.from_tag, job.negotiation.source) == ("pbx1", AVP)
    assert job.negotiation.destination is WEBRTC


def test_the_same_answer_to_a_new_offer_goes_to_the_relay_again() -> None:
    media, record = _started(), Recorder()
    request = _invite()
    record.carry(media, "invite", request)
    media.done(_one(media).ticket, b"offer-out")
    record.carry(media, "200", _response(request, 200, SDP.decode()))
    media.done(_one(media).ticket, b"answer-out")
    restart = _invite(body=SDP.replace(b"49170", b"49180"))
    record.carry(media, "reinvite", restart)
    media.done(_one(media).ticket, b"offer-2")
    again = _response(restart, 200, SDP.decode())  # the PBX's text is unchanged
    record.carry(media, "200 again", again)
    job = _one(media)
    assert job.kind == "answer"
    media.done(job.ticket, b"answer-2")
    assert again.body == b"answer-2"


def test_the_trunks_codecs_and_flags_reach_the_relay() -> None:
    media, record = CallMedia(), Recorder()
    media.start(CALL_ID, CALLER, WEBRTC, AVP, ("PCMA",), ("record-call",))
    request = _invite()
    record.carry(media, "invite", request)
    offer = _one(media)
    assert offer.negotiation is not None
    assert tuple(offer.negotiation.codecs) == ("PCMA",)
    assert tuple(offer.negotiation.flags) == ("record-call",)
    media.done(offer.ticket, b"offer-out")
    record.carry(media, "200", _response(request, 200, SDP.decode()))
    answer_job = _one(media)
    assert answer_job.negotiation is not None
    assert tuple(answer_job.negotiation.codecs) == ()  # an allow-list shapes offers only
    assert tuple(answer_job.negotiation.flags) == ("record-call",)
