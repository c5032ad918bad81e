"""RTCP packets, compound packets, NTP helpers and the report interval (RFC 3550 §6, App. A.7)."""

from __future__ import annotations

import calendar
import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securephone.media.rtcp import (
    COMPENSATION,
    NTP_EPOCH_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesItemType,
    SenderReport,
    SourceDescription,
    UnknownRtcpPacket,
    ntp_from_unix,
    ntp_middle32,
    ntp_short_from_seconds,
    parse_compound,
    report_block_from_stats,
    round_trip_time,
    rtcp_deterministic_interval,
    rtcp_interval,
    seconds_from_ntp_short,
    serialize_compound,
    unix_from_ntp,
    update_avg_rtcp_size,
)
from securephone.media.rtp import MediaParseError, RtpPacket, RtpReceiverStats, is_rtcp

# The time of RFC 3550 §6.4.1's round-trip example: the SR left at 10 Nov 1995 11:33:25.125
# UTC, whose "middle 32 bits" are 0xb705:2000.
SR_TIME = calendar.timegm((1995, 11, 10, 11, 33, 25)) + 0.125
SR_NTP = 0xB44DB705_20000000

# A sender report laid out by hand after RFC 3550 §6.4.1:
SR_BYTES = bytes.fromhex(
    "81 c8 000c"  # V=2 P=0 RC=1, PT=200 (SR), length 12 (13 words - 1)
    " 12345678"  # SSRC of sender
    " b44db705 20000000"  # NTP timestamp, 11:33:25.125 on 10 Nov 1995
    " 00001f40"  # RTP timestamp 8000
    " 00000032"  # sender's packet count 50
    " 00001f40"  # sender's octet count 8000
    # report block 1
    " 9abcdef0"  # SSRC_1
    " 1c 000002"  # fraction lost 28/256, cumulative lost 2
    " 00010005"  # extended highest sequence number (1 cycle, seq 5)
    " 00000007"  # interarrival jitter 7
    " b7052000"  # LSR
    " 00054000"  # DLSR 5.25 s
)
# SDES with one chunk: SSRC, CNAME (type 1, 15 octets "alice@127.0.0.1"), null, 2 pad nulls
# -> 4 + 2 + 15 + 3 = 24 octets of body, length field 6 (RFC 3550 §6.5, §6.5.1).
SDES_BYTES = bytes.fromhex("81 ca 0006 12345678 01 0f") + b"alice@127.0.0.1" + b"\x00" * 3
# BYE with one SSRC and the reason "bye": length octet 3 + 3 octets fills one word (§6.6).
BYE_BYTES = bytes.fromhex("81 cb 0002 12345678 03") + b"bye"

BLOCK = ReportBlock(
    ssrc=0x9ABCDEF0,
    fraction_lost=28,
    cumulative_lost=2,
    highest_sequence=0x00010005,
    jitter=7,
    lsr=0xB7052000,
    dlsr=0x00054000,
)


def test_parse_sender_report() -> None:
    (sr,) = parse_compound(SR_BYTES)
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == 0x12345678
    assert sr.ntp_timestamp == SR_NTP
    assert sr.rtp_timestamp == 8000
    assert sr.packet_count == 50 and sr.octet_count == 8000
    assert sr.reports == [BLOCK]
    assert sr.extension == b""


def test_build_sender_report() -> None:
    sr = SenderReport(
        ssrc=0x12345678,
        ntp_timestamp=ntp_from_unix(SR_TIME),
        rtp_timestamp=8000,
        packet_count=50,
        octet_count=8000,
        reports=[BLOCK],
    )
    assert bytes(sr) == SR_BYTES


def test_sdes_and_bye_bytes() -> None:
    sdes = SourceDescription([SdesChunk.with_cname(0x12345678, "alice@127.0.0.1")])
    assert bytes(sdes) == SDES_BYTES
    assert bytes(Bye([0x12345678], "bye")) == BYE_BYTES


def test_compound_sr_sdes_bye() -> None:
    data = SR_BYTES + SDES_BYTES + BYE_BYTES
    assert is_rtcp(data)
    sr, sdes, bye = parse_compound(data)
    assert isinstance(sr, SenderReport)
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == 0x12345678
    assert sdes.chunks[0].cname == "alice@127.0.0.1"
    assert isinstance(bye, Bye)
    assert bye.sources == [0x12345678] and bye.reason == "bye"
    assert serialize_compound([sr, sdes, bye]) == data


def test_empty_receiver_report() -> None:
    # The smallest RR (RFC 3550 §6.4.2): header with RC=0, length 1, and the SSRC.
    data = bytes.fromhex("80 c9 0001 cafebabe")
    (rr,) = parse_compound(data)
    assert rr == ReceiverReport(0xCAFEBABE)
    assert bytes(rr) == data


def test_receiver_report_with_negative_cumulative_loss() -> None:
    block = ReportBlock(ssrc=1, cumulative_lost=-3, highest_sequence=10)
    data = bytes(ReceiverReport(2, [block]))
    assert data[4 + 4 + 5 : 4 + 4 + 8] == b"\xff\xff\xfd"  # signed 24 bits
    (rr,) = parse_compound(data)
    assert isinstance(rr, ReceiverReport)
    assert rr.reports[0].cumulative_lost == -3


def test_padding_on_the_last_packet_is_removed() -> None:
    # RR with P=1: body SSRC + 4 padding octets (count 4), length 2 (RFC 3550 §6.4.1).
    data = bytes.fromhex("a0 c9 0002 cafebabe 00000004")
    assert parse_compound(data) == [ReceiverReport(0xCAFEBABE)]


def test_sdes_with_several_items_and_chunks() -> None:
    chunks = [
        SdesChunk(1, [(SdesItemType.CNAME, b"a@b"), (SdesItemType.TOOL, b"securephone")]),
        SdesChunk(2, [(SdesItemType.CNAME, b"c@d"), (SdesItemType.NOTE, b"")]),
        SdesChunk(3, []),
    ]
    (sdes,) = parse_compound(bytes(SourceDescription(chunks)))
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks == chunks
    assert sdes.chunks[2].cname is None


def test_bye_without_reason_and_with_several_sources() -> None:
    data = bytes(Bye([1, 2, 3]))
    assert data == bytes.fromhex("83 cb 0003 00000001 00000002 00000003")
    assert parse_compound(data) == [Bye([1, 2, 3])]


def test_unknown_packet_types_are_kept_raw() -> None:
    # APP (204, RFC 3550 §6.7): subtype 5 in the count field, SSRC, name "test", no data.
    app = bytes.fromhex("85 cc 0002 00000001") + b"test"
    rr = bytes.fromhex("80 c9 0001 00000001")
    parsed = parse_compound(rr + app)
    assert parsed[1] == UnknownRtcpPacket(204, 5, bytes.fromhex("00000001") + b"test")
    assert serialize_compound(parsed) == rr + app


def test_sender_report_extension_round_trip() -> None:
    sr = SenderReport(ssrc=5, extension=b"\x01\x02\x03\x04")
    assert parse_compound(bytes(sr)) == [sr]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\x80\xc9\x00", "shorter than a header"),
        (bytes.fromhex("40 c9 0001 cafebabe"), "version 1"),
        (bytes.fromhex("80 c9 0002 cafebabe"), "length runs past the datagram"),
        (bytes.fromhex("80 c9 0001 cafebabe 80"), "trailing octet is not a packet"),
        (bytes.fromhex("81 c9 0001 cafebabe"), "RC=1 without a report block"),
        (bytes.fromhex("80 c8 0001 cafebabe"), "SR without sender info"),
        (bytes.fromhex("80 c9 0000"), "RR without SSRC"),
        (bytes.fromhex("a0 c9 0002 cafebabe 00000000"), "padding count 0"),
        (bytes.fromhex("a0 c9 0002 cafebabe 00000009"), "padding count too large"),
        (bytes.fromhex("a0 c9 0001 cafebabe 80 c9 0001 cafebabe"), "padding not on last"),
        (bytes.fromhex("81 ca 0002 00000001 01 03 61 62"), "SDES item runs past the end"),
        (bytes.fromhex("81 ca 0002 00000001 01 01 61 62"), "SDES chunk without null"),
        (bytes.fromhex("82 ca 0002 00000001 00 00 00 00"), "SDES count 2, one chunk"),
        (bytes.fromhex("82 cb 0001 00000001"), "BYE count 2, one SSRC"),
        (bytes.fromhex("81 cb 0002 00000001 05 62 79 65"), "BYE reason runs past the end"),
    ],
)
def test_malformed_compounds_raise_media_parse_error(data: bytes, why: str) -> None:
    with pytest.raises(MediaParseError):
        parse_compound(data)


@pytest.mark.parametrize(
    "packet",
    [
        ReceiverReport(1, [ReportBlock(1)] * 32),
        ReceiverReport(1 << 32),
        ReceiverReport(1, extension=b"\x00"),
        SenderReport(1, ntp_timestamp=1 << 64),
        SourceDescription([SdesChunk(1, [(1, b"x" * 256)])]),
        SourceDescription([SdesChunk(1, [(0, b"x")])]),
        Bye([1], "x" * 256),
        UnknownRtcpPacket(204, 0, b"abc"),
        UnknownRtcpPacket(256),
    ],
)
def test_serialising_invalid_packets_raises_value_error(packet: object) -> None:
    with pytest.raises(ValueError):
        bytes(packet)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "block",
    [
        ReportBlock(1, cumulative_lost=1 << 23),
        ReportBlock(1, fraction_lost=256),
        ReportBlock(1, jitter=-1),
    ],
)
def test_serialising_invalid_report_blocks_raises_value_error(block: ReportBlock) -> None:
    with pytest.raises(ValueError):
        bytes(block)


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-(1 << 23), (1 << 23) - 1),
    highest_sequence=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
words = st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
rtcp_packets = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, (1 << 64) - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=st.lists(blocks, max_size=31),
        extension=words,
    ),
    st.builds(ReceiverReport, ssrc=u32, reports=st.lists(blocks, max_size=31), extension=words),
    st.builds(
        SourceDescription,
        chunks=st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255))),
            ),
            max_size=31,
        ),
    ),
    st.builds(Bye, sources=st.lists(u32, max_size=31), reason=st.none() | st.text(max_size=60)),
    st.builds(
        UnknownRtcpPacket, packet_type=st.integers(204, 255), count=st.integers(0, 31), body=words
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_compound_round_trip(packets: list[object]) -> None:
    data = serialize_compound(packets)  # type: ignore[arg-type]
    assert parse_compound(data) == packets
    assert serialize_compound(parse_compound(data)) == data


@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.data())
def test_mutated_compounds_only_raise_media_parse_error(
    packets: list[object], data: st.DataObject
) -> None:
    raw = bytearray(serialize_compound(packets))  # type: ignore[arg-type]
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(MediaParseError):
            parse_compound(candidate)


# --- NTP time (RFC 3550 §4, §6.4.1) ----------------------------------------------------------


def test_ntp_conversions() -> None:
    assert ntp_from_unix(0) == NTP_EPOCH_OFFSET << 32
    assert ntp_from_unix(SR_TIME) == SR_NTP
    assert unix_from_ntp(SR_NTP) == SR_TIME
    assert ntp_from_unix(0.5) & 0xFFFFFFFF == 0x80000000
    assert ntp_middle32(SR_NTP) == 0xB7052000


def test_round_trip_time_example_of_rfc3550_6_4_1() -> None:
    # RFC 3550 §6.4.1: the RR arrives at A = 0xb710:8000 (11:33:36.5), carrying
    # LSR = 0xb705:2000 and DLSR = 0x0005:4000 (5.25 s): delay = 0x0006:2000 = 6.125 s.
    arrival = ntp_from_unix(calendar.timegm((1995, 11, 10, 11, 33, 36)) + 0.5)
    assert ntp_middle32(arrival) == 0xB7108000
    assert ntp_short_from_seconds(5.25) == 0x00054000
    assert round_trip_time(arrival, 0xB7052000, 0x00054000) == 6.125
    assert seconds_from_ntp_short(0x00062000) == 6.125


# --- report blocks from statistics (RFC 3550 App. A.3) ---------------------------------------


def test_report_block_from_stats() -> None:
    stats = RtpReceiverStats(clock_rate=8000)
    for seq in (65533, 65534, 65535, 1, 2):  # 0 lost
        stats.update(RtpPacket(sequence_number=seq, ssrc=0x9ABCDEF0), 0.0)
    block = report_block_from_stats(stats, lsr=0xB7052000, dlsr=0x00054000)
    assert block.ssrc == 0x9ABCDEF0
    assert block.highest_sequence == 0x00010002
    assert block.cumulative_lost == 1
    assert block.fraction_lost == 256 // 5  # 1 of 5 expected since 65534
    assert block.jitter == 0
    assert (block.lsr, block.dlsr) == (0xB7052000, 0x00054000)
    assert report_block_from_stats(stats).fraction_lost == 0  # a new interval began


def test_report_block_needs_a_source() -> None:
    with pytest.raises(ValueError):
        report_block_from_stats(RtpReceiverStats(clock_rate=8000))


# --- RTCP interval (RFC 3550 §6.3.1, App. A.7) -----------------------------------------------


def test_deterministic_interval_minimum() -> None:
    # Two members of a 64 kbit/s G.711 call: RTCP gets 5 % = 400 octets/s; 100-octet reports
    # would allow 0.5 s, but the minimum is 5 s, halved to 2.5 s before the first report.
    assert rtcp_deterministic_interval(2, 1, 400.0, True, 100.0, False) == 5.0
    assert rtcp_deterministic_interval(2, 1, 400.0, True, 100.0, True) == 2.5


def test_deterministic_interval_bandwidth_split() -> None:
    # 1000 members, 10 senders (<= 25 %): senders share 25 % of the RTCP bandwidth,
    # receivers 75 %.
    assert rtcp_deterministic_interval(1000, 10, 400.0, False, 100.0, False) == 100 * 990 / 300
    assert rtcp_deterministic_interval(1000, 10, 400.0, True, 100.0, False) == 100 * 10 / 100
    # 600 senders of 1000 (> 25 %): no split, everyone counts.
    assert rtcp_deterministic_interval(1000, 600, 400.0, True, 100.0, False) == 100 * 1000 / 400


def test_randomised_interval_with_injected_rng() -> None:
    td = 5.0
    assert rtcp_interval(2, 1, 400.0, True, 100.0, False, rng=lambda: 0.5) == td / COMPENSATION
    assert rtcp_interval(2, 1, 400.0, True, 100.0, False, rng=lambda: 0.0) == (
        td * 0.5 / COMPENSATION
    )
    assert abs(COMPENSATION - 1.21828) < 1e-12
    rng = random.Random(1)
    for _ in range(100):
        t = rtcp_interval(2, 1, 400.0, False, 100.0, True, rng=rng.random)
        assert 2.5 * 0.5 / COMPENSATION <= t < 2.5 * 1.5 / COMPENSATION


def test_interval_needs_bandwidth() -> None:
    with pytest.raises(ValueError):
        rtcp_interval(2, 1, 0.0, True, 100.0, False)


def test_avg_rtcp_size_update() -> None:
    assert update_avg_rtcp_size(100.0, 260) == 110.0
