"""Two ZRTP sessions in memory with a fake clock (RFC 6189 §4-§7): roles, contention, keys,
SAS, retransmissions, retained secrets over several calls, cache mismatch and a MiTM relay."""

from __future__ import annotations

import itertools
import random

import pytest

from securephone.media.rtp import RtpPacket
from securephone.media.srtp import SrtpContext
from securephone.media.zrtp.algorithms import AlgorithmOffer
from securephone.media.zrtp.cache import PeerSecrets, ZrtpCache, dump_cache, load_cache
from securephone.media.zrtp.events import CacheUpdated, ReceiveKeyReady, Role, SecureOn
from securephone.media.zrtp.messages import Commit, Hello, parse_message
from securephone.media.zrtp.packet import ZrtpPacket
from securephone.media.zrtp.session import State, ZrtpConfig, ZrtpUsageError

from .harness import Endpoint, Wire, both_secure, endpoint


def _config(ka: str, sas: str, tag: str, **kwargs: object) -> ZrtpConfig:
    offer = AlgorithmOffer(key_agreements=(ka,), sas_types=(sas,), auth_tags=(tag,))
    return ZrtpConfig(offer=offer, **kwargs)  # type: ignore[arg-type]


def _messages(datagrams: list[bytes]) -> list[str]:
    return [type(parse_message(ZrtpPacket.parse(d).message)).__name__ for d in datagrams]


def _srtp_both_ways(a: SecureOn, b: SecureOn) -> None:
    """The agreed keys work in libsrtp: protect on one side, unprotect on the other."""
    ctx_a = SrtpContext(a.srtp_suite, a.local_key, a.remote_key)
    ctx_b = SrtpContext(b.srtp_suite, b.local_key, b.remote_key)
    for seq, (tx, rx) in enumerate(((ctx_a, ctx_b), (ctx_b, ctx_a)), start=1):
        rtp = bytes(
            RtpPacket(
                payload_type=0,
                sequence_number=seq,
                timestamp=160 * seq,
                ssrc=seq,
                payload=b"\x55" * 160,
            )
        )
        srtp = tx.protect(rtp)
        assert srtp != rtp and rx.unprotect(srtp) == rtp


MATRIX = list(itertools.product(("DH3k", "X255", "EC25"), ("B32 ", "B256"), ("HS32", "HS80")))


@pytest.mark.parametrize(("ka", "sas", "tag"), MATRIX)
def test_every_algorithm_combination_agrees(ka: str, sas: str, tag: str) -> None:
    wire = Wire(
        endpoint("a", config=_config(ka, sas, tag)), endpoint("b", config=_config(ka, sas, tag))
    )
    wire.start()
    wire.run()
    a, b = wire.a.secure, wire.b.secure
    assert a.algorithms == b.algorithms and a.algorithms.key_agreement == ka
    assert (a.algorithms.sas_type, a.algorithms.auth_tag) == (sas, tag)
    assert a.sas == b.sas and (":" in a.sas) == (sas == "B256")
    assert {a.role, b.role} == {Role.INITIATOR, Role.RESPONDER}
    assert a.local_key == b.remote_key and a.remote_key == b.local_key
    assert a.local_key != a.remote_key and len(a.local_key) == 30
    assert a.rtcp_tag_caveat == (tag == "HS32")
    _srtp_both_ways(a, b)
    assert [e.remote_key for e in wire.a.of(ReceiveKeyReady)] == [a.remote_key]  # type: ignore[attr-defined]


def test_default_offer_picks_x25519_hs80_and_hides_keys() -> None:
    wire = Wire(endpoint("a"), endpoint("b"))
    wire.start()
    wire.run()
    secure = wire.a.secure
    assert (secure.algorithms.key_agreement, secure.algorithms.auth_tag) == ("X255", "HS80")
    assert secure.srtp_suite == "AES_CM_128_HMAC_SHA1_80"
    assert secure.local_key.hex() not in repr(secure) and "local_key" not in repr(secure)


def test_commit_contention_both_send_commit_and_the_larger_hvi_initiates() -> None:
    wire = Wire(endpoint("a"), endpoint("b"))
    wire.start()
    wire.run()
    assert "Commit" in _messages(wire.sent["a"]) and "Commit" in _messages(wire.sent["b"])
    hvi = {}
    for tag in ("a", "b"):
        (commit,) = {
            parse_message(ZrtpPacket.parse(d).message)
            for d in wire.sent[tag]
            if _messages([d]) == ["Commit"]
        }
        assert isinstance(commit, Commit)
        hvi[tag] = commit.hvi
    initiator = "a" if hvi["a"] > hvi["b"] else "b"
    assert getattr(wire, initiator).secure.role is Role.INITIATOR
    assert wire.a.secure.sas == wire.b.secure.sas


def test_passive_peer_is_responder_without_contention() -> None:
    wire = Wire(endpoint("a"), endpoint("b", config=ZrtpConfig(passive=True)))
    wire.start()
    wire.run()
    assert wire.a.secure.role is Role.INITIATOR and wire.b.secure.role is Role.RESPONDER
    assert "Commit" not in _messages(wire.sent["b"])
    assert _messages(wire.sent["b"]).count("DHPart1") == 1


def test_different_key_agreement_preferences_converge() -> None:
    """bzrtp's rule: first common in each order; if they differ, the faster one (X255)."""
    a = endpoint("a", config=ZrtpConfig(offer=AlgorithmOffer(key_agreements=("DH3k", "X255"))))
    b = endpoint("b", config=ZrtpConfig(offer=AlgorithmOffer(key_agreements=("X255", "DH3k"))))
    wire = Wire(a, b)
    wire.start()
    wire.run()
    assert (
        wire.a.secure.algorithms.key_agreement == wire.b.secure.algorithms.key_agreement == "X255"
    )


@pytest.mark.parametrize("seed", range(6))
def test_packet_loss_is_repaired_by_retransmission(seed: int) -> None:
    rng = random.Random(seed)
    lost: list[bytes] = []

    def lossy(_sender: str, datagram: bytes) -> list[bytes]:
        if rng.random() < 0.3:
            lost.append(datagram)
            return []
        return [datagram]

    wire = Wire(endpoint("a"), endpoint("b"), link=lossy)
    wire.start()
    wire.run(limit=30)
    assert lost and both_secure(wire)
    assert wire.a.secure.sas == wire.b.secure.sas
    _srtp_both_ways(wire.a.secure, wire.b.secure)


def test_first_packets_lost_each_way_then_recovers_with_growing_sequence_numbers() -> None:
    dropped = {"a": 0, "b": 0}

    def drop_first_four(sender: str, datagram: bytes) -> list[bytes]:
        if dropped[sender] < 4:
            dropped[sender] += 1
            return []
        return [datagram]

    wire = Wire(endpoint("a"), endpoint("b"), link=drop_first_four)
    wire.start()
    wire.run()
    assert both_secure(wire)
    for tag in ("a", "b"):
        sequences = [ZrtpPacket.parse(d).sequence for d in wire.sent[tag]]
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
        assert 1 <= sequences[0] <= 0x1000


def test_duplicated_packets_change_nothing() -> None:
    wire = Wire(endpoint("a"), endpoint("b"), link=lambda _s, d: [d, d])
    wire.start()
    wire.run()
    assert both_secure(wire) and wire.a.secure.sas == wire.b.secure.sas


def test_lost_conf2ack_is_answered_again() -> None:
    """bzrtp waits for Conf2ACK: a repeated Confirm2 in SECURE gets another Conf2ACK."""
    seen = {"n": 0}

    def drop_first_conf2ack(_sender: str, datagram: bytes) -> list[bytes]:
        if _messages([datagram]) == ["Conf2Ack"] and seen["n"] == 0:
            seen["n"] += 1
            return []
        return [datagram]

    wire = Wire(
        endpoint("a"), endpoint("b", config=ZrtpConfig(passive=True)), link=drop_first_conf2ack
    )
    wire.start()
    wire.run()
    assert both_secure(wire)
    assert _messages(wire.sent["b"]).count("Conf2Ack") == 2


def test_srtp_packet_counts_as_conf2ack() -> None:
    wire = Wire(
        endpoint("a"),
        endpoint("b", config=ZrtpConfig(passive=True)),
        link=lambda _s, d: [] if _messages([d]) == ["Conf2Ack"] else [d],
    )
    wire.start()
    for _ in range(20):
        wire.step()
    assert wire.a.session.state is State.CONFIRM2_SENT
    wire.a.session.srtp_authenticated()
    wire.a.drain()
    assert wire.a.session.state is State.SECURE and wire.a.secure.sas == wire.b.session.sas


def _call(cache_a: ZrtpCache, cache_b: ZrtpCache, *, contention: bool = True) -> Wire:
    b_config = ZrtpConfig() if contention else ZrtpConfig(passive=True)
    wire = Wire(
        Endpoint("a", endpoint("a", cache_a).session),
        Endpoint("b", endpoint("b", cache_b, b_config).session),
    )
    wire.start()
    wire.run()
    assert both_secure(wire)
    return wire


def test_three_calls_keep_rs1_continuity_and_previously_verified() -> None:
    cache_a, cache_b = ZrtpCache.new(), ZrtpCache.new()
    first = _call(cache_a, cache_b)
    rec_a, rec_b = cache_a.peers[cache_b.zid], cache_b.peers[cache_a.zid]
    assert rec_a.rs1 == rec_b.rs1 is not None and rec_a.rs2 is rec_b.rs2 is None
    assert not first.a.secure.previously_verified and not first.a.secure.cache_mismatch
    assert first.a.of(CacheUpdated) and first.b.of(CacheUpdated)

    rs1_after_first = rec_a.rs1
    second = _call(cache_a, cache_b)
    assert not second.a.secure.cache_mismatch and not second.b.secure.cache_mismatch
    assert rec_a.rs1 == rec_b.rs1 != rs1_after_first and rec_a.rs2 == rec_b.rs2 == rs1_after_first
    assert not second.a.secure.previously_verified
    second.a.session.sas_verified(True)
    second.b.session.sas_verified(True)
    assert rec_a.verified and rec_b.verified

    # The caches go through their serialisation between calls, like the shell would do.
    cache_a, cache_b = load_cache(dump_cache(cache_a)), load_cache(dump_cache(cache_b))
    third = _call(cache_a, cache_b)
    for side in (third.a, third.b):
        assert side.secure.previously_verified and side.secure.peer_verified_flag
        assert not side.secure.cache_mismatch


def test_tampered_cache_raises_mismatch_and_postpones_the_update() -> None:
    cache_a, cache_b = ZrtpCache.new(), ZrtpCache.new()
    _call(cache_a, cache_b)
    cache_a.peers[cache_b.zid].verified = cache_b.peers[cache_a.zid].verified = True
    cache_a.peers[cache_b.zid].rs1 = bytes(range(32))  # tampered
    before_b = cache_b.peers[cache_a.zid].rs1
    wire = _call(cache_a, cache_b)
    assert wire.a.secure.cache_mismatch and wire.b.secure.cache_mismatch
    assert not wire.a.secure.previously_verified and not wire.b.secure.previously_verified
    assert wire.a.secure.sas == wire.b.secure.sas
    assert cache_b.peers[cache_a.zid].rs1 == before_b  # not updated after a mismatch
    assert not cache_b.peers[cache_a.zid].verified  # the V flag is cleared
    wire.a.session.sas_verified(True)
    wire.b.session.sas_verified(True)
    assert cache_a.peers[cache_b.zid].rs1 == cache_b.peers[cache_a.zid].rs1 != before_b
    again = _call(cache_a, cache_b)
    assert not again.a.secure.cache_mismatch and again.a.secure.previously_verified


def test_preshared_mode_after_a_dh_call() -> None:
    """RFC 6189 §4.4.2: no DHPart messages; s0 from the retained secret."""
    config = ZrtpConfig(
        offer=AlgorithmOffer(key_agreements=("X255", "DH3k", "Prsh")), preshared=True
    )
    cache_a, cache_b = ZrtpCache.new(), ZrtpCache.new()
    wire = Wire(
        Endpoint("a", endpoint("a", cache_a, config).session),
        Endpoint("b", endpoint("b", cache_b, config).session),
    )
    wire.start()
    wire.run()
    assert both_secure(wire) and wire.a.secure.algorithms.key_agreement != "Prsh"
    wire = Wire(
        Endpoint("a", endpoint("a", cache_a, config).session),
        Endpoint("b", endpoint("b", cache_b, config).session),
    )
    wire.start()
    wire.run()
    assert both_secure(wire)
    assert wire.a.secure.algorithms.key_agreement == "Prsh"
    assert "DHPart1" not in _messages(wire.sent["a"] + wire.sent["b"])
    assert wire.a.secure.sas == wire.b.secure.sas
    _srtp_both_ways(wire.a.secure, wire.b.secure)
    assert cache_a.peers[cache_b.zid].rs1 == cache_b.peers[cache_a.zid].rs1


def test_man_in_the_middle_relay_shows_different_sas_and_a_cache_mismatch() -> None:
    """A relay running one ZRTP session per side (it owns both DH exchanges)."""
    cache_a, cache_b = ZrtpCache.new(), ZrtpCache.new()
    _call(cache_a, cache_b)  # an earlier direct call: both hold the same rs1
    # The relay impersonates each phone's ZID towards the other but cannot know rs1.
    towards_a, towards_b = ZrtpCache(zid=cache_b.zid), ZrtpCache(zid=cache_a.zid)
    left = Wire(endpoint("a", cache_a), endpoint("m-a", towards_a))
    right = Wire(endpoint("m-b", towards_b), endpoint("b", cache_b))
    for wire in (left, right):
        wire.start()
        wire.run()
        assert both_secure(wire)
    phone_a, phone_b = left.a.secure, right.b.secure
    assert phone_a.sas == left.b.secure.sas and phone_b.sas == right.a.secure.sas
    assert phone_a.sas != phone_b.sas  # 20-bit SAS: a chance collision is 1 in a million
    assert phone_a.local_key != phone_b.remote_key
    assert phone_a.cache_mismatch and phone_b.cache_mismatch


def test_sas_verified_needs_a_secure_session() -> None:
    side = endpoint("a")
    with pytest.raises(ZrtpUsageError):
        side.session.sas_verified(True)


def test_local_hello_hash_is_the_sdp_value_and_hello_is_stable() -> None:
    side = endpoint("a")
    side.session.start(0.0)
    first = side.session.datagrams_to_send()[0]
    side.session.handle_timer(1.0)
    again = side.session.datagrams_to_send()[0]
    hello = ZrtpPacket.parse(first).message
    assert ZrtpPacket.parse(again).message == hello  # retransmission: same message, new seq
    assert ZrtpPacket.parse(again).sequence == ZrtpPacket.parse(first).sequence + 1
    from hashlib import sha256

    assert side.session.sdp_zrtp_hash == f"1.10 {sha256(hello).hexdigest()}"
    assert isinstance(parse_message(hello), Hello)


def test_cache_serialisation_round_trip() -> None:
    cache = ZrtpCache.new()
    cache.peers[b"z" * 12] = PeerSecrets(rs1=b"1" * 32, rs2=None, verified=True, name="sip:b@x")
    loaded = load_cache(dump_cache(cache))
    assert loaded == cache and b"1" * 32 not in repr(loaded).encode()


def test_s384_hash_when_both_offer_it_first() -> None:
    config = ZrtpConfig(offer=AlgorithmOffer(hashes=("S384", "S256")))
    wire = Wire(endpoint("a", config=config), endpoint("b", config=config))
    wire.start()
    wire.run()
    assert wire.a.secure.algorithms.hash == "S384" and wire.a.secure.sas == wire.b.secure.sas
    _srtp_both_ways(wire.a.secure, wire.b.secure)


def test_peer_preferring_hs32_still_gets_hs80_from_us_as_initiator() -> None:
    """The initiator picks auth tag and SAS in its own order (RFC 6189 §4.1.2)."""
    b_offer = AlgorithmOffer(auth_tags=("HS32", "HS80"), sas_types=("B256", "B32 "))
    wire = Wire(endpoint("a"), endpoint("b", config=ZrtpConfig(offer=b_offer, passive=True)))
    wire.start()
    wire.run()
    assert (
        wire.a.secure.algorithms.auth_tag == "HS80" and wire.a.secure.algorithms.sas_type == "B32 "
    )
