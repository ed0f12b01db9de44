"""The TLS shell under abuse: garbage, a 100 KB client certificate, renegotiation.

Each bad connection is closed and logged; a good connection open all along keeps
working and no message of the bad ones reaches the receiver.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ObjectIdentifier

from certs.context import client_context, server_context
from certs.generate import cert_pem, key_pem, make_ca, make_certificate, write_pem
from gateway.transport.stream import StreamTransport, open_stream

from ..conftest import SERVER_NAME, TIMEOUT, Pki, RecordingReceiver, request
from .clients import StreamPeer

OPENSSL = shutil.which("openssl")


@pytest.fixture
async def listener(receiver: RecordingReceiver, pki: Pki) -> AsyncIterator[StreamTransport]:
    # A listener that asks for client certificates, so clients send theirs.
    context = server_context(pki.server_cert, pki.server_key, ca_file=pki.ca)
    stream = await open_stream("hardened", "tls", "127.0.0.1", 0, receiver, ssl_server=context)
    try:
        yield stream
    finally:
        async with asyncio.timeout(TIMEOUT):
            await stream.close()


async def poll(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)


async def good_client(stream: StreamTransport, pki: Pki) -> StreamPeer:
    return await StreamPeer.connect(
        stream.local, ssl_context=client_context(ca_file=pki.ca), server_hostname=SERVER_NAME
    )


async def still_works(client: StreamPeer, receiver: RecordingReceiver, number: int) -> None:
    await client.send(request(number))
    await receiver.wait_for(lambda: any(data == request(number) for data, _ in receiver.messages))


def huge_client_certificate(folder: Path, pki: Pki) -> tuple[Path, Path]:
    """A client certificate of over 100 KiB (one big private extension)."""
    now = datetime.now(UTC)
    ca, ca_key = make_ca("Huge CA", now=now)
    cert, key = make_certificate(ca, ca_key, "huge", now=now, client=True)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"x" * 102_400),
            critical=False,
        )
    )
    huge = builder.sign(ca_key, hashes.SHA256())
    assert len(huge.public_bytes(serialization.Encoding.DER)) > 100 * 1024
    cert_file, key_file = folder / "huge.pem", folder / "huge.key"
    write_pem(cert_file, cert_pem(huge))
    write_pem(key_file, key_pem(key))
    return cert_file, key_file


async def test_bad_handshakes_are_closed_and_logged_and_nobody_else_notices(
    listener: StreamTransport,
    receiver: RecordingReceiver,
    pki: Pki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="wedge.transport")
    good = await good_client(listener, pki)
    await still_works(good, receiver, 1)

    # Garbage where a ClientHello belongs.
    garbage = await StreamPeer.connect(listener.local)
    await garbage.send(b"\x16\x03\x01\x00\x10" + b"\xff" * 64 + request(2))
    assert await garbage.closed_by_other_end()
    await garbage.close()

    # A client certificate of 100 KB: more than OpenSSL takes (its 100 KiB limit on a
    # certificate list), refused during the handshake.
    cert_file, key_file = huge_client_certificate(tmp_path, pki)
    context = client_context(ca_file=pki.ca, cert_file=cert_file, key_file=key_file)
    try:
        huge = await StreamPeer.connect(
            listener.local, ssl_context=context, server_hostname=SERVER_NAME
        )
    except (ssl.SSLError, ConnectionError):
        pass
    else:  # TLS 1.3: the client learns of the refusal on its first read
        await huge.send(request(3))
        assert await huge.closed_by_other_end()
        await huge.close()

    failures = [r.getMessage() for r in caplog.records if "tls handshake failed" in r.message]
    assert len(failures) == 2, failures
    assert "reason=tls error: " in failures[0]
    assert "reason=tls error: EXCESSIVE_MESSAGE_SIZE" in failures[1]

    await still_works(good, receiver, 4)
    assert [data for data, _ in receiver.messages] == [request(1), request(4)]
    assert listener.limiter.total == 1  # the refused ones were counted down


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
async def test_renegotiation_is_refused_and_the_connection_ends(
    listener: StreamTransport,
    receiver: RecordingReceiver,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="wedge.transport")
    good = await good_client(listener, pki)
    # TLS 1.2 (1.3 has no renegotiation); "R" asks s_client to renegotiate.
    s_client = await asyncio.create_subprocess_exec(
        OPENSSL or "openssl",
        *("s_client", "-tls1_2", "-quiet", "-no_ign_eof"),
        *("-connect", f"127.0.0.1:{listener.local[1]}", "-CAfile", str(pki.ca)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert s_client.stdin is not None
    try:
        await poll(lambda: listener.limiter.total == 2)
        s_client.stdin.write(b"R\n")
        await s_client.stdin.drain()
        async with asyncio.timeout(TIMEOUT):
            _, err = await s_client.communicate()
    finally:
        if s_client.returncode is None:
            s_client.kill()
            await s_client.wait()
    assert b"no renegotiation" in err.lower() or b"renegotiat" in err.lower(), err
    await poll(lambda: listener.limiter.total == 1)
    assert any("tls error" in r.message for r in caplog.records), caplog.text
    await still_works(good, receiver, 5)
    assert [data for data, _ in receiver.messages] == [request(5)]
    await good.close()
