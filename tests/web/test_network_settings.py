"""The DNS and NAT sections on the settings page and in the API (issue 17: configurable resolver)."""

from __future__ import annotations

import httpx

from securephone.web.manager import PhoneManager

from .conftest import page_ready


async def test_dns_servers_are_typed_as_a_list_and_shown_back(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    html = (await client.get("/settings")).text
    assert "Finding servers (DNS, RFC 3263)" in html and "NAT (STUN)" in html
    form = {
        "csrf_token": token, "enabled": "on", "servers": "127.0.0.1, ::1", "port": "5353",
        "timeout": "2", "failback_interval": "120",
    }  # fmt: skip
    response = await client.post("/settings/dns", data=form)
    assert response.status_code == 303, response.text
    dns = manager.config.dns
    assert (dns.servers, dns.port, dns.failback_interval) == (["127.0.0.1", "::1"], 5353, 120.0)
    assert 'name="servers" value="127.0.0.1, ::1"' in (await client.get("/settings")).text
    response = await client.post("/settings/dns", data={**form, "servers": "dns.example"})
    assert response.status_code == 400 and "dns.servers" in response.text
    assert manager.config.dns.servers == ["127.0.0.1", "::1"]  # nothing changed


async def test_nat_settings_through_the_api(
    client: httpx.AsyncClient, manager: PhoneManager, api: dict[str, str]
) -> None:
    nat = (await client.get("/api/v1/settings/nat", headers=api)).json()
    assert nat["stun_server"] is None
    response = await client.put(
        "/api/v1/settings/nat", json={**nat, "keepalive_interval": 40}, headers=api
    )
    assert response.status_code == 200, response.text
    assert manager.config.nat.keepalive_interval == 40
    response = await client.put(
        "/api/v1/settings/nat", json={"keepalive_interval": "x"}, headers=api
    )
    assert response.status_code == 422
