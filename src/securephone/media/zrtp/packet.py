"""ZRTP packet framing (RFC 6189 §5 "ZRTP Messages", Figure 2) and demultiplexing (RFC 7983).

A ZRTP packet is a 12-byte header (``0x10 0x00``, sequence number, magic cookie ``ZRTP``,
source identifier = the sender's RTP SSRC), one ZRTP message, and a CRC-32C (RFC 4960
Appendix B) over everything before it. bzrtp (the interop target) writes the CRC value
least-significant byte first, and so do we; a packet whose CRC does not check is discarded
(RFC 6189 §5). Sizes outside [28, 3072] bytes are refused like bzrtp does.

Every malformed input raises :class:`ZrtpParseError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "HEADER_LENGTH",
    "MAGIC_COOKIE",
    "MAX_PACKET_LENGTH",
    "MIN_PACKET_LENGTH",
    "ZrtpPacket",
    "ZrtpParseError",
    "crc32c",
    "is_zrtp",
]

MAGIC_COOKIE = b"ZRTP"  # 0x5a525450, RFC 6189 §5
HEADER_LENGTH = 12
CRC_LENGTH = 4
MIN_PACKET_LENGTH = HEADER_LENGTH + 12 + CRC_LENGTH  # smallest message is 3 words
MAX_PACKET_LENGTH = 3072  # bzrtp's bound; no RFC 6189 message comes near it
_FIRST_BYTE = 0x10  # binary 0001 then unused bits (sent as zero)
_FRAGMENT_BYTE = 0x11  # bzrtp >= 5.2 fragmented packets (never negotiated by us)


class ZrtpParseError(ValueError):
    """A ZRTP packet or message that is malformed (RFC 6189 §5); the only error parsing raises."""


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0x82F63B78 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), RFC 4960 Appendix B."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def is_zrtp(datagram: bytes | bytearray | memoryview) -> bool:
    """True for a datagram on a media port that is ZRTP (RFC 7983 §7, RFC 6189 §5).

    First byte in 16..19 and the magic cookie ``ZRTP`` at offset 4. STUN (0..3), DTLS
    (20..63) and RTP/RTCP (128..191) are not ZRTP.
    """
    return (
        len(datagram) >= HEADER_LENGTH
        and 16 <= datagram[0] <= 19
        and (bytes(datagram[4:8]) == MAGIC_COOKIE)
    )


@dataclass(frozen=True)
class ZrtpPacket:
    """One ZRTP packet: sequence number, source identifier (SSRC) and the message bytes."""

    sequence: int
    ssrc: int
    message: bytes

    def __bytes__(self) -> bytes:
        """Header + message + CRC-32C written least-significant byte first (bzrtp's order)."""
        if not 0 <= self.sequence <= 0xFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError("sequence or SSRC out of range")
        head = struct.pack("!BBH4sI", _FIRST_BYTE, 0, self.sequence, MAGIC_COOKIE, self.ssrc)
        body = head + self.message
        return body + crc32c(body).to_bytes(4, "little")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> ZrtpPacket:
        """Check size, header, cookie, CRC and the message length word (RFC 6189 §5)."""
        data = bytes(data)
        if not MIN_PACKET_LENGTH <= len(data) <= MAX_PACKET_LENGTH:
            raise ZrtpParseError(f"ZRTP packet of {len(data)} bytes (allowed 28..3072)")
        if data[0] == _FRAGMENT_BYTE:
            raise ZrtpParseError("fragmented ZRTP packet (not negotiated)")
        if data[0] & 0xF0 != _FIRST_BYTE or data[4:8] != MAGIC_COOKIE:
            raise ZrtpParseError("not a ZRTP packet (first byte or magic cookie)")
        if data[-4:] != crc32c(data[:-4]).to_bytes(4, "little"):
            raise ZrtpParseError("bad ZRTP CRC")
        sequence, ssrc = struct.unpack_from("!H4xI", data, 2)
        message = data[HEADER_LENGTH:-CRC_LENGTH]
        words = int.from_bytes(message[2:4], "big")
        if message[:2] != b"\x50\x5a" or words * 4 != len(message):
            raise ZrtpParseError("ZRTP message preamble or length word does not match")
        return cls(sequence, ssrc, message)
