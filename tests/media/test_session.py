"""One media stream (securephone.media.session.MediaStream): RTP, DTMF, RTCP and SRTP, sans I/O.

Two streams ("alice" and "bob") are wired together in memory: what one's ``next_packet`` or
``rtcp_packet`` returns goes into the other's ``receive`` with the sender's address.
"""

from __future__ import annotations

import dataclasses
import random
import secrets

import numpy as np
import pytest

from securephone.media import rtcp
from securephone.media.codecs.dtmf import TelephoneEvent
from securephone.media.codecs.g711 import PCMA, PCMU
from securephone.media.keying import KeyingEvent, KeyingMethod, KeysAgreed
from securephone.media.rtp import RtpPacket
from securephone.media.session import MAX_DIGITS_KEPT, MediaStream, Pcm
from securephone.media.srtp import SrtpContext, generate_key
from securephone.sdp.offer_answer import NegotiatedMedia

ALICE = ("127.0.0.1", 40000)
ALICE_RTCP = ("127.0.0.1", 40001)
BOB = ("127.0.0.1", 42000)
BOB_RTCP = ("127.0.0.1", 42001)
SUITE = "AES_CM_128_HMAC_SHA1_80"
FRAME = 0.02


def negotiated(remote: tuple[str, int], **changes: object) -> NegotiatedMedia:
    """PCMU at 8 kHz, 20 ms, telephone-event 101, sendrecv, to ``remote`` (RTCP on port + 1)."""
    media = NegotiatedMedia(
        remote_address=remote[0],
        remote_port=remote[1],
        remote_rtcp_port=remote[1] + 1,
        codec="PCMU",
        payload_type=0,
        clock_rate=8000,
        telephone_event_pt=101,
        ptime=20,
        local_direction="sendrecv",
        remote_direction="sendrecv",
        proto="RTP/AVP",
    )
    return dataclasses.replace(media, **changes)  # type: ignore[arg-type]


def tone(n: int = 0, samples: int = 160) -> Pcm:
    """Frame ``n`` of a 1 kHz tone at about -12 dBFS."""
    t = (np.arange(samples) + n * samples) / 8000
    return (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)


def pair(**changes: object) -> tuple[MediaStream, MediaStream]:
    """Two configured streams, each negotiated towards the other."""
    alice = MediaStream("alice@127.0.0.1", rng=random.Random(1))
    bob = MediaStream("bob@127.0.0.1", rng=random.Random(2))
    alice.configure(negotiated(BOB, **changes))
    bob.configure(negotiated(ALICE, **changes))
    return alice, bob


def keyed_pair(required: bool = True) -> tuple[MediaStream, MediaStream]:
    """Two streams with real libsrtp contexts: alice's outbound key is bob's inbound one."""
    alice, bob = pair(proto="RTP/SAVP")
    key_a, key_b = generate_key(SUITE), generate_key(SUITE)
    alice.set_srtp(SrtpContext(SUITE, key_a, key_b), required)
    bob.set_srtp(SrtpContext(SUITE, key_b, key_a), required)
    return alice, bob


def send(stream: MediaStream, count: int, start: int = 0) -> list[bytes]:
    """``count`` packet times of tone from ``stream``; the packets it sent."""
    packets = [stream.next_packet(tone(start + n)) for n in range(count)]
    return [p for p in packets if p is not None]


def deliver(packets: list[bytes], to: MediaStream, source: tuple[str, int] = ALICE) -> list[str]:
    """Feed packets one packet time apart; the DTMF digits they completed."""
    digits: list[str] = []
    for n, data in enumerate(packets):
        digits += [d.digit for d in to.receive(data, source, n * FRAME)]
    return digits


def parse_all(packets: list[bytes]) -> list[RtpPacket]:
    return [RtpPacket.parse(p) for p in packets]


# --- configuration and sending (RFC 3550 §5.1, RFC 3551 §4.1) ------------------------------


def test_nothing_is_sent_before_configure() -> None:
    stream = MediaStream("x@127.0.0.1")
    assert not stream.sending
    assert stream.next_packet(tone()) is None
    assert stream.counters.packets_sent == 0


def test_configure_takes_codec_and_frame_size_from_the_negotiation() -> None:
    stream = MediaStream("x@127.0.0.1")
    stream.configure(negotiated(BOB, codec="PCMA", payload_type=8, ptime=30))
    assert stream.codec is PCMA
    assert stream.samples == 240
    assert stream.codec_pt == 8
    assert stream.sending


def test_packets_carry_consecutive_numbers_one_ssrc_and_a_first_marker() -> None:
    alice, _ = pair()
    packets = parse_all(send(alice, 4))
    first = packets[0]
    assert [p.sequence_number for p in packets] == [
        (first.sequence_number + n) & 0xFFFF for n in range(4)
    ]
    assert [p.timestamp for p in packets] == [
        (first.timestamp + 160 * n) & 0xFFFFFFFF for n in range(4)
    ]
    assert {p.ssrc for p in packets} == {alice.ssrc}
    assert [p.marker for p in packets] == [True, False, False, False]
    assert {p.payload_type for p in packets} == {0}
    assert packets[2].payload == PCMU.encode(tone(2))
    assert alice.counters.packets_sent == 4
    assert alice.counters.bytes_sent == 4 * 160


def test_sequence_number_and_timestamp_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "randbits", lambda bits: (1 << bits) - 1)
    stream = MediaStream("x@127.0.0.1")
    stream.configure(negotiated(BOB))
    packets = parse_all(send(stream, 2))
    assert [p.sequence_number for p in packets] == [0xFFFF, 0]
    assert [p.timestamp for p in packets] == [0xFFFFFFFF, 159]


def test_on_hold_nothing_is_sent_but_the_media_clock_runs() -> None:
    alice, _ = pair()
    first = RtpPacket.parse(send(alice, 1)[0])
    alice.configure(negotiated(BOB, local_direction="recvonly"))
    assert not alice.sending
    assert send(alice, 2) == []
    alice.configure(negotiated(BOB))
    resumed = RtpPacket.parse(send(alice, 1)[0])
    assert resumed.sequence_number == (first.sequence_number + 1) & 0xFFFF
    assert resumed.timestamp == (first.timestamp + 3 * 160) & 0xFFFFFFFF


def test_a_peer_that_does_not_receive_gets_nothing() -> None:
    alice, _ = pair(remote_direction="sendonly")
    assert send(alice, 3) == []


# --- receiving and playout (RFC 3550 §5.1, jitter buffer) ----------------------------------


def test_received_audio_plays_out_through_the_jitter_buffer() -> None:
    alice, bob = pair()
    packets = send(alice, 5)
    deliver(packets, bob)
    assert bob.counters.packets_received == 5
    assert bob.counters.bytes_received == 5 * 160
    played = [bob.playout(5 * FRAME + n * FRAME) for n in range(5)]
    for n, pcm in enumerate(played):
        assert np.array_equal(pcm, PCMU.decode(PCMU.encode(tone(n))))
    stats = bob.stats()
    assert stats["packets_received"] == 5
    assert stats["packets_lost"] == 0
    assert stats["concealed"] == 0
    assert stats["jitter_ms"] == 0.0


def test_playout_waits_for_the_buffer_depth_then_conceals_a_loss() -> None:
    alice, bob = pair()
    packets = send(alice, 5)
    assert not np.any(bob.playout(0.0))  # nothing received: silence
    deliver(packets[:2] + packets[3:], bob)  # the third packet is lost
    out = [bob.playout(1.0 + n * FRAME) for n in range(4)]
    assert np.array_equal(out[0], PCMU.decode(PCMU.encode(tone(0))))
    assert np.array_equal(out[1], PCMU.decode(PCMU.encode(tone(1))))
    assert np.array_equal(out[2], (out[1] * 0.5).astype(np.int16))  # concealed
    assert np.array_equal(out[3], PCMU.decode(PCMU.encode(tone(3))))
    assert bob.stats()["concealed"] == 1
    assert bob.stats()["packets_lost"] == 1


def test_a_duplicate_is_counted_and_dropped() -> None:
    alice, bob = pair()
    packets = send(alice, 4)
    deliver([*packets, packets[1]], bob)
    assert bob.stats()["duplicates"] == 1
    assert bob.counters.packets_received == 5


def test_nothing_is_received_before_configure() -> None:
    alice, _ = pair()
    stream = MediaStream("x@127.0.0.1")
    assert deliver(send(alice, 2), stream) == []
    assert stream.counters.packets_received == 0
    assert stream.last_source is None


def test_rtcp_before_configure_is_not_read() -> None:
    """Before the offer/answer there is no peer whose reports could be judged: nothing is taken."""
    alice, _ = pair()
    stream = MediaStream("x@127.0.0.1")
    stream.receive(alice.rtcp_packet(0.0, 1_700_000_000.0), ("127.0.0.9", 9), 0.0)
    assert stream.counters.rtcp_received == 0
    assert stream.last_source is None


def test_unknown_payload_type_is_counted_not_played() -> None:
    alice, bob = pair()
    alice.configure(negotiated(BOB, codec="PCMA", payload_type=8))
    deliver(send(alice, 4), bob)
    assert bob.counters.packets_received == 4
    assert bob.counters.unknown_payload == 4
    assert not np.any(bob.playout(1.0))


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x00\x00",  # shorter than the RTP header
        b"\x40" + bytes(11),  # RTP version 1
        bytes(RtpPacket(0, 1, 160, 7, b"\x01", padding=True))[:-1] + b"\x09",  # bad padding
    ],
)
def test_malformed_rtp_is_counted(data: bytes) -> None:
    _, bob = pair()
    assert bob.receive(data, ALICE, 0.0) == []
    assert bob.counters.malformed == 1
    assert bob.counters.packets_received == 0
    assert bob.stats()["malformed"] == 1


def test_malformed_telephone_event_is_counted() -> None:
    _, bob = pair()
    bob.receive(bytes(RtpPacket(101, 1, 160, 7, b"\x01")), ALICE, 0.0)
    assert bob.counters.malformed == 1
    assert list(bob.digits) == []


def test_malformed_rtcp_is_counted() -> None:
    _, bob = pair()
    bob.receive(bytes([0x80, 201, 0, 9]) + bytes(4), ALICE_RTCP, 0.0)  # length past the end
    assert bob.counters.malformed == 1
    assert bob.counters.rtcp_received == 0


# --- DTMF (RFC 4733) -----------------------------------------------------------------------


def test_dtmf_digits_go_out_as_telephone_events_and_come_back_as_digits() -> None:
    alice, bob = pair()
    alice.send_dtmf("1#")
    packets = send(alice, 40)
    parsed = parse_all(packets)
    events = [p for p in parsed if p.payload_type == 101]
    first_digit = [p for p in events if p.timestamp == events[0].timestamp]
    assert [TelephoneEvent.parse(p.payload).event for p in first_digit] == [1] * len(first_digit)
    assert first_digit[0].marker and not any(p.marker for p in first_digit[1:])
    assert TelephoneEvent.parse(first_digit[-1].payload).end
    assert [p.sequence_number for p in parsed] == [
        (parsed[0].sequence_number + n) & 0xFFFF for n in range(len(parsed))
    ]
    assert deliver(packets, bob) == ["1", "#"]
    assert [d.digit for d in bob.digits] == ["1", "#"]
    assert bob.stats()["dtmf_received"] == "1#"
    assert alice.stats()["dtmf_sent"] == 2


def test_a_long_run_of_received_digits_keeps_the_newest_and_counts_all() -> None:
    """A peer pressing keys for hours must not grow the call: the newest digits are kept."""
    alice, bob = pair()
    sent = "0123456789*#ABCD" * 20  # 320 digits, more than the stream keeps
    alice.send_dtmf(sent)
    delivered = deliver(send(alice, len(sent) * 25), bob)
    assert "".join(delivered) == sent  # every digit still reported as it arrives
    assert len(bob.digits) == MAX_DIGITS_KEPT < len(sent)
    assert bob.digits_received == len(sent)
    stats = bob.stats()
    assert stats["dtmf_received"] == sent[-MAX_DIGITS_KEPT:]
    assert stats["dtmf_received_count"] == len(sent)


def test_dtmf_replaces_audio_while_a_key_is_pressed() -> None:
    alice, _ = pair()
    alice.send_dtmf("5")
    parsed = parse_all(send(alice, 20))
    kinds = [p.payload_type for p in parsed]
    assert kinds[0] == 101  # the press starts at once
    assert 0 in kinds  # audio resumes after it
    first_audio = kinds.index(0)
    assert set(kinds[:first_audio]) == {101}
    assert set(kinds[first_audio:]) == {0}


def test_dtmf_without_telephone_event_is_not_sent() -> None:
    alice, _ = pair(telephone_event_pt=None)
    alice.send_dtmf("123")
    parsed = parse_all(send(alice, 30))
    assert {p.payload_type for p in parsed} == {0}
    assert alice.counters.dtmf_sent == 0


@pytest.mark.parametrize("digits", ["x", "12e", " "])
def test_only_dtmf_digits_are_accepted(digits: str) -> None:
    alice, _ = pair()
    with pytest.raises(ValueError, match="not a DTMF digit"):
        alice.send_dtmf(digits)


# --- RTCP (RFC 3550 §6) --------------------------------------------------------------------


def test_rtcp_is_due_after_the_initial_interval() -> None:
    alice, _ = pair()
    assert not alice.rtcp_due(0.0)
    assert alice.rtcp_due(60.0)
    alice.rtcp_packet(60.0, 1_700_000_000.0)
    assert not alice.rtcp_due(60.0)  # the next report is scheduled later
    assert alice.rtcp_due(120.0)


def test_a_sender_reports_with_an_sr_and_its_cname() -> None:
    alice, _ = pair()
    send(alice, 3)
    packets = rtcp.parse_compound(alice.rtcp_packet(1.0, 1_700_000_000.0))
    sr, sdes = packets
    assert isinstance(sr, rtcp.SenderReport)
    assert sr.ssrc == alice.ssrc
    assert (sr.packet_count, sr.octet_count) == (3, 480)
    assert sr.ntp_timestamp == rtcp.ntp_from_unix(1_700_000_000.0)
    assert sr.reports == []  # nothing received yet
    assert isinstance(sdes, rtcp.SourceDescription)
    assert sdes.chunks[0].cname == "alice@127.0.0.1"
    assert alice.counters.rtcp_sent == 1


def test_a_silent_member_reports_with_an_rr_and_bye_when_leaving() -> None:
    alice, _ = pair()
    send(alice, 1)
    alice.rtcp_packet(1.0, 1_700_000_000.0)  # the SR covering that packet
    packets = rtcp.parse_compound(alice.rtcp_packet(2.0, 1_700_000_001.0, bye=True))
    assert isinstance(packets[0], rtcp.ReceiverReport)
    assert isinstance(packets[-1], rtcp.Bye)
    assert packets[-1].sources == [alice.ssrc]


def test_reports_tell_each_side_how_its_stream_arrived() -> None:
    alice, bob = pair()
    packets = send(alice, 10)
    deliver(packets[:4] + packets[5:], bob)  # one of ten lost
    wallclock = 1_700_000_000.0
    bob.receive(alice.rtcp_packet(1.0, wallclock), ALICE_RTCP, 1.0)
    assert bob.counters.rtcp_received == 1
    data = bob.rtcp_packet(1.5, wallclock + 0.5)
    report = rtcp.parse_compound(data)[0]
    assert isinstance(report, rtcp.ReceiverReport)
    (block,) = report.reports
    assert block.ssrc == alice.ssrc
    assert block.cumulative_lost == 1
    assert block.lsr == rtcp.ntp_middle32(rtcp.ntp_from_unix(wallclock))
    assert block.dlsr == rtcp.ntp_short_from_seconds(0.5)
    alice.receive(data, BOB_RTCP, 1.5)
    assert alice.stats()["remote_fraction_lost"] == block.fraction_lost / 256 > 0
    alice.receive(bob.rtcp_packet(2.0, wallclock + 1), BOB_RTCP, 2.0)
    assert alice.counters.rtcp_received == 2
    assert alice.stats()["remote_jitter_ms"] == pytest.approx(bob.stats()["jitter_ms"], abs=0.2)


def test_reports_about_other_sources_are_ignored() -> None:
    alice, _ = pair()
    other = rtcp.ReceiverReport(1, [rtcp.ReportBlock(alice.ssrc ^ 1, fraction_lost=128)])
    alice.receive(rtcp.serialize_compound([other]), BOB_RTCP, 0.0)
    assert alice.counters.rtcp_received == 1
    assert alice.stats()["remote_fraction_lost"] is None


def test_a_loss_report_reaches_the_sender() -> None:
    alice, _ = pair()
    report = rtcp.ReceiverReport(1, [rtcp.ReportBlock(alice.ssrc, fraction_lost=64, jitter=80)])
    alice.receive(rtcp.serialize_compound([report]), BOB_RTCP, 0.0)
    assert alice.stats()["remote_fraction_lost"] == 0.25
    assert alice.stats()["remote_jitter_ms"] == 10.0


# --- no plain RTP when SRTP is mandatory (RFC 3711) ----------------------------------------


def test_mandatory_srtp_without_keys_sends_nothing_and_drops_plain_input() -> None:
    plain_alice, _ = pair()
    alice, bob = pair(proto="RTP/SAVP")
    alice.set_srtp(None, True)
    bob.set_srtp(None, True)
    alice.send_dtmf("1")
    assert not alice.sending
    assert send(alice, 5) == []
    assert alice.counters.packets_sent == 0
    deliver(send(plain_alice, 3), bob)
    bob.receive(plain_alice.rtcp_packet(1.0, 1_700_000_000.0), ALICE_RTCP, 1.0)
    assert bob.plain_dropped == 4
    assert bob.counters.packets_received == 0
    assert bob.counters.rtcp_received == 0
    assert bob.last_source is None
    assert bob.stats()["plain_dropped"] == 4
    assert bob.stats()["encryption"] == "none"


def test_srtp_packets_round_trip_between_two_libsrtp_contexts() -> None:
    alice, bob = keyed_pair()
    packets = send(alice, 5)
    clear = PCMU.encode(tone(0))
    assert clear not in packets[0]  # the payload is encrypted on the wire
    assert len(packets[0]) == 12 + 160 + 10  # header, payload, 80-bit tag
    deliver(packets, bob)
    assert bob.counters.packets_received == 5
    played = [bob.playout(1.0 + n * FRAME) for n in range(5)]
    assert np.array_equal(played[4], PCMU.decode(PCMU.encode(tone(4))))
    figures = bob.stats()
    assert figures["encryption"] == "srtp"
    assert figures["srtp"] == {
        "suite": SUITE,
        "packets_protected": 0,
        "packets_unprotected": 5,
        "auth_failures": 0,
        "rtcp_auth_failures": 0,
        "replay_failures": 0,
    }
    assert alice.stats()["srtp"]["packets_protected"] == 5  # type: ignore[index]


def test_srtp_dtmf_round_trips() -> None:
    alice, bob = keyed_pair()
    alice.send_dtmf("9")
    assert deliver(send(alice, 20), bob) == ["9"]


def test_srtcp_round_trips_and_a_forged_report_is_dropped() -> None:
    alice, bob = keyed_pair()
    deliver(send(alice, 4), bob)
    report = alice.rtcp_packet(1.0, 1_700_000_000.0)
    assert b"alice@127.0.0.1" not in report  # SRTCP encrypts the SDES chunk
    bob.receive(report, ALICE_RTCP, 1.0)
    assert bob.counters.rtcp_received == 1
    forged = bytearray(alice.rtcp_packet(2.0, 1_700_000_001.0))
    forged[10] ^= 0xFF
    bob.receive(bytes(forged), ALICE_RTCP, 2.0)
    assert bob.counters.rtcp_received == 1
    assert bob.srtp is not None and bob.srtp.auth_failures == 1


def test_srtp_auth_failures_and_replays_are_counted_and_dropped() -> None:
    alice, bob = keyed_pair()
    first, second = send(alice, 2)
    tampered = bytearray(second)
    tampered[20] ^= 0x01
    bob.receive(bytes(tampered), ALICE, 0.0)
    bob.receive(first, ALICE, 0.02)
    bob.receive(first, ALICE, 0.04)  # replayed
    assert bob.counters.packets_received == 1
    srtp = bob.stats()["srtp"]
    assert isinstance(srtp, dict)
    assert srtp["auth_failures"] == 1
    assert srtp["replay_failures"] == 1


def test_plain_rtp_does_not_pass_a_keyed_stream() -> None:
    plain_alice, _ = pair()
    _, bob = keyed_pair()
    deliver(send(plain_alice, 3), bob)
    assert bob.counters.packets_received == 0
    assert bob.srtp is not None and bob.srtp.auth_failures == 3


def test_a_wrong_key_is_an_auth_failure() -> None:
    alice, _ = keyed_pair()
    _, bob = keyed_pair()
    deliver(send(alice, 2), bob)
    assert bob.counters.packets_received == 0
    assert bob.srtp is not None and bob.srtp.auth_failures == 2


def test_optional_srtp_with_keys_still_encrypts() -> None:
    alice, bob = keyed_pair(required=False)
    packets = send(alice, 3)
    assert PCMU.encode(tone(1)) not in packets[1]
    deliver(packets, bob)
    assert bob.counters.packets_received == 3


# --- the source address of every packet ----------------------------------------------------


def test_the_source_of_the_last_accepted_packet_is_recorded() -> None:
    alice, bob = pair()
    deliver(send(alice, 2), bob)
    assert bob.last_source == ALICE
    assert bob.counters.foreign_source == 0
    assert bob.stats()["last_source"] == "127.0.0.1:40000"
    assert bob.stats()["foreign_source"] == 0


@pytest.mark.parametrize("source", [("127.0.0.1", 40002), ("127.0.0.2", 40000)])
def test_plain_packets_from_another_address_are_dropped(source: tuple[str, int]) -> None:
    """A stranger cannot inject audio (or digits) into a plain call."""
    alice, bob = pair()
    packets = send(alice, 4)
    deliver(packets[:2], bob)
    for n, data in enumerate(packets[2:]):
        bob.receive(data, source, (2 + n) * FRAME)
    assert bob.counters.foreign_source == 2 and bob.counters.foreign_dropped == 2
    assert bob.counters.packets_received == 2
    assert bob.last_source == ALICE and bob.latched is None


def test_injected_dtmf_from_a_stranger_is_ignored() -> None:
    alice, bob = pair()
    alice.send_dtmf("5")
    packets = send(alice, 20)
    for n, data in enumerate(packets):
        bob.receive(data, ("127.0.0.66", 40000), n * FRAME)
    assert len(packets) > 5
    assert list(bob.digits) == [] and bob.counters.foreign_dropped == len(packets)


def test_symmetric_rtp_latches_onto_the_new_source() -> None:
    alice, bob = pair()
    bob.symmetric_rtp = True
    packets = send(alice, 4)
    deliver(packets[:2], bob)
    for n, data in enumerate(packets[2:]):
        bob.receive(data, ("127.0.0.2", 41000), (2 + n) * FRAME)
    assert bob.counters.packets_received == 4 and bob.counters.foreign_dropped == 0
    assert bob.latched == ("127.0.0.2", 41000)
    played = [bob.playout(1.0 + n * FRAME) for n in range(4)]
    assert np.array_equal(played[3], PCMU.decode(PCMU.encode(tone(3))))


def test_symmetric_rtp_latches_back_when_the_peer_sends_from_its_address_again() -> None:
    """With plain RTP and symmetric RTP on, a stranger's packet latches (documented); the peer's
    next packet from the negotiated address takes the media back."""
    alice, bob = pair()
    bob.symmetric_rtp = True
    stranger = pair()[0]
    deliver(send(alice, 1), bob)
    bob.receive(send(stranger, 1)[0], ("203.0.113.5", 40000), FRAME)
    assert bob.latched == ("203.0.113.5", 40000)
    bob.receive(send(alice, 1, start=1)[0], ALICE, 2 * FRAME)
    assert bob.latched == ALICE


def test_authenticated_srtp_from_another_address_is_accepted_and_latches_only_if_allowed() -> None:
    alice, bob = keyed_pair()
    packets = send(alice, 3)
    deliver(packets[:1], bob)
    bob.receive(packets[1], ("127.0.0.7", 43000), FRAME)
    assert bob.counters.packets_received == 2 and bob.latched is None
    bob.symmetric_rtp = True
    bob.receive(packets[2], ("127.0.0.7", 43000), 2 * FRAME)
    assert bob.latched == ("127.0.0.7", 43000)


def test_rtcp_is_expected_from_the_rtcp_port() -> None:
    alice, bob = pair()
    bob.receive(alice.rtcp_packet(0.0, 1_700_000_000.0), ALICE_RTCP, 0.0)
    assert bob.counters.foreign_source == 0
    bob.receive(alice.rtcp_packet(1.0, 1_700_000_001.0), ALICE, 1.0)
    assert bob.counters.foreign_source == 1 and bob.counters.rtcp_received == 1  # dropped
    assert bob.last_source == ALICE_RTCP


def test_muxed_rtcp_is_expected_from_the_rtp_port() -> None:
    alice, bob = pair(rtcp_mux=True)
    bob.receive(alice.rtcp_packet(0.0, 1_700_000_000.0), ALICE, 0.0)
    assert bob.counters.foreign_source == 0
    bob.receive(alice.rtcp_packet(1.0, 1_700_000_001.0), ALICE_RTCP, 1.0)
    assert bob.counters.foreign_source == 1


def test_ipv6_sources_compare_as_addresses() -> None:
    alice = MediaStream("alice@[::1]")
    bob = MediaStream("bob@[::1]")
    alice.configure(negotiated(("::1", 42000)))
    bob.configure(negotiated(("::1", 40000)))
    packets = send(alice, 2)
    bob.receive(packets[0], ("0:0::1", 40000), 0.0)
    assert bob.counters.foreign_source == 0
    assert bob.stats()["last_source"] == "[0:0::1]:40000"
    bob.receive(packets[1], ("::2", 40000), 0.02)
    assert bob.counters.foreign_source == 1


def test_a_host_name_in_the_sdp_compares_as_text() -> None:
    alice, _ = pair()
    bob = MediaStream("bob@localhost")
    bob.configure(negotiated(("localhost", 40000)))
    packets = send(alice, 2)
    bob.receive(packets[0], ("localhost", 40000), 0.0)
    bob.receive(packets[1], ("127.0.0.1", 40000), 0.02)
    assert bob.counters.foreign_source == 1


def test_with_mandatory_srtp_a_forged_packet_from_elsewhere_is_dropped_not_recorded() -> None:
    alice, bob = keyed_pair()
    plain_alice, _ = pair()
    deliver(send(alice, 1), bob)
    bob.receive(send(plain_alice, 1)[0], ("127.0.0.9", 5000), 0.02)
    assert bob.last_source == ALICE
    assert bob.counters.foreign_source == 0
    assert bob.counters.packets_received == 1
    assert bob.srtp is not None and bob.srtp.auth_failures == 1


def test_silence_is_judged_from_the_last_packet_and_not_while_held() -> None:
    alice, bob = pair()
    assert not bob.silent(5.0, since=0.0, timeout=10)
    assert bob.silent(10.0, since=0.0, timeout=10)  # never heard anything
    deliver(send(alice, 1), bob)  # heard at t=0
    bob.receive(send(alice, 1)[0], ALICE, 8.0)
    assert not bob.silent(17.0, since=0.0, timeout=10)
    assert bob.silent(18.0, since=0.0, timeout=10)
    assert not bob.silent(18.0, since=15.0, timeout=10)  # a re-INVITE at 15 starts anew
    assert not bob.silent(100.0, since=0.0, timeout=0)  # 0 = never
    bob.configure(negotiated(ALICE, local_direction="sendonly"))  # they need not send to us
    assert not bob.silent(100.0, since=0.0, timeout=10)


def test_stun_on_the_media_port_is_not_counted_as_plain_rtp() -> None:
    """linphone sends STUN Binding requests to our RTP port (RFC 7983: first byte 0..3)."""
    _, bob = pair()
    bob.require_srtp = True
    stun = bytes.fromhex("0001000021124442") + bytes(12)
    assert bob.receive(stun, ALICE, 0.0) == []
    assert bob.counters.not_media == 1 and bob.plain_dropped == 0 and bob.counters.malformed == 0


class _AgreeOnFirstDatagram:
    """A path keying that agrees fixed keys when its first datagram arrives."""

    method = KeyingMethod.ZRTP

    def __init__(self, suite: str, local: bytes, remote: bytes) -> None:
        self.events: list[KeyingEvent] = []
        self.keys = KeysAgreed(self.method, suite, local, remote)

    def start(self, now: float) -> None: ...

    def receive(self, datagram: bytes, source: tuple[str, int], now: float) -> None:
        self.events.append(self.keys)

    def datagrams_to_send(self) -> list[bytes]:
        return []

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None: ...

    def next_event(self) -> KeyingEvent | None:
        return self.events.pop(0) if self.events else None

    def srtp_authenticated(self) -> None: ...

    def summary(self) -> dict[str, object]:
        return {}

    def close(self) -> None: ...


def test_a_strangers_keying_packets_do_not_keep_a_silent_call_alive() -> None:
    """ZRTP/DTLS packets go to the path keying from any address (it judges them), but only the
    peer's count as hearing from the peer for the silence check."""
    _, bob = pair()
    bob.set_keying(
        _AgreeOnFirstDatagram(SUITE, generate_key(SUITE), generate_key(SUITE)), required=True
    )
    zrtp_like = b"\x10\x00\x00\x01ZRTP" + bytes(20)
    for n in range(20):
        bob.receive(zrtp_like, ("203.0.113.7", 4000 + n), float(n))
    assert bob.last_heard is None and bob.silent(19.0, since=0.0, timeout=10)
    bob.receive(zrtp_like, ALICE, 19.5)
    assert bob.last_heard == 19.5 and not bob.silent(20.0, since=0.0, timeout=10)


def test_keying_packets_are_taken_only_from_the_peer_unless_symmetric_rtp() -> None:
    """Like plain RTP: with symmetric RTP off only the negotiated address takes part in a ZRTP
    or DTLS handshake (a blind stranger cannot abort or steer it); with it on (NAT), the
    keying itself judges a packet from elsewhere."""
    zrtp_like = b"\x10\x00\x00\x01ZRTP" + bytes(20)
    for symmetric in (False, True):
        _, bob = pair()
        bob.symmetric_rtp = symmetric
        bob.set_keying(
            _AgreeOnFirstDatagram(SUITE, generate_key(SUITE), generate_key(SUITE)), required=True
        )
        bob.receive(zrtp_like, ("203.0.113.7", 4000), 0.0)
        taken = [type(e) for e in bob.poll_keying(0.0)]
        assert taken == ([KeysAgreed] if symmetric else [])
        assert bob.counters.foreign_source == 1
        assert bob.counters.foreign_dropped == (0 if symmetric else 1)
        if not symmetric:
            bob.receive(zrtp_like, ALICE, 0.1)
            assert [type(e) for e in bob.poll_keying(0.1)] == [KeysAgreed]


def test_keys_agreed_in_the_media_path_key_the_very_next_datagram() -> None:
    """linphone sends its first SRTP packet right behind its Conf2ACK: both arrive in one read,
    before the shell polls the keying. The agreed keys must already unprotect that packet."""
    alice, bob = pair()
    a_key, b_key = generate_key(SUITE), generate_key(SUITE)
    alice.set_srtp(SrtpContext(SUITE, a_key, b_key), required=True)
    bob.set_keying(_AgreeOnFirstDatagram(SUITE, b_key, a_key), required=True)
    zrtp_like = b"\x10\x00\x00\x01ZRTP" + bytes(20)
    bob.receive(zrtp_like, ALICE, 0.0)
    packet = alice.next_packet(tone())
    assert packet is not None
    bob.receive(packet, ALICE, 0.0)
    assert bob.plain_dropped == 0 and bob.counters.packets_received == 1
    events = bob.poll_keying(0.0)  # the shell still hears about the agreement, once
    assert [type(e) for e in events] == [KeysAgreed] and bob.poll_keying(0.0) == []
