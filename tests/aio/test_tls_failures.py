"""TLS failure texts say what the server really did (issue 13 item 18), checked against small
Python TLS servers on 127.0.0.1 over real OpenSSL:

- a server that reads our INVITE and closes is not said to demand a client certificate;
- a server that asks for a client certificate (TLS 1.3 CertificateRequest) and then drops or
  resets the connection is reported as such, not as a bare "Connection reset by peer".
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from securephone.aio.transport import TransportLayer
from securephone.pki.certs import create_ca, issue_certificate, write_secret_file
from securephone.sip.transport import Outgoing, Peer
from securephone.tls import TlsSettings, client_context, server_context
from tests.helpers import await_until

INVITE = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path]:
    ca = create_ca("failure test CA")
    leaf = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1"])
    write_secret_file(tmp_path / "server.pem", leaf.combined_pem())
    write_secret_file(tmp_path / "ca.pem", ca.cert_pem)
    return tmp_path / "server.pem", tmp_path / "ca.pem"


@asynccontextmanager
async def tls_server(
    pki: tuple[Path, Path], handler: Handler, *, demand: bool
) -> AsyncIterator[int]:
    """A TLS server; ``demand`` asks for a client certificate (OpenSSL then lets the handler judge)."""
    cert, ca = pki
    settings = TlsSettings(
        certificate=cert, ca_file=ca, use_system_cas=False, require_client_cert=demand
    )
    ctx = server_context(settings)
    if demand:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def failure_text(pki: tuple[Path, Path], port: int) -> str:
    """Send an INVITE over TLS the way the phone does; the reason the transport reports."""
    errors: list[str] = []
    layer = TransportLayer(lambda message, peer: None, lambda peer, reason: errors.append(reason))
    layer.client_ssl = client_context(TlsSettings(ca_file=pki[1], use_system_cas=False))
    try:
        layer.send(Outgoing(INVITE, Peer("tls", "127.0.0.1", port)))
        await await_until(lambda: errors, 10, message="the connection failed")
    finally:
        await layer.close()
    return errors[0]


async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def reset_without_certificate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """No client certificate came: drop the connection with a TCP reset, as servers do."""
    if writer.get_extra_info("peercert"):
        writer.close()
        return
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close_without_certificate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not writer.get_extra_info("peercert"):
        writer.transport.abort()


async def test_a_server_that_reads_and_closes_is_not_blamed_on_certificates(
    pki: tuple[Path, Path],
) -> None:
    async with tls_server(pki, read_then_close, demand=False) as port:
        text = await failure_text(pki, port)
    assert "certificate" not in text
    assert "without answering" in text and f"{len(INVITE)} bytes" in text


async def test_a_server_demanding_a_certificate_is_named(pki: tuple[Path, Path]) -> None:
    async with tls_server(pki, close_without_certificate, demand=True) as port:
        text = await failure_text(pki, port)
    assert "asked for a client certificate" in text


async def test_a_reset_after_a_certificate_request_is_explained(pki: tuple[Path, Path]) -> None:
    async with tls_server(pki, reset_without_certificate, demand=True) as port:
        text = await failure_text(pki, port)
    assert "asked for a client certificate" in text
