"""Properties of the SIP core, over generated input (hypothesis)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip import MessageFramed, ParseError, StreamFramer, parse_message
from tests.fuzz.sip_message import fuzz_one, mutate

FIXTURES = [
    path.read_bytes()
    for path in sorted((Path(__file__).parents[3] / "data" / "sip").rglob("*.dat"))
]

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
REASON = st.text(alphabet="abc XYZ", max_size=10)
USER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~+", min_size=1, max_size=12)
HOST = st.sampled_from(["example.com", "192.0.2.7", "[2001:db8::9]", "a-b.c.example.org"])
SPACE = st.sampled_from(["", " ", "  ", "\t"])
FOLD = st.sampled_from(["", "\r\n ", "\r\n\t"])
DISPLAY = st.sampled_from(["", "Alice ", '"A, B" ', '"say \\"hi\\"" '])


@st.composite
def sip_messages(draw: st.DrawFn) -> bytes:
    """Valid messages with the variety RFC 3261 allows: case, compact forms, LWS, folds."""

    def name(full: str, compact: str | None = None) -> str:
        choices = [full, full.lower(), full.upper()] + ([compact] if compact else [])
        return draw(st.sampled_from(choices)) + draw(SPACE)

    method = draw(st.sampled_from(["INVITE", "OPTIONS", "BYE", "MESSAGE", draw(TOKEN)]))
    is_request = draw(st.booleans())
    host = draw(HOST)
    start = (
        f"{method} sip:{draw(USER)}@{host} SIP/2.0"
        if is_request
        else f"SIP/2.0 {draw(st.integers(100, 699))} {draw(REASON)}"
    )
    branch = "z9hG4bK" + draw(TOKEN)
    headers = [
        f"{name('Via', 'v')}:{draw(SPACE)}SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'WSS']))} "
        f"{host}{draw(st.sampled_from(['', ':5060']))};branch={branch}",
        f"{name('From', 'f')}: {draw(DISPLAY)}<sip:{draw(USER)}@{host}>;tag={draw(TOKEN)}",
        f"{name('To', 't')}:{draw(FOLD)} sip:{draw(USER)}@{host}",
        f"{name('Call-ID', 'i')}: {draw(TOKEN)}@{host}",
        f"{name('CSeq')}: {draw(st.integers(0, 2**31 - 1))}{draw(FOLD)} {method}",
        f"{name('Max-Forwards')}: {draw(st.integers(0, 255))}",
    ]
    for _ in range(draw(st.integers(0, 4))):
        value = draw(st.text(alphabet='abc ;,=<>"@:/xyz019', max_size=30)).strip()
        headers.append(f"X-{draw(TOKEN)}: {value}")
    headers = draw(st.permutations(headers))
    body = draw(st.binary(max_size=64))
    headers.append(f"{name('Content-Length', 'l')}: {len(body)}")
    return ("\r\n".join([start, *headers]) + "\r\n\r\n").encode() + body


@given(sip_messages())
@settings(max_examples=300)
def test_generated_messages_round_trip(data: bytes) -> None:
    message = parse_message(data)
    assert bytes(message) == data
    message.headers.prepend("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK.edit")
    edited = parse_message(bytes(message))
    assert edited.via.branch == "z9hG4bK.edit"
    assert edited.body == message.body


@given(st.binary(max_size=2048))
@settings(max_examples=500)
def test_arbitrary_bytes_give_a_message_or_parse_error(data: bytes) -> None:
    fuzz_one(data)


@given(st.sampled_from(FIXTURES), st.randoms(use_true_random=False))
@settings(max_examples=500)
def test_mutated_fixtures_keep_the_contract(data: bytes, rng: object) -> None:
    fuzz_one(mutate(data, rng))  # type: ignore[arg-type]


@given(st.lists(sip_messages(), min_size=1, max_size=4), st.lists(st.integers(1, 200), max_size=20))
@settings(max_examples=200)
def test_framer_recovers_the_messages_from_any_chunking(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(messages)
    framer = StreamFramer()
    events = []
    position = 0
    for size in cuts:
        events.extend(framer.receive_data(stream[position : position + size]))
        position += size
    events.extend(framer.receive_data(stream[position:]))
    assert events == [MessageFramed(message) for message in messages]


def test_parse_error_carries_a_status() -> None:
    error = ParseError("missing Call-ID")
    assert (error.reason, error.status) == ("missing Call-ID", 400)
