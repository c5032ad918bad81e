"""Events out of a DTLS-SRTP endpoint: one frozen dataclass each, read with ``next_event()``."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from securephone.media.dtls.profiles import SrtpKeys, SrtpProfile
from securephone.sdp.dtls import DtlsRole, Fingerprint

__all__ = ["DtlsClosed", "DtlsConnected", "DtlsEvent", "DtlsFailed", "DtlsFailure"]


class DtlsFailure(enum.Enum):
    """Why a DTLS association failed."""

    HANDSHAKE_TIMEOUT = "handshake-timeout"
    """The handshake did not complete before its deadline (or OpenSSL gave up retransmitting)."""
    FINGERPRINT_MISMATCH = "fingerprint-mismatch"
    """The peer's certificate matches none of its SDP fingerprints (RFC 5763 §5, RFC 8122 §5)."""
    NO_SRTP_PROFILE = "no-srtp-profile"
    """No common ``use_srtp`` protection profile, or the peer sent no ``use_srtp`` (RFC 5764 §4.1)."""
    PEER_ALERT = "peer-alert"
    """The peer ended the handshake or association with a fatal alert."""
    HANDSHAKE_ERROR = "handshake-error"
    """The handshake failed locally (bad message, no certificate, no common cipher ...)."""
    PEER_CLOSED = "peer-closed"
    """The peer sent close_notify before the handshake completed."""


@dataclass(frozen=True)
class DtlsConnected:
    """The handshake completed, the peer's certificate matched its fingerprint, SRTP is keyed.

    ``keys`` (RFC 5764 §4.2) never appear in ``repr``; hand them to the SRTP layer with
    ``keys.context()``.
    """

    role: DtlsRole
    profile: SrtpProfile
    keys: SrtpKeys
    version: str
    cipher: str
    local_fingerprint: Fingerprint
    remote_fingerprint: Fingerprint
    """The peer certificate's fingerprint with the hash function that matched its SDP."""


@dataclass(frozen=True)
class DtlsFailed:
    """The association failed; nothing more is sent or accepted."""

    reason: DtlsFailure
    text: str


@dataclass(frozen=True)
class DtlsClosed:
    """The association ended with close_notify (RFC 5246 §7.2.1), sent by us or by the peer."""

    by_peer: bool


DtlsEvent = DtlsConnected | DtlsFailed | DtlsClosed
