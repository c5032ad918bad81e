"""The HTML pages work without JavaScript: plain forms, redirects with a message, or the page
again with the error naming the field (and nothing changed)."""

from __future__ import annotations

import tomllib

import httpx

from securephone.web.backup import MAGIC
from securephone.web.manager import PhoneManager

from .certs import pki
from .conftest import csrf_of, page_ready


def account_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "name": "alice",
        "user": "alice",
        "domain": "127.0.0.1",
        "display_name": "",
        "auth_user": "",
        "password": "alice-pw-123",
        "registrar": "",
        "outbound_proxy": "",
        "outbound_proxies": "",  # an empty text box, as a browser posts it
        "transport": "udp",
        "expires": "600",
        "retry_base": "30",
        "retry_max": "1800",
    }
    form.update(changes)
    return form


async def test_new_account_form_starts_from_the_defaults(client: httpx.AsyncClient) -> None:
    await page_ready(client)
    html = (await client.get("/accounts")).text
    assert 'name="register" checked' in html
    assert 'name="expires" value="600"' in html
    assert '<option value="udp" selected>' in html


async def test_outbound_proxies_are_typed_comma_separated_and_shown_back(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    edges = "sip:127.0.0.1:5070, sip:127.0.0.1:5072;transport=tcp"
    form = account_form(token, outbound="on", outbound_proxies=edges)
    response = await client.post("/accounts", data=form)
    assert response.status_code == 303, response.text
    (account,) = manager.config.accounts
    assert account.outbound_proxies == ["sip:127.0.0.1:5070", "sip:127.0.0.1:5072;transport=tcp"]
    html = (await client.get("/accounts/alice")).text
    assert f'name="outbound_proxies" value="{edges}"' in html
    form = account_form(token, outbound_proxies="sip:127.0.0.1:5070")  # without outbound: refused
    response = await client.post("/accounts/alice", data=form)
    assert response.status_code == 400 and "outbound_proxies needs outbound" in response.text


async def test_account_form_error_names_the_field_and_keeps_the_input(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    response = await client.post("/accounts", data=account_form(token, expires="10", user="bob"))
    assert response.status_code == 400
    assert 'id="error"' in response.text and "expires" in response.text
    assert 'value="bob"' in response.text  # what the user typed is still there
    assert "alice-pw-123" not in response.text  # but never the password
    assert manager.config.accounts == []
    response = await client.post("/accounts", data=account_form(token, register="on"))
    assert response.status_code == 303 and response.headers["location"] == "/accounts"
    listing = (await client.get("/accounts")).text
    assert "account alice: saved and applied" in listing and "sip:alice@127.0.0.1" in listing
    # editing without typing a password keeps it
    response = await client.post(
        "/accounts/alice", data=account_form(token, password="", expires="900")
    )
    assert response.status_code == 303
    account = manager.config.accounts[0]
    assert account.expires == 900 and account.password.get_secret_value() == "alice-pw-123"
    assert account.register_ is False  # the unchecked box means "off"
    response = await client.post("/accounts/alice/delete", data={"csrf_token": token})
    assert response.status_code == 303 and manager.config.accounts == []


async def test_settings_form(client: httpx.AsyncClient, manager: PhoneManager) -> None:
    token = await page_ready(client)
    html = (await client.get("/settings")).text
    for section in ("sip", "tls", "media", "calls"):
        assert f'id="form-{section}"' in html
    response = await client.post("/settings/calls", data={"csrf_token": token, "max_calls": "0"})
    assert response.status_code == 400 and "calls.max_calls" in response.text
    response = await client.post(
        "/settings/calls",
        data={"csrf_token": token, "max_calls": "2", "auto_answer": "on", "ring_timeout": "45"},
    )
    assert response.status_code == 303
    assert manager.config.calls.auto_answer is True and manager.config.calls.max_calls == 2
    saved = tomllib.loads(manager.config_path.read_text())
    assert saved["calls"] == {
        "max_calls": 2,
        "auto_answer": True,
        "ring_timeout": 45.0,
        "rtp_timeout": 60.0,
    }


async def test_web_form_error(client: httpx.AsyncClient) -> None:
    token = await page_ready(client)
    response = await client.post(
        "/web",
        data={"csrf_token": token, "type": "https", "port": "70000", "session_idle_minutes": "15"},
    )
    assert response.status_code == 400 and "web.port" in response.text


async def test_certificate_form_refuses_and_keeps(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    p = pki()
    files = {"file": ("https.pem", p.expired.combined_pem(), "application/x-pem-file")}
    response = await client.post("/certificates/https", data={"csrf_token": token}, files=files)
    assert response.status_code == 400 and "expired on" in response.text
    response = await client.post("/certificates/https", data={"csrf_token": token})
    assert response.status_code == 400 and "choose a file" in response.text
    assert not (manager.data_dir / "https.pem").exists()
    files = {"file": ("device.pem", p.client.combined_pem(), "application/x-pem-file")}
    response = await client.post("/certificates/device", data={"csrf_token": token}, files=files)
    assert response.status_code == 303
    page = (await client.get("/certificates")).text
    assert "CN=alice device" in page and "stored, never shown" in page
    assert "BEGIN" not in page


async def test_dial_error_is_shown(client: httpx.AsyncClient) -> None:
    token = await page_ready(client)
    response = await client.post("/calls", data={"csrf_token": token, "uri": ""})
    assert response.status_code == 303
    assert "enter a SIP URI" in (await client.get("/")).text
    response = await client.post("/calls/unknown/hangup", data={"csrf_token": token})
    assert "no call" in (await client.get("/")).text


async def test_system_page_tokens_backup_restore(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    page = await client.post("/system/tokens", data={"csrf_token": token, "label": "monitor"})
    assert 'id="new-token"' in page.text
    secret = page.text.split('id="new-token">')[1].split("<")[0]
    assert manager.users.check_token(secret) == "admin"
    assert secret not in (await client.get("/system")).text  # shown once only
    assert "monitor" in (await client.get("/system")).text
    backup = await client.post("/system/backup", data={"csrf_token": token})
    assert backup.headers["content-disposition"].startswith("attachment")
    sealed = await client.post(
        "/system/backup",
        data={"csrf_token": token, "include_secrets": "on", "passphrase": "ten chars!!"},
    )
    assert sealed.content.startswith(MAGIC)
    refused = await client.post(
        "/system/backup", data={"csrf_token": token, "include_secrets": "on"}
    )
    assert refused.status_code == 400 and "passphrase" in refused.text
    files = {"file": ("b.backup", sealed.content, "application/octet-stream")}
    response = await client.post("/system/restore", data={"csrf_token": token}, files=files)
    assert response.status_code == 400 and "give its passphrase" in response.text
    response = await client.post(
        "/system/restore", data={"csrf_token": token, "passphrase": "ten chars!!"}, files=files
    )
    assert response.status_code == 303
    assert "restore: saved and applied" in (await client.get("/system")).text
    response = await client.post("/system/reboot", data={"csrf_token": token})
    assert response.status_code == 200 and "restarts now" in response.text
    assert manager.reboot_requested


async def test_unknown_page_and_static(client: httpx.AsyncClient) -> None:
    await page_ready(client)
    missing = await client.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text
    css = await client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert csrf_of((await client.get("/")).text)
