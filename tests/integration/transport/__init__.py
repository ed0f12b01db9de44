"""Transport shells: UDP, TCP/TLS streams, WS/WSS."""
