"""Trust on first use for SIP-TLS servers: DATA_DIR/known_peers.json, like SSH's known_hosts.

The first TLS connection to a ``host:port`` records the sha-256 of the server certificate's
SubjectPublicKeyInfo (the key, not the certificate: a renewal with the same key is no change;
the form of RFC 7469 §2.4 pins). Later connections compare against it:

- ``off``: nothing is recorded or compared;
- ``tofu`` (default): a different key raises an alarm but the connection goes on (the pin stays
  the old one until the user accepts the new key, so the alarm repeats on every connection);
- ``strict``: a different key refuses the connection before a single SIP byte is sent.

The decision (:meth:`KnownPeers.check`) is pure; :func:`load` and :meth:`KnownPeers.save` are
the only file access (``atomic_write``, mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from securephone.store.files import atomic_write

__all__ = [
    "KNOWN_PEERS_NAME",
    "KnownPeers",
    "KnownPeersError",
    "PinCheck",
    "PinMode",
    "PinVerdict",
    "load",
    "spki_sha256",
]

KNOWN_PEERS_NAME = "known_peers.json"
_VERSION = 1
# servers pinned at most: a call's far end can name the next hop of our requests (Contact,
# Record-Route), so strangers could grow the table; when it is full, new servers are connected
# unpinned (a warning says so) and no pin already made is ever pushed out
MAX_PINS = 1000


class PinMode(StrEnum):
    """``[tls] pinning``."""

    OFF = "off"
    TOFU = "tofu"
    STRICT = "strict"


class PinVerdict(Enum):
    """What a server's key is, compared with what we knew of it."""

    NEW = "new"  # first use: recorded now
    UNPINNED = "unpinned"  # first use, but the table is full: not recorded
    MATCH = "match"
    CHANGED = "changed"
    UNCHECKED = "unchecked"  # pinning is off


class KnownPeersError(Exception):
    """known_peers.json cannot be read: never silently treated as empty (that would re-pin)."""


@dataclass(frozen=True)
class PinCheck:
    """One comparison: the verdict, what was pinned and what the server showed."""

    peer: str
    verdict: PinVerdict
    seen: str
    pinned: str | None = None
    refused: bool = False

    @property
    def message(self) -> str:
        """The alarm text users see (empty unless the key changed)."""
        if self.verdict is not PinVerdict.CHANGED:
            return ""
        action = "connection refused" if self.refused else "connected anyway (pinning is tofu)"
        return (
            f"the TLS key of {self.peer} changed since first use: somebody may be in the middle, "
            f"or the server got a new key; {action}. Pinned SPKI sha-256 {self.pinned}, now "
            f"{self.seen}"
        )


def spki_sha256(der_certificate: bytes) -> str:
    """Base64 sha-256 of the certificate's SubjectPublicKeyInfo (the RFC 7469 pin form)."""
    cert = x509.load_der_x509_certificate(der_certificate)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def peer_key(host: str, port: int) -> str:
    """``host:port`` (IPv6 literals bracketed), the table's key."""
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{host}:{port}"


@dataclass
class KnownPeers:
    """The pins (``host:port`` -> SPKI sha-256) and the policy that applies them."""

    path: Path | None = None
    mode: PinMode = PinMode.TOFU
    pins: dict[str, str] = field(default_factory=dict)
    max_pins: int = MAX_PINS

    def check(self, host: str, port: int, der_certificate: bytes) -> PinCheck:
        """Compare the server's key with the pin; a first use is recorded (call :meth:`save`)."""
        peer = peer_key(host, port)
        seen = spki_sha256(der_certificate)
        if self.mode is PinMode.OFF:
            return PinCheck(peer, PinVerdict.UNCHECKED, seen)
        pinned = self.pins.get(peer)
        if pinned is None:
            if len(self.pins) >= self.max_pins:
                return PinCheck(peer, PinVerdict.UNPINNED, seen)
            self.pins[peer] = seen
            return PinCheck(peer, PinVerdict.NEW, seen)
        if pinned == seen:
            return PinCheck(peer, PinVerdict.MATCH, seen, pinned)
        refused = self.mode is PinMode.STRICT
        return PinCheck(peer, PinVerdict.CHANGED, seen, pinned, refused)

    def trust(self, peer: str, seen: str) -> None:
        """The user accepted a server's new key: pin it instead of the old one."""
        self.pins[peer] = seen

    def forget(self, peer: str) -> bool:
        """Drop a pin (the next connection pins afresh); True when there was one."""
        return self.pins.pop(peer, None) is not None

    def to_json(self) -> bytes:
        data = {"version": _VERSION, "peers": dict(sorted(self.pins.items()))}
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")

    def save(self) -> None:
        """Write the pins atomically, readable by the owner only."""
        if self.path is not None:
            atomic_write(self.path, self.to_json(), 0o600)


def load(path: Path, mode: PinMode) -> KnownPeers:
    """The pins in ``path`` (none when the file does not exist); KnownPeersError when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return KnownPeers(path, mode)
    except OSError as exc:
        raise KnownPeersError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
        peers = data["peers"]
        if not isinstance(peers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in peers.items()
        ):
            raise ValueError("peers must map host:port to a fingerprint")
    except (ValueError, KeyError, TypeError) as exc:
        raise KnownPeersError(f"{path} is damaged ({exc}); fix or remove it") from None
    return KnownPeers(path, mode, dict(peers))
