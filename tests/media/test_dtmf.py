"""RFC 4733 telephone-events: payload, sender packet sequence, receiver de-duplication."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securephone.media.codecs.dtmf import (
    DTMF_DIGITS,
    MAX_OPEN_EVENTS,
    DtmfDigit,
    DtmfPacket,
    DtmfReceiver,
    TelephoneEvent,
    digit_to_event,
    dtmf_packets,
    event_to_digit,
)
from securephone.media.rtp import MediaParseError, RtpPacket

SSRC = 0x5EC0DE


# --- payload (RFC 4733 §2.3) -----------------------------------------------------------------
#  0                   1                   2                   3
#  |     event     |E|R| volume    |          duration             |


def test_payload_bytes_by_hand() -> None:
    # digit 5, E=1, R=0, volume 10 (-10 dBm0), duration 800 (100 ms at 8 kHz)
    # -> 05 | 1 0 001010 = 0x8a | 0x0320
    event = TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert bytes(event) == bytes.fromhex("05 8a 0320")
    assert TelephoneEvent.parse(bytes.fromhex("05 8a 0320")) == event


def test_payload_start_packet_and_reserved_bit() -> None:
    assert TelephoneEvent.parse(bytes.fromhex("0b 0a 00a0")) == TelephoneEvent(11, False, 10, 160)
    # R bit set by the sender: ignored on receipt (RFC 4733 §2.3).
    assert TelephoneEvent.parse(bytes.fromhex("0b 4a 00a0")) == TelephoneEvent(11, False, 10, 160)
    assert TelephoneEvent.parse(bytes.fromhex("0b ff ffff")) == TelephoneEvent(11, True, 63, 65535)


def test_payload_too_short_and_extra_octets() -> None:
    with pytest.raises(MediaParseError):
        TelephoneEvent.parse(b"\x01\x02\x03")
    assert TelephoneEvent.parse(bytes.fromhex("01 0a 0000 ffffffff")).event == 1


@pytest.mark.parametrize(
    "event",
    [TelephoneEvent(256), TelephoneEvent(1, volume=64), TelephoneEvent(1, duration=65536)],
)
def test_payload_out_of_range(event: TelephoneEvent) -> None:
    with pytest.raises(ValueError):
        bytes(event)


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    payload = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(bytes(payload)) == payload


def test_digit_mapping() -> None:
    # RFC 4733 §3.2: 0-9 are events 0-9, * = 10, # = 11, A-D = 12-15.
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("d") == 15
    assert event_to_digit(10) == "*" and event_to_digit(11) == "#"
    assert event_to_digit(16) is None  # flash, not a digit
    for bad in ("E", "", "12", " "):
        with pytest.raises(ValueError):
            digit_to_event(bad)


# --- sender (RFC 4733 §2.5.1) ----------------------------------------------------------------


def test_sender_100ms_digit() -> None:
    packets = list(dtmf_packets("5", timestamp=12345))
    assert [p.offset_ms for p in packets] == [0, 50, 100, 150]
    assert {p.timestamp for p in packets} == {12345}  # one event, one timestamp
    assert [p.marker for p in packets] == [True, False, False, False]
    assert [p.event.duration for p in packets] == [400, 800, 800, 800]
    assert [p.event.end for p in packets] == [False, True, True, True]
    assert {p.event.event for p in packets} == {5}
    # The three end packets are the same packet (RFC 4733 §2.5.1.4).
    assert len({bytes(p.event) for p in packets[1:]}) == 1


def test_sender_long_digit_and_options() -> None:
    packets = list(dtmf_packets("#", 0, duration_ms=250, volume=7))
    assert [p.event.duration for p in packets] == [400, 800, 1200, 1600, 2000, 2000, 2000]
    assert [p.event.end for p in packets] == [False] * 4 + [True] * 3
    assert {p.event.volume for p in packets} == {7}
    assert {p.event.event for p in packets} == {11}


def test_sender_digit_shorter_than_one_interval() -> None:
    packets = list(dtmf_packets("1", 99, duration_ms=40, interval_ms=50, end_repeats=3))
    assert [(p.marker, p.event.end, p.event.duration) for p in packets] == [
        (True, True, 320),
        (False, True, 320),
        (False, True, 320),
    ]


def test_sender_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(dtmf_packets("X", 0))
    with pytest.raises(ValueError):
        list(dtmf_packets("1", 0, duration_ms=0))
    with pytest.raises(ValueError):
        list(dtmf_packets("1", 0, duration_ms=9000))  # 72000 units: over 16 bits
    with pytest.raises(ValueError):
        list(dtmf_packets("1", 0, end_repeats=0))


def test_to_rtp() -> None:
    first = next(dtmf_packets("9", 4000))
    rtp = first.to_rtp(payload_type=101, ssrc=SSRC, sequence_number=77)
    assert rtp == RtpPacket(
        payload_type=101,
        sequence_number=77,
        timestamp=4000,
        ssrc=SSRC,
        payload=bytes.fromhex("09 0a 0190"),
        marker=True,
    )
    assert RtpPacket.parse(bytes(rtp)) == rtp


# --- receiver (RFC 4733 §2.5.2) --------------------------------------------------------------


def _rtp(packets: list[DtmfPacket], first_seq: int = 1000) -> list[RtpPacket]:
    return [p.to_rtp(101, SSRC, (first_seq + i) & 0xFFFF) for i, p in enumerate(packets)]


def _feed(receiver: DtmfReceiver, packets: list[RtpPacket]) -> list[DtmfDigit]:
    digits: list[DtmfDigit] = []
    for packet in packets:
        digits.extend(receiver.receive(packet))
    return digits


def test_three_end_packets_report_one_digit() -> None:
    receiver = DtmfReceiver()
    digits = _feed(receiver, _rtp(list(dtmf_packets("7", 160_000))))
    assert digits == [DtmfDigit("7", 7, 160_000, 800, 10, ended=True)]
    assert receiver.flush() == []


def test_reported_at_the_first_end_packet() -> None:
    receiver = DtmfReceiver()
    start, end1, end2, end3 = _rtp(list(dtmf_packets("3", 8000)))
    assert receiver.receive(start) == []
    assert [d.digit for d in receiver.receive(end1)] == ["3"]
    assert receiver.receive(end2) == [] and receiver.receive(end3) == []


def test_reordered_packets_report_one_digit() -> None:
    receiver = DtmfReceiver()
    start, end1, end2, end3 = _rtp(list(dtmf_packets("A", 8000)))
    digits = _feed(receiver, [end2, start, end1, end3, start])
    assert digits == [DtmfDigit("A", 12, 8000, 800, 10, ended=True)]


def test_lost_end_packets_are_reported_by_the_next_event() -> None:
    receiver = DtmfReceiver()
    first = _rtp(list(dtmf_packets("1", 1000, duration_ms=150)))[:2]  # no end packet arrives
    second = _rtp(list(dtmf_packets("2", 5000)), first_seq=2000)
    digits = _feed(receiver, first + second)
    assert digits == [
        DtmfDigit("1", 1, 1000, 800, 10, ended=False),
        DtmfDigit("2", 2, 5000, 800, 10, ended=True),
    ]


def test_start_packets_with_ever_older_timestamps_keep_few_events_open() -> None:
    """Each packet starts an event older than every open one, so none supersedes another: the
    receiver keeps at most MAX_OPEN_EVENTS open and reports the first heard of beyond that."""
    receiver = DtmfReceiver()
    starts = [next(iter(dtmf_packets("5", 100_000_000 - n * 800))) for n in range(2000)]
    digits = _feed(receiver, _rtp(starts))
    assert len(receiver._open) == MAX_OPEN_EVENTS
    assert len(digits) == 2000 - MAX_OPEN_EVENTS
    assert [d.timestamp for d in digits[:2]] == [100_000_000, 100_000_000 - 800]
    assert not any(d.ended for d in digits)
    assert len(receiver.flush()) == MAX_OPEN_EVENTS


def test_flush_reports_an_unfinished_event_once() -> None:
    receiver = DtmfReceiver()
    start = _rtp(list(dtmf_packets("#", 42)))[0]
    assert receiver.receive(start) == []
    assert receiver.flush() == [DtmfDigit("#", 11, 42, 400, 10, ended=False)]
    assert receiver.flush() == []
    assert receiver.receive(start) == []  # a straggler of the flushed event


def test_same_digit_twice_is_two_events() -> None:
    receiver = DtmfReceiver()
    packets = _rtp(list(dtmf_packets("5", 0)) + list(dtmf_packets("5", 2400)))
    assert [d.timestamp for d in _feed(receiver, packets)] == [0, 2400]


def test_events_keyed_by_ssrc_as_well() -> None:
    receiver = DtmfReceiver()
    end = list(dtmf_packets("4", 800))[-1]
    digits = receiver.receive(end.to_rtp(101, 1, 1)) + receiver.receive(end.to_rtp(101, 2, 1))
    assert len(digits) == 2


def test_non_dtmf_events_are_ignored() -> None:
    receiver = DtmfReceiver()
    flash = RtpPacket(payload_type=101, ssrc=SSRC, timestamp=1, payload=bytes.fromhex("10 8a 0320"))
    assert receiver.receive(flash) == []
    assert receiver.flush() == []


def test_malformed_payload_raises_media_parse_error() -> None:
    with pytest.raises(MediaParseError):
        DtmfReceiver().receive(RtpPacket(payload_type=101, payload=b"\x01"))


def test_a_pin_survives_shuffling_within_each_event() -> None:
    rng = random.Random(4733)
    receiver = DtmfReceiver()
    packets: list[RtpPacket] = []
    for n, digit in enumerate("1234*#"):
        press = _rtp(list(dtmf_packets(digit, 10_000 + 2400 * n)), first_seq=10 * n)
        rng.shuffle(press)
        packets.extend(press)
    assert "".join(d.digit for d in _feed(receiver, packets)) == "1234*#"


@given(
    st.sampled_from(DTMF_DIGITS),
    st.integers(1, 400),
    st.lists(st.integers(0, 20), min_size=1, max_size=30),
)
def test_any_order_and_repetition_reports_exactly_once(
    digit: str, duration_ms: int, picks: list[int]
) -> None:
    press = _rtp(list(dtmf_packets(digit, 777, duration_ms=duration_ms)))
    receiver = DtmfReceiver()
    stream = [press[i % len(press)] for i in picks]
    digits = _feed(receiver, stream) + receiver.flush()
    assert [d.digit for d in digits] == [digit]
    assert digits[0].ended == any(TelephoneEvent.parse(p.payload).end for p in stream)
