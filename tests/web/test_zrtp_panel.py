"""The web call panel and the JSON API of a ZRTP call: the SAS in large type with confirm/reject
buttons (CSRF-protected forms, the same action function as the API), the verdict kept in the
phone's ZRTP cache, and a plain red alarm when the far end's retained secret does not match."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from securephone.aio.phone import Phone
from securephone.web.manager import PhoneManager

from ..helpers import await_until
from .conftest import NEW_PASSWORD, client_for, csrf_of, make_manager, page_login, phone_config

ZRTP_MEDIA = {"port_min": 41000, "port_max": 41999, "srtp": "mandatory", "keying": ["zrtp"]}


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[PhoneManager]:
    mgr = make_manager(tmp_path, media=ZRTP_MEDIA)
    await mgr.start_phone()
    try:
        yield mgr
    finally:
        await mgr.shutdown()


@pytest.fixture
async def bob(tmp_path: Path) -> AsyncIterator[Phone]:
    media = dict(ZRTP_MEDIA, port_min=42000, port_max=42999)
    phone = Phone(phone_config(tmp_path / "bob", calls={"auto_answer": True}, media=media))
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop(2)


async def zrtp_call(client: httpx.AsyncClient, api: dict[str, str], bob: Phone) -> dict[str, Any]:
    """Dial bob through the API; the call view once ZRTP agreed keys on both sides (the two
    ends finish the exchange a message apart: bob's SAS may come a moment after ours)."""
    target = f"sip:bob@{bob.status()['listen']['udp']}"
    response = await client.post("/api/v1/calls", json={"uri": target}, headers=api)
    assert response.status_code == 201, response.text
    call_id = response.json()["id"]

    async def secured() -> Any:
        call = (await client.get(f"/api/v1/calls/{call_id}")).json()
        return call if (call.get("zrtp") or {}).get("sas") else None

    view = dict(await await_until(secured, 10, message="ZRTP keys on the call"))
    await await_until(lambda: bobs_sas(bob) is not None, 10, message="ZRTP keys at bob")
    return view


def bobs_sas(bob: Phone) -> str | None:
    calls = [c for c in bob.calls.values() if not c.ended]
    sas = (calls[0].security["path"] or {}).get("sas") if len(calls) == 1 else None
    return None if sas is None else str(sas)


async def test_sas_panel_confirm_and_cache_mismatch_alarm(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager, bob: Phone
) -> None:
    call = await zrtp_call(client, api, bob)
    zrtp = call["zrtp"]
    assert zrtp["sas"] == bobs_sas(bob) and zrtp["can_confirm"] and zrtp["alarms"] == []
    assert "keys by ZRTP (end to end)" in call["media_label"]
    assert call["security"]["keying"] == "zrtp" and call["security"]["end_to_end"]

    async with client_for(manager) as pages:
        assert (await page_login(pages, NEW_PASSWORD)).status_code == 303
        page = (await pages.get("/")).text
        assert f'<span class="sas">{zrtp["sas"]}</span>' in page
        assert f"/calls/{call['id']}/confirm-sas" in page and "It does not match" in page
        # a form post without the session's CSRF token changes nothing
        refused = await pages.post(f"/calls/{call['id']}/confirm-sas", data={})
        assert refused.status_code in (400, 403)
        assert (await client.get(f"/api/v1/calls/{call['id']}")).json()["zrtp"]["can_confirm"]
        done = await pages.post(
            f"/calls/{call['id']}/confirm-sas", data={"csrf_token": csrf_of(page)}
        )
        assert done.status_code == 303
        page = (await pages.get("/")).text
        assert "you confirmed the SAS" in page and "/confirm-sas" not in page
    view = (await client.get(f"/api/v1/calls/{call['id']}")).json()
    assert view["zrtp"]["sas_verified"] is True and not view["zrtp"]["can_confirm"]
    again = await client.post(f"/api/v1/calls/{call['id']}/confirm-sas", headers=api)
    assert again.status_code == 200  # idempotent: still confirmed
    await client.post(f"/api/v1/calls/{call['id']}/hangup", headers=api)
    await await_until(lambda: not any(not c.ended for c in bob.calls.values()), 5)

    # bob loses his retained secret (or a relay sits in the middle): the next call alarms
    cache = bob._zrtp_cache
    assert cache is not None
    for secrets_ in cache.peers.values():
        secrets_.rs1, secrets_.rs2 = os.urandom(32), None
    call = await zrtp_call(client, api, bob)
    assert call["zrtp"]["cache_mismatch"] and call["zrtp"]["alarms"]
    assert "cache mismatch" in call["security"]["alarms"][0]
    async with client_for(manager) as pages:
        await page_login(pages, NEW_PASSWORD)
        page = (await pages.get("/")).text
        assert '<p class="alarm" role="alert">' in page and "cache mismatch" in page
        rejected = await pages.post(
            f"/calls/{call['id']}/reject-sas", data={"csrf_token": csrf_of(page)}
        )
        assert rejected.status_code == 303
        assert "did NOT match" in (await pages.get("/")).text


async def test_sas_actions_on_a_call_without_zrtp_are_refused(
    client: httpx.AsyncClient, api: dict[str, str], bob: Phone
) -> None:
    missing = await client.post("/api/v1/calls/nope/confirm-sas", headers=api)
    assert missing.status_code == 404
    target = "sip:nobody@127.0.0.1:9"  # nothing answers: no key agreement to confirm
    response = await client.post("/api/v1/calls", json={"uri": target}, headers=api)
    call_id = response.json()["id"]
    result = await client.post(f"/api/v1/calls/{call_id}/confirm-sas", headers=api)
    assert result.status_code == 409 and "no ZRTP key agreement" in result.json()["detail"]
    await client.post(f"/api/v1/calls/{call_id}/hangup", headers=api)
