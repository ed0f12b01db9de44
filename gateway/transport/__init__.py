"""Thin asyncio shells that own Wedge's sockets: UDP, TCP/TLS streams, WS/WSS."""
