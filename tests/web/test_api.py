"""The JSON API, endpoint by endpoint, against a real Phone on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import stat
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from securephone.aio.phone import Phone
from securephone.store.config import config_to_dict
from securephone.web.backup import MAGIC
from securephone.web.manager import PhoneManager

from ..helpers import await_until
from .certs import pki
from .conftest import phone_config, ready

ACCOUNT = {
    "name": "alice",
    "user": "alice",
    "domain": "127.0.0.1",
    "password": "alice-secret-pw",
    "registrar": "sip:127.0.0.1:9",
    "register": False,
}


@pytest.fixture
async def bob(tmp_path: Path) -> AsyncIterator[Phone]:
    phone = Phone(phone_config(tmp_path / "bob", calls={"auto_answer": True}))
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop(2)


def bob_uri(bob: Phone) -> str:
    return f"sip:bob@{bob.status()['listen']['udp']}"


# -- status, OpenAPI ---------------------------------------------------------------------------------
async def test_status(client: httpx.AsyncClient, api: dict[str, str]) -> None:
    data = (await client.get("/api/v1/status")).json()
    assert data["running"] is True
    assert set(data["listen"]) == {"udp", "tcp"}
    assert data["accounts"] == [] and data["calls"] == [] and data["recent_calls"] == []
    assert data["web"]["type"] == "https"


async def test_openapi_documents_every_api_route(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    paths = doc["paths"]
    for path in (
        "/api/v1/session",
        "/api/v1/password",
        "/api/v1/status",
        "/api/v1/calls",
        "/api/v1/calls/{call_id}/{action}",
        "/api/v1/calls/{call_id}/dtmf",
        "/api/v1/accounts/{name}",
        "/api/v1/settings/web",
        "/api/v1/certificates/{slot}",
        "/api/v1/backup",
        "/api/v1/restore",
        "/api/v1/tokens",
        "/api/v1/log",
        "/api/v1/reboot",
        "/api/v1/capture",
        "/api/v1/capture/start",
        "/api/v1/capture/stop",
        "/api/v1/capture/file",
        "/api/v1/capture/verify",
        "/api/v1/capture/report/{name}",
    ):
        assert path in paths, path
    assert not any(p.startswith("/accounts") or p == "/" for p in paths)  # pages stay out
    # errors are documented with the shape they really have
    start = paths["/api/v1/capture/start"]["post"]["responses"]
    assert {"201", "409", "422", "503"} <= set(start)
    invalid = start["422"]["content"]["application/json"]["schema"]["$ref"]
    assert invalid.endswith("/ValidationErrorOut")
    pcap = paths["/api/v1/capture/file"]["get"]["responses"]["200"]["content"]
    assert list(pcap) == ["application/vnd.tcpdump.pcap"]


# -- accounts ----------------------------------------------------------------------------------------
async def test_account_crud_password_write_only(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    response = await client.post("/api/v1/accounts", json=ACCOUNT, headers=api)
    assert response.status_code == 201, response.text
    listed = (await client.get("/api/v1/accounts")).json()
    assert listed[0]["name"] == "alice" and listed[0]["password_set"] is True
    assert "password" not in listed[0]
    one = await client.get("/api/v1/accounts/alice")
    assert "alice-secret-pw" not in one.text
    # saved atomically with mode 0600, password inside the file only
    saved = manager.config_path
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert tomllib.loads(saved.read_text())["accounts"][0]["password"] == "alice-secret-pw"
    # update without a password keeps the stored one
    changed = {k: v for k, v in ACCOUNT.items() if k != "password"} | {"expires": 900}
    response = await client.put("/api/v1/accounts/alice", json=changed, headers=api)
    assert response.status_code == 200, response.text
    assert manager.config.accounts[0].expires == 900
    assert manager.config.accounts[0].password.get_secret_value() == "alice-secret-pw"
    # the running phone has the account
    status = (await client.get("/api/v1/status")).json()
    assert [a["name"] for a in status["accounts"]] == ["alice"]
    assert status["accounts"][0]["registration"] == "unregistered"
    response = await client.delete("/api/v1/accounts/alice", headers=api)
    assert response.status_code == 200
    assert (await client.get("/api/v1/accounts")).json() == []
    assert (await client.get("/api/v1/accounts/alice")).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expires": 10}, "expires"),
        ({"transport": "sctp"}, "transport"),
        ({"name": "bad name!"}, "name"),
        ({"registrar": "http://x"}, "registrar"),
        ({"user": "a b"}, "user"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_account_errors_name_the_field_and_change_nothing(
    client: httpx.AsyncClient,
    api: dict[str, str],
    manager: PhoneManager,
    change: dict[str, Any],
    field: str,
) -> None:
    response = await client.post("/api/v1/accounts", json=ACCOUNT | change, headers=api)
    assert response.status_code == 422
    body = response.json()
    assert field in body["detail"]
    assert "alice-secret-pw" not in response.text  # submitted values are never echoed
    assert manager.config.accounts == []
    assert not manager.config_path.exists()


async def test_duplicate_account_name_refused(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    assert (await client.post("/api/v1/accounts", json=ACCOUNT, headers=api)).status_code == 201
    response = await client.post("/api/v1/accounts", json=ACCOUNT, headers=api)
    assert response.status_code == 400
    assert "accounts: two accounts have the same name" in response.json()["detail"]
    assert len(manager.config.accounts) == 1


# -- settings -----------------------------------------------------------------------------------------
async def test_media_change_applies_at_once_without_restart(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    phone = manager.phone
    media = (await client.get("/api/v1/settings/media")).json()
    media["port_min"], media["port_max"] = 42000, 42099
    response = await client.put("/api/v1/settings/media", json=media, headers=api)
    assert response.status_code == 200, response.text
    assert "at once" in response.json()["message"]
    assert manager.phone is phone and phone is not None
    assert phone.config.media.port_min == 42000


async def test_sip_change_restarts_the_phone(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    old = manager.phone
    sip = (await client.get("/api/v1/settings/sip")).json()
    sip["transports"] = ["udp"]
    response = await client.put("/api/v1/settings/sip", json=sip, headers=api)
    assert response.status_code == 200, response.text
    assert "restarted" in response.json()["message"]
    assert manager.phone is not old
    assert set((await client.get("/api/v1/status")).json()["listen"]) == {"udp"}


async def test_settings_errors_name_the_field(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    response = await client.put("/api/v1/settings/media", json={"port_min": 5}, headers=api)
    assert response.status_code == 422 and "port_min" in response.json()["detail"]
    response = await client.put(
        "/api/v1/settings/media", json={"port_min": 30000, "port_max": 30000}, headers=api
    )
    assert (
        response.status_code == 422
        and "port_max must be above port_min" in response.json()["detail"]
    )
    response = await client.put("/api/v1/settings/tls", json={"min_version": "SSLv3"}, headers=api)
    assert response.status_code == 422 and "min_version" in response.json()["detail"]
    response = await client.put(
        "/api/v1/settings/sip", json={"listen_address": "nowhere"}, headers=api
    )
    assert response.status_code == 422 and "listen_address" in response.json()["detail"]
    assert (await client.get("/api/v1/settings/nope")).status_code == 422
    assert not manager.config_path.exists()


async def test_change_that_cannot_start_rolls_back(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    sip = (await client.get("/api/v1/settings/sip")).json()
    sip["transports"] = ["tls"]  # a TLS listener without a certificate cannot start
    response = await client.put("/api/v1/settings/sip", json=sip, headers=api)
    assert response.status_code == 400
    assert "not applied" in response.json()["detail"] and "certificate" in response.json()["detail"]
    assert manager.config.sip.transports == ["udp", "tcp"]
    assert manager.phone is not None and manager.phone.ua is not None  # the old config runs again
    assert not manager.config_path.exists()


async def test_web_settings_without_a_running_server(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    response = await client.put(
        "/api/v1/settings/web", json={"type": "http", "http_redirect_port": 8080}, headers=api
    )
    assert response.status_code == 422 and "http_redirect_port" in response.json()["detail"]
    response = await client.put(
        "/api/v1/settings/web", json={"session_idle_minutes": 5}, headers=api
    )
    assert response.status_code == 200
    assert manager.web.session_idle_minutes == 5
    assert tomllib.loads(manager.config_path.read_text())["web"]["session_idle_minutes"] == 5


# -- certificates ---------------------------------------------------------------------------------------
async def test_certificate_import_api(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    p = pki()
    files = {"file": ("sips.pem", p.ca.cert_pem, "application/x-pem-file")}
    response = await client.post("/api/v1/certificates/sips", files=files, headers=api)
    assert response.status_code == 200, response.text
    assert "sips.pem imported" in response.json()["message"]
    listed = {s["slot"]: s for s in (await client.get("/api/v1/certificates")).json()}
    assert listed["sips"]["certificates"][0]["subject"] == "CN=securephone test CA"
    before = (manager.data_dir / "sips.pem").read_bytes()
    bad = {"file": ("sips.pem", p.server.combined_pem(), "application/x-pem-file")}
    response = await client.post("/api/v1/certificates/sips", files=bad, headers=api)
    assert response.status_code == 400
    assert "private key does not belong" in response.json()["detail"]
    assert (manager.data_dir / "sips.pem").read_bytes() == before
    odd = {"file": ("../../x.pem", p.ca.cert_pem, "application/x-pem-file")}
    response = await client.post("/api/v1/certificates/sips", files=odd, headers=api)
    assert response.status_code == 400 and "file name" in response.json()["detail"]
    big = {"file": ("big.pem", b"A" * 70000, "application/x-pem-file")}
    response = await client.post("/api/v1/certificates/https", files=big, headers=api)
    assert response.status_code == 400 and "too large" in response.json()["detail"]
    two = {
        "file": ("cert.pem", p.server.cert_pem, "application/x-pem-file"),
        "key": ("key.pem", p.other.key_pem, "application/x-pem-file"),
    }
    response = await client.post("/api/v1/certificates/https", files=two, headers=api)
    assert response.status_code == 400 and "does not match" in response.json()["detail"]
    assert not (manager.data_dir / "https.pem").exists()
    assert (
        await client.post("/api/v1/certificates/ssh", files=files, headers=api)
    ).status_code == 422


async def test_device_certificate_is_put_in_the_tls_config(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    files = {"file": ("device.pem", pki().client.combined_pem(), "application/x-pem-file")}
    response = await client.post("/api/v1/certificates/device", files=files, headers=api)
    assert response.status_code == 200, response.text
    assert manager.config.tls.certificate == "device.pem"
    assert stat.S_IMODE((manager.data_dir / "device.pem").stat().st_mode) == 0o600
    listed = (await client.get("/api/v1/certificates")).text
    assert "PRIVATE KEY" not in listed and "BEGIN" not in listed


# -- backup, restore ------------------------------------------------------------------------------------
async def test_backup_and_restore(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    await client.post("/api/v1/accounts", json=ACCOUNT, headers=api)
    plain = await client.post("/api/v1/backup", json={}, headers=api)
    assert plain.status_code == 200
    assert "attachment" in plain.headers["content-disposition"]
    assert b"alice-secret-pw" not in plain.content and b"alice" in plain.content
    sealed = await client.post(
        "/api/v1/backup",
        json={"include_secrets": True, "passphrase": "backup passphrase"},
        headers=api,
    )
    assert sealed.content.startswith(MAGIC) and b"alice-secret-pw" not in sealed.content
    short = await client.post(
        "/api/v1/backup", json={"include_secrets": True, "passphrase": "x"}, headers=api
    )
    assert short.status_code == 400 and "passphrase" in short.json()["detail"]
    # change something, then restore the encrypted backup: the password comes back too
    await client.delete("/api/v1/accounts/alice", headers=api)
    files = {"file": ("b.backup", sealed.content, "application/octet-stream")}
    wrong = await client.post(
        "/api/v1/restore", files=files, data={"passphrase": "not it at all"}, headers=api
    )
    assert wrong.status_code == 400 and "wrong passphrase" in wrong.json()["detail"]
    assert manager.config.accounts == []
    ok = await client.post(
        "/api/v1/restore", files=files, data={"passphrase": "backup passphrase"}, headers=api
    )
    assert ok.status_code == 200, ok.text
    assert manager.config.accounts[0].password.get_secret_value() == "alice-secret-pw"


async def test_restore_validates_first(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    bad = b"[sip]\nudp_port = 99999\n"
    files = {"file": ("x.toml", bad, "application/octet-stream")}
    response = await client.post("/api/v1/restore", files=files, headers=api)
    assert response.status_code == 400
    assert (
        "sip.udp_port" in response.json()["detail"]
        and "nothing changed" in response.json()["detail"]
    )
    junk = {"file": ("x.toml", b"\x00\xff", "application/octet-stream")}
    response = await client.post("/api/v1/restore", files=junk, headers=api)
    assert response.status_code == 400 and "not a configuration backup" in response.json()["detail"]
    assert not manager.config_path.exists()


# -- tokens, log, reboot ----------------------------------------------------------------------------------
async def test_tokens_and_log_and_reboot(
    client: httpx.AsyncClient, manager: PhoneManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="securephone")
    api = await ready(client)
    created = await client.post("/api/v1/tokens", json={"label": "ci"}, headers=api)
    assert created.status_code == 201
    token = created.json()
    assert token["token"].startswith("sp_")
    listed = (await client.get("/api/v1/tokens")).json()
    assert listed[0]["id"] == token["id"] and listed[0]["token"] is None
    lines = (await client.get("/api/v1/log")).json()
    assert any("web login: admin from 127.0.0.1" in line for line in lines)
    assert any("user 'admin', password 'admin'" in line for line in lines)
    gone = await client.delete(f"/api/v1/tokens/{token['id']}", headers=api)
    assert gone.status_code == 200
    assert (await client.delete(f"/api/v1/tokens/{token['id']}", headers=api)).status_code == 404
    response = await client.post("/api/v1/reboot", headers=api)
    assert response.status_code == 202
    assert manager.reboot_requested
    await asyncio.wait_for(manager.wait_stopped(), 1)


# -- calls --------------------------------------------------------------------------------------------------
async def test_call_control_through_the_api(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager, bob: Phone
) -> None:
    response = await client.post("/api/v1/calls", json={"uri": bob_uri(bob)}, headers=api)
    assert response.status_code == 201, response.text
    call_id = response.json()["id"]

    async def connected() -> Any:
        call = (await client.get(f"/api/v1/calls/{call_id}")).json()
        return call if call["state"] == "connected" else None

    call = await await_until(connected, 5, message="the call to connect")
    assert call["signalling_label"] == "UDP: NOT ENCRYPTED"
    assert call["media_label"].startswith(("SRTP ", "NOT ENCRYPTED"))
    for action in ("hold", "resume"):
        result = await client.post(f"/api/v1/calls/{call_id}/{action}", headers=api)
        assert result.status_code == 200, result.text
    dtmf = await client.post(f"/api/v1/calls/{call_id}/dtmf", json={"digits": "12#"}, headers=api)
    assert dtmf.status_code == 200
    bad = await client.post(f"/api/v1/calls/{call_id}/dtmf", json={"digits": "12x"}, headers=api)
    assert bad.status_code == 422 and "digits" in bad.json()["detail"]
    answer = await client.post(f"/api/v1/calls/{call_id}/answer", headers=api)
    assert answer.status_code == 409 and "not ringing" in answer.json()["detail"]
    hangup = await client.post(f"/api/v1/calls/{call_id}/hangup", headers=api)
    assert hangup.status_code == 200

    async def recorded() -> Any:
        return (await client.get("/api/v1/history")).json()

    history = await await_until(recorded, 5, message="the call in the history")
    assert history[0]["remote"] == bob_uri(bob) and history[0]["answered"] is True
    assert history[0]["transport"] == "udp"
    assert (await client.get("/api/v1/calls")).json() == []


async def test_dial_errors(client: httpx.AsyncClient, api: dict[str, str]) -> None:
    response = await client.post("/api/v1/calls", json={"uri": "sip:"}, headers=api)
    assert response.status_code == 400 and response.json()["detail"].startswith("uri:")
    response = await client.post(
        "/api/v1/calls", json={"uri": "sip:bob@127.0.0.1", "account": "nobody"}, headers=api
    )
    assert response.status_code == 400 and "no account named 'nobody'" in response.json()["detail"]
    assert (await client.post("/api/v1/calls/nope/hangup", headers=api)).status_code == 404
    assert (await client.post("/api/v1/calls/nope/explode", headers=api)).status_code == 422


async def test_answer_an_incoming_call_through_the_api(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager, tmp_path: Path
) -> None:
    caller = Phone(phone_config(tmp_path / "carol"))
    await caller.start()
    try:
        assert manager.phone is not None
        ours = manager.phone.status()["listen"]["udp"]
        outgoing = caller.dial(f"sip:alice@{ours}")

        async def ringing() -> Any:
            calls = (await client.get("/api/v1/calls")).json()
            return calls[0] if calls and calls[0]["state"] == "incoming" else None

        call = await await_until(ringing, 5, message="the incoming call")
        assert call["direction"] == "incoming" and call["remote"].startswith("sip:")
        page = (await client.get("/")).text
        assert f'action="/calls/{call["id"]}/answer"' in page
        answered = await client.post(f"/api/v1/calls/{call['id']}/answer", headers=api)
        assert answered.status_code == 200, answered.text
        from securephone.sip.callstate import CallState

        assert await outgoing.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
        outgoing.hangup()
        await outgoing.wait_ended(5)

        async def ended() -> Any:
            return (await client.get("/api/v1/history")).json()

        history = await await_until(ended, 5, message="the history row")
        assert (
            history[0]["direction"] == "incoming" and history[0]["reason"] == "the far end hung up"
        )
    finally:
        await caller.stop(2)


# -- strict types --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/settings/calls", {"max_calls": True}, "max_calls"),
        ("/api/v1/settings/calls", {"max_calls": "3"}, "max_calls"),
        ("/api/v1/settings/calls", {"auto_answer": 1}, "auto_answer"),
        ("/api/v1/settings/calls", {"auto_answer": "yes"}, "auto_answer"),
        ("/api/v1/settings/sip", {"udp_port": 5060.0}, "udp_port"),
        ("/api/v1/settings/media", {"jitter_buffer_frames": "3"}, "jitter_buffer_frames"),
        ("/api/v1/settings/web", {"port": False}, "port"),
        ("/api/v1/settings/tls", {"verify_server": 0}, "verify_server"),
    ],
)
async def test_json_values_of_the_wrong_type_are_refused(
    client: httpx.AsyncClient,
    api: dict[str, str],
    manager: PhoneManager,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    before = config_to_dict(manager.config, include_secrets=True)
    response = await client.put(path, json=body, headers=api)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert config_to_dict(manager.config, include_secrets=True) == before


async def test_wrong_types_in_other_bodies_are_refused(
    client: httpx.AsyncClient, api: dict[str, str]
) -> None:
    for path, body in (
        ("/api/v1/session", {"username": "admin", "password": 12345678901}),
        ("/api/v1/accounts", {**ACCOUNT, "register": "false"}),
        ("/api/v1/accounts", {**ACCOUNT, "expires": "600"}),
        ("/api/v1/backup", {"include_secrets": 1}),
        ("/api/v1/tokens", {"label": 7}),
    ):
        response = await client.post(path, json=body, headers=api)
        assert response.status_code == 422, (path, body, response.text)
    response = await client.put("/api/v1/settings/calls", json={"max_calls": 3}, headers=api)
    assert response.status_code == 200  # the right types still work
