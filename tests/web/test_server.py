"""uvicorn inside the phone's event loop on 127.0.0.1: HTTPS with a generated self-signed ECDSA
certificate, its fingerprint, restart in place on a new port, HTTP redirect, imported https.pem."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from securephone.store.config import WebSettings, config_to_dict, load_config
from securephone.web import actions, backup
from securephone.web.app import create_app
from securephone.web.manager import PhoneManager
from securephone.web.server import bind, redirect_app, redirect_host, ssl_context

from ..helpers import await_until
from .certs import pki
from .conftest import NEW_PASSWORD, make_manager


@pytest.fixture
async def served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[PhoneManager]:
    caplog.set_level(logging.INFO, logger="securephone")
    mgr = make_manager(tmp_path)
    await mgr.start_phone()
    await mgr.start_web(create_app(mgr))
    try:
        yield mgr
    finally:
        await mgr.shutdown()


def url_of(mgr: PhoneManager) -> str:
    assert mgr.server is not None
    return mgr.server.url


async def presented_certificate(url: str) -> x509.Certificate:
    parts = urlsplit(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=ctx)
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True)
    version = sslobj.version()
    writer.close()
    assert version in ("TLSv1.2", "TLSv1.3")
    return x509.load_der_x509_certificate(der)


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/api/v1/session", json={"username": "admin", "password": "admin"})
    headers = {"x-csrf-token": response.json()["csrf_token"]}
    response = await client.post(
        "/api/v1/password",
        json={"current_password": "admin", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200
    return headers


async def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except OSError:
        return True
    writer.close()
    return False


async def test_https_by_default_with_a_self_signed_ecdsa_certificate(
    served: PhoneManager, caplog: pytest.LogCaptureFixture
) -> None:
    url = url_of(served)
    assert url.startswith("https://127.0.0.1:")
    path = served.data_dir / "https-selfsigned.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cert = await presented_certificate(url)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert served.server is not None and served.server.certificate is not None
    assert served.server.certificate.fingerprint == fingerprint
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    console = [r.getMessage() for r in caplog.get_records("setup")]
    assert any(fingerprint in line for line in console)  # shown on the console
    async with httpx.AsyncClient(base_url=url, verify=False) as client:
        response = await client.get("/login")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in response.headers  # no "uvicorn" banner
        await login(client)
        status = (await client.get("/api/v1/status")).json()
        assert status["web"]["certificate_fingerprint"] == fingerprint
        assert status["web"]["certificate_generated"] is True
        page = (await client.get("/")).text
        assert fingerprint in page


async def test_restart_in_place_on_a_new_port(served: PhoneManager) -> None:
    old_url = url_of(served)
    phone = served.phone
    async with httpx.AsyncClient(base_url=old_url, verify=False) as client:
        headers = await login(client)
        busy = bind("127.0.0.1", 0)
        busy.listen()
        busy_port = busy.getsockname()[1]
        try:
            response = await client.put(
                "/api/v1/settings/web", json={"port": busy_port}, headers=headers
            )
            assert response.status_code == 400
            assert f"cannot listen on 127.0.0.1:{busy_port}" in response.json()["detail"]
            assert (await client.get("/api/v1/status")).status_code == 200  # the old one still runs
        finally:
            busy.close()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]
        probe.close()
        response = await client.put(
            "/api/v1/settings/web", json={"port": new_port}, headers=headers
        )
        assert response.status_code == 200, response.text
        new_url = f"https://127.0.0.1:{new_port}/"
        assert new_url in response.json()["message"]
    await await_until(lambda: refused(old_url), 5, message="the old port closed")
    assert await refused(old_url)
    assert url_of(served) == new_url
    assert served.phone is phone  # SIP untouched
    async with httpx.AsyncClient(base_url=new_url, verify=False) as client:
        assert (await client.get("/login")).status_code == 200


async def test_same_port_switch_from_https_to_http_and_back(served: PhoneManager) -> None:
    url = url_of(served)
    port = urlsplit(url).port
    async with httpx.AsyncClient(base_url=url, verify=False) as client:
        headers = await login(client)
        response = await client.put(
            "/api/v1/settings/web", json={"type": "http", "port": port}, headers=headers
        )
        assert response.status_code == 200
    plain = f"http://127.0.0.1:{port}/"
    await await_until(lambda: url_of(served) == plain, 5, message="the switch to HTTP")
    async with httpx.AsyncClient(base_url=plain) as client:

        async def login_page() -> httpx.Response | None:
            try:
                return await client.get("/login")
            except httpx.HTTPError:
                return None

        response = await await_until(login_page, 5, message="plain HTTP answers")
        assert response.status_code == 200
        assert "strict-transport-security" not in response.headers
        assert "plain HTTP" in response.text


async def test_http_redirects_to_https(tmp_path: Path) -> None:
    mgr = make_manager(tmp_path)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    redirect_port = probe.getsockname()[1]
    probe.close()
    mgr.web = mgr.web.model_copy(update={"http_redirect_port": redirect_port})
    await mgr.start_phone()
    await mgr.start_web(create_app(mgr))
    try:
        https_port = urlsplit(url_of(mgr)).port
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{redirect_port}/calls/a%20b?x=1&y=%2F")
            assert response.status_code == 308  # the query string is kept, encoded as sent
            assert response.headers["location"] == (
                f"https://127.0.0.1:{https_port}/calls/a%20b?x=1&y=%2F"
            )
            response = await client.get(
                f"http://127.0.0.1:{redirect_port}/login", headers={"host": "evil.example"}
            )
            assert response.status_code == 308  # the Host header is never reflected
            assert response.headers["location"] == f"https://127.0.0.1:{https_port}/login"
    finally:
        await mgr.shutdown()


@pytest.mark.parametrize(
    ("name", "listen", "expected"),
    [
        ("phone.example.com", "0.0.0.0", "https://phone.example.com:8443/a?b=1"),
        (None, "0.0.0.0", "https://192.0.2.7:8443/a?b=1"),  # the local address of the socket
        (None, "::1", "https://[::1]:8443/a?b=1"),
    ],
)
async def test_redirect_target_comes_from_the_configuration(
    name: str | None, listen: str, expected: str
) -> None:
    settings = WebSettings(server_name=name, listen_address=listen, http_redirect_port=8080)
    app = redirect_app(8443, redirect_host(settings, listen))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.7") as client:
        response = await client.get("/a?b=1", headers={"host": "evil.example:80"})
    assert response.status_code == 308 and response.headers["location"] == expected


def test_server_name_must_be_a_host_name() -> None:
    assert WebSettings(server_name="Phone.Example.COM").server_name == "phone.example.com"
    for bad in ("evil.example/x", "a b", "x@y", "-bad.example"):
        with pytest.raises(ValueError, match="not a host name"):
            WebSettings(server_name=bad)


async def test_imported_https_pem_is_served_and_trusted_with_its_ca(served: PhoneManager) -> None:
    p = pki()
    url = url_of(served)
    async with httpx.AsyncClient(base_url=url, verify=False) as client:
        headers = await login(client)
        files = {"file": ("https.pem", p.server.combined_pem(), "application/x-pem-file")}
        response = await client.post("/api/v1/certificates/https", files=files, headers=headers)
        assert response.status_code == 200, response.text
        assert "restarted" in response.json()["message"]
    want = x509.load_pem_x509_certificate(p.server.cert_pem).fingerprint(hashes.SHA256())

    async def imported() -> x509.Certificate | None:
        cert = await presented_certificate(url)
        return cert if cert.fingerprint(hashes.SHA256()) == want else None

    cert = await await_until(imported, 5, message="the imported certificate is served")
    assert cert.fingerprint(hashes.SHA256()) == want
    trust = ssl.create_default_context(cadata=p.ca.cert_pem.decode())
    async with httpx.AsyncClient(base_url=url, verify=trust) as client:
        assert (await client.get("/login")).status_code == 200  # verified against the test CA
    assert served.server is not None and served.server.certificate is not None
    assert served.server.certificate.generated is False


async def test_restore_with_another_web_port_moves_the_server(served: PhoneManager) -> None:
    old_url = url_of(served)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    new_port = probe.getsockname()[1]
    probe.close()
    data = config_to_dict(served.config, include_secrets=True)
    data["web"]["port"] = new_port
    message = await actions.restore_backup(served, backup.make_plain(data), None)
    new_url = f"https://127.0.0.1:{new_port}/"
    assert new_url in message
    for _ in range(100):
        if await refused(old_url):
            break
        await asyncio.sleep(0.05)
    assert await refused(old_url)
    assert url_of(served) == new_url
    saved = load_config(served.config_path)
    assert saved.web.port == new_port and served.web.port == new_port


async def test_the_web_server_offers_forward_secret_aead_suites_only(served: PhoneManager) -> None:
    assert served.server is not None and served.server.certificate is not None
    suites = ssl_context(served.server.certificate).get_ciphers()
    assert suites and all(s["aead"] for s in suites), [s["name"] for s in suites if not s["aead"]]
    assert all(s["kea"] in ("kx-ecdhe", "kx-any") for s in suites)  # kx-any: TLS 1.3
    parts = urlsplit(url_of(served))

    async def handshake(ciphers: str) -> str:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
        _, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=ctx)
        cipher = writer.get_extra_info("cipher")[0]
        writer.close()
        return str(cipher)

    for cbc in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await handshake(cbc)  # LUCKY13-prone CBC suites are not offered
    assert await handshake("ECDHE-ECDSA-AES128-GCM-SHA256") == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_bind_on_any_ipv6_address_takes_ipv4_too() -> None:
    """``::`` is dual stack whatever net.ipv6.bindv6only says: IPV6_V6ONLY is turned off."""
    sock = bind("::", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        sock.listen(1)
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
    finally:
        sock.close()
