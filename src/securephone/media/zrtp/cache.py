"""The retained-secret cache as data (RFC 6189 §4.9 "ZID and Cache Operation", §4.6.1).

One ZID for this installation and, per peer ZID, rs1, rs2 (the previous rs1), the
SAS-verified flag and the name last seen with that ZID (§4.9.1, for the user interface).
Peers are kept in the order they were last updated, at most ``max_peers`` of them: anyone who
can reach the phone can make ZRTP calls with new ZIDs, so beyond the limit the least recently
updated peer that was never verified goes first (a verified one only when all are verified).
The core never touches files: :func:`dump_cache` / :func:`load_cache` turn it into bytes
(JSON) that the shell writes with the project's atomic writer.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PeerSecrets", "ZrtpCache", "ZrtpCacheError", "dump_cache", "load_cache"]

_FORMAT = 1
MAX_PEERS = 1000  # peers a cache keeps


class ZrtpCacheError(ValueError):
    """Serialized cache that cannot be loaded (never partially applied)."""


@dataclass
class PeerSecrets:
    """What we remember about one peer ZID. ``repr`` never shows the secrets."""

    rs1: bytes | None = field(default=None, repr=False)
    rs2: bytes | None = field(default=None, repr=False)
    verified: bool = False
    name: str | None = None


@dataclass
class ZrtpCache:
    """Our ZID and the per-peer retained secrets."""

    zid: bytes
    peers: dict[bytes, PeerSecrets] = field(default_factory=dict)  # least recently updated first
    max_peers: int = MAX_PEERS

    def record(self, zid: bytes) -> PeerSecrets:
        """The peer's record for an update (created when new), made the most recent; the cache
        then drops what is beyond ``max_peers`` (never this peer)."""
        record = self.peers.pop(zid, None)
        if record is None:
            record = PeerSecrets()
        self.peers[zid] = record
        while len(self.peers) > max(1, self.max_peers):
            oldest = next(iter(self.peers))
            unverified = next((z for z, p in self.peers.items() if not p.verified), oldest)
            del self.peers[unverified if unverified != zid else oldest]
        return record

    @classmethod
    def new(cls, rng: Callable[[int], bytes] = secrets.token_bytes) -> ZrtpCache:
        """A fresh cache with a random 96-bit ZID (RFC 6189 §4.9)."""
        return cls(zid=rng(12))


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def dump_cache(cache: ZrtpCache) -> bytes:
    """The cache as JSON bytes (secrets hex-encoded): the file the shell stores with mode 0600."""
    doc = {
        "format": _FORMAT,
        "zid": cache.zid.hex(),
        "peers": {
            zid.hex(): {
                "rs1": _hex(p.rs1),
                "rs2": _hex(p.rs2),
                "verified": p.verified,
                "name": p.name,
            }
            for zid, p in sorted(cache.peers.items())
        },
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def _secret(value: Any, length: int, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value)
    except (TypeError, ValueError) as exc:
        raise ZrtpCacheError(f"{what} is not hex") from exc
    if len(raw) != length:
        raise ZrtpCacheError(f"{what} is not {length} bytes")
    return raw


def _peer(zid_hex: str, item: Any) -> tuple[bytes, PeerSecrets]:
    if not isinstance(item, dict):
        raise ZrtpCacheError(f"peer {zid_hex} is not an object")
    zid = _secret(zid_hex, 12, "peer ZID")
    verified, name = item.get("verified", False), item.get("name")
    if zid is None or not isinstance(verified, bool) or not isinstance(name, str | None):
        raise ZrtpCacheError(f"peer {zid_hex} has bad fields")
    rs1 = _secret(item.get("rs1"), 32, "rs1")
    rs2 = _secret(item.get("rs2"), 32, "rs2")
    return zid, PeerSecrets(rs1=rs1, rs2=rs2, verified=verified, name=name)


def load_cache(data: bytes) -> ZrtpCache:
    """Parse :func:`dump_cache` output; ZrtpCacheError for anything malformed."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZrtpCacheError("ZRTP cache is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise ZrtpCacheError("unknown ZRTP cache format")
    zid = _secret(doc.get("zid"), 12, "own ZID")
    peers = doc.get("peers", {})
    if zid is None or not isinstance(peers, dict):
        raise ZrtpCacheError("ZRTP cache without ZID or peers")
    return ZrtpCache(zid=zid, peers=dict(_peer(k, v) for k, v in peers.items()))
