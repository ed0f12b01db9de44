"""SIP over WebSocket (RFC 7118) for the tests: a :class:`WsChannel` for the
:class:`~tests.e2e.siptls.UserAgent`.

One SIP message per WebSocket message, the ``sip`` subprotocol, TLS trusting
the test CA for ``wss://``. Like a browser, the UA has no address of its own:
Via and Contact carry a random ``.invalid`` host (RFC 7118 §5), so whatever
reaches it can only have come back on its one connection.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.siptls import TIMEOUT, UserAgent, client_context

__all__ = ["WsChannel", "browser_user_agent", "connect_ws"]


class WsChannel:
    """One WebSocket connection carrying SIP."""

    def __init__(self, connection: ClientConnection, transport: str) -> None:
        self.connection = connection
        self.transport = transport
        host, port = connection.local_address[:2]
        self.local = (host, port)

    async def send(self, data: bytes) -> None:
        # RFC 7118 §5: text frames for UTF-8 messages, as browsers send them.
        await self.connection.send(data.decode("utf-8"))

    async def receive(self) -> bytes:
        message = await self.connection.recv()
        return message.encode("utf-8") if isinstance(message, str) else message

    async def close(self) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                await self.connection.close()
        except (OSError, TimeoutError):
            pass


async def connect_ws(url: str, ca_file: str | Path | None = None) -> WsChannel:
    """Open ``ws://`` or ``wss://`` ``url`` with the ``sip`` subprotocol."""
    secure = url.startswith("wss:")
    async with asyncio.timeout(TIMEOUT):
        connection = await connect(
            url,
            subprotocols=["sip"],  # type: ignore[list-item]
            ssl=client_context(ca_file) if secure and ca_file is not None else None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )
    assert connection.subprotocol == "sip", connection.subprotocol
    return WsChannel(connection, "WSS" if secure else "WS")


def browser_user_agent(channel: WsChannel) -> UserAgent:
    """A UA that looks like a browser's SIP stack (JsSIP, SIP.js): ``.invalid`` names."""
    host = f"{secrets.token_hex(6)}.invalid"
    return UserAgent(channel, via_host=host, contact=f"sip:alice@{host};transport=ws")
