"""RTCP packets, compound packets, NTP time and the report interval, sans I/O (RFC 3550 §6).

Packets are classes with ``parse`` and ``__bytes__``: ``SenderReport`` (SR, §6.4.1),
``ReceiverReport`` (RR, §6.4.2) with ``ReportBlock``s, ``SourceDescription`` (SDES, §6.5)
with ``SdesChunk``s, ``Bye`` (§6.6), and ``UnknownRtcpPacket`` for any other type (APP,
feedback, XR), which is kept as raw body so that a compound packet containing it still
parses. ``parse_compound`` splits and validates a compound packet (§6.1, App. A.2);
``serialize_compound`` joins packets. NTP helpers convert Unix time to the 64-bit NTP
format and to the "middle 32 bits" used by LSR/DLSR (§4, §6.4.1). ``rtcp_interval`` is the
transmission interval of §6.3.1 / App. A.7 with an injectable random source.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from securephone.errors import MediaParseError
from securephone.media.rtp import RtpReceiverStats

__all__ = [
    "NTP_EPOCH_OFFSET",
    "RTCP_MIN_TIME",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SdesItemType",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcpPacket",
    "ntp_from_unix",
    "ntp_middle32",
    "ntp_short_from_seconds",
    "parse_compound",
    "report_block_from_stats",
    "round_trip_time",
    "rtcp_deterministic_interval",
    "rtcp_interval",
    "seconds_from_ntp_short",
    "serialize_compound",
    "unix_from_ntp",
    "update_avg_rtcp_size",
]

RTCP_VERSION = 2
PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203

_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IB3sIIII")
_SENDER_INFO = struct.Struct("!IQIII")
MAX_COUNT = 31


# --- NTP time (RFC 3550 §4) ------------------------------------------------------------------

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_from_unix(unix_time: float) -> int:
    """Unix seconds -> 64-bit NTP timestamp, 32.32 fixed point since 1900 (RFC 3550 §4)."""
    return round((unix_time + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


def unix_from_ntp(ntp: int) -> float:
    """64-bit NTP timestamp -> Unix seconds (RFC 3550 §4); era 0 only (until 2036)."""
    return ntp / (1 << 32) - NTP_EPOCH_OFFSET


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as carried in LSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFF_FFFF


def ntp_short_from_seconds(seconds: float) -> int:
    """A duration in units of 1/65536 s, e.g. for DLSR (RFC 3550 §6.4.1)."""
    return max(0, min(round(seconds * 65536), 0xFFFF_FFFF))


def seconds_from_ntp_short(value: int) -> float:
    """Units of 1/65536 s (LSR, DLSR, "middle 32 bits") -> seconds."""
    return value / 65536


def round_trip_time(arrival_ntp: int, lsr: int, dlsr: int) -> float:
    """Round-trip time in seconds from a report block: A - LSR - DLSR (RFC 3550 §6.4.1).

    ``arrival_ntp`` is the 64-bit NTP time the report block arrived; ``lsr``/``dlsr`` are
    the block's fields. Computed modulo 2**32 as the RFC's 16.16 arithmetic is.
    """
    delay = (ntp_middle32(arrival_ntp) - lsr - dlsr) & 0xFFFF_FFFF
    return seconds_from_ntp_short(delay)


# --- report blocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block of an SR or RR (RFC 3550 §6.4.1), 24 octets.

    ``cumulative_lost`` is signed 24-bit; ``lsr`` is the middle 32 bits of the last SR's NTP
    timestamp and ``dlsr`` the delay since then in 1/65536 s (both 0 if no SR yet).
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    SIZE: ClassVar[int] = 24

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        """Parse 24 octets at ``offset``; the caller checked the length."""
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        """Serialise; ``ValueError`` if a field does not fit (RFC 3550 §6.4.1)."""
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise ValueError("cumulative_lost must fit in signed 24 bits")
        lost = self.cumulative_lost.to_bytes(3, "big", signed=True)
        try:
            return _REPORT_BLOCK.pack(
                self.ssrc, self.fraction_lost, lost, self.highest_sequence, self.jitter,
                self.lsr, self.dlsr,
            )  # fmt: skip
        except struct.error as exc:
            raise ValueError(f"report block field out of range: {exc}") from None


def _clamp_cumulative_lost(lost: int) -> int:
    """Clamp to the signed 24-bit field (RFC 3550 §6.4.1, App. A.3)."""
    return max(-(1 << 23), min(lost, (1 << 23) - 1))


def report_block_from_stats(stats: RtpReceiverStats, lsr: int = 0, dlsr: int = 0) -> ReportBlock:
    """Build a report block from receiver statistics (RFC 3550 §6.4.1, App. A.3, A.8).

    This starts a new fraction-lost interval in ``stats``. ``lsr``/``dlsr`` come from the
    session, which knows when the source's last SR arrived.
    """
    if stats.ssrc is None:
        raise ValueError("no packet received yet: the source is unknown")
    return ReportBlock(
        ssrc=stats.ssrc,
        fraction_lost=stats.fraction_lost_since_last_report(),
        cumulative_lost=_clamp_cumulative_lost(stats.lost),
        highest_sequence=stats.extended_highest_sequence & 0xFFFF_FFFF,
        jitter=min(stats.jitter_report, 0xFFFF_FFFF),
        lsr=lsr,
        dlsr=dlsr,
    )


def _parse_report_blocks(body: bytes, offset: int, count: int) -> list[ReportBlock]:
    """``count`` report blocks at ``offset`` of ``body`` (length checked here)."""
    if len(body) < offset + count * ReportBlock.SIZE:
        raise MediaParseError(f"RTCP report too short for {count} report blocks")
    return [ReportBlock.parse(body, offset + i * ReportBlock.SIZE) for i in range(count)]


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    """The common RTCP header (RFC 3550 §6.4.1): V=2, P=0, count, PT, length in words - 1."""
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"at most {MAX_COUNT} items fit an RTCP count field")
    if len(body) % 4:
        raise ValueError("RTCP packet body must be a multiple of 4 octets")
    return _HEADER.pack((RTCP_VERSION << 6) | count, packet_type, len(body) // 4)


def _check_extension(extension: bytes) -> None:
    """Profile-specific extensions are whole 32-bit words (RFC 3550 §6.4.1)."""
    if len(extension) % 4:
        raise ValueError("RTCP profile-specific extension must be a multiple of 4 octets")


# --- SR and RR -------------------------------------------------------------------------------


@dataclass(slots=True)
class SenderReport:
    """RTCP SR, packet type 200 (RFC 3550 §6.4.1).

    ``ntp_timestamp`` is the full 64-bit NTP time; ``extension`` holds profile-specific
    extension octets after the report blocks.
    """

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    packet_type: ClassVar[int] = PT_SR

    @classmethod
    def parse(cls, count: int, body: bytes) -> SenderReport:
        """Parse the body after the common header (padding already removed)."""
        if len(body) < _SENDER_INFO.size:
            raise MediaParseError("RTCP SR too short for its sender info")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        reports = _parse_report_blocks(body, _SENDER_INFO.size, count)
        extension = body[_SENDER_INFO.size + count * ReportBlock.SIZE :]
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, extension)

    def __bytes__(self) -> bytes:
        """Serialise (RFC 3550 §6.4.1); ``ValueError`` if a field does not fit."""
        _check_extension(self.extension)
        try:
            info = _SENDER_INFO.pack(
                self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count,
                self.octet_count,
            )  # fmt: skip
        except struct.error as exc:
            raise ValueError(f"sender info field out of range: {exc}") from None
        body = info + b"".join(bytes(r) for r in self.reports) + self.extension
        return _header(PT_SR, len(self.reports), body) + body


@dataclass(slots=True)
class ReceiverReport:
    """RTCP RR, packet type 201 (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    packet_type: ClassVar[int] = PT_RR

    @classmethod
    def parse(cls, count: int, body: bytes) -> ReceiverReport:
        """Parse the body after the common header (padding already removed)."""
        if len(body) < 4:
            raise MediaParseError("RTCP RR too short for its SSRC")
        (ssrc,) = struct.unpack_from("!I", body)
        reports = _parse_report_blocks(body, 4, count)
        return cls(ssrc, reports, body[4 + count * ReportBlock.SIZE :])

    def __bytes__(self) -> bytes:
        """Serialise (RFC 3550 §6.4.2); ``ValueError`` if a field does not fit."""
        _check_extension(self.extension)
        body = _pack_u32(self.ssrc) + b"".join(bytes(r) for r in self.reports) + self.extension
        return _header(PT_RR, len(self.reports), body) + body


def _pack_u32(value: int) -> bytes:
    """One 32-bit big-endian field; ``ValueError`` if it does not fit."""
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"{value} does not fit 32 bits")
    return struct.pack("!I", value)


# --- SDES ------------------------------------------------------------------------------------


class SdesItemType:
    """SDES item types (RFC 3550 §6.5)."""

    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


@dataclass(slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC/CSRC and its items as (type, value octets) (RFC 3550 §6.5)."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        """The CNAME item as text (RFC 3550 §6.5.1), or None."""
        for item_type, value in self.items:
            if item_type == SdesItemType.CNAME:
                return value.decode("utf-8", errors="replace")
        return None

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SdesChunk:
        """A chunk carrying just a CNAME, the one item every RTCP compound needs (§6.5.1)."""
        return cls(ssrc, [(SdesItemType.CNAME, cname.encode("utf-8"))])

    @classmethod
    def parse_from(cls, body: bytes, offset: int) -> tuple[SdesChunk, int]:
        """Parse one chunk at ``offset``; return it and the 32-bit aligned offset after it."""
        if len(body) < offset + 4:
            raise MediaParseError("RTCP SDES chunk too short for its SSRC")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        items: list[tuple[int, bytes]] = []
        pos = offset + 4
        while True:
            if pos >= len(body):
                raise MediaParseError("RTCP SDES chunk has no terminating null item")
            if body[pos] == SdesItemType.END:
                return cls(ssrc, items), (pos + 4) & ~3
            pos = _parse_sdes_item(body, pos, items)

    def __bytes__(self) -> bytes:
        """Serialise the chunk with its null terminator and padding to 32 bits (§6.5)."""
        parts = [_pack_u32(self.ssrc)]
        for item_type, value in self.items:
            if not 1 <= item_type <= 255 or len(value) > 255:
                raise ValueError("SDES item type must be 1..255 and its value at most 255 octets")
            parts.append(bytes([item_type, len(value)]) + value)
        raw = b"".join(parts)
        return raw + bytes(4 - len(raw) % 4)


def _parse_sdes_item(body: bytes, pos: int, items: list[tuple[int, bytes]]) -> int:
    """Parse one SDES item at ``pos`` into ``items``; return the offset after it (§6.5)."""
    if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
        raise MediaParseError("RTCP SDES item runs past the packet")
    end = pos + 2 + body[pos + 1]
    items.append((body[pos], body[pos + 2 : end]))
    return end


@dataclass(slots=True)
class SourceDescription:
    """RTCP SDES, packet type 202 (RFC 3550 §6.5)."""

    chunks: list[SdesChunk] = field(default_factory=list)

    packet_type: ClassVar[int] = PT_SDES

    @classmethod
    def parse(cls, count: int, body: bytes) -> SourceDescription:
        """Parse ``count`` chunks from the body after the common header."""
        chunks = []
        offset = 0
        for _ in range(count):
            chunk, offset = SdesChunk.parse_from(body, offset)
            chunks.append(chunk)
        return cls(chunks)

    def __bytes__(self) -> bytes:
        """Serialise (RFC 3550 §6.5)."""
        body = b"".join(bytes(chunk) for chunk in self.chunks)
        return _header(PT_SDES, len(self.chunks), body) + body


# --- BYE and the rest ------------------------------------------------------------------------


@dataclass(slots=True)
class Bye:
    """RTCP BYE, packet type 203 (RFC 3550 §6.6), with an optional reason text."""

    sources: list[int] = field(default_factory=list)
    reason: str | None = None

    packet_type: ClassVar[int] = PT_BYE

    @classmethod
    def parse(cls, count: int, body: bytes) -> Bye:
        """Parse the body after the common header (padding already removed)."""
        if len(body) < 4 * count:
            raise MediaParseError(f"RTCP BYE too short for {count} sources")
        sources = list(struct.unpack_from(f"!{count}I", body))
        rest = body[4 * count :]
        if not rest:
            return cls(sources)
        if 1 + rest[0] > len(rest):
            raise MediaParseError("RTCP BYE reason runs past the packet")
        return cls(sources, rest[1 : 1 + rest[0]].decode("utf-8", errors="replace"))

    def __bytes__(self) -> bytes:
        """Serialise (RFC 3550 §6.6); the reason is padded with nulls to 32 bits."""
        body = b"".join(_pack_u32(source) for source in self.sources)
        if self.reason is not None:
            text = self.reason.encode("utf-8")
            if len(text) > 255:
                raise ValueError("BYE reason is at most 255 octets")
            reason = bytes([len(text)]) + text
            body += reason + bytes(-len(reason) % 4)
        return _header(PT_BYE, len(self.sources), body) + body


@dataclass(slots=True)
class UnknownRtcpPacket:
    """Any other RTCP packet (APP 204, RTPFB 205, PSFB 206, XR 207, ...), kept as raw body."""

    packet_type: int
    count: int = 0
    body: bytes = b""

    @classmethod
    def parse(cls, packet_type: int, count: int, body: bytes) -> UnknownRtcpPacket:
        """Keep the body after the common header as is."""
        return cls(packet_type, count, body)

    def __bytes__(self) -> bytes:
        """Serialise with a fresh common header."""
        if not 0 <= self.packet_type <= 255:
            raise ValueError("packet type must fit 8 bits")
        return _header(self.packet_type, self.count, self.body) + self.body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcpPacket

_PARSERS: dict[int, Callable[[int, bytes], RtcpPacket]] = {
    PT_SR: SenderReport.parse,
    PT_RR: ReceiverReport.parse,
    PT_SDES: SourceDescription.parse,
    PT_BYE: Bye.parse,
}


# --- compound packets (RFC 3550 §6.1, App. A.2) ----------------------------------------------


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet (RFC 3550 §6.1, validity checks of App. A.2).

    Every packet must be version 2, the lengths must add up to the datagram exactly, and only
    the last packet may be padded. The "first packet is SR or RR" rule of A.2 is not
    enforced, so reduced-size RTCP (RFC 5506) parses too. Raises ``MediaParseError``.
    """
    buf = bytes(data)
    if not buf:
        raise MediaParseError("empty RTCP packet")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(buf):
        packet, offset = _parse_one(buf, offset)
        packets.append(packet)
    return packets


def _parse_one(buf: bytes, offset: int) -> tuple[RtcpPacket, int]:
    """Parse the packet at ``offset``; return it and the offset of the next one."""
    if len(buf) - offset < _HEADER.size:
        raise MediaParseError("RTCP packet too short for its header")
    first, packet_type, words = _HEADER.unpack_from(buf, offset)
    if first >> 6 != RTCP_VERSION:
        raise MediaParseError(f"RTCP version {first >> 6}, expected 2")
    end = offset + 4 * (words + 1)
    if end > len(buf):
        raise MediaParseError("RTCP length field runs past the datagram")
    body = buf[offset + _HEADER.size : end]
    if first & 0x20:
        body = _strip_padding(body, is_last=end == len(buf))
    count = first & 0x1F
    parser = _PARSERS.get(packet_type)
    if parser is None:
        return UnknownRtcpPacket.parse(packet_type, count, body), end
    return parser(count, body), end


def _strip_padding(body: bytes, is_last: bool) -> bytes:
    """Remove padding; only the last packet of a compound may have it (RFC 3550 A.2)."""
    if not is_last:
        raise MediaParseError("RTCP padding on a packet that is not the last of the compound")
    if not body or body[-1] == 0 or body[-1] > len(body):
        raise MediaParseError("RTCP padding count does not fit the packet")
    return body[: -body[-1]]


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Join packets into one compound RTCP packet (RFC 3550 §6.1); no padding is added."""
    return b"".join(bytes(packet) for packet in packets)


# --- transmission interval (RFC 3550 §6.3.1, App. A.7) ---------------------------------------

RTCP_MIN_TIME = 5.0
RTCP_SENDER_BW_FRACTION = 0.25
RTCP_RCVR_BW_FRACTION = 1 - RTCP_SENDER_BW_FRACTION
COMPENSATION = 2.71828 - 1.5  # e - 3/2, corrects for timer reconsideration (§6.3.1)


def rtcp_deterministic_interval(
    members: int,
    senders: int,
    rtcp_bw: float,
    we_sent: bool,
    avg_rtcp_size: float,
    initial: bool,
) -> float:
    """The deterministic interval Td of RFC 3550 §6.3.1 / App. A.7, in seconds.

    ``rtcp_bw`` is the RTCP bandwidth in octets per second (typically 5 % of the session
    bandwidth); ``avg_rtcp_size`` in octets. Senders share 25 % of it when they are at most a
    quarter of the members. The minimum is 5 s, halved before the first report.
    """
    if rtcp_bw <= 0:
        raise ValueError("rtcp_bw must be positive")
    minimum = RTCP_MIN_TIME / 2 if initial else RTCP_MIN_TIME
    n = members
    if senders <= members * RTCP_SENDER_BW_FRACTION:
        if we_sent:
            rtcp_bw *= RTCP_SENDER_BW_FRACTION
            n = senders
        else:
            rtcp_bw *= RTCP_RCVR_BW_FRACTION
            n -= senders
    return max(avg_rtcp_size * n / rtcp_bw, minimum)


def rtcp_interval(
    members: int,
    senders: int,
    rtcp_bw: float,
    we_sent: bool,
    avg_rtcp_size: float,
    initial: bool,
    rng: Callable[[], float] = random.random,
) -> float:
    """The randomised RTCP interval T of RFC 3550 §6.3.1 / App. A.7, in seconds.

    T = Td * U(0.5, 1.5) / (e - 3/2). ``rng`` returns a uniform float in [0, 1) (inject
    ``random.Random(seed).random`` in tests).
    """
    deterministic = rtcp_deterministic_interval(
        members, senders, rtcp_bw, we_sent, avg_rtcp_size, initial
    )
    return deterministic * (rng() + 0.5) / COMPENSATION


def update_avg_rtcp_size(avg_rtcp_size: float, packet_size: int) -> float:
    """avg_rtcp_size = 1/16 * packet_size + 15/16 * avg_rtcp_size (RFC 3550 §6.3.3).

    ``packet_size`` counts the compound packet with its UDP and IP headers (§6.2).
    """
    return packet_size / 16 + avg_rtcp_size * 15 / 16
