"""SRTP (SDES over TLS) end to end: every suite between two securephones, strict and optional modes
against plain peers, and proof from a capture that the audio on the wire is noise."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.media.codecs.g711 import ulaw_decode
from securephone.media.srtp import SUITES
from securephone.pki.certs import issue_certificate, write_secret_file
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until
from .audio_tools import assert_audio_matches, best_alignment, read_wav
from .capture import LoopbackCapture, Segment
from .conftest import BaresipFactory
from .pki_tools import Pki

SECONDS = 3.5


def phone(tmp_path: Path, pki: Pki, name: str, speech: Path, **media: Any) -> Phone:
    cert = pki.dir / "phone-server.pem"
    if not cert.exists():
        issued = issue_certificate(pki.ca, "127.0.0.1", kind="server", ips=["127.0.0.1"])
        write_secret_file(cert, issued.combined_pem())
    config = parse_config(
        {
            "data_dir": str(pki.dir),
            "sip": {"listen_address": "127.0.0.1", "transports": ["udp", "tcp", "tls"],
                    "udp_port": 0, "tcp_port": 0, "tls_port": 0},
            "tls": {"ca_file": str(pki.sips), "use_system_cas": False, "certificate": str(cert)},
            "media": {"port_min": 30000, "port_max": 39999, **media},
            "calls": {"auto_answer": True},
        }
    )  # fmt: skip
    p = Phone(config)
    p.source_factory = lambda call: WavSource(speech)
    p.sink_factory = lambda call: WavRecorder(tmp_path / f"{name}-heard.wav")
    return p


def uri(p: Phone, transport: str = "tls") -> str:
    port = p.status()["listen"][transport].split(":")[1]
    return (
        f"sips:bob@127.0.0.1:{port}"
        if transport == "tls"
        else f"sip:bob@127.0.0.1:{port};transport={transport}"
    )


async def first_call(p: Phone) -> Call:
    return await await_until(
        lambda: next(iter(p.calls.values()), None), 5, message="no call arrived"
    )


async def talk(alice: Phone, bob: Phone, target: str) -> tuple[Call, Call]:
    """A call of SECONDS from alice to bob; both phones stopped afterwards."""
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(target if "@" in target else uri(bob, target))
        await call.wait_for(CallState.CONNECTED, timeout=10)
        if call.state is CallState.CONNECTED:
            their = await first_call(bob)
            await asyncio.sleep(SECONDS)
            call.hangup()
            await call.wait_ended(10)
        else:
            their = await first_call(bob) if bob.calls else call
    finally:
        await alice.stop()
        await bob.stop()
    return call, their


@pytest.mark.parametrize("suite", list(SUITES))
async def test_every_suite_between_two_securephones(
    tmp_path: Path, pki: Pki, speech: tuple[Path, Path], suite: str
) -> None:
    alice = phone(tmp_path, pki, "alice", speech[0], srtp_suites=[suite])
    bob = phone(tmp_path, pki, "bob", speech[1])
    call, their = await talk(alice, bob, "tls")
    for summary in (call.summary(), their.summary()):
        assert summary["answered"] and summary["signalling"]["transport"] == "tls"
        media = summary["media"]
        assert media["encryption"] == "srtp" and media["srtp"]["suite"] == suite
        assert media["srtp"]["packets_unprotected"] >= SECONDS * 50 * 0.8
        assert media["srtp"]["auth_failures"] == media["srtp"]["replay_failures"] == 0
    assert_audio_matches(read_wav(speech[0])[0], read_wav(tmp_path / "bob-heard.wav")[0])
    assert_audio_matches(read_wav(speech[1])[0], read_wav(tmp_path / "alice-heard.wav")[0])


def byte_entropy(payloads: list[bytes]) -> float:
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    counts = np.bincount(data, minlength=256).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def sent_payloads(segments: list[Segment], port: int, tag: int) -> list[bytes]:
    """RTP payloads (after the 12-byte header, minus the auth tag) from our media port."""
    found = []
    for s in segments:
        ours = s.proto == "udp" and s.src[1] == port and len(s.payload) > 12 + tag
        if ours and s.payload[0] >> 6 == 2 and s.payload[1] & 0x7F in (0, 8):
            found.append(s.payload[12 : len(s.payload) - tag] if tag else s.payload[12:])
    return found


@pytest.mark.parametrize("srtp", ["mandatory", "off"])
async def test_capture_shows_noise_for_srtp_and_speech_for_rtp(
    tmp_path: Path, pki: Pki, speech: tuple[Path, Path], srtp: str
) -> None:
    # G.711: the wire payload is read back as µ-law below
    alice = phone(
        tmp_path, pki, "alice", speech[0], srtp=srtp, srtp_suites=["AES_CM_128_HMAC_SHA1_80"],
        codecs=["PCMU"],
    )  # fmt: skip
    bob = phone(tmp_path, pki, "bob", speech[1], srtp=srtp)
    with LoopbackCapture(tmp_path / "media.pcap", "udp portrange 30000-39999") as capture:
        call, _ = await talk(alice, bob, "tls")
    port = int(call.summary()["media"]["local_rtp"].split(":")[1])
    payloads = sent_payloads(capture.segments(), port, 10 if srtp == "mandatory" else 0)
    assert len(payloads) >= SECONDS * 50 * 0.8
    heard_on_wire = ulaw_decode(b"".join(payloads))
    sent = read_wav(speech[0])[0]
    correlation = best_alignment(sent, heard_on_wire)[1]
    entropy = byte_entropy(payloads)
    if srtp == "mandatory":
        # The seed's "you can just hear some noise": no trace of the speech, bytes look random.
        assert correlation < 0.3, correlation
        assert entropy > 7.8, entropy
    else:
        assert correlation > 0.8, correlation  # plain RTP: the speech is right there on the wire
        assert entropy < 7.5, entropy


async def test_mandatory_refuses_plain_offer_and_sends_no_rtp(
    tmp_path: Path, pki: Pki, speech: tuple[Path, Path]
) -> None:
    plain = phone(tmp_path, pki, "plain", speech[0], srtp="off")
    strict = phone(tmp_path, pki, "strict", speech[1], srtp="mandatory")
    with LoopbackCapture(tmp_path / "strict.pcap", "udp portrange 30000-39999") as capture:
        call, their = await talk(plain, strict, "tls")
    assert not call.answered and call.status == 488
    assert their.status == 488 and "RTP/AVP" in their.reason
    # refused before it rang: the strict phone never bound a media port for it, and not one RTP
    # (or RTCP) packet went to or came from the port the caller offered
    assert all(c.channel is None for c in strict.calls.values())
    assert call.channel is not None
    offered = {call.channel.local[1], call.channel.local[1] + 1}
    assert [s for s in capture.segments() if {s.src[1], s.dst[1]} & offered] == []


async def test_optional_with_plain_peer_says_not_encrypted(
    tmp_path: Path, pki: Pki, speech: tuple[Path, Path]
) -> None:
    plain = phone(tmp_path, pki, "plain", speech[0], srtp="off")
    relaxed = phone(tmp_path, pki, "relaxed", speech[1], srtp="optional")
    _, their = await talk(plain, relaxed, "tls")
    summary = their.summary()
    assert summary["answered"] and summary["media"]["encryption"] == "none"
    assert summary["media"]["not_encrypted_reason"]
    assert summary["media"]["packets_received"] >= SECONDS * 50 * 0.8


async def test_optional_mode_encrypts_with_baresip_best_effort(
    tmp_path: Path, pki: Pki, speech: tuple[Path, Path], baresip_factory: BaresipFactory
) -> None:
    """baresip ``mediaenc=srtp`` offers RTP/AVP with a=crypto; optional mode takes the keys."""
    from .test_tls_calls import baresip_tls

    peer = baresip_factory(
        user="bob", transport="tls", audio_source=speech[1], tls=baresip_tls(pki), mediaenc="srtp"
    )
    ours = phone(tmp_path, pki, "alice", speech[0], srtp="optional")
    await ours.start()
    try:
        port = ours.status()["listen"]["tls"].split(":")[1]
        await asyncio.to_thread(peer.dial, f"sip:alice@127.0.0.1:{port};transport=tls")
        call = await first_call(ours)
        await call.wait_for(CallState.CONNECTED, timeout=10)
        await asyncio.sleep(SECONDS)
        await asyncio.to_thread(peer.hangup)
        await call.wait_ended(10)
    finally:
        await ours.stop()
    media = call.summary()["media"]
    assert media["encryption"] == "srtp" and media["srtp"]["suite"] == "AES_CM_128_HMAC_SHA1_80"
    assert media["srtp"]["packets_unprotected"] >= SECONDS * 50 * 0.8
    assert_audio_matches(read_wav(speech[1])[0], read_wav(tmp_path / "alice-heard.wav")[0])


def _tls_phone_config(pki: Pki, transports: tuple[str, ...] = ("udp",), **tls: Any) -> Any:
    cert = pki.dir / "phone-server.pem"
    if not cert.exists():
        issued = issue_certificate(pki.ca, "127.0.0.1", kind="server", ips=["127.0.0.1"])
        write_secret_file(cert, issued.combined_pem())
    return parse_config(
        {
            "data_dir": str(pki.dir),
            "sip": {"listen_address": "127.0.0.1", "transports": list(transports), "udp_port": 0,
                    "tls_port": 0},
            "tls": {"ca_file": str(pki.sips), "use_system_cas": False, **tls},
            "media": {"port_min": 30000, "port_max": 39999},
            "calls": {"auto_answer": True},
        }
    )  # fmt: skip


async def test_tls_listener_requires_client_certificates_and_key_log(
    tmp_path: Path, pki: Pki
) -> None:
    """As a TLS server (incoming calls) the phone can demand and verify client certificates; the
    optional key log writes SSLKEYLOGFILE lines for Wireshark."""
    server_cert = pki.dir / "phone-server.pem"
    _tls_phone_config(pki)  # creates the listener certificate
    bob = Phone(
        _tls_phone_config(
            pki, ("udp", "tls"), certificate=str(server_cert), require_client_cert=True
        )
    )
    keylog = tmp_path / "keys.log"
    anonymous = Phone(_tls_phone_config(pki, keylog_file=str(keylog)))
    device = Phone(_tls_phone_config(pki, certificate=str(pki.device)))
    await bob.start()
    try:
        for caller, expect in ((anonymous, CallState.TERMINATED), (device, CallState.CONNECTED)):
            await caller.start()
            try:
                call = caller.dial(uri(bob))
                state = await call.wait_for(CallState.CONNECTED, timeout=10)
                assert state is expect, call.reason
                if expect is CallState.TERMINATED:
                    assert "certificate" in call.reason, call.reason
                else:
                    assert call.summary()["media"]["encryption"] == "srtp"
                    call.hangup()
                    await call.wait_ended(10)
            finally:
                await caller.stop()
    finally:
        await bob.stop()
    lines = [line for line in keylog.read_text().splitlines() if not line.startswith("#")]
    assert lines and all(len(line.split()) == 3 for line in lines)  # LABEL client_random secret
    assert any(
        line.startswith(("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_RANDOM")) for line in lines
    )
