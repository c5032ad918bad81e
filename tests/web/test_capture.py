"""The packet capture function (issue 7): start, stop, download and verify a real capture of
the phone's own traffic while it calls a second phone on 127.0.0.1, from the API and the pages.

The capture is real (a raw AF_PACKET socket, or tcpdump/dumpcap); only the "not possible
here" path replaces ``PacketCapture.start``. Tests that need a real capture are skipped
where this host cannot capture, with the reason."""

from __future__ import annotations

import io
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dpkt
import httpx
import pytest

from securephone.aio.phone import Phone
from securephone.capture import CaptureUnavailable, PacketCapture
from securephone.web.app import REPORT_CSP
from securephone.web.capturing import unavailable_reason
from securephone.web.manager import PhoneManager

from ..helpers import await_until
from .conftest import page_ready, phone_config

needs_capture = pytest.mark.skipif(
    unavailable_reason() is not None, reason=str(unavailable_reason())
)


@pytest.fixture
async def bob(tmp_path: Path) -> AsyncIterator[Phone]:
    phone = Phone(phone_config(tmp_path / "bob", calls={"auto_answer": True}))
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop(2)


def sip_port(manager: PhoneManager) -> int:
    assert manager.phone is not None
    return int(manager.phone.status()["listen"]["udp"].rsplit(":", 1)[1])


def udp_packets(blob: bytes) -> list[tuple[int, int, bytes]]:
    """(source port, destination port, payload) of every UDP packet in a pcap (dpkt reads it)."""
    reader = dpkt.pcap.Reader(io.BytesIO(blob))
    assert reader.datalink() == dpkt.pcap.DLT_EN10MB  # the loopback, framed as Ethernet
    out = []
    for _, frame in reader:
        ip = dpkt.ethernet.Ethernet(frame).data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
            out.append((ip.data.sport, ip.data.dport, bytes(ip.data.data)))
    return out


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/capture")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def call_bob(client: httpx.AsyncClient, api: dict[str, str], bob: Phone) -> str:
    uri = f"sip:bob@{bob.status()['listen']['udp']}"
    response = await client.post("/api/v1/calls", json={"uri": uri}, headers=api)
    assert response.status_code == 201, response.text
    call_id = str(response.json()["id"])

    async def connected() -> bool:
        call = (await client.get(f"/api/v1/calls/{call_id}")).json()
        return bool(call["state"] == "connected")

    await await_until(connected, 10, message="the call to connect")
    return call_id


# -- a real capture of a real call -----------------------------------------------------------------
@needs_capture
async def test_capture_a_call_through_the_api(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager, bob: Phone
) -> None:
    idle = await state(client)
    assert (
        idle["running"] is False and idle["downloadable"] is False and idle["unavailable"] is None
    )
    assert "lo" in idle["interfaces"]

    started = await client.post("/api/v1/capture/start", json={"seconds": 120}, headers=api)
    assert started.status_code == 201, started.text
    running = started.json()
    ours = sip_port(manager)
    media = manager.config.media
    assert running["running"] is True and running["interface"] == "lo"
    assert running["backend"] in ("socket", "tcpdump", "dumpcap")
    assert running["ports"] == [
        f"tcp:{tcp_port(manager)}",
        f"udp:{ours}",
        f"udp:{media.port_min}-{media.port_max}",
    ]
    assert running["max_seconds"] == 120

    call_id = await call_bob(client, api, bob)

    async def some_media() -> bool:  # a handful of SIP messages, then RTP
        data = await state(client)
        return bool(data["packets"] > 30 or (data["backend"] != "socket" and data["size"] > 4000))

    await await_until(some_media, 10, message="RTP packets in the capture")
    hangup = await client.post(f"/api/v1/calls/{call_id}/hangup", headers=api)
    assert hangup.status_code == 200

    early = await client.get("/api/v1/capture/file")
    assert early.status_code == 409 and "still running" in early.json()["detail"]
    stopped = await client.post("/api/v1/capture/stop", headers=api)
    assert stopped.status_code == 200, stopped.text
    done = stopped.json()
    assert done["running"] is False and done["downloadable"] is True
    assert done["stopped_reason"] == "stopped on request" and done["error"] is None
    assert done["packets"] > 30 and done["size"] > 24 and done["max_seconds"] == 120

    path = manager.data_dir / "capture" / "capture.pcap"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    download = await client.get("/api/v1/capture/file")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/vnd.tcpdump.pcap"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;") and ".pcap" in disposition
    assert len(download.content) == done["size"]
    packets = udp_packets(download.content)
    to_us = [payload for _, dport, payload in packets if dport == ours]
    assert any(p.startswith(b"SIP/2.0 200 ") for p in to_us)  # bob's answer to our INVITE
    from_us = [payload for sport, _, payload in packets if sport == ours]
    assert any(p.startswith(b"INVITE sip:bob@") for p in from_us)
    rtp = [
        (s, d)
        for s, d, payload in packets
        if media.port_min <= d <= media.port_max and payload[:1] and payload[0] >> 6 == 2
    ]
    assert rtp, "RTP (version 2) packets to the media port range"
    wanted = {ours, tcp_port(manager)}
    for s, d, _ in packets:  # nothing but the phone's own ports
        assert (
            {s, d} & wanted
            or media.port_min <= s <= media.port_max
            or (media.port_min <= d <= media.port_max)
        )


def tcp_port(manager: PhoneManager) -> int:
    assert manager.phone is not None
    return int(manager.phone.status()["listen"]["tcp"].rsplit(":", 1)[1])


@needs_capture
async def test_verify_a_capture_and_open_its_report(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager, bob: Phone
) -> None:
    no_capture = await client.post("/api/v1/capture/verify", headers=api)
    assert no_capture.status_code == 404 and "no capture yet" in no_capture.json()["detail"]
    assert (await client.post("/api/v1/capture/start", headers=api)).status_code == 201
    call_id = await call_bob(client, api, bob)

    async def some_media() -> bool:
        data = await state(client)
        return bool(data["packets"] > 30 or (data["backend"] != "socket" and data["size"] > 4000))

    await await_until(some_media, 10, message="RTP packets in the capture")
    await client.post(f"/api/v1/calls/{call_id}/hangup", headers=api)
    assert (await client.post("/api/v1/capture/stop", headers=api)).status_code == 200

    verified = await client.post("/api/v1/capture/verify", headers=api)
    assert verified.status_code == 200, verified.text
    result = verified.json()
    # SIP over UDP is readable on the wire: never "encrypted", whatever the media was
    assert result["encrypted"] is False and result["overall"] in ("plaintext", "exposed")
    assert result["plaintext_sip_messages"] >= 4
    assert any(i["kind"] == "signalling" and i["verdict"] == "plaintext" for i in result["items"])
    assert (await state(client))["verification"] == result

    report = await client.get(f"/api/v1/capture/report/{result['report']}")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert report.headers["content-security-policy"] == REPORT_CSP
    assert "script-src" not in REPORT_CSP and "<script" not in report.text
    assert "NOT ENCRYPTED" in report.text or "NOT PROTECTED" in report.text
    json_report = await client.get("/api/v1/capture/report/report.json")
    assert json_report.json()["overall"] == result["overall"]
    for name in ("..%2Fcapture.pcap", "capture.pcap", ".report.html", "report.exe"):
        bad = await client.get(f"/api/v1/capture/report/{name}")
        assert bad.status_code == 404, name

    # a new capture throws the old report away
    assert (await client.post("/api/v1/capture/start", headers=api)).status_code == 201
    assert (await state(client))["verification"] is None
    gone = await client.get(f"/api/v1/capture/report/{result['report']}")
    assert gone.status_code == 404
    assert (await client.post("/api/v1/capture/stop", headers=api)).status_code == 200


# -- errors ----------------------------------------------------------------------------------------
async def test_capture_errors_are_clear(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    stop = await client.post("/api/v1/capture/stop", headers=api)
    assert stop.status_code == 409 and stop.json()["detail"] == (
        "capture: no capture is running: start one first"
    )
    none = await client.get("/api/v1/capture/file")
    assert none.status_code == 404 and "no capture yet" in none.json()["detail"]
    bad = await client.post("/api/v1/capture/start", json={"interface": "nope0"}, headers=api)
    assert (
        bad.status_code == 400
        and "interface: no network interface 'nope0'" in (bad.json()["detail"])
    )
    for seconds in (0, 601, "soon"):
        long = await client.post("/api/v1/capture/start", json={"seconds": seconds}, headers=api)
        assert long.status_code == 422 and long.json()["errors"][0]["field"] == "seconds"
    assert (await state(client))["running"] is False
    anonymous = await client.post("/api/v1/capture/start", headers={})
    assert anonymous.status_code == 403  # the session cookie without the CSRF header


@needs_capture
async def test_start_twice_is_refused(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    assert (await client.post("/api/v1/capture/start", headers=api)).status_code == 201
    again = await client.post("/api/v1/capture/start", headers=api)
    assert again.status_code == 409
    assert "a capture is already running" in again.json()["detail"]
    assert (await state(client))["running"] is True
    assert (await client.post("/api/v1/capture/stop", headers=api)).status_code == 200
    assert (await client.post("/api/v1/capture/stop", headers=api)).status_code == 409


async def test_capture_not_possible_says_why(
    client: httpx.AsyncClient,
    api: dict[str, str],
    manager: PhoneManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reason = "cannot capture packets here: socket: a raw packet socket needs CAP_NET_RAW"

    def refuse(self: PacketCapture, ports: Any) -> None:
        raise CaptureUnavailable(reason)

    monkeypatch.setattr(PacketCapture, "start", refuse)
    response = await client.post("/api/v1/capture/start", headers=api)
    assert response.status_code == 503
    assert response.json()["detail"] == f"capture: {reason}"
    data = await state(client)
    assert data["running"] is False and data["error"] == reason and data["downloadable"] is False
    assert not (manager.data_dir / "capture" / "capture.pcap").exists()
    page = await client.get("/capture")  # the API session's cookie opens the pages too
    assert page.status_code == 200 and reason in page.text


async def test_capture_needs_a_running_phone(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    await manager.stop_phone()
    response = await client.post("/api/v1/capture/start", headers=api)
    assert response.status_code == 503 and "the phone is not running" in response.json()["detail"]


# -- bounds ----------------------------------------------------------------------------------------
@needs_capture
async def test_capture_stops_at_its_time_limit(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    manager.capture.poll = 0.05
    response = await client.post("/api/v1/capture/start", json={"seconds": 1}, headers=api)
    assert response.status_code == 201

    async def stopped() -> bool:
        return not (await state(client))["running"]

    await await_until(stopped, 20, message="the capture to stop by itself")
    data = await state(client)
    assert data["stopped_reason"] == "stopped by itself after its time limit of 1 s"
    assert data["downloadable"] is True


@needs_capture
async def test_capture_stops_at_its_size_limit(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    manager.capture.poll = 0.05
    manager.capture.max_bytes = 2000
    assert (await client.post("/api/v1/capture/start", headers=api)).status_code == 201
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:

        async def stopped() -> bool:
            sender.sendto(b"\r\n\r\n" + b"x" * 200, ("127.0.0.1", sip_port(manager)))
            return not (await state(client))["running"]

        await await_until(stopped, 20, message="the capture to stop at its size limit")
    finally:
        sender.close()
    data = await state(client)
    assert data["stopped_reason"] == "stopped by itself at its size limit of 2000 bytes"
    assert data["size"] >= 2000


@needs_capture
async def test_shutdown_stops_a_running_capture(
    client: httpx.AsyncClient, api: dict[str, str], manager: PhoneManager
) -> None:
    assert (await client.post("/api/v1/capture/start", headers=api)).status_code == 201
    await manager.capture.close()
    assert manager.capture.running is False
    assert manager.capture.stopped_reason == "stopped because the phone shut down"


# -- the page --------------------------------------------------------------------------------------
@needs_capture
async def test_capture_page_start_stop_download(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    page = await client.get("/capture")
    assert page.status_code == 200
    assert '<a href="/capture" aria-current="page">Capture</a>' in page.text
    assert 'id="capture-start"' in page.text and 'id="capture-download"' not in page.text
    assert "<script" not in page.text

    forged = await client.post("/capture/start", data={"interface": "lo"})
    assert forged.status_code == 403 and manager.capture.running is False
    bad = await client.post("/capture/start", data={"csrf_token": token, "seconds": "ten"})
    assert bad.status_code == 400 and "seconds: a whole number" in bad.text
    started = await client.post(
        "/capture/start", data={"csrf_token": token, "interface": "lo", "seconds": "60"}
    )
    assert started.status_code == 303 and started.headers["location"] == "/capture"
    running = (await client.get("/capture")).text
    assert "capturing with" in running and 'data-running="yes"' in running
    assert 'id="capture-stop"' in running and 'http-equiv="refresh"' in running
    twice = await client.post("/capture/start", data={"csrf_token": token})
    assert twice.status_code == 409 and "already running" in twice.text

    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"\r\n\r\n", ("127.0.0.1", sip_port(manager)))
    sender.close()
    stopped = await client.post("/capture/stop", data={"csrf_token": token})
    assert stopped.status_code == 303
    done = (await client.get("/capture")).text
    assert "capture stopped:" in done and 'id="capture-download"' in done
    assert 'action="/capture/verify"' in done
    download = await client.get("/capture/file")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/vnd.tcpdump.pcap"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.content[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a")
    again = await client.post("/capture/stop", data={"csrf_token": token})
    assert again.status_code == 409 and "no capture is running" in again.text


async def test_capture_page_needs_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/capture")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (await client.get("/capture/file")).status_code == 303
    api = await client.get("/api/v1/capture/file")
    assert api.status_code == 401
