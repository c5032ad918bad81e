"""Events a :class:`~.session.ZrtpSession` emits (frozen dataclasses, h11 style).

Key material is excluded from ``repr`` so that logging an event never shows a key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .algorithms import Algorithms

__all__ = [
    "CacheUpdated",
    "DropReason",
    "Event",
    "FailureReason",
    "PacketDropped",
    "ReceiveKeyReady",
    "Role",
    "SecureOn",
    "ZrtpFailed",
]


class Role(Enum):
    """Who sent the surviving Commit (RFC 6189 §4.2); unrelated to SIP caller/callee."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


class FailureReason(Enum):
    """Why a key agreement was abandoned (RFC 6189 §5.9, Table 8, and timeouts of §6)."""

    TIMEOUT = "timeout"
    HELLO_HASH_MISMATCH = "hello-hash-mismatch"
    HVI_MISMATCH = "hvi-mismatch"
    BAD_PUBLIC_VALUE = "bad-public-value"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    EQUAL_ZID = "equal-zid"
    NO_SHARED_SECRET = "no-shared-secret"
    PEER_ERROR = "peer-error"
    SEQUENCE_EXHAUSTED = "sequence-exhausted"


class DropReason(Enum):
    """Why one received packet was discarded without changing the session (RFC 6189 §5, §9)."""

    MALFORMED = "malformed"
    WRONG_SSRC = "wrong-ssrc"
    REPLAYED = "replayed-or-out-of-order"
    UNEXPECTED = "unexpected-in-state"
    HELLO_HASH_MISMATCH = "hello-hash-mismatch"
    CHANGED_HELLO = "changed-hello"
    UNSUPPORTED_VERSION = "unsupported-version"
    HASH_CHAIN = "broken-hash-chain"
    BAD_MAC = "bad-mac"
    BAD_CONFIRM = "bad-confirm"
    GOCLEAR_REFUSED = "goclear-refused"
    SAS_RELAY_IGNORED = "sasrelay-ignored"


@dataclass(frozen=True)
class PacketDropped:
    """A received datagram was discarded; ``detail`` says which check failed."""

    reason: DropReason
    detail: str


@dataclass(frozen=True)
class ReceiveKeyReady:
    """The peer's SRTP master key ‖ salt may be installed for receiving (RFC 6189 §4.6).

    The initiator gets it on Confirm1, before it may send SRTP (on Conf2ACK); calling
    :meth:`~.session.ZrtpSession.srtp_authenticated` when a packet authenticates with it
    counts as Conf2ACK (RFC 6189 §4.6).
    """

    srtp_suite: str
    remote_key: bytes = field(repr=False)


@dataclass(frozen=True)
class SecureOn:
    """The key agreement completed (RFC 6189 §4.6, §7): SRTP keys for both directions and SAS.

    ``local_key``/``remote_key`` are master key ‖ master salt for ``srtp_suite`` (ours to
    protect, the peer's to unprotect). ``previously_verified`` = our cached SAS-verified flag
    AND the peer's V flag (RFC 6189 §7.1). ``cache_mismatch``: we held a retained secret for
    this peer but it did not match — the SAS must be compared (RFC 6189 §4.3.2).
    ``rtcp_tag_caveat``: HS32 was negotiated; libsrtp keeps an 80-bit SRTCP tag while
    Linphone uses 32 bits, so SRTCP will not authenticate with such peers.
    """

    role: Role
    sas: str
    sas_type: str
    algorithms: Algorithms
    peer_zid: bytes
    srtp_suite: str
    local_key: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)
    previously_verified: bool = False
    peer_verified_flag: bool = False
    cache_mismatch: bool = False
    rtcp_tag_caveat: bool = False


@dataclass(frozen=True)
class CacheUpdated:
    """The retained-secret cache changed for ``peer_zid``: the shell should persist it."""

    peer_zid: bytes


@dataclass(frozen=True)
class ZrtpFailed:
    """The key agreement failed; ``error_code`` is the RFC 6189 Table 8 code sent, if any."""

    reason: FailureReason
    text: str
    error_code: int | None = None


Event = PacketDropped | ReceiveKeyReady | SecureOn | CacheUpdated | ZrtpFailed
