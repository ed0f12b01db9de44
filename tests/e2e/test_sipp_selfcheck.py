"""The SIPp scenarios checked against each other, without Wedge.

Each UAC scenario calls its UAS partner directly, over UDP and TCP, for two
calls: both must exit 0 with every call successful, and every message either
side logged must be one Wedge's parser accepts. What the scenarios do through a
proxy (route sets, flow tokens) is test_proxy_calls.py's business; this only
proves the scenarios themselves are sound.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import SippFactory, SippResult, free_port

pytestmark = pytest.mark.e2e

CALLS = 2

PAIRS = [
    ("uac_call.xml", "uas_call.xml"),
    ("uac_cancel.xml", "uas_cancel.xml"),
    ("uac_busy.xml", "uas_busy.xml"),
    ("uac_503.xml", "uas_503.xml"),
    ("uac_timeout.xml", "uas_408.xml"),  # uas_408 stands in for the proxy's Timer B
    ("uac_reinvite.xml", "uas_reinvite.xml"),
    ("uac_reinvite_callee.xml", "uas_reinvite_callee.xml"),
    ("uac_bye_from_callee.xml", "uas_bye_from_callee.xml"),
    ("uac_callee_reinvite_bye.xml", "uas_callee_reinvite_bye.xml"),
]


def call_counts(result: SippResult) -> tuple[int, int]:
    """(successful, failed) calls from SIPp's final statistics screen (cumulative column)."""
    counts = []
    for label in ("Successful call", "Failed call"):
        match = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", result.stdout)
        assert match, f"no '{label}' line in SIPp's output:\n{result.stdout[-2000:]}"
        counts.append(int(match[-1]))
    return counts[0], counts[1]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("uac", "uas"), PAIRS, ids=[p[0][4:-4] for p in PAIRS])
def test_scenario_pair(sipp: SippFactory, uac: str, uas: str, transport: str) -> None:
    uas_port, uac_port = free_port(), free_port()
    server = sipp(uas, transport=transport, local_port=uas_port, calls=CALLS)
    client = sipp(
        uac,
        transport=transport,
        local_port=uac_port,
        remote=f"127.0.0.1:{uas_port}",
        calls=CALLS,
        rate=10,
    )
    caller = client.wait()
    callee = server.wait()

    assert caller.returncode == 0, caller.describe()
    assert callee.returncode == 0, callee.describe()
    assert call_counts(caller) == (CALLS, 0)
    assert call_counts(callee) == (CALLS, 0)
    for side in (caller, callee):
        logged = side.messages
        assert logged, side.log
        unparsed = [item.text for item in logged if item.message is None]
        assert not unparsed, f"messages Wedge's parser refuses: {unparsed}"
        assert {item.transport for item in logged} == {transport.upper()}
    # Every call of the UAC reached the UAS under the same Call-ID.
    sent = {item.request.call_id for item in caller.find("sent", method="INVITE")}
    received = {item.request.call_id for item in callee.find("received", method="INVITE")}
    assert len(sent) == CALLS
    assert sent <= received


def test_in_dialog_requests_from_the_callee_swap_from_and_to(sipp: SippFactory) -> None:
    """The callee's BYE carries the dialog's tags the right way round (RFC 3261 12.2.1.1)."""
    uas_port, uac_port = free_port(), free_port()
    server = sipp("uas_bye_from_callee.xml", local_port=uas_port)
    client = sipp("uac_bye_from_callee.xml", local_port=uac_port, remote=f"127.0.0.1:{uas_port}")
    caller, callee = client.wait(), server.wait()
    assert caller.returncode == 0, caller.describe()
    assert callee.returncode == 0, callee.describe()

    invite = caller.first("sent", method="INVITE").request
    ok = caller.first("received", status=200, cseq_method="INVITE").response
    bye = caller.first("received", method="BYE").request
    assert bye.from_.tag == ok.to.tag
    assert bye.to.tag == invite.from_.tag
    assert bye.call_id == invite.call_id
    assert bye.uri == invite.contacts[0].uri_text  # the caller's Contact is the remote target
    assert "route" not in bye.headers  # no proxy, no Record-Route, no route set
