"""Which SIP worker owns a message or a connection, and the frames between workers."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.proxy.flowtoken import FlowTokens
from gateway.proxy.routing import Listener, RouteStamp
from gateway.sip import Flow
from gateway.workers.dispatch import (
    _CALL_ID,
    FrameError,
    FrameKind,
    connection_owner,
    decode_frame,
    encode_frame,
    message_owner,
    pack_frames,
    unpack_frames,
)
from gateway.workers.link import Inboxes
from gateway.workers.supervisor import WorkerPlace

INVITE = (
    b"INVITE sip:600@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    b"From: <sip:a@x>;tag=1\r\n"
    b"To: <sip:600@x>\r\n"
    b"Call-ID: abc@host\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


UDP_FLOW = Flow("udp", ("127.0.0.3", 5060), ("127.0.0.1", 5070))
TLS_FLOW = Flow("tls", ("127.0.0.3", 5061), ("127.0.0.1", 40000), 8)
WSS_FLOW = Flow("wss", ("127.0.0.3", 8443), ("127.0.0.1", 40001), 9)


def owner_of(call_id: bytes, workers: int) -> int:
    return zlib.crc32(call_id) % workers


def call_owner(data: bytes, workers: int) -> int | None:
    """The owner of an unmarked message from a UDP peer: by its Call-ID."""
    return message_owner(data, UDP_FLOW, workers)


def test_the_call_id_chooses_the_worker() -> None:
    assert call_owner(INVITE, 1) == 0
    for workers in (2, 3, 7):
        assert call_owner(INVITE, workers) == owner_of(b"abc@host", workers)
    # A response and a CANCEL of the same call go to the same worker.
    response = b"SIP/2.0 180 Ringing\r\ncall-id:   abc@host  \r\nCSeq: 1 INVITE\r\n\r\n"
    assert call_owner(response, 7) == call_owner(INVITE, 7)
    compact = INVITE.replace(b"Call-ID: abc@host", b"i:abc@host")
    assert call_owner(compact, 7) == call_owner(INVITE, 7)


def _by_pattern(data: bytes, workers: int) -> int | None:
    """The owner by the case-blind pattern alone, which call_owner's plain search for
    the usual spelling must agree with."""
    end = data.find(b"\r\n\r\n")
    found = _CALL_ID.search(data, 0, len(data) if end < 0 else end + 2)
    call_id = found.group(1).strip() if found is not None else b""
    return zlib.crc32(call_id) % workers if call_id else None


@given(
    st.sampled_from([b"Call-ID:", b"call-id:", b"CALL-ID :", b"i:", b"Call-ID:\t"]),
    st.binary(max_size=40),
    st.sampled_from([b"\r\n\r\nbody", b"\r\n", b"", b"\r\nCSeq: 1 BYE\r\n\r\n"]),
)
def test_the_usual_spelling_and_the_pattern_agree(header: bytes, value: bytes, rest: bytes) -> None:
    data = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n" + header + value + rest
    assert call_owner(data, 7) == _by_pattern(data, 7)


def test_only_the_header_section_counts() -> None:
    body = b"\r\nCall-ID: other@host\r\n"
    no_header = INVITE.replace(b"Call-ID: abc@host\r\n", b"") + body
    assert call_owner(no_header, 7) is None
    assert call_owner(INVITE.replace(b"abc@host", b""), 7) is None
    assert call_owner(b"", 7) is None
    assert call_owner(b"\r\n\r\n", 7) is None


def _stamp(worker: int) -> RouteStamp:
    listener = Listener("udp", "udp", ("127.0.0.3", 5060), ("sbc.example.com", 5060))
    return RouteStamp([listener], FlowTokens(b"k" * 32), lambda: "id1", worker)


def test_unmarked_websocket_messages_belong_to_the_connection_worker() -> None:
    # A browser's new call lives in the worker holding its socket, whatever its
    # Call-ID; a trunk's connection and a UDP peer deal calls by Call-ID.
    for workers in (2, 3, 5):
        assert message_owner(INVITE, WSS_FLOW, workers) == connection_owner(9, workers)
        assert message_owner(INVITE, TLS_FLOW, workers) == owner_of(b"abc@host", workers)
        assert message_owner(INVITE, UDP_FLOW, workers) == owner_of(b"abc@host", workers)


@pytest.mark.parametrize("worker", [0, 1, 4, 11])
def test_what_a_worker_stamps_brings_the_call_back_to_it(worker: int) -> None:
    stamp = _stamp(worker)
    listener = stamp.listeners[0]
    branch = stamp.branch("1a2b3c4d")
    response = (
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP sbc.example.com;branch={branch}\r\n"
        "Via: SIP/2.0/WSS client.invalid;branch=z9hG4bK.7;received=127.0.0.1\r\n"
        "Call-ID: abc@host\r\nCSeq: 1 INVITE\r\n\r\n"
    ).encode()
    route = stamp.record_route(listener, WSS_FLOW, double=True)[1:-1]
    path = stamp.path(listener, WSS_FLOW)[1:-1]
    in_dialog = INVITE.replace(b"INVITE sip:600", b"BYE sip:600").replace(
        b"Call-ID:", f"Route: <{route}>, <sip:other.example.com;lr;wk=3>\r\nCall-ID:".encode()
    )
    toward_client = INVITE.replace(b"Call-ID:", f"route :<{path}>\r\nCall-ID:".encode())
    # Our entries may come below another proxy's on the way back: the mark counts
    # wherever it is in the Route set, since every request of the dialog has it.
    below = INVITE.replace(
        b"Call-ID:", f"Route: <sip:other.example.com;lr>\r\nRoute: <{route}>\r\nCall-ID:".encode()
    )
    for data in (response, in_dialog, toward_client, below):
        for flow in (UDP_FLOW, WSS_FLOW, TLS_FLOW):
            assert message_owner(data, flow, 12) == worker, data
    # A mark beyond the workers there are now (a dialog of an earlier start with
    # more of them) counts for nothing.
    if worker:
        assert message_owner(response, UDP_FLOW, worker) == owner_of(b"abc@host", worker)


@pytest.mark.parametrize(
    "route",
    [
        b"Route: <sip:sbc.example.com;lr;wk=1x>",
        b"Route: <sip:sbc.example.com;lr;wk=>",
        b"Route: <sip:sbc.example.com;lr;wk=1234>",
        b"Route-Info: <sip:sbc.example.com;lr;wk=1>",
        b"Record-Route: <sip:sbc.example.com;lr;wk=1>",
        b"Subject: x\r\n Route: <sip:sbc.example.com;lr;wk=1>",
    ],
)
def test_a_request_without_our_mark_goes_by_call_id(route: bytes) -> None:
    data = INVITE.replace(b"Call-ID:", route + b"\r\nCall-ID:")
    assert message_owner(data, UDP_FLOW, 7) == owner_of(b"abc@host", 7)


def test_a_response_without_our_branch_goes_by_call_id() -> None:
    for branch in (b"z9hG4bK-w1a2b3c4d", b"z9hG4bK-w1a2b3c4d.2", b"z9hG4bKother.2.x"):
        response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=" + branch
        response += b"\r\nCall-ID: abc@host\r\n\r\n"
        assert message_owner(response, UDP_FLOW, 7) == owner_of(b"abc@host", 7)


def test_connection_ids_name_their_worker() -> None:
    # Worker k of N numbers its connections k+1, k+1+N, ...
    for workers in (1, 2, 5):
        for worker in range(workers):
            for n in range(4):
                assert connection_owner(worker + 1 + n * workers, workers) == worker


@pytest.mark.parametrize(
    "flow",
    [
        Flow("udp", ("127.0.0.3", 5060), ("127.0.0.1", 5070)),
        Flow("wss", ("::1", 8443), ("2001:db8::5", 40000), 17),
    ],
)
@pytest.mark.parametrize("kind", list(FrameKind))
def test_frames_round_trip(flow: Flow, kind: FrameKind) -> None:
    payload = INVITE + b"\n\x00 binary \xff"
    assert decode_frame(encode_frame(kind, flow, payload)) == (kind, flow, payload)
    assert decode_frame(encode_frame(kind, flow, b"")) == (kind, flow, b"")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"X udp 127.0.0.1 1 127.0.0.1 2 0\n",
        b"M udp 127.0.0.1 1 127.0.0.1 2\n",
        b"M udp 127.0.0.1 one 127.0.0.1 2 0\n",
        b"M udp 127.0.0.1 1 127.0.0.1 2 0",
        b"M udp \xff 1 127.0.0.1 2 0\n",
    ],
)
def test_bad_frames_are_refused(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_frame(data)


@given(st.binary(max_size=300))
def test_garbage_gets_no_owner_or_a_real_one_and_only_frame_errors(data: bytes) -> None:
    for flow in (UDP_FLOW, WSS_FLOW):
        owner = message_owner(data, flow, 3)
        assert owner is None or 0 <= owner < 3
    # Whatever decodes is what its own encoding says; anything else is a FrameError.
    try:
        frame = decode_frame(data)
    except FrameError:
        pass
    else:
        assert decode_frame(encode_frame(*frame)) == frame
    try:
        frames = unpack_frames(data)
    except FrameError:
        pass
    else:
        assert pack_frames(frames) == data


def test_a_restarted_worker_never_deals_an_id_of_its_past() -> None:
    inboxes = Inboxes((), ())
    for count in (1, 2, 5):
        for index in range(count):
            places = [WorkerPlace(index, count, inboxes, b"k" * 32, 0, g) for g in range(3)]
            firsts = [place.first_connection for place in places]
            assert firsts == sorted(set(firsts))  # each generation above the last
            for first in firsts:
                assert connection_owner(first, count) == index
                assert connection_owner(first + 7 * count, count) == index
            # 2**32 connections of one incarnation before they reach the next's.
            assert firsts[1] - firsts[0] == count * 2**32


def test_frames_travel_together_in_one_datagram() -> None:
    frames = [encode_frame(FrameKind.MESSAGE, UDP_FLOW, INVITE), b"", b"x" * 70_000]
    assert unpack_frames(pack_frames(frames)) == frames
    assert unpack_frames(b"") == []
    packed = pack_frames(frames)
    for cut in (1, 3, 5, len(packed) - 1):
        with pytest.raises(FrameError):
            unpack_frames(packed[:cut])
