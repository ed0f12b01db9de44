"""gateway.proxy.flowtoken: tokens name flows and cannot be forged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.proxy.flowtoken import FlowTokens
from gateway.sip import Flow, parse_uri

TOKENS = FlowTokens(b"secret-secret-secret")


@pytest.mark.parametrize(
    "flow",
    [
        Flow("wss", ("127.0.0.1", 8443), ("198.51.100.7", 50000), 7),
        Flow("udp", ("192.0.2.5", 5060), ("192.0.2.20", 5060)),
        Flow("tls", ("2001:db8::1", 5061), ("2001:db8::99", 40000), 2**40),
        Flow("tcp", ("0.0.0.0", 5060), ("2001:db8::99", 40000), 1),
    ],
)
def test_round_trip(flow: Flow) -> None:
    token = TOKENS.encode(flow)
    again = TOKENS.decode(token)
    assert again is not None
    assert again.transport == flow.transport and again.connection == flow.connection
    assert again.remote[1] == flow.remote[1] and again.local[1] == flow.local[1]
    # A token is a valid SIP URI user part.
    assert parse_uri(f"sip:{token}@example.com").user == token  # type: ignore[union-attr]


def test_another_secret_cannot_read_or_forge() -> None:
    token = TOKENS.encode(Flow("udp", ("192.0.2.5", 5060), ("192.0.2.20", 5060)))
    assert FlowTokens(b"another-secret-0000").decode(token) is None


@given(st.text(max_size=80))
def test_garbage_decodes_to_none(text: str) -> None:
    assert TOKENS.decode(text) is None


@given(st.integers(0, 200), st.integers(0, 255))
def test_any_flipped_byte_is_refused(position: int, value: int) -> None:
    token = TOKENS.encode(Flow("wss", ("127.0.0.1", 8443), ("198.51.100.7", 50000), 7))
    changed = list(token)
    index = position % len(changed)
    replacement = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[value % 64]
    if changed[index] == replacement:
        return
    changed[index] = replacement
    assert TOKENS.decode("".join(changed)) is None


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        FlowTokens(b"short")
