"""The security items of the web interface, one test (at least) each."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from securephone.web.manager import PhoneManager
from securephone.web.sessions import SessionStore

from .conftest import (
    NEW_PASSWORD,
    api_login,
    client_for,
    csrf_of,
    page_login,
    page_ready,
    ready,
)

PAGES = ("/", "/accounts", "/settings", "/web", "/certificates", "/system", "/password")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- forced password change ---------------------------------------------------------------------------
async def test_first_login_forces_a_new_password_before_any_page(client: httpx.AsyncClient) -> None:
    response = await page_login(client)
    assert response.status_code == 303 and response.headers["location"] == "/password"
    for path in PAGES[:-1]:
        page = await client.get(path)
        assert page.status_code == 303 and page.headers["location"] == "/password", path
    page = await client.get("/password")
    assert page.status_code == 200 and 'id="forced"' in page.text
    assert "<nav>" not in page.text  # no way around it


async def test_api_refuses_everything_until_the_password_changed(client: httpx.AsyncClient) -> None:
    headers = await api_login(client)
    response = await client.get("/api/v1/status")
    assert (
        response.status_code == 403 and "change the default password" in response.json()["detail"]
    )
    assert (await client.post("/api/v1/tokens", json={}, headers=headers)).status_code == 403
    for new in ("admin", "adminadmin", "short"):
        response = await client.post(
            "/api/v1/password",
            json={"current_password": "admin", "new_password": new},
            headers=headers,
        )
        assert response.status_code == 400, new
        assert response.json()["detail"].startswith("new password:")
    response = await client.post(
        "/api/v1/password",
        json={"current_password": "wrong-one!", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 400 and "current password is wrong" in response.json()["detail"]
    response = await client.post(
        "/api/v1/password",
        json={"current_password": "admin", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 200
    assert (await client.get("/api/v1/status")).status_code == 200


async def test_password_form_checks_both_entries(client: httpx.AsyncClient) -> None:
    await page_login(client)
    token = csrf_of((await client.get("/password")).text)
    response = await client.post(
        "/password",
        data={
            "csrf_token": token,
            "current_password": "admin",
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD + "x",
        },
    )
    assert response.status_code == 400 and "the two entries differ" in response.text
    assert (await client.get("/")).status_code == 303


async def test_password_change_ends_other_sessions(manager: PhoneManager) -> None:
    async with client_for(manager) as first, client_for(manager) as second:
        await ready(first)
        await api_login(second, NEW_PASSWORD)
        assert (await second.get("/api/v1/status")).status_code == 200
        headers = {"x-csrf-token": (await api_login(first, NEW_PASSWORD))["x-csrf-token"]}
        response = await first.post(
            "/api/v1/password",
            json={"current_password": NEW_PASSWORD, "new_password": "yet-another-password"},
            headers=headers,
        )
        assert response.status_code == 200
        assert (await second.get("/api/v1/status")).status_code == 401
        assert (await first.get("/api/v1/status")).status_code == 200


# -- sessions and cookies ------------------------------------------------------------------------------------
def _cookie(response: httpx.Response) -> str:
    return next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "sp_session" in v
    )


async def test_session_cookie_flags_on_https(client: httpx.AsyncClient) -> None:
    response = await page_login(client)
    cookie = _cookie(response)
    assert cookie.startswith("__Host-sp_session=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower(), flag
    assert "domain" not in cookie.lower() and "max-age" not in cookie.lower()
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits, base64url


async def test_session_cookie_on_plain_http_is_not_secure(manager: PhoneManager) -> None:
    async with client_for(manager, scheme="http") as client:
        response = await page_login(client)
        cookie = _cookie(response)
        assert cookie.startswith("sp_session=") and "secure" not in cookie.lower()
        page = await client.get("/password")
        assert "plain HTTP" in page.text
        assert "strict-transport-security" not in page.headers


async def test_new_session_id_at_every_login(manager: PhoneManager) -> None:
    async with client_for(manager) as client:
        first = _cookie(await page_login(client))
        client.cookies.clear()
        second = _cookie(await page_login(client))
        assert first.split(";")[0] != second.split(";")[0]


async def test_idle_timeout(manager: PhoneManager, client: httpx.AsyncClient) -> None:
    clock = Clock()
    manager.sessions = SessionStore(lambda: 15 * 60.0, clock=clock)
    await ready(client)
    clock.now += 14 * 60
    assert (await client.get("/api/v1/status")).status_code == 200  # use resets the idle time
    clock.now += 14 * 60
    assert (await client.get("/api/v1/status")).status_code == 200
    clock.now += 15 * 60 + 1
    assert (await client.get("/api/v1/status")).status_code == 401
    page = await client.get("/")
    assert page.status_code == 303 and page.headers["location"] == "/login"


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    token = await page_ready(client)
    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303


# -- CSRF --------------------------------------------------------------------------------------------------
async def test_forms_need_the_csrf_token(client: httpx.AsyncClient, manager: PhoneManager) -> None:
    token = await page_ready(client)
    data = {"name": "eve", "user": "eve", "domain": "127.0.0.1"}
    for sent in ({}, {"csrf_token": "forged"}):
        response = await client.post("/accounts", data=data | sent)
        assert response.status_code == 403 and "CSRF" in response.text
    assert manager.config.accounts == []
    response = await client.post("/accounts", data=data | {"csrf_token": token})
    assert response.status_code == 303
    assert [a.name for a in manager.config.accounts] == ["eve"]


async def test_login_form_needs_its_own_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", data={"username": "admin", "password": "admin"})
    assert response.status_code == 403 and "expired" in response.text
    assert "sp_session" not in response.headers.get("set-cookie", "").split("sp_login")[0]


async def test_api_with_cookie_needs_the_csrf_header(client: httpx.AsyncClient) -> None:
    headers = await ready(client)
    response = await client.post("/api/v1/tokens", json={"label": "x"})
    assert response.status_code == 403 and "X-CSRF-Token" in response.json()["detail"]
    response = await client.post(
        "/api/v1/tokens", json={"label": "x"}, headers={"x-csrf-token": "no"}
    )
    assert response.status_code == 403
    assert (
        await client.post("/api/v1/tokens", json={"label": "x"}, headers=headers)
    ).status_code == 201
    assert (await client.get("/api/v1/tokens")).status_code == 200  # reads need no token


# -- bearer tokens --------------------------------------------------------------------------------------------
async def test_bearer_token(manager: PhoneManager, client: httpx.AsyncClient) -> None:
    headers = await ready(client)
    secret = (await client.post("/api/v1/tokens", json={"label": "ci"}, headers=headers)).json()[
        "token"
    ]
    async with client_for(manager) as robot:
        bearer = {"authorization": f"Bearer {secret}"}
        assert (await robot.get("/api/v1/status", headers=bearer)).status_code == 200
        revoked = await robot.delete("/api/v1/tokens/nothing", headers=bearer)
        assert revoked.status_code == 404  # no CSRF token needed: browsers never send bearers
        response = await robot.get("/api/v1/status", headers={"authorization": "Bearer sp_wrong"})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        response = await robot.get("/api/v1/status")
        assert response.status_code == 401
        assert (await robot.get("/", headers=bearer)).status_code == 303  # pages need a login


async def test_a_bearer_token_cannot_mint_tokens(
    manager: PhoneManager, client: httpx.AsyncClient
) -> None:
    headers = await ready(client)
    made = await client.post("/api/v1/tokens", json={"label": "ci"}, headers=headers)
    bearer = {"authorization": f"Bearer {made.json()['token']}"}
    async with client_for(manager) as robot:
        response = await robot.post("/api/v1/tokens", json={"label": "more"}, headers=bearer)
        assert response.status_code == 403 and "session" in response.json()["detail"]
    assert [t.label for t in manager.users.tokens()] == ["ci"]


async def test_a_password_change_revokes_every_token_of_the_user(
    manager: PhoneManager, client: httpx.AsyncClient
) -> None:
    headers = await ready(client)
    secrets = []
    for label in ("ci", "backup"):
        made = await client.post("/api/v1/tokens", json={"label": label}, headers=headers)
        secrets.append(made.json()["token"])
    async with client_for(manager) as robot:
        for secret in secrets:
            bearer = {"authorization": f"Bearer {secret}"}
            assert (await robot.get("/api/v1/status", headers=bearer)).status_code == 200
        response = await client.post(
            "/api/v1/password",
            json={"current_password": NEW_PASSWORD, "new_password": "yet-another-password"},
            headers=headers,
        )
        assert response.status_code == 200
        for secret in secrets:
            bearer = {"authorization": f"Bearer {secret}"}
            assert (await robot.get("/api/v1/status", headers=bearer)).status_code == 401
    assert manager.users.tokens() == []
    assert (await client.get("/api/v1/status")).status_code == 200  # the changing session stays


# -- lockout -----------------------------------------------------------------------------------------------------
async def test_five_failures_lock_the_address_and_are_logged(
    manager: PhoneManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="securephone")
    async with client_for(manager, address="10.1.1.1") as attacker:
        codes = []
        for n in range(5):
            response = await attacker.post(
                "/api/v1/session",
                json={"username": "admin", "password": f"guess-{n}"},
                headers={"x-forwarded-for": f"10.9.9.{n}"},  # never trusted
            )
            codes.append(response.status_code)
        assert codes == [401, 401, 401, 401, 429]
        assert "locked" in response.json()["detail"]
        response = await attacker.post(
            "/api/v1/session", json={"username": "admin", "password": "admin"}
        )
        assert response.status_code == 429 and "try again in" in response.json()["detail"]
        page = await page_login(attacker)
        assert page.status_code == 429 and "too many failed logins" in page.text
    async with client_for(manager, address="10.2.2.2") as someone_else:
        assert (await api_login(someone_else))["x-csrf-token"]
    assert "web login locked for address 10.1.1.1" in caplog.text
    assert "guess-" not in caplog.text  # tried passwords are never logged


async def test_concurrent_wrong_logins_get_no_more_checks_than_the_budget(
    manager: PhoneManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str] = []
    verify = manager.users.verify

    def counting(user: str, password: str) -> bool:
        checks.append(password)
        return verify(user, password)

    monkeypatch.setattr(manager.users, "verify", counting)
    async with client_for(manager, address="10.3.3.3") as attacker:
        responses = await asyncio.gather(
            *(
                attacker.post("/api/v1/session", json={"username": "admin", "password": f"g{n}"})
                for n in range(40)
            )
        )
        codes = [r.status_code for r in responses]
        assert set(codes) <= {401, 429} and codes.count(401) <= 4
        assert len(checks) == manager.throttle.max_failures  # 5 checks, then the lock
        response = await attacker.post(
            "/api/v1/session", json={"username": "admin", "password": "admin"}
        )
        assert response.status_code == 429  # locked, even with the right password
        assert len(checks) == manager.throttle.max_failures


async def test_failures_from_many_addresses_lock_the_user(manager: PhoneManager) -> None:
    for n in range(5):  # 2 wrong guesses from each of 5 addresses: no address reaches 5
        async with client_for(manager, address=f"10.4.4.{n}") as attacker:
            for guess in range(2):
                response = await attacker.post(
                    "/api/v1/session", json={"username": "admin", "password": f"g{guess}"}
                )
        assert response.status_code == (429 if n == 4 else 401)
    async with client_for(manager, address="10.5.5.5") as elsewhere:
        response = await elsewhere.post(
            "/api/v1/session", json={"username": "admin", "password": "admin"}
        )
        assert response.status_code == 429 and "try again in" in response.json()["detail"]
        response = await elsewhere.post(
            "/api/v1/session", json={"username": "someone", "password": "admin"}
        )
        assert response.status_code == 401  # other user names are not locked


async def test_many_failing_addresses_slow_every_login_down(
    manager: PhoneManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("securephone.web.auth._pause", pause)
    throttle = manager.throttle
    for n in range(throttle.global_failures):
        throttle.failure(f"10.6.{n // 200}.{n % 200}", f"user{n}")
    assert pauses == []
    async with client_for(manager, address="10.7.7.7") as someone:
        assert (await api_login(someone))["x-csrf-token"]  # still possible, only slower
    assert pauses == [throttle.global_delay]


# -- headers ----------------------------------------------------------------------------------------------------
async def test_security_headers_on_pages_and_api(client: httpx.AsyncClient) -> None:
    await page_ready(client)
    for path in (*PAGES, "/api/v1/status", "/login", "/nowhere"):
        response = await client.get(path)
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "script-src" not in csp  # default-src 'none'
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["strict-transport-security"] == "max-age=31536000"


async def test_pages_have_no_scripts_and_no_inline_styles(client: httpx.AsyncClient) -> None:
    await page_ready(client)
    for path in PAGES:
        html = (await client.get(path)).text
        assert "<script" not in html.lower() and "style=" not in html.lower(), path
        assert re.search(r"\son[a-z]+=", html) is None, path  # no event handler attributes


# -- escaping and secrets ----------------------------------------------------------------------------------
XSS = '<script>alert("x")</script>'


async def test_user_supplied_text_is_escaped(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    headers = await ready(client)
    account = {
        "name": "x",
        "user": "x",
        "domain": "127.0.0.1",
        "display_name": XSS,
        "register": False,
    }
    assert (await client.post("/api/v1/accounts", json=account, headers=headers)).status_code == 201
    manager.history.record(
        {
            "call_id": "1",
            "direction": "incoming",
            "remote": f'"{XSS}" <sip:mallory@127.0.0.1>',
            "reason": XSS,
            "signalling": {"transport": XSS},
            "media": {"encryption": XSS},
        }
    )
    for path in ("/accounts", "/", "/accounts/x"):
        html = (await client.get(path)).text
        assert XSS not in html, path
        assert "&lt;script&gt;" in html, path
    token = csrf_of((await client.get("/")).text)
    await client.post("/calls", data={"csrf_token": token, "uri": f"sip:{XSS}"})
    html = (await client.get("/")).text
    assert "<script>" not in html and "uri:" in html


async def test_no_secret_in_any_response_or_log(
    client: httpx.AsyncClient, manager: PhoneManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = await ready(client)
    secret = "account-password-xyz"
    account = {
        "name": "a",
        "user": "a",
        "domain": "127.0.0.1",
        "password": secret,
        "register": False,
    }
    await client.post("/api/v1/accounts", json=account, headers=headers)
    bad = account | {"expires": 1}
    assert secret not in (await client.post("/api/v1/accounts", json=bad, headers=headers)).text
    texts = [(await client.get(path)).text for path in PAGES]
    for path in (
        "status",
        "accounts",
        "accounts/a",
        "settings/tls",
        "certificates",
        "log",
        "tokens",
    ):
        texts.append((await client.get(f"/api/v1/{path}")).text)
    texts.append((await client.post("/api/v1/backup", json={}, headers=headers)).text)
    for text in texts:
        assert secret not in text and NEW_PASSWORD not in text
    logged = caplog.text + "\n".join(manager.log_buffer.tail(1000))
    assert secret not in logged and NEW_PASSWORD not in logged


async def test_saved_files_are_private(client: httpx.AsyncClient, manager: PhoneManager) -> None:
    headers = await ready(client)
    await client.put("/api/v1/settings/calls", json={"auto_answer": True}, headers=headers)
    for path in (
        manager.config_path,
        manager.data_dir / "users.json",
        manager.data_dir / "history.sqlite3",
    ):
        assert Path(path).stat().st_mode & 0o077 == 0, path


async def test_oversized_requests_are_refused(client: httpx.AsyncClient) -> None:
    headers = await ready(client)
    big = b"x" * (1024 * 1024 + 1)
    response = await client.post(
        "/api/v1/certificates/https",
        content=big,
        headers=headers | {"content-type": "application/octet-stream"},
    )
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536

    response = await client.post(
        "/api/v1/session", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
