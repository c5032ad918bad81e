"""G.711 against the ITU-T G.191 reference sweep (tests/vectors/README.md) and known codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from securephone.media.codecs import g711
from securephone.media.codecs.g711 import (
    ALAW_DECODE_TABLE,
    ALAW_ENCODE_TABLE,
    PCMA,
    PCMU,
    ULAW_DECODE_TABLE,
    ULAW_ENCODE_TABLE,
    alaw_decode,
    alaw_encode,
    codec_by_name,
    codec_by_payload_type,
    ulaw_decode,
    ulaw_encode,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "g711-g191"


def _read(name: str) -> bytes:
    data = (VECTORS / name).read_bytes()
    assert len(data) == 2 * 65536, name  # 65,536 little-endian 16-bit words per file
    return data


def _sweep() -> np.ndarray:
    return np.frombuffer(_read("sweep.src"), dtype="<i2").astype(np.int16)


def _codes_as_file(codes: bytes) -> bytes:
    """Write codes as g711demo does: one little-endian 16-bit word each, code in the low byte."""
    return np.frombuffer(codes, dtype=np.uint8).astype("<u2").tobytes()


def _pcm_as_file(pcm: np.ndarray) -> bytes:
    return pcm.astype("<i2").tobytes()


def _file_codes(name: str) -> bytes:
    words = np.frombuffer(_read(name), dtype="<u2")
    assert int(words.max()) <= 0xFF  # code in the low byte only
    return words.astype(np.uint8).tobytes()


def test_sweep_input_is_every_16_bit_value() -> None:
    sweep = _sweep().astype(np.int32)
    assert sweep[0] == -32768 and sweep[-1] == 32767
    assert np.all(np.diff(sweep) == 1)


# --- the six G.191 reference files, byte for byte --------------------------------------------


def test_ulaw_encode_matches_sweep_r_u() -> None:
    assert _codes_as_file(ulaw_encode(_sweep())) == _read("sweep-r.u")


def test_alaw_encode_matches_sweep_r_a() -> None:
    assert _codes_as_file(alaw_encode(_sweep())) == _read("sweep-r.a")


def test_ulaw_decode_matches_sweep_r_reu() -> None:
    assert _pcm_as_file(ulaw_decode(_file_codes("sweep-r.u"))) == _read("sweep-r.reu")


def test_alaw_decode_matches_sweep_r_rea() -> None:
    assert _pcm_as_file(alaw_decode(_file_codes("sweep-r.a"))) == _read("sweep-r.rea")


def test_ulaw_lin_log_lin_matches_sweep_r_u_u() -> None:
    assert _pcm_as_file(ulaw_decode(ulaw_encode(_sweep()))) == _read("sweep-r.u-u")


def test_alaw_lin_log_lin_matches_sweep_r_a_a() -> None:
    assert _pcm_as_file(alaw_decode(alaw_encode(_sweep()))) == _read("sweep-r.a-a")


# --- known codes (ITU-T G.711 Tables 1a/2a) --------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),  # µ-law positive zero; A-law 0x80 with even bits inverted
        (-1, 0x7F, 0x55),  # the top 14/13 bits of -1 are "negative zero"
        (-4, 0x7F, 0x55),
        (-5, 0x7E, 0x55),  # µ-law looks at x >> 2: -5 >> 2 == -2
        (4, 0xFE, 0xD5),
        (32767, 0x80, 0xAA),  # largest positive code
        (-32768, 0x00, 0x2A),  # largest negative code
    ],
)
def test_known_codes(sample: int, ulaw: int, alaw: int) -> None:
    pcm = np.array([sample], dtype=np.int16)
    assert ulaw_encode(pcm) == bytes([ulaw])
    assert alaw_encode(pcm) == bytes([alaw])


def test_decoded_extremes() -> None:
    assert ulaw_decode(b"\x80\x00\xff\x7f").tolist() == [32124, -32124, 0, 0]
    assert alaw_decode(b"\xaa\x2a\xd5\x55").tolist() == [32256, -32256, 8, -8]


def test_every_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert alaw_encode(alaw_decode(codes)) == codes
    # µ-law 0x7F ("negative zero") decodes to 0, which encodes as positive zero 0xFF.
    expected = bytearray(codes)
    expected[0x7F] = 0xFF
    assert ulaw_encode(ulaw_decode(codes)) == bytes(expected)


def test_tables_shapes_types_and_read_only() -> None:
    assert ULAW_ENCODE_TABLE.shape == ALAW_ENCODE_TABLE.shape == (65536,)
    assert ULAW_ENCODE_TABLE.dtype == ALAW_ENCODE_TABLE.dtype == np.uint8
    assert ULAW_DECODE_TABLE.shape == ALAW_DECODE_TABLE.shape == (256,)
    assert ULAW_DECODE_TABLE.dtype == ALAW_DECODE_TABLE.dtype == np.int16
    with pytest.raises(ValueError):
        ULAW_ENCODE_TABLE[0] = 1


def test_decode_returns_int16_and_encode_accepts_any_shape() -> None:
    pcm = np.array([[100, -100], [2000, -2000]], dtype=np.int16)
    assert ulaw_encode(pcm) == ulaw_encode(pcm.ravel())
    assert len(alaw_encode(pcm[:, 0])) == 2  # non-contiguous view
    assert ulaw_decode(b"\x00\x01").dtype == np.int16
    assert alaw_decode(bytearray(b"\xd5")).tolist() == [8]


def test_encode_refuses_other_sample_types() -> None:
    with pytest.raises(TypeError):
        ulaw_encode(np.zeros(4, dtype=np.int32))
    with pytest.raises(TypeError):
        alaw_encode(np.zeros(4, dtype=np.float32))


def test_empty_input() -> None:
    assert ulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert alaw_decode(b"").shape == (0,)


# --- codec registry (RFC 3551 §6) ------------------------------------------------------------


def test_static_codecs() -> None:
    assert (PCMU.name, PCMU.payload_type, PCMU.clock_rate, PCMU.rtpmap) == (
        "PCMU",
        0,
        8000,
        "PCMU/8000",
    )
    assert (PCMA.name, PCMA.payload_type, PCMA.rtpmap) == ("PCMA", 8, "PCMA/8000")
    assert PCMU.encode is g711.ulaw_encode and PCMA.decode is g711.alaw_decode
    assert PCMU.samples_for(20) == 160


def test_codec_lookup() -> None:
    assert codec_by_name("PCMU") is PCMU
    assert codec_by_name("pcma") is PCMA
    assert codec_by_name("PCMA/8000") is PCMA
    assert codec_by_payload_type(0) is PCMU and codec_by_payload_type(8) is PCMA
    with pytest.raises(KeyError):
        codec_by_name("opus")
    with pytest.raises(KeyError):
        codec_by_payload_type(18)


def test_codec_round_trip_of_a_tone() -> None:
    t = np.arange(160)
    tone = (8000 * np.sin(2 * np.pi * 1000 * t / 8000)).astype(np.int16)
    for codec in (PCMU, PCMA):
        decoded = codec.decode(codec.encode(tone))
        assert decoded.shape == (160,)
        # G.711 quantisation error is at most half a step; steps at 8000 are <= 512.
        assert int(np.max(np.abs(decoded.astype(np.int32) - tone))) <= 256
