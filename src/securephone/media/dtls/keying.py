"""DTLS-SRTP as a media-path keying (``securephone.media.keying.PathKeying``) over a DtlsEndpoint.

The SDP side (``media.negotiation``) creates one :class:`DtlsKeying` per call when DTLS-SRTP is
chosen and :meth:`DtlsKeying.configure` s it once the offer/answer has settled who is the DTLS
client (``a=setup``, RFC 5763 §5), which fingerprints the peer's certificate must match
(RFC 8122 §5) and where the peer's media is. From then on it is driven like every path keying:
datagrams in with their source, datagrams out to the peer's RTP address, a timer, events.

Whether the peer's fingerprint reached us over integrity-protected signalling (SIP over TLS on
the first hop) is recorded: over plaintext SIP it is still used — a passive listener learns
nothing — but an active attacker on the signalling path could have replaced it (RFC 5763 §8),
and the call summary says so (``fingerprint_integrity``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from securephone.media.keying import (
    Address,
    KeyingEvent,
    KeyingFailed,
    KeyingMethod,
    KeysAgreed,
)
from securephone.sdp.dtls import DtlsRole, Fingerprint

from .certificate import DtlsCertificate
from .engine import HANDSHAKE_TIMEOUT, DtlsEndpoint, DtlsState
from .events import DtlsClosed, DtlsConnected, DtlsFailed, DtlsFailure
from .profiles import DEFAULT_PROFILES, SrtpProfile

__all__ = ["DtlsKeying"]

log = logging.getLogger(__name__)


class DtlsKeying:
    """One call's DTLS-SRTP association on its RTP port (RFC 5763, RFC 5764)."""

    method = KeyingMethod.DTLS

    def __init__(
        self,
        certificate: DtlsCertificate,
        *,
        profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES,
        handshake_timeout: float | None = None,
    ) -> None:
        self.certificate = certificate
        self.profiles = tuple(profiles)
        self.handshake_timeout = handshake_timeout or HANDSHAKE_TIMEOUT
        self.endpoint: DtlsEndpoint | None = None
        self.remote_fingerprints: tuple[Fingerprint, ...] = ()
        self.fingerprint_integrity: bool | None = None
        self.connected: DtlsConnected | None = None
        self.failure: str | None = None
        self.closed_by_peer = False
        self._started_at: float | None = None

    @property
    def local_fingerprint(self) -> Fingerprint:
        """Our certificate's sha-256 fingerprint, for ``a=fingerprint`` (RFC 8122 §5)."""
        return self.certificate.fingerprint()

    @property
    def role(self) -> DtlsRole | None:
        """Our DTLS role once the offer/answer decided it."""
        return self.endpoint.role if self.endpoint is not None else None

    def configure(
        self,
        role: DtlsRole,
        fingerprints: Sequence[Fingerprint],
        remote: Address,
        *,
        integrity: bool,
    ) -> None:
        """Settle role, peer fingerprints and address (RFC 5763 §5); once per association.

        A later offer/answer (hold, resume) keeps the association: it is not reconfigured.
        """
        if self.endpoint is not None:
            if tuple(fingerprints) != self.remote_fingerprints:
                log.warning("dtls: the peer's fingerprint changed in a re-offer; keeping the first")
            return
        self.remote_fingerprints = tuple(fingerprints)
        self.fingerprint_integrity = integrity
        self.endpoint = DtlsEndpoint(
            role,
            self.certificate,
            remote_fingerprints=fingerprints,
            remote=remote,
            profiles=self.profiles,
            handshake_timeout=self.handshake_timeout,
        )
        if not integrity:
            log.warning(
                "dtls: the peer's fingerprint came over plaintext signalling: not integrity-protected"
            )

    # -- PathKeying --------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        endpoint = self.endpoint
        if endpoint is None or self._started_at is not None:
            return
        self._started_at = now
        if endpoint.state is DtlsState.NEW:  # a server may have started on an early ClientHello
            endpoint.start(now)  # a client's ClientHello goes out now (RFC 6347 §4.2.1)

    def receive(self, datagram: bytes, source: Address, now: float) -> None:
        if self.endpoint is not None:
            self.endpoint.receive(datagram, source, now)

    def datagrams_to_send(self) -> list[bytes]:
        if self.endpoint is None:
            return []
        return [datagram for datagram, _ in self.endpoint.datagrams_to_send()]

    def get_timer(self) -> float | None:
        return self.endpoint.get_timer() if self.endpoint is not None else None

    def handle_timer(self, now: float) -> None:
        if self.endpoint is not None:
            self.endpoint.handle_timer(now)

    def next_event(self) -> KeyingEvent | None:
        if self.endpoint is None:
            return None
        while (event := self.endpoint.next_event()) is not None:
            mapped = self._map(event)
            if mapped is not None:
                return mapped
        return None

    def _map(self, event: DtlsConnected | DtlsFailed | DtlsClosed) -> KeyingEvent | None:
        if isinstance(event, DtlsConnected):
            self.connected = event
            suite = event.profile.suite.name
            keys = event.keys
            return KeysAgreed(
                self.method, suite, keys.local_key_salt, keys.remote_key_salt, self.summary()
            )
        if isinstance(event, DtlsFailed):
            self.failure = _failure_text(event)
            return KeyingFailed(self.method, self.failure)
        self.closed_by_peer = event.by_peer
        return None

    def srtp_authenticated(self) -> None:
        """DTLS needs no confirmation from SRTP: the handshake already authenticated the peer."""

    def summary(self) -> dict[str, object]:
        endpoint = self.endpoint
        data: dict[str, object] = {
            "method": self.method.label,
            "state": endpoint.state.value if endpoint is not None else "new",
            "role": endpoint.role.value if endpoint is not None else None,
            "failure": self.failure,
            "local_fingerprint": str(self.local_fingerprint),
            "remote_fingerprints": [str(fp) for fp in self.remote_fingerprints],
            "fingerprint_integrity": self.fingerprint_integrity,
            "dropped": _dropped(endpoint),
        }
        connected = self.connected
        if connected is not None:
            data.update(
                version=connected.version,
                cipher=connected.cipher,
                srtp_profile=connected.profile.value,
                srtp_suite=connected.profile.suite.name,
                remote_fingerprint=str(connected.remote_fingerprint),
            )
        return data

    def close(self) -> None:
        """The call ends: close_notify to the peer (RFC 5246 §7.2.1)."""
        if self.endpoint is not None:
            self.endpoint.close()


def _failure_text(event: DtlsFailed) -> str:
    if event.reason is DtlsFailure.FINGERPRINT_MISMATCH:
        return f"DTLS-SRTP failed: fingerprint mismatch: {event.text}"
    return f"DTLS-SRTP failed ({event.reason.value}): {event.text}"


def _dropped(endpoint: DtlsEndpoint | None) -> int:
    if endpoint is None:
        return 0
    stats = endpoint.stats
    return (
        stats.dropped_foreign
        + stats.dropped_malformed
        + stats.dropped_state
        + stats.dropped_application_data
    )
