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
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.phone import Phone
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import WavSource
from securephone.media.keying import KeysAgreed
from securephone.media.zrtp.cache import ZrtpCache
from securephone.sip.callstate import CallState
from securephone.store.config import parse_config

from ..helpers import await_until
from .audio_tools import assert_audio_matches, make_speech_wav, read_wav
from .conftest import LinphonecFactory
from .linphone import Linphonec

CALL_SECONDS = 3.0
ZRTP = "LinphoneMediaEncryptionZRTP"
X255_B256 = {
    "zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_X255, MS_ZRTP_KEY_AGREEMENT_DH3K",
    "zrtp_sas_suites": "MS_ZRTP_SAS_B256, MS_ZRTP_SAS_B32",
}
# what linphone's debug log calls the algorithms (bzrtp's names)
LINPHONE_NAMES = {"DH3k": "DHM-3072", "X255": "ECDH-255", "B32 ": "Base32", "B256": "PGP-WordList"}
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


def direct_phone(data_dir: Path, speech: Path, heard: list[Path]) -> Phone:
    """alice on UDP, no account, SRTP mandatory: SDES cannot cross plaintext, so ZRTP keys."""
    config = parse_config(
        {
            "data_dir": str(data_dir),
            "sip": {"listen_address": "127.0.0.1", "transports": ["udp"], "udp_port": 0},
            "media": {"port_min": 30000, "port_max": 39999, "srtp": "mandatory"},
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


async def one_call(setup: Setup, *, we_call: bool, verify: bool = False) -> CallResult:
    """A call of CALL_SECONDS in the given direction; ``verify``: both confirm the SAS."""
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
    phone = direct_phone(tmp_path / "alice", speech[0], heard)
    await phone.start()
    try:
        port = phone.status()["listen"]["udp"].split(":")[1]
        yield Setup(phone, peer, heard, peer.sip_uri, f"sip:alice@127.0.0.1:{port}")
    finally:
        await phone.stop()


DEFAULT_ALGOS = {"key_agreement": "DH3k", "sas_type": "B32 ", "auth_tag": "HS80"}
X255_ALGOS = {"key_agreement": "X255", "sas_type": "B32 ", "auth_tag": "HS80"}


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
