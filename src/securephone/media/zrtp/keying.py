"""ZRTP as a media-path keying (``securephone.media.keying.PathKeying``) over a ``ZrtpSession``."""

from __future__ import annotations

from dataclasses import asdict

from securephone.media.keying import (
    Address,
    KeyingEvent,
    KeyingFailed,
    KeyingMethod,
    KeyingUpdated,
    KeysAgreed,
    add_alarm,
)

from .cache import ZrtpCache
from .events import CacheUpdated, PacketDropped, SecureOn, ZrtpFailed
from .session import ZrtpConfig, ZrtpSession


class ZrtpKeying:
    """One call's ZRTP stream: SAS, retained secrets and the SRTP keys it agrees (RFC 6189)."""

    method = KeyingMethod.ZRTP

    def __init__(self, cache: ZrtpCache, ssrc: int, config: ZrtpConfig | None = None) -> None:
        self.session = ZrtpSession(config or ZrtpConfig(), cache, ssrc)
        self.secure: SecureOn | None = None
        self.sas_verified: bool | None = None  # the user's verdict on this call's SAS
        self.failure: str | None = None
        self.dropped = 0
        self.peer_hello_hash_signalled = False
        self.peer_hello_hash: str | None = None
        self.alarms: list[str] = []  # security alarms users must see (never key material)
        self._pending: list[KeyingEvent] = []
        self._started = False

    @property
    def sas(self) -> str | None:
        """The short authentication string to read out, once the keys are agreed (RFC 6189 §7)."""
        return self.secure.sas if self.secure is not None else None

    @property
    def sdp_zrtp_hash(self) -> str:
        """Our ``a=zrtp-hash`` value (RFC 6189 §8.1)."""
        return self.session.sdp_zrtp_hash

    def set_peer_hello_hash(self, value: str) -> None:
        """The peer's ``a=zrtp-hash``: its Hello must match it (RFC 6189 §8.1)."""
        self.session.set_peer_hello_hash(value)
        self.peer_hello_hash_signalled = True
        self.peer_hello_hash = value

    def raise_alarm(self, text: str) -> None:
        """Something tried to weaken this call's keying (e.g. a downgrade re-INVITE): users
        must see it; listeners hear it as a ``KeyingUpdated``."""
        if add_alarm(self.alarms, text):  # each alarm once, however often it is raised
            self._pending.append(KeyingUpdated(self.method, self.summary()))

    # -- PathKeying --------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if not self._started:
            self._started = True
            self.session.start(now)

    def receive(self, datagram: bytes, source: Address, now: float) -> None:
        if self._started:
            self.session.receive(datagram, source, now)

    def datagrams_to_send(self) -> list[bytes]:
        return self.session.datagrams_to_send()

    def get_timer(self) -> float | None:
        return self.session.get_timer()

    def handle_timer(self, now: float) -> None:
        self.session.handle_timer(now)

    def next_event(self) -> KeyingEvent | None:
        if self._pending:
            return self._pending.pop(0)
        while (event := self.session.next_event()) is not None:
            mapped = self._map(event)
            if mapped is not None:
                return mapped
        return None

    def _map(self, event: object) -> KeyingEvent | None:
        if isinstance(event, SecureOn):
            self.secure = event
            return KeysAgreed(
                self.method, event.srtp_suite, event.local_key, event.remote_key, self.summary()
            )
        if isinstance(event, CacheUpdated):
            return KeyingUpdated(self.method, self.summary(), persist=True)
        if isinstance(event, ZrtpFailed):
            self.failure = f"ZRTP failed: {event.text}"
            return KeyingFailed(self.method, self.failure)
        if isinstance(event, PacketDropped):
            self.dropped += 1
        return None

    def srtp_authenticated(self) -> None:
        self.session.srtp_authenticated()

    def confirm_sas(self, verified: bool) -> None:
        """The user compared the SAS with the far end: matched (True) or not (False)."""
        self.session.sas_verified(verified)
        self.sas_verified = verified

    def summary(self) -> dict[str, object]:
        secure = self.secure
        data: dict[str, object] = {
            "method": self.method.label,
            "state": self.session.state.value,
            "failure": self.failure,
            "dropped": self.dropped,
            "pings_ignored": self.session.pings_ignored,
            "zrtp_hash_in_sdp": self.peer_hello_hash_signalled,
            "alarms": list(self.alarms),
        }
        if secure is not None:
            data.update(
                sas=secure.sas,
                sas_type=secure.sas_type.strip(),
                sas_verified=self.sas_verified,
                previously_verified=secure.previously_verified,
                cache_mismatch=secure.cache_mismatch,
                role=secure.role.value,
                peer_zid=secure.peer_zid.hex(),
                # the 4-character type names without their padding ("B32 " is B32)
                algorithms={k: v.strip() for k, v in asdict(secure.algorithms).items()},
                srtp_suite=secure.srtp_suite,
            )
        return data

    def close(self) -> None:
        """ZRTP has no goodbye of its own: the call's BYE ends it."""
