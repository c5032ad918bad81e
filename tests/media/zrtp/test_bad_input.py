"""Bad input to a ZRTP session: each is dropped with a reason or fails with a clear one
(RFC 6189 §4.4.1.1, §5, §6, §8.1, §9), and the session keeps running."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from securephone.media.zrtp.algorithms import AlgorithmOffer
from securephone.media.zrtp.cache import ZrtpCache
from securephone.media.zrtp.crypto import DH3K_PRIME
from securephone.media.zrtp.events import DropReason, FailureReason, PacketDropped, ZrtpFailed
from securephone.media.zrtp.messages import (
    Commit,
    Confirm1,
    DHPart,
    DHPart1,
    DHPart2,
    Error,
    GoClear,
    HelloAck,
    Message,
    Ping,
    PingAck,
    SasRelay,
    parse_message,
)
from securephone.media.zrtp.packet import ZrtpPacket
from securephone.media.zrtp.session import MAX_PING_ACKS, State, ZrtpConfig

from .harness import Endpoint, Wire, both_secure, endpoint

PASSIVE = ZrtpConfig(passive=True)


def _rewrite(kind: type[Message], change: Callable[[Message], Message], times: int = 10**6):  # type: ignore[no-untyped-def]
    """A link filter that rewrites messages of ``kind`` (valid CRC, same sequence number)."""
    left = {"n": times}

    def link(_sender: str, datagram: bytes) -> list[bytes]:
        packet = ZrtpPacket.parse(datagram)
        message = parse_message(packet.message)
        if isinstance(message, kind) and left["n"] > 0:
            left["n"] -= 1
            return [bytes(replace(packet, message=bytes(change(message))))]
        return [datagram]

    return link


def _drops(side: Endpoint) -> set[DropReason]:
    return {e.reason for e in side.of(PacketDropped)}  # type: ignore[attr-defined]


def _run(a: Endpoint, b: Endpoint, link=None) -> Wire:  # type: ignore[no-untyped-def]
    wire = Wire(a, b) if link is None else Wire(a, b, link=link)
    wire.start()
    wire.run()
    return wire


@pytest.mark.parametrize(
    ("name", "mangle"),
    [
        ("truncated", lambda d: d[:-10]),
        ("oversized", lambda d: d + bytes(4000)),
        ("bad CRC", lambda d: d[:-1] + bytes([d[-1] ^ 0xFF])),
        ("garbage", lambda d: b"\x10\x00" + bytes(40)),
    ],
)
def test_malformed_packets_are_dropped_and_the_session_continues(
    name: str, mangle: Callable[[bytes], bytes]
) -> None:
    a, b = endpoint("a"), endpoint("b")
    a.session.start(0.0)
    b.session.start(0.0)
    hello = a.session.datagrams_to_send()[0]
    b.session.receive(mangle(hello), None, 0.0)
    b.drain()
    assert _drops(b) == {DropReason.MALFORMED} and b.session.state is State.DISCOVERY
    b.session.receive(hello, None, 0.0)  # the real one still works
    assert b.session.peer_zid == a.session.cache.zid


def test_broken_hash_chain_in_dhpart1_is_dropped_then_the_retransmission_succeeds() -> None:
    link = _rewrite(DHPart1, lambda m: replace(m, h1=bytes(32)), times=1)  # type: ignore[arg-type]
    wire = _run(endpoint("a"), endpoint("b", config=PASSIVE), link)
    assert DropReason.HASH_CHAIN in _drops(wire.a)
    assert both_secure(wire)


def test_broken_commit_mac_is_dropped_at_dhpart2() -> None:
    """The Commit MAC (key H1) can only be checked when DHPart2 reveals H1 (§9)."""
    link = _rewrite(Commit, lambda m: replace(m, mac=bytes(8)))  # type: ignore[arg-type]
    wire = _run(endpoint("a"), endpoint("b", config=PASSIVE), link)
    assert DropReason.BAD_MAC in _drops(wire.b)
    assert wire.b.session.state is not State.SECURE
    assert wire.a.failure.reason is FailureReason.TIMEOUT


def test_wrong_sdp_hello_hash_fails_with_that_reason() -> None:
    a, b = endpoint("a"), endpoint("b")
    b.session.set_peer_hello_hash("1.10 " + "00" * 32)
    wire = _run(a, b)
    assert DropReason.HELLO_HASH_MISMATCH in _drops(wire.b)
    assert wire.b.failure.reason is FailureReason.HELLO_HASH_MISMATCH
    assert not both_secure(wire)


def test_right_sdp_hello_hash_arriving_late_is_accepted() -> None:
    a, b = endpoint("a"), endpoint("b")
    b.session.set_peer_hello_hash(a.session.local_hello_hash.upper())
    wire = _run(a, b)
    assert both_secure(wire)


def test_late_sdp_hash_mismatch_forgets_the_early_hello() -> None:
    a, b = endpoint("a"), endpoint("b", config=PASSIVE)
    a.session.start(0.0)
    b.session.start(0.0)
    b.session.receive(a.session.datagrams_to_send()[0], None, 0.0)
    assert b.session.peer_zid == a.session.cache.zid
    b.session.set_peer_hello_hash("ab" * 32)
    b.drain()
    assert b.session.peer_zid is None and DropReason.HELLO_HASH_MISMATCH in _drops(b)


@pytest.mark.parametrize("value", [0, 1, DH3K_PRIME - 1])
def test_dh3k_public_values_0_1_and_p_minus_1_fail_the_agreement(value: int) -> None:
    config = ZrtpConfig(offer=AlgorithmOffer(key_agreements=("DH3k",)))
    link = _rewrite(DHPart1, lambda m: replace(m, pv=value.to_bytes(384, "big")))  # type: ignore[arg-type]
    wire = _run(
        endpoint("a", config=config), endpoint("b", config=replace(config, passive=True)), link
    )
    assert wire.a.failure.reason is FailureReason.BAD_PUBLIC_VALUE
    assert wire.a.failure.error_code == 0x61
    assert "Error" in [
        type(parse_message(ZrtpPacket.parse(d).message)).__name__ for d in wire.sent["a"]
    ]


def test_x25519_all_zero_public_value_fails_the_agreement() -> None:
    config = ZrtpConfig(offer=AlgorithmOffer(key_agreements=("X255",)))
    link = _rewrite(DHPart1, lambda m: replace(m, pv=bytes(32)))  # type: ignore[arg-type]
    wire = _run(
        endpoint("a", config=config), endpoint("b", config=replace(config, passive=True)), link
    )
    assert wire.a.failure.reason is FailureReason.BAD_PUBLIC_VALUE


def test_substituted_dhpart2_is_caught_by_hvi() -> None:
    """A MiTM replacing the initiator's public value breaks hvi (§4.4.1.1, Error 0x62)."""

    def swap(m: Message) -> Message:
        assert isinstance(m, DHPart)
        return replace(m, pv=bytes([m.pv[0] ^ 1]) + m.pv[1:])

    wire = _run(endpoint("a"), endpoint("b", config=PASSIVE), _rewrite(DHPart2, swap))
    assert wire.b.failure.reason is FailureReason.HVI_MISMATCH
    assert wire.b.failure.error_code == 0x62
    assert wire.a.failure.reason is FailureReason.PEER_ERROR  # our Error reached the peer


def test_tampered_confirm_is_dropped() -> None:
    link = _rewrite(Confirm1, lambda m: replace(m, encrypted=bytes(len(m.encrypted))))  # type: ignore[attr-defined]
    wire = _run(endpoint("a"), endpoint("b", config=PASSIVE), link)
    assert DropReason.BAD_CONFIRM in _drops(wire.a)
    assert wire.a.session.state is not State.SECURE


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("key_agreement", "EC25", 0x53),
        ("hash", "S384", 0x51),
        ("sas_type", "B256", 0x55),
        ("key_agreement", "Mult", 0x53),
    ],
)
def test_commit_for_an_algorithm_we_did_not_offer_fails(field: str, value: str, code: int) -> None:
    offer = AlgorithmOffer(key_agreements=("X255",), sas_types=("B32 ",))
    change = _rewrite(
        Commit,
        lambda m: replace(
            m,
            **{field: value},
            nonce=b"n" * 16 if value == "Mult" else b"",
            hvi=b"" if value == "Mult" else m.hvi,
        ),
    )  # type: ignore[attr-defined]
    wire = _run(endpoint("a"), endpoint("b", config=ZrtpConfig(offer=offer, passive=True)), change)
    assert wire.b.failure.reason is FailureReason.UNSUPPORTED_ALGORITHM
    assert wire.b.failure.error_code == code


def test_replayed_and_out_of_order_packets_are_dropped() -> None:
    a, b = endpoint("a"), endpoint("b")
    a.session.start(0.0)
    b.session.start(0.0)
    a.session.handle_timer(1.0)
    first, second = a.session.datagrams_to_send()[:2]
    b.session.receive(second, None, 0.0)
    b.session.receive(first, None, 0.0)  # out of order
    b.session.receive(second, None, 0.0)  # replayed
    b.drain()
    replays = [e for e in b.of(PacketDropped) if e.reason is DropReason.REPLAYED]  # type: ignore[attr-defined]
    assert len(replays) == 2 and b.session.peer_zid == a.session.cache.zid


def test_packets_from_another_ssrc_are_dropped() -> None:
    a, b, c = endpoint("a", ssrc=1), endpoint("b", ssrc=2), endpoint("c", ssrc=3)
    for side in (a, b, c):
        side.session.start(0.0)
    b.session.receive(a.session.datagrams_to_send()[0], None, 0.0)
    b.session.receive(c.session.datagrams_to_send()[0], None, 0.0)
    b.drain()
    assert _drops(b) == {DropReason.WRONG_SSRC} and b.session.peer_zid == a.session.cache.zid


def test_silent_peer_times_out_after_the_hello_retransmissions() -> None:
    a = endpoint("a")
    a.session.start(0.0)
    sent, now = len(a.session.datagrams_to_send()), 0.0
    while (timer := a.session.get_timer()) is not None and now < 120:
        now = timer
        a.session.handle_timer(now)
        sent += len(a.session.datagrams_to_send())
    a.drain()
    assert a.failure.reason is FailureReason.TIMEOUT
    assert sent == 21  # first Hello + 20 retransmissions (RFC 6189 §6)
    assert now == pytest.approx(0.05 + 0.1 + 18 * 0.2 + 0.2)


def test_responder_gives_up_when_the_initiator_goes_silent() -> None:
    link_state = {"cut": False}

    def cut_after_dhpart1(sender: str, datagram: bytes) -> list[bytes]:
        if isinstance(parse_message(ZrtpPacket.parse(datagram).message), DHPart1):
            link_state["cut"] = True
        return [] if link_state["cut"] and sender == "a" else [datagram]

    wire = _run(endpoint("a"), endpoint("b", config=PASSIVE), cut_after_dhpart1)
    assert wire.b.failure.reason is FailureReason.TIMEOUT and wire.b.failure.error_code == 0xB0
    # B's 10 s silence limit ends before A's T2 budget (9.45 s + last wait): A hears Error 0xB0.
    assert wire.a.failure.reason is FailureReason.PEER_ERROR
    assert "0xb0" in wire.a.failure.text


def test_equal_zid_fails() -> None:
    shared = ZrtpCache.new()
    wire = _run(endpoint("a", shared), endpoint("b", ZrtpCache(zid=shared.zid)))
    assert wire.a.failure.reason is FailureReason.EQUAL_ZID and wire.a.failure.error_code == 0x90


def test_goclear_and_sasrelay_are_refused_and_ping_is_answered() -> None:
    wire = _run(endpoint("a"), endpoint("b"))
    assert both_secure(wire)
    b = wire.b.session
    sequence = 0xF000
    for message in (GoClear(b"g" * 8), SasRelay(b"m" * 8, b"i" * 16, b"e" * 40)):
        sequence += 1
        b.receive(bytes(ZrtpPacket(sequence, wire.a.session.ssrc, bytes(message))), None, wire.now)
    b.receive(bytes(ZrtpPacket(1, 777, bytes(Ping("1.10", b"e" * 8)))), None, wire.now)
    wire.b.drain()
    assert {DropReason.GOCLEAR_REFUSED, DropReason.SAS_RELAY_IGNORED} <= _drops(wire.b)
    replies = [parse_message(ZrtpPacket.parse(d).message) for d in b.datagrams_to_send()]
    assert [type(r).__name__ for r in replies] == ["RelayAck", "PingAck"]
    ack = replies[1]
    assert isinstance(ack, PingAck) and ack.ssrc == 777 and ack.received_endpoint_hash == b"e" * 8
    assert b.state is State.SECURE


def test_a_flood_of_pings_from_anyone_cannot_use_up_the_sequence_numbers() -> None:
    """Pings are answered in any state and need no SSRC of the call: past MAX_PING_ACKS they
    are counted and left unanswered, so 70,000 of them neither fail the session (ZRTP must never
    wrap its 16-bit sequence numbers) nor make 70,000 PingACKs."""
    wire = _run(endpoint("a"), endpoint("b"))
    b = wire.b.session
    ping = bytes(ZrtpPacket(1, 777, bytes(Ping("1.10", b"e" * 8))))
    answers = 0
    for _ in range(70_000):
        b.receive(ping, ("203.0.113.9", 4000), wire.now)
        answers += len(b.datagrams_to_send())
    assert b.state is State.SECURE and not wire.b.of(ZrtpFailed)
    assert answers == MAX_PING_ACKS and b.pings_ignored == 70_000 - MAX_PING_ACKS


def test_a_blind_strangers_packets_before_the_peers_hello_change_nothing() -> None:
    """Before the peer's Hello nothing is bound: an Error (any SSRC) must not fail the agreement
    and a packet numbered 0xFFFF must not make the peer's real packets look replayed; so must a
    Hello that a=zrtp-hash refuses."""
    a, b = endpoint("a"), endpoint("b")
    wire = Wire(a, b)
    wire.start()
    b.session.set_peer_hello_hash(a.session.sdp_zrtp_hash)
    stranger = ("203.0.113.9", 4000)
    forged_hello = bytes(ZrtpPacket(0xFFFF, 777, bytes(endpoint("x").session._build_hello())))
    for packet in (
        bytes(ZrtpPacket(0xFFFE, 777, bytes(Error(0x40)))),
        forged_hello,
        bytes(ZrtpPacket(0xFFFF, 777, bytes(HelloAck()))),
    ):
        b.session.receive(packet, stranger, wire.now)
    wire.run()
    assert both_secure(wire) and a.secure.sas == b.secure.sas
    assert not b.of(ZrtpFailed)


def test_peer_error_message_fails_the_agreement_and_is_acknowledged() -> None:
    a, b = endpoint("a"), endpoint("b")
    a.session.start(0.0)
    b.session.start(0.0)
    b.session.receive(a.session.datagrams_to_send()[0], None, 0.0)
    b.session.datagrams_to_send()
    b.session.receive(bytes(ZrtpPacket(0xFFF0, a.session.ssrc, bytes(Error(0x30)))), None, 0.0)
    b.drain()
    assert b.failure.reason is FailureReason.PEER_ERROR
    assert "ErrorAck" in [
        type(parse_message(ZrtpPacket.parse(d).message)).__name__
        for d in b.session.datagrams_to_send()
    ]
