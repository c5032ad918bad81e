"""DTLS-SRTP (RFC 5763/5764) with a real linphonec (``media_encryption=dtls``, mandatory): calls
both directions, direct over UDP and through Kamailio over TLS; audio cross-correlated;
linphonec's log says the call negotiated DTLS; securephone's summary shows the handshake, the
SRTP profile and whether the fingerprints crossed TLS."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.sip.callstate import CallState
from securephone.sip.registration import RegState

from .conftest import KamailioFactory, LinphonecFactory
from .linphone import LinphoneAccount, Linphonec, LinphoneTls
from .pki_tools import Pki, kam_tls
from .test_dtls_baresip import agreed, check_dtls
from .test_linphone import (
    CALL_SECONDS,
    USERS,
    check_audio,
    first_call,
    linphone_speech,  # noqa: F401  (the fixture)
    securephone,
)

DTLS = "LinphoneMediaEncryptionDTLS"


def check_linphone(peer: Linphonec, calls: int) -> None:
    """linphonec's own word: DTLS-SRTP negotiated each time, nothing failed to authenticate."""
    assert peer.wait_negotiated(calls) == [DTLS] * calls
    log = peer.log_text()
    assert log.count("DTLS Handshake on RTP channel successful") >= calls, log[-3000:]
    failures = re.findall(r".*srtp_unprotect.*failed.*", peer.log_text())
    assert failures == [], failures


def check_call(call: Call, integrity: bool) -> None:
    check_dtls(call, integrity)
    media = call.summary()["media"]
    assert media["packets_sent"] >= CALL_SECONDS * 50 * 0.8, media
    keys = agreed(call)
    assert keys is not None and keys.details["srtp_profile"] == "SRTP_AES128_CM_SHA1_80"


@contextlib.asynccontextmanager
async def dtls_phone(
    tmp_path: Path,
    pki: Pki,
    kam_factory: KamailioFactory,
    speech: Path,
    heard: dict[int, Path],
    direct: bool = False,
) -> AsyncIterator[Phone]:
    """alice registered over TLS; ``direct``: she also takes calls that do not come through her
    proxy (linphonec calls her UDP port: not the proxy's transport, so refused otherwise)."""
    kam = kam_factory(users=USERS, tls=kam_tls(pki))
    phone = securephone(tmp_path, pki, kam, speech, heard)
    phone.config.media.keying = ["dtls"]
    phone.config.accounts[0].keying = ["dtls"]
    phone.config.accounts[0].accept_only_from_proxy = not direct
    phone.kam = kam  # type: ignore[attr-defined]
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop()


async def both_ways(
    phone: Phone, peer: Linphonec, out_uri: str, back_uri: str, account: str | None
) -> tuple[Call, Call, Path, Path]:
    heard_out = await asyncio.to_thread(peer.record_to)
    mark = len(peer.output())
    call = phone.dial(out_uri, account=account)
    assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED, call.reason
    await asyncio.to_thread(peer.wait_connected, 10, since=mark)
    await asyncio.sleep(CALL_SECONDS)
    call.hangup()
    await call.wait_ended(10)
    await asyncio.to_thread(peer.wait_ended, 10, since=mark)
    phone.calls.clear()
    heard_back = await asyncio.to_thread(peer.record_to)
    mark = len(peer.output())
    await asyncio.to_thread(peer.call, back_uri)
    back = await first_call(phone)
    assert await back.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED, back.reason
    await asyncio.to_thread(peer.wait_connected, 10, since=mark)
    await asyncio.sleep(CALL_SECONDS)
    await asyncio.to_thread(peer.terminate)
    await back.wait_ended(10)
    await asyncio.to_thread(peer.wait_ended, 10, since=mark)
    return call, back, heard_out, heard_back


async def test_dtls_calls_with_linphonec_direct_both_ways(
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    linphone_speech: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    peer = await asyncio.to_thread(
        linphonec_factory, media_encryption="dtls", audio_source=linphone_speech[1]
    )
    heard: dict[int, Path] = {}
    async with dtls_phone(
        tmp_path, pki, kamailio_factory, linphone_speech[0], heard, direct=True
    ) as phone:
        port = phone.status()["listen"]["udp"].split(":")[1]
        call, back, heard_out, heard_back = await both_ways(
            phone, peer, peer.sip_uri, f"sip:alice@127.0.0.1:{port}", None
        )
    for c in (call, back):
        check_call(c, integrity=False)
    check_linphone(peer, 2)
    check_audio(linphone_speech, heard_out, heard[id(call)])
    check_audio(linphone_speech, heard_back, heard[id(back)])


async def test_dtls_calls_with_linphonec_through_kamailio_tls(
    kamailio_factory: KamailioFactory,
    linphonec_factory: LinphonecFactory,
    pki: Pki,
    linphone_speech: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    heard: dict[int, Path] = {}
    async with dtls_phone(tmp_path, pki, kamailio_factory, linphone_speech[0], heard) as phone:
        kam = phone.kam  # type: ignore[attr-defined]
        _, tls_port = kam.address("tls")
        account = LinphoneAccount("bob", USERS["bob"], f"sip:localhost:{tls_port};transport=tls")
        peer = await asyncio.to_thread(
            linphonec_factory,
            account=account,
            tls=LinphoneTls(root_ca=pki.sips),
            media_encryption="dtls",
            audio_source=linphone_speech[1],
        )
        await asyncio.to_thread(peer.wait_registered, 10)
        state = await phone.wait_registration("alice", (RegState.REGISTERED, RegState.FAILED), 10)
        assert state is RegState.REGISTERED
        call, back, heard_out, heard_back = await both_ways(
            phone, peer, "sips:bob@127.0.0.1", "sip:alice@127.0.0.1", "alice"
        )
    for c in (call, back):
        check_call(c, integrity=True)
        assert c.summary()["signalling"]["transport"] == "tls"
    check_linphone(peer, 2)
    sdps = kam.logged_sdp()
    assert sdps and all("a=fingerprint:" in sdp.body for sdp in sdps)
    assert not any("a=crypto:" in sdp.body for sdp in sdps)
    check_audio(linphone_speech, heard_out, heard[id(call)])
    check_audio(linphone_speech, heard_back, heard[id(back)])
