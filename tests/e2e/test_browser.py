"""A real browser through Wedge: JsSIP in headless Chromium, over WebSocket.

The network, all on loopback::

    Chromium (phone.html,             Wedge                        Kamailio registrar
    JsSIP, fake microphone)                                        or SIPp UAS ("the PBX")
       page  -- ws -->  browsers 127.0.0.1:W
                        core     127.0.0.1:U  <-- udp -->  127.0.0.1:K / 127.0.0.1:S

- The page registers through Wedge to Kamailio: Wedge adds its Path with a flow
  token, the registrar echoes it, the page shows "registered"; then it unregisters
  and the registrar's answer lists no contact.
- The page calls SIPp through Wedge: Chromium's WebRTC offer (UDP/TLS/RTP/SAVPF,
  ICE with plain 127.0.0.1 host candidates, a DTLS fingerprint) goes out, the INVITE
  reaches SIPp with the browser's codecs, and a final response comes back to the
  page. Only the signalling is asserted, not audio (SIPp sends none): whether Wedge
  rewrites the offer to RTP/AVP for the PBX (its media relay) or passes it on, the
  ACK and the BYE must reach SIPp along the route Wedge recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from tests.e2e.browser import Browser, Page, browser_fixture  # noqa: F401 (the fixture)
from tests.e2e.conftest import (
    SCALE,
    KamailioFactory,
    ListenerSpec,
    Policy,
    Sipp,
    SippFactory,
    Wedge,
    WedgeFactory,
    free_port,
)

pytestmark = pytest.mark.e2e

LOCAL = "127.0.0.1"
DOMAIN = "wedge.test"
TOKEN = r"[A-Za-z0-9_-]+"
SIGNALLING_TIMEOUT = 10.0 * SCALE
"""The longest the page waits for a registration or a call to settle."""

T = TypeVar("T")


@dataclass
class Net:
    wedge: Wedge
    ws: int
    """W: Wedge's WebSocket listener, the one the page talks to."""
    core: int
    """U: Wedge's UDP listener, facing the registrar or the PBX."""

    @property
    def ws_url(self) -> str:
        return f"ws://{LOCAL}:{self.ws}"


def retried(start: Callable[[], T]) -> T:
    """``start()``, again (up to three times) if the server exits at start: a port
    free_port() found can be taken by another process before the server binds it."""
    for attempt in range(3):
        try:
            return start()
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def start_wedge(wedge: WedgeFactory, trunk_uri: str) -> Net:
    """Wedge with a WS listener for the browser and a UDP one for ``trunk_uri``,
    where every request goes."""
    return retried(lambda: _start_wedge(wedge, trunk_uri))


def _start_wedge(wedge: WedgeFactory, trunk_uri: str) -> Net:
    ws, core = free_port(LOCAL), free_port(LOCAL)
    policy = Policy(
        listeners=[
            ListenerSpec("browsers", "ws", LOCAL, ws),
            ListenerSpec("core", "udp", LOCAL, core),
        ],
        trunks=[{"name": "next", "uri": trunk_uri, "transport": "udp", "listener": "core"}],
        routes=[{"name": "all", "to_trunk": "next"}],
    )
    return Net(wedge(policy), ws, core)


def start_phone(browser: Browser, net: Net, user: str, *, register: bool) -> Page:
    page = browser.open(user)
    state = page.phone(
        "start",
        {"wsUrl": net.ws_url, "uri": f"sip:{user}@{DOMAIN}", "register": register},
    )
    assert state["transport"] == "connected", state
    return page


def call_settled(call: dict[str, Any] | None) -> bool:
    """The call is up (a 2xx, ACK sent) or over (a failure response, or a BYE)."""
    return call is not None and call["status"] in ("confirmed", "failed", "ended")


def wait_call(page: Page) -> dict[str, Any]:
    call: dict[str, Any] = page.wait_for(
        "phone.state().call",
        call_settled,
        SIGNALLING_TIMEOUT,
        "the call to be confirmed or to fail",
    )
    return call


def uas(sipp: SippFactory, scenario: str) -> Sipp:
    """A SIPp UAS (the PBX) on a free port."""
    return retried(lambda: sipp(scenario, transport="udp", local_port=free_port(LOCAL)))


def assert_browser_offer(body: str) -> None:
    """The WebRTC offer Chromium made, as JsSIP sent it."""
    assert re.search(r"^m=audio \d+ UDP/TLS/RTP/SAVPF( \d+)+\r?$", body, re.M), body
    for line in ("a=rtcp-mux", "a=setup:actpass"):
        assert re.search(rf"^{line}\r?$", body, re.M), f"no {line}:\n{body}"
    for attribute in ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:sha-256 "):
        assert re.search(rf"^{attribute}", body, re.M), f"no {attribute}:\n{body}"
    candidates = re.findall(r"^a=candidate:.*$", body, re.M)
    # Plain loopback host candidates: not hidden behind .local (mDNS) names.
    assert any(f" {LOCAL} " in c for c in candidates), candidates
    assert not any(".local " in c for c in candidates), candidates


def assert_offer_at_pbx(body: str, browser_offer: str) -> None:
    """The offer as SIPp got it: the browser's audio with some of its codecs, as the
    WebRTC offer passed on, or rewritten to plain RTP by Wedge's relay
    (ARCHITECTURE.md §5)."""
    match = re.search(r"^m=audio \d+ (UDP/TLS/RTP/SAVPF|RTP/AVP) ([\d ]+)\r?$", body, re.M)
    assert match, body
    sent = re.search(r"^m=audio \d+ \S+ ([\d ]+)\r?$", browser_offer, re.M)
    assert sent, browser_offer
    assert set(match[2].split()) <= set(sent[1].split()), f"payload types not offered:\n{body}"


def local_offer(page: Page) -> str:
    """The first offer the page's last call sent."""
    sdp: list[dict[str, str]] = page.phone("sdp")
    offers = [s["sdp"] for s in sdp if s["originator"] == "local" and s["type"] == "offer"]
    assert offers, sdp
    return offers[0]


# -- the tests -----------------------------------------------------------------------


def test_register_and_unregister(
    browser: Browser, wedge: WedgeFactory, kamailio: KamailioFactory
) -> None:
    registrar = retried(lambda: kamailio(host=LOCAL, port=free_port(LOCAL)))
    net = start_wedge(wedge, registrar.uri)
    page = start_phone(browser, net, "alice", register=True)

    page.wait_for("phone.registered()", timeout=SIGNALLING_TIMEOUT, what="the 200 to REGISTER")
    state = page.phone("state")
    assert state["registration"] == "registered", state["events"]
    response = state["registerResponse"]
    assert response["status"] == 200, response
    # The registrar stored Wedge's Path (flow token, core listener) and echoes it.
    assert len(response["path"]) == 1, response
    assert re.fullmatch(rf"<sip:{TOKEN}@{LOCAL}:{net.core};lr;ob>", response["path"][0]), response
    assert len(response["contact"]) == 1 and ".invalid" in response["contact"][0], response
    assert re.search(r"REGISTER of sip:alice@\S+ saved", registrar.log), registrar.log

    state = page.phone("unregister", timeout=SIGNALLING_TIMEOUT)
    assert state["registration"] == "unregistered", state["events"]
    assert not page.phone("registered")
    response = state["registerResponse"]
    assert response["status"] == 200, response
    assert response["contact"] == [], f"the registrar still lists a contact: {response}"
    assert state["lastError"] is None, state["lastError"]


def test_call_reaches_pbx_with_browser_offer(
    browser: Browser, wedge: WedgeFactory, sipp: SippFactory
) -> None:
    """INVITE from JsSIP to SIPp through Wedge; SIPp answers 180 and 200.

    With Wedge converting media the call is confirmed and the page hangs up; without,
    Chromium refuses SIPp's RTP/AVP answer and JsSIP sends the ACK, then a BYE.
    Either way both reach SIPp along the route Wedge recorded.
    """
    pbx = uas(sipp, "uas_call.xml")
    net = start_wedge(wedge, f"sip:{LOCAL}:{pbx.local_port}")
    page = start_phone(browser, net, "alice", register=False)

    page.phone("call", f"sip:600@{DOMAIN}")
    call = wait_call(page)
    assert 200 in call["responses"], call
    assert 180 in call["responses"], call
    offer = local_offer(page)
    assert_browser_offer(offer)
    if call["status"] not in ("failed", "ended"):
        page.phone("hangup")
    result = pbx.wait(SIGNALLING_TIMEOUT)
    assert result.returncode == 0, result.describe()

    invite = result.first("received", method="INVITE").request
    assert invite.headers.get("content-type") == "application/sdp", invite.headers
    assert_offer_at_pbx(invite.body.decode(), offer)
    assert len(invite.vias) == 2 and invite.vias[1].host.endswith(".invalid"), invite.vias
    assert len(invite.record_routes) == 2, invite.record_routes
    for method in ("ACK", "BYE"):
        request = result.first("received", method=method).request
        assert request.call_id == invite.call_id
        assert "route" not in request.headers, request.headers
    assert page.eval("phone.state().call.candidates.length") > 0


def test_call_refused_by_pbx(browser: Browser, wedge: WedgeFactory, sipp: SippFactory) -> None:
    """SIPp answers 486 Busy Here: the page sees the call fail with that status."""
    pbx = uas(sipp, "uas_busy.xml")
    net = start_wedge(wedge, f"sip:{LOCAL}:{pbx.local_port}")
    page = start_phone(browser, net, "bob", register=False)

    started = time.monotonic()
    page.phone("call", f"sip:600@{DOMAIN}")
    call = wait_call(page)
    assert call["status"] == "failed", call
    assert call["responses"][-1] == 486, call
    assert call["cause"] == "Busy", call
    assert call["endedBy"] == "remote", call
    error = page.eval("phone.state().lastError")
    assert error["what"] == "call failed" and error["status"] == 486, error
    offer = local_offer(page)
    assert_browser_offer(offer)
    result = pbx.wait(SIGNALLING_TIMEOUT)
    assert result.returncode == 0, result.describe()
    invite = result.first("received", method="INVITE").request
    assert_offer_at_pbx(invite.body.decode(), offer)
    assert time.monotonic() - started < SIGNALLING_TIMEOUT
