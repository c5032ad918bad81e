"""Two Phones over real UDP sockets, SRTP mandatory and keys agreed by ZRTP in the media path:
equal SAS on both sides, SRTP flowing only after the key agreement, the SAS confirmation kept in
both caches so that the next call is "previously verified"."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from securephone.aio.call import CallKeyingChanged
from securephone.aio.phone import Phone, zrtp_config
from securephone.media.zrtp.algorithms import AlgorithmOffer
from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.events import Event
from securephone.store import zrtpcache
from securephone.store.config import MediaSettings, parse_config

from ..helpers import await_until
from .calls import connected_pair, keying_event, uri


def config(data_dir: Path, auto_answer: bool = False, **media: Any) -> Any:
    return parse_config(
        {
            "data_dir": str(data_dir),
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"port_min": 49000, "port_max": 49999, "srtp": "mandatory", **media},
            "calls": {"auto_answer": auto_answer},
        }
    )


async def test_zrtp_call_between_two_phones(tmp_path: Path) -> None:
    alice = Phone(config(tmp_path / "alice"))
    bob = Phone(config(tmp_path / "bob", auto_answer=True))
    seen: list[Event] = []
    alice.add_listener(seen.append)
    await alice.start()
    await bob.start()
    try:
        call, their = await connected_pair(alice, bob, "ZRTP")
        mine, theirs = keying_event(call), keying_event(their)
        assert mine is not None and theirs is not None
        assert mine.details["sas"] == theirs.details["sas"]
        assert mine.details["previously_verified"] is False
        assert any(isinstance(e, CallKeyingChanged) for e in seen)  # listeners hear it too
        security = call.summary()["security"]
        assert security["keying"] == "zrtp" and security["end_to_end"] is True
        assert security["path"]["sas"] == mine.details["sas"]
        assert call.zrtp is not None and call.zrtp.sas == mine.details["sas"]
        await await_until(
            lambda: (call.summary()["media"]["srtp"] or {}).get("packets_unprotected", 0) > 20,
            5,
            message="no SRTP received",
        )
        media = call.summary()["media"]
        assert media["encryption"] == "srtp" and media["srtp"]["auth_failures"] == 0
        assert media["plain_dropped"] == 0
        call.confirm_sas()
        their.confirm_sas()
        call.hangup()
        await call.wait_ended(5)
        await their.wait_ended(5)
        assert call.ending is CallEnding.HUNG_UP_HERE
        # the retained secret is the same on both sides, on disk
        caches = [
            zrtpcache.load_or_create(tmp_path / name / zrtpcache.CACHE_NAME)
            for name in ("alice", "bob")
        ]
        (alice_peer,) = caches[0].peers.values()
        (bob_peer,) = caches[1].peers.values()
        assert alice_peer.rs1 == bob_peer.rs1 and alice_peer.rs1
        # the next call: both were confirmed, so it is "previously verified"
        call, their = await connected_pair(alice, bob, "ZRTP")
        again, again_theirs = keying_event(call), keying_event(their)
        assert again is not None and again_theirs is not None
        assert again.details["previously_verified"] and again_theirs.details["previously_verified"]
        assert not again.details["cache_mismatch"]
        call.hangup()
        await call.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()


async def test_mandatory_zrtp_with_a_silent_peer_ends_the_call(tmp_path: Path) -> None:
    """A peer that never speaks ZRTP: no plain packet leaves, and the call ends as security refused."""
    alice = Phone(config(tmp_path / "alice"))
    bob = Phone(config(tmp_path / "bob", auto_answer=True))
    await alice.start()
    await bob.start()
    try:
        call = alice.dial(uri(bob))
        await call.wait_for(CallState.CONNECTED, timeout=5)
        their = next(iter(bob.calls.values()))
        assert their.sdp is not None and their.sdp.path is not None
        # bob's ZRTP engine hears nothing and says nothing: a peer without ZRTP
        their.sdp.path.receive = lambda datagram, source, now: None  # type: ignore[method-assign]
        their.sdp.path.datagrams_to_send = lambda: []  # type: ignore[method-assign]
        await asyncio.wait_for(call.wait_ended(), 40)
        assert call.ending is CallEnding.SECURITY_REFUSED, call.reason
        assert "ZRTP" in call.reason
        media = call.summary()["media"]
        assert media["packets_sent"] == 0  # not one plain audio packet
    finally:
        await alice.stop()
        await bob.stop()


COMBINATIONS = [
    ("DH3k", "B32", "HS80"),
    ("X255", "B256", "HS32"),
    ("EC25", "B256", "HS80"),
    ("EC25", "B32", "HS32"),
]


@pytest.mark.parametrize(("key_agreement", "sas", "tag"), COMBINATIONS)
async def test_configured_zrtp_algorithms(
    tmp_path: Path, key_agreement: str, sas: str, tag: str
) -> None:
    """[media] zrtp_key_agreements / zrtp_sas / zrtp_auth_tags reach the Hello and the Commit:
    two phones configured alike agree exactly that, with equal SAS of that rendering, and SRTP
    with the matching tag length flows both ways."""
    zrtp = {"zrtp_key_agreements": [key_agreement], "zrtp_sas": [sas], "zrtp_auth_tags": [tag]}
    alice = Phone(config(tmp_path / "alice", **zrtp))
    bob = Phone(config(tmp_path / "bob", auto_answer=True, **zrtp))
    await alice.start()
    await bob.start()
    try:
        call, their = await connected_pair(alice, bob, "ZRTP")
        mine, theirs = keying_event(call), keying_event(their)
        assert mine is not None and theirs is not None
        algorithms = mine.details["algorithms"]
        assert isinstance(algorithms, dict)
        assert algorithms["key_agreement"] == key_agreement
        assert algorithms["sas_type"].strip() == sas and algorithms["auth_tag"] == tag
        assert mine.details["sas"] == theirs.details["sas"]
        words = str(mine.details["sas"]).split(":")
        assert len(words) == (2 if sas == "B256" else 1)  # PGP words "even:odd", or 4 letters
        suite = "AES_CM_128_HMAC_SHA1_80" if tag == "HS80" else "AES_CM_128_HMAC_SHA1_32"
        assert mine.suite == suite
        for side in (call, their):
            await await_until(
                lambda side=side: (
                    (side.summary()["media"]["srtp"] or {}).get("packets_unprotected", 0) > 10
                ),
                5,
                message="no SRTP received",
            )
            srtp = side.summary()["media"]["srtp"]
            assert srtp["suite"] == suite and srtp["auth_failures"] == 0
        call.hangup()
        await call.wait_ended(5)
    finally:
        await alice.stop()
        await bob.stop()


def test_zrtp_settings_default_to_the_engine_offer_and_are_validated() -> None:
    assert zrtp_config(MediaSettings()).offer == AlgorithmOffer()
    custom = zrtp_config(MediaSettings(zrtp_sas=["B256"], zrtp_key_agreements=["EC25", "DH3k"]))
    assert custom.offer.sas_types == ("B256",) and custom.offer.key_agreements == ("EC25", "DH3k")
    for bad in (
        {"zrtp_key_agreements": ["DH3k", "DH3k"]},
        {"zrtp_sas": []},
        {"zrtp_auth_tags": ["SK32"]},
        {"zrtp_key_agreements": ["X448"]},
    ):
        with pytest.raises(ValidationError):
            MediaSettings(**bad)
