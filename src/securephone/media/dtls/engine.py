"""A DTLS 1.2 endpoint that keys SRTP (DTLS-SRTP, RFC 5763/5764), sans I/O, over OpenSSL.

OpenSSL (through pyOpenSSL) does the DTLS; it works on memory BIOs, so this class only moves
bytes: ``receive(datagram, source, now)`` puts one datagram in, ``datagrams_to_send()`` takes
what OpenSSL wrote, cut into whole-record datagrams of at most ``mtu`` bytes (RFC 6347 §4.1.1).
``get_timer()`` / ``handle_timer(now)`` drive the handshake deadline and retransmissions;
``next_event()`` gives :class:`DtlsConnected`, :class:`DtlsFailed` or :class:`DtlsClosed`.

What is checked, and where:

* DTLS 1.2 only (RFC 6347), ECDHE cipher suites with AEAD or SHA-1/SHA-2 MACs, no compression,
  no session tickets, and no renegotiation (``OP_NO_RENEGOTIATION``: a peer's new handshake on
  an established association is refused by OpenSSL with a ``no_renegotiation`` warning alert).
* Both sides present a certificate (RFC 5763 §5: the server requests one). It is not checked
  against any CA: it must match one of the peer's SDP fingerprints (RFC 8122 §5). When the
  fingerprints are known during the handshake, a mismatch aborts it with a fatal alert
  (OpenSSL sends ``unknown_ca`` for a refused self-signed certificate); when they arrive
  later (our offer was answered with ``a=setup:active`` and the ClientHello overtook the SIP
  answer, RFC 5763 §5), the completed handshake waits for
  :meth:`DtlsEndpoint.set_remote_fingerprints` and no keys are handed out before the match.
* ``use_srtp`` (RFC 5764 §4.1): our profiles are offered (client) or chosen from (server);
  without a common one the association fails. Keys come from the exporter (§4.2).
* Input is judged before OpenSSL sees it: datagrams from another address than the peer's, or
  that are not whole DTLS records (RFC 7983 leaves 20–63 to DTLS; the demultiplexer decides
  that), are dropped and counted. After the handshake, application data is dropped and counted
  (DTLS-SRTP carries no data on the association, RFC 5764 §4.1); a close_notify ends it.

Retransmission timing: pyOpenSSL exposes ``DTLSv1_get_timeout`` / ``DTLSv1_handle_timeout``
but not ``DTLS_set_timer_cb``, so the schedule is OpenSSL's own (RFC 6347 §4.2.4.1: 1 s, doubled
on each expiry up to 60 s, given up after 12 expiries) measured on OpenSSL's clock. The engine
reports it as ``now + remaining`` on the caller's clock and calls ``DTLSv1_handle_timeout`` when
that time comes; OpenSSL retransmits only once its own timer has run out. The handshake deadline
(``handshake_timeout``) is the engine's alone, on the caller's clock.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from securephone.media.dtls import records
from securephone.media.dtls.certificate import DtlsCertificate
from securephone.media.dtls.events import (
    DtlsClosed,
    DtlsConnected,
    DtlsEvent,
    DtlsFailed,
    DtlsFailure,
)
from securephone.media.dtls.profiles import (
    DEFAULT_PROFILES,
    EXPORTER_LABEL,
    SrtpProfile,
    keying_material_length,
    split_keying_material,
)
from securephone.sdp.dtls import DtlsRole, Fingerprint, usable_fingerprints

__all__ = [
    "DEFAULT_MTU",
    "HANDSHAKE_TIMEOUT",
    "TRANSITIONS",
    "Address",
    "DtlsEndpoint",
    "DtlsState",
    "DtlsStats",
]

log = logging.getLogger(__name__)

Address = tuple[str, int]

DEFAULT_MTU = 1200  # bytes of UDP payload; safe on every path (and what WebRTC stacks use)
HANDSHAKE_TIMEOUT = 30.0  # seconds from start() to DtlsConnected
MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4
_DTLS1_2_VERSION = 0xFEFD
_MIN_TIMER_STEP = 0.001  # never ask to be woken at the same instant twice
_READ_SIZE = 65536
_CIPHERS = b":".join(
    [
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-AES256-GCM-SHA384",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES256-GCM-SHA384",
        b"ECDHE-RSA-CHACHA20-POLY1305",
        b"ECDHE-ECDSA-AES128-SHA",
        b"ECDHE-RSA-AES128-SHA",
    ]
)
_OPTIONS = SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION


class DtlsState(enum.Enum):
    """Where one DTLS association stands."""

    NEW = "new"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


S = DtlsState
TRANSITIONS: dict[DtlsState, frozenset[DtlsState]] = {
    S.NEW: frozenset({S.HANDSHAKING, S.CLOSED}),
    S.HANDSHAKING: frozenset({S.CONNECTED, S.FAILED, S.CLOSED}),
    S.CONNECTED: frozenset({S.CLOSED, S.FAILED}),
    S.CLOSED: frozenset(),
    S.FAILED: frozenset(),
}
_LIVE = frozenset({S.HANDSHAKING, S.CONNECTED})


@dataclass
class DtlsStats:
    """Counters for summaries and tests: what came in, what went out, what was dropped."""

    datagrams_received: int = 0
    datagrams_sent: int = 0
    retransmissions: int = 0
    dropped_foreign: int = 0
    """From an address other than the peer's."""
    dropped_malformed: int = 0
    """Not whole DTLS records of a known content type and version."""
    dropped_state: int = 0
    """Arrived before start (client) or after the association ended."""
    dropped_application_data: int = 0
    """Application data after the handshake: DTLS-SRTP carries none."""


class DtlsEndpoint:
    """One DTLS-SRTP association on one media port (RFC 5764), in the given role.

    ``remote_fingerprints`` are the peer's SDP fingerprints; they may come later through
    :meth:`set_remote_fingerprints`. ``remote`` is the peer's media address; a client needs it,
    a server without it takes the source of the first DTLS datagram and then keeps it.
    """

    def __init__(
        self,
        role: DtlsRole,
        certificate: DtlsCertificate,
        *,
        remote_fingerprints: Sequence[Fingerprint] = (),
        remote: Address | None = None,
        profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        _check_arguments(role, remote, profiles, handshake_timeout, mtu)
        self.role = role
        self.certificate = certificate
        self.remote = remote
        self.profiles = tuple(profiles)
        self.state = DtlsState.NEW
        self.stats = DtlsStats()
        self.handshake_timeout = handshake_timeout
        self._mtu = mtu
        self._fingerprints: tuple[Fingerprint, ...] | None = None
        self._deadline: float | None = None
        self._retransmit_at: float | None = None
        self._handshake_done = False
        self._peer_der: bytes | None = None
        self._verify_failure: str | None = None
        self._events: deque[DtlsEvent] = deque()
        self._outbox: list[tuple[bytes, Address]] = []
        self._ssl = self._connection()
        if remote_fingerprints:
            self.set_remote_fingerprints(remote_fingerprints)

    def _connection(self) -> SSL.Connection:
        context = _context(self.certificate, self.profiles)
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        connection = SSL.Connection(context, None)  # None: memory BIOs
        if self.role is DtlsRole.CLIENT:
            connection.set_connect_state()
        else:
            connection.set_accept_state()
        connection.set_ciphertext_mtu(self._mtu)
        return connection

    # -- the caller's side -------------------------------------------------------------------
    @property
    def local_fingerprint(self) -> Fingerprint:
        """Our certificate's sha-256 fingerprint, for our SDP (RFC 8122 §5)."""
        return self.certificate.fingerprint()

    @property
    def awaiting_fingerprint(self) -> bool:
        """True while a completed handshake waits for the peer's SDP fingerprints."""
        return self._handshake_done and self.state is DtlsState.HANDSHAKING

    def set_remote_fingerprints(self, fingerprints: Sequence[Fingerprint]) -> None:
        """The peer's SDP fingerprints (RFC 8122 §5); at least one with a hash we support.

        If the handshake already completed, the peer's certificate is checked now, and the
        association connects or fails with :attr:`DtlsFailure.FINGERPRINT_MISMATCH`.
        """
        if self.state not in (DtlsState.NEW, DtlsState.HANDSHAKING):
            raise RuntimeError(f"DTLS association is {self.state.value}: too late for fingerprints")
        usable = usable_fingerprints(fingerprints)
        if not usable:
            raise ValueError("no fingerprint with a supported hash function (RFC 8122 §5)")
        self._fingerprints = usable
        if self.awaiting_fingerprint:
            self._finish_handshake()
            self._flush()

    def start(self, now: float) -> None:
        """Start the handshake clock; a client sends its ClientHello (RFC 6347 §4.2.1)."""
        if self.state is not DtlsState.NEW:
            raise RuntimeError(f"DTLS association already {self.state.value}")
        self._deadline = now + self.handshake_timeout
        self._set_state(DtlsState.HANDSHAKING, f"start as {self.role.value}")
        if self.role is DtlsRole.CLIENT:
            self._handshake(now)

    def receive(self, datagram: bytes, source: Address, now: float) -> None:
        """One datagram the demultiplexer classed as DTLS (RFC 7983 §7), from ``source``."""
        self.stats.datagrams_received += 1
        if self.state is DtlsState.NEW and self.role is DtlsRole.SERVER:
            self.start(now)
        if self.state not in _LIVE:
            self.stats.dropped_state += 1
            return
        if len(datagram) > MAX_DATAGRAM or not records.is_plausible_datagram(datagram):
            self.stats.dropped_malformed += 1
            return
        if not self._from_peer(source):
            self.stats.dropped_foreign += 1
            return
        self._ssl.bio_write(bytes(datagram))
        if self._handshake_done:
            self._read(now)
        else:
            self._handshake(now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams to send since the last call, each with its destination."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> DtlsEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next (deadline or retransmission), or None."""
        if self.state not in _LIVE:
            return None
        deadline = self._deadline if self.state is DtlsState.HANDSHAKING else None
        times = [t for t in (deadline, self._retransmit_at) if t is not None]
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Fail at the handshake deadline; otherwise let OpenSSL retransmit (RFC 6347 §4.2.4)."""
        if self._past_deadline(now):
            text = f"no DTLS handshake within {self.handshake_timeout:g} s"
            self._fail(DtlsFailure.HANDSHAKE_TIMEOUT, text)
            return
        if self.state not in _LIVE or self._retransmit_at is None or now < self._retransmit_at:
            return
        try:
            if self._ssl.DTLSv1_handle_timeout():
                self.stats.retransmissions += 1
        except SSL.Error as exc:
            self._flush()
            self._fail(DtlsFailure.HANDSHAKE_TIMEOUT, f"retransmissions exhausted: {_text(exc)}")
            return
        self._flush()
        self._update_timer(now)

    def _past_deadline(self, now: float) -> bool:
        deadline = self._deadline
        return self.state is DtlsState.HANDSHAKING and deadline is not None and now >= deadline

    def close(self) -> None:
        """End the association with close_notify (RFC 5246 §7.2.1); nothing more is accepted."""
        if self.state in _LIVE:
            self._shutdown()
            self._set_state(DtlsState.CLOSED, "closed locally")
            self._events.append(DtlsClosed(by_peer=False))
        elif self.state is DtlsState.NEW:
            self._set_state(DtlsState.CLOSED, "closed before start")

    # -- OpenSSL ------------------------------------------------------------------------------
    def _handshake(self, now: float) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            self._flush()
            self._fail(DtlsFailure.PEER_CLOSED, "the peer sent close_notify during the handshake")
            return
        except SSL.Error as exc:
            self._flush()  # our alert, if OpenSSL wrote one
            self._fail(*self._classify(exc))
            return
        else:
            self._handshake_done = True
        self._flush()
        self._update_timer(now)
        if self._handshake_done:
            self._finish_handshake()

    def _read(self, now: float) -> None:
        """After the handshake: let OpenSSL process records; drop any application data."""
        while self.state in _LIVE:
            try:
                data = self._ssl.recv(_READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._closed_by_peer()
                break
            except SSL.Error as exc:
                self._flush()
                self._fail(*self._classify(exc))
                break
            self.stats.dropped_application_data += 1
            log.debug("dtls: dropped %d bytes of application data", len(data))
        self._flush()
        self._update_timer(now)

    def _finish_handshake(self) -> None:
        """Check the peer's certificate and SRTP profile, export the keys (RFC 5764 §4.2)."""
        if self._fingerprints is None:
            log.info("dtls: handshake complete, waiting for the peer's SDP fingerprint")
            return
        matched = self._check_peer()
        if matched is None:
            return
        profile = SrtpProfile.from_openssl(self._ssl.get_selected_srtp_profile())
        if profile is None or profile not in self.profiles:
            self._shutdown()
            self._fail(DtlsFailure.NO_SRTP_PROFILE, "the peer negotiated no SRTP profile of ours")
            return
        self._connected(profile, matched)

    def _check_peer(self) -> Fingerprint | None:
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        der = cert.public_bytes(serialization.Encoding.DER) if cert is not None else None
        matched = _match(self._fingerprints or (), der) if der == self._peer_der else None
        if matched is None:
            self._shutdown()
            self._fail(DtlsFailure.FINGERPRINT_MISMATCH, _mismatch_text(self._fingerprints))
        return matched

    def _connected(self, profile: SrtpProfile, matched: Fingerprint) -> None:
        length = keying_material_length(profile)
        material = self._ssl.export_keying_material(EXPORTER_LABEL, length)
        keys = split_keying_material(profile, material, is_client=self.role is DtlsRole.CLIENT)
        event = DtlsConnected(
            role=self.role,
            profile=profile,
            keys=keys,
            version=self._ssl.get_protocol_version_name(),
            cipher=self._ssl.get_cipher_name() or "",
            local_fingerprint=self.local_fingerprint,
            remote_fingerprint=matched,
        )
        self._set_state(DtlsState.CONNECTED, f"{event.version} {event.cipher} {profile.value}")
        self._events.append(event)

    def _verify(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """OpenSSL's verify callback: no CA, only the fingerprint (RFC 5763 §5, RFC 8122 §5)."""
        if depth != 0:
            return True  # a chain above the peer's certificate is neither needed nor trusted
        try:
            der = cert.to_cryptography().public_bytes(serialization.Encoding.DER)
        except ValueError:
            self._verify_failure = "the peer's certificate cannot be read"
            return False
        self._peer_der = der
        if self._fingerprints is None or _match(self._fingerprints, der) is not None:
            return True
        self._verify_failure = _mismatch_text(self._fingerprints)
        return False

    def _classify(self, exc: SSL.Error) -> tuple[DtlsFailure, str]:
        if self._verify_failure is not None:
            return DtlsFailure.FINGERPRINT_MISMATCH, self._verify_failure
        text = _text(exc)
        if "alert" in text:
            return DtlsFailure.PEER_ALERT, text
        if "srtp" in text.lower():
            return DtlsFailure.NO_SRTP_PROFILE, text
        return DtlsFailure.HANDSHAKE_ERROR, text

    def _closed_by_peer(self) -> None:
        self._shutdown()  # answer with our own close_notify
        if self.state is DtlsState.CONNECTED:
            self._set_state(DtlsState.CLOSED, "close_notify from the peer")
            self._events.append(DtlsClosed(by_peer=True))
        else:
            self._fail(DtlsFailure.PEER_CLOSED, "the peer sent close_notify during the handshake")

    def _shutdown(self) -> None:
        with contextlib.suppress(SSL.Error):  # nothing to say on a broken association
            self._ssl.shutdown()
        self._flush()

    def _flush(self) -> None:
        data = b""
        while True:
            try:
                data += self._ssl.bio_read(_READ_SIZE)
            except SSL.WantReadError:
                break
        if not data or self.remote is None:
            return
        found = records.split_records(data)
        for datagram in records.pack_datagrams(found if found else [data], self._mtu):
            self._outbox.append((datagram, self.remote))
            self.stats.datagrams_sent += 1

    def _update_timer(self, now: float) -> None:
        remaining = self._ssl.DTLSv1_get_timeout()
        if remaining is None:
            self._retransmit_at = None
        else:
            self._retransmit_at = now + max(float(remaining), _MIN_TIMER_STEP)

    def _from_peer(self, source: Address) -> bool:
        if self.remote is None:
            self.remote = source  # a server learns the peer from its first DTLS datagram
            log.info("dtls: peer is %s:%d", *source)
        return source == self.remote

    # -- state --------------------------------------------------------------------------------
    def _fail(self, reason: DtlsFailure, text: str) -> None:
        if self.state not in _LIVE:
            return
        self._set_state(DtlsState.FAILED, f"{reason.value}: {text}")
        self._events.append(DtlsFailed(reason, text))
        self._retransmit_at = None

    def _set_state(self, new: DtlsState, reason: str) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"dtls: illegal {old.value} -> {new.value}")
        log.info("dtls %s: %s -> %s (%s)", self.role.value, old.value, new.value, reason)
        self.state = new


def _check_arguments(
    role: DtlsRole,
    remote: Address | None,
    profiles: Sequence[SrtpProfile],
    handshake_timeout: float,
    mtu: int,
) -> None:
    if role is DtlsRole.CLIENT and remote is None:
        raise ValueError("a DTLS client needs the peer's address")
    if not profiles or len(set(profiles)) != len(profiles):
        raise ValueError("give one or more distinct SRTP protection profiles")
    if handshake_timeout <= 0:
        raise ValueError("the handshake timeout must be positive")
    if not 256 <= mtu <= MAX_DATAGRAM:
        raise ValueError(f"the MTU must be 256..{MAX_DATAGRAM} bytes")


def _context(certificate: DtlsCertificate, profiles: Sequence[SrtpProfile]) -> SSL.Context:
    """DTLS 1.2 only, our certificate, use_srtp with our profiles in order (RFC 5764 §4.1.1)."""
    context = SSL.Context(SSL.DTLS_METHOD)
    context.set_min_proto_version(_DTLS1_2_VERSION)
    context.set_max_proto_version(_DTLS1_2_VERSION)
    context.set_options(_OPTIONS)
    context.set_cipher_list(_CIPHERS)
    context.use_certificate(certificate.certificate)
    context.use_privatekey(certificate.private_key)
    context.check_privatekey()
    context.set_tlsext_use_srtp(b":".join(p.value.encode("ascii") for p in profiles))
    return context


def _match(fingerprints: Sequence[Fingerprint], der: bytes | None) -> Fingerprint | None:
    """The first fingerprint the certificate matches (RFC 8122 §5: any offered one will do)."""
    if der is None:
        return None
    return next((fp for fp in fingerprints if fp.matches(der)), None)


def _mismatch_text(fingerprints: Sequence[Fingerprint] | None) -> str:
    names = sorted({fp.algorithm for fp in fingerprints or ()})
    return f"the peer's certificate matches none of its SDP fingerprints ({', '.join(names)})"


def _text(exc: SSL.Error) -> str:
    """OpenSSL's reasons from a pyOpenSSL error, e.g. 'sslv3 alert bad certificate'."""
    errors = exc.args[0] if exc.args else None
    if isinstance(errors, list) and errors:
        return "; ".join(str(item[-1]) for item in errors if isinstance(item, tuple))
    return str(exc) or type(exc).__name__
