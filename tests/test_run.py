"""`securephone run` with the web interface: SIP and web in one event loop, configured from
the TOML file's [web] table, stopped cleanly by the restart button (which asks for a restart)."""

from __future__ import annotations

import asyncio
import stat
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from securephone.run import run_phone
from securephone.store.config import ConfigError, load_config
from securephone.web.manager import PhoneManager

from .web.conftest import NEW_PASSWORD, media_settings


def write_config(tmp_path: Path, web: dict[str, object]) -> Path:
    path = tmp_path / "phone.toml"
    data = {
        "data_dir": str(tmp_path / "data"),
        "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "tcp_port": 0},
        "media": media_settings(),
        "web": web,
    }
    path.write_text(tomli_w.dumps(data))
    return path


def test_bad_web_table_names_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"type": "gopher"})
    with pytest.raises(ConfigError, match=r"web\.type: Input should be 'https' or 'http'"):
        load_config(path)
    path = write_config(tmp_path, {"listen_address": "example.com"})
    with pytest.raises(ConfigError, match="listen_address"):
        load_config(path)


async def test_run_serves_sip_and_web_then_restarts_on_request(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"port": 0, "listen_address": "127.0.0.1"})
    ready: asyncio.Future[PhoneManager] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_phone(path, started=ready.set_result))
    manager = await asyncio.wait_for(ready, 10)
    assert manager.server is not None and manager.phone is not None
    url = manager.server.url
    async with httpx.AsyncClient(base_url=url, verify=False) as client:
        login = await client.post(
            "/api/v1/session", json={"username": "admin", "password": "admin"}
        )
        headers = {"x-csrf-token": login.json()["csrf_token"]}
        changed = await client.post(
            "/api/v1/password",
            json={"current_password": "admin", "new_password": NEW_PASSWORD},
            headers=headers,
        )
        assert changed.status_code == 200
        status = (await client.get("/api/v1/status")).json()
        assert status["running"] and set(status["listen"]) == {"udp", "tcp"}
        calls = await client.put(
            "/api/v1/settings/calls", json={"auto_answer": True}, headers=headers
        )
        assert calls.status_code == 200
        response = await client.post("/api/v1/reboot", headers=headers)
        assert response.status_code == 202
    restart, summary = await asyncio.wait_for(task, 15)
    assert restart is True
    assert set(summary["listen"]) == {"udp", "tcp"}
    saved = tomllib.loads(path.read_text())
    assert saved["web"]["port"] == 0 and saved["calls"]["auto_answer"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
