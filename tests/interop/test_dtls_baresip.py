"""DTLS-SRTP (RFC 5763/5764) with a real baresip (``mediaenc=dtls_srtp``): calls both directions,
direct over UDP and through Kamailio over TLS; audio cross-correlated; baresip's log says
DTLS-SRTP is up; a capture shows the DTLS handshake on the media port and then only SRTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.phone import Phone
from securephone.media.demux import PacketKind, classify
from securephone.media.keying import KeysAgreed
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState

from .baresip import Baresip, ProxyAccount
from .capture import LoopbackCapture, Segment, plaintext_sip
from .conftest import BaresipFactory, KamailioFactory
from .pki_tools import Pki, kam_tls
from .test_calls_baresip import CALL_SECONDS, check_audio, check_media, first_call
from .test_tls_calls import baresip_tls, tls_phone

USERS = {"alice": "alice-dtls-9", "bob": "bob-dtls-9"}
MEDIA = "udp portrange 21000-39999"


def dtls_phone(
    tmp_path: Path, pki: Pki, speech: Path, account: dict[str, Any] | None = None
) -> Phone:
    phone = tls_phone(tmp_path, pki, speech, account, auto_answer=True)
    phone.config.media.keying = ["dtls"]
    return phone


def agreed(call: Call) -> KeysAgreed | None:
    for event in call.events:
        if isinstance(event, CallKeyingChanged) and isinstance(event.keying, KeysAgreed):
            return event.keying
    return None


def check_dtls(call: Call, integrity: bool) -> None:
    """Keys from DTLS-SRTP, the peer's certificate matched its fingerprint, SRTP flowed."""
    keys = agreed(call)
    assert keys is not None, call.events
    assert keys.details["version"] == "DTLSv1.2" and keys.details["cipher"]
    assert keys.details["srtp_profile"] in ("SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM")
    security = call.summary()["security"]
    assert security["keying"] == "dtls-srtp" and security["keys_agreed"]
    assert security["fingerprint_integrity"] is integrity
    media = call.summary()["media"]
    assert media["encryption"] == "srtp" and media["plain_dropped"] == 0
    assert media["srtp"]["packets_unprotected"] >= CALL_SECONDS * 50 * 0.8
    srtp = media["srtp"]  # baresip's RTCP in the clear may count as SRTCP failures, never audio
    assert srtp["auth_failures"] == srtp["rtcp_auth_failures"] <= 3, srtp
    assert srtp["replay_failures"] == 0, srtp


def check_wire(segments: list[Segment], port: int) -> None:
    """On our media port: DTLS first (handshake), then only SRTP/SRTCP; never plain RTP."""
    ours = [s for s in segments if port in (s.src[1], s.dst[1])]
    kinds = [classify(s.payload) for s in ours]
    assert PacketKind.DTLS in kinds, "no DTLS handshake on the media port"
    first_rtp = kinds.index(PacketKind.RTP)
    assert kinds.index(PacketKind.DTLS) < first_rtp
    assert all(
        s.payload[0] >> 6 == 2 for s, k in zip(ours, kinds, strict=True) if k is PacketKind.RTP
    )
    # every RTP-looking datagram after the handshake carries an SRTP tag: no G.711 in the clear
    from .test_srtp_calls import byte_entropy

    payloads = [s.payload[12:] for s, k in zip(ours, kinds, strict=True) if k is PacketKind.RTP]
    assert byte_entropy(payloads) > 7.8


def baresip_says_dtls(peer: Baresip) -> None:
    """Both calls: baresip checked our fingerprint and keyed SRTP from the handshake."""
    log = peer.log_text()
    assert log.count("dtls_srtp: verified sha-256 fingerprint OK") >= 2, log[-3000:]
    assert log.count("DTLS-SRTP complete (audio/RTP)") >= 2, log[-3000:]


async def call_out_and_back(
    phone: Phone, peer: Baresip, tmp_path: Path, speech: tuple[Path, Path], out_uri: str,
    back_uri: str, account: str | None, integrity: bool,
) -> tuple[Call, Call]:  # fmt: skip
    call = phone.dial(out_uri, account=account)
    state = await call.wait_for(CallState.CONNECTED, timeout=10)
    assert state is CallState.CONNECTED, call.reason
    await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 10)
    await asyncio.sleep(CALL_SECONDS)
    call.hangup()
    await call.wait_ended(10)
    check_media(call)
    check_dtls(call, integrity)
    check_audio(tmp_path, speech, peer)
    await asyncio.to_thread(peer.wait_event, "CALL_CLOSED", 10)
    phone.calls.clear()
    await asyncio.to_thread(peer.dial, back_uri)
    back = await first_call(phone)
    await back.wait_for(CallState.CONNECTED, timeout=10)
    await asyncio.sleep(CALL_SECONDS)
    await asyncio.to_thread(peer.hangup)
    await back.wait_ended(10)
    check_media(back)
    check_dtls(back, integrity)
    baresip_says_dtls(peer)
    return call, back


async def test_dtls_calls_with_baresip_direct_both_ways(
    baresip_factory: BaresipFactory, pki: Pki, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    peer = baresip_factory(
        user="bob", transport="udp", audio_source=speech[1], mediaenc="dtls_srtp"
    )
    phone = dtls_phone(tmp_path, pki, speech[0])
    await phone.start()
    try:
        port = phone.status()["listen"]["udp"].split(":")[1]
        with LoopbackCapture(tmp_path / "media.pcap", MEDIA) as capture:
            call, back = await call_out_and_back(
                phone,
                peer,
                tmp_path,
                speech,
                peer.sip_uri,
                f"sip:alice@127.0.0.1:{port}",
                None,
                False,
            )
    finally:
        await phone.stop()
    segments = capture.segments()
    for c in (call, back):
        check_wire(segments, int(c.summary()["media"]["local_rtp"].split(":")[1]))


async def test_dtls_calls_with_baresip_through_kamailio_tls(
    kamailio_factory: KamailioFactory,
    baresip_factory: BaresipFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki))
    host, port = kam.address("tls")
    proxy = ProxyAccount("bob", USERS["bob"], f"sip:{host}:{port};transport=tls")
    peer = baresip_factory(
        transport="tls",
        proxy=proxy,
        audio_source=speech[1],
        tls=baresip_tls(pki),
        mediaenc="dtls_srtp",
    )
    await asyncio.to_thread(peer.wait_registered, 10)
    account = {
        "name": "alice", "user": "alice", "domain": "127.0.0.1", "password": USERS["alice"],
        "registrar": f"sips:{host}:{port}", "outbound_proxy": f"sips:{host}:{port}",
        "transport": "tls", "expires": 300, "keying": ["dtls"],
    }  # fmt: skip
    phone = dtls_phone(tmp_path, pki, speech[0], account)
    with LoopbackCapture(tmp_path / "sip.pcap", f"port {kam.port} or tcp port {port}") as capture:
        await phone.start()
        try:
            state = await phone.wait_registration(
                "alice", (RegState.REGISTERED, RegState.FAILED), 10
            )
            assert state is RegState.REGISTERED
            await call_out_and_back(
                phone,
                peer,
                tmp_path,
                speech,
                "sips:bob@127.0.0.1",
                "sip:alice@127.0.0.1",
                "alice",
                True,
            )
        finally:
            await phone.stop()
    assert plaintext_sip(capture.segments()) == []
    trace = (tmp_path / "sip-trace.txt").read_text()
    assert "UDP/TLS/RTP/SAVP" in trace and "a=fingerprint:sha-256" in trace
