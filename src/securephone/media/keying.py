"""Media key agreement beside each other: SDES (keys in SDP), ZRTP and DTLS-SRTP (keys agreed in
the media path, end to end), all handing keys to the one SRTP layer.

SDES is settled by the offer/answer (``media.srtp``). ZRTP and DTLS-SRTP run on the RTP port
after the offer/answer: each is a ``PathKeying`` — datagrams in with their source, datagrams out,
a timer, events — driven by the ``MediaStream`` that demultiplexes the port by first byte
(RFC 7983). Until a path keying has agreed keys, a stream whose encryption is mandatory sends and
accepts no RTP at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

Address = tuple[str, int]
MAX_ALARMS = 16  # distinct alarms a call keeps (a peer can repeat what raises them at will)


def add_alarm(alarms: list[str], text: str) -> bool:
    """Keep ``text`` among a call's alarms once; True when it is new (and kept: at most
    ``MAX_ALARMS``, the first ones), so callers log and announce it only then."""
    if text in alarms or len(alarms) >= MAX_ALARMS:
        return False
    alarms.append(text)
    return True


class KeyingMethod(Enum):
    """How a call's SRTP keys are agreed."""

    SDES = "sdes"  # RFC 4568: in the SDP, readable by every SIP server on the path
    ZRTP = "zrtp"  # RFC 6189: Diffie-Hellman in the media path, SAS to compare
    DTLS = "dtls"  # RFC 5763/5764: DTLS handshake in the media path, fingerprints in SDP

    @property
    def end_to_end(self) -> bool:
        """No server that relays the signalling can learn the keys."""
        return self is not KeyingMethod.SDES

    @property
    def label(self) -> str:
        """The name users see (``dtls-srtp`` rather than ``dtls``)."""
        return "dtls-srtp" if self is KeyingMethod.DTLS else self.value


def parse_methods(names: Sequence[str]) -> tuple[KeyingMethod, ...]:
    """Keying preference from configuration names; ValueError for unknown or repeated ones."""
    methods = tuple(KeyingMethod(name) for name in names)
    if not methods or len(set(methods)) != len(methods):
        raise ValueError("keying needs at least one of sdes, zrtp, dtls, each once")
    return methods


@dataclass(frozen=True)
class KeysAgreed:
    """The path keying agreed SRTP keys: ours to protect, the peer's to unprotect.

    ``details`` is what users see (SAS, fingerprints, algorithms); never key material.
    """

    method: KeyingMethod
    suite: str
    local_key: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyingFailed:
    """The path keying gave up; with mandatory encryption the call must end."""

    method: KeyingMethod
    reason: str


@dataclass(frozen=True)
class KeyingUpdated:
    """Something users see changed (e.g. the SAS was confirmed), or state to persist changed."""

    method: KeyingMethod
    details: Mapping[str, object] = field(default_factory=dict)
    persist: bool = False  # the shell should save the keying's state (e.g. the ZRTP cache)


KeyingEvent = KeysAgreed | KeyingFailed | KeyingUpdated


class PathKeying(Protocol):
    """A key agreement that runs on the media port (ZRTP, DTLS-SRTP), sans-I/O."""

    method: KeyingMethod

    def start(self, now: float) -> None:
        """The media path is open: begin (send Hello / ClientHello as the role wants)."""

    def receive(self, datagram: bytes, source: Address, now: float) -> None:
        """A datagram of this keying's kind from the media port."""

    def datagrams_to_send(self) -> list[bytes]:
        """Datagrams for the peer's media address, in order."""
        ...

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next."""
        ...

    def handle_timer(self, now: float) -> None:
        """Retransmissions and deadlines."""

    def next_event(self) -> KeyingEvent | None:
        """What happened, in order."""
        ...

    def srtp_authenticated(self) -> None:
        """An SRTP packet from the peer authenticated with the agreed key."""

    def summary(self) -> dict[str, object]:
        """What users see of this keying now (no key material)."""
        ...

    def close(self) -> None:
        """The call ends: say goodbye if the protocol has a way to."""
