"""The ZRTP retained-secret cache on disk (RFC 6189 §4.9): our ZID and each peer's rs1/rs2.

The core keeps the cache as data (``media.zrtp.cache``); this module keeps it in an SQLite
database in the data directory (mode 0600: the secrets protect later calls). Every save replaces
the peers in one transaction, so a crash leaves the old cache or the new one, never half of each;
the rows keep the cache's order (least recently updated first), which decides who goes first
when the cache is full.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from securephone.media.zrtp.cache import PeerSecrets, ZrtpCache

log = logging.getLogger(__name__)

CACHE_NAME = "zrtp-cache.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity (one INTEGER PRIMARY KEY CHECK (one = 1), zid BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS peers (
    zid BLOB PRIMARY KEY, rs1 BLOB, rs2 BLOB, verified INTEGER NOT NULL, name TEXT
);
"""


class ZrtpCacheFileError(Exception):
    """The cache file exists but cannot be used; the message says what to do."""


def load_or_create(path: Path) -> ZrtpCache:
    """The cache at ``path``, or a new one with a fresh ZID (written at once)."""
    if not path.exists():
        cache = ZrtpCache.new()
        save(path, cache)
        log.info("new ZRTP identity (ZID %s) in %s", cache.zid.hex(), path)
        return cache
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            (zid,) = db.execute("SELECT zid FROM identity").fetchone()
            rows = db.execute(
                "SELECT zid, rs1, rs2, verified, name FROM peers ORDER BY rowid"
            ).fetchall()
        return ZrtpCache(zid=_sized(zid, 12, "own ZID"), peers=dict(_peer(row) for row in rows))
    except (sqlite3.Error, TypeError, ValueError) as exc:
        raise ZrtpCacheFileError(
            f"the ZRTP cache {path} is damaged ({exc}); move it away to start a new identity "
            "(peers will then see a cache mismatch and must compare the SAS again)"
        ) from None


def save(path: Path, cache: ZrtpCache) -> None:
    """Replace the stored cache with ``cache`` in one transaction; the file is 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    # in the cache's order (least recently updated first): the rowids keep it for the next load
    rows = [(zid, p.rs1, p.rs2, int(p.verified), p.name) for zid, p in cache.peers.items()]
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(_SCHEMA)
        db.execute("INSERT OR REPLACE INTO identity (one, zid) VALUES (1, ?)", (cache.zid,))
        db.execute("DELETE FROM peers")
        db.executemany("INSERT INTO peers VALUES (?, ?, ?, ?, ?)", rows)


def _sized(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise ValueError(f"{what} is not {length} bytes")
    return value


def _peer(row: tuple[object, ...]) -> tuple[bytes, PeerSecrets]:
    zid, rs1, rs2, verified, name = row
    secrets = [None if s is None else _sized(s, 32, "a retained secret") for s in (rs1, rs2)]
    if not isinstance(name, str | None):
        raise ValueError("a peer name is not text")
    return _sized(zid, 12, "a peer ZID"), PeerSecrets(secrets[0], secrets[1], bool(verified), name)
