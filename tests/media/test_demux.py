"""First-byte demultiplexing on one media port (RFC 7983 §7, RFC 5761 §4)."""

from __future__ import annotations

import pytest

from securephone.media.demux import PacketKind, classify

RTP_PCMU = bytes([0x80, 0x00]) + bytes(10)
RTP_MARKER_PT_127 = bytes([0x80, 0xFF]) + bytes(10)
RTCP_SR = bytes([0x80, 200]) + bytes(26)
RTCP_RR = bytes([0x81, 201]) + bytes(30)
RTCP_APP = bytes([0x80, 204]) + bytes(10)
STUN_BINDING = bytes([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42]) + bytes(12)
ZRTP_HELLO = bytes([0x10, 0x00, 0x00, 0x01, 0x5A, 0x52, 0x54, 0x50]) + bytes(8)
DTLS_CLIENT_HELLO = bytes([22, 0xFE, 0xFF]) + bytes(10)


@pytest.mark.parametrize(
    ("datagram", "kind"),
    [
        (STUN_BINDING, PacketKind.STUN),
        (ZRTP_HELLO, PacketKind.ZRTP),
        (DTLS_CLIENT_HELLO, PacketKind.DTLS),
        (RTP_PCMU, PacketKind.RTP),
        (RTP_MARKER_PT_127, PacketKind.RTP),
        (RTCP_SR, PacketKind.RTCP),
        (RTCP_RR, PacketKind.RTCP),
        (RTCP_APP, PacketKind.RTCP),
        (bytes([0x40, 0x00, 0x00, 0x04]) + bytes(4), PacketKind.TURN_CHANNEL),
        (b"", PacketKind.UNKNOWN),
        (b"\x80", PacketKind.RTP),
    ],
)
def test_real_packet_heads(datagram: bytes, kind: PacketKind) -> None:
    assert classify(datagram) is kind


@pytest.mark.parametrize("first", range(256))
def test_every_first_byte_follows_rfc_7983(first: int) -> None:
    expected = (
        PacketKind.STUN
        if first <= 3
        else PacketKind.ZRTP
        if 16 <= first <= 19
        else PacketKind.DTLS
        if 20 <= first <= 63
        else PacketKind.TURN_CHANNEL
        if 64 <= first <= 79
        else PacketKind.RTP
        if 128 <= first <= 191
        else PacketKind.UNKNOWN
    )
    assert classify(bytes([first, 0x00, 0x00])) is expected


@pytest.mark.parametrize("second", range(256))
def test_rtcp_packet_types_192_to_223_are_rtcp(second: int) -> None:
    """RFC 5761 §4: RTCP types 192-223 sit where RTP has M + payload type 64-95, which muxed
    RTP must not use; so 64-95 with or without the marker bit counts as RTCP."""
    kind = classify(bytes([0x80, second]) + bytes(10))
    assert (kind is PacketKind.RTCP) == (192 <= second <= 223 or 64 <= second <= 95)
    assert kind in (PacketKind.RTP, PacketKind.RTCP)


def test_memoryview_and_bytearray() -> None:
    assert classify(memoryview(RTCP_SR)) is PacketKind.RTCP
    assert classify(bytearray(DTLS_CLIENT_HELLO)) is PacketKind.DTLS
