"""Certificates in a running Wedge (in-process): SNI and reload on WSS and TLS listeners,
the file watch, and expiry warnings."""

from __future__ import annotations

import asyncio
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs.generate import cert_pem, key_pem, make_ca, make_certificate, spki_pin_sha256, write_pem
from gateway.config import parse_config
from gateway.server import start
from tests.integration.conftest import TIMEOUT


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def served_pin(port: int, ca: Path, name: str) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    async with asyncio.timeout(TIMEOUT):
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=name
        )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return spki_pin_sha256(x509.load_der_x509_certificate(der))


async def test_sni_reload_watch_and_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wedge.tls")
    now = datetime.now(UTC)
    ca, ca_key = make_ca("Reload CA", now=now)
    write_pem(tmp_path / "ca.pem", cert_pem(ca))
    # The default certificate ends in ten days: a warning at start.
    names = (["sbc.wedge.test"], ["127.0.0.1"])
    first, first_key = make_certificate(
        ca, ca_key, "sbc.wedge.test", *names, now=now - timedelta(days=20), days=30
    )
    tenant, tenant_key = make_certificate(ca, ca_key, "t", ["*.tenants.wedge.test"], now=now)
    for name, cert, key in (("server", first, first_key), ("tenant", tenant, tenant_key)):
        write_pem(tmp_path / f"{name}.pem", cert_pem(cert))
        write_pem(tmp_path / f"{name}.key", key_pem(key))
    wss, tls = free_tcp_port(), free_tcp_port()
    policy = f"""
[wedge]
fqdn = "sbc.wedge.test"
cert_watch = 0
[media]
relay = "none"
[[listener]]
name = "browsers"
transport = "wss"
bind = "127.0.0.1:{wss}"
cert = "server.pem"
key = "server.key"
sni = [{{ cert = "tenant.pem", key = "tenant.key" }}]
[[listener]]
name = "trunks"
transport = "tls"
bind = "127.0.0.1:{tls}"
cert = "server.pem"
key = "server.key"
"""
    server = await start(parse_config(policy, "reload.toml", tmp_path))
    ca_file = tmp_path / "ca.pem"
    try:
        assert server.tls is not None
        warnings = [r.getMessage() for r in caplog.records if "expiring" in r.getMessage()]
        assert any("expires in 9 days" in w or "expires in 10 days" in w for w in warnings)
        assert server.tls.expiry()[str(tmp_path / "server.pem")] in (9, 10)
        old = spki_pin_sha256(first)
        assert await served_pin(wss, ca_file, "sbc.wedge.test") == old
        assert await served_pin(tls, ca_file, "sbc.wedge.test") == old
        # SNI picks the tenant certificate by its wildcard, on the WSS listener.
        assert await served_pin(wss, ca_file, "a.tenants.wedge.test") == spki_pin_sha256(tenant)

        # Renewed files: the watch notices, and both listeners serve the new one.
        assert not server.tls.changed()
        renewed, renewed_key = make_certificate(
            ca, ca_key, "sbc.wedge.test", ["sbc.wedge.test"], ["127.0.0.1"], now=now
        )
        write_pem(tmp_path / "server.key", key_pem(renewed_key))
        write_pem(tmp_path / "server.pem", cert_pem(renewed))
        assert server.tls.changed()
        server.tls.tick()
        assert "tls reloaded why=files changed result=ok" in caplog.text
        new = spki_pin_sha256(renewed)
        assert await served_pin(wss, ca_file, "sbc.wedge.test") == new
        assert await served_pin(tls, ca_file, "sbc.wedge.test") == new
        assert await served_pin(wss, ca_file, "b.tenants.wedge.test") == spki_pin_sha256(tenant)

        # Half a renewal (a key that does not match): refused, the last good one stays.
        other_key = make_certificate(ca, ca_key, "x", now=now)[1]
        write_pem(tmp_path / "server.key", key_pem(other_key))
        server.reload_tls()
        assert 'tls reload refused what=listener "browsers"' in caplog.text
        assert "does not match the certificate" in caplog.text
        assert await served_pin(wss, ca_file, "sbc.wedge.test") == new
        assert not server.tls.changed()  # the failed reading is remembered: no retry loop
    finally:
        await server.stop(drain=0)
