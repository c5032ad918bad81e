"""Files the phone writes on request (SIP trace, TLS key log, SRTP key export): mode 0600, and
named from the web/API only inside the data directory (the configuration file may name any)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from securephone.aio.phone import SipTrace
from securephone.sip.transport import Peer
from securephone.store.config import config_to_dict
from securephone.tls import TlsSettings, client_context, server_context
from securephone.web.backup import make_plain
from securephone.web.manager import PhoneManager

from .certs import pki
from .conftest import client_for, make_manager, ready


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain open() makes a world-readable file."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_sip_trace_is_created_private_and_made_private(tmp_path: Path) -> None:
    fresh, existing = tmp_path / "fresh.log", tmp_path / "existing.log"
    existing.write_text("old\n")
    existing.chmod(0o644)
    for path in (fresh, existing):
        trace = SipTrace(path)
        trace("in", Peer("udp", "127.0.0.1", 5060), b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
        trace.close()
        assert mode(path) == 0o600, path
        assert "OPTIONS sip:a@b" in path.read_text()
    assert existing.read_text().startswith("old\n")  # appended, not replaced


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("side", ["client", "server"])
def test_tls_key_log_is_private_before_openssl_writes_to_it(tmp_path: Path, side: str) -> None:
    keylog = tmp_path / "keys.log"
    if side == "client":
        client_context(TlsSettings(use_system_cas=False, keylog_file=keylog))
    else:
        device = tmp_path / "device.pem"
        device.write_bytes(pki().server.combined_pem())
        server_context(TlsSettings(use_system_cas=False, keylog_file=keylog, certificate=device))
    assert keylog.exists() and mode(keylog) == 0o600


# -- confinement ----------------------------------------------------------------------------------
@pytest.fixture
async def owned(tmp_path: Path) -> PhoneManager:
    """A phone whose configuration file (the owner's) names a trace file outside the data dir."""
    outside = tmp_path / "owner" / "sip.log"
    outside.parent.mkdir()
    return make_manager(
        tmp_path,
        sip={
            "listen_address": "127.0.0.1",
            "udp_port": 0,
            "tcp_port": 0,
            "trace_file": str(outside),
        },
    )


async def test_api_names_written_files_only_inside_the_data_directory(
    owned: PhoneManager, tmp_path: Path
) -> None:
    mgr = owned
    await mgr.start_phone()
    data_dir = mgr.config.data_path.resolve()
    (data_dir / "escape").symlink_to(tmp_path)
    try:
        async with client_for(mgr) as client:
            api = await ready(client)
            for section, field in (
                ("tls", "keylog_file"),
                ("media", "srtp_key_export"),
                ("sip", "trace_file"),
            ):
                for bad in ("/tmp/x.log", "../x.log", "escape/x.log", ".", str(data_dir)):
                    current = (await client.get(f"/api/v1/settings/{section}")).json()
                    response = await client.put(
                        f"/api/v1/settings/{section}", json={**current, field: bad}, headers=api
                    )
                    assert response.status_code == 400, (section, bad, response.text)
                    detail = response.json()["detail"]
                    assert f"{section}.{field}" in detail and "data directory" in detail
                current = (await client.get(f"/api/v1/settings/{section}")).json()
                response = await client.put(
                    f"/api/v1/settings/{section}",
                    json={**current, field: "x.log"},
                    headers=api,
                )
                assert response.status_code == 200, response.text
                saved = getattr(getattr(mgr.config, section), field)
                assert saved == str(data_dir / "x.log")  # relative: in the data dir
    finally:
        await mgr.shutdown()


async def test_the_owners_own_path_may_be_sent_back_unchanged(owned: PhoneManager) -> None:
    mgr = owned
    await mgr.start_phone()
    owner_path = mgr.config.sip.trace_file
    try:
        async with client_for(mgr) as client:
            api = await ready(client)
            current = (await client.get("/api/v1/settings/sip")).json()
            assert current["trace_file"] == owner_path
            response = await client.put(
                "/api/v1/settings/sip", json={**current, "user_agent": "desk/2"}, headers=api
            )
            assert response.status_code == 200, response.text
            assert mgr.config.sip.trace_file == owner_path
            assert mgr.config.sip.user_agent == "desk/2"
    finally:
        await mgr.shutdown()


async def test_a_restored_backup_cannot_point_files_outside(
    tmp_path: Path, manager: PhoneManager, client: httpx.AsyncClient
) -> None:
    api = await ready(client)
    data = config_to_dict(manager.config, include_secrets=False)
    data.setdefault("tls", {})["keylog_file"] = str(tmp_path / "stolen-keys.log")
    files = {"file": ("b.toml", make_plain(data), "application/octet-stream")}
    response = await client.post("/api/v1/restore", files=files, headers=api)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "tls.keylog_file" in detail and "nothing changed" in detail
    assert manager.config.tls.keylog_file is None
