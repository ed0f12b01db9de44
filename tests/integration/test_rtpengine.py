"""The rtpengine client against fake rtpengines on 127.0.0.1: UDP ng with lost,
late, stale, broken and missing replies, and several instances with weights.

Each :class:`FakeRtpengine` answers ng like rtpengine (its SDP rewrite is a marker
line naming it), and can be told to go silent, drop requests, or answer badly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import cast

import pytest

from media import ng
from media.control import CallStats, MediaError, Negotiation, TimeoutHandler
from media.rtpengine import (
    Instance,
    InstanceSpec,
    RtpengineRelay,
    RtpengineUnavailable,
    Settings,
    choose,
    start_rtpengine,
)
from sdp.rewrite import AVP, WEBRTC
from tests.integration.conftest import MS

pytestmark = pytest.mark.integration

LOCAL = "127.0.0.1"
FAST = Settings(
    request_timeout=300 * MS,
    new_call_timeout=700 * MS,
    ping_interval=50 * MS,
    ping_timeout=150 * MS,
    sweep_interval=0,
)
OFFER_SDP = b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
ANSWER_SDP = b"v=0\r\nm=audio 10000 RTP/AVP 0\r\n"


def offer_of(call_id: str) -> Negotiation:
    return Negotiation(call_id, "caller", None, WEBRTC, AVP)


def answer_of(call_id: str) -> Negotiation:
    return Negotiation(call_id, "callee", "caller", AVP, WEBRTC)


class FakeRtpengine(asyncio.DatagramProtocol):
    """Answers ng requests as rtpengine would; ``behave`` changes how."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None
        self.datagrams: list[tuple[str, dict[bytes, ng.Value]]] = []
        self.calls: set[str] = set()
        self.silent = False
        self.drop = 0
        """Requests (datagrams) to ignore before answering again."""
        self.reply_hook: Callable[[str, bytes, tuple[str, int]], bool] | None = None
        """Called before each answer; True: it answered, do nothing more."""

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    @property
    def spec(self) -> InstanceSpec:
        return InstanceSpec(LOCAL, self.port)

    def commands(self, name: str | None = None) -> list[dict[bytes, ng.Value]]:
        return [
            body for _, body in self.datagrams if name is None or body[b"command"] == name.encode()
        ]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        cookie, body = ng.unframe(data)
        self.datagrams.append((cookie, body))
        if self.silent:
            return
        if self.drop:
            self.drop -= 1
            return
        if self.reply_hook is not None and self.reply_hook(cookie, data, addr):
            return
        self.transport.sendto(ng.frame(cookie, self.answer(body)), addr)

    def answer(self, body: dict[bytes, ng.Value]) -> ng.Message:
        command = body[b"command"]
        call_id = body.get(b"call-id", b"")
        assert isinstance(call_id, bytes)
        call = call_id.decode()
        if command == b"ping":
            return {"result": "pong"}
        if command in (b"offer", b"answer"):
            sdp = body[b"sdp"]
            assert isinstance(sdp, bytes)
            self.calls.add(call)
            return {"result": "ok", "sdp": f"a=via:{self.name}\r\n".encode() + sdp}
        if call not in self.calls:
            return {"result": "error", "error-reason": "Unknown call-id"}
        if command == b"delete":
            self.calls.discard(call)
        streams = [{"flags": ["RTP"], "stats": {"packets": 100, "bytes": 17200, "errors": 0}}]
        return {
            "result": "ok",
            "tags": {
                tag: {"tag": tag, "medias": [{"streams": streams}]} for tag in ("caller", "callee")
            },
        }


class FakeRelay:
    """A fallback MediaControl that records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.closed = False
        self.handler: TimeoutHandler | None = None

    async def offer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        self.asked.append(("offer", negotiation.call_id))
        return b"a=via:builtin\r\n" + sdp

    async def answer(self, negotiation: Negotiation, sdp: bytes) -> bytes:
        self.asked.append(("answer", negotiation.call_id))
        return b"a=via:builtin\r\n" + sdp

    async def delete(self, call_id: str) -> CallStats | None:
        self.asked.append(("delete", call_id))
        return CallStats(call_id)

    async def stats(self, call_id: str) -> CallStats | None:
        return CallStats(call_id)

    def on_timeout(self, handler: TimeoutHandler) -> None:
        self.handler = handler

    async def close(self) -> None:
        self.closed = True


class Fakes:
    """Fake rtpengines on 127.0.0.1, each on a port of its own; closed at teardown."""

    def __init__(self) -> None:
        self.transports: list[asyncio.DatagramTransport] = []

    async def start(self, name: str) -> FakeRtpengine:
        loop = asyncio.get_running_loop()
        transport, fake = await loop.create_datagram_endpoint(
            lambda: FakeRtpengine(name), local_addr=(LOCAL, 0)
        )
        self.transports.append(transport)
        return fake

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    started = Fakes()
    yield started
    started.close()


def draws(*values: float) -> Callable[[], float]:
    cycle: Iterator[float] = itertools.cycle(values)
    return lambda: next(cycle)


async def test_offer_answer_delete_on_one_instance(fakes: Fakes) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=FAST)
    try:
        sdp = await relay.offer(offer_of("c1"), OFFER_SDP)
        assert sdp == b"a=via:one\r\n" + OFFER_SDP
        assert await relay.answer(answer_of("c1"), ANSWER_SDP) == b"a=via:one\r\n" + ANSWER_SDP
        stats = await relay.stats("c1")
        assert stats is not None and [leg.packets for leg in stats.legs] == [100, 100]
        stats = await relay.delete("c1")
        assert stats is not None and [leg.tag for leg in stats.legs] == ["caller", "callee"]
        assert await relay.delete("c1") is None
        # What went over the wire is what media.ng builds, bencoded.
        [offer] = one.commands("offer")
        assert offer == ng.bdecode(ng.bencode(ng.offer(offer_of("c1"), OFFER_SDP)))
        [delete] = one.commands("delete")
        assert delete == {b"command": b"delete", b"call-id": b"c1", b"from-tag": b"caller",
                          b"delete-delay": 0}  # fmt: skip
        with pytest.raises(MediaError) as info:
            await relay.answer(answer_of("nope"), ANSWER_SDP)
        assert info.value.status == 500
    finally:
        await relay.close()


async def test_a_lost_request_is_sent_again_with_the_same_cookie(fakes: Fakes) -> None:
    one = await fakes.start("one")
    patient = Settings(request_timeout=2000 * MS, new_call_timeout=3000 * MS, sweep_interval=0)
    relay = await start_rtpengine([one.spec], settings=patient)
    try:
        before = len(one.datagrams)
        one.drop = 2
        assert await relay.offer(offer_of("c1"), OFFER_SDP) == b"a=via:one\r\n" + OFFER_SDP
        sent = one.datagrams[before:]
        assert len(sent) == 3 and len({cookie for cookie, _ in sent}) == 1
    finally:
        await relay.close()


async def test_a_reply_with_a_stale_cookie_is_ignored(fakes: Fakes) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=FAST)

    def stale_first(cookie: str, data: bytes, addr: tuple[str, int]) -> bool:
        assert one.transport is not None
        one.reply_hook = None
        wrong = {"result": "ok", "sdp": "v=0 from an old request"}
        one.transport.sendto(ng.frame(cookie + "x", wrong), addr)  # a cookie nobody waits for
        return False  # ... and then the right reply

    try:
        one.reply_hook = stale_first
        assert await relay.offer(offer_of("c1"), OFFER_SDP) == b"a=via:one\r\n" + OFFER_SDP
    finally:
        await relay.close()


@pytest.mark.parametrize(
    ("reply", "status"),
    [(b"COOKIE not bencode", 500), (b"COOKIE li1ee", 500), (b"COOKIE d3:sdp1:xe", 500)],
    ids=["garbage", "not-a-dict", "no-result"],
)
async def test_a_broken_reply_fails_its_request_at_once(
    fakes: Fakes, reply: bytes, status: int
) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=Settings(request_timeout=5.0))

    def broken(cookie: str, data: bytes, addr: tuple[str, int]) -> bool:
        assert one.transport is not None
        one.transport.sendto(reply.replace(b"COOKIE", cookie.encode()), addr)
        return True

    try:
        one.reply_hook = broken
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MediaError) as info:
            await relay.offer(offer_of("c1"), OFFER_SDP)
        assert info.value.status == status
        assert loop.time() - started < 1.0, "it waited for the timeout"
    finally:
        await relay.close()


async def test_garbage_without_a_cookie_is_dropped_and_the_reply_still_counts(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=FAST)

    def noise_first(cookie: str, data: bytes, addr: tuple[str, int]) -> bool:
        assert one.transport is not None
        one.reply_hook = None
        one.transport.sendto(b"\x00\xff no cookie here", addr)
        return False

    try:
        one.reply_hook = noise_first
        assert await relay.offer(offer_of("c1"), OFFER_SDP) == b"a=via:one\r\n" + OFFER_SDP
        assert "bad reply of 17 bytes dropped: no cookie" in caplog.text
    finally:
        await relay.close()


async def test_an_oversized_reply_is_an_error(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=Settings(max_reply=1000))

    def huge(cookie: str, data: bytes, addr: tuple[str, int]) -> bool:
        assert one.transport is not None
        one.transport.sendto(ng.frame(cookie, {"result": "ok", "sdp": "x" * 2000}), addr)
        return True

    try:
        one.reply_hook = huge
        with pytest.raises(MediaError) as info:
            await relay.offer(offer_of("c1"), OFFER_SDP)
        assert info.value.status == 500 and "more than 1000" in info.value.reason
        assert "more than 1000" in caplog.text
    finally:
        await relay.close()


async def test_silent_rtpengine_means_503_in_bounded_time(fakes: Fakes) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=FAST)
    try:
        one.silent = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MediaError) as info:
            await relay.offer(offer_of("c1"), OFFER_SDP)
        elapsed = loop.time() - started
        assert info.value.status == 503, info.value.reason
        assert "did not answer" in info.value.reason
        assert elapsed <= FAST.new_call_timeout + 0.2, elapsed
        # Known down now: the next call is refused without waiting.
        started = loop.time()
        with pytest.raises(MediaError) as info:
            await relay.offer(offer_of("c2"), OFFER_SDP)
        assert info.value.status == 503 and loop.time() - started < 0.1
    finally:
        await relay.close()


async def test_an_error_result_is_488_or_500_with_rtpengines_reason(fakes: Fakes) -> None:
    one = await fakes.start("one")
    relay = await start_rtpengine([one.spec], settings=FAST)

    def refuse(cookie: str, data: bytes, addr: tuple[str, int]) -> bool:
        assert one.transport is not None
        refusal = {"result": "error", "error-reason": "Failed to parse SDP"}
        one.transport.sendto(ng.frame(cookie, refusal), addr)
        return True

    try:
        one.reply_hook = refuse
        with pytest.raises(MediaError) as info:
            await relay.offer(offer_of("c1"), OFFER_SDP)
        assert (info.value.status, info.value.reason) == (
            488,
            "rtpengine offer: Failed to parse SDP",
        )
        assert "c1" not in relay.calls
    finally:
        await relay.close()


async def test_fallback_takes_new_calls_when_no_rtpengine_answers(fakes: Fakes) -> None:
    one = await fakes.start("one")
    one.silent = True
    builtin = FakeRelay()
    relay = await start_rtpengine([one.spec], settings=FAST, fallback=builtin)
    try:
        assert await relay.offer(offer_of("c1"), OFFER_SDP) == b"a=via:builtin\r\n" + OFFER_SDP
        await relay.answer(answer_of("c1"), ANSWER_SDP)
        # The call stays on the built-in relay, even once rtpengine is back.
        one.silent = False
        await asyncio.sleep(FAST.ping_interval * 4)
        await relay.offer(Negotiation("c1", "caller", "callee", WEBRTC, AVP), OFFER_SDP)
        await relay.delete("c1")
        assert builtin.asked == [
            ("offer", "c1"),
            ("answer", "c1"),
            ("offer", "c1"),
            ("delete", "c1"),
        ]
        # A new call goes to rtpengine again.
        assert await relay.offer(offer_of("c2"), OFFER_SDP) == b"a=via:one\r\n" + OFFER_SDP
        # The built-in relay's timeouts reach the handler, for its calls only.
        ended: list[str] = []
        relay.on_timeout(ended.append)
        assert builtin.handler is not None
        await relay.offer(offer_of("c3"), OFFER_SDP)
        builtin.handler("c2")
        assert ended == [] and "c2" in relay.calls
    finally:
        await relay.close()
    assert builtin.closed


async def test_start_refuses_when_nobody_answers_and_no_fallback(fakes: Fakes) -> None:
    one = await fakes.start("one")
    one.silent = True
    with pytest.raises(RtpengineUnavailable) as info:
        await start_rtpengine([one.spec, InstanceSpec(LOCAL, 9)], settings=FAST)
    message = str(info.value)
    assert f"{LOCAL}:{one.port}, {LOCAL}:9" in message and 'fallback = "builtin"' in message
    relay = await start_rtpengine([one.spec], settings=FAST, fallback=FakeRelay())
    await relay.close()


async def test_weights_spread_new_calls_and_calls_stay_on_their_instance(fakes: Fakes) -> None:
    heavy, light = await fakes.start("heavy"), await fakes.start("light")
    specs = [InstanceSpec(LOCAL, heavy.port, 3), InstanceSpec(LOCAL, light.port, 1)]
    # Draws in [0, 1) times the total weight 4: 0.4 and 2.0 land on heavy, 3.2 on light.
    relay = await start_rtpengine(specs, settings=FAST, draw=draws(0.1, 0.5, 0.8))
    try:
        for call in ("c1", "c2", "c3"):
            await relay.offer(offer_of(call), OFFER_SDP)
        assert sorted(heavy.calls) == ["c1", "c2"] and sorted(light.calls) == ["c3"]
        # Answers, re-offers and deletes follow the call, whatever the draw says.
        await relay.answer(answer_of("c3"), ANSWER_SDP)
        await relay.offer(Negotiation("c3", "callee", "caller", AVP, WEBRTC), ANSWER_SDP)
        assert [c[b"call-id"] for c in heavy.commands() if c[b"command"] != b"ping"] == [
            b"c1",
            b"c2",
        ]
        assert len(light.commands("answer")) == 1 and len(light.commands("offer")) == 2
    finally:
        await relay.close()


async def test_new_calls_fail_over_while_live_calls_stay(fakes: Fakes) -> None:
    first, second = await fakes.start("first"), await fakes.start("second")
    specs = [first.spec, second.spec]
    relay = await start_rtpengine(specs, settings=FAST, draw=draws(0.0, 0.99))
    try:
        await relay.offer(offer_of("on-first"), OFFER_SDP)
        await relay.offer(offer_of("on-second"), OFFER_SDP)
        assert "on-first" in first.calls and "on-second" in second.calls
        first.silent = True
        # A new call drawn for the silent instance moves on to the other one.
        loop = asyncio.get_running_loop()
        started = loop.time()
        sdp = await relay.offer(offer_of("new"), OFFER_SDP)
        assert sdp == b"a=via:second\r\n" + OFFER_SDP and "new" in second.calls
        assert loop.time() - started < FAST.new_call_timeout + 0.2
        # The call on the survivor goes on; the one on the silent instance gets 503.
        assert await relay.answer(answer_of("on-second"), ANSWER_SDP)
        with pytest.raises(MediaError) as info:
            await relay.answer(answer_of("on-first"), ANSWER_SDP)
        assert info.value.status == 503
        # Health pings bring it back for new calls.
        first.silent = False
        async with asyncio.timeout(2):
            while not relay.instances[0].up:
                await asyncio.sleep(FAST.ping_interval)
        await relay.offer(offer_of("back"), OFFER_SDP)
        assert "back" in first.calls
    finally:
        await relay.close()


async def test_a_call_rtpengine_ended_is_reported_as_a_media_timeout(fakes: Fakes) -> None:
    one = await fakes.start("one")
    sweeping = Settings(request_timeout=300 * MS, ping_interval=1.0, sweep_interval=100 * MS)
    relay = await start_rtpengine([one.spec], settings=sweeping)
    ended: list[str] = []
    relay.on_timeout(ended.append)
    try:
        await relay.offer(offer_of("c1"), OFFER_SDP)
        await relay.offer(offer_of("c2"), OFFER_SDP)
        one.calls.discard("c1")  # rtpengine's --timeout ended it
        async with asyncio.timeout(2):
            while not ended:
                await asyncio.sleep(20 * MS)
        assert ended == ["c1"] and list(relay.calls) == ["c2"]
    finally:
        await relay.close()
    # close() deleted what was left.
    assert one.calls == set()


def test_choose_by_weight_among_live_instances() -> None:
    settings = Settings()
    a, b, c = (
        Instance(InstanceSpec(LOCAL, port, weight), lambda: "x", settings)
        for port, weight in ((1, 1), (2, 2), (3, 0))
    )
    assert choose([a, b, c], 0.5) is None  # nobody up
    a.up = b.up = c.up = True
    picks = [choose([a, b, c], i / 30) for i in range(30)]
    assert picks.count(a) == 10 and picks.count(b) == 20 and c not in picks
    b.up = False
    assert choose([a, b, c], 0.99) is a
    assert str(Instance(InstanceSpec("::1", 2223), lambda: "x", settings)) == "[::1]:2223"


async def test_rtpengine_relay_is_a_media_control() -> None:
    from media.control import MediaControl

    relay: MediaControl = RtpengineRelay([], FAST)
    with pytest.raises(MediaError) as info:
        await relay.offer(offer_of("c1"), OFFER_SDP)
    assert info.value.status == 503
    await relay.close()
