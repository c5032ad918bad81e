"""pcap/pcapng reading: link types, IPv4/IPv6, TCP reassembly, and clear errors for bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest

from securephone.verify.pcap import CaptureError, Endpoint, parse_capture, read_capture

from .synth import LO, Packet, frame, pcap_bytes, pcapng_bytes, tcp_segments, write

A, B = (LO, 40000), (LO, 5060)


def udp(n: int = 3, src: tuple[str, int] = A, dst: tuple[str, int] = B) -> list[Packet]:
    return [Packet(100.0 + i, src, dst, f"payload {i}".encode()) for i in range(n)]


@pytest.mark.parametrize("linktype", [1, 113, 276, 0, 101])
def test_every_link_type_gives_the_same_datagrams(linktype: int) -> None:
    cap = parse_capture(pcap_bytes(udp(), linktype=linktype))
    assert cap.file_format == "pcap" and cap.linktypes == [linktype]
    assert [d.payload for d in cap.datagrams] == [b"payload 0", b"payload 1", b"payload 2"]
    assert cap.datagrams[0].src == Endpoint(LO, 40000) and cap.datagrams[0].dst.port == 5060
    assert [d.frame for d in cap.datagrams] == [1, 2, 3]
    assert cap.datagrams[1].time == pytest.approx(101.0)


def test_ipv6_and_pcapng() -> None:
    packets = udp(2, ("::1", 40000), ("::1", 5060))
    cap = parse_capture(pcapng_bytes(packets, linktype=1))
    assert cap.file_format == "pcapng"
    assert [str(d.src) for d in cap.datagrams] == ["[::1]:40000", "[::1]:40000"]
    assert cap.datagrams[0].payload == b"payload 0"
    assert cap.datagrams[1].time == pytest.approx(101.0)


def test_nanosecond_and_big_endian_pcap() -> None:
    nano = parse_capture(pcap_bytes(udp(1), nano=True))
    assert nano.datagrams[0].time == pytest.approx(100.0)
    data = frame(udp(1)[0], 1)
    # pcap file header and record header written big-endian by hand (magic a1b2c3d4)
    big = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    big += struct.pack(">IIII", 1234, 500000, len(data), len(data)) + data
    cap = parse_capture(big)
    assert cap.datagrams[0].payload == b"payload 0"
    assert cap.datagrams[0].time == pytest.approx(1234.5)


def _pcapng_two_interfaces() -> bytes:
    """An SHB, two IDBs (Ethernet, raw IP) and a packet on each (pcapng §4.2, §4.3)."""
    ng = dpkt.pcapng
    out = bytes(ng.SectionHeaderBlockLE())
    out += bytes(ng.InterfaceDescriptionBlockLE(linktype=1, snaplen=65535))
    out += bytes(ng.InterfaceDescriptionBlockLE(linktype=101, snaplen=65535))
    for iface, packet in ((0, udp(1)[0]), (1, udp(2)[1])):
        data = frame(packet, 1 if iface == 0 else 101)
        stamp = int(packet.time * 1e6)
        block = ng.EnhancedPacketBlockLE(
            iface_id=iface, ts_high=stamp >> 32, ts_low=stamp & 0xFFFFFFFF,
            caplen=len(data), pkt_len=len(data), pkt_data=data,
        )  # fmt: skip
        out += bytes(block)
    return out


def test_pcapng_with_interfaces_of_different_link_types() -> None:
    cap = parse_capture(_pcapng_two_interfaces())
    assert cap.linktypes == [1, 101]
    assert [d.payload for d in cap.datagrams] == [b"payload 0", b"payload 1"]
    assert cap.datagrams[1].time == pytest.approx(101.0)


def test_tcp_reassembly_reorders_and_drops_retransmissions() -> None:
    message = b"".join(f"line {i:03d}\r\n".encode() for i in range(60))
    segments = tcp_segments(message, A, B, size=50)
    shuffled = [segments[0], *segments[1:][::-1], segments[3], segments[5]]  # reversed + dups
    overlap = Packet(99.0, A, B, message[20:130], "tcp", 1001 + 20)
    cap = parse_capture(pcap_bytes([*shuffled, overlap]))
    (conn,) = cap.connections
    assert conn.client == Endpoint(*A) and conn.saw_syn
    assert conn.forward.data == message and conn.forward.gaps == 0
    assert len(conn.forward.chunks) == 1 and conn.reverse.data == b""


def test_tcp_gap_splits_the_stream_and_is_reported() -> None:
    data = bytes(range(200)) * 3
    segments = tcp_segments(data, A, B, size=100)
    del segments[3]  # bytes 200..299 never captured
    cap = parse_capture(pcap_bytes(segments))
    stream = cap.connections[0].forward
    assert stream.gaps == 1
    assert [c.offset for c in stream.chunks] == [0, 300]
    assert stream.chunks[0].data == data[:200] and stream.chunks[1].data == data[300:]
    assert any("gaps in TCP streams" in w for w in cap.warnings)


def test_tcp_sequence_wraparound_without_syn() -> None:
    data = b"x" * 150 + b"y" * 150
    segments = tcp_segments(data, A, B, isn=0xFFFFFF00, size=100, syn=False)
    cap = parse_capture(pcap_bytes(segments[::-1]))
    assert cap.connections[0].forward.data == data
    assert not cap.connections[0].saw_syn


def test_port_reuse_starts_a_new_connection() -> None:
    first = tcp_segments(b"first", A, B, isn=10)
    fin = Packet(1000.5, A, B, b"", "tcp", 16, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
    second = tcp_segments(b"second", A, B, isn=5000, start=1001.0)
    cap = parse_capture(pcap_bytes([*first, fin, *second]))
    assert [c.forward.data for c in cap.connections] == [b"first", b"second"]


# --------------------------------------------------------------------------- bad input


def test_not_a_capture(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"not a pcap or pcapng capture \(unknown magic"):
        read_capture(write(tmp_path / "x.pcap", b"GET / HTTP/1.1\r\n\r\n"))
    with pytest.raises(CaptureError, match="empty file"):
        read_capture(write(tmp_path / "empty.pcap", b""))
    with pytest.raises(CaptureError, match="no such file"):
        read_capture(tmp_path / "missing.pcap")


def test_empty_capture_has_only_a_header() -> None:
    with pytest.raises(CaptureError, match="empty capture: the pcap file holds no packets"):
        parse_capture(pcap_bytes([]))
    with pytest.raises(CaptureError, match="empty capture: the pcapng file holds no packets"):
        parse_capture(pcapng_bytes([]))


def test_truncated_header_is_an_error() -> None:
    with pytest.raises(CaptureError, match="truncated pcap: the file ends inside its 24-byte"):
        parse_capture(pcap_bytes(udp())[:10])


def test_truncated_last_packet_keeps_the_complete_ones() -> None:
    data = pcap_bytes(udp(3))
    cap = parse_capture(data[:-5])
    assert cap.truncated and len(cap.datagrams) == 2
    assert "ends inside packet 3" in cap.warnings[0] and "2 complete packets" in cap.warnings[0]
    cut = parse_capture(data[: 24 + 8])  # inside the first record header
    assert cut.truncated and cut.frames == 0 and "header of packet 1" in cut.warnings[0]


def test_truncated_pcapng_block() -> None:
    data = pcapng_bytes(udp(2))
    cap = parse_capture(data[:-10])
    assert cap.truncated and len(cap.datagrams) == 1


def test_corrupt_lengths_are_errors() -> None:
    data = bytearray(pcap_bytes(udp(1)))
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)  # caplen of packet 1
    with pytest.raises(CaptureError, match="corrupt pcap: packet 1 claims"):
        parse_capture(bytes(data))
    ng = bytearray(pcapng_bytes(udp(1)))
    struct.pack_into("<I", ng, 4, 13)  # SHB length not a multiple of 4
    with pytest.raises(CaptureError, match="corrupt pcapng"):
        parse_capture(bytes(ng))


def test_undecodable_and_non_ip_frames_are_counted() -> None:
    good = frame(udp(1)[0], 1)
    arp = bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_ARP, data=b"\0" * 28))
    broken = good[:14] + b"\x45\x00\x00"  # IPv4 header cut short
    out = pcap_bytes([])
    for stamp, data in ((1, good), (2, arp), (3, broken)):
        out += struct.pack("<IIII", stamp, 0, len(data), len(data)) + data
    cap = parse_capture(out)
    assert cap.frames == 3 and len(cap.datagrams) == 1
    assert cap.non_ip_frames == 1 and cap.undecodable == 1
    assert any("could not be decoded" in w for w in cap.warnings)
