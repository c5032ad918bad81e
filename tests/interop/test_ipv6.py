"""IPv6 end to end on ::1: registration to Kamailio on [::1] over UDP, TCP and TLS (IP SAN ::1
checked), calls with baresip through Kamailio and direct (SDES-SRTP over TLS, audio checked, a
capture shows only TLS and SRTP), two securephones with ZRTP, and a dual-stack phone on ``::``
that IPv4 and IPv6 peers both reach."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.pki.cli import app as cert_app
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState
from securephone.store.config import parse_config
from securephone.verify.flows import FlowKind
from securephone.verify.media import MediaClass
from securephone.verify.report import Verdict, analyze

from ..helpers import await_until
from .audio_tools import assert_audio_matches, read_wav
from .baresip import Baresip, ProxyAccount, TlsFiles
from .capture import LoopbackCapture, Segment, plaintext_sip, tls_records
from .conftest import BaresipFactory, KamailioFactory
from .dnsmasq import Dnsmasq, DnsRecords, find_dnsmasq
from .kamailio import Kamailio, TlsConfig
from .pki_tools import Pki, kam_tls
from .test_calls_baresip import CALL_SECONDS, check_audio, first_call
from .test_tls_calls import check_srtp

USERS = {"alice": "alice-v6-pw", "bob": "bob-v6-pw"}
MEDIA = {"port_min": 55000, "port_max": 55899}  # this file's media block ...
CAPTURED = {"port_min": 55900, "port_max": 55999}  # ... and the captured test's own part of it
V6 = "[::1]"


def issue_v6(pki: Pki, name: str) -> Path:
    """A server certificate for ::1 made the way a user would: ``securephone cert issue --ip ::1``."""
    ca_dir = pki.dir / "ca"
    if not ca_dir.exists():
        ca_dir.mkdir()
        (ca_dir / "ca.pem").write_bytes(pki.ca.cert_pem)
        (ca_dir / "ca.key").write_bytes(pki.ca.key_pem)
    out = pki.dir / f"{name}.pem"
    result = CliRunner().invoke(
        cert_app,
        ["issue", "--ca-dir", str(ca_dir), "--kind", "server", "--cn", "::1",
         "--ip", "::1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(cert_app, ["show", str(out), "--json"])
    assert shown.exit_code == 0, shown.output
    assert "::1" in json.loads(shown.stdout)["certificates"][0]["san_ips"]
    return out


def kam_tls_v6(pki: Pki) -> TlsConfig:
    pem = issue_v6(pki, "kamailio-v6")  # certificate, CA certificate and key in one file
    return kam_tls(pki, cert=pem, key=pem)


def v6_phone(
    tmp_path: Path,
    pki: Pki,
    speech: Path,
    *,
    name: str = "alice",
    listen: str = "::1",
    transports: tuple[str, ...] = ("udp", "tcp"),
    account: dict[str, Any] | None = None,
    media: dict[str, Any] | None = None,
    dns: dict[str, Any] | None = None,
    **calls: Any,
) -> Phone:
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / f"{name}-data"),
        "sip": {
            "listen_address": listen, "transports": list(transports),
            "udp_port": 0, "tcp_port": 0, "tls_port": 0,
            "trace_file": str(tmp_path / f"{name}-trace.txt"),
        },
        "tls": {"ca_file": str(pki.sips), "use_system_cas": False},
        "media": {**MEDIA, "srtp": "off", **(media or {})},
        "calls": calls,
    }  # fmt: skip
    if "tls" in transports:
        data["tls"]["certificate"] = str(issue_v6(pki, f"{name}-server"))
    if account is not None:
        data["accounts"] = [account]
    if dns is not None:
        data["dns"] = dns
    phone = Phone(parse_config(data))
    phone.source_factory = lambda call: WavSource(speech)
    phone.sink_factory = lambda call: WavRecorder(tmp_path / "we-heard.wav")
    return phone


def v6_account(kam: Kamailio, transport: str) -> dict[str, Any]:
    port = kam.address(transport)[1]
    hop = f"sips:{V6}:{port}" if transport == "tls" else f"sip:{V6}:{port};transport={transport}"
    return {
        "name": "alice", "user": "alice", "domain": V6, "password": USERS["alice"],
        "registrar": hop, "outbound_proxy": hop, "transport": transport, "expires": 300,
    }  # fmt: skip


def baresip_tls_v6(pki: Pki) -> TlsFiles:
    return TlsFiles(certificate=issue_v6(pki, "baresip-v6"), cafile=pki.sips)


def listen_port(phone: Phone, transport: str) -> int:
    return int(phone.status()["listen"][transport].rsplit(":", 1)[1])


def check_v6_media(call: Call) -> None:
    """The call carried media both ways between ::1 sockets."""
    summary = call.summary()
    media = summary["media"]
    assert summary["answered"], call.reason
    assert media["local_rtp"].startswith("[::1]:") and media["remote_rtp"].startswith("[::1]:")
    assert media["last_source"].startswith("[::1]:")
    assert media["packets_received"] >= CALL_SECONDS * 50 * 0.8
    assert media["packets_sent"] >= CALL_SECONDS * 50 * 0.9


def heard_both_ways(speech: tuple[Path, Path], tmp_path: Path) -> None:
    """bob heard our sentence (``bob-heard.wav``) and we heard his (``we-heard.wav``)."""
    assert_audio_matches(read_wav(speech[0])[0], read_wav(tmp_path / "bob-heard.wav")[0])
    assert_audio_matches(read_wav(speech[1])[0], read_wav(tmp_path / "we-heard.wav")[0])


def sdp_addresses(trace: Path) -> set[str]:
    """Every o=/c= address in a SIP trace (SDP both ways)."""
    text = trace.read_text()
    found = set(re.findall(r"^c=IN IP[46] (\S+)", text, re.M))
    found |= set(re.findall(r"^o=\S+ \S+ \S+ IN IP[46] (\S+)", text, re.M))
    return found


async def registered(phone: Phone) -> None:
    state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
    assert state is RegState.REGISTERED, phone.status()["accounts"][0]["reason"]


# -- registration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_registers_to_kamailio_on_ipv6(
    kamailio_factory: KamailioFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
    transport: str,
) -> None:
    tls = kam_tls_v6(pki) if transport == "tls" else None
    kam = kamailio_factory(users=USERS, tls=tls, ipv6=True)
    phone = v6_phone(tmp_path, pki, speech[0], account=v6_account(kam, transport))
    await phone.start()
    try:
        await registered(phone)
        (contact,) = kam.contacts("alice")
        status = phone.status()
    finally:
        await phone.stop()
    port = kam.address(transport)[1]
    assert status["listen"]["udp"].startswith("[::1]:")
    assert status["listen_families"]["udp"] == ["IPv6"]
    (account,) = status["accounts"]
    assert account["server"] == f"{transport}:[::1]:{port}"
    # the registrar stored our bracketed IPv6 Contact (and the source it came from)
    assert re.fullmatch(r"sips?:alice@\[::1\]:\d+(;transport=tcp)?", contact["contact"])
    assert contact["socket"] == f"{transport}:[::1]:{port}"
    if transport != "udp":
        assert contact["received"].startswith("sip:[::1]:")
    if transport == "tls":
        assert account["tls"]["verified"] and account["tls"]["peer_subject"] == "CN=::1"
    trace = (tmp_path / "alice-trace.txt").read_text()
    assert f"Via: SIP/2.0/{transport.upper()} [::1]:" in trace


async def test_tls_to_ipv6_refuses_a_certificate_without_the_address(
    kamailio_factory: KamailioFactory, pki: Pki, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    """RFC 5922 §7.2 for an IP literal: the server certificate names 127.0.0.1, not ::1."""
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki), ipv6=True)
    phone = v6_phone(tmp_path, pki, speech[0], account=v6_account(kam, "tls"))
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        reason = phone.status()["accounts"][0]["reason"]
    finally:
        await phone.stop()
    assert state is RegState.FAILED
    assert "does not name the address ::1" in reason, reason
    assert kam.contacts("alice") == []


# -- calls with baresip ------------------------------------------------------------------------------


async def both_ways(
    phone: Phone, peer: Baresip, tmp_path: Path, speech: tuple[Path, Path], out: str, back: str
) -> tuple[Call, Call]:
    """We call baresip, then baresip calls us; each call lasts CALL_SECONDS."""
    call = phone.dial(out, account="alice" if phone.config.accounts else None)
    assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED, call.reason
    await asyncio.to_thread(peer.wait_event, "CALL_ESTABLISHED", 10)
    await asyncio.sleep(CALL_SECONDS)
    call.hangup()
    await call.wait_ended(10)
    check_v6_media(call)
    check_audio(tmp_path, speech, peer)
    await asyncio.to_thread(peer.wait_event, "CALL_CLOSED", 10)
    phone.calls.clear()
    await asyncio.to_thread(peer.dial, back)
    their = await first_call(phone)
    assert await their.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
    await asyncio.sleep(CALL_SECONDS)
    await asyncio.to_thread(peer.hangup)
    await their.wait_ended(10)
    assert their.reason == "the far end hung up"
    check_v6_media(their)
    return call, their


def only_tls_and_srtp(segments: list[Segment], media_ports: set[int]) -> None:
    """Every packet is ::1 to ::1; no SIP in clear; TLS records carried the signalling; every
    datagram on a media port is SRTP (RTP header, payload not the plain speech: checked by the
    verifier run in the test)."""
    assert segments
    assert {s.src[0] for s in segments} | {s.dst[0] for s in segments} == {"::1"}
    assert plaintext_sip(segments) == []
    assert tls_records(segments)
    media = [s for s in segments if s.proto == "udp" and {s.src[1], s.dst[1]} & media_ports]
    assert len(media) >= CALL_SECONDS * 50 * 2
    assert all(s.payload[0] >> 6 == 2 for s in media)  # RTP/RTCP version 2 framing (SRTP)


def verify_on_ipv6(pcap: Path, ours: set[int]) -> None:
    """The project's verifier reads the IPv6 capture: the signalling flows are TLS, no SIP in
    clear, every media stream is SRTP and ours are fully encrypted. baresip 1.0.0 sends a few
    RTCP packets in clear (see tests/verify/test_calls.py), so its streams may be "weak"."""
    report = analyze(pcap)
    flows = [i for i in report.items if i.flow is not None]
    assert flows and all(i.flow and i.flow.kind is FlowKind.TLS for i in flows)
    assert all(i.verdict is Verdict.ENCRYPTED for i in flows)
    assert report.plaintext_sip == 0
    media = [i for i in report.items if i.stream is not None]
    assert len(media) == 4, [i.summary for i in media]  # two calls, both directions
    for item in media:
        assert item.stream is not None and item.stream.media_class is MediaClass.SRTP
        assert item.stream.src.ip == item.stream.dst.ip == "::1"
        if item.stream.src.port in ours:
            assert item.verdict is Verdict.ENCRYPTED, item.summary


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_calls_with_baresip_through_kamailio_on_ipv6(
    kamailio_factory: KamailioFactory,
    baresip_factory: BaresipFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
    transport: str,
) -> None:
    secure = transport == "tls"
    kam = kamailio_factory(users=USERS, tls=kam_tls_v6(pki) if secure else None, ipv6=True)
    port = kam.address(transport)[1]
    peer = baresip_factory(
        transport=transport,
        proxy=ProxyAccount(
            "bob", USERS["bob"], f"sip:{V6}:{port};transport={transport}", domain=V6
        ),
        audio_source=speech[1],
        tls=baresip_tls_v6(pki) if secure else None,
        mediaenc="srtp-mand" if secure else None,
        ipv6=True,
    )
    await asyncio.to_thread(peer.wait_registered, 10)
    phone = v6_phone(
        tmp_path,
        pki,
        speech[0],
        account=v6_account(kam, transport),
        media={**CAPTURED, "srtp": "mandatory" if secure else "off"},
        auto_answer=True,
    )
    assert peer.rtp_ports is not None
    # media only when both ends are this test's (parallel tests use other blocks or ends)
    our_block = f"portrange {CAPTURED['port_min']}-{CAPTURED['port_max']}"
    their_block = f"portrange {peer.rtp_ports.first}-{peer.rtp_ports.last}"
    media = f"udp and {our_block} and {their_block}"
    bpf = f"ip6 and (port {kam.port} or tcp port {port} or ({media}))"
    scheme = "sips" if secure else "sip"
    with LoopbackCapture(tmp_path / "v6.pcap", bpf) as capture:
        await phone.start()
        try:
            await registered(phone)
            out, back = await both_ways(
                phone, peer, tmp_path, speech, f"{scheme}:bob@{V6}", f"sip:alice@{V6}"
            )
        finally:
            await phone.stop()
    # every SDP that crossed the proxy, and every one we sent or received, named ::1 only
    assert {a for sdp in kam.logged_sdp() for a in sdp.connection_addresses()} == {"::1"}
    trace = (tmp_path / "alice-trace.txt").read_text()
    assert sdp_addresses(tmp_path / "alice-trace.txt") == {"::1"}
    assert set(peer.logged_sdp_addresses()) == {"::1"}
    # the proxy record-routed with its bracketed address; our in-dialog requests followed it
    hop = rf"<sips?:\[::1\]:{port}(;transport={transport})?;lr>"
    assert re.search(rf"^Record-Route: {hop}", trace, re.M)
    bye = re.search(r"^BYE .*?\r?\n\r?\n", trace, re.M | re.S)
    assert bye is not None and re.search(rf"^Route: {hop}", bye[0], re.M), trace[-3000:]
    segments = capture.segments()
    if not secure:
        assert plaintext_sip(segments)  # the same capture does see SIP when it is in clear
        return
    for call in (out, back):
        check_srtp(call.summary(), "AEAD_AES_128_GCM" if call is out else "AES_CM_128_HMAC_SHA1_80")
        assert call.summary()["signalling"]["tls"]["peer_subject"] == "CN=::1"
    ours = {int(c.summary()["media"]["local_rtp"].rsplit(":", 1)[1]) for c in (out, back)}
    only_tls_and_srtp(segments, ours | {p + 1 for p in ours})
    verify_on_ipv6(tmp_path / "v6.pcap", ours)


@pytest.mark.parametrize("transport", ["udp", "tls"])
async def test_direct_calls_with_baresip_on_ipv6(
    baresip_factory: BaresipFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
    transport: str,
) -> None:
    secure = transport == "tls"
    peer = baresip_factory(
        user="bob",
        transport=transport,
        audio_source=speech[1],
        tls=baresip_tls_v6(pki) if secure else None,
        mediaenc="srtp-mand" if secure else None,
        ipv6=True,
    )
    phone = v6_phone(
        tmp_path,
        pki,
        speech[0],
        transports=("udp", "tls") if secure else ("udp", "tcp"),
        media={"srtp": "mandatory" if secure else "off"},
        auto_answer=True,
    )
    await phone.start()
    try:
        ours = listen_port(phone, transport)
        # baresip 1.0.0 cannot dial sips: (see test_tls_calls); it dials over TLS instead
        out_uri = f"sips:bob@{V6}:{peer.tls_port}" if secure else peer.sip_uri
        back_uri = f"sip:alice@{V6}:{ours};transport={transport}"
        out, back = await both_ways(phone, peer, tmp_path, speech, out_uri, back_uri)
    finally:
        await phone.stop()
    assert out.summary()["signalling"]["transport"] == transport
    if secure:
        check_srtp(out.summary(), "AEAD_AES_128_GCM")
        check_srtp(back.summary())
    assert sdp_addresses(tmp_path / "alice-trace.txt") == {"::1"}


# -- two securephones --------------------------------------------------------------------------------


async def test_two_securephones_call_over_ipv6_with_zrtp(
    pki: Pki, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    zrtp = {"srtp": "mandatory", "keying": ["zrtp"]}
    alice = v6_phone(tmp_path, pki, speech[0], transports=("udp",), media=zrtp)
    bob = v6_phone(
        tmp_path, pki, speech[1], name="bob", transports=("udp",), media=zrtp, auto_answer=True
    )
    bob.sink_factory = lambda call: WavRecorder(tmp_path / "bob-heard.wav")
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(f"sip:bob@{V6}:{listen_port(bob, 'udp')}")
        assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
        their = await first_call(bob)
        await await_until(
            lambda: call.zrtp is not None and their.zrtp is not None and call.zrtp.sas,
            10,
            message="ZRTP did not agree keys over IPv6",
        )
        await asyncio.sleep(CALL_SECONDS)
        call.hangup()
        await call.wait_ended(10)
        await their.wait_ended(10)
    finally:
        await alice.stop()
        await bob.stop()
    assert call.zrtp is not None and their.zrtp is not None
    assert call.zrtp.sas == their.zrtp.sas
    for one in (call, their):
        check_v6_media(one)
        security = one.summary()["security"]
        assert security["keying"] == "zrtp" and security["end_to_end"] is True
        srtp = one.summary()["media"]["srtp"]
        assert srtp["packets_unprotected"] >= CALL_SECONDS * 50 * 0.8
        assert srtp["auth_failures"] == 0
    heard_both_ways(speech, tmp_path)


# -- dual stack ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_dual_stack_phone_on_any_address_reaches_ipv4_and_ipv6_peers(
    baresip_factory: BaresipFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
    transport: str,
) -> None:
    """Listening on ``::`` with IPV6_V6ONLY off: a baresip on 127.0.0.1 and one on ::1 call us
    and we call them; each sees our address of its own family in Via, Contact and SDP."""
    v4 = baresip_factory(user="bob", transport=transport, audio_source=speech[1])
    v6 = baresip_factory(user="carol", transport=transport, audio_source=speech[1], ipv6=True)
    phone = v6_phone(tmp_path, pki, speech[0], listen="::", auto_answer=True)
    await phone.start()
    try:
        status = phone.status()
        port = listen_port(phone, transport)
        calls: dict[str, tuple[Call, Call]] = {}
        for peer, host in ((v4, "127.0.0.1"), (v6, V6)):
            call = phone.dial(peer.sip_uri)
            assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
            await asyncio.sleep(1.0)
            call.hangup()
            await call.wait_ended(10)
            phone.calls.clear()
            await asyncio.to_thread(peer.dial, f"sip:alice@{host}:{port};transport={transport}")
            their = await first_call(phone)
            assert await their.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
            await asyncio.sleep(1.0)
            await asyncio.to_thread(peer.hangup)
            await their.wait_ended(10)
            phone.calls.clear()
            calls[host] = (call, their)
    finally:
        await phone.stop()
    assert status["listen"][transport] == f"[::]:{port}"
    assert status["listen_families"][transport] == ["IPv6", "IPv4"]
    for host, pair in calls.items():
        remote = f"{host}:" if host != V6 else "[::1]:"
        for call in pair:
            media = call.summary()["media"]
            assert media["local_rtp"].startswith("[::]:")  # one dual-stack socket per call
            assert media["remote_rtp"].startswith(remote) and media["last_source"].startswith(
                remote
            )
            assert media["packets_received"] >= 40 and media["packets_sent"] >= 40
    # each peer only ever saw addresses of its own family, ours included
    assert set(v4.logged_sdp_addresses()) == {"127.0.0.1"}
    assert set(v6.logged_sdp_addresses()) == {"::1"}
    v4_log, v6_log = v4.log_text(), v6.log_text()
    param = "" if transport == "udp" else f";transport={transport}"
    assert f"Contact: <sip:securephone@127.0.0.1:{port}{param}>" in v4_log
    assert "[::" not in v4_log
    assert f"Contact: <sip:securephone@[::1]:{port}{param}>" in v6_log
    assert f"Via: SIP/2.0/{transport.upper()} [::1]:{port};" in v6_log


async def test_a_media_family_the_phone_cannot_reach_is_refused_with_the_reason(
    pki: Pki, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIP reaches both phones over IPv4, but bob's media socket is IPv6 only (::1): alice's
    c=IN IP4 offer is refused (488) with the reason, and so is bob's c=IN IP6 offer to alice."""
    alice = v6_phone(tmp_path, pki, speech[0], listen="127.0.0.1", transports=("udp",))
    bob = v6_phone(
        tmp_path, pki, speech[1], name="bob", listen="::", transports=("udp",),
        media={"address": "::1"}, auto_answer=True,
    )  # fmt: skip
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(f"sip:bob@127.0.0.1:{listen_port(bob, 'udp')}")
        await call.wait_ended(10)
        back = bob.dial(f"sip:alice@127.0.0.1:{listen_port(alice, 'udp')}")
        await back.wait_ended(10)
    finally:
        await alice.stop()
        await bob.stop()
    assert call.status == 488 and not call.answered
    assert back.status == 488 and not back.answered
    at_bob = next(c for c in bob.calls.values() if c is not back)
    at_alice = next(c for c in alice.calls.values() if c is not call)
    v4_refused = "the peer's media address 127.0.0.1 is IPv4, but this phone's media address ::1"
    v6_refused = "the peer's media address ::1 is IPv6, but this phone's media address 127.0.0.1"
    assert at_bob.reason is not None and at_bob.reason.startswith(v4_refused), at_bob.reason
    assert at_alice.reason is not None and at_alice.reason.startswith(v6_refused)
    # each caller got the reason in the 488's Warning (RFC 3261 §20.43)
    assert re.search(r'^Warning: 304 securephone "' + re.escape(v4_refused),
                     (tmp_path / "alice-trace.txt").read_text(), re.M)  # fmt: skip
    assert re.search(r'^Warning: 304 securephone "' + re.escape(v6_refused),
                     (tmp_path / "bob-trace.txt").read_text(), re.M)  # fmt: skip


async def test_cli_calls_an_ipv6_uri(
    baresip_factory: BaresipFactory, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    """``securephone call 'sip:bob@[::1]:P;transport=tcp' --listen '[::1]:0'`` as a user types it."""
    peer = baresip_factory(user="bob", transport="tcp", audio_source=speech[1], ipv6=True)
    uri = f"sip:bob@{V6}:{peer.sip_port};transport=tcp"
    caller = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "securephone.cli", "call", uri, "--listen", "[::1]:0",
         "--play", str(speech[0]), "--duration", "3", "--json", "--srtp", "off"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert caller.returncode == 0, caller.stderr
    summary = json.loads(caller.stdout)
    assert summary["answered"] and summary["signalling"]["transport"] == "tcp"
    media = summary["media"]
    assert media["local_rtp"].startswith("[::1]:") and media["remote_rtp"].startswith("[::1]:")
    assert media["packets_received"] >= 3 * 50 * 0.8
    assert set(peer.logged_sdp_addresses()) == {"::1"}
    recordings = await asyncio.to_thread(peer.wait_recordings, 1, 10)
    assert_audio_matches(read_wav(speech[0])[0], read_wav(recordings[0])[0])


async def test_a_dual_stack_media_socket_talks_ipv4_to_an_ipv4_peer(
    pki: Pki, speech: tuple[Path, Path], tmp_path: Path
) -> None:
    """bob's SIP is on 127.0.0.1 and his RTP sockets on ``::`` (dual stack): he answers alice's
    c=IN IP4 offer with c=IN IP4, and her packets, arriving as ::ffff:127.0.0.1, are taken as
    coming from 127.0.0.1, the negotiated address (none counted as a stranger's)."""
    alice = v6_phone(tmp_path, pki, speech[0], listen="::", transports=("udp",))
    bob = v6_phone(
        tmp_path, pki, speech[1], name="bob", listen="127.0.0.1", transports=("udp",),
        media={"address": "::"}, auto_answer=True,
    )  # fmt: skip
    bob.sink_factory = lambda call: WavRecorder(tmp_path / "bob-heard.wav")
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(f"sip:bob@127.0.0.1:{listen_port(bob, 'udp')}")
        assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
        their = await first_call(bob)
        await asyncio.sleep(CALL_SECONDS)
        call.hangup()
        await call.wait_ended(10)
    finally:
        await alice.stop()
        await bob.stop()
    trace = (tmp_path / "alice-trace.txt").read_text()
    assert set(re.findall(r"^c=IN (IP[46] \S+)", trace, re.M)) == {"IP4 127.0.0.1"}
    ours, theirs = call.summary()["media"], their.summary()["media"]
    assert ours["local_rtp"].startswith("[::]:") and theirs["local_rtp"].startswith("[::]:")
    for media in (ours, theirs):
        assert media["remote_rtp"].startswith("127.0.0.1:")
        assert media["last_source"].startswith("127.0.0.1:")  # not ::ffff:127.0.0.1
        assert media["packets_received"] >= CALL_SECONDS * 50 * 0.8
        assert media["foreign_source"] == 0 and media["foreign_dropped"] == 0
    heard_both_ways(speech, tmp_path)


@pytest.mark.parametrize("listen", ["::1", "::"])
async def test_registers_to_an_srv_target_with_only_an_ipv6_address(
    kamailio_factory: KamailioFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
    listen: str,
) -> None:
    """RFC 3263 to IPv6: ``_sip._tcp.v6zone.test`` points at a host with only an AAAA record
    (::1); the phone registers there over TCP (dnsmasq on 127.0.0.1 answers), also when it
    listens on ``::``."""
    if find_dnsmasq() is None:
        pytest.skip("dnsmasq not installed (apt-get install -y dnsmasq-base)")
    zone = "v6zone.test"
    kam = kamailio_factory(users=USERS, domain=zone, ipv6=True)
    records = DnsRecords(
        srv=[(f"_sip._tcp.{zone}", f"pbx.{zone}", kam.port, 10, 0)],
        hosts=[(f"ready.{zone}", "127.0.0.1"), (f"pbx.{zone}", "::1")],
    )
    dns_server = Dnsmasq(tmp_path / "dnsmasq", records)
    account = {"name": "alice", "user": "alice", "domain": zone, "password": USERS["alice"],
               "transport": "tcp", "expires": 120}  # fmt: skip
    dns_server.start()
    try:
        phone = v6_phone(
            tmp_path, pki, speech[0], listen=listen, transports=("tcp",), account=account,
            dns={"servers": ["127.0.0.1"], "port": dns_server.port},
        )  # fmt: skip
        await phone.start()
        try:
            await registered(phone)
            (contact,) = kam.contacts("alice")
            status = phone.status()
        finally:
            await phone.stop()
    finally:
        dns_server.stop()
    assert status["servers"]["located"][zone]["in_use"] == f"tcp:[::1]:{kam.port}"
    assert status["accounts"][0]["server"] == f"tcp:[::1]:{kam.port}"
    assert re.fullmatch(r"sip:alice@\[::1\]:\d+;transport=tcp", contact["contact"])
    trace = (tmp_path / "alice-trace.txt").read_text()
    assert f"## DNS sip:{zone}: tcp:[::1]:{kam.port}" in trace
    assert re.search(r"^Via: SIP/2.0/TCP \[::1\]:\d+;", trace, re.M)
