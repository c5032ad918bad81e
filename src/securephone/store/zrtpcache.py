"""The ZRTP retained-secret cache on disk (RFC 6189 §4.9): our ZID and each peer's rs1/rs2.

The core keeps the cache as data (``media.zrtp.cache``); this module reads it at start and writes
it through the one atomic writer, mode 0600 (the secrets protect later calls).
"""

from __future__ import annotations

import logging
from pathlib import Path

from securephone.media.zrtp.cache import ZrtpCache, ZrtpCacheError, dump_cache, load_cache
from securephone.store.files import atomic_write

log = logging.getLogger(__name__)

CACHE_NAME = "zrtp-cache.json"


class ZrtpCacheFileError(Exception):
    """The cache file exists but cannot be used; the message says what to do."""


def load_or_create(path: Path) -> ZrtpCache:
    """The cache at ``path``, or a new one with a fresh ZID (written at once)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        cache = ZrtpCache.new()
        save(path, cache)
        log.info("new ZRTP identity (ZID %s) in %s", cache.zid.hex(), path)
        return cache
    except OSError as exc:
        raise ZrtpCacheFileError(f"cannot read the ZRTP cache {path}: {exc}") from None
    try:
        return load_cache(data)
    except ZrtpCacheError as exc:
        raise ZrtpCacheFileError(
            f"the ZRTP cache {path} is damaged ({exc}); move it away to start a new identity "
            "(peers will then see a cache mismatch and must compare the SAS again)"
        ) from None


def save(path: Path, cache: ZrtpCache) -> None:
    """Write the cache atomically, mode 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, dump_cache(cache), mode=0o600)
