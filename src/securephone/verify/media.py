"""Media streams in a capture: plain RTP, SRTP or ZRTP, told apart from the bytes alone.

Datagrams are sorted by their first byte as RFC 7983 §7 demultiplexes a media port: 0-3
STUN, 16-19 ZRTP (``'ZRTP'`` magic cookie 0x5a525450 at offset 4, RFC 6189 §5), 20-63 DTLS,
128-191 RTP and RTCP (RFC 5761 §4 tells those two apart by the payload type octet).

RTP packets are grouped per (source, destination, SSRC). A group is a stream when plaintext
SDP announced one of its ends (RFC 3264), or when its headers behave like RTP (RFC 3550 §5.1:
version 2, one SSRC, sequence numbers that mostly advance by one, a steady timestamp step).

Each stream is then classified from its payload:

* **randomness** — ciphertext is indistinguishable from random bytes (RFC 3711 §9.1), while
  G.711 speech, silence and every codec's framing are not. Two tests: a chi-square test of
  the byte histogram against the uniform distribution (as a z-score), and the number of
  distinct values of each packet's first payload byte (a codec's table-of-contents byte or
  a µ-law silence byte repeats; under encryption it takes ~256·(1-e^(-n/256)) values).
* **tag length** — for codecs with a fixed bit rate (G.711, G.722, G.729, GSM) the payload
  of a packet is exactly ``timestamp step × bytes per sample``, i.e. the ptime's worth of
  audio. What is left over is the SRTP authentication tag (RFC 3711 §3.1): 10 bytes for the
  ``*_HMAC_SHA1_80`` suites, 4 for ``*_32`` (RFC 4568 §6.2), 16 for AEAD-GCM (RFC 7714).
* **ZRTP** packets and **DTLS** records on the same ports show how the keys were agreed.

With a key export (see :mod:`securephone.verify.keys`), or SDES keys that travelled in
plaintext SDP (RFC 4568 — readable by anyone who captured the SIP), the SRTP packets are
authenticated and decrypted with libsrtp (pylibsrtp): a tag that verifies proves the key, the
decrypted payload is the audio.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pylibsrtp

from securephone.errors import CryptoAttributeError, MediaParseError
from securephone.media.rtcp import SourceDescription, parse_compound
from securephone.media.rtp import is_rtcp, seq_diff, ts_diff
from securephone.sdp.crypto import parse as parse_crypto
from securephone.verify.flows import SipMessage
from securephone.verify.keys import SUITES, KeyEntry
from securephone.verify.pcap import Datagram, Endpoint

__all__ = [
    "MIN_RANDOM_BYTES",
    "DecryptionResult",
    "MediaClass",
    "MediaReport",
    "MediaStream",
    "PacketKind",
    "PayloadStats",
    "PlainRtcp",
    "RtcpInfo",
    "RtpHeader",
    "RtpPacketSeen",
    "SdpMedia",
    "ZrtpInfo",
    "classify_packet",
    "decrypt_stream",
    "find_media",
    "keys_from_sdp",
    "parse_rtp_header",
    "payload_stats",
    "read_plain_rtcp",
    "rtcp_is_plain",
    "sdp_media_from",
]

MIN_STREAM_PACKETS = 8
MIN_RANDOM_BYTES = 2048
MIN_FIRST_BYTE_PACKETS = 40
MAX_STAT_BYTES = 1 << 20
PROBE_PACKETS = 8
CHI2_Z_LIMIT = 6.0
FIRST_BYTE_SHARE = 0.8
TAG_LENGTHS = {
    0: "no authentication tag",
    4: "32-bit tag (AES_CM_128_HMAC_SHA1_32 / AES_256_CM_HMAC_SHA1_32)",
    10: "80-bit tag (AES_CM_128_HMAC_SHA1_80 / AES_256_CM_HMAC_SHA1_80)",
    16: "128-bit tag (AEAD_AES_128_GCM / AEAD_AES_256_GCM)",
}
ZRTP_COOKIE = b"ZRTP"  # 0x5a525450, RFC 6189 §5
STUN_COOKIE = b"\x21\x12\xa4\x42"  # RFC 5389 §6
STATIC_CODECS = {0: "PCMU", 3: "GSM", 4: "G723", 8: "PCMA", 9: "G722", 13: "CN", 18: "G729"}
# Bytes per RTP timestamp tick of fixed-rate codecs (RFC 3551 §4.5).
BYTES_PER_TICK = {"PCMU": 1.0, "PCMA": 1.0, "G722": 1.0, "G729": 10 / 80, "GSM": 33 / 160}


class PacketKind(StrEnum):
    """What a datagram on a media port is (RFC 7983 §7)."""

    RTP = "RTP"
    RTCP = "RTCP"
    ZRTP = "ZRTP"
    STUN = "STUN"
    DTLS = "DTLS"
    OTHER = "other"


def classify_packet(data: bytes) -> PacketKind:
    """Demultiplex one datagram by its first byte (RFC 7983 §7) and magic cookies."""
    if len(data) < 4:
        return PacketKind.OTHER
    first = data[0]
    if first < 4 and data[4:8] == STUN_COOKIE:
        return PacketKind.STUN
    if 16 <= first <= 19 and len(data) >= 12 and data[4:8] == ZRTP_COOKIE:
        return PacketKind.ZRTP
    if 20 <= first <= 63 and data[1] == 0xFE:
        return PacketKind.DTLS
    if 128 <= first <= 191 and len(data) >= 8:
        return PacketKind.RTCP if is_rtcp(data) else PacketKind.RTP
    return PacketKind.OTHER


# --------------------------------------------------------------------------- RTP headers


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The clear-text RTP header (RFC 3550 §5.1); SRTP leaves it readable (RFC 3711 §3.1)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool
    length: int
    padding: bool


def parse_rtp_header(data: bytes) -> RtpHeader | None:
    """Header fields and length (fixed part, CSRCs, extension); None when it does not fit.

    The padding count is not read: under SRTP it is encrypted (RFC 3711 §3.1).
    """
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first, second, seq, stamp, ssrc = struct.unpack_from("!BBHII", data)
    length = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < length + 4:
            return None
        length += 4 + 4 * struct.unpack_from("!H", data, length + 2)[0]
    if length > len(data):
        return None
    return RtpHeader(
        second & 0x7F, seq, stamp, ssrc, bool(second & 0x80), length, bool(first & 0x20)
    )


@dataclass(frozen=True, slots=True)
class RtpPacketSeen:
    """One RTP (or SRTP) packet as captured."""

    frame: int
    time: float
    header: RtpHeader
    data: bytes

    @property
    def payload(self) -> bytes:
        """Everything after the header: payload (+ padding, + SRTP MKI and tag)."""
        return self.data[self.header.length :]


_RTCP_NAMES = {
    200: "SR",
    201: "RR",
    202: "SDES",
    203: "BYE",
    204: "APP",
    205: "RTPFB",
    206: "PSFB",
    207: "XR",
}


@dataclass(frozen=True, slots=True)
class PlainRtcp:
    """What a plaintext RTCP compound packet shows: packet types and SDES CNAMEs."""

    types: tuple[str, ...]
    cnames: tuple[str, ...]


def read_plain_rtcp(data: bytes) -> PlainRtcp | None:
    """The packet types and CNAMEs of a plaintext RTCP compound packet, else None.

    A datagram is plaintext RTCP when it parses as a whole compound packet (RFC 3550 §6.1,
    App. A.2). SRTCP (RFC 3711 §3.4) encrypts everything after the first 8 bytes and appends
    the E-flag/index word and the tag, so its length chain does not end at the end.
    """
    try:
        packets = parse_compound(data)
    except MediaParseError:
        return None
    types = tuple(_RTCP_NAMES.get(p.packet_type, str(p.packet_type)) for p in packets)
    cnames = tuple(
        cname
        for p in packets
        if isinstance(p, SourceDescription)
        for chunk in p.chunks
        if (cname := chunk.cname)
    )
    return PlainRtcp(types, cnames)


def rtcp_is_plain(data: bytes) -> bool:
    """True when the datagram is a whole plaintext RTCP compound packet (see above)."""
    return read_plain_rtcp(data) is not None


# --------------------------------------------------------------------------- SDP


@dataclass(slots=True)
class SdpMedia:
    """One audio ``m=`` line of a plaintext SDP, read leniently (RFC 4566 §5.14, RFC 3264)."""

    owner: Endpoint
    proto: str
    payload_types: list[int]
    rtpmap: dict[int, tuple[str, int]]
    ptime: int | None
    crypto: list[str]
    zrtp_hash: bool
    fingerprint: bool
    call_id: str | None
    sent_by: Endpoint
    message: str

    @property
    def secure_profile(self) -> bool:
        """RTP/SAVP, RTP/SAVPF or UDP/TLS/RTP/SAVP(F) (RFC 3711 §12, RFC 5764 §8)."""
        return "SAVP" in self.proto

    def codec(self, payload_type: int) -> tuple[str, int] | None:
        """(encoding name, clock rate) for a payload type (rtpmap, else RFC 3551 static)."""
        if payload_type in self.rtpmap:
            return self.rtpmap[payload_type]
        name = STATIC_CODECS.get(payload_type)
        return (name, 8000) if name else None


_RTPMAP = re.compile(r"(\d{1,3})\s+([A-Za-z0-9_.-]+)/(\d+)")


def sdp_media_from(message: SipMessage) -> list[SdpMedia]:
    """The audio media descriptions in a SIP message's SDP body (empty when none)."""
    body = message.sdp()
    if body is None:
        return []
    session_addr: str | None = None
    sections: list[dict[str, Any]] = []
    for raw in body.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            sections.append(_media_line(value))
        elif kind == "c" and sections:
            sections[-1]["addr"] = _connection_address(value)
        elif kind == "c":
            session_addr = _connection_address(value)
        elif kind == "a" and sections:
            _media_attribute(sections[-1], value)
    found = []
    for item in sections:
        addr: str | None = item["addr"] or session_addr
        if item["media"] == "audio" and item["port"] and addr:
            found.append(_sdp_media(item, addr, message))
    return found


def _media_line(value: str) -> dict[str, Any]:
    """``m=<media> <port>[/<n>] <proto> <fmt>...`` (RFC 4566 §5.14)."""
    fields = value.split()
    port_text = fields[1].split("/")[0] if len(fields) > 1 else ""
    return {
        "media": fields[0] if fields else "",
        "port": int(port_text) if port_text.isdigit() else 0,
        "proto": fields[2] if len(fields) > 2 else "",
        "formats": [int(f) for f in fields[3:] if f.isdigit()],
        "addr": None,
        "rtpmap": {},
        "ptime": None,
        "crypto": [],
        "zrtp": False,
        "fingerprint": False,
    }


def _connection_address(value: str) -> str | None:
    """The address of ``c=IN IP4 <addr>[/ttl]`` (RFC 4566 §5.7)."""
    fields = value.split()
    return fields[2].split("/")[0] if len(fields) >= 3 else None


def _media_attribute(current: dict[str, Any], value: str) -> None:
    name, _, rest = value.partition(":")
    rest = rest.strip()
    if name == "rtpmap":
        match = _RTPMAP.match(rest)
        if match:
            current["rtpmap"][int(match[1])] = (match[2].upper(), int(match[3]))
    elif name == "ptime" and rest.isdigit():
        current["ptime"] = int(rest)
    elif name == "crypto":
        current["crypto"].append(rest)
    elif name == "zrtp-hash":
        current["zrtp"] = True
    elif name == "fingerprint":
        current["fingerprint"] = True


def _sdp_media(item: dict[str, Any], addr: str, message: SipMessage) -> SdpMedia:
    return SdpMedia(
        owner=Endpoint(addr, item["port"]),
        proto=item["proto"],
        payload_types=item["formats"],
        rtpmap=item["rtpmap"],
        ptime=item["ptime"],
        crypto=item["crypto"],
        zrtp_hash=item["zrtp"],
        fingerprint=item["fingerprint"],
        call_id=message.call_id,
        sent_by=message.src,
        message=message.label,
    )


def keys_from_sdp(media: SdpMedia) -> list[KeyEntry]:
    """SDES keys (RFC 4568 §6.1) readable in a plaintext SDP: the owner's sending keys."""
    keys: list[KeyEntry] = []
    for line in media.crypto:
        try:
            attr = parse_crypto(line)
        except CryptoAttributeError:
            continue
        if attr.suite not in SUITES:
            continue
        for param in attr.key_params:
            if len(param.key_salt) == SUITES[attr.suite].key_salt_length:
                keys.append(
                    KeyEntry(
                        suite=attr.suite,
                        key=param.key_salt,
                        direction="outbound",
                        source=f"a=crypto in plaintext SDP ({media.message} from {media.sent_by})",
                        call_id=media.call_id,
                        local=str(media.owner),
                    )
                )
    return keys


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True, slots=True)
class PayloadStats:
    """Randomness of a stream's payload bytes and the leftover after the codec's payload."""

    bytes_tested: int
    entropy: float
    chi2_z: float
    first_byte_distinct: int
    first_byte_expected: float
    random: bool | None
    extra_bytes: int | None
    extra_share: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "bytes_tested": self.bytes_tested,
            "entropy_bits_per_byte": round(self.entropy, 4),
            "chi2_z": round(self.chi2_z, 2),
            "first_byte_distinct": self.first_byte_distinct,
            "first_byte_expected_if_random": round(self.first_byte_expected, 1),
            "random": self.random,
            "extra_bytes": self.extra_bytes,
            "extra_share": round(self.extra_share, 3),
        }


def byte_randomness(data: bytes) -> tuple[float, float]:
    """(Shannon entropy in bits per byte, chi-square z-score against uniform bytes)."""
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(np.float64)
    total = float(counts.sum())
    if total == 0:
        return 0.0, 0.0
    probs = counts[counts > 0] / total
    entropy = float(-(probs * np.log2(probs)).sum())
    expected = total / 256.0
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    return entropy, (chi2 - 255.0) / float(np.sqrt(2 * 255.0))


def expected_distinct(n: int, values: int = 256) -> float:
    """Expected number of distinct values among ``n`` uniform draws from ``values``."""
    return values * (1.0 - (1.0 - 1.0 / values) ** n)


def payload_stats(payloads: Sequence[bytes], extra: int | None, share: float) -> PayloadStats:
    """Randomness of ``payloads``; a known ``extra`` (tag and MKI) is cut off each first."""
    cut = [p[: len(p) - extra] if extra and len(p) > extra else p for p in payloads]
    blob = b"".join(cut)[:MAX_STAT_BYTES]
    entropy, z = byte_randomness(blob)
    firsts = [p[0] for p in cut if p]
    distinct = len(set(firsts))
    wanted = expected_distinct(len(firsts))
    random: bool | None = None
    if len(blob) >= MIN_RANDOM_BYTES:
        random = abs(z) < CHI2_Z_LIMIT
        if random and len(firsts) >= MIN_FIRST_BYTE_PACKETS:
            random = distinct >= FIRST_BYTE_SHARE * wanted
    elif blob and len(firsts) >= 4 and distinct <= 2:
        random = False  # few packets, but a constant first byte is not ciphertext
    return PayloadStats(len(blob), entropy, z, distinct, wanted, random, extra, share)


# --------------------------------------------------------------------------- streams


class MediaClass(StrEnum):
    """What a stream's payload is."""

    PLAIN_RTP = "plain RTP"
    SRTP = "SRTP"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class ZrtpInfo:
    """ZRTP packets on a port pair: message types in order (RFC 6189 §5.1-§5.7)."""

    packets: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        """Confirm2 or Conf2ACK seen: the key agreement finished (RFC 6189 §4.6)."""
        return "Conf2ACK" in self.messages or "Confirm2" in self.messages

    @property
    def go_clear(self) -> bool:
        """A GoClear was sent: the peers may have switched encryption off (RFC 6189 §5.7)."""
        return "GoClear" in self.messages


@dataclass(slots=True)
class DecryptionResult:
    """SRTP packets authenticated and decrypted with a given key (RFC 3711 §3.3)."""

    source: str
    suite: str
    packets: int = 0
    ok: int = 0
    auth_failed: int = 0
    replayed: int = 0
    other_errors: int = 0
    payloads: list[tuple[int, int, bytes]] = field(default_factory=list, repr=False)
    plain_stats: PayloadStats | None = None
    note: str = ""
    tried: int = 1

    @property
    def confirmed(self) -> bool:
        """At least 90 % of the tags verified under this key."""
        return self.ok > 0 and self.ok >= 0.9 * self.packets

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no key material)."""
        return {
            "source": self.source,
            "suite": self.suite,
            "packets": self.packets,
            "tags_ok": self.ok,
            "auth_failed": self.auth_failed,
            "replayed": self.replayed,
            "other_errors": self.other_errors,
            "confirmed": self.confirmed,
            "keys_tried": self.tried,
            "decrypted_random": None if self.plain_stats is None else self.plain_stats.random,
            "note": self.note,
        }


@dataclass(slots=True)
class RtcpInfo:
    """RTCP sent alongside a stream (same SSRC): plaintext (what it showed) or SRTCP."""

    plain: int = 0
    encrypted: int = 0
    plain_types: list[str] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)

    def add(self, seen: PlainRtcp | None) -> None:
        """Count one RTCP datagram (None: SRTCP)."""
        if seen is None:
            self.encrypted += 1
            return
        self.plain += 1
        self.plain_types += [t for t in seen.types if t not in self.plain_types]
        self.cnames += [c for c in seen.cnames if c not in self.cnames]


@dataclass(slots=True)
class MediaStream:
    """One RTP stream (one direction, one SSRC) and what it is."""

    src: Endpoint
    dst: Endpoint
    ssrc: int
    packets: list[RtpPacketSeen]
    sdp_receiver: SdpMedia | None = None
    sdp_sender: SdpMedia | None = None
    payload_type: int = 0
    codec: str | None = None
    clock_rate: int = 8000
    timestamp_step: int | None = None
    stats: PayloadStats | None = None
    media_class: MediaClass = MediaClass.UNKNOWN
    tag_length: int | None = None
    zrtp: ZrtpInfo = field(default_factory=ZrtpInfo)
    dtls_records: int = 0
    rtcp: RtcpInfo = field(default_factory=RtcpInfo)
    decryption: DecryptionResult | None = None
    exposed_keys: list[KeyEntry] = field(default_factory=list, repr=False)
    by_sdp: bool = False

    @property
    def name(self) -> str:
        """``RTP 127.0.0.1:30000 → 127.0.0.1:30002 SSRC 0x1234abcd``."""
        return f"{self.src} → {self.dst} SSRC 0x{self.ssrc:08x}"

    @property
    def first_time(self) -> float:
        """Capture time of the first packet."""
        return self.packets[0].time

    @property
    def duration(self) -> float:
        """Seconds between the first and last packet."""
        return self.packets[-1].time - self.packets[0].time

    @property
    def lost(self) -> int:
        """Sequence numbers never seen between the first and the last (RFC 3550 A.3)."""
        seqs = [p.header.sequence_number for p in self.packets]
        span = sum(max(0, seq_diff(b, a)) for a, b in itertools.pairwise(seqs)) + 1
        return max(0, span - len(set(seqs)))

    @property
    def main_packets(self) -> list[RtpPacketSeen]:
        """Packets of the stream's main payload type (DTMF and comfort noise left out)."""
        return [p for p in self.packets if p.header.payload_type == self.payload_type]

    @property
    def suite_hint(self) -> str | None:
        """What the leftover bytes say about the SRTP suite."""
        if self.tag_length is None:
            return None
        return TAG_LENGTHS.get(self.tag_length, f"{self.tag_length} bytes after the payload")

    @property
    def g711(self) -> bool:
        """True when the payload is (or claims to be) G.711."""
        return self.codec in ("PCMU", "PCMA")


@dataclass(slots=True)
class MediaReport:
    """Every media stream, plus the media-port traffic that is not part of one."""

    streams: list[MediaStream]
    zrtp_only: dict[str, ZrtpInfo]
    unmatched_rtcp_plain: int
    unmatched_rtcp_encrypted: int
    stun: int
    dtls: int
    sdp: list[SdpMedia]


def find_media(
    datagrams: Iterable[Datagram],
    messages: Sequence[SipMessage] = (),
    keys: Sequence[KeyEntry] = (),
) -> MediaReport:
    """Find and classify every RTP stream; decrypt with ``keys`` and SDP-exposed keys."""
    sdp = [m for message in messages for m in sdp_media_from(message)]
    groups: dict[tuple[Endpoint, Endpoint, int], list[RtpPacketSeen]] = {}
    side = _SideTraffic()
    for dgram in datagrams:
        _sort_datagram(dgram, groups, side)
    owners = {m.owner: m for m in sdp}
    streams = [
        _make_stream(src, dst, ssrc, pkts, owners) for (src, dst, ssrc), pkts in groups.items()
    ]
    streams = [s for s in streams if s.by_sdp or _looks_like_rtp(s.packets)]
    streams.sort(key=lambda s: s.first_time)
    zrtp_only = _attach_side_traffic(streams, side)
    for stream in streams:
        _classify(stream)
        _decrypt_if_keyed(stream, keys)
    return MediaReport(
        streams,
        zrtp_only,
        side.rtcp_plain_left,
        side.rtcp_encrypted_left,
        side.stun,
        side.dtls_total,
        sdp,
    )


@dataclass(slots=True)
class _SideTraffic:
    zrtp: dict[frozenset[Endpoint], ZrtpInfo] = field(default_factory=dict)
    dtls: Counter[frozenset[Endpoint]] = field(default_factory=Counter)
    rtcp: dict[tuple[Endpoint, int], RtcpInfo] = field(default_factory=dict)
    stun: int = 0
    dtls_total: int = 0
    rtcp_plain_left: int = 0
    rtcp_encrypted_left: int = 0


def _sort_datagram(
    dgram: Datagram,
    groups: dict[tuple[Endpoint, Endpoint, int], list[RtpPacketSeen]],
    side: _SideTraffic,
) -> None:
    kind = classify_packet(dgram.payload)
    pair = frozenset((dgram.src, dgram.dst))
    if kind is PacketKind.RTP:
        header = parse_rtp_header(dgram.payload)
        if header is not None:
            key = (dgram.src, dgram.dst, header.ssrc)
            groups.setdefault(key, []).append(
                RtpPacketSeen(dgram.frame, dgram.time, header, dgram.payload)
            )
    elif kind is PacketKind.RTCP:
        ssrc = struct.unpack_from("!I", dgram.payload, 4)[0]
        side.rtcp.setdefault((dgram.src, ssrc), RtcpInfo()).add(read_plain_rtcp(dgram.payload))
    elif kind is PacketKind.ZRTP:
        info = side.zrtp.setdefault(pair, ZrtpInfo())
        info.packets += 1
        info.messages.append(dgram.payload[16:24].decode("ascii", "replace").strip())
    elif kind is PacketKind.DTLS:
        side.dtls[pair] += 1
        side.dtls_total += 1
    elif kind is PacketKind.STUN:
        side.stun += 1


def _attach_side_traffic(streams: list[MediaStream], side: _SideTraffic) -> dict[str, ZrtpInfo]:
    used: set[frozenset[Endpoint]] = set()
    for stream in streams:
        pair = frozenset((stream.src, stream.dst))
        if pair in side.zrtp:
            stream.zrtp = side.zrtp[pair]
            used.add(pair)
        stream.dtls_records = side.dtls.get(pair, 0)
        for (src, ssrc), info in list(side.rtcp.items()):
            if ssrc == stream.ssrc and src.ip == stream.src.ip:
                stream.rtcp = info
                del side.rtcp[(src, ssrc)]
    for info in side.rtcp.values():
        side.rtcp_plain_left += info.plain
        side.rtcp_encrypted_left += info.encrypted
    return {
        " ⇄ ".join(sorted(str(e) for e in pair)): info
        for pair, info in side.zrtp.items()
        if pair not in used
    }


def _make_stream(
    src: Endpoint,
    dst: Endpoint,
    ssrc: int,
    packets: list[RtpPacketSeen],
    owners: dict[Endpoint, SdpMedia],
) -> MediaStream:
    stream = MediaStream(src, dst, ssrc, packets)
    stream.sdp_receiver = owners.get(dst)
    stream.sdp_sender = owners.get(src)
    stream.by_sdp = stream.sdp_receiver is not None or stream.sdp_sender is not None
    types = Counter(p.header.payload_type for p in packets)
    stream.payload_type = types.most_common(1)[0][0]
    codec = _codec(stream)
    if codec is not None:
        stream.codec, stream.clock_rate = codec
    stream.timestamp_step = _timestamp_step(stream.main_packets)
    if stream.sdp_sender is not None:
        stream.exposed_keys = keys_from_sdp(stream.sdp_sender)
    return stream


def _codec(stream: MediaStream) -> tuple[str, int] | None:
    for sdp in (stream.sdp_receiver, stream.sdp_sender):
        if sdp is not None and sdp.codec(stream.payload_type) is not None:
            return sdp.codec(stream.payload_type)
    name = STATIC_CODECS.get(stream.payload_type)
    return (name, 8000) if name else None


def _steps(packets: Sequence[RtpPacketSeen]) -> list[int]:
    """Timestamp steps between packets whose sequence numbers are consecutive."""
    steps = []
    for a, b in itertools.pairwise(packets):
        if seq_diff(b.header.sequence_number, a.header.sequence_number) == 1:
            steps.append(ts_diff(b.header.timestamp, a.header.timestamp))
    return steps


def _timestamp_step(packets: Sequence[RtpPacketSeen]) -> int | None:
    steps = [s for s in _steps(packets) if s > 0]
    return Counter(steps).most_common(1)[0][0] if steps else None


def _looks_like_rtp(packets: Sequence[RtpPacketSeen]) -> bool:
    """RFC 3550 §5.1 behaviour: mostly +1 sequence steps and a steady positive timestamp step."""
    if len(packets) < MIN_STREAM_PACKETS:
        return False
    seqs = [
        seq_diff(b.header.sequence_number, a.header.sequence_number)
        for a, b in itertools.pairwise(packets)
    ]
    in_order = sum(1 for d in seqs if d == 1) / len(seqs)
    steps = _steps(packets)
    positive = [s for s in steps if s > 0]
    if not positive:
        return False
    mode, count = Counter(positive).most_common(1)[0]
    steady = sum(1 for s in steps if s in (mode, 0) or (s > 0 and s % mode == 0)) / len(steps)
    return in_order >= 0.8 and steady >= 0.7 and count >= 0.5 * len(steps)


def _extra_bytes(stream: MediaStream) -> tuple[int | None, float]:
    """Leftover after ``timestamp step × bytes per sample``: the SRTP tag (+MKI) length."""
    per_tick = BYTES_PER_TICK.get(stream.codec or "")
    packets = stream.main_packets
    if per_tick is None or len(packets) < 2:
        return None, 0.0
    extras = []
    for a, b in itertools.pairwise(packets):
        if seq_diff(b.header.sequence_number, a.header.sequence_number) != 1:
            continue
        step = ts_diff(b.header.timestamp, a.header.timestamp)
        if step > 0:
            extras.append(len(b.payload) - round(step * per_tick))
    if not extras:
        return None, 0.0
    mode, count = Counter(extras).most_common(1)[0]
    share = count / len(extras)
    return (mode if share >= 0.8 and 0 <= mode <= 32 else None), share


def _classify(stream: MediaStream) -> None:
    extra, share = _extra_bytes(stream)
    stream.tag_length = extra
    payloads = [p.payload for p in stream.main_packets]
    stream.stats = payload_stats(payloads, extra, share)
    if stream.stats.random is None:
        stream.media_class = MediaClass.UNKNOWN
    elif stream.stats.random:
        stream.media_class = MediaClass.SRTP
    else:
        stream.media_class = MediaClass.PLAIN_RTP
        stream.tag_length = extra or None


# --------------------------------------------------------------------------- decryption


def _candidate_keys(stream: MediaStream, keys: Sequence[KeyEntry]) -> list[KeyEntry]:
    exact = [k for k in keys if k.ssrc == stream.ssrc]
    wildcard = [k for k in keys if k.ssrc is None]
    return [*exact, *stream.exposed_keys, *wildcard]


def _decrypt_if_keyed(stream: MediaStream, keys: Sequence[KeyEntry]) -> None:
    """Try each candidate key on a few packets first; decrypt the stream with the one that fits.

    When no key fits, the first candidate's full result is kept to report the failed tags.
    """
    if stream.media_class is MediaClass.PLAIN_RTP:
        return
    candidates = _candidate_keys(stream, keys)
    for key in candidates:
        if decrypt_stream(stream.packets[:PROBE_PACKETS], key).ok:
            result = decrypt_stream(stream.packets, key)
            result.tried = len(candidates)
            stream.decryption = result
            if result.confirmed:
                return
    if stream.decryption is None and candidates:
        stream.decryption = decrypt_stream(stream.packets, candidates[0])
        stream.decryption.tried = len(candidates)


def decrypt_stream(packets: Sequence[RtpPacketSeen], key: KeyEntry) -> DecryptionResult:
    """Authenticate and decrypt SRTP packets with one master key (libsrtp, RFC 3711 §3.3)."""
    result = DecryptionResult(source=key.source, suite=key.suite, packets=len(packets))
    profile = SUITES[key.suite].profile
    if profile is None:
        result.note = f"{key.suite} is not supported by the SRTP library: cannot decrypt"
        return result
    policy = pylibsrtp.Policy(
        key=key.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
    )
    policy.window_size = 1024
    session = pylibsrtp.Session(policy=policy)
    for packet in packets:
        _unprotect_one(session, packet, result)
    main = Counter(pt for pt, _, _ in result.payloads).most_common(1)
    if main:
        plain = [data for pt, _, data in result.payloads if pt == main[0][0]]
        result.plain_stats = payload_stats(plain, None, 0.0)
    return result


def _unprotect_one(session: Any, packet: RtpPacketSeen, result: DecryptionResult) -> None:
    try:
        clear = session.unprotect(packet.data)
    except pylibsrtp.Error as exc:
        text = str(exc)
        if "authentication" in text:
            result.auth_failed += 1
        elif "replay" in text:
            result.replayed += 1
        else:
            result.other_errors += 1
        return
    result.ok += 1
    header = parse_rtp_header(clear)
    if header is None:
        return
    body = clear[header.length :]
    if header.padding and body and 0 < body[-1] <= len(body):
        body = body[: len(body) - body[-1]]
    result.payloads.append((header.payload_type, header.timestamp, body))
