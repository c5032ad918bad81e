"""Two Phones over real UDP sockets with DTLS-SRTP keying (RFC 5763/5764): each SRTP profile,
with and without RTP/RTCP multiplexing (RFC 5761), both DTLS roles; SRTP only after the
handshake, fingerprints in the summary, the media certificate in the status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from securephone.aio.call import Call
from securephone.aio.phone import Phone
from securephone.media import negotiation
from securephone.media.keying import KeyingFailed, KeysAgreed
from securephone.sdp.dtls import Setup
from securephone.sip.callstate import CallEnding, CallState
from securephone.store.config import parse_config

from ..helpers import await_until
from .calls import connected_pair, keying_event, uri


def config(
    data_dir: Path, *, suites: list[str] | None = None, mux: bool = True, **calls: Any
) -> Any:
    media: dict[str, Any] = {
        "port_min": 49000,
        "port_max": 49999,
        "srtp": "mandatory",
        "keying": ["dtls", "zrtp", "sdes"],
        "rtcp_mux": mux,
    }
    if suites is not None:
        media["srtp_suites"] = suites
    return parse_config(
        {
            "data_dir": str(data_dir),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": media,
            "calls": calls,
        }
    )


def srtp_received(call: Call) -> int:
    return int((call.summary()["media"]["srtp"] or {}).get("packets_unprotected", 0))


@pytest.mark.parametrize(
    ("suite", "profile"),
    [
        ("AEAD_AES_128_GCM", "SRTP_AEAD_AES_128_GCM"),
        ("AES_CM_128_HMAC_SHA1_80", "SRTP_AES128_CM_SHA1_80"),
    ],
)
@pytest.mark.parametrize("mux", [True, False], ids=["rtcp-mux", "no-mux"])
async def test_dtls_srtp_call(tmp_path: Path, suite: str, profile: str, mux: bool) -> None:
    alice = Phone(config(tmp_path / "alice", suites=[suite], mux=mux))
    bob = Phone(config(tmp_path / "bob", suites=[suite], mux=mux, auto_answer=True))
    await alice.start()
    await bob.start()
    try:
        call, their = await connected_pair(alice, bob, "DTLS-SRTP")
        mine, theirs = keying_event(call, KeysAgreed), keying_event(their, KeysAgreed)
        assert mine.suite == theirs.suite == suite
        assert mine.details["srtp_profile"] == theirs.details["srtp_profile"] == profile
        assert mine.details["version"] == "DTLSv1.2"
        # each side saw the other's certificate, whose fingerprint the other's status shows
        assert (
            mine.details["remote_fingerprint"] == bob.status()["media_certificate"]["fingerprint"]
        )
        assert theirs.details["remote_fingerprint"] == alice.media_fingerprint
        # RFC 5763 §5: the answerer to actpass is active, i.e. the DTLS client
        assert (mine.details["role"], theirs.details["role"]) == ("server", "client")
        security = call.summary()["security"]
        assert security["keying"] == "dtls-srtp" and security["end_to_end"] is True
        assert security["fingerprint_integrity"] is False  # the SDP came over plain UDP
        await await_until(lambda: srtp_received(call) > 20, 5, message="no SRTP at alice")
        await await_until(lambda: srtp_received(their) > 20, 5, message="no SRTP at bob")
        # RTCP arrives (on the RTP port when muxed) and from where the SDP said
        await await_until(
            lambda: call.summary()["media"]["rtcp_received"] > 0, 10, message="no RTCP"
        )
        for side in (call, their):
            assert side.sdp is not None and side.sdp.negotiated is not None
            assert side.sdp.negotiated.rtcp_mux is mux
            media = side.summary()["media"]
            assert media["srtp"]["auth_failures"] == 0 and media["plain_dropped"] == 0
            assert media["foreign_source"] == 0
        call.hangup()
        await call.wait_ended(5)
        await their.wait_ended(5)
        assert call.ending is CallEnding.HUNG_UP_HERE
    finally:
        await alice.stop()
        await bob.stop()


async def test_answerer_may_choose_passive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other a=setup role: the answerer says passive, so the offerer is the DTLS client."""
    monkeypatch.setattr(negotiation, "DTLS_ANSWER_TO_ACTPASS", Setup.PASSIVE)
    alice = Phone(config(tmp_path / "alice"))
    bob = Phone(config(tmp_path / "bob", auto_answer=True))
    await alice.start()
    await bob.start()
    try:
        call, their = await connected_pair(alice, bob, "DTLS-SRTP")
        mine, theirs = keying_event(call, KeysAgreed), keying_event(their, KeysAgreed)
        assert (mine.details["role"], theirs.details["role"]) == ("client", "server")
        assert their.sdp is not None and their.sdp.local is not None
        assert their.sdp.local.media[0].attribute_values("setup") == ["passive"]
        await await_until(lambda: srtp_received(their) > 20, 5, message="no SRTP at bob")
        call.hangup()
        await call.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()


@pytest.mark.parametrize(
    ("bob_keying", "outcome"), [(["zrtp"], None), (["zrtp", "dtls"], "dtls-srtp")]
)
async def test_keying_preference_of_the_answerer(
    tmp_path: Path, bob_keying: list[str], outcome: str | None
) -> None:
    """alice offers DTLS-SRTP (her first preference). A bob that allows only ZRTP refuses with
    488 and not one RTP packet is sent; a bob that prefers ZRTP but allows DTLS answers DTLS,
    the one the offer carries."""
    alice = Phone(config(tmp_path / "alice"))
    bob_cfg = config(tmp_path / "bob", auto_answer=True)
    bob_cfg.media.keying = bob_keying
    bob = Phone(bob_cfg)
    await alice.start()
    await bob.start()
    try:
        if outcome is None:
            call = alice.dial(uri(bob))
            await call.wait_ended(5)
            assert call.status == 488 and not call.answered
            assert call.summary()["media"]["packets_sent"] == 0
            assert alice.media_fingerprint is not None and bob.media_fingerprint is None
        else:
            call, their = await connected_pair(alice, bob, "DTLS-SRTP")
            assert their.summary()["security"]["keying"] == outcome
            call.hangup()
            await call.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()


async def test_handshake_that_never_completes_ends_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's DTLS engine hears nothing: alice's handshake deadline ends the call, no plain RTP."""
    from securephone.media.dtls import keying as dtls_keying

    monkeypatch.setattr(dtls_keying, "HANDSHAKE_TIMEOUT", 3.0)
    alice = Phone(config(tmp_path / "alice"))
    bob = Phone(config(tmp_path / "bob", auto_answer=True))
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(uri(bob))
        await call.wait_for(CallState.CONNECTED, timeout=5)
        their = next(iter(bob.calls.values()))
        assert their.sdp is not None and their.sdp.path is not None
        their.sdp.path.receive = lambda datagram, source, now: None  # type: ignore[method-assign]
        their.sdp.path.datagrams_to_send = lambda: []  # type: ignore[method-assign]
        their.sdp.path.get_timer = lambda: None  # type: ignore[method-assign]  # a dead peer
        await call.wait_ended(15)
        assert call.ending is CallEnding.SECURITY_REFUSED, call.reason
        failed = keying_event(call, KeyingFailed)
        assert failed is not None and "handshake" in failed.reason
        assert call.summary()["media"]["packets_sent"] == 0
        assert their.summary()["media"]["packets_sent"] == 0
    finally:
        await alice.stop()
        await bob.stop()
