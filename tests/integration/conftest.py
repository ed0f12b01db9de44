"""Fixtures for the shells on 127.0.0.1: a recording receiver and a test PKI.

Every wait is bounded: timeouts are written in the unit ``MS``, which the
``WEDGE_TEST_TIMEOUT_SCALE`` environment variable stretches on slow machines
(the ``MS`` of websockets' tests/utils.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs.generate import cert_pem, key_pem, make_ca, make_certificate, write_pem
from gateway.sip import Flow

MS = 0.001 * float(os.environ.get("WEDGE_TEST_TIMEOUT_SCALE", "1"))
"""One millisecond, scaled."""
TIMEOUT = 5000 * MS
"""The longest any single wait in these tests may take."""


class RecordingReceiver:
    """A :class:`gateway.transport.base.Receiver` that records what it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Flow]] = []
        self.failures: list[tuple[Flow, str]] = []
        self._changed = asyncio.Event()

    def message_received(self, data: bytes, flow: Flow) -> None:
        self.messages.append((data, flow))
        self._changed.set()

    def flow_failed(self, flow: Flow, reason: str) -> None:
        self.failures.append((flow, reason))
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``condition()`` holds; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_messages(
        self, count: int = 1, timeout: float = TIMEOUT
    ) -> list[tuple[bytes, Flow]]:
        """The first ``count`` messages, once they have arrived."""
        await self.wait_for(lambda: len(self.messages) >= count, timeout)
        return self.messages[:count]

    async def wait_failure(self, flow: Flow, timeout: float = TIMEOUT) -> str:
        """The reason of the first failure reported for ``flow``."""
        await self.wait_for(lambda: any(f == flow for f, _ in self.failures), timeout)
        return next(reason for f, reason in self.failures if f == flow)


def request(number: int = 1, body: bytes = b"", method: str = "OPTIONS") -> bytes:
    """A small valid request with RFC 5737 addresses; ``number`` tells them apart."""
    return (
        f"{method} sip:bob@192.0.2.20 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-{number}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@192.0.2.10>;tag=a1\r\n"
        "To: <sip:bob@192.0.2.20>\r\n"
        f"Call-ID: call-{number}@192.0.2.10\r\n"
        f"CSeq: {number} {method}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA, a server and a client it signed, and an unrelated
    ("rogue") CA with its own server certificate for the negative tests."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path
    server_pin: str


SERVER_NAME = "sip.wedge.test"
"""The DNS name in the test server certificate (with localhost and 127.0.0.1)."""


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from certs.generate import spki_pin_sha256

    now = datetime.now(UTC)
    folder = tmp_path_factory.mktemp("pki")

    def save(name: str, data: bytes) -> Path:
        path = folder / name
        write_pem(path, data)
        return path

    ca, ca_key = make_ca("Wedge Test CA", now=now)
    server, server_key = make_certificate(
        ca, ca_key, SERVER_NAME, [SERVER_NAME, "localhost"], ["127.0.0.1"], now=now
    )
    client, client_key = make_certificate(ca, ca_key, "browser", now=now, client=True)
    rogue_ca, rogue_ca_key = make_ca("Rogue CA", now=now)
    rogue, rogue_key = make_certificate(
        rogue_ca, rogue_ca_key, SERVER_NAME, [SERVER_NAME, "localhost"], ["127.0.0.1"], now=now
    )
    return Pki(
        ca=save("ca.pem", cert_pem(ca)),
        server_cert=save("server.pem", cert_pem(server)),
        server_key=save("server.key", key_pem(server_key)),
        client_cert=save("client.pem", cert_pem(client)),
        client_key=save("client.key", key_pem(client_key)),
        rogue_ca=save("rogue-ca.pem", cert_pem(rogue_ca)),
        rogue_cert=save("rogue.pem", cert_pem(rogue)),
        rogue_key=save("rogue.key", key_pem(rogue_key)),
        server_pin=spki_pin_sha256(server),
    )


@pytest.fixture
def receiver() -> RecordingReceiver:
    return RecordingReceiver()
