"""securephone ↔ baresip, both directions, UDP and TCP, direct and through Kamailio with registration:
the call connects, lasts the asked time, and the audio that arrives is the audio that was sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState
from securephone.store.config import parse_config

from ..helpers import await_until
from .audio_tools import assert_audio_matches, read_wav
from .baresip import Baresip, ProxyAccount
from .conftest import BaresipFactory, KamailioFactory
from .kamailio import Kamailio

CALL_SECONDS = 4.0
USERS = {"alice": "alice-pw-9", "bob": "bob-pw-9"}


def our_phone(
    tmp_path: Path, speech: Path, account: dict[str, Any] | None = None, **calls: Any
) -> Phone:
    data: dict[str, Any] = {
        "sip": {
            "listen_address": "127.0.0.1",
            "udp_port": 0,
            "tcp_port": 0,
            "trace_file": str(tmp_path / "sip-trace.txt"),
        },
        "media": {"port_min": 30000, "port_max": 39999, "srtp": "off"},
        "calls": calls,
    }
    if account is not None:
        data["accounts"] = [account]
    phone = Phone(parse_config(data))
    phone.source_factory = lambda call: WavSource(speech)
    phone.sink_factory = lambda call: WavRecorder(tmp_path / "we-heard.wav")
    return phone


def registered_account(kam: Kamailio, transport: str) -> dict[str, Any]:
    host, port = kam.address(transport)
    return {
        "name": "alice", "user": "alice", "domain": "127.0.0.1", "password": USERS["alice"],
        "registrar": f"sip:{host}:{port};transport={transport}", "transport": transport,
        "outbound_proxy": f"sip:{host}:{port};transport={transport}", "expires": 300,
    }  # fmt: skip


def check_audio(tmp_path: Path, speech: tuple[Path, Path], peer: Baresip) -> None:
    recordings = peer.wait_recordings(timeout=10)
    heard_by_peer, _ = read_wav(recordings[0])
    heard_by_us, _ = read_wav(tmp_path / "we-heard.wav")
    assert_audio_matches(read_wav(speech[0])[0], heard_by_peer)
    assert_audio_matches(read_wav(speech[1])[0], heard_by_us)


def check_media(call: Call) -> None:
    summary = call.summary()
    media = summary["media"]
    assert summary["answered"] and abs(summary["duration"] - CALL_SECONDS) < 1.5
    assert media["remote_rtp"].startswith("127.0.0.1:") and media["local_rtp"].startswith(
        "127.0.0.1:"
    )
    assert media["packets_received"] >= CALL_SECONDS * 50 * 0.8
    assert media["packets_sent"] >= CALL_SECONDS * 50 * 0.9


async def first_call(phone: Phone) -> Call:
    return await await_until(
        lambda: next(iter(phone.calls.values()), None), 5, message="no call reached securephone"
    )


async def hold_call(call: Call) -> None:
    await asyncio.sleep(CALL_SECONDS)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_we_call_baresip_direct(
    baresip_factory: BaresipFactory, tmp_path: Path, speech: tuple[Path, Path], transport: str
) -> None:
    peer = baresip_factory(user="bob", transport=transport, audio_source=speech[1])
    phone = our_phone(tmp_path, speech[0])
    await phone.start()
    try:
        call = phone.dial(peer.sip_uri)
        assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED, (
            call.reason
        )
        await hold_call(call)
        call.hangup()
        await call.wait_ended(10)
    finally:
        await phone.stop()
    assert call.reason == "hung up"
    await asyncio.to_thread(peer.wait_event, "CALL_CLOSED", 10)
    check_media(call)
    check_audio(tmp_path, speech, peer)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_calls_us_direct(
    baresip_factory: BaresipFactory, tmp_path: Path, speech: tuple[Path, Path], transport: str
) -> None:
    peer = baresip_factory(user="bob", transport=transport, audio_source=speech[1])
    phone = our_phone(tmp_path, speech[0], auto_answer=True)
    await phone.start()
    try:
        host, port = phone.status()["listen"][transport].split(":")
        await asyncio.to_thread(peer.dial, f"sip:alice@{host}:{port};transport={transport}")
        await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 10)
        call = await first_call(phone)
        await call.wait_for(CallState.CONNECTED, timeout=5)
        await hold_call(call)
        await asyncio.to_thread(peer.hangup)
        await call.wait_ended(10)
    finally:
        await phone.stop()
    assert call.reason == "the far end hung up"
    check_media(call)
    check_audio(tmp_path, speech, peer)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_calls_through_kamailio_both_directions(
    kamailio_factory: KamailioFactory,
    baresip_factory: BaresipFactory,
    tmp_path: Path,
    speech: tuple[Path, Path],
    transport: str,
) -> None:
    kam = kamailio_factory(users=USERS)
    host, port = kam.address(transport)
    proxy = ProxyAccount("bob", USERS["bob"], f"sip:{host}:{port};transport={transport}")
    peer = baresip_factory(transport=transport, proxy=proxy, audio_source=speech[1])
    await asyncio.to_thread(peer.wait_registered, 10)
    phone = our_phone(tmp_path, speech[0], registered_account(kam, transport), auto_answer=True)
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        assert state is RegState.REGISTERED
        # securephone -> Kamailio -> baresip (INVITE challenged with 407 by the proxy)
        call = phone.dial("sip:bob@127.0.0.1", account="alice")
        assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED, (
            call.reason
        )
        await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 10)
        await hold_call(call)
        call.hangup()
        await call.wait_ended(10)
        assert call.reason == "hung up"
        check_media(call)
        check_audio(tmp_path, speech, peer)
        await asyncio.to_thread(peer.wait_event, "CALL_CLOSED", 10)
        # baresip -> Kamailio -> securephone
        phone.calls.clear()
        await asyncio.to_thread(peer.dial, "sip:alice@127.0.0.1")
        await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 10)
        back = await first_call(phone)
        await back.wait_for(CallState.CONNECTED, timeout=5)
        await hold_call(back)
        await asyncio.to_thread(peer.hangup)
        await back.wait_ended(10)
        assert back.reason == "the far end hung up"
        check_media(back)
    finally:
        await phone.stop()
    # Every SDP that crossed the proxy announced loopback addresses only.
    addresses = {a for sdp in kam.logged_sdp() for a in sdp.connection_addresses()}
    assert addresses == {"127.0.0.1"}
