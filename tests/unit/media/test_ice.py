"""The ICE-lite agent: STUN bytes in, STUN bytes out, no sockets.

Requests are built with aioice's codec the way a browser builds them; responses are
parsed back and checked for integrity, fingerprint and mapped address.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aioice import stun
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.ice import CONSENT_TIMEOUT, MAX_VALID_ADDRESSES, IceLite

LOCAL_UFRAG = "R3lY"
LOCAL_PWD = "relayPasswordOf24chars00"
REMOTE_UFRAG = "bRws"
REMOTE_PWD = "browserPasswordOf24char0"
USERNAME = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"
TIEBREAKER = 0x1234_5678_9ABC_DEF0
HOST_PRIORITY = 2_122_260_223  # a browser's prflx priority for a host candidate
BROWSER: tuple[str, int] = ("192.0.2.10", 50_000)
OTHER: tuple[str, int] = ("198.51.100.20", 60_000)
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")  # RFC 5769's transaction id
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def binding(
    username: str | None = USERNAME,
    pwd: str | None = LOCAL_PWD,
    *,
    role: str | None = "ICE-CONTROLLING",
    nominate: bool = False,
    tid: bytes = TID,
    message_class: stun.Class = stun.Class.REQUEST,
    method: stun.Method = stun.Method.BINDING,
) -> bytes:
    """A connectivity check as a browser sends it (RFC 8445 §7.1.1)."""
    attributes: dict[str, Any] = {}
    if username is not None:
        attributes["USERNAME"] = username
    attributes["PRIORITY"] = HOST_PRIORITY
    if role is not None:
        attributes[role] = TIEBREAKER
    if nominate:
        attributes["USE-CANDIDATE"] = None
    message = stun.Message(method, message_class, tid, attributes)
    if pwd is None:
        message.add_fingerprint()
    else:
        message.add_message_integrity(pwd.encode())  # and FINGERPRINT
    return bytes(message)


def agent(**kwargs: float) -> IceLite:
    ice = IceLite(LOCAL_UFRAG, LOCAL_PWD, **kwargs)
    ice.set_remote(REMOTE_UFRAG, REMOTE_PWD)
    return ice


def answer(ice: IceLite, data: bytes, addr: tuple[str, int] = BROWSER, now: float = 0.0) -> Any:
    """The parsed response, with its integrity and fingerprint checked."""
    reply = ice.handle(data, addr, now)
    assert reply is not None
    response = stun.parse_message(reply)  # raises if FINGERPRINT is wrong
    assert "FINGERPRINT" in response.attributes
    return response


def signed(response: Any, pwd: str = LOCAL_PWD) -> bool:
    return bool(response.check_message_integrity(pwd.encode()))


# -- success -------------------------------------------------------------------------------


def test_success_response_maps_the_source_and_is_signed() -> None:
    ice = agent()
    response = answer(ice, binding())
    assert response.message_method == stun.Method.BINDING
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == TID
    assert response.attributes["XOR-MAPPED-ADDRESS"] == BROWSER
    assert signed(response)
    assert "USERNAME" not in response.attributes  # RFC 8489 §9.1.3
    assert ice.is_valid(BROWSER)
    assert not ice.dropped


def test_xor_mapped_address_bytes_match_rfc_5769_ipv4() -> None:
    # RFC 5769 §2.2: 192.0.2.1 port 32853 under its transaction id.
    reply = agent().handle(binding(), ("192.0.2.1", 32853), 0.0)
    assert reply is not None
    assert bytes.fromhex("0020 0008 0001a147 e112a643") in reply


def test_ipv6_source_rfc_5769() -> None:
    # RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    source = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    ice = agent()
    reply = ice.handle(binding(nominate=True), source, 0.0)
    assert reply is not None
    xored = "0020 0014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9"
    assert bytes.fromhex(xored) in reply
    response = stun.parse_message(reply)
    assert response.attributes["XOR-MAPPED-ADDRESS"] == source
    assert signed(response)
    assert ice.selected == source


def test_ipv4_mapped_source_is_reported_as_ipv4() -> None:
    # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
    source = ("::ffff:192.0.2.10", 50_000)
    ice = agent()
    response = answer(ice, binding(), source)
    assert response.attributes["XOR-MAPPED-ADDRESS"] == BROWSER
    assert ice.is_valid(source)  # state keeps the socket's form


def test_chrome_style_request() -> None:
    # Laid out as Chrome sends a nominating check: USERNAME, GOOG-NETWORK-INFO
    # (0xC057, comprehension-optional), ICE-CONTROLLING, USE-CANDIDATE, PRIORITY,
    # MESSAGE-INTEGRITY, FINGERPRINT; attributes written by hand, spaces as padding.
    def tlv(kind: int, value: bytes, pad: bytes = b"\0") -> bytes:
        return struct.pack("!HH", kind, len(value)) + value + pad * stun.padding_length(len(value))

    username = b"R3lY:bRws"
    body = (
        tlv(0x0006, username, b" ")
        + tlv(0xC057, struct.pack("!HH", 1, 10))
        + tlv(0x802A, struct.pack("!Q", TIEBREAKER))
        + tlv(0x0025, b"")
        + tlv(0x0024, struct.pack("!I", HOST_PRIORITY))
    )
    data = struct.pack("!HHI12s", 0x0001, len(body), stun.COOKIE, TID) + body
    integrity = stun.message_integrity(data, LOCAL_PWD.encode())
    data += tlv(0x0008, integrity)
    data += tlv(0x8028, struct.pack("!I", stun.message_fingerprint(data)))
    data = stun.set_body_length(data, len(data) - stun.HEADER_LENGTH)

    ice = agent()
    response = answer(ice, data)
    assert response.message_class == stun.Class.RESPONSE
    assert signed(response)
    assert ice.selected == BROWSER


def test_request_without_fingerprint_is_answered() -> None:
    message = stun.Message(
        stun.Method.BINDING,
        stun.Class.REQUEST,
        TID,
        {"USERNAME": USERNAME, "ICE-CONTROLLING": TIEBREAKER},
    )
    message.add_message_integrity(LOCAL_PWD.encode())
    del message.attributes["FINGERPRINT"]
    response = answer(agent(), bytes(message))
    assert response.message_class == stun.Class.RESPONSE


def test_remote_ufrag_unknown_accepts_any_remote_part() -> None:
    # The browser may check before its SDP reaches us; the password authenticates.
    ice = IceLite(LOCAL_UFRAG, LOCAL_PWD)
    response = answer(ice, binding(f"{LOCAL_UFRAG}:whatever"))
    assert response.message_class == stun.Class.RESPONSE


def test_request_without_role_attribute_is_answered() -> None:
    response = answer(agent(), binding(role=None))
    assert response.message_class == stun.Class.RESPONSE


# -- authentication failures (RFC 8489 §9.1.3) ---------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (binding(username=None), 400, "missing credentials"),
        (binding(pwd=None), 400, "missing credentials"),
        (binding(f"XXXX:{REMOTE_UFRAG}"), 401, "unknown username"),
        (binding(f"{LOCAL_UFRAG}:XXXX"), 401, "unknown username"),
        (binding(LOCAL_UFRAG), 401, "unknown username"),
        (binding(f"{REMOTE_UFRAG}:{LOCAL_UFRAG}"), 401, "unknown username"),
        (binding(pwd=REMOTE_PWD), 401, "bad integrity"),
        (binding(pwd="x" * 22), 401, "bad integrity"),
    ],
)
def test_authentication_failure_gets_an_unsigned_error(data: bytes, code: int, reason: str) -> None:
    ice = agent()
    response = answer(ice, data)
    assert response.message_class == stun.Class.ERROR
    assert response.transaction_id == TID
    assert response.error_code == code
    assert "MESSAGE-INTEGRITY" not in response.attributes
    assert "XOR-MAPPED-ADDRESS" not in response.attributes
    assert ice.dropped == {reason: 1}
    assert not ice.is_valid(BROWSER)
    assert ice.selected is None


# -- role conflict (RFC 8445 §7.3.1.1) ----------------------------------------------------


def test_ice_controlled_gets_a_signed_487() -> None:
    ice = agent()
    response = answer(ice, binding(role="ICE-CONTROLLED", nominate=True))
    assert response.message_class == stun.Class.ERROR
    assert response.error_code == 487
    assert signed(response)
    assert ice.dropped == {"role conflict": 1}
    assert not ice.is_valid(BROWSER)
    assert ice.selected is None


def test_rfc_5769_sample_request_is_a_role_conflict() -> None:
    # RFC 5769 §2.1: the sample request carries ICE-CONTROLLED; a lite agent is
    # controlled too, so it asks the sender to switch (signed with the same password).
    request = bytes.fromhex(
        "000100582112a442b7e7a701bc34d686fa87dfae"
        "802200105354554e207465737420636c69656e74"
        "002400046e0001ff"
        "80290008932ff9b151263b36"
        "000600096576746a3a68367659202020"
        "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
        "80280004e57a3bcf"
    )
    ice = IceLite("evtj", "VOkJxbRl1RmTxUk/WvJxBt")
    ice.set_remote("h6vY", "remotePasswordOf22char")
    response = answer(ice, request, ("192.0.2.1", 32853))
    assert response.error_code == 487
    assert response.transaction_id == TID
    assert signed(response, "VOkJxbRl1RmTxUk/WvJxBt")


# -- unknown attributes (RFC 8489 §6.3.1) -------------------------------------------------


def with_attribute(kind: int, value: bytes, pwd: str = LOCAL_PWD) -> bytes:
    """A check with one extra attribute before MESSAGE-INTEGRITY, signed anew."""
    attributes = {"USERNAME": USERNAME, "ICE-CONTROLLING": TIEBREAKER}
    head = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST, TID, attributes))
    tlv = struct.pack("!HH", kind, len(value)) + value + bytes(stun.padding_length(len(value)))
    data = stun.set_body_length(head + tlv, len(head + tlv) - stun.HEADER_LENGTH)
    integrity = stun.message_integrity(data, pwd.encode())
    data += struct.pack("!HH", 0x0008, 20) + integrity
    data += struct.pack("!HHI", 0x8028, 4, stun.message_fingerprint(data))
    return stun.set_body_length(data, len(data) - stun.HEADER_LENGTH)


def test_unknown_comprehension_required_attribute_gets_420() -> None:
    ice = agent()
    reply = ice.handle(with_attribute(0x001C, bytes(32)), BROWSER, 0.0)  # MI-SHA256
    assert reply is not None
    response = stun.parse_message(reply)
    assert response.error_code == 420
    assert signed(response)
    # UNKNOWN-ATTRIBUTES (0x000A) lists 0x001C, padded to four bytes.
    assert bytes.fromhex("000a0002001c0000") in reply
    assert ice.dropped == {"unknown attribute": 1}
    assert not ice.is_valid(BROWSER)


def test_unknown_attribute_check_follows_authentication() -> None:
    ice = agent()
    response = answer(ice, with_attribute(0x001C, bytes(32), pwd=REMOTE_PWD))
    assert response.error_code == 401


def test_unknown_comprehension_optional_attribute_is_ignored() -> None:
    ice = agent()
    response = answer(ice, with_attribute(0xC057, bytes(4)))
    assert response.message_class == stun.Class.RESPONSE


# -- silent drops ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (binding(message_class=stun.Class.INDICATION), "indication"),
        (binding(message_class=stun.Class.RESPONSE), "response"),
        (binding(message_class=stun.Class.ERROR), "response"),
        (binding(method=stun.Method.ALLOCATE), "not binding"),
        (b"", "malformed"),
        (b"\x00\x01", "malformed"),
        (binding()[:-1], "malformed"),
        (binding()[:8] + b"\0" * 12, "malformed"),
        (binding()[:4] + b"\x00\x00\x00\x00" + binding()[8:], "malformed"),  # no cookie
        (b"\x00\x01\x00\x01" + binding()[4:], "malformed"),  # length not a multiple of 4
        (binding()[:-1] + bytes([binding()[-1] ^ 1]), "bad fingerprint"),
    ],
)
def test_dropped_silently(data: bytes, reason: str) -> None:
    ice = agent()
    assert ice.handle(data, BROWSER, 0.0) is None
    assert ice.dropped == {reason: 1}
    assert not ice.is_valid(BROWSER)


def test_every_truncation_is_dropped() -> None:
    ice = agent()
    data = binding(nominate=True)
    for end in range(len(data)):
        assert ice.handle(data[:end], BROWSER, 0.0) is None
    assert ice.selected is None


def test_trailing_bytes_are_dropped() -> None:
    ice = agent()
    assert ice.handle(binding() + b"\0\0\0\0", BROWSER, 0.0) is None


# -- validation and nomination -------------------------------------------------------------


def test_nothing_selected_before_a_check() -> None:
    ice = agent()
    assert ice.selected is None
    assert not ice.is_valid(BROWSER)


def test_latest_validated_is_selected_before_nomination() -> None:
    ice = agent()
    answer(ice, binding(), BROWSER)
    assert ice.selected == BROWSER
    answer(ice, binding(), OTHER)
    assert ice.selected == OTHER
    assert ice.is_valid(BROWSER) and ice.is_valid(OTHER)


def test_nominated_address_stays_selected() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER)
    answer(ice, binding(), OTHER)
    assert ice.selected == BROWSER
    assert ice.is_valid(OTHER)


def test_latest_nomination_wins() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER)
    answer(ice, binding(nominate=True), OTHER)
    assert ice.selected == OTHER


def test_validated_addresses_are_bounded_and_keep_the_nominated() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    sources = [("203.0.113.1", 1000 + i) for i in range(MAX_VALID_ADDRESSES + 4)]
    for i, source in enumerate(sources):
        answer(ice, binding(), source, float(i + 1))
    valid = [s for s in sources if ice.is_valid(s)]
    assert valid == sources[-(MAX_VALID_ADDRESSES - 1) :]
    assert ice.is_valid(BROWSER)
    assert ice.selected == BROWSER


def test_a_refreshed_address_is_not_the_oldest() -> None:
    ice = agent()
    sources = [("203.0.113.1", 1000 + i) for i in range(MAX_VALID_ADDRESSES)]
    for i, source in enumerate(sources):
        answer(ice, binding(), source, float(i))
    answer(ice, binding(), sources[0], 100.0)  # checked again: now the newest
    answer(ice, binding(), OTHER, 101.0)
    assert ice.is_valid(sources[0])
    assert not ice.is_valid(sources[1])


# -- ICE restart (RFC 8445 §9) -----------------------------------------------------------


def test_set_remote_reports_a_restart_only_on_change() -> None:
    ice = IceLite(LOCAL_UFRAG, LOCAL_PWD)
    assert ice.set_remote(REMOTE_UFRAG, REMOTE_PWD) is False  # first: nothing known
    assert ice.set_remote(REMOTE_UFRAG, REMOTE_PWD) is False  # unchanged
    assert ice.set_remote("nEw1", REMOTE_PWD) is True
    assert ice.set_remote("nEw1", "anotherPasswordOf24char") is True


def test_restart_keeps_media_on_the_old_pair_until_a_new_nomination() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    answer(ice, binding(), OTHER, 1.0)

    assert ice.set_remote("nEw1", "newBrowserPasswordOf24ch")
    ice.set_local("nEwR", "newRelayPasswordOf24char")
    # Validated state is gone, but data continues on the selected pair (§9).
    assert ice.selected == BROWSER
    assert ice.is_valid(BROWSER)
    assert not ice.is_valid(OTHER)

    # Old credentials no longer work.
    assert answer(ice, binding(), OTHER).error_code == 401
    # A new check that does not nominate does not move media yet.
    answer(ice, binding("nEwR:nEw1", "newRelayPasswordOf24char"), OTHER, 2.0)
    assert ice.selected == BROWSER
    assert ice.is_valid(OTHER)
    # The nomination completes the restart: the old address is forgotten.
    answer(ice, binding("nEwR:nEw1", "newRelayPasswordOf24char", nominate=True), OTHER, 3.0)
    assert ice.selected == OTHER
    assert not ice.is_valid(BROWSER)


def test_restart_before_any_check_selects_nothing() -> None:
    ice = agent()
    ice.set_local("nEwR", "newRelayPasswordOf24char")
    assert ice.selected is None
    assert ice.consent_deadline is None


def test_set_local_unchanged_is_not_a_restart() -> None:
    ice = agent()
    answer(ice, binding(), OTHER, 0.0)
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    ice.set_local(LOCAL_UFRAG, LOCAL_PWD)
    assert ice.is_valid(OTHER)


def test_set_local_alone_restarts() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    ice.set_local("nEwR", "newRelayPasswordOf24char")
    assert answer(ice, binding()).error_code == 401
    response = answer(ice, binding(f"nEwR:{REMOTE_UFRAG}", "newRelayPasswordOf24char"))
    assert signed(response, "newRelayPasswordOf24char")


# -- consent freshness (RFC 7675) ----------------------------------------------------------


def test_no_consent_to_lose_before_a_check() -> None:
    ice = agent()
    assert not ice.consent_expired(1_000_000.0)
    assert ice.consent_deadline is None


def test_consent_expires_without_checks() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 100.0)
    assert ice.consent_deadline == 100.0 + CONSENT_TIMEOUT
    assert not ice.consent_expired(129.9)
    assert ice.consent_expired(130.0)


def test_each_valid_check_refreshes_consent() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    answer(ice, binding(), BROWSER, 25.0)  # a consent check, no USE-CANDIDATE
    assert not ice.consent_expired(54.0)
    assert ice.consent_expired(55.0)


def test_checks_from_other_addresses_do_not_refresh_the_selected() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    answer(ice, binding(), OTHER, 20.0)
    assert ice.consent_expired(30.0)


def test_failed_checks_do_not_refresh_consent() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    ice.handle(binding(pwd=REMOTE_PWD), BROWSER, 20.0)
    ice.handle(binding(role="ICE-CONTROLLED"), BROWSER, 21.0)
    assert ice.consent_expired(30.0)


def test_consent_before_nomination_follows_the_latest_validated() -> None:
    ice = agent()
    answer(ice, binding(), BROWSER, 0.0)
    assert ice.consent_deadline == CONSENT_TIMEOUT


def test_consent_timeout_is_configurable() -> None:
    ice = agent(consent_timeout=5.0)
    answer(ice, binding(nominate=True), BROWSER, 0.0)
    assert ice.consent_expired(5.0)


def test_consent_carries_across_a_restart() -> None:
    ice = agent()
    answer(ice, binding(nominate=True), BROWSER, 10.0)
    ice.set_local("nEwR", "newRelayPasswordOf24char")
    assert ice.consent_deadline == 10.0 + CONSENT_TIMEOUT
    assert ice.consent_expired(40.0)
    # The held address checking with the new credentials refreshes it.
    answer(ice, binding(f"nEwR:{REMOTE_UFRAG}", "newRelayPasswordOf24char"), BROWSER, 35.0)
    assert not ice.consent_expired(40.0)


# -- never raises ----------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=200).map(lambda b: bytes([b[0] & 0x03]) + b[1:] if b else b))
def test_handle_never_raises_on_garbage(data: bytes) -> None:
    ice = agent()
    reply = ice.handle(data, BROWSER, 0.0)
    assert reply is None or stun.parse_message(reply).message_class == stun.Class.ERROR
    assert ice.selected is None


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([binding(), binding(nominate=True), binding(role=None)])))
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8))


@SETTINGS
@given(mutated())
def test_handle_never_raises_on_mutated_checks(data: bytes) -> None:
    ice = agent()
    reply = ice.handle(data, BROWSER, 0.0)
    if reply is not None:
        response = stun.parse_message(reply)
        if response.message_class == stun.Class.RESPONSE:
            # Only an intact, authenticated check validates its source.
            assert stun.parse_message(data).check_message_integrity(LOCAL_PWD.encode())
            assert ice.is_valid(BROWSER)
