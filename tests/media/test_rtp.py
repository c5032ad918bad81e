"""RTP packets (RFC 3550 §5.1, §5.3.1), RTP/RTCP demux (RFC 5761 §4), App. A.1/A.8 statistics."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securephone.errors import RemoteProtocolError
from securephone.media.rtcp import parse_compound
from securephone.media.rtp import (
    HeaderExtension,
    MediaParseError,
    RtpPacket,
    RtpReceiverStats,
    is_rtcp,
    seq_add,
    seq_diff,
    seq_gt,
    seq_lt,
    ts_diff,
)

# RFC 3550 §5.1 fixed header, built by hand:
#  byte 0: V=2 (10) P=0 X=0 CC=0000          -> 0x80
#  byte 1: M=0 PT=0 (PCMU)                   -> 0x00
#  bytes 2-3: sequence number 0x1234
#  bytes 4-7: timestamp 4000 = 0x00000FA0
#  bytes 8-11: SSRC 0xDEADBEEF
#  then 160 octets of µ-law silence (0xFF)
SIMPLE = bytes.fromhex("80 00 1234 00000fa0 deadbeef") + b"\xff" * 160

# Every optional part (RFC 3550 §5.1, §5.3.1):
#  byte 0: V=2 P=1 X=1 CC=2 -> 10 1 1 0010 = 0xB2
#  byte 1: M=1 PT=8 (PCMA)  -> 1 0001000   = 0x88
#  sequence 0xFFFF, timestamp 0xFFFFFFFF, SSRC 0x01020304
#  CSRC list: 0x11111111, 0x22222222
#  extension: profile 0xBEDE, length 1 word, data 10 aa bb cc
#  payload d5 d5, then padding: 3 zero octets and the count 4
FULL = bytes.fromhex(
    "b2 88 ffff ffffffff 01020304 11111111 22222222 bede 0001 10aabbcc d5d5 000000 04"
)


def test_parse_simple_header() -> None:
    packet = RtpPacket.parse(SIMPLE)
    assert packet.version == 2
    assert packet.payload_type == 0
    assert packet.marker is False
    assert packet.sequence_number == 0x1234
    assert packet.timestamp == 4000
    assert packet.ssrc == 0xDEADBEEF
    assert packet.csrc == []
    assert packet.extension is None
    assert packet.padding == 0
    assert packet.payload == b"\xff" * 160
    assert bytes(packet) == SIMPLE


def test_parse_all_optional_parts() -> None:
    packet = RtpPacket.parse(FULL)
    assert packet.marker is True
    assert packet.payload_type == 8
    assert packet.sequence_number == 0xFFFF
    assert packet.timestamp == 0xFFFFFFFF
    assert packet.ssrc == 0x01020304
    assert packet.csrc == [0x11111111, 0x22222222]
    assert packet.extension == HeaderExtension(0xBEDE, bytes.fromhex("10aabbcc"))
    assert packet.payload == b"\xd5\xd5"
    assert packet.padding == 4
    assert bytes(packet) == FULL


def test_build_matches_hand_made_bytes() -> None:
    packet = RtpPacket(
        payload_type=8,
        sequence_number=0xFFFF,
        timestamp=0xFFFFFFFF,
        ssrc=0x01020304,
        payload=b"\xd5\xd5",
        marker=True,
        csrc=[0x11111111, 0x22222222],
        extension=HeaderExtension(0xBEDE, bytes.fromhex("10aabbcc")),
        padding=4,
    )
    assert bytes(packet) == FULL


def test_padding_may_fill_the_whole_payload() -> None:
    data = bytes.fromhex("a0 00 0001 00000000 00000001 00000004")
    packet = RtpPacket.parse(data)
    assert packet.payload == b"" and packet.padding == 4


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (SIMPLE[:11], "shorter than the fixed header"),
        (bytes([0x40]) + SIMPLE[1:], "version 1"),
        (bytes([0x00]) + SIMPLE[1:], "version 0"),
        (bytes([0x82]) + SIMPLE[1:12] + b"\x00\x00\x00\x01", "CC=2 but one CSRC"),
        (bytes([0x90]) + SIMPLE[1:12] + b"\xbe\xde", "extension header cut"),
        (bytes([0x90]) + SIMPLE[1:12] + bytes.fromhex("bede0002 00000000"), "extension cut"),
        (bytes([0xA0]) + SIMPLE[1:12] + b"\x00\x00", "padding count 0"),
        (bytes([0xA0]) + SIMPLE[1:12] + b"\x00\x05", "padding longer than the payload"),
        (bytes([0xA0]) + SIMPLE[1:12], "padding count is a header octet"),
    ],
)
def test_malformed_packets_raise_media_parse_error(data: bytes, why: str) -> None:
    with pytest.raises(MediaParseError):
        RtpPacket.parse(data)


def test_media_parse_error_is_a_remote_protocol_error_and_a_value_error() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        RtpPacket.parse(b"\x80")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(payload_type=128),
        RtpPacket(sequence_number=65536),
        RtpPacket(timestamp=-1),
        RtpPacket(ssrc=1 << 32),
        RtpPacket(csrc=list(range(16))),
        RtpPacket(padding=256),
        RtpPacket(extension=HeaderExtension(0x1000, b"abc")),
        RtpPacket(extension=HeaderExtension(0x10000, b"")),
    ],
)
def test_serialising_out_of_range_fields_raises_value_error(packet: RtpPacket) -> None:
    with pytest.raises(ValueError):
        bytes(packet)


u32 = st.integers(0, 0xFFFFFFFF)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15),
    extension=st.none()
    | st.builds(
        HeaderExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(bytes(packet)) == packet


@given(st.binary(max_size=300))
def test_parse_arbitrary_bytes_only_raises_media_parse_error(data: bytes) -> None:
    for parse in (RtpPacket.parse, parse_compound):
        with contextlib.suppress(MediaParseError):
            parse(data)


@given(packets, st.data())
def test_parse_mutated_packets_only_raises_media_parse_error(
    packet: RtpPacket, data: st.DataObject
) -> None:
    raw = bytearray(bytes(packet))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(MediaParseError):
            RtpPacket.parse(candidate)


# --- RFC 5761 §4 demultiplexing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_octet", "expected"),
    [
        (0x00, False),  # PCMU
        (0x08, False),  # PCMA
        (0x80, False),  # PCMU with marker
        (0x65, False),  # telephone-event 101
        (0xE5, False),  # telephone-event 101 with marker
        (0x7F, False),  # PT 127
        (0x3F, False),  # PT 63, just below the RTCP range
        (0xC8, True),  # RTCP SR 200 -> 72
        (0xC9, True),  # RTCP RR 201 -> 73
        (0xC0, True),  # 192 -> 64, first of the range
        (0xDF, True),  # 223 -> 95, last of the range
        (0xE0, False),  # 224 -> 96: dynamic RTP PT 96 with marker, not RTCP
    ],
)
def test_is_rtcp(second_octet: int, expected: bool) -> None:
    assert is_rtcp(bytes([0x80, second_octet, 0, 1])) is expected


def test_is_rtcp_on_short_data() -> None:
    assert not is_rtcp(b"")
    assert not is_rtcp(b"\x80")


# --- sequence and timestamp arithmetic -------------------------------------------------------


def test_sequence_arithmetic_across_the_wrap() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768
    assert seq_gt(0, 65535) and seq_lt(65535, 0)
    assert not seq_gt(5, 5) and not seq_lt(5, 5)
    assert ts_diff(0, 0xFFFFFFFF) == 1
    assert ts_diff(0xFFFFFF60, 0) == -160


@given(st.integers(0, 0xFFFF), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(seq: int, delta: int) -> None:
    assert seq_diff(seq_add(seq, delta), seq) == delta


# --- RFC 3550 App. A.1 / A.8 statistics ------------------------------------------------------


def _pkt(seq: int, ts: int = 0, ssrc: int = 7) -> RtpPacket:
    return RtpPacket(sequence_number=seq, timestamp=ts, ssrc=ssrc)


def test_a1_loss_reorder_duplicate_and_wrap_hand_computed() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    # Arrival order; 65535 and 4 are lost, 1 comes after 2, 3 is duplicated.
    arrivals = [65532, 65533, 65534, 0, 2, 1, 3, 3, 5]
    counted = [stats.update(_pkt(seq), 0.0) for seq in arrivals]
    # A.1: the first packet only starts probation; the second (in sequence) validates the
    # source and re-initialises at itself, so base_seq = 65533.
    assert counted == [False, True, True, True, True, True, True, True, True]
    assert stats.valid
    assert stats.base_seq == 65533
    assert stats.cycles == 65536  # one wrap, seen at seq 0
    assert stats.max_seq == 5
    assert stats.extended_highest_sequence == 65541
    assert stats.expected == 9  # 65533, 65534, 65535, 0, 1, 2, 3, 4, 5
    assert stats.received == 8  # the duplicate counts as received (A.3)
    assert stats.lost == 1  # 2 really lost, minus 1 duplicate
    assert stats.fraction_lost_since_last_report() == 28  # (1 << 8) // 9
    assert stats.fraction_lost_since_last_report() == 0  # nothing new since
    for seq in (6, 7):
        stats.update(_pkt(seq), 0.0)
    assert stats.fraction_lost_since_last_report() == 0  # 2 expected, 2 received
    for seq in (9, 10):  # 8 is lost
        stats.update(_pkt(seq), 0.0)
    assert stats.expected == 14
    assert stats.lost == 2
    assert stats.fraction_lost_since_last_report() == 85  # (1 << 8) // 3


def test_a1_probation_restarts_on_a_gap() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    assert not stats.update(_pkt(100), 0.0)
    assert not stats.update(_pkt(200), 0.0)  # not in sequence: probation starts over
    assert not stats.valid
    assert stats.lost == 0
    assert stats.update(_pkt(201), 0.0)
    assert stats.valid and stats.base_seq == 201 and stats.received == 1


def test_a1_probation_across_the_wrap() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    assert not stats.update(_pkt(65535), 0.0)
    assert stats.update(_pkt(0), 0.0)
    assert stats.base_seq == 0 and stats.cycles == 0


def test_a1_large_jump_needs_confirmation_then_restarts() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    for seq in (10, 11, 12):
        stats.update(_pkt(seq), 0.0)
    assert stats.received == 2
    assert not stats.update(_pkt(20000), 0.0)  # > MAX_DROPOUT ahead: held as bad_seq - 1
    assert stats.received == 2 and stats.max_seq == 12
    assert stats.update(_pkt(20001), 0.0)  # the next in sequence confirms a restart
    assert stats.base_seq == 20001 and stats.max_seq == 20001
    assert stats.received == 1 and stats.expected == 1 and stats.lost == 0


def test_a1_small_backward_step_is_reordering_but_large_is_not() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    for seq in range(1000, 1010):
        stats.update(_pkt(seq), 0.0)
    assert stats.update(_pkt(950), 0.0)  # within MAX_MISORDER: a late packet, counted
    assert not stats.update(_pkt(500), 0.0)  # 509 behind: a jump, not counted
    assert stats.max_seq == 1009


def test_other_ssrc_is_ignored() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    stats.update(_pkt(1, ssrc=1), 0.0)
    stats.update(_pkt(2, ssrc=1), 0.0)
    assert not stats.update(_pkt(3, ssrc=2), 0.0)
    assert stats.ssrc == 1 and stats.received == 1


def test_a8_jitter_hand_computed() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    # (seq, timestamp, arrival in 1/8000 s); 20 ms frames are 160 units apart.
    for seq, ts, arrival in [(100, 0, 0), (101, 160, 160), (102, 320, 360), (103, 480, 440)]:
        stats.update(_pkt(seq, ts), arrival / 8000)
    # 100 is probation only; 101 is the reference; at 102 D = (360-160) - 160 = 40,
    # J = 40/16 = 2.5; at 103 D = (440-360) - 160 = -80, J = 2.5 + (80 - 2.5)/16 = 7.34375.
    assert stats.jitter == pytest.approx(7.34375)
    stats.update(_pkt(104, 640), 600 / 8000)  # D = 0: J = 7.34375 * 15/16
    assert stats.jitter == pytest.approx(6.884765625)
    assert stats.jitter_report == 6


def test_a8_jitter_across_timestamp_wrap() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    start = 0xFFFFFFFF - 400
    for i in range(6):
        ts = (start + 160 * i) & 0xFFFFFFFF
        stats.update(_pkt(i, ts), 100.0 + 0.02 * i)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_a8_jitter_uses_reordered_packets_too() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    for seq, ts, arrival in [(1, 160, 160), (2, 320, 320), (4, 640, 640), (3, 480, 660)]:
        stats.update(_pkt(seq, ts), arrival / 8000)
    # At 4: D = 320 - 320 = 0. At 3 (late): D = (660-640) - (480-640) = 180, J = 180/16.
    assert stats.jitter == pytest.approx(11.25)


def test_clock_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RtpReceiverStats(clock_rate=0)
