"""Static files on a WS/WSS listener: the web demo's page, from the port its SIP uses.

:func:`static_files` makes a ``process_request`` hook for
:func:`~gateway.transport.ws.open_ws`: a plain HTTP GET (no WebSocket upgrade) is
answered with a file under ``root``; an upgrade passes on to the SIP WebSocket
handshake untouched. So ``https://host:port/`` serves the page and
``wss://host:port/`` is its SIP endpoint, with one certificate and one origin: the
browser's exception for a self-signed certificate covers both.

Only files of the types in :data:`CONTENT_TYPES` are served, never a dot-file or
anything under a name in ``hidden``, and never outside ``root`` (``..``,
symbolic links out). Each response closes its connection (one request per
connection before an upgrade), and says ``no-cache``, so a reload
gets the page as it is on disk.
"""

from __future__ import annotations

import email.utils
import http
import logging
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from gateway.transport.ws import ProcessRequest

__all__ = ["CONTENT_SECURITY_POLICY", "CONTENT_TYPES", "static_files"]

logger = logging.getLogger("wedge.transport")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
"""What is served, by file suffix; other files are 404 (module scripts need a
JavaScript type, browsers refuse them otherwise)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' wss: ws: https:; media-src 'self' blob: mediastream:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The page may only run its own scripts and styles, and talk to WebSocket servers."""

MAX_FILE = 8 * 1024 * 1024
"""Files larger than this are not served (the demo's largest, JsSIP, is under 1 MB)."""


def static_files(
    root: Path, *, index: str = "index.html", hidden: Iterable[str] = ("node_modules",)
) -> ProcessRequest:
    """A ``process_request`` hook serving the files under ``root`` (see the module
    docstring); ``/`` and every ``.../`` serve ``index``."""
    base = root.resolve()
    hide = frozenset(hidden)

    def answer(protocol: ServerProtocol, request: Request) -> Response | None:
        if "websocket" in ",".join(request.headers.get_all("Upgrade")).lower():
            return None
        path = urllib.parse.unquote(request.path.split("?", 1)[0].split("#", 1)[0])
        if path.endswith("/"):
            path += index
        parts = [part for part in path.split("/") if part]
        if any(
            part.startswith(".") or part in hide or "\\" in part or "\0" in part for part in parts
        ):
            return _not_found(protocol)
        file = base.joinpath(*parts).resolve()
        content_type = CONTENT_TYPES.get(file.suffix.lower())
        if content_type is None or not file.is_relative_to(base):
            return _not_found(protocol)
        try:
            if file.stat().st_size > MAX_FILE:
                return _not_found(protocol)
            body = file.read_bytes()
        except OSError:  # missing, a directory, unreadable
            return _not_found(protocol)
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ]
        )
        return Response(http.HTTPStatus.OK, "OK", headers, body)

    return answer


def _not_found(protocol: ServerProtocol) -> Response:
    return protocol.reject(http.HTTPStatus.NOT_FOUND, "Not found\n")
