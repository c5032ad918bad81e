"""DTLS-SRTP endpoints in memory: handshakes, keys through libsrtp, failures, hostile input."""

from __future__ import annotations

import random

import pytest

from securephone.media.dtls import (
    DtlsClosed,
    DtlsConnected,
    DtlsEndpoint,
    DtlsFailed,
    DtlsFailure,
    DtlsRole,
    DtlsState,
    Fingerprint,
    SrtpProfile,
)
from tests.media.dtls.helpers import (
    CLIENT_ADDR,
    SERVER_ADDR,
    certificate,
    make_pair,
    rtp_packet,
)


def connected(events: list[object]) -> DtlsConnected:
    assert len(events) == 1 and isinstance(events[0], DtlsConnected), events
    return events[0]


def failed(events: list[object]) -> DtlsFailed:
    assert len(events) == 1 and isinstance(events[0], DtlsFailed), events
    return events[0]


@pytest.mark.parametrize("profile", list(SrtpProfile))
def test_handshake_keys_both_directions_through_libsrtp(profile: SrtpProfile) -> None:
    pair = make_pair(client_profiles=[profile], server_profiles=[profile])
    pair.client.start(0.0)
    pair.pump(0.0)
    client, server = connected(pair.events(pair.client)), connected(pair.events(pair.server))
    assert client.profile is server.profile is profile
    assert (client.role, server.role) == (DtlsRole.CLIENT, DtlsRole.SERVER)
    assert client.version == server.version == "DTLSv1.2"
    assert client.keys.local_key_salt == server.keys.remote_key_salt
    assert client.keys.remote_key_salt == server.keys.local_key_salt
    assert client.keys.local_key_salt != client.keys.remote_key_salt
    assert len(client.keys.local_key_salt) == profile.suite.key_salt_length
    c_ctx, s_ctx = client.keys.context(), server.keys.context()
    for seq in range(1, 4):
        packet = rtp_packet(seq)
        assert s_ctx.unprotect(c_ctx.protect(packet)) == packet
        back = rtp_packet(seq, ssrc=0x0BADCAFE)
        assert c_ctx.unprotect(s_ctx.protect(back)) == back
    # A packet protected with the client's keys does not pass the client's own inbound check.
    assert c_ctx.unprotect(c_ctx.protect(rtp_packet(9))) is None
    assert pair.client.state is pair.server.state is DtlsState.CONNECTED
    assert pair.client.get_timer() is None and pair.server.get_timer() is None


def test_fingerprints_in_the_event_are_the_certificates() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    pair.pump(0.0)
    client, server = connected(pair.events(pair.client)), connected(pair.events(pair.server))
    assert (
        client.local_fingerprint == server.remote_fingerprint == certificate("alice").fingerprint()
    )
    assert server.local_fingerprint == client.remote_fingerprint == certificate("bob").fingerprint()


def test_default_profiles_choose_gcm_and_a_cm_only_client_gets_cm() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    pair.pump(0.0)
    assert connected(pair.events(pair.client)).profile is SrtpProfile.AEAD_AES_128_GCM
    pair = make_pair(client_profiles=[SrtpProfile.AES128_CM_SHA1_80])
    pair.client.start(0.0)
    pair.pump(0.0)
    assert connected(pair.events(pair.server)).profile is SrtpProfile.AES128_CM_SHA1_80


def test_no_common_srtp_profile_fails_both_sides() -> None:
    pair = make_pair(
        client_profiles=[SrtpProfile.AES128_CM_SHA1_80],
        server_profiles=[SrtpProfile.AEAD_AES_128_GCM],
    )
    pair.client.start(0.0)
    pair.pump(0.0)
    assert failed(pair.events(pair.client)).reason is DtlsFailure.NO_SRTP_PROFILE
    server_events = pair.events(pair.server)
    assert not any(isinstance(e, DtlsConnected) for e in server_events)
    assert pair.server.state in (DtlsState.FAILED, DtlsState.CLOSED)


@pytest.mark.parametrize("algorithm", ["sha-1", "sha-256", "sha-384", "sha-512"])
def test_each_fingerprint_hash_is_accepted(algorithm: str) -> None:
    pair = make_pair(
        client_expects=[certificate("bob").fingerprint(algorithm)],
        server_expects=[certificate("alice").fingerprint(algorithm)],
    )
    pair.client.start(0.0)
    pair.pump(0.0)
    event = connected(pair.events(pair.client))
    assert event.remote_fingerprint.algorithm == algorithm
    connected(pair.events(pair.server))


def test_one_matching_fingerprint_among_several_is_enough() -> None:
    wrong = certificate("mallory").fingerprint()
    pair = make_pair(client_expects=[wrong, certificate("bob").fingerprint("sha-384")])
    pair.client.start(0.0)
    pair.pump(0.0)
    assert connected(pair.events(pair.client)).remote_fingerprint.algorithm == "sha-384"


def test_client_rejects_a_server_certificate_without_its_fingerprint() -> None:
    pair = make_pair(client_expects=[certificate("mallory").fingerprint()])
    pair.client.start(0.0)
    pair.pump(0.0)
    failure = failed(pair.events(pair.client))
    assert failure.reason is DtlsFailure.FINGERPRINT_MISMATCH
    assert "fingerprint" in failure.text
    assert failed(pair.events(pair.server)).reason is DtlsFailure.PEER_ALERT
    assert pair.client.state is pair.server.state is DtlsState.FAILED


def test_server_rejects_a_client_certificate_without_its_fingerprint() -> None:
    pair = make_pair(server_expects=[certificate("mallory").fingerprint("sha-1")])
    pair.client.start(0.0)
    pair.pump(0.0)
    assert failed(pair.events(pair.server)).reason is DtlsFailure.FINGERPRINT_MISMATCH
    assert failed(pair.events(pair.client)).reason is DtlsFailure.PEER_ALERT


def test_unusable_fingerprints_are_refused_up_front() -> None:
    md5 = Fingerprint("md5", bytes(16))
    with pytest.raises(ValueError, match="supported hash"):
        DtlsEndpoint(DtlsRole.SERVER, certificate("bob"), remote_fingerprints=[md5])


def test_fingerprint_arriving_after_the_handshake_is_checked_before_keys() -> None:
    pair = make_pair(server_expects=[])
    pair.client.start(0.0)
    pair.pump(0.0)
    assert pair.server.awaiting_fingerprint
    assert pair.events(pair.server) == []
    assert pair.server.get_timer() is not None  # the deadline still runs
    pair.server.set_remote_fingerprints([certificate("alice").fingerprint()])
    connected(pair.events(pair.server))


def test_late_wrong_fingerprint_fails_and_closes_the_association() -> None:
    pair = make_pair(server_expects=[])
    pair.client.start(0.0)
    pair.pump(0.0)
    connected(pair.events(pair.client))
    pair.server.set_remote_fingerprints([certificate("mallory").fingerprint()])
    assert failed(pair.events(pair.server)).reason is DtlsFailure.FINGERPRINT_MISMATCH
    pair.pump(0.1)
    assert pair.events(pair.client) == [DtlsClosed(by_peer=True)]


def test_late_fingerprint_deadline() -> None:
    pair = make_pair(server_expects=[], handshake_timeout=10.0)
    pair.client.start(0.0)
    pair.pump(0.0)
    pair.server.handle_timer(10.0)
    assert failed(pair.events(pair.server)).reason is DtlsFailure.HANDSHAKE_TIMEOUT


def test_handshake_that_never_completes_hits_the_deadline() -> None:
    pair = make_pair(link=lambda role, index, data: False, handshake_timeout=20.0)
    pair.client.start(100.0)
    pair.pump(100.0)
    now = 100.0
    while (timer := pair.client.get_timer()) is not None and timer < 100.0 + 20.0:
        assert pair.events(pair.client) == []
        now = timer
        pair.client.handle_timer(now)
        pair.pump(now)
    assert pair.client.get_timer() == 120.0
    pair.client.handle_timer(119.999)
    assert pair.client.state is DtlsState.HANDSHAKING
    pair.client.handle_timer(120.0)
    failure = failed(pair.events(pair.client))
    assert failure.reason is DtlsFailure.HANDSHAKE_TIMEOUT and "20 s" in failure.text
    assert pair.client.get_timer() is None
    pair.client.receive(pair.sent[DtlsRole.CLIENT][0], SERVER_ADDR, 121.0)
    assert pair.client.stats.dropped_state == 1 and pair.client.datagrams_to_send() == []


def test_closing_sends_close_notify_and_the_peer_ends_too() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    pair.pump(0.0)
    pair.events(pair.client), pair.events(pair.server)
    pair.client.close()
    assert pair.events(pair.client) == [DtlsClosed(by_peer=False)]
    pair.pump(1.0)
    assert pair.events(pair.server) == [DtlsClosed(by_peer=True)]
    assert pair.client.state is pair.server.state is DtlsState.CLOSED
    assert pair.client.stats.dropped_state == 1  # the server's own close_notify, after we closed


def test_datagrams_from_another_address_are_dropped() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    hello = pair.client.datagrams_to_send()[0][0]
    pair.server.receive(hello, ("127.0.0.1", 9999), 0.0)
    assert pair.server.stats.dropped_foreign == 1 and pair.server.datagrams_to_send() == []
    pair.server.receive(hello, CLIENT_ADDR, 0.0)
    pair.pump(0.0)
    connected(pair.events(pair.client))


def test_server_without_address_keeps_the_first_peer() -> None:
    alice, bob = certificate("alice"), certificate("bob")
    server = DtlsEndpoint(DtlsRole.SERVER, bob, remote_fingerprints=[alice.fingerprint()])
    client = DtlsEndpoint(
        DtlsRole.CLIENT, alice, remote=SERVER_ADDR, remote_fingerprints=[bob.fingerprint()]
    )
    client.start(0.0)
    hello = client.datagrams_to_send()[0][0]
    server.receive(hello, CLIENT_ADDR, 0.0)
    out = server.datagrams_to_send()
    assert out and all(dest == CLIENT_ADDR for _, dest in out)
    server.receive(hello, ("127.0.0.1", 9999), 0.0)
    assert server.stats.dropped_foreign == 1


def test_client_must_know_where_to_send() -> None:
    with pytest.raises(ValueError, match="address"):
        DtlsEndpoint(DtlsRole.CLIENT, certificate("alice"))


def test_keys_never_appear_in_repr() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    pair.pump(0.0)
    event = connected(pair.events(pair.client))
    text = repr(event)
    for secret in (event.keys.local_key, event.keys.remote_key, event.keys.local_salt):
        assert secret.hex() not in text and repr(secret) not in text
    assert "sha-256" in text


# -- hostile and broken input -----------------------------------------------------------------


def _connected_pair():  # type: ignore[no-untyped-def]
    pair = make_pair()
    pair.client.start(0.0)
    pair.pump(0.0)
    connected(pair.events(pair.client)), connected(pair.events(pair.server))
    return pair


def _still_working(pair) -> None:  # type: ignore[no-untyped-def]
    """Both ends connected, no events, and a close still goes through."""
    assert pair.client.state is pair.server.state is DtlsState.CONNECTED
    assert pair.events(pair.client) == [] and pair.events(pair.server) == []
    pair.client.close()
    pair.pump(9.0)
    assert pair.events(pair.server) == [DtlsClosed(by_peer=True)]


def test_garbage_after_the_handshake_is_dropped() -> None:
    pair = _connected_pair()
    rng = random.Random(5764)
    for _ in range(300):
        junk = bytes([rng.randrange(20, 64)]) + rng.randbytes(rng.randrange(0, 200))
        pair.server.receive(junk, CLIENT_ADDR, 1.0)
        pair.client.receive(junk, SERVER_ADDR, 1.0)
    # Well-framed records with random contents reach OpenSSL, which discards them (RFC 6347 §4.1.2.7).
    for content_type in (20, 21, 22, 23):
        for epoch in (0, 1, 2):
            body = rng.randbytes(rng.randrange(1, 100))
            record = (
                bytes([content_type, 0xFE, 0xFD])
                + epoch.to_bytes(2, "big")
                + rng.randbytes(6)
                + len(body).to_bytes(2, "big")
                + body
            )
            pair.server.receive(record, CLIENT_ADDR, 1.0)
    assert pair.server.stats.dropped_malformed > 0
    pair.pump(1.0)
    _still_working(pair)


def test_garbage_during_the_handshake_does_not_stop_it() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    pair.server.receive(b"\x16\xfe\xfd" + bytes(10) + b"\x00\x05hello", CLIENT_ADDR, 0.0)
    pair.server.receive(b"\x17" * 40, CLIENT_ADDR, 0.0)
    pair.pump(0.0)
    connected(pair.events(pair.client)), connected(pair.events(pair.server))


def test_replayed_client_hellos_after_the_handshake_change_nothing() -> None:
    pair = _connected_pair()
    hello = pair.sent[DtlsRole.CLIENT][0]
    for _ in range(500):  # a flood of the same ClientHello
        pair.server.receive(hello, CLIENT_ADDR, 2.0)
    assert pair.server.datagrams_to_send() == []  # an epoch-0 record after the handshake
    _still_working(pair)


def test_a_new_client_hello_after_the_handshake_changes_nothing() -> None:
    pair = _connected_pair()
    other = make_pair()
    other.client.start(0.0)
    fresh_hello = other.client.datagrams_to_send()[0][0]
    for _ in range(50):
        pair.server.receive(fresh_hello, CLIENT_ADDR, 2.0)
    assert pair.server.datagrams_to_send() == []
    pair.pump(2.0)
    _still_working(pair)


def test_client_hello_flood_during_the_handshake() -> None:
    pair = make_pair()
    pair.client.start(0.0)
    hello = pair.client.datagrams_to_send()[0][0]
    for _ in range(500):
        pair.server.receive(hello, CLIENT_ADDR, 0.0)
    flight = pair.server.datagrams_to_send()
    assert len(flight) == 1  # one answer, not one per ClientHello
    for data, _ in flight:
        pair.client.receive(data, SERVER_ADDR, 0.0)
    pair.pump(0.0)
    connected(pair.events(pair.client)), connected(pair.events(pair.server))
