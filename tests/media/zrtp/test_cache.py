"""The retained-secret cache is bounded: strangers' new ZIDs cannot grow it, verified peers stay."""

from __future__ import annotations

from securephone.media.zrtp.cache import MAX_PEERS, PeerSecrets, ZrtpCache

from .harness import Wire, both_secure, endpoint


def zid(n: int) -> bytes:
    return n.to_bytes(12, "big")


def test_an_update_makes_the_peer_the_most_recent() -> None:
    cache = ZrtpCache.new()
    for n in range(3):
        cache.record(zid(n)).rs1 = bytes([n]) * 32
    record = cache.record(zid(0))
    assert record.rs1 == b"\x00" * 32  # the same record, not a new one
    assert list(cache.peers) == [zid(1), zid(2), zid(0)]


def test_beyond_the_limit_the_oldest_unverified_peer_goes_first() -> None:
    cache = ZrtpCache.new()
    cache.max_peers = 3
    cache.peers[zid(0)] = PeerSecrets(verified=True)  # the oldest, but the user verified it
    cache.peers[zid(1)] = PeerSecrets()
    cache.peers[zid(2)] = PeerSecrets()
    cache.record(zid(3))
    assert list(cache.peers) == [zid(0), zid(2), zid(3)]
    for n in range(4, 40):  # a stream of strangers' ZIDs
        cache.record(zid(n))
    assert list(cache.peers) == [zid(0), zid(38), zid(39)]


def test_when_every_other_peer_is_verified_the_oldest_goes_and_never_the_one_updated() -> None:
    cache = ZrtpCache.new()
    cache.max_peers = 2
    cache.peers[zid(0)] = PeerSecrets(verified=True)
    cache.peers[zid(1)] = PeerSecrets(verified=True)
    cache.record(zid(2))
    assert list(cache.peers) == [zid(1), zid(2)]


def test_key_agreements_with_ever_new_peers_keep_the_cache_at_its_limit() -> None:
    ours = ZrtpCache.new()
    ours.max_peers = 4
    peers = []
    for _ in range(7):
        theirs = ZrtpCache.new()
        wire = Wire(endpoint("a", ours), endpoint("b", theirs))
        wire.start()
        wire.run()
        assert both_secure(wire)
        peers.append(theirs.zid)
    assert list(ours.peers) == peers[-4:]
    assert all(record.rs1 is not None for record in ours.peers.values())
    assert MAX_PEERS == ZrtpCache.new().max_peers >= 100
