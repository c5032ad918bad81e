"""The web interface in a real browser: Debian's Chromium driven by Playwright (never a
downloaded browser) against a phone served by uvicorn over HTTPS on 127.0.0.1.

Screenshots of each page go to $SECUREPHONE_SCREENSHOTS (default: the test's tmp_path).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from securephone.aio.phone import Phone
from securephone.store.config import WebSettings
from securephone.web.app import create_app
from securephone.web.manager import PhoneManager

from ..helpers import await_until, free_port
from .certs import pki
from .conftest import NEW_PASSWORD, fast_hasher, make_manager, phone_config

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

try:
    from playwright.async_api import Browser, Error, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian Chromium not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.skipif(async_playwright is None, reason="the playwright Python package is missing"),
]


@asynccontextmanager
async def chromium(extra_args: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    async with chromium() as browser:
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        page.set_default_timeout(10_000)
        yield page


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Page, str], Awaitable[None]]:
    folder = Path(os.environ.get("SECUREPHONE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    async def shot(page: Page, name: str) -> None:
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return shot


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[PhoneManager]:
    manager = make_manager(tmp_path)
    await manager.start_phone()
    await manager.start_web(create_app(manager))
    try:
        yield manager
    finally:
        await manager.shutdown()


def url_of(manager: PhoneManager) -> str:
    assert manager.server is not None
    return manager.server.url


async def log_in(page: Page, url: str, password: str = "admin") -> None:
    await page.goto(url)
    assert page.url.endswith("/login")
    await page.fill("#username", "admin")
    await page.fill("#password", password)
    await page.click("#login-form button")


async def change_password(page: Page) -> None:
    await page.fill("#current_password", "admin")
    await page.fill("#new_password", NEW_PASSWORD)
    await page.fill("#new_password_again", NEW_PASSWORD)
    await page.click("#password-form button")


async def reload_until(page: Page, selector: str, what: str, timeout: float = 10) -> None:
    async def shown() -> int:
        await page.reload()
        return await page.locator(selector).count()

    await await_until(shown, timeout, 0.1, message=f"timed out waiting for {what}")


async def test_first_login_forces_a_password_change(
    served: PhoneManager, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    url = url_of(served)
    async with browser_page() as page:
        await log_in(page, url)
        assert page.url.endswith("/password")
        assert "Choose a new one before anything else" in await page.inner_text("#forced")
        await shots(page, "01-forced-password-change")
        await page.goto(url + "settings")  # no way around it
        assert page.url.endswith("/password")
        await page.fill("#current_password", "admin")
        await page.fill("#new_password", "admin")
        await page.fill("#new_password_again", "admin")
        await page.click("#password-form button")
        assert "at least 10 characters" in await page.inner_text("#error")
        await change_password(page)
        assert page.url == url
        assert "password changed" in await page.inner_text("main")
        assert served.server is not None and served.server.certificate is not None
        shown = await page.locator("#web-fingerprint").inner_text()
        assert shown == served.server.certificate.fingerprint
        await shots(page, "02-status")
        for name in ("accounts", "settings", "web", "certificates", "system"):
            await page.goto(url + name)
            await shots(page, f"03-{name}")
        # the cookie a script could steal does not exist: the session cookie is HttpOnly
        assert await page.evaluate("document.cookie") == ""
        cookies = await page.context.cookies()
        session = next(c for c in cookies if c["name"] == "__Host-sp_session")
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"


async def test_account_registers_and_the_status_page_shows_it(
    tmp_path: Path, served: PhoneManager, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    from tests.interop.kamailio import Kamailio, missing_tools

    if missing_tools():
        pytest.skip(f"Kamailio not installed ({', '.join(missing_tools())})")
    kam = Kamailio(tmp_path / "kamailio", users={"alice": "alice-pw-1"})
    await asyncio.to_thread(kam.start)
    try:
        host, port = kam.address("udp")
        async with browser_page() as page:
            await log_in(page, url_of(served))
            await change_password(page)
            await page.goto(url_of(served) + "accounts")
            await page.fill("#account-name", "alice")
            await page.fill("#account-user", "alice")
            await page.fill("#account-domain", "127.0.0.1")
            await page.fill("#account-password", "alice-pw-1")
            await page.fill("#account-registrar", f"sip:{host}:{port}")
            await page.fill("#account-expires", "5")  # wrong on purpose: the error names the field
            await page.click("#account-form button")
            assert "expires" in await page.inner_text("#error")
            assert served.config.accounts == []
            await page.fill("#account-password", "alice-pw-1")  # write-only: never filled back
            await page.fill("#account-expires", "300")
            await page.click("#account-form button")
            assert "account alice: saved and applied" in await page.inner_text("main")
            assert "alice-pw-1" not in await page.content()
            await shots(page, "04-account-saved")
            await page.goto(url_of(served))
            await reload_until(page, 'td.reg[data-state="registered"]', "the registration")
            row = await page.inner_text('tr[data-account="alice"]')
            assert "sip:alice@127.0.0.1" in row and "UDP: NOT ENCRYPTED" in row
            await shots(page, "05-status-registered")
        await served.stop_phone()  # unregister while Kamailio still answers
    finally:
        await asyncio.to_thread(kam.stop)


async def test_dial_from_the_page_and_hang_up(
    tmp_path: Path, served: PhoneManager, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    bob = Phone(phone_config(tmp_path / "bob", calls={"auto_answer": True}))
    await bob.start()
    try:
        target = f"sip:bob@{bob.status()['listen']['udp']}"
        async with browser_page() as page:
            await log_in(page, url_of(served))
            await change_password(page)
            await page.fill("#dial-uri", target)
            await page.click("#dial-form button")
            assert f"calling {target}" in await page.inner_text("main")
            await reload_until(page, 'td.call-state[data-state="connected"]', "the call to connect")
            row = page.locator("#calls tbody tr").first
            assert "UDP: NOT ENCRYPTED" in await row.locator("td.signalling").inner_text()
            media = await row.locator("td.media").inner_text()
            assert media.startswith(("SRTP ", "NOT ENCRYPTED")), media
            assert bob.calls and next(iter(bob.calls.values())).state.value == "connected"
            await shots(page, "06-call-connected")
            await row.get_by_role("button", name="Hold").click()
            assert "hold: done" in await page.inner_text("main")
            await (
                page.locator("#calls tbody tr").first.get_by_role("button", name="Hang up").click()
            )
            await reload_until(page, "#no-calls", "the call to end")
            await reload_until(page, "#history tbody tr", "the call in the history")
            history = await page.inner_text("#history")
            assert target in history and "yes" in history
            await shots(page, "07-call-history")
        their = next(iter(bob.calls.values()))
        await their.wait_ended(5)
    finally:
        await bob.stop(2)


async def test_bad_certificate_import_shows_the_error_and_keeps_the_old_file(
    served: PhoneManager, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    p = pki()
    async with browser_page() as page:
        await log_in(page, url_of(served))
        await change_password(page)
        await page.goto(url_of(served) + "certificates")
        assert "self-signed certificate the phone generated" in await page.inner_text("#slot-https")
        good: Any = {
            "name": "sips.pem",
            "mimeType": "application/x-pem-file",
            "buffer": p.ca.cert_pem,
        }
        await page.set_input_files("#file-sips", files=[good])
        await page.click("#import-sips button")
        assert "sips.pem imported" in await page.inner_text("main")
        before = (served.data_dir / "sips.pem").read_bytes()
        bad: Any = {
            "name": "sips.pem",
            "mimeType": "application/x-pem-file",
            "buffer": p.server.combined_pem(),
        }
        await page.set_input_files("#file-sips", files=[bad])
        await page.click("#import-sips button")
        assert "private key does not belong in a CA bundle" in await page.inner_text("#error")
        assert "CN=securephone test CA" in await page.inner_text("#slot-sips")
        await shots(page, "08-certificate-refused")
        text: Any = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}
        await page.set_input_files("#file-https", files=[text])
        await page.click("#import-https button")
        assert "odd file name 'notes.txt'" in await page.inner_text("#error")
        junk: Any = {"name": "https.pem", "mimeType": "application/x-pem-file", "buffer": b"hello"}
        await page.set_input_files("#file-https", files=[junk])
        await page.click("#import-https button")
        assert "not PEM" in await page.inner_text("#error")
        assert "PRIVATE KEY" not in await page.content()
    assert (served.data_dir / "sips.pem").read_bytes() == before
    assert not (served.data_dir / "https.pem").exists()


def _spki_hash(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode()


async def test_import_https_pem_switch_port_and_the_browser_trusts_it(
    served: PhoneManager, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    """The strict browser trusts only chains holding the test CA (its key is pinned with
    --ignore-certificate-errors-spki-list, a stand-in for adding the CA to the NSS store)."""
    p = pki()
    trust = (f"--ignore-certificate-errors-spki-list={_spki_hash(p.ca.cert_pem)}",)
    url = url_of(served)
    async with chromium(trust) as strict_browser:
        strict = await (await strict_browser.new_context()).new_page()
        with pytest.raises(Error, match="ERR_CERT"):
            await strict.goto(url)  # the generated self-signed certificate is not trusted
        async with browser_page() as page:
            await log_in(page, url)
            await change_password(page)
            await page.goto(url + "certificates")
            upload: Any = {
                "name": "https.pem",
                "mimeType": "application/x-pem-file",
                "buffer": p.server.combined_pem(),
            }
            await page.set_input_files("#file-https", files=[upload])
            await page.click("#import-https button")
            assert "https.pem imported" in await page.inner_text("main")
            port = free_port("tcp")
            await page.goto(url + "web")
            await page.fill("#web-port", str(port))
            await page.click("#web-form button")
            new_url = f"https://127.0.0.1:{port}/"
            assert await page.inner_text("#new-url") == new_url
            await shots(page, "09-web-server-moved")
        await strict.goto(new_url)  # would raise if the certificate were not trusted
        assert strict.url == new_url + "login"
        await log_in(strict, new_url, NEW_PASSWORD)
        assert strict.url == new_url
        fingerprint = await strict.inner_text("#web-fingerprint")
        expected = x509.load_pem_x509_certificate(p.server.cert_pem).fingerprint(hashes.SHA256())
        assert fingerprint == expected.hex(":").upper()
        await shots(strict, "10-status-at-new-url")


async def test_capture_a_call_from_the_page_and_open_the_report(
    tmp_path: Path, served: PhoneManager, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    from securephone.web.capturing import unavailable_reason

    if unavailable_reason() is not None:
        pytest.skip(str(unavailable_reason()))
    bob = Phone(phone_config(tmp_path / "bob", calls={"auto_answer": True}))
    await bob.start()
    refused: list[str] = []
    try:
        target = f"sip:bob@{bob.status()['listen']['udp']}"
        async with browser_page() as page:
            page.on("console", lambda m: refused.append(m.text) if "Refused" in m.text else None)
            await log_in(page, url_of(served))
            await change_password(page)
            await page.click('nav a[href="/capture"]')
            await page.fill("#capture-seconds", "120")
            await page.click("#capture-start button")
            assert "capturing with" in await page.inner_text("main")
            await page.goto(url_of(served))
            await page.fill("#dial-uri", target)
            await page.click("#dial-form button")
            await reload_until(page, 'td.call-state[data-state="connected"]', "the call to connect")
            await page.goto(url_of(served) + "capture")
            await await_until(  # some RTP after the SIP
                lambda: served.capture.state().packets > 30, 5, message="RTP in the capture"
            )
            await shots(page, "11-capture-running")
            await page.click("#capture-stop button")
            assert "capture stopped:" in await page.inner_text("main")
            async with page.expect_download() as info:
                await page.click("#capture-download")
            download = await info.value
            assert download.suggested_filename.endswith(".pcap")
            await page.click("#capture-verify button")
            verdict = page.locator("#verdict")
            assert await verdict.get_attribute("data-verdict") in ("plaintext", "exposed")
            await shots(page, "12-capture-verified")
            await page.click("#report-link")
            assert "Wire verification of" in await page.inner_text("h1")
            images = page.locator("img")
            for index in range(await images.count()):  # data: pictures allowed by its CSP
                width = await images.nth(index).evaluate("i => i.naturalWidth")
                assert width > 0
            await shots(page, "13-capture-report")
        assert refused == []  # the report's CSP lets its styles, pictures and audio through
    finally:
        await bob.stop(2)


async def test_login_over_ipv6_in_the_browser(
    tmp_path: Path, shots: Callable[[Page, str], Awaitable[None]]
) -> None:
    """The phone and its web interface on ::1: Chromium opens https://[::1]:PORT/, logs in and
    shows the status page; the generated certificate names ::1 (an IP SAN OpenSSL checks)."""
    config = phone_config(
        tmp_path / "data", sip={"listen_address": "::1", "udp_port": 0, "tcp_port": 0}
    )
    web = WebSettings(port=0, listen_address="::1")
    manager = PhoneManager(tmp_path / "phone.toml", config, web, hasher=fast_hasher())
    await manager.start_phone()
    await manager.start_web(create_app(manager))
    try:
        url = url_of(manager)
        assert url.startswith("https://[::1]:")
        assert manager.server is not None and manager.server.certificate is not None
        cert = manager.server.certificate
        assert "::1" in cert.info.san_ips
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        await asyncio.to_thread(_tls_name_check, cert.path, port)
        async with browser_page() as page:
            await log_in(page, url)
            assert page.url == url + "password"  # first login: the forced password change
            await change_password(page)
            assert page.url == url
            assert "password changed" in await page.inner_text("main")
            assert await page.locator("#web-fingerprint").inner_text() == cert.fingerprint
            listening = re.search(r"Listening for SIP on (.*)", await page.inner_text("main"))
            assert listening is not None  # the listeners, bracketed, and the family they take
            assert re.fullmatch(r"udp \[::1\]:\d+ \(IPv6\), tcp \[::1\]:\d+ \(IPv6\)", listening[1])
            await shots(page, "11-status-over-ipv6")
    finally:
        await manager.shutdown()


def _tls_name_check(cert: Path, port: int) -> None:
    """Trust only the generated certificate and require the name ::1 (RFC 6125 IP SAN)."""
    ctx = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("::1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="::1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
