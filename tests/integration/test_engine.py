"""The engine between transports and the core: a bug on one message stays there."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.engine import Engine
from gateway.sip import Flow

FLOW = Flow("tcp", ("127.0.0.1", 5060), ("127.0.0.1", 40000), 3)


class BrokenOnBoom:
    """A core that fails on one message as a bug would, and records the others."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        if data.startswith(b"BOOM"):
            raise RuntimeError("a bug")
        self.received.append(data)

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        return []

    def media_jobs(self) -> list[object]:
        return []

    def get_timer(self) -> float | None:
        return None


async def test_an_internal_error_drops_that_message_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(asyncio.get_running_loop())
    core = BrokenOnBoom()
    engine.attach(core)  # type: ignore[arg-type]
    engine.message_received(b"BOOM sip:x SIP/2.0\r\nVia: ...\r\n\r\n", FLOW)
    engine.message_received(b"OPTIONS sip:x SIP/2.0\r\n\r\n", FLOW)
    assert core.received == [b"OPTIONS sip:x SIP/2.0\r\n\r\n"]
    [record] = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert "first-line=b'BOOM sip:x SIP/2.0'" in record.getMessage()
    assert record.exc_info is not None  # the traceback, for the bug report


class BrokenTimer(BrokenOnBoom):
    """A core whose first timer fails; it asks for the timer again each time."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = 0
        self.deadline: float | None = 0.0

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.fired += 1
        self.deadline = now + 0.01 if self.fired < 3 else None
        if self.fired == 1:
            raise RuntimeError("a bug")


async def test_a_failed_timer_is_armed_again(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(asyncio.get_running_loop())
    core = BrokenTimer()
    engine.attach(core)  # type: ignore[arg-type]
    engine.poke()
    async with asyncio.timeout(5):
        while core.fired < 3:
            await asyncio.sleep(0.01)
    assert any("timer work failed" in r.getMessage() for r in caplog.records)


class Deadlines(BrokenOnBoom):
    """A core whose next deadline each message sets; it records when its timer ran."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.deadline: float | None = None
        self.due: list[float] = []
        self.ran: list[tuple[float, float]] = []  # (loop time, deadline then due)

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self.due.append(now + float(data))
        self.deadline = min(self.due)

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.ran.append((self.loop.time(), min(self.due)))
        self.due = [due for due in self.due if due > now]
        self.deadline = min(self.due, default=None)


async def test_the_timer_serves_the_soonest_deadline_and_the_later_ones_after_it() -> None:
    loop = asyncio.get_running_loop()
    engine = Engine(loop)
    core = Deadlines(loop)
    engine.attach(core)  # type: ignore[arg-type]
    start = loop.time()
    for delay in (b"0.15", b"0.30", b"0.05", b"0.20"):  # later ones keep the timer set
        engine.message_received(delay, FLOW)
    async with asyncio.timeout(5):
        while core.due:
            await asyncio.sleep(0.01)
    ran_at = [round(when - start, 2) for when, _ in core.ran]
    # Every deadline was served once, in order, none before its time (asyncio may
    # run a timer up to its clock's resolution early; the core is told "now" then).
    resolution = time.get_clock_info("monotonic").resolution
    assert all(when >= due - resolution for when, due in core.ran)
    assert len(ran_at) == 4 and ran_at == sorted(ran_at)
