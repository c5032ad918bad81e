"""securephone ↔ linphonec (Debian's linphone-cli 5.1.65, bzrtp 5.1.64) with ZRTP (RFC 6189).

Both directions, direct over UDP and through Kamailio over TLS, with linphonec's default ZRTP
settings (DH3k, B32) and with X255/B256 configured in its ``linphonerc``. For each call: the SAS
linphonec prints (``auth token is XXXX``) equals ours, linphone's debug log names the algorithms
we agreed, each side heard the other's sentence, no SRTP packet failed authentication. Across
calls: our cache's rs1 equals the rs1 in linphonec's ``.linphone-zidcache`` (sqlite), and after
both sides confirmed the SAS the next call is "previously verified" on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.media.keying import KeysAgreed
from securephone.media.zrtp.cache import ZrtpCache
from securephone.pki.certs import issue_certificate, write_secret_file
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState
from securephone.store.config import parse_config
from securephone.verify.cli import app as verify_app

from ..helpers import await_until
from .audio_tools import assert_audio_matches, make_speech_wav, read_wav
from .capture import LoopbackCapture
from .conftest import KamailioFactory, LinphonecFactory
from .linphone import LinphoneAccount, Linphonec, LinphoneTls
from .pki_tools import Pki, kam_tls

CALL_SECONDS = 3.0
ZRTP = "LinphoneMediaEncryptionZRTP"
X255_B256 = {
    "zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_X255, MS_ZRTP_KEY_AGREEMENT_DH3K",
    "zrtp_sas_suites": "MS_ZRTP_SAS_B256, MS_ZRTP_SAS_B32",
}
# what linphone's debug log calls the algorithms (bzrtp's names)
LINPHONE_NAMES = {"DH3k": "DHM-3072", "X255": "ECDH-255", "B32": "Base32", "B256": "PGP-WordList"}
ALGO_RE = re.compile(
    r"ZRTP algo used during negotiation: Cipher: (\S+) - KeyAgreement: (\S+) - Hash: (\S+)"
    r" - AuthTag: (\S+) - Sas Rendering: (\S+)"
)
VERIFIED_RE = re.compile(r"ZRTP secrets on: SAS is (\S+) previously verified (yes|no)")


@pytest.fixture
def zrtp_speech(tmp_path: Path) -> tuple[Path, Path]:
    ours = make_speech_wav(tmp_path / "ours.wav", "Securephone speaking, testing one two three.")
    theirs = make_speech_wav(tmp_path / "theirs.wav", "Linphone answering, four five six seven.")
    return ours, theirs


def direct_phone(data_dir: Path, speech: Path, heard: list[Path], **media: Any) -> Phone:
    """alice on UDP, no account, SRTP mandatory: SDES cannot cross plaintext, so ZRTP keys."""
    config = parse_config(
        {
            "data_dir": str(data_dir),
            "sip": {"listen_address": "127.0.0.1", "transports": ["udp"], "udp_port": 0},
            "media": {"port_min": 30000, "port_max": 39999, "srtp": "mandatory", **media},
            "calls": {"auto_answer": True},
        }
    )
    return with_audio(Phone(config), data_dir, speech, heard)


def with_audio(phone: Phone, data_dir: Path, speech: Path, heard: list[Path]) -> Phone:
    def sink(call: Call) -> WavRecorder:
        heard.append(data_dir / f"heard-{len(heard) + 1}.wav")
        return WavRecorder(heard[-1])

    phone.source_factory = lambda call: WavSource(speech)
    phone.sink_factory = sink
    return phone


def agreed(call: Call) -> KeysAgreed | None:
    for event in call.events:
        if isinstance(event, CallKeyingChanged) and isinstance(event.keying, KeysAgreed):
            return event.keying
    return None


def our_cache(phone: Phone) -> ZrtpCache:
    cache = phone._zrtp_cache
    assert cache is not None
    return cache


@dataclass
class CallResult:
    """One finished call as both sides saw it."""

    call: Call
    keys: KeysAgreed
    linphone_sas: str
    linphone_heard: Path
    heard: Path
    log_from: int  # offset into linphone's debug log where this call starts


@dataclass
class Setup:
    """A started securephone and linphonec, and how to reach each other."""

    phone: Phone
    peer: Linphonec
    heard: list[Path]
    target: str  # what securephone dials to reach linphonec
    our_uri: str  # what linphonec dials to reach securephone
    account: str | None = None


async def one_call(
    setup: Setup, *, we_call: bool, verify: bool = False, unverify_linphone: bool = False
) -> CallResult:
    """A call of CALL_SECONDS in the given direction; ``verify``: both confirm the SAS;
    ``unverify_linphone``: linphone marks the SAS as not verified."""
    peer, phone = setup.peer, setup.phone
    linphone_heard = await asyncio.to_thread(peer.record_to)
    mark, log_from = len(peer.output()), len(peer.log_text())
    before = set(phone.calls)
    if we_call:
        call = phone.dial(setup.target, account=setup.account)
    else:
        await asyncio.to_thread(peer.call, setup.our_uri)
        call = await await_until(
            lambda: next((c for k, c in phone.calls.items() if k not in before), None),
            10,
            message="linphonec's call did not arrive",
        )
    state = await call.wait_for(CallState.CONNECTED, timeout=10)
    assert state is CallState.CONNECTED, call.reason
    sas = await asyncio.to_thread(peer.wait_sas, 15, since=mark)
    keys = await await_until(lambda: agreed(call), 15, message="ZRTP did not agree keys")
    if verify:
        call.confirm_sas()
        await asyncio.to_thread(peer.set_zrtp_verified, True)
    if unverify_linphone:
        await asyncio.to_thread(peer.set_zrtp_verified, False)
    await asyncio.sleep(CALL_SECONDS)
    call.hangup()
    await call.wait_ended(10)
    await asyncio.to_thread(peer.wait_ended, 10, since=mark)
    return CallResult(call, keys, sas, linphone_heard, setup.heard[-1], log_from)


def check_call(
    result: CallResult, setup: Setup, speech: tuple[Path, Path], algos: dict[str, str]
) -> None:
    """Equal SAS; linphone agreed the same algorithms; SRTP clean; each side heard the other."""
    details = result.keys.details
    assert details["sas"] == result.linphone_sas, (details["sas"], result.linphone_sas)
    chosen = details["algorithms"]
    assert isinstance(chosen, dict)
    for family, name in algos.items():
        assert chosen[family] == name, chosen
    log = setup.peer.log_text()[result.log_from :]
    found = ALGO_RE.search(log)
    assert found is not None, "linphone logged no ZRTP algorithms"
    assert found.group(2) == LINPHONE_NAMES[chosen["key_agreement"]]
    assert found.group(5) == LINPHONE_NAMES[chosen["sas_type"]]
    assert found.group(4) == "HMAC-SHA1-80"
    assert ZRTP in log
    failures = re.findall(r".*srtp_unprotect.*failed.*", log)
    assert failures == [], failures[:3]
    summary = result.call.summary()
    media = summary["media"]
    assert media["encryption"] == "srtp" and media["plain_dropped"] == 0, media
    assert media["srtp"]["auth_failures"] == 0 and media["srtp"]["replay_failures"] == 0
    assert media["srtp"]["packets_unprotected"] >= CALL_SECONDS * 50 * 0.7, media["srtp"]
    assert media["rtcp_received"] >= 1, media  # linphone's SRTCP (HS80) authenticated too
    security = summary["security"]
    assert security["keying"] == "zrtp" and security["end_to_end"] and security["keys_agreed"]
    assert_audio_matches(read_wav(speech[0])[0], read_wav(result.linphone_heard)[0])
    assert_audio_matches(read_wav(speech[1])[0], read_wav(result.heard)[0])


@contextlib.asynccontextmanager
async def direct(
    tmp_path: Path,
    linphonec_factory: LinphonecFactory,
    speech: tuple[Path, Path],
    media: dict[str, Any] | None = None,
    **linphone: Any,
) -> AsyncIterator[Setup]:
    peer = await asyncio.to_thread(
        linphonec_factory,
        user="bob",
        media_encryption="zrtp",
        mandatory=True,
        audio_source=speech[1],
        **linphone,
    )
    heard: list[Path] = []
    phone = direct_phone(tmp_path / "alice", speech[0], heard, **(media or {}))
    await phone.start()
    try:
        port = phone.status()["listen"]["udp"].split(":")[1]
        # our From when we call is sip:securephone@127.0.0.1: linphone must reach the same
        # identity, its ZRTP cache is keyed by SIP URIs as well as ZIDs
        yield Setup(phone, peer, heard, peer.sip_uri, f"sip:securephone@127.0.0.1:{port}")
    finally:
        await phone.stop()


DEFAULT_ALGOS = {"key_agreement": "DH3k", "sas_type": "B32", "auth_tag": "HS80"}
X255_ALGOS = {"key_agreement": "X255", "sas_type": "B256", "auth_tag": "HS80"}


@pytest.mark.parametrize("we_call", [True, False], ids=["we-call", "linphone-calls"])
async def test_direct_default_zrtp(
    tmp_path: Path,
    linphonec_factory: LinphonecFactory,
    zrtp_speech: tuple[Path, Path],
    we_call: bool,
) -> None:
    async with direct(tmp_path, linphonec_factory, zrtp_speech) as setup:
        result = await one_call(setup, we_call=we_call)
    check_call(result, setup, zrtp_speech, DEFAULT_ALGOS)


@pytest.mark.parametrize("we_call", [True, False], ids=["we-call", "linphone-calls"])
async def test_direct_x255_b256(
    tmp_path: Path,
    linphonec_factory: LinphonecFactory,
    zrtp_speech: tuple[Path, Path],
    we_call: bool,
) -> None:
    """linphonec configured for X25519 and the PGP word list; we prefer B256 too, so whoever
    ends up initiator (RFC 6189 §4.1.2) commits X255 and B256. Our X25519 public value (RFC 7748
    u-coordinate) is what libdecaf expects: the SAS words agree."""
    media = {"zrtp_sas": ["B256", "B32"]}
    async with direct(
        tmp_path, linphonec_factory, zrtp_speech, media, sip_extra=X255_B256
    ) as setup:
        result = await one_call(setup, we_call=we_call)
    check_call(result, setup, zrtp_speech, X255_ALGOS)
    assert re.fullmatch(r"[A-Za-z]+:[A-Za-z]+", result.linphone_sas)


def check_caches(setup: Setup) -> bytes:
    """Our rs1 for linphone's ZID is byte-identical to the rs1 linphone keeps for us."""
    linphone_zid, entries = setup.peer.zid_cache()
    assert linphone_zid is not None
    ours = our_cache(setup.phone)
    (entry,) = [e for e in entries if e.peer_zid == ours.zid]
    secrets_ = ours.peers[linphone_zid]
    assert secrets_.rs1 is not None and secrets_.rs1 == entry.rs1
    return secrets_.rs1


async def test_retained_secrets_and_verified_sas_carry_to_the_next_call(
    tmp_path: Path, linphonec_factory: LinphonecFactory, zrtp_speech: tuple[Path, Path]
) -> None:
    """Call 1: both sides confirm the SAS; both caches hold the same rs1 and the verified flag.
    Call 2 (the other direction): both say "previously verified", no cache mismatch; rs1 moves
    to rs2 and both hold the same new rs1. Call 3: linphone dials us under another user name;
    bzrtp keys its cache by SIP URIs too, so it has no secret for that identity while we (keyed
    by ZID) do: we raise the cache-mismatch alarm and keep our secrets (RFC 6189 §4.6.1.1)."""
    async with direct(tmp_path, linphonec_factory, zrtp_speech) as setup:
        first = await one_call(setup, we_call=True, verify=True)
        rs1 = check_caches(setup)
        linphone_zid, entries = setup.peer.zid_cache()
        assert linphone_zid is not None and our_cache(setup.phone).peers[linphone_zid].verified
        assert [e.verified for e in entries] == [True]
        assert first.keys.details["previously_verified"] is False

        second = await one_call(setup, we_call=False)
        assert second.keys.details["previously_verified"] is True
        assert second.keys.details["cache_mismatch"] is False
        log = setup.peer.log_text()[second.log_from :]
        assert VERIFIED_RE.findall(log) == [(second.linphone_sas, "yes")]
        assert "cache mismatch" not in log
        new_rs1 = check_caches(setup)
        assert new_rs1 != rs1 and our_cache(setup.phone).peers[linphone_zid].rs2 == rs1

        setup.our_uri = setup.our_uri.replace("sip:securephone@", "sip:alice@")
        third = await one_call(setup, we_call=False)
        assert third.keys.details["cache_mismatch"] is True
        assert third.keys.details["previously_verified"] is False
        assert third.call.security["path"]["cache_mismatch"] is True
        assert our_cache(setup.phone).peers[linphone_zid].rs1 == new_rs1  # not updated
    for result in (first, second, third):
        check_call(result, setup, zrtp_speech, DEFAULT_ALGOS)


USERS = {"alice": "alice-zrtp-5", "bob": "bob-zrtp-5"}


@contextlib.asynccontextmanager
async def through_kamailio(
    tmp_path: Path,
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    speech: tuple[Path, Path],
) -> AsyncIterator[Setup]:
    """Both register to Kamailio over TLS; alice's account keys with ZRTP only (over TLS our
    default would be SDES first), so the proxy relays the SDP but never learns the keys."""
    kam = kamailio_factory(users=USERS, tls=kam_tls(pki))
    host, tls_port = kam.address("tls")
    account = LinphoneAccount("bob", USERS["bob"], f"sip:localhost:{tls_port};transport=tls")
    peer = await asyncio.to_thread(
        linphonec_factory,
        account=account,
        tls=LinphoneTls(root_ca=pki.sips),
        media_encryption="zrtp",
        mandatory=True,
        audio_source=speech[1],
    )
    await asyncio.to_thread(peer.wait_registered, 10)
    cert = pki.dir / "phone-server.pem"
    if not cert.exists():
        issued = issue_certificate(
            pki.ca, "127.0.0.1", kind="server", ips=["127.0.0.1"], dns=["localhost"]
        )
        write_secret_file(cert, issued.combined_pem())
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "alice"),
        "sip": {"listen_address": "127.0.0.1", "transports": ["udp", "tls"], "udp_port": 0,
                "tls_port": 0},
        "tls": {"ca_file": str(pki.sips), "use_system_cas": False, "certificate": str(cert)},
        "media": {"port_min": 30000, "port_max": 39999, "srtp": "mandatory"},
        "calls": {"auto_answer": True},
        "accounts": [{
            "name": "alice", "user": "alice", "domain": "127.0.0.1", "password": USERS["alice"],
            "registrar": f"sips:{host}:{tls_port}", "outbound_proxy": f"sips:{host}:{tls_port}",
            "transport": "tls", "expires": 300, "keying": ["zrtp"],
        }],
    }  # fmt: skip
    heard: list[Path] = []
    phone = with_audio(Phone(parse_config(data)), tmp_path / "alice", speech[0], heard)
    await phone.start()
    try:
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        assert state is RegState.REGISTERED, phone.status()["accounts"][0]["reason"]
        yield Setup(phone, peer, heard, "sips:bob@127.0.0.1", "sip:alice@127.0.0.1", "alice")
    finally:
        await phone.stop()
    sdps = kam.logged_sdp()
    assert len(sdps) >= 2 and all("a=zrtp-hash:1.10 " in sdp.body for sdp in sdps)
    assert not any("a=crypto:" in sdp.body for sdp in sdps)  # no key ever crossed the proxy


@pytest.mark.parametrize("we_call", [True, False], ids=["we-call", "linphone-calls"])
async def test_through_kamailio_over_tls(
    tmp_path: Path,
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    zrtp_speech: tuple[Path, Path],
    we_call: bool,
) -> None:
    async with through_kamailio(
        tmp_path, kamailio_factory, linphonec_factory, pki, zrtp_speech
    ) as setup:
        result = await one_call(setup, we_call=we_call)
    check_call(result, setup, zrtp_speech, DEFAULT_ALGOS)
    assert result.call.summary()["signalling"]["transport"] == "tls"


async def test_capture_shows_only_srtp_after_zrtp_and_verify_decrypts_with_our_export(
    tmp_path: Path, linphonec_factory: LinphonecFactory, zrtp_speech: tuple[Path, Path]
) -> None:
    """A capture of the media ports: ZRTP, then only SRTP both ways (no plain RTP payload
    ever); ``securephone verify`` links the ZRTP exchange and the SRTP on the same ports and
    says ZRTP-keyed SRTP (end to end); with our opt-in key export it authenticates every tag of
    our stream and decrypts our sentence."""
    export = tmp_path / "srtp-keys.json"
    async with direct(
        tmp_path, linphonec_factory, zrtp_speech, {"srtp_key_export": str(export)}
    ) as setup:
        ports = setup.peer.rtp_ports
        assert ports is not None
        # linphone's RTP block is reserved across processes: every packet to or from it is
        # this call's media (our range is shared with other tests running in parallel)
        bpf = f"udp and portrange {ports.first}-{ports.last}"
        with LoopbackCapture(tmp_path / "media.pcap", bpf) as capture:
            result = await one_call(setup, we_call=True)
            capture.wait_settled()
    check_call(result, setup, zrtp_speech, DEFAULT_ALGOS)
    our_port = int(result.call.summary()["media"]["local_rtp"].split(":")[1])
    segments = capture.segments()
    confirms = [i for i, seg in enumerate(segments) if seg.payload[16:23] == b"Confirm"]
    rtp_like = [i for i, seg in enumerate(segments) if 128 <= seg.payload[0] <= 191]
    assert confirms and rtp_like
    # no RTP or RTCP at all (not even SRTP) before the ZRTP Confirm messages: mandatory
    # encryption means nothing leaves either phone before the keys (RFC 6189 §4.6)
    assert rtp_like[0] > confirms[0]
    out = CliRunner().invoke(
        verify_app,
        [str(tmp_path / "media.pcap"), "--keys", str(export), "--json", "--out",
         str(tmp_path / "verify")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output  # nothing readable: every stream is encrypted
    report = json.loads(out.stdout)
    media = [item for item in report["items"] if item.get("media")]
    assert len(media) == 2, [i["summary"] for i in report["items"]]
    for item in media:
        assert item["verdict"] == "encrypted", item
        assert item["summary"].startswith("ZRTP-keyed SRTP (end to end)"), item["summary"]
        assert item["media"]["keying"] == "zrtp" and item["media"]["tag_length"] == 10
    (ours,) = [i for i in media if i["media"]["src"].endswith(f":{our_port}")]
    decryption = ours["media"]["decryption"]
    assert decryption["confirmed"] and decryption["auth_failed"] == 0, decryption
    assert_audio_matches(read_wav(zrtp_speech[0])[0], read_wav(ours["files"]["decrypted_wav"])[0])
