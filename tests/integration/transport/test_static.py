"""Static files and SIP over WebSocket on one port (gateway.transport.static)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.transport.static import static_files
from gateway.transport.ws import WsTransport

from ..conftest import TIMEOUT, RecordingReceiver, request
from .test_ws import sip_client, uri, ws_listener

pytestmark = pytest.mark.integration


async def get(listener: WsTransport, path: str) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP/1.1 GET on the listener's port: status, headers, body."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(*listener.local)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = await reader.read()  # the server closes after one response
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "src").mkdir(parents=True)
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "index.html").write_text("<h1>phone</h1>\n")
    (root / "src" / "app.js").write_text("export {};\n")
    (root / "node_modules" / "x" / "index.js").write_text("secret\n")
    (root / ".env").write_text("secret\n")
    (root / "notes.md").write_text("not served\n")
    (tmp_path / "outside.html").write_text("outside\n")
    (root / "link.html").symlink_to(tmp_path / "outside.html")
    return root


async def test_files_and_sip_share_the_port(receiver: RecordingReceiver, site: Path) -> None:
    async with ws_listener(receiver, process_request=static_files(site)) as listener:
        status, headers, body = await get(listener, "/")
        assert (status, body) == (200, b"<h1>phone</h1>\n")
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-cache"
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in headers["content-security-policy"]
        status, headers, _ = await get(listener, "/src/app.js?v=1")
        assert status == 200 and headers["content-type"].startswith("text/javascript")
        for path in (
            "/missing.html",
            "/node_modules/x/index.js",
            "/.env",
            "/notes.md",
            "/../outside.html",
            "/%2e%2e/outside.html",
            "/link.html",
            "/src/",
        ):
            assert (await get(listener, path))[0] == 404, path
        async with sip_client(uri(listener)) as client:  # the upgrade is SIP's, as before
            assert client.subprotocol == "sip"
            await client.send(request(1).decode())
            [(data, _)] = await receiver.wait_messages(1)
            assert data == request(1)
