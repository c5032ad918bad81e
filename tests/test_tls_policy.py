"""TLS policy of the SIP contexts over real OpenSSL on 127.0.0.1 (issue 13 items 17 and 18).

- Every context is AEAD-only by default (RFC 7525 §4.2): a client that offers only CBC suites
  cannot complete a handshake with the SIP TLS listener; ``[tls] ciphers`` still overrides, and
  the audit flags a non-AEAD list.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from securephone.audit import audit_config
from securephone.pki.certs import create_ca, issue_certificate, write_secret_file
from securephone.store.config import parse_config
from securephone.tls import TlsSettings, non_aead_ciphers, server_context

CBC_ONLY = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA256"


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    ca = create_ca("policy test CA")
    leaf = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1"])
    path = tmp_path / "server.pem"
    write_secret_file(path, leaf.combined_pem())
    return path


def cbc_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 has no CBC suites at all
    ctx.set_ciphers(CBC_ONLY)
    return ctx


async def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """Connect ``client`` to a listener using ``server``; the negotiated suite, or the error."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client), 5
        )
    except (ssl.SSLError, ConnectionError) as exc:
        return f"failed: {exc}"
    finally:
        listener.close()
    cipher = writer.get_extra_info("cipher")[0]
    writer.close()
    return str(cipher)


async def test_a_cbc_only_client_is_refused_by_default(certificate: Path) -> None:
    server = server_context(TlsSettings(certificate=certificate))
    assert (await handshake(server, cbc_client())).startswith("failed")
    assert not non_aead_ciphers(":".join(c["name"] for c in server.get_ciphers()))


async def test_an_aead_client_still_connects(certificate: Path) -> None:
    server = server_context(TlsSettings(certificate=certificate))
    client = cbc_client()
    client.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
    assert "GCM" in await handshake(server, client)


async def test_the_cipher_setting_still_overrides(certificate: Path) -> None:
    server = server_context(TlsSettings(certificate=certificate, ciphers=CBC_ONLY))
    assert "SHA" in await handshake(server, cbc_client())


def test_the_audit_flags_non_aead_suites(tmp_path: Path) -> None:
    config = parse_config({"data_dir": str(tmp_path), "tls": {"ciphers": CBC_ONLY}})
    texts = [f.title for f in audit_config(config) if f.key == "tls.ciphers"]
    assert any("non-AEAD" in t for t in texts)
    clean = parse_config({"data_dir": str(tmp_path)})
    assert not [f for f in audit_config(clean) if f.key == "tls.ciphers"]
