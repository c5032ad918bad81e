"""securephone ↔ linphonec (linphone-cli 5.1) with SDES-SRTP, both directions, through Kamailio.

Both phones register to Kamailio over TLS: linphonec with ``root_ca`` and server-certificate
verification on, connecting to ``localhost`` (its TLS library ignores IP SANs; the test
server certificate also names DNS:localhost), securephone with ``sips:`` and the same CA.
The SDES keys (RFC 4568) therefore only ever cross TLS, which a loopback capture confirms:
no plaintext SIP to or from the proxy's and linphonec's SIP ports.

After each call of a few seconds: linphonec's debug log says ``Negotiated media encryption
is LinphoneMediaEncryptionSRTP`` and shows no SRTP/SRTCP packet it failed to authenticate;
securephone's call summary says ``srtp`` with the expected suite, no authentication or replay
failure, SRTCP received; every SDP address is 127.0.0.1; and each side heard the other's
sentence (cross-correlation of the recordings with the WAVs that were played).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.pki.certs import create_ca, issue_certificate, write_secret_file
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState
from securephone.store.config import parse_config

from ..helpers import await_until
from .audio_tools import assert_audio_matches, make_speech_wav, read_wav
from .capture import LoopbackCapture, plaintext_sip, tls_records
from .conftest import KamailioFactory, LinphonecFactory
from .kamailio import Kamailio
from .linphone import LinphoneAccount, Linphonec, LinphoneTls
from .pki_tools import Pki, kam_tls

USERS = {"alice": "alice-linphone-7", "bob": "bob-linphone-7"}
CALL_SECONDS = 4.0
SRTP = "LinphoneMediaEncryptionSRTP"


@pytest.fixture
def linphone_speech(tmp_path: Path) -> tuple[Path, Path]:
    """What securephone says, and what linphonec says."""
    ours = make_speech_wav(tmp_path / "ours.wav", "Securephone speaking, testing one two three.")
    theirs = make_speech_wav(tmp_path / "theirs.wav", "Linphone answering, four five six seven.")
    return ours, theirs


def securephone(
    tmp_path: Path, pki: Pki, kam: Kamailio, speech: Path, heard: dict[int, Path]
) -> Phone:
    """alice, registered to Kamailio over TLS, SRTP mandatory, auto-answer.

    What each call hears is recorded into ``heard[id(call)]``.
    """
    cert = pki.dir / "phone-server.pem"
    if not cert.exists():
        issued = issue_certificate(
            pki.ca, "127.0.0.1", kind="server", ips=["127.0.0.1"], dns=["localhost"]
        )
        write_secret_file(cert, issued.combined_pem())
    host, port = kam.address("tls")
    data: dict[str, Any] = {
        "data_dir": str(pki.dir),
        "sip": {
            "listen_address": "127.0.0.1", "transports": ["udp", "tls"], "udp_port": 0,
            "tls_port": 0, "trace_file": str(tmp_path / "sip-trace.txt"),
        },
        "tls": {"ca_file": str(pki.sips), "use_system_cas": False, "certificate": str(cert)},
        "media": {"port_min": 30000, "port_max": 39999, "srtp": "mandatory"},
        "calls": {"auto_answer": True},
        "accounts": [{
            "name": "alice", "user": "alice", "domain": "127.0.0.1", "password": USERS["alice"],
            "registrar": f"sips:{host}:{port}", "outbound_proxy": f"sips:{host}:{port}",
            "transport": "tls", "expires": 300,
        }],
    }  # fmt: skip
    phone = Phone(parse_config(data))

    def sink(call: Call) -> WavRecorder:
        heard[id(call)] = tmp_path / f"securephone-heard-{len(heard) + 1}.wav"
        return WavRecorder(heard[id(call)])

    phone.source_factory = lambda call: WavSource(speech)
    phone.sink_factory = sink
    return phone


@dataclass
class Pair:
    """Kamailio, linphonec (bob) and securephone (alice), both registered over TLS."""

    kam: Kamailio
    peer: Linphonec
    phone: Phone
    heard: dict[int, Path]  # what securephone heard, per call
    capture: LoopbackCapture


@contextlib.asynccontextmanager
async def registered_pair(
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    speech: tuple[Path, Path],
    tmp_path: Path,
    **linphone: Any,
) -> AsyncIterator[Pair]:
    """Start Kamailio (TLS), linphonec and securephone, register both; stop securephone after."""
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki))
    _, tls_port = kam.address("tls")
    # localhost, not 127.0.0.1: linphonec's TLS library ignores IP SANs.
    account = LinphoneAccount("bob", USERS["bob"], f"sip:localhost:{tls_port};transport=tls")
    peer = await asyncio.to_thread(
        linphonec_factory,
        account=account,
        tls=LinphoneTls(root_ca=pki.sips),
        audio_source=speech[1],
        **linphone,
    )
    bpf = f"port {kam.port} or port {tls_port} or port {peer.sip_port} or port 5060"
    with LoopbackCapture(tmp_path / "signalling.pcap", bpf) as capture:
        await asyncio.to_thread(peer.wait_registered, 10)
        heard: dict[int, Path] = {}
        phone = securephone(tmp_path, pki, kam, speech[0], heard)
        await phone.start()
        try:
            state = await phone.wait_registration(
                "alice", (RegState.REGISTERED, RegState.FAILED), 10
            )
            assert state is RegState.REGISTERED, phone.status()["accounts"][0]["reason"]
            yield Pair(kam, peer, phone, heard, capture)
        finally:
            await phone.stop()


async def first_call(phone: Phone) -> Call:
    return await await_until(
        lambda: next(iter(phone.calls.values()), None), 10, message="no call reached securephone"
    )


def check_srtp(call: Call, suite: str) -> None:
    """securephone's summary: SRTP with ``suite``, no auth/replay failure, media both ways."""
    summary = call.summary()
    media = summary["media"]
    assert summary["answered"], summary
    assert summary["signalling"]["transport"] == "tls"
    assert media["encryption"] == "srtp", media
    assert media["srtp"]["suite"] == suite, media["srtp"]
    assert media["srtp"]["auth_failures"] == 0 and media["srtp"]["replay_failures"] == 0
    assert media["srtp"]["packets_unprotected"] >= CALL_SECONDS * 50 * 0.7, media["srtp"]
    assert media["packets_sent"] >= CALL_SECONDS * 50 * 0.8, media
    assert media["rtcp_received"] >= 1, media  # linphonec's SRTCP authenticated too
    assert media["remote_rtp"].startswith("127.0.0.1:"), media
    assert media["local_rtp"].startswith("127.0.0.1:"), media


def check_linphone(peer: Linphonec, calls: int) -> None:
    """linphonec's own word: every call negotiated SDES-SRTP, all our packets authenticated."""
    assert peer.wait_negotiated(calls) == [SRTP] * calls
    failures = re.findall(r".*srtp_unprotect.*failed.*", peer.log_text())
    assert failures == [], failures
    addresses = set(peer.logged_sdp_addresses())
    assert addresses == {"127.0.0.1"}, addresses


def check_signalling(pair: Pair) -> None:
    """REGISTERs and the INVITE reached Kamailio over TLS; no plaintext SIP on the wire;
    every SDP that crossed the proxy carried a=crypto and loopback addresses only."""
    log = pair.kam.log_text()
    assert re.search(r"HARNESS-TLS REGISTER \S+ version=TLSv1\.[23]", log), log[-2000:]
    assert re.search(r"HARNESS-TLS INVITE \S+ version=TLSv1\.[23]", log), log[-2000:]
    segments = pair.capture.segments()
    assert tls_records(segments), "no TLS seen on the proxy's port"
    # this test's programs only: other tests run phones on 5060 in parallel
    _, tls_port = pair.kam.address("tls")
    ours = {pair.kam.port, tls_port, pair.peer.sip_port}
    mine = [s for s in segments if {s.src[1], s.dst[1]} & ours]
    assert plaintext_sip(mine) == []
    sdps = pair.kam.logged_sdp()
    assert len(sdps) >= 2 and all("a=crypto:" in sdp.body for sdp in sdps)
    assert {a for sdp in sdps for a in sdp.connection_addresses()} == {"127.0.0.1"}


def check_audio(speech: tuple[Path, Path], heard_by_linphone: Path, heard_by_us: Path) -> None:
    """Each side heard the other's sentence (cross-correlation, audio_tools)."""
    assert_audio_matches(read_wav(speech[0])[0], read_wav(heard_by_linphone)[0])
    assert_audio_matches(read_wav(speech[1])[0], read_wav(heard_by_us)[0])


async def test_securephone_calls_linphonec_with_sdes_srtp(
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    linphone_speech: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """securephone offers its suites (AEAD_AES_128_GCM first); Debian's linphonec 5.1 cannot
    do GCM and answers AES_CM_128_HMAC_SHA1_80, the next line of our offer."""
    async with registered_pair(
        kamailio_factory, linphonec_factory, pki, linphone_speech, tmp_path
    ) as pair:
        linphone_heard = await asyncio.to_thread(pair.peer.record_to)
        mark = len(pair.peer.output())
        call = pair.phone.dial("sips:bob@127.0.0.1", account="alice")
        state = await call.wait_for(CallState.CONNECTED, timeout=10)
        assert state is CallState.CONNECTED, call.reason
        await asyncio.to_thread(pair.peer.wait_connected, 10, since=mark)
        await asyncio.sleep(CALL_SECONDS)
        call.hangup()
        await call.wait_ended(10)
        assert call.reason == "hung up"
        await asyncio.to_thread(pair.peer.wait_ended, 10, since=mark)
    check_srtp(call, "AES_CM_128_HMAC_SHA1_80")
    check_linphone(pair.peer, 1)
    check_signalling(pair)
    check_audio(linphone_speech, linphone_heard, pair.heard[id(call)])


async def test_linphonec_calls_securephone_with_sdes_srtp(
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    linphone_speech: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """linphonec offers AES_256_CM_HMAC_SHA1_80 (which securephone does not do) before
    AES_CM_128_HMAC_SHA1_80: securephone must skip the first line and answer the second.

    (Not AES_CM_128_HMAC_SHA1_32: linphone 5.1 protects SRTCP with a 32-bit tag for that
    suite, where RFC 4568 §6.2.2 keeps 80 bits, so its SRTCP fails authentication here.)"""
    suites = ("AES_256_CM_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_80")
    async with registered_pair(
        kamailio_factory, linphonec_factory, pki, linphone_speech, tmp_path, srtp_suites=suites
    ) as pair:
        linphone_heard = await asyncio.to_thread(pair.peer.record_to)
        mark = len(pair.peer.output())
        await asyncio.to_thread(pair.peer.call, "sip:alice@127.0.0.1")
        call = await first_call(pair.phone)
        state = await call.wait_for(CallState.CONNECTED, timeout=10)
        assert state is CallState.CONNECTED, call.reason
        await asyncio.to_thread(pair.peer.wait_connected, 10, since=mark)
        await asyncio.sleep(CALL_SECONDS)
        await asyncio.to_thread(pair.peer.terminate)
        await call.wait_ended(10)
        assert call.reason == "the far end hung up"
        await asyncio.to_thread(pair.peer.wait_ended, 10, since=mark)
    check_srtp(call, "AES_CM_128_HMAC_SHA1_80")
    check_linphone(pair.peer, 1)
    check_signalling(pair)
    offer = next(sdp for sdp in pair.kam.logged_sdp() if sdp.kind == "request")
    assert re.findall(r"a=crypto:\d+ (\S+)", offer.body) == list(suites)
    check_audio(linphone_speech, linphone_heard, pair.heard[id(call)])


async def test_linphonec_refuses_a_proxy_certificate_from_another_ca(
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    tmp_path: Path,
) -> None:
    """The trust settings the call tests rely on are live: with a root_ca that did not issue
    Kamailio's certificate, linphonec's TLS handshake fails and it never registers."""
    other = tmp_path / "other-ca.pem"
    write_secret_file(other, create_ca("some other CA").cert_pem)
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki))
    _, tls_port = kam.address("tls")
    account = LinphoneAccount("bob", USERS["bob"], f"sip:localhost:{tls_port};transport=tls")
    peer = linphonec_factory(account=account, tls=LinphoneTls(root_ca=other))
    peer.wait_log(r"\[LinphoneRegistrationFailed\]", timeout=10)
    assert "Certificate verification failed" in peer.log_text()
    assert "LinphoneRegistrationOk" not in peer.registration_states()
    assert kam.contacts("bob") == []
    assert "HARNESS-TLS REGISTER" not in kam.log_text()


def test_harness_stops_linphonec_by_pid(linphonec_factory: LinphonecFactory) -> None:
    """The harness owns its processes: linphonec answers commands on its terminal, holds its
    UDP port, and after stop() neither it nor its ``timeout`` wrapper is left."""
    peer = linphonec_factory(media_encryption="none", mandatory=False)
    pid, wrapper = peer.pid, peer.wrapper_pid
    assert pid is not None and wrapper is not None and Path(f"/proc/{pid}").exists()
    assert peer.command("status register") == "registered=0"  # no account configured
    assert not _udp_free(peer.sip_port)
    peer.stop()
    assert not Path(f"/proc/{pid}").exists() and not Path(f"/proc/{wrapper}").exists()
    assert _udp_free(peer.sip_port)


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
