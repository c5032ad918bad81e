"""Two DTLS-SRTP endpoints wired together in memory, with a fake clock and a lossy link."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from securephone.media.dtls import (
    DtlsCertificate,
    DtlsEndpoint,
    DtlsEvent,
    DtlsRole,
    Fingerprint,
    SrtpProfile,
)
from securephone.media.dtls.profiles import DEFAULT_PROFILES
from securephone.pki import create_media_certificate

CLIENT_ADDR = ("127.0.0.1", 40000)
SERVER_ADDR = ("127.0.0.1", 40002)

# A filter sees (sender role, datagram index from that sender, datagram): True to deliver it.
LinkFilter = Callable[[DtlsRole, int, bytes], bool]


@functools.cache
def certificate(name: str) -> DtlsCertificate:
    """One media certificate per name, made once per test session (key generation is slow-ish)."""
    return DtlsCertificate.from_issued(create_media_certificate(f"test {name}"))


@dataclass
class Pair:
    """A DTLS client and server; :meth:`pump` carries datagrams until nothing moves."""

    client: DtlsEndpoint
    server: DtlsEndpoint
    link: LinkFilter = lambda role, index, data: True
    sent: dict[DtlsRole, list[bytes]] = field(
        default_factory=lambda: {DtlsRole.CLIENT: [], DtlsRole.SERVER: []}
    )

    def pump(self, now: float, rounds: int = 20) -> None:
        for _ in range(rounds):
            moved = self._carry(self.client, self.server, CLIENT_ADDR, now)
            moved |= self._carry(self.server, self.client, SERVER_ADDR, now)
            if not moved:
                return

    def _carry(
        self, src: DtlsEndpoint, dst: DtlsEndpoint, addr: tuple[str, int], now: float
    ) -> bool:
        datagrams = src.datagrams_to_send()
        for data, _dest in datagrams:
            log = self.sent[src.role]
            log.append(data)
            if self.link(src.role, len(log) - 1, data):
                dst.receive(data, addr, now)
        return bool(datagrams)

    def events(self, endpoint: DtlsEndpoint) -> list[DtlsEvent]:
        found = []
        while (event := endpoint.next_event()) is not None:
            found.append(event)
        return found


def make_pair(
    *,
    client_profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES,
    server_profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES,
    client_expects: Sequence[Fingerprint] | None = None,
    server_expects: Sequence[Fingerprint] | None = None,
    link: LinkFilter | None = None,
    handshake_timeout: float = 30.0,
) -> Pair:
    """Client "alice" and server "bob", each expecting the other's true fingerprint unless told."""
    alice, bob = certificate("alice"), certificate("bob")
    client = DtlsEndpoint(
        DtlsRole.CLIENT,
        alice,
        remote=SERVER_ADDR,
        remote_fingerprints=[bob.fingerprint()] if client_expects is None else client_expects,
        profiles=client_profiles,
        handshake_timeout=handshake_timeout,
    )
    server = DtlsEndpoint(
        DtlsRole.SERVER,
        bob,
        remote=CLIENT_ADDR,
        remote_fingerprints=[alice.fingerprint()] if server_expects is None else server_expects,
        profiles=server_profiles,
        handshake_timeout=handshake_timeout,
    )
    pair = Pair(client, server)
    if link is not None:
        pair.link = link
    return pair


def rtp_packet(seq: int, ssrc: int = 0x1234ABCD, payload: bytes = b"\x55" * 160) -> bytes:
    """A minimal RTP packet (RFC 3550 §5.1), PCMU."""
    header = bytes([0x80, 0x00]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
    return header + ssrc.to_bytes(4, "big") + payload
