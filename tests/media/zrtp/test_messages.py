"""ZRTP packet framing and messages (RFC 6189 §5): round trips, CRC-32C, limits, fuzzing."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securephone.media.zrtp.messages import (
    ClearAck,
    Commit,
    CommitMode,
    Conf2Ack,
    Confirm1,
    Confirm2,
    ConfirmPlaintext,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    SasRelayPlaintext,
    parse_message,
)
from securephone.media.zrtp.packet import ZrtpPacket, ZrtpParseError, crc32c, is_zrtp

HELLO = Hello(
    version="1.10",
    client_id=b"securephone 1.0 ",
    h3=bytes(range(32)),
    zid=bytes(range(100, 112)),
    hashes=("S256",),
    ciphers=("AES1",),
    auth_tags=("HS80", "HS32"),
    key_agreements=("X255", "DH3k", "EC25"),
    sas_types=("B32 ", "B256"),
    mac=b"M" * 8,
    mitm=True,
)
EXAMPLES: list[Message] = [
    HELLO,
    HelloAck(),
    Commit(
        b"2" * 32, b"z" * 12, "S256", "AES1", "HS80", "DH3k", "B32 ", hvi=b"h" * 32, mac=b"m" * 8
    ),
    Commit(b"2" * 32, b"z" * 12, "S256", "AES1", "HS32", "Mult", "B32 ", nonce=b"n" * 16),
    Commit(
        b"2" * 32,
        b"z" * 12,
        "S384",
        "AES1",
        "HS32",
        "Prsh",
        "B256",
        nonce=b"n" * 16,
        key_id=b"k" * 8,
    ),
    DHPart1(b"1" * 32, b"a" * 8, b"b" * 8, b"c" * 8, b"d" * 8, b"p" * 384, b"m" * 8),
    DHPart2(b"1" * 32, b"a" * 8, b"b" * 8, b"c" * 8, b"d" * 8, b"p" * 32, b"m" * 8),
    Confirm1(b"c" * 8, b"i" * 16, b"e" * 40),
    Confirm2(b"c" * 8, b"i" * 16, b"e" * 48),
    Conf2Ack(),
    Error(0x62),
    ErrorAck(),
    GoClear(b"g" * 8),
    ClearAck(),
    SasRelay(b"c" * 8, b"i" * 16, b"e" * 40),
    RelayAck(),
    Ping("1.10", b"e" * 8),
    PingAck("1.10", b"e" * 8, b"f" * 8, 0x12345678),
]
# RFC 6189 §5 message sizes in bytes (Table "fixed lengths"; DHPart grows with pv).
SIZES = [124, 12, 116, 100, 108, 468, 116, 76, 84, 12, 16, 12, 20, 12, 76, 12, 24, 36]


@pytest.mark.parametrize(("message", "size"), list(zip(EXAMPLES, SIZES, strict=True)))
def test_round_trip_and_size(message: Message, size: int) -> None:
    raw = bytes(message)
    assert len(raw) == size and int.from_bytes(raw[2:4], "big") * 4 == size
    assert raw[4:12] == type(message).TYPE.value
    assert parse_message(raw) == message
    packet = ZrtpPacket(sequence=4321, ssrc=0xDEADBEEF, message=raw)
    again = ZrtpPacket.parse(bytes(packet))
    assert again == packet and parse_message(again.message) == message


def test_commit_modes() -> None:
    modes = [m.mode for m in EXAMPLES if isinstance(m, Commit)]
    assert modes == [CommitMode.DH, CommitMode.MULTISTREAM, CommitMode.PRESHARED]


def test_hello_fields_and_flags() -> None:
    parsed = parse_message(bytes(HELLO))
    assert isinstance(parsed, Hello)
    short = Hello("1.10", b"securephone", b"h" * 32, b"z" * 12, (), (), (), (), ())
    assert bytes(short)[16:32] == b"securephone     "  # padded with spaces to 16 bytes
    assert parsed.mitm and not parsed.passive and not parsed.signature_capable
    with pytest.raises(ValueError, match="at most 7"):
        bytes(Hello("1.10", b"", b"h" * 32, b"z" * 12, ("S256",) * 8, (), (), (), ()))


def test_hello_with_unknown_names_and_long_lists_parses() -> None:
    hello = Hello(
        "1.10",
        b"PJS ZRTP 3.0.0  ",
        b"h" * 32,
        b"z" * 12,
        ("S384", "S256"),
        ("2FS3", "AES3", "2FS1", "AES1"),
        ("SK32", "SK64", "HS32", "HS80"),
        ("EC25", "DH3k", "EC38", "DH2k", "Mult"),
        ("B32 ",),
    )
    assert parse_message(bytes(hello)) == hello


def test_hello_count_above_seven_is_refused() -> None:
    raw = bytearray(bytes(HELLO))
    raw[12 + 65] = 0x08  # hc = 8
    with pytest.raises(ZrtpParseError, match="count"):
        parse_message(bytes(raw))


def test_confirm_plaintext_round_trip() -> None:
    plain = ConfirmPlaintext(h0=b"0" * 32, verified=True, cache_expiration=0xFFFFFFFF)
    raw = bytes(plain)
    assert len(raw) == 40 and raw[32:40] == b"\x00\x00\x00\x04\xff\xff\xff\xff"
    assert ConfirmPlaintext.parse(raw) == plain
    signed = ConfirmPlaintext(h0=b"0" * 32, signature=b"PGP " + b"s" * 4 * 300)
    assert ConfirmPlaintext.parse(bytes(signed)) == signed  # 9-bit signature length
    with pytest.raises(ZrtpParseError):
        ConfirmPlaintext.parse(raw + b"xxxx")


def test_sas_relay_plaintext_round_trip() -> None:
    plain = SasRelayPlaintext(rendering="B32 ", sas_hash=b"s" * 32, verified=True)
    assert SasRelayPlaintext.parse(bytes(plain)) == plain


def test_crc32c_check_value_and_byte_order() -> None:
    """RFC 4960 App. B CRC-32C; check value of "123456789" is 0xE3069283, not zlib's CRC-32."""
    assert crc32c(b"123456789") == 0xE3069283 != zlib.crc32(b"123456789")
    raw = bytes(ZrtpPacket(1, 2, bytes(HelloAck())))
    assert raw[-4:] == crc32c(raw[:-4]).to_bytes(4, "little")


def test_bad_crc_truncated_oversized_and_foreign_packets_raise_parse_error() -> None:
    good = bytes(ZrtpPacket(7, 9, bytes(HELLO)))
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    cases = {
        "bad CRC": bad_crc,
        "truncated": good[:-8],
        "too short": good[:20],
        "oversized": bytes(
            ZrtpPacket(7, 9, bytes(DHPart1(b"1" * 32, *[b"x" * 8] * 4, b"p" * 3000)))
        ),
        "fragment": b"\x11" + good[1:],
        "not zrtp": b"\x80" + good[1:],
    }
    for name, data in cases.items():
        with pytest.raises(ZrtpParseError):
            ZrtpPacket.parse(data)
        assert name


def test_is_zrtp_demultiplexing() -> None:
    """RFC 7983: 16..19 with the ZRTP cookie; STUN (0..3), DTLS (20..63), RTP (128..191) not."""
    zrtp = bytes(ZrtpPacket(1, 2, bytes(HelloAck())))
    assert is_zrtp(zrtp)
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    rtp = b"\x80\x00" + bytes(10) + bytes(160)
    dtls = b"\x16\xfe\xfd" + bytes(20)
    assert not any(
        is_zrtp(d) for d in (stun, rtp, dtls, zrtp[:11], b"\x10\x00\x00\x01XRTP" + bytes(8))
    )


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_packet_parser_only_raises_parse_error(data: bytes) -> None:
    try:
        packet = ZrtpPacket.parse(data)
    except ZrtpParseError:
        return
    with contextlib.suppress(ZrtpParseError):
        parse_message(packet.message)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(EXAMPLES), st.data())
def test_fuzz_mutated_messages_only_raise_parse_error(
    message: Message, data: st.DataObject
) -> None:
    raw = bytearray(bytes(message))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(ZrtpParseError):
            parse_message(candidate)
        with contextlib.suppress(ZrtpParseError):
            ZrtpPacket.parse(bytes(ZrtpPacket(1, 1, candidate)))
