"""Read pcap and pcapng captures into UDP datagrams and reassembled TCP byte streams.

dpkt does the parsing: the file headers and records (``dpkt.pcap.FileHdr``/``PktHdr``,
``dpkt.pcapng`` blocks), the link layers (Ethernet incl. VLAN tags, Linux cooked v1/v2,
BSD loopback, raw IP) and IPv4/IPv6/UDP/TCP. This module drives the record loop itself so
that a file cut short in the middle of a packet is *noticed* (dpkt's readers silently yield a
short last packet) and so that pcapng files with several interfaces of different link types
are read correctly.

TCP is reassembled per direction in sequence-number order (RFC 9293 §3.4): retransmitted and
overlapping bytes are kept once, out-of-order segments are put in place, and a hole (a segment
the capture missed) splits the stream into :class:`StreamChunk` runs, so a SIP parser never
reads bytes across a gap. IPv4 fragments are not reassembled (loopback MTU is 64 KiB, so SIP
and RTP are never fragmented there); they are counted in :attr:`Capture.warnings`.

Every unusable file raises :class:`CaptureError` with one clear sentence: not a capture file,
truncated header, no packets at all.
"""

from __future__ import annotations

import bisect
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import dpkt

__all__ = [
    "Capture",
    "CaptureError",
    "Datagram",
    "Endpoint",
    "StreamChunk",
    "TcpConnection",
    "TcpSegment",
    "TcpStream",
    "decode_frame",
    "read_capture",
]

# Link-layer header types (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_IP_TYPES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})
LINKTYPE_NAMES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    12: "raw IP",
    14: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked v1",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2",
}

_PCAP_MAGICS = {
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_MAX_RECORD = 256 * 1024 * 1024
_TCP_FIN, _TCP_SYN, _TCP_RST, _TCP_ACK = 0x01, 0x02, 0x04, 0x10
_SEQ_MOD = 1 << 32


class CaptureError(ValueError):
    """A capture file that cannot be read; the message says why in one sentence."""


class Endpoint(NamedTuple):
    """An IP address and port; ``str()`` gives ``1.2.3.4:5060`` or ``[::1]:5060``."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram: frame number (1-based, as Wireshark counts), time, ends, payload."""

    frame: int
    time: float
    src: Endpoint
    dst: Endpoint
    payload: bytes


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A run of contiguous stream bytes; ``starts`` maps segment offsets to capture times."""

    offset: int
    data: bytes
    starts: tuple[tuple[int, float], ...]

    def time_at(self, offset: int) -> float:
        """Capture time of the segment that carried byte ``offset`` (relative to the chunk)."""
        keys = [start for start, _ in self.starts]
        index = max(0, bisect.bisect_right(keys, offset) - 1)
        return self.starts[index][1]


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """One TCP segment as captured (sequence number, flags, payload)."""

    frame: int
    time: float
    seq: int
    flags: int
    payload: bytes


@dataclass(slots=True)
class TcpStream:
    """The bytes one side of a TCP connection sent, reassembled (RFC 9293 §3.4)."""

    src: Endpoint
    dst: Endpoint
    chunks: list[StreamChunk] = field(default_factory=list)
    gaps: int = 0
    segments: int = 0

    @property
    def data(self) -> bytes:
        """All reassembled bytes (gaps simply left out)."""
        return b"".join(chunk.data for chunk in self.chunks)

    @property
    def first_time(self) -> float | None:
        """Time of the first data segment, or None when this side sent no data."""
        return self.chunks[0].starts[0][1] if self.chunks else None


@dataclass(slots=True)
class TcpConnection:
    """One TCP connection: the side that sent SYN (else the first sender) is the client."""

    client: Endpoint
    server: Endpoint
    first_frame: int
    first_time: float
    forward: TcpStream
    reverse: TcpStream
    saw_syn: bool = False
    closed: bool = False

    def streams(self) -> tuple[TcpStream, TcpStream]:
        """(client → server, server → client)."""
        return self.forward, self.reverse


@dataclass(slots=True)
class Capture:
    """Everything the analysers need from a capture file."""

    path: str
    file_format: str
    linktypes: list[int]
    frames: int = 0
    datagrams: list[Datagram] = field(default_factory=list)
    connections: list[TcpConnection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    non_ip_frames: int = 0
    fragments: int = 0
    undecodable: int = 0
    truncated: bool = False
    first_time: float | None = None
    last_time: float | None = None

    @property
    def link_names(self) -> list[str]:
        """Human names of the link types seen."""
        return [LINKTYPE_NAMES.get(lt, f"linktype {lt}") for lt in self.linktypes]


# --------------------------------------------------------------------------- file reading


@dataclass(slots=True)
class _Record:
    time: float
    linktype: int
    data: bytes


class _Truncated(Exception):
    """The file ends inside a record; ``args[0]`` says where."""


def read_capture(path: Path | str) -> Capture:
    """Read a pcap or pcapng file; raise CaptureError if it is not one or holds no packets."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_capture(data, str(path))


def parse_capture(data: bytes, name: str = "capture") -> Capture:
    """Parse capture file bytes (pcap or pcapng, detected by the magic number)."""
    fmt, records, linktypes = _records(data, name)
    capture = Capture(path=name, file_format=fmt, linktypes=linktypes)
    builder = _Builder(capture)
    try:
        for record in records:
            builder.add(record)
    except _Truncated as exc:
        capture.truncated = True
        capture.warnings.append(
            f"the capture file is truncated: it ends inside {exc.args[0]}; "
            f"the {capture.frames} complete packets before it were analysed"
        )
    if capture.frames == 0 and not capture.truncated:
        raise CaptureError(f"{name}: empty capture: the {fmt} file holds no packets")
    builder.finish()
    return capture


def _records(data: bytes, name: str) -> tuple[str, Iterator[_Record], list[int]]:
    magic = data[:4]
    if magic in _PCAP_MAGICS:
        linktypes: list[int] = []
        return "pcap", _pcap_records(data, name, linktypes), linktypes
    if magic == _PCAPNG_MAGIC:
        linktypes = []
        return "pcapng", _pcapng_records(data, name, linktypes), linktypes
    if not data:
        raise CaptureError(f"{name}: empty file (0 bytes): not a pcap or pcapng capture")
    raise CaptureError(f"{name}: not a pcap or pcapng capture (unknown magic number {magic.hex()})")


def _pcap_records(data: bytes, name: str, linktypes: list[int]) -> Iterator[_Record]:
    """Classic libpcap records via dpkt's FileHdr/PktHdr (big or little endian, µs or ns)."""
    order, divisor = _PCAP_MAGICS[data[:4]]
    little = order == "<"
    header_cls = dpkt.pcap.LEFileHdr if little else dpkt.pcap.FileHdr
    if len(data) < header_cls.__hdr_len__:
        raise CaptureError(f"{name}: truncated pcap: the file ends inside its 24-byte header")
    header = header_cls(data[: header_cls.__hdr_len__])
    linktypes.append(int(header.linktype) & 0x0FFFFFFF)
    record_cls = dpkt.pcap.LEPktHdr if little else dpkt.pcap.PktHdr
    offset, number = header_cls.__hdr_len__, 0
    while offset < len(data):
        number += 1
        if offset + record_cls.__hdr_len__ > len(data):
            raise _Truncated(f"the header of packet {number}")
        rec = record_cls(data[offset : offset + record_cls.__hdr_len__])
        offset += record_cls.__hdr_len__
        if rec.caplen > _MAX_RECORD:
            raise CaptureError(f"{name}: corrupt pcap: packet {number} claims {rec.caplen} bytes")
        if offset + rec.caplen > len(data):
            have = len(data) - offset
            raise _Truncated(f"packet {number} ({have} of {rec.caplen} bytes present)")
        yield _Record(
            rec.tv_sec + rec.tv_usec / divisor, linktypes[0], data[offset : offset + rec.caplen]
        )
        offset += rec.caplen


@dataclass(slots=True)
class _Interface:
    linktype: int
    divisor: float = 1e6
    offset: float = 0.0


def _pcapng_records(data: bytes, name: str, linktypes: list[int]) -> Iterator[_Record]:
    """pcapng blocks (SHB, IDB, EPB, SPB, PB) via dpkt's block classes; other blocks skipped."""
    little = True
    interfaces: list[_Interface] = []
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise _Truncated("a block header")
        if data[offset : offset + 4] == _PCAPNG_MAGIC:
            little = _byte_order(data, offset, name)
            interfaces = []
        block_type, length = struct.unpack_from("<II" if little else ">II", data, offset)
        if length < 12 or length % 4 or length > _MAX_RECORD:
            raise CaptureError(
                f"{name}: corrupt pcapng: block at byte {offset} has length {length}"
            )
        if offset + length > len(data):
            raise _Truncated(f"a block of {length} bytes at byte {offset}")
        block = data[offset : offset + length]
        offset += length
        record = _pcapng_block(block_type, block, little, interfaces, linktypes, name)
        if record is not None:
            yield record


def _byte_order(data: bytes, offset: int, name: str) -> bool:
    """True for a little-endian section (byte-order magic 0x1A2B3C4D read little-endian)."""
    bom = data[offset + 8 : offset + 12]
    if bom == b"\x4d\x3c\x2b\x1a":
        return True
    if bom == b"\x1a\x2b\x3c\x4d":
        return False
    raise CaptureError(f"{name}: corrupt pcapng: bad byte-order magic in a section header")


def _pcapng_block(
    block_type: int,
    block: bytes,
    little: bool,
    interfaces: list[_Interface],
    linktypes: list[int],
    name: str,
) -> _Record | None:
    """Decode one block; returns a packet record or None (section/interface/other blocks)."""
    ng = dpkt.pcapng
    try:
        if block_type == ng.PCAPNG_BT_IDB:
            idb = (ng.InterfaceDescriptionBlockLE if little else ng.InterfaceDescriptionBlock)(
                block
            )
            interfaces.append(_interface(idb, little))
            if idb.linktype not in linktypes:
                linktypes.append(int(idb.linktype))
            return None
        if block_type in (ng.PCAPNG_BT_EPB, ng.PCAPNG_BT_PB):
            cls = ng.EnhancedPacketBlockLE if little else ng.EnhancedPacketBlock
            if block_type == ng.PCAPNG_BT_PB:
                cls = ng.PacketBlockLE if little else ng.PacketBlock
            epb = cls(block)
            iface = _iface(interfaces, int(epb.iface_id), name)
            stamp = ((epb.ts_high << 32) | epb.ts_low) / iface.divisor + iface.offset
            return _Record(stamp, iface.linktype, bytes(epb.pkt_data))
        if block_type == ng.PCAPNG_BT_SPB:
            iface = _iface(interfaces, 0, name)
            length = struct.unpack_from("<I" if little else ">I", block, 8)[0]
            return _Record(0.0, iface.linktype, block[12 : 12 + min(length, len(block) - 16)])
    except (dpkt.UnpackError, struct.error, ValueError) as exc:
        raise CaptureError(f"{name}: corrupt pcapng block (type {block_type}): {exc}") from None
    return None


def _interface(idb: Any, little: bool) -> _Interface:
    iface = _Interface(int(idb.linktype))
    for opt in idb.opts:
        if opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL and opt.data:
            value = opt.data[0]
            iface.divisor = float((2 if value & 0x80 else 10) ** (value & 0x7F))
        elif opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
            iface.offset = float(struct.unpack("<q" if little else ">q", opt.data[:8])[0])
    return iface


def _iface(interfaces: list[_Interface], index: int, name: str) -> _Interface:
    if index >= len(interfaces):
        raise CaptureError(f"{name}: corrupt pcapng: packet refers to unknown interface {index}")
    return interfaces[index]


# --------------------------------------------------------------------------- frames


IpPacket: TypeAlias = Any  # dpkt.ip.IP | dpkt.ip6.IP6 (dpkt has no type hints)


def decode_frame(linktype: int, frame: bytes) -> IpPacket | None:
    """The IPv4/IPv6 packet inside a link-layer frame, or None for anything else.

    Raises dpkt.UnpackError (or struct.error) when the frame is malformed.
    """
    if linktype == LINKTYPE_ETHERNET:
        eth = dpkt.ethernet.Ethernet(frame)
        return _ip_or_none(eth.data, eth.type)
    if linktype == LINKTYPE_LINUX_SLL:
        sll = dpkt.sll.SLL(frame)
        return _ip_or_none(sll.data, sll.ethtype)
    if linktype == LINKTYPE_LINUX_SLL2:
        sll2 = dpkt.sll2.SLL2(frame)
        return _ip_or_none(sll2.data, sll2.ethtype)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return _raw_ip(frame[4:])
    if linktype in _RAW_IP_TYPES:
        return _raw_ip(frame)
    return None


def _ip_or_none(layer: Any, ethertype: int) -> IpPacket | None:
    """The IP layer dpkt decoded; dpkt leaves bytes when an IP packet is malformed."""
    if isinstance(layer, dpkt.ip.IP | dpkt.ip6.IP6):
        return layer
    if ethertype in (dpkt.ethernet.ETH_TYPE_IP, dpkt.ethernet.ETH_TYPE_IP6):
        return _raw_ip(bytes(layer))  # raises the decoding error dpkt swallowed
    return None


def _raw_ip(buf: bytes) -> IpPacket | None:
    version = buf[0] >> 4 if buf else 0
    if version == 4:
        return dpkt.ip.IP(buf)
    if version == 6:
        return dpkt.ip6.IP6(buf)
    return None


def _address(ip: IpPacket) -> tuple[str, str]:
    return str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst))


def _is_fragment(ip: IpPacket) -> bool:
    if isinstance(ip, dpkt.ip.IP):
        return bool(ip.mf or ip.offset)
    return int(ip.nxt) == 44 or 44 in getattr(ip, "extension_hdrs", {})


class _Builder:
    """Feeds frames into datagrams and per-connection TCP segment lists."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self._open: dict[tuple[Endpoint, Endpoint], _ConnState] = {}
        self._all: list[_ConnState] = []

    def add(self, record: _Record) -> None:
        cap = self.capture
        cap.frames += 1
        cap.first_time = record.time if cap.first_time is None else cap.first_time
        cap.last_time = record.time
        try:
            ip = decode_frame(record.linktype, record.data)
        except (dpkt.UnpackError, struct.error, ValueError, IndexError):
            cap.undecodable += 1
            return
        if ip is None:
            cap.non_ip_frames += 1
            return
        if _is_fragment(ip):
            cap.fragments += 1
            return
        self._transport(cap.frames, record.time, ip)

    def _transport(self, frame: int, stamp: float, ip: IpPacket) -> None:
        layer = ip.data
        src_ip, dst_ip = _address(ip)
        if isinstance(layer, dpkt.udp.UDP):
            src, dst = Endpoint(src_ip, layer.sport), Endpoint(dst_ip, layer.dport)
            payload = bytes(layer.data)[: max(0, layer.ulen - 8)] if layer.ulen >= 8 else b""
            self.capture.datagrams.append(Datagram(frame, stamp, src, dst, payload))
        elif isinstance(layer, dpkt.tcp.TCP):
            src, dst = Endpoint(src_ip, layer.sport), Endpoint(dst_ip, layer.dport)
            segment = TcpSegment(frame, stamp, int(layer.seq), int(layer.flags), bytes(layer.data))
            self._tcp(src, dst, segment)
        elif int(getattr(ip, "p", getattr(ip, "nxt", 0))) in (6, 17):
            self.capture.undecodable += 1  # a UDP/TCP header cut short by the snap length

    def _tcp(self, src: Endpoint, dst: Endpoint, segment: TcpSegment) -> None:
        key = (src, dst) if src <= dst else (dst, src)
        state = self._open.get(key)
        is_syn = segment.flags & _TCP_SYN and not segment.flags & _TCP_ACK
        if state is None or (is_syn and state.reusable(src, segment.seq)):
            state = _ConnState(src, dst, segment, bool(is_syn))
            self._open[key] = state
            self._all.append(state)
        state.add(src, segment)

    def finish(self) -> None:
        cap = self.capture
        cap.connections = [state.build() for state in self._all]
        if cap.fragments:
            cap.warnings.append(f"{cap.fragments} IP fragments were not reassembled")
        if cap.undecodable:
            cap.warnings.append(f"{cap.undecodable} frames could not be decoded (cut short?)")
        gaps = sum(s.gaps for c in cap.connections for s in c.streams())
        if gaps:
            cap.warnings.append(f"{gaps} gaps in TCP streams (segments missing from the capture)")


class _ConnState:
    def __init__(self, src: Endpoint, dst: Endpoint, first: TcpSegment, syn: bool) -> None:
        self.client, self.server = src, dst
        self.first = first
        self.saw_syn = syn
        self.closed = False
        self.segments: dict[Endpoint, list[TcpSegment]] = {src: [], dst: []}

    def reusable(self, src: Endpoint, seq: int) -> bool:
        """A new SYN on the same ports starts a new connection unless it is a retransmission."""
        earlier = [s for s in self.segments[src] if s.flags & _TCP_SYN]
        return self.closed or (bool(earlier) and earlier[-1].seq != seq)

    def add(self, src: Endpoint, segment: TcpSegment) -> None:
        self.segments[src].append(segment)
        if segment.flags & _TCP_SYN and not self.saw_syn:  # roles from the handshake
            other = self.server if src == self.client else self.client
            opener = src if not segment.flags & _TCP_ACK else other
            self.client, self.server = opener, (other if opener == src else src)
            self.saw_syn = True
        if segment.flags & (_TCP_FIN | _TCP_RST):
            self.closed = True

    def build(self) -> TcpConnection:
        forward = reassemble(self.client, self.server, self.segments[self.client])
        reverse = reassemble(self.server, self.client, self.segments[self.server])
        return TcpConnection(
            client=self.client,
            server=self.server,
            first_frame=self.first.frame,
            first_time=self.first.time,
            forward=forward,
            reverse=reverse,
            saw_syn=self.saw_syn,
            closed=self.closed,
        )


# --------------------------------------------------------------------------- TCP reassembly


def _relative(seq: int, base: int) -> int:
    """Signed distance seq - base modulo 2**32 (RFC 9293 §3.4 sequence arithmetic)."""
    return (seq - base + _SEQ_MOD // 2) % _SEQ_MOD - _SEQ_MOD // 2


def reassemble(src: Endpoint, dst: Endpoint, segments: list[TcpSegment]) -> TcpStream:
    """Put one direction's segments in order; duplicates kept once, holes split chunks."""
    stream = TcpStream(src, dst, segments=len(segments))
    syns = [s for s in segments if s.flags & _TCP_SYN]
    with_data = [s for s in segments if s.payload]
    if not with_data:
        return stream
    base = (
        syns[0].seq + 1
        if syns
        else min(with_data, key=lambda s: _relative(s.seq, with_data[0].seq)).seq
    )
    ordered = sorted(with_data, key=lambda s: (_relative(s.seq, base), s.frame))
    _Joiner(stream, known_start=bool(syns)).run(ordered, base)
    return stream


class _Joiner:
    def __init__(self, stream: TcpStream, *, known_start: bool) -> None:
        self.stream = stream
        self.strict = known_start
        self.buf = bytearray()
        self.starts: list[tuple[int, float]] = []
        self.chunk_offset = 0
        self.expected = 0

    def run(self, ordered: list[TcpSegment], base: int) -> None:
        for segment in ordered:
            rel = _relative(segment.seq, base)
            data = segment.payload
            if rel < self.expected:  # retransmission or overlap: keep only the new tail
                data, rel = data[self.expected - rel :], self.expected
            if not data:
                continue
            if rel > self.expected:
                self.stream.gaps += 1 if self.buf or self.strict else 0
                self._flush()
            self.strict = True
            if not self.buf:
                self.chunk_offset = rel
            self.starts.append((rel - self.chunk_offset, segment.time))
            self.buf += data
            self.expected = rel + len(data)
        self._flush()

    def _flush(self) -> None:
        if self.buf:
            chunk = StreamChunk(self.chunk_offset, bytes(self.buf), tuple(self.starts))
            self.stream.chunks.append(chunk)
        self.buf = bytearray()
        self.starts = []
