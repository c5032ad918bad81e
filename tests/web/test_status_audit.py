"""The status page and API carry the self-audit, with what only the running phone knows."""

from __future__ import annotations

from pathlib import Path

from securephone.web import actions
from securephone.web.manager import PhoneManager

from .conftest import client_for, make_manager, media_settings, page_ready


async def status_page(mgr: PhoneManager) -> str:
    """The status page's HTML, logged in (the first login's password change done)."""
    async with client_for(mgr) as client:
        await page_ready(client)
        return (await client.get("/")).text


def test_status_includes_audit_with_default_web_password(manager: PhoneManager) -> None:
    findings = actions.status(manager)["audit"]
    titles = " ".join(f["title"] for f in findings)
    assert any(f["severity"] == "high" for f in findings)
    assert "admin" in titles.lower() or "default" in titles.lower()
    assert all(set(f) >= {"severity", "title", "fix"} for f in findings)


async def test_status_page_and_api_show_the_media_certificate_fingerprint(tmp_path: Path) -> None:
    media = {**media_settings(), "keying": ["dtls", "sdes"]}
    mgr = make_manager(tmp_path, media=media)
    await mgr.start_phone()
    try:
        fingerprint = mgr.phone.media_fingerprint if mgr.phone is not None else None
        assert fingerprint is not None and fingerprint.startswith("sha-256 ")
        assert len(fingerprint.split()[1]) == 95  # 32 bytes as XX:XX:...
        assert actions.status(mgr)["media_certificate"] == {"fingerprint": fingerprint}
        html = await status_page(mgr)
        assert 'id="media-fingerprint"' in html and fingerprint in html
    finally:
        await mgr.shutdown()


async def test_a_changed_tls_key_is_a_red_banner_and_in_the_json(tmp_path: Path) -> None:
    from securephone.aio.call import TlsPeerChanged

    mgr = make_manager(tmp_path)
    await mgr.start_phone()
    try:
        assert mgr.phone is not None and actions.status(mgr)["tls_alarms"] == []
        alarm = TlsPeerChanged("sip.example:5061", "OLD=", "NEW=", False, "the TLS key changed")
        mgr.phone.tls_alarms[alarm.peer] = alarm
        assert actions.status(mgr)["tls_alarms"][0]["seen"] == "NEW="
        html = await status_page(mgr)
        assert 'class="alarm" role="alert" data-tls-peer="sip.example:5061"' in html
    finally:
        await mgr.shutdown()


async def test_status_page_and_api_show_the_servers_dns_gave_and_the_failovers(
    tmp_path: Path,
) -> None:
    from securephone.aio.dns import Located
    from securephone.sip.locate import Target
    from securephone.sip.transport import Peer

    mgr = make_manager(tmp_path)
    await mgr.start_phone()
    try:
        assert mgr.phone is not None and mgr.phone.ua is not None
        first, second = Peer("tcp", "127.0.0.1", 5070), Peer("tcp", "127.0.0.1", 5080)
        targets = [Target(first, 60, "srv"), Target(second, 60, "srv")]
        mgr.phone.located["example.test"] = Located("sip:example.test", targets, 1e12)
        mgr.phone.ua.router.use_targets("example.test", [first, second])
        mgr.phone.ua.router.failover(first, "cannot connect")
        servers = actions.status(mgr)["servers"]
        assert servers["located"]["example.test"]["in_use"] == "tcp:127.0.0.1:5080"
        assert servers["failovers"] == [
            {"from": "tcp:127.0.0.1:5070", "to": "tcp:127.0.0.1:5080", "why": "cannot connect"}
        ]
        html = await status_page(mgr)
        assert "<strong>tcp:127.0.0.1:5080 (from srv, ttl 60s) (in use)</strong>" in html
        assert "tcp:127.0.0.1:5070 → tcp:127.0.0.1:5080 (cannot connect)" in html
    finally:
        await mgr.shutdown()


async def test_status_page_and_api_show_the_learnt_public_address(tmp_path: Path) -> None:
    """actions.status is what GET /api/v1/status returns; the page shows the same address."""
    from ..aio.test_nat_stun import PUBLIC_IP, FakeStun, serve

    stun_transport, stun_port = await serve(FakeStun())
    mgr = make_manager(tmp_path, nat={"stun_server": f"127.0.0.1:{stun_port}"})
    await mgr.start_phone()
    try:
        nat = actions.status(mgr)["nat"]
        assert nat["public_address"] is not None and nat["public_address"].startswith(PUBLIC_IP)
        html = await status_page(mgr)
        assert 'id="nat"' in html and nat["public_address"] in html
    finally:
        await mgr.shutdown()
        stun_transport.close()


async def test_status_page_lists_each_outbound_flow(tmp_path: Path) -> None:
    from tests.helpers import free_port

    edges = [
        free_port("udp"),
        free_port("udp"),
    ]  # nothing answers there: the flows stay unregistered
    account = {
        "name": "alice", "user": "alice", "domain": "example.test", "password": "pw",
        "outbound": True, "outbound_proxies": [f"sip:127.0.0.1:{p}" for p in edges],
        "retry_base": 300,
    }  # fmt: skip
    mgr = make_manager(tmp_path, accounts=[account])
    await mgr.start_phone()
    try:
        (view,) = actions.status(mgr)["accounts"]
        assert [(f["reg_id"], f["proxy"]) for f in view["flows"]] == [
            (1, f"sip:127.0.0.1:{edges[0]}"),
            (2, f"sip:127.0.0.1:{edges[1]}"),
        ]
        html = await status_page(mgr)
        for reg_id, port in ((1, edges[0]), (2, edges[1])):
            assert (
                f'<li data-reg-id="{reg_id}" class="danger">flow {reg_id} via sip:127.0.0.1:{port}: '
                in html
            )
    finally:
        await mgr.shutdown()


async def test_status_page_and_api_show_the_keepalive_and_the_registrars_flow_timer(
    tmp_path: Path,
) -> None:
    """An outbound account whose registrar answers ``Flow-Timer: 4``: the status (API) and the
    page say the keep-alives come every 4 s because of it (RFC 5626 §4.4.1)."""
    from tests.helpers import await_until

    from ..aio.test_nat_stun import FakeRegistrar, serve

    registrar = FakeRegistrar()
    registrar.flow_timer = "4"
    transport, port = await serve(registrar)
    account = {
        "name": "alice", "user": "alice", "domain": "127.0.0.1", "password": "pw",
        "outbound": True, "registrar": f"sip:127.0.0.1:{port}",
    }  # fmt: skip
    mgr = make_manager(tmp_path, accounts=[account], nat={"stun_server": f"127.0.0.1:{port}"})
    await mgr.start_phone()
    try:
        await await_until(lambda: actions.status(mgr)["accounts"][0]["flow_timer"] == 4, 5)
        (view,) = actions.status(mgr)["accounts"]
        assert view["keepalive_s"] == 4.0  # below the configured 25 s
        html = await status_page(mgr)
        assert "keep-alive every 4.0 s (registrar's Flow-Timer 4 s)" in html
    finally:
        await mgr.shutdown()
        transport.close()
