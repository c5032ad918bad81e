"""Fixtures for the web interface: a PhoneManager with a real Phone on 127.0.0.1, the app
behind an in-process httpx client (HTTPS scheme), and helpers to log in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from securephone.store.config import Config, MediaSettings, WebSettings, parse_config
from securephone.web.app import create_app
from securephone.web.manager import PhoneManager

NEW_PASSWORD = "correct-horse-battery"
CLIENT = ("127.0.0.1", 40123)


def fast_hasher() -> PasswordHasher:
    """argon2id with tiny costs so that tests stay fast (production uses the library defaults)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def media_settings(port_min: int = 41000, port_max: int = 41999) -> dict[str, Any]:
    """Loopback media; SDES over plain UDP allowed where this build has SRTP (labs only)."""
    media: dict[str, Any] = {"port_min": port_min, "port_max": port_max}
    if "srtp" in MediaSettings.model_fields:
        media["srtp"] = "optional"
    if "allow_sdes_over_plaintext" in MediaSettings.model_fields:
        media["allow_sdes_over_plaintext"] = True
    return media


def phone_config(data_dir: Path, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
        "media": media_settings(),
    }
    data.update(extra)
    return parse_config(data)


def make_manager(tmp_path: Path, **extra: Any) -> PhoneManager:
    config = phone_config(tmp_path / "data", **extra)
    web = WebSettings(port=0, listen_address="127.0.0.1")
    return PhoneManager(tmp_path / "phone.toml", config, web, hasher=fast_hasher())


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[PhoneManager]:
    mgr = make_manager(tmp_path)
    await mgr.start_phone()
    try:
        yield mgr
    finally:
        await mgr.shutdown()


def client_for(
    mgr: PhoneManager, scheme: str = "https", address: str = CLIENT[0]
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(mgr), client=(address, CLIENT[1]))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver")


@pytest.fixture
async def client(manager: PhoneManager) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(manager) as c:
        yield c


async def api_login(client: httpx.AsyncClient, password: str = "admin") -> dict[str, str]:
    """Log in through the API; the headers to send with changes (X-CSRF-Token)."""
    response = await client.post(
        "/api/v1/session", json={"username": "admin", "password": password}
    )
    assert response.status_code == 200, response.text
    return {"x-csrf-token": response.json()["csrf_token"]}


async def ready(client: httpx.AsyncClient) -> dict[str, str]:
    """Log in with admin/admin and change the password: a fully usable API session."""
    headers = await api_login(client)
    response = await client.post(
        "/api/v1/password",
        json={"current_password": "admin", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return headers


@pytest.fixture
async def api(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of a logged-in API session whose password was changed."""
    return await ready(client)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def page_login(client: httpx.AsyncClient, password: str = "admin") -> httpx.Response:
    """Log in through the HTML login form (with its login CSRF cookie)."""
    page = await client.get("/login")
    token = csrf_of(page.text)
    return await client.post(
        "/login", data={"username": "admin", "password": password, "csrf_token": token}
    )


async def page_ready(client: httpx.AsyncClient) -> str:
    """Log in through the pages and change the password; the session's CSRF token."""
    response = await page_login(client)
    assert response.status_code == 303 and response.headers["location"] == "/password"
    page = await client.get("/password")
    token = csrf_of(page.text)
    response = await client.post(
        "/password",
        data={
            "csrf_token": token,
            "current_password": "admin",
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )
    assert response.status_code == 303, response.text
    return token
