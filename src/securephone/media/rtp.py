"""RTP data packets and receiver statistics, sans I/O (RFC 3550 §5.1, §5.3.1, App. A.1, A.8).

``RtpPacket.parse`` / ``bytes(packet)`` convert the fixed header, CSRC list, header extension
and padding. ``is_rtcp`` demultiplexes RTP and RTCP sharing one port (RFC 5761 §4). The
``seq_*`` / ``ts_diff`` helpers compare 16-bit sequence numbers and 32-bit timestamps across
wrap-around. ``RtpReceiverStats`` keeps the per-source reception state of RFC 3550 App. A.1
(source validation, extended highest sequence number, loss) and A.8 (interarrival jitter);
it is fed ``(packet, arrival_time_seconds)`` and never reads a clock itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from securephone.errors import MediaParseError

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "HeaderExtension",
    "MediaParseError",
    "RtpPacket",
    "RtpReceiverStats",
    "is_rtcp",
    "seq_add",
    "seq_diff",
    "seq_gt",
    "seq_lt",
    "ts_diff",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32

# RFC 3550 App. A.1 parameters.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

_FIXED = struct.Struct("!BBHII")
AUDIO_HEADER = _FIXED  # the fixed header: first octet, marker + type, sequence, timestamp, SSRC
_PLAIN_FIRST = RTP_VERSION << 6  # first octet of a packet without padding, extension or CSRC


def pack_audio(
    payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes
) -> bytes:
    """A plain RTP packet (no CSRC, extension or padding) packed in one step (RFC 3550 §5.1).

    The send path's shortcut for ``bytes(RtpPacket(...))``: no packet object per frame. The
    caller keeps the fields in range (7-bit type, 16-bit sequence, 32-bit timestamp and SSRC).
    """
    second = (0x80 if marker else 0) | payload_type
    return _FIXED.pack(RTP_VERSION << 6, second, seq, timestamp, ssrc) + payload


_EXT_HEADER = struct.Struct("!HH")


def seq_add(seq: int, delta: int) -> int:
    """``seq + delta`` modulo 2**16."""
    return (seq + delta) % SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers, in [-32768, 32767]."""
    return (a - b + SEQ_MOD // 2) % SEQ_MOD - SEQ_MOD // 2


def seq_lt(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes before ``b`` (with wrap-around)."""
    return seq_diff(a, b) < 0


def seq_gt(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b`` (with wrap-around)."""
    return seq_diff(a, b) > 0


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 32-bit RTP timestamps, in [-2**31, 2**31 - 1]."""
    return (a - b + TS_MOD // 2) % TS_MOD - TS_MOD // 2


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """Tell RTCP from RTP on a shared port (RFC 5761 §4).

    RTCP packet types 192-223 put 64-95 in the bits where RTP has M + payload type, a range
    RTP payload types must avoid; so the second octet with the top bit masked decides.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


# --- the packet ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """An RTP header extension (RFC 3550 §5.3.1): 16 profile-defined bits plus data.

    ``data`` is the extension body without its 4-octet header; its length is a multiple of 4.
    """

    profile: int
    data: bytes = b""


@dataclass(slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 §5.1).

    ``padding`` is the number of padding octets at the end of the packet, including the last
    octet that holds the count (RFC 3550 §5.1, P bit); 0 means no padding. ``version`` is
    always 2.
    """

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension: HeaderExtension | None = None
    padding: int = 0

    @property
    def version(self) -> int:
        """The RTP version, always 2 (RFC 3550 §5.1)."""
        return RTP_VERSION

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one RTP packet (RFC 3550 §5.1); raise ``MediaParseError`` if malformed."""
        buf = bytes(data)
        first, second, seq, timestamp, ssrc = _parse_fixed_header(buf)
        if first == _PLAIN_FIRST:  # no CSRC, extension or padding: the usual audio packet
            return cls(second & 0x7F, seq, timestamp, ssrc, buf[RTP_HEADER_SIZE:], second > 0x7F)
        offset, csrc = _parse_csrc(buf, first & 0x0F)
        extension = None
        if first & 0x10:
            offset, extension = _parse_extension(buf, offset)
        padding = _parse_padding(buf, offset) if first & 0x20 else 0
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=buf[offset : len(buf) - padding],
            marker=bool(second & 0x80),
            csrc=csrc,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        """Serialise the packet (RFC 3550 §5.1); ``ValueError`` if a field is out of range."""
        self._check_fields()
        first = (RTP_VERSION << 6) | (0x20 if self.padding else 0) | len(self.csrc)
        first |= 0x10 if self.extension is not None else 0
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", source) for source in self.csrc)
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4) + ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)

    def _check_fields(self) -> None:
        """Refuse values that do not fit their header fields (a caller bug)."""
        _check_range("payload_type", self.payload_type, 0x7F)
        _check_range("sequence_number", self.sequence_number, 0xFFFF)
        _check_range("timestamp", self.timestamp, 0xFFFFFFFF)
        _check_range("ssrc", self.ssrc, 0xFFFFFFFF)
        _check_range("padding", self.padding, 0xFF)
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRC identifiers fit the CC field")
        for source in self.csrc:
            _check_range("csrc", source, 0xFFFFFFFF)
        if self.extension is not None:
            _check_extension(self.extension)


def _check_range(name: str, value: int, maximum: int) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= maximum``."""
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} {value} out of range 0..{maximum}")


def _check_extension(ext: HeaderExtension) -> None:
    """An extension body is whole 32-bit words, at most 65535 of them (RFC 3550 §5.3.1)."""
    _check_range("extension profile", ext.profile, 0xFFFF)
    if len(ext.data) % 4 or len(ext.data) > 4 * 0xFFFF:
        raise ValueError("header extension data must be a multiple of 4 octets, < 256 KiB")


def _parse_fixed_header(buf: bytes) -> tuple[int, int, int, int, int]:
    """The 12-octet fixed header; checks length and version (RFC 3550 §5.1)."""
    if len(buf) < RTP_HEADER_SIZE:
        raise MediaParseError(f"RTP packet too short ({len(buf)} octets)")
    fields = _FIXED.unpack_from(buf)
    if fields[0] >> 6 != RTP_VERSION:
        raise MediaParseError(f"RTP version {fields[0] >> 6}, expected 2")
    return fields


def _parse_csrc(buf: bytes, count: int) -> tuple[int, list[int]]:
    """The CSRC list after the fixed header; returns (offset after it, identifiers)."""
    end = RTP_HEADER_SIZE + 4 * count
    if len(buf) < end:
        raise MediaParseError(f"RTP packet too short for {count} CSRC identifiers")
    return end, list(struct.unpack_from(f"!{count}I", buf, RTP_HEADER_SIZE))


def _parse_extension(buf: bytes, offset: int) -> tuple[int, HeaderExtension]:
    """The header extension at ``offset`` (RFC 3550 §5.3.1); returns (offset after it, ext)."""
    if len(buf) < offset + 4:
        raise MediaParseError("RTP packet too short for its header extension")
    profile, words = _EXT_HEADER.unpack_from(buf, offset)
    end = offset + 4 + 4 * words
    if len(buf) < end:
        raise MediaParseError("RTP header extension longer than the packet")
    return end, HeaderExtension(profile, buf[offset + 4 : end])


def _parse_padding(buf: bytes, header_end: int) -> int:
    """The padding count from the last octet (RFC 3550 §5.1); it must fit after the header."""
    count = buf[-1]
    if count == 0 or count > len(buf) - header_end:
        raise MediaParseError(f"RTP padding count {count} does not fit the packet")
    return count


# --- reception statistics (RFC 3550 App. A.1 and A.8) ----------------------------------------


class RtpReceiverStats:
    """Reception statistics for one synchronisation source (RFC 3550 App. A.1, A.3, A.8).

    ``update(packet, arrival_time)`` runs the A.1 ``update_seq`` algorithm: a new source is on
    probation until ``MIN_SEQUENTIAL`` packets arrive in sequence (the first of them is not
    counted, exactly as in A.1); a jump of more than ``MAX_DROPOUT`` ahead or ``MAX_MISORDER``
    behind is dropped unless the next packet confirms it as a restart. Counted packets
    (including duplicates and reordered ones, as in A.1) feed the A.8 jitter estimate, in RTP
    timestamp units; ``arrival_time`` is in seconds on any monotonic clock and is converted
    with ``clock_rate``. Packets from another SSRC are ignored (one instance per source).

    Deviation from the A.1 C code: the probation test "seq == max_seq + 1" is done modulo
    2**16, so a probation that straddles 65535 -> 0 succeeds instead of restarting.
    """

    def __init__(self, clock_rate: int, ssrc: int | None = None) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self.clock_rate = clock_rate
        self.ssrc = ssrc
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = SEQ_MOD + 1
        self.probation = MIN_SEQUENTIAL
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._started = False
        self._last_arrival: float | None = None
        self._last_timestamp = 0

    # A.1 ---------------------------------------------------------------------------------

    def update(self, packet: RtpPacket, arrival_time: float) -> bool:
        """Account for one received packet; return True if it counts (source valid, in range)."""
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        if packet.ssrc != self.ssrc:
            return False
        if not self._started:
            self._start(packet.sequence_number)
        if not self._update_seq(packet.sequence_number):
            return False
        self._update_jitter(packet.timestamp, arrival_time)
        return True

    def _start(self, seq: int) -> None:
        """A new source is heard: init_seq, then put it on probation (RFC 3550 A.1)."""
        self._init_seq(seq)
        self.max_seq = seq_add(seq, -1)
        self.probation = MIN_SEQUENTIAL
        self._started = True

    def _init_seq(self, seq: int) -> None:
        """RFC 3550 A.1 ``init_seq``; also forgets the jitter transit reference."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._last_arrival = None

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 ``update_seq``: True if the packet is counted as received."""
        if self.probation:
            return self._probation_step(seq)
        udelta = (seq - self.max_seq) % SEQ_MOD
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD  # in order, with permissible gap, wrapped
            self.max_seq = seq
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:  # a very large jump: wait for the next packet to confirm
                self.bad_seq = (seq + 1) % SEQ_MOD
                return False
            self._init_seq(seq)  # two sequential packets: the sender restarted
        self.received += 1  # in order, duplicate or reordered within MAX_MISORDER
        return True

    def _probation_step(self, seq: int) -> bool:
        """One packet of a source still on probation (RFC 3550 A.1)."""
        if seq != seq_add(self.max_seq, 1):
            self.probation = MIN_SEQUENTIAL - 1
            self.max_seq = seq
            return False
        self.probation -= 1
        self.max_seq = seq
        if self.probation:
            return False
        self._init_seq(seq)
        self.received += 1
        return True

    @property
    def valid(self) -> bool:
        """True once the source passed probation (RFC 3550 A.1)."""
        return self._started and self.probation == 0

    @property
    def extended_highest_sequence(self) -> int:
        """Extended highest sequence number received: cycles + max_seq (RFC 3550 A.3)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the base sequence number (RFC 3550 A.3)."""
        return self.extended_highest_sequence - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost, expected - received; negative with duplicates (A.3)."""
        return self.expected - self.received if self.valid else 0

    def fraction_lost_since_last_report(self) -> int:
        """Fraction lost since the previous call, in 1/256 (RFC 3550 A.3); starts a new interval."""
        expected = self.expected if self.valid else 0
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    # A.8 ---------------------------------------------------------------------------------

    def _update_jitter(self, timestamp: int, arrival_time: float) -> None:
        """RFC 3550 A.8: J += (|D(i-1, i)| - J) / 16, D in timestamp units."""
        arrival = arrival_time * self.clock_rate
        if self._last_arrival is not None:
            elapsed = ts_diff(timestamp, self._last_timestamp)
            transit_change = (arrival - self._last_arrival) - elapsed
            self.jitter += (abs(transit_change) - self.jitter) / 16.0
        self._last_arrival = arrival
        self._last_timestamp = timestamp

    @property
    def jitter_report(self) -> int:
        """The jitter as an RTCP report block carries it: truncated timestamp units (A.8)."""
        return int(self.jitter)
