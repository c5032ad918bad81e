"""The ZRTP cache in SQLite: round trip, mode 0600, one transaction per save, damage reported."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from securephone.media.zrtp.cache import PeerSecrets, ZrtpCache
from securephone.store import zrtpcache


def test_new_cache_is_created_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / zrtpcache.CACHE_NAME
    first = zrtpcache.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert zrtpcache.load_or_create(path).zid == first.zid  # the identity survives restarts


def test_peers_round_trip_and_a_save_replaces_them(tmp_path: Path) -> None:
    path = tmp_path / zrtpcache.CACHE_NAME
    cache = zrtpcache.load_or_create(path)
    peer, other = b"\x01" * 12, b"\x02" * 12
    cache.peers[peer] = PeerSecrets(rs1=b"\xaa" * 32, rs2=None, verified=True, name="bob")
    cache.peers[other] = PeerSecrets(rs1=b"\xbb" * 32, rs2=b"\xcc" * 32)
    zrtpcache.save(path, cache)
    loaded = zrtpcache.load_or_create(path)
    assert loaded.peers == cache.peers and loaded.zid == cache.zid
    del cache.peers[other]
    zrtpcache.save(path, cache)
    assert set(zrtpcache.load_or_create(path).peers) == {peer}


def test_a_damaged_cache_is_one_clear_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / zrtpcache.CACHE_NAME
    zrtpcache.save(path, ZrtpCache.new())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE identity SET zid = ?", (b"short",))
    before = path.read_bytes()
    with pytest.raises(zrtpcache.ZrtpCacheFileError, match="damaged"):
        zrtpcache.load_or_create(path)
    assert path.read_bytes() == before
    path.write_bytes(b"not a database at all")
    with pytest.raises(zrtpcache.ZrtpCacheFileError):
        zrtpcache.load_or_create(path)


def test_the_peers_order_survives_a_save(tmp_path: Path) -> None:
    """Least recently updated first: the order that decides who goes when the cache is full."""
    path = tmp_path / zrtpcache.CACHE_NAME
    cache = zrtpcache.load_or_create(path)
    order = [bytes([n]) * 12 for n in (9, 3, 7, 1)]  # not sorted: the order of the updates
    for peer in order:
        cache.record(peer).rs1 = peer[:1] * 32
    zrtpcache.save(path, cache)
    assert list(zrtpcache.load_or_create(path).peers) == order
    cache.record(order[0])
    zrtpcache.save(path, cache)
    assert list(zrtpcache.load_or_create(path).peers) == [*order[1:], order[0]]
