"""Which protocol a datagram on a shared media port belongs to, by its first byte (RFC 7983).

RFC 7983 §7 (updating RFC 5764 §5.1.2) splits the first byte's values::

    0..3     STUN                     (RFC 5389)
    16..19   ZRTP                     (RFC 6189)
    20..63   DTLS                     (RFC 6347)
    64..79   TURN channel data        (RFC 5766)
    128..191 RTP or RTCP              (RFC 3550)
    anything else                     drop

With RTP and RTCP on one port (rtcp-mux), RFC 5761 §4 tells them apart by the second byte:
RTCP packet types 192..223, which is where RTP has the marker bit and payload types 64..95;
muxed RTP must not use those, so 64..95 counts as RTCP with or without the marker bit
(:func:`securephone.media.rtp.is_rtcp`).
"""

from __future__ import annotations

import enum

from securephone.media.rtp import is_rtcp

__all__ = ["PacketKind", "classify"]


class PacketKind(enum.Enum):
    """What a datagram on the media port is."""

    STUN = "stun"
    ZRTP = "zrtp"
    DTLS = "dtls"
    TURN_CHANNEL = "turn-channel"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"


_RANGES: tuple[tuple[int, int, PacketKind], ...] = (
    (0, 3, PacketKind.STUN),
    (16, 19, PacketKind.ZRTP),
    (20, 63, PacketKind.DTLS),
    (64, 79, PacketKind.TURN_CHANNEL),
    (128, 191, PacketKind.RTP),
)


# The kind of every first-byte value, looked up once per datagram instead of a range scan.
_BY_FIRST_BYTE: tuple[PacketKind, ...] = tuple(
    next((k for low, high, k in _RANGES if low <= first <= high), PacketKind.UNKNOWN)
    for first in range(256)
)


def classify(datagram: bytes | bytearray | memoryview) -> PacketKind:
    """The kind of one datagram (RFC 7983 §7; RTP vs RTCP by RFC 5761 §4)."""
    if not datagram:
        return PacketKind.UNKNOWN
    kind = _BY_FIRST_BYTE[datagram[0]]
    if kind is PacketKind.RTP and is_rtcp(datagram):
        return PacketKind.RTCP
    return kind
