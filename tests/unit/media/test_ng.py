"""rtpengine's ng protocol in memory: bencode, framing, the exact request dictionaries
Wedge sends for each leg profile and for a forked call, and how replies map onto
MediaControl results."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import ng
from media.control import MediaError, Negotiation
from sdp.rewrite import AVP, SAVP_SDES, SAVP_SDES_ICE, WEBRTC

pytestmark = pytest.mark.unit

CALL = "call-1@test"
SDP = b"v=0\r\n"
NOT_80 = [
    "no-AEAD_AES_256_GCM",
    "no-AEAD_AES_128_GCM",
    "no-AES_256_CM_HMAC_SHA1_80",
    "no-AES_256_CM_HMAC_SHA1_32",
    "no-AES_192_CM_HMAC_SHA1_80",
    "no-AES_192_CM_HMAC_SHA1_32",
    "no-AES_CM_128_HMAC_SHA1_32",
    "no-F8_128_HMAC_SHA1_80",
    "no-F8_128_HMAC_SHA1_32",
    "no-NULL_HMAC_SHA1_80",
    "no-NULL_HMAC_SHA1_32",
]
"""Toward an SDES trunk: every suite but AES_CM_128_HMAC_SHA1_80 (10.5 has no only-)."""
REPLACE = ["origin", "session-connection", "SDP-version"]


# -- bencode ---------------------------------------------------------------------------


def test_bencode_writes_each_type_with_sorted_keys() -> None:
    assert ng.bencode(0) == b"i0e"
    assert ng.bencode(-42) == b"i-42e"
    assert ng.bencode("") == b"0:"
    assert ng.bencode("é") == b"2:\xc3\xa9"
    assert ng.bencode(b"\x00\xff") == b"2:\x00\xff"
    assert ng.bencode(["a", 1, []]) == b"l1:ai1elee"
    assert ng.bencode({"sdp": b"x", "command": "offer"}) == b"d7:command5:offer3:sdp1:xe"


@pytest.mark.parametrize(
    "value",
    [1.5, None, True, {1: "x"}, {"a": 1, b"a": 2}, object()],
    ids=["float", "none", "bool", "int-key", "colliding-keys", "object"],
)
def test_bencode_refuses_what_it_has_no_form_for(value: object) -> None:
    with pytest.raises(ng.BencodeError):
        ng.bencode(value)  # type: ignore[arg-type]


def test_bencode_refuses_nesting_deeper_than_the_limit() -> None:
    deep: list[object] = []
    for _ in range(ng.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ng.BencodeError, match="nested"):
        ng.bencode(deep)  # type: ignore[arg-type]


def test_bdecode_reads_rtpengines_unsorted_dictionaries() -> None:
    # rtpengine writes keys in its own order (its README says so).
    assert ng.bdecode(b"d6:result2:ok3:sdp3:v=0e") == {b"result": b"ok", b"sdp": b"v=0"}
    assert ng.bdecode(b"d3:sdp3:v=06:result2:oke") == {b"sdp": b"v=0", b"result": b"ok"}
    assert ng.bdecode(b"li-1ei0e0:lee") == [-1, 0, b"", []]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"i01e",
        b"i-0e",
        b"ie",
        b"i-e",
        b"i1",
        b"i" + b"9" * 30 + b"e",
        b"01:a",
        b"2:a",
        b"-1:a",
        b"1a",
        b"l",
        b"le extra",
        b"i1ei2e",
        b"d1:ae",
        b"di1e1:ae",
        b"dl1:ae1:be",
        b"d1:ai1e1:ai2ee",
        b"e",
        b"x",
        b"d1:ad1:bee e",
    ],
    ids=repr,
)
def test_bdecode_is_strict(data: bytes) -> None:
    with pytest.raises(ng.BencodeError):
        ng.bdecode(data)


def test_bdecode_bounds_depth_items_and_size() -> None:
    deep = b"l" * (ng.MAX_DEPTH + 1) + b"e" * (ng.MAX_DEPTH + 1)
    with pytest.raises(ng.BencodeError, match="nested deeper"):
        ng.bdecode(deep)
    assert ng.bdecode(b"l" * 3 + b"e" * 3, max_depth=3) == [[[]]]
    with pytest.raises(ng.BencodeError, match="more than 3 values"):
        ng.bdecode(b"li1ei2ei3ee", max_items=3)
    with pytest.raises(ng.BencodeError, match="more than"):
        ng.bdecode(b"0:" * (ng.MAX_MESSAGE // 2 + 1))
    # A million levels cost no stack: refused at the limit, not by RecursionError.
    with pytest.raises(ng.BencodeError):
        ng.bdecode(b"l" * 60_000)


values = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_bencode_round_trips(value: ng.Value) -> None:
    data = ng.bencode(value)
    assert ng.bdecode(data) == value
    assert ng.bencode(ng.bdecode(data)) == data  # canonical: sorted keys


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_bdecode_never_fails_otherwise_on_garbage(data: bytes) -> None:
    try:
        value = ng.bdecode(data)
    except ng.BencodeError:
        return
    assert ng.bdecode(ng.bencode(value)) == value


@settings(max_examples=500)
@given(values, st.data())
def test_bdecode_survives_damaged_messages(value: ng.Value, data: st.DataObject) -> None:
    encoded = bytearray(ng.bencode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        if not encoded:
            break
        where = data.draw(st.integers(0, len(encoded) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            encoded[where] = data.draw(st.sampled_from(b"ield:0123456789-x "))
        elif action == "cut":
            del encoded[where:]
        else:
            encoded.insert(where, data.draw(st.sampled_from(b"ield:0")))
    with contextlib.suppress(ng.BencodeError):
        ng.bdecode(bytes(encoded))


# -- framing ---------------------------------------------------------------------------


def test_frame_and_unframe_the_readmes_ping() -> None:
    assert ng.frame("5323_1", ng.ping()) == b"5323_1 d7:command4:pinge"
    cookie, body = ng.unframe(b"5323_1 d6:result4:ponge")
    assert (cookie, body) == ("5323_1", {b"result": b"pong"})
    assert ng.parse_reply(body).result == "pong"


@pytest.mark.parametrize("cookie", ["", "has space", "x" * 65, "é"])
def test_frame_refuses_bad_cookies(cookie: str) -> None:
    with pytest.raises(ng.NgError):
        ng.frame(cookie, ng.ping())


@pytest.mark.parametrize(
    ("data", "cookie"),
    [
        (b"", None),
        (b"no-space-at-all", None),
        (b" d6:result4:ponge", None),
        (b"c1 garbage", "c1"),
        (b"c1 li1ee", "c1"),
        (b"c1 d6:result4:ponge trailing", "c1"),
    ],
)
def test_unframe_names_the_cookie_of_a_bad_reply(data: bytes, cookie: str | None) -> None:
    with pytest.raises(ng.NgError) as info:
        ng.unframe(data)
    assert info.value.cookie == cookie


def test_unframe_refuses_a_reply_over_the_limit() -> None:
    data = ng.frame("c2", {"result": "ok", "pad": "x" * 1000})
    assert ng.unframe(data)[0] == "c2"
    with pytest.raises(ng.NgError, match="more than 500") as info:
        ng.unframe(data, limit=500)
    assert info.value.cookie == "c2"


# -- the requests: one per leg profile -------------------------------------------------


def test_browser_offer_toward_a_pbx() -> None:
    offer = ng.offer(Negotiation(CALL, "caller", None, WEBRTC, AVP), SDP)
    assert offer == {
        "command": "offer",
        "call-id": CALL,
        "from-tag": "caller",
        "transport-protocol": "RTP/AVP",
        "ICE": "remove",
        "DTLS": "off",
        "SDES": ["off"],
        "flags": ["trust-address", "strip-extmap"],
        "replace": REPLACE,
        "ICE-lite": "backward",
        "DTLS-reverse": "passive",
        "rtcp-mux": ["demux"],
        "sdp": SDP,
    }


def test_pbx_answer_toward_the_browser() -> None:
    answer = ng.answer(Negotiation(CALL, "callee", "caller", AVP, WEBRTC), SDP)
    assert answer == {
        "command": "answer",
        "call-id": CALL,
        "from-tag": "caller",  # rtpengine's from-tag is the offerer's, in an answer too
        "to-tag": "callee",
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        "ICE": "force",
        "DTLS": "passive",
        "SDES": ["off"],
        "flags": ["trust-address"],
        "replace": REPLACE,
        "sdp": SDP,
    }


def test_pbx_offer_toward_a_browser() -> None:
    offer = ng.offer(Negotiation(CALL, "pbx", None, AVP, WEBRTC), SDP)
    assert offer == {
        "command": "offer",
        "call-id": CALL,
        "from-tag": "pbx",
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        "ICE": "force",
        "DTLS": "passive",
        "SDES": ["off"],
        "flags": ["trust-address", "generate-mid"],
        "replace": REPLACE,
        "ICE-lite": "forward",
        "rtcp-mux": ["offer", "require"],
        "sdp": SDP,
    }


def test_browser_answer_toward_the_pbx() -> None:
    answer = ng.answer(Negotiation(CALL, "browser", "pbx", WEBRTC, AVP), SDP)
    assert answer == {
        "command": "answer",
        "call-id": CALL,
        "from-tag": "pbx",
        "to-tag": "browser",
        "transport-protocol": "RTP/AVP",
        "ICE": "remove",
        "DTLS": "off",
        "SDES": ["off"],
        "flags": ["trust-address", "strip-extmap"],
        "replace": REPLACE,
        "sdp": SDP,
    }


def test_sdes_trunk_offer_toward_a_pbx_and_pbx_offer_toward_the_trunk() -> None:
    from_trunk = ng.offer(Negotiation(CALL, "trunk", None, SAVP_SDES, AVP), SDP)
    assert from_trunk == {
        "command": "offer",
        "call-id": CALL,
        "from-tag": "trunk",
        "transport-protocol": "RTP/AVP",
        "ICE": "remove",
        "DTLS": "off",
        "SDES": ["off"],
        "flags": ["trust-address", "strip-extmap"],
        "replace": REPLACE,
        "rtcp-mux": ["demux"],
        "sdp": SDP,
    }
    to_trunk = ng.offer(Negotiation(CALL, "pbx", None, AVP, SAVP_SDES), SDP)
    assert to_trunk == {
        "command": "offer",
        "call-id": CALL,
        "from-tag": "pbx",
        "transport-protocol": "RTP/SAVP",
        "ICE": "remove",
        "DTLS": "off",
        "SDES": NOT_80,
        "flags": ["trust-address", "strip-extmap"],
        "replace": REPLACE,
        "rtcp-mux": ["demux"],
        "sdp": SDP,
    }
    answer = ng.answer(Negotiation(CALL, "pbx", "trunk", AVP, SAVP_SDES), SDP)
    assert answer["SDES"] == NOT_80 and answer["transport-protocol"] == "RTP/SAVP"


def test_teams_style_trunk_gets_ice_lite_and_a_browser_to_it_both_ways() -> None:
    offer = ng.offer(Negotiation(CALL, "pbx", None, AVP, SAVP_SDES_ICE), SDP)
    assert offer == {
        "command": "offer",
        "call-id": CALL,
        "from-tag": "pbx",
        "transport-protocol": "RTP/SAVP",
        "ICE": "force",
        "DTLS": "off",
        "SDES": NOT_80,
        "flags": ["trust-address", "strip-extmap"],
        "replace": REPLACE,
        "ICE-lite": "forward",
        "rtcp-mux": ["demux"],
        "sdp": SDP,
    }
    both = ng.offer(Negotiation(CALL, "browser", None, WEBRTC, SAVP_SDES_ICE), SDP)
    assert (both["ICE-lite"], both["DTLS"], both["DTLS-reverse"]) == ("both", "off", "passive")


def test_reinvite_offer_names_both_tags_from_whoever_sends_it() -> None:
    # The callee puts the call on hold: its tag is the from-tag now.
    offer = ng.offer(Negotiation(CALL, "callee", "caller", AVP, WEBRTC), SDP)
    assert (offer["from-tag"], offer["to-tag"]) == ("callee", "caller")
    answer = ng.answer(Negotiation(CALL, "caller", "callee", WEBRTC, AVP), SDP)
    assert (answer["from-tag"], answer["to-tag"]) == ("callee", "caller")


def test_codec_allow_list_and_raw_flags() -> None:
    negotiation = Negotiation(CALL, "caller", None, WEBRTC, AVP, codecs=("PCMU", "telephone-event"))
    offer = ng.offer(negotiation, SDP, extra_flags=["record-call"], via_branch="z9hG4bK-1")
    assert offer["codec"] == {"strip": ["all"], "except": ["PCMU", "telephone-event"]}
    assert offer["flags"] == ["trust-address", "strip-extmap", "record-call"]
    # Like the built-in relay, an allow-list without telephone-event still keeps DTMF.
    pcma = ng.offer(Negotiation(CALL, "caller", None, WEBRTC, AVP, codecs=("PCMA",)), SDP)
    assert pcma["codec"] == {"strip": ["all"], "except": ["PCMA", "telephone-event"]}
    assert offer["via-branch"] == "z9hG4bK-1"


def test_answer_needs_the_offerers_tag() -> None:
    with pytest.raises(MediaError) as info:
        ng.answer(Negotiation(CALL, "callee", None, AVP, WEBRTC), SDP)
    assert info.value.status == 500


def test_a_forked_call_offer_two_answers_and_delete() -> None:
    """The caller's INVITE forks beyond Wedge: a 183 from one phone, the 200 from
    another. Each answer names its own to-tag (rtpengine gives each fork its own
    monologue); the BYE deletes the call by the caller's tag."""
    offer = ng.offer(Negotiation(CALL, "alice", None, WEBRTC, AVP), b"o")
    fork_a = ng.answer(Negotiation(CALL, "phone-a", "alice", AVP, WEBRTC), b"a")
    fork_b = ng.answer(Negotiation(CALL, "phone-b", "alice", AVP, WEBRTC), b"b")
    tags = [
        (m["command"], m["from-tag"], m.get("to-tag"), m["sdp"]) for m in (offer, fork_a, fork_b)
    ]
    assert tags == [
        ("offer", "alice", None, b"o"),
        ("answer", "alice", "phone-a", b"a"),
        ("answer", "alice", "phone-b", b"b"),
    ]
    assert ng.delete(CALL, "alice") == {
        "command": "delete",
        "call-id": CALL,
        "from-tag": "alice",
        "delete-delay": 0,
    }
    assert ng.delete(CALL, delay=None) == {"command": "delete", "call-id": CALL}
    assert ng.delete(CALL, "alice", "phone-b", via_branch="z9hG4bK-2") == {
        "command": "delete",
        "call-id": CALL,
        "from-tag": "alice",
        "to-tag": "phone-b",
        "via-branch": "z9hG4bK-2",
        "delete-delay": 0,
    }


def test_the_other_commands() -> None:
    assert ng.ping() == {"command": "ping"}
    assert ng.query(CALL) == {"command": "query", "call-id": CALL}
    assert ng.query(CALL, "a", "b") == {
        "command": "query",
        "call-id": CALL,
        "from-tag": "a",
        "to-tag": "b",
    }
    assert ng.list_calls() == {"command": "list", "limit": 32}
    assert ng.statistics() == {"command": "statistics"}
    with pytest.raises(ValueError):
        ng.list_calls(0)
    with pytest.raises(ValueError):
        ng.leg_options(AVP, "delete")


# -- replies ---------------------------------------------------------------------------


def reply(data: bytes) -> ng.Reply:
    return ng.parse_reply(ng.unframe(b"c1 " + data)[1])


def test_offer_reply_gives_the_sdp() -> None:
    assert ng.sdp_of(reply(b"d6:result2:ok3:sdp3:v=0e"), "offer") == b"v=0"
    with pytest.raises(MediaError) as info:
        ng.sdp_of(reply(b"d6:result2:oke"), "offer")
    assert info.value.status == 500


@pytest.mark.parametrize(
    ("command", "reason", "status"),
    [
        ("offer", "Failed to parse SDP", 488),
        ("answer", "Incomplete SDP specification", 488),
        ("offer", "No SDP body in message", 488),
        ("offer", "Ran out of ports", 503),
        ("offer", "Parallel session limit reached", 503),
        ("answer", "Unknown call-id", 500),
        ("offer", "Invalid dialogue association", 500),
        ("query", "Unknown call-id", 500),
    ],
)
def test_error_results_become_media_errors_with_rtpengines_reason(
    command: str, reason: str, status: int
) -> None:
    body = ng.frame("c1", {"result": "error", "error-reason": reason})
    with pytest.raises(MediaError) as info:
        ng.sdp_of(ng.parse_reply(ng.unframe(body)[1]), command)
    assert info.value.status == status
    assert reason in info.value.reason


def test_load_limit_and_odd_results() -> None:
    with pytest.raises(MediaError) as info:
        ng.check(reply(b"d6:result10:load limit7:message9:CPU limite"), "offer")
    assert (info.value.status, info.value.reason) == (503, "rtpengine offer: load limit: CPU limit")
    with pytest.raises(MediaError) as info:
        ng.check(reply(b"d6:result4:ponge"), "offer")
    assert info.value.status == 500
    assert ng.check(reply(b"d6:result4:ponge"), "ping").result == "pong"
    with pytest.raises(ng.NgError):
        ng.parse_reply({b"sdp": b"x"})
    assert reply(b"d6:result2:ok7:warning4:hmm.e").warning == "hmm."


def test_call_stats_per_party_from_a_delete_reply() -> None:
    stream: ng.Message = {"local port": 30000, "flags": ["RTP", "filled"]}
    rtcp: ng.Message = {"flags": ["RTCP"], "stats": {"packets": 5, "bytes": 400, "errors": 1}}
    data: ng.Message = {
        "result": "ok",
        "created": 1,
        "tags": {
            "pbx": {
                "tag": "pbx",
                "medias": [{"streams": [{**stream, "stats": {"packets": 240, "bytes": 41280}}]}],
            },
            "<untagged 3>": {"tag": "", "medias": []},
            "browser": {
                "tag": "browser",
                "medias": [{"streams": [{**stream, "stats": {"packets": 250, "errors": 2}}, rtcp]}],
            },
        },
        "totals": {"RTP": {"packets": 490}},
    }
    stats = ng.call_stats(CALL, ng.parse_reply(ng.unframe(ng.frame("c", data))[1]), "browser")
    assert [(leg.tag, leg.packets, leg.bytes, leg.dropped) for leg in stats.legs] == [
        ("browser", 250, 0, 3),
        ("pbx", 240, 41280, 0),
    ]
    assert stats.summary().startswith("browser:pkts=250,lost=0,jitter=0.0ms,dropped=3 pbx:pkts=240")
    assert ng.call_stats(CALL, reply(b"d6:result2:oke")).legs == []


def test_list_and_statistics_replies() -> None:
    assert ng.listed_calls(reply(b"d5:callsl2:c12:c2e6:result2:oke")) == ["c1", "c2"]
    data: ng.Message = {
        "result": "ok",
        "statistics": {"currentstatistics": {"sessionstotal": 2}, "interfaces": [{}]},
    }
    stats = ng.statistics_of(ng.parse_reply(ng.unframe(ng.frame("c", data))[1]))
    assert stats == {"currentstatistics.sessionstotal": 2}


# -- BUNDLE toward browsers (rtpengine before 14.0 strips it) --------------------------

ANSWER = (
    b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=ice-lite\r\n"
    b"m=audio 30000 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=rtcp-mux\r\n"
)


def test_restore_bundle_for_one_stream_toward_a_browser() -> None:
    restored = ng.restore_bundle(ANSWER, WEBRTC)
    assert restored == ANSWER.replace(b"a=ice-lite\r\n", b"a=ice-lite\r\na=group:BUNDLE 0\r\n")
    assert ng.has_bundle(restored) and not ng.has_bundle(ANSWER)
    assert ng.restore_bundle(restored, WEBRTC) == restored
    assert ng.restore_bundle(ANSWER, WEBRTC, offered=False) == ANSWER
    assert ng.restore_bundle(ANSWER, AVP) == ANSWER
    two = ANSWER + b"m=video 30002 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
    assert ng.restore_bundle(two, WEBRTC) == two  # two ports: nothing to bundle
    rejected = ANSWER + b"m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
    assert b"a=group:BUNDLE 0\r\n" in ng.restore_bundle(rejected, WEBRTC)
    no_mid = ANSWER.replace(b"a=mid:0\r\n", b"")
    assert ng.restore_bundle(no_mid, WEBRTC) == no_mid
