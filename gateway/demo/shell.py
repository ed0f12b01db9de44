"""The demo PBX's asyncio shell: its SIP socket, one RTP port pair per service call,
and one timer each.

Thin, as the engine is for the proxy: every input is handed to the pure core
(:class:`~gateway.demo.pbx.DemoPbx`) or to a call's player
(:mod:`gateway.demo.players`) with ``loop.time()``; what they want sent is sent, and
the timer moves to their next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from typing import Any

from gateway.demo.media_requests import (
    CloseMedia,
    KeyPressed,
    MediaRequest,
    OpenMedia,
    UpdateMedia,
)
from gateway.demo.pbx import DemoPbx
from gateway.demo.players import Player, make_player
from gateway.demo.settings import PbxSettings
from gateway.sip import Flow
from gateway.sip.flow import Address
from gateway.transport.udp import UdpTransport, open_udp

__all__ = ["PbxShell", "start_pbx"]

logger = logging.getLogger("wedge.demo")

PORT_ATTEMPTS = 50
"""Tries at finding an even port whose odd neighbour is free too (RTP and RTCP)."""


class _MediaPort(asyncio.DatagramProtocol):
    """One service call's RTP socket (and its RTCP neighbour, read and ignored)."""

    def __init__(self, shell: PbxShell, call_id: str, player: Player, remote: Address):
        self.shell = shell
        self.call_id = call_id
        self.player = player
        self.remote = remote
        self.endpoint: asyncio.DatagramTransport | None = None
        self.rtcp: asyncio.DatagramTransport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.endpoint = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        loop = self.shell.loop
        self.player.receive(data, loop.time())
        self.pump()

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier packet: the browser left; SIP will say so

    def pump(self) -> None:
        loop = self.shell.loop
        now = loop.time()
        endpoint = self.endpoint
        if endpoint is None or endpoint.is_closing():
            return
        for packet in self.player.due(now):
            with contextlib.suppress(OSError):
                endpoint.sendto(packet, self.remote)
        for digits in self.player.heard():
            logger.info("602 read back call-id=%s digits=%s", self.call_id, digits)
            self.shell.pbx.read_back(self.call_id, digits, now)
            self.shell.pump()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadline = self.player.next_deadline()
        if deadline is not None:
            self.timer = loop.call_at(deadline, self.pump)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for endpoint in (self.endpoint, self.rtcp):
            if endpoint is not None:
                endpoint.close()


class PbxShell:
    """The demo PBX on a UDP socket; the receiver of that socket."""

    def __init__(self, host: str, settings: PbxSettings) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.settings = settings
        self.pbx: DemoPbx = None  # type: ignore[assignment]  # set by start_pbx
        self.udp: UdpTransport | None = None
        self._media: dict[str, _MediaPort] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def local(self) -> Address:
        return self.pbx.local

    # Receiver

    def message_received(self, data: bytes, flow: Flow) -> None:
        self.pbx.receive(data, flow, self.loop.time())
        self.pump()

    def flow_failed(self, flow: Flow, reason: str) -> None:
        pass  # UDP: the transaction layer's timers find out

    # the core

    def pump(self) -> None:
        """Send what the core wants sent, do its media requests, arm its timer."""
        udp = self.udp
        for data, flow in self.pbx.datagrams_to_send():
            if udp is not None:
                udp.send(data, flow)
        for request in self.pbx.media_requests():
            self._media_request(request)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.pbx.get_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.pbx.handle_timer(self.loop.time())
        self.pump()

    def _media_request(self, request: MediaRequest) -> None:
        if isinstance(request, OpenMedia):
            task = self.loop.create_task(self._open(request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        port = self._media.get(request.call_id)
        if port is None:
            return
        if isinstance(request, CloseMedia):
            del self._media[request.call_id]
            port.close()
        elif isinstance(request, UpdateMedia):
            port.remote = request.offer.address
            port.player.sending = request.offer.direction.receives
            port.pump()
        elif isinstance(request, KeyPressed):
            port.player.key(request.key, self.loop.time())
            port.pump()

    async def _open(self, request: OpenMedia) -> None:
        now = self.loop.time()
        offer = request.offer
        player = make_player(
            request.extension,
            offer.media,
            secrets.randbits(32),
            secrets.randbits(16),
            secrets.randbits(32),
            now,
        )
        player.sending = offer.direction.receives
        port = _MediaPort(self, request.call_id, player, offer.address)
        try:
            rtp, rtcp = _port_pair(self.host)
            await self.loop.create_datagram_endpoint(lambda: port, sock=rtp)
            port.rtcp, _ = await self.loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, sock=rtcp
            )
        except OSError as exc:
            logger.warning("! no media port for call-id=%s: %s", request.call_id, exc)
            port.close()
            self.pbx.media_failed(request.call_id, self.loop.time())
            self.pump()
            return
        self._media[request.call_id] = port
        address = rtp.getsockname()
        logger.info(
            "media call-id=%s extension=%s codec=%s local=%s:%d remote=%s:%d",
            request.call_id,
            request.extension,
            offer.media.law,
            *address[:2],
            *offer.address,
        )
        self.pbx.media_opened(request.call_id, (address[0], address[1]), self.loop.time())
        self.pump()
        port.pump()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for port in self._media.values():
            port.close()
        self._media.clear()
        if self.udp is not None:
            await self.udp.close()


def _port_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """Two bound UDP sockets on an even port and the next one (RFC 3550 §11)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(PORT_ATTEMPTS):
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtp.bind((host, 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtcp.bind((host, port + 1))
            except OSError:
                rtcp.close()
            else:
                return rtp, rtcp
        rtp.close()
    raise OSError("no free even/odd port pair")


async def start_pbx(host: str, settings: PbxSettings, port: int = 0) -> PbxShell:
    """The demo PBX listening for SIP on UDP ``host:port`` (0: any free port)."""
    shell = PbxShell(host, settings)
    udp = await open_udp("demo-pbx", host, port, shell)
    shell.udp = udp
    shell.pbx = DemoPbx(udp.local, settings, lambda: secrets.token_hex(6))
    return shell
