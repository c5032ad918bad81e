"""Known-answer tests for the SRTP layer (securephone.media.srtp over pylibsrtp / libsrtp 2).

libsrtp takes master keys only, while RFC 7714's example packets are given under already
derived session keys. So the tests form a chain:

1. Reference packets that use master keys go through ``SrtpContext`` byte for byte
   (libsrtp's own ``srtp_validate`` / ``srtp_validate_gcm`` vectors; their master key is the
   RFC 3711 B.3 one).
2. A small independent model of the SRTP transforms, written here from the RFC formulas on top of
   ``cryptography``'s AES, reproduces RFC 3711 B.2 (AES-CM keystream), RFC 3711 B.3 (key
   derivation) and every RFC 7714 §16/§17 AES-GCM example packet. This model exists only to
   check libsrtp's output; the product never uses it.
3. ``SrtpContext`` output for the RFC 7714 example packets under a master key (including the
   RFC's SRTCP index 0x5d4) and across a sequence-number rollover equals the model's output for
   every suite.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securephone.media.rtp import RtpPacket
from securephone.media.srtp import SUITES, SrtpContext


def h(text: str) -> bytes:
    """Hex with spaces and newlines, as the RFCs print it."""
    return bytes.fromhex("".join(text.split()))


# --- the independent model (RFC 3711 §4.1.1, §4.2, §4.3; RFC 7714 §8, §9, §11) ------------


def _keystream(key: bytes, iv: bytes, length: int) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(bytes(length)) + encryptor.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def kdf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with kdr 0; a 96-bit GCM salt is right-padded to 112 bits (RFC 7714 §11)."""
    x = bytearray(master_salt.ljust(14, b"\0"))
    x[7] ^= label
    return _keystream(master_key, bytes(x) + b"\0\0", length)


def _session(suite: str, master: bytes, rtcp: bool) -> tuple[bytes, bytes, bytes]:
    s = SUITES[suite]
    key, salt = master[: s.key_length], master[s.key_length :]
    base = 3 if rtcp else 0
    return (
        kdf(key, salt, base, s.key_length),
        kdf(key, salt, base + 1, 20),
        kdf(key, salt, base + 2, s.salt_length),
    )


def cm_iv(salt: bytes, ssrc: bytes, index: int) -> bytes:
    """RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)."""
    value = int.from_bytes(salt + b"\0\0", "big")
    value ^= int.from_bytes(ssrc, "big") << 64
    value ^= index << 16
    return value.to_bytes(16, "big")


def model_cm_rtp(suite: str, master: bytes, rtp: bytes, roc: int = 0) -> bytes:
    """AES-CM + HMAC-SHA1 SRTP for a packet with a 12-octet header (RFC 3711 §3.3, §4.2)."""
    enc_key, auth_key, salt = _session(suite, master, rtcp=False)
    index = (roc << 16) | int.from_bytes(rtp[2:4], "big")
    iv = cm_iv(salt, rtp[8:12], index)
    body = rtp[:12] + _xor(rtp[12:], _keystream(enc_key, iv, len(rtp) - 12))
    tag = hmac.new(auth_key, body + roc.to_bytes(4, "big"), hashlib.sha1).digest()
    return body + tag[: SUITES[suite].rtp_tag_length]


def model_cm_rtcp(suite: str, master: bytes, rtcp: bytes, index: int) -> bytes:
    """AES-CM + HMAC-SHA1 SRTCP with the E flag set (RFC 3711 §3.4)."""
    enc_key, auth_key, salt = _session(suite, master, rtcp=True)
    iv = cm_iv(salt, rtcp[4:8], index)
    body = rtcp[:8] + _xor(rtcp[8:], _keystream(enc_key, iv, len(rtcp) - 8))
    body += (0x80000000 | index).to_bytes(4, "big")
    tag = hmac.new(auth_key, body, hashlib.sha1).digest()
    return body + tag[: SUITES[suite].rtcp_tag_length]


def gcm_rtp(key: bytes, salt: bytes, rtp: bytes, roc: int = 0) -> bytes:
    """RFC 7714 §8.1 IV (00 00 || SSRC || ROC || SEQ, XOR salt), AAD = header (§8.2)."""
    iv = _xor(b"\0\0" + rtp[8:12] + roc.to_bytes(4, "big") + rtp[2:4], salt)
    return rtp[:12] + AESGCM(key).encrypt(iv, rtp[12:], rtp[:12])


def gcm_rtcp(key: bytes, salt: bytes, rtcp: bytes, index: int) -> bytes:
    """RFC 7714 §9.1 IV (00 00 || SSRC || 00 00 || index), AAD = header || E+index (§9.2)."""
    e_index = (0x80000000 | index).to_bytes(4, "big")
    iv = _xor(b"\0\0" + rtcp[4:8] + b"\0\0" + index.to_bytes(4, "big"), salt)
    return rtcp[:8] + AESGCM(key).encrypt(iv, rtcp[8:], rtcp[:8] + e_index) + e_index


def model_gcm_rtp(suite: str, master: bytes, rtp: bytes, roc: int = 0) -> bytes:
    key, _, salt = _session(suite, master, rtcp=False)
    return gcm_rtp(key, salt, rtp, roc)


def model_gcm_rtcp(suite: str, master: bytes, rtcp: bytes, index: int) -> bytes:
    key, _, salt = _session(suite, master, rtcp=True)
    return gcm_rtcp(key, salt, rtcp, index)


def model_rtp(suite: str, master: bytes, rtp: bytes, roc: int = 0) -> bytes:
    if suite.startswith("AEAD"):
        return model_gcm_rtp(suite, master, rtp, roc)
    return model_cm_rtp(suite, master, rtp, roc)


def model_rtcp(suite: str, master: bytes, rtcp: bytes, index: int) -> bytes:
    if suite.startswith("AEAD"):
        return model_gcm_rtcp(suite, master, rtcp, index)
    return model_cm_rtcp(suite, master, rtcp, index)


def pair(suite: str, key: bytes) -> tuple[SrtpContext, SrtpContext]:
    """A sender and a receiver context that share one master key per direction."""
    return SrtpContext(suite, key, key), SrtpContext(suite, key, key)


# --- RFC 3711 Appendix B.2: AES-CM keystream segments -------------------------------------
# Session key 2B7E151628AED2A6ABF7158809CF4F3C, ROC 0, SEQ 0, SSRC 0,
# session salt F0F1F2F3F4F5F6F7F8F9FAFBFCFD (offset F0F1...FCFD0000).
RFC3711_B2_KEY = h("2B7E151628AED2A6ABF7158809CF4F3C")
RFC3711_B2_SALT = h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")
RFC3711_B2_BLOCKS = {
    0x0000: h("E03EAD0935C95E80E166B16DD92B4EB4"),
    0x0001: h("D23513162B02D0F72A43A2FE4A5F97AB"),
    0x0002: h("41E95B3BB0A2E8DD477901E4FCA894C0"),
    0xFEFF: h("EC8CDF7398607CB0F2D21675EA9EA1E4"),
    0xFF00: h("362B7C3C6773516318A077D7FC5073AE"),
    0xFF01: h("6A2CC3787889374FBEB4C81B17BA6C44"),
}


def test_rfc3711_b2_aes_cm_keystream() -> None:
    iv = cm_iv(RFC3711_B2_SALT, bytes(4), 0)
    assert iv == h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
    stream = _keystream(RFC3711_B2_KEY, iv, 0xFF02 * 16)
    for block, expected in RFC3711_B2_BLOCKS.items():
        assert stream[block * 16 : block * 16 + 16] == expected


# --- RFC 3711 Appendix B.3: key derivation --------------------------------------------------
RFC3711_B3_MASTER_KEY = h("E1F97A0D3E018BE0D64FA32C06DE4139")
RFC3711_B3_MASTER_SALT = h("0EC675AD498AFEEBB6960B3AABE6")


def test_rfc3711_b3_key_derivation() -> None:
    key, salt = RFC3711_B3_MASTER_KEY, RFC3711_B3_MASTER_SALT
    assert kdf(key, salt, 0x00, 16) == h("C61E7A93744F39EE10734AFE3FF7A087")
    assert kdf(key, salt, 0x01, 20) == h("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    assert kdf(key, salt, 0x02, 14) == h("30CBBC08863D8C85D49DB34A9AE1")


# --- libsrtp test/srtp_driver.c, srtp_validate(): AES_CM_128_HMAC_SHA1_80 ------------------
# Master key||salt = RFC 3711 B.3's; SSRC 0xcafebabe; first packet (ROC 0, SRTCP index 1).
LIBSRTP_KEY = RFC3711_B3_MASTER_KEY + RFC3711_B3_MASTER_SALT
LIBSRTP_RTP = h("800f1234 decafbad cafebabe" + " abababab" * 4)
LIBSRTP_SRTP_CM80 = h(
    """800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402
       b78d6acc 99ea179b 8dbb"""
)
LIBSRTP_RTCP = h("81c8000b cafebabe" + " abababab" * 4)
LIBSRTP_SRTCP_CM80 = h(
    """81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001
       993e08cd 54d6c123 0798"""
)


def test_libsrtp_reference_packets_aes_cm_128_hmac_sha1_80() -> None:
    sender, receiver = pair("AES_CM_128_HMAC_SHA1_80", LIBSRTP_KEY)
    assert sender.protect(LIBSRTP_RTP) == LIBSRTP_SRTP_CM80
    assert sender.protect_rtcp(LIBSRTP_RTCP) == LIBSRTP_SRTCP_CM80
    assert receiver.unprotect(LIBSRTP_SRTP_CM80) == LIBSRTP_RTP
    assert receiver.unprotect_rtcp(LIBSRTP_SRTCP_CM80) == LIBSRTP_RTCP


def test_model_reproduces_libsrtp_aes_cm_reference() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    assert model_cm_rtp(suite, LIBSRTP_KEY, LIBSRTP_RTP) == LIBSRTP_SRTP_CM80
    assert model_cm_rtcp(suite, LIBSRTP_KEY, LIBSRTP_RTCP, 1) == LIBSRTP_SRTCP_CM80


# --- libsrtp test/srtp_driver.c, srtp_validate_gcm(): AEAD_AES_128_GCM ----------------------
LIBSRTP_GCM_KEY = h("000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab")
LIBSRTP_SRTP_GCM = h(
    """800f1234 decafbad cafebabe c5002ede 04cfdd2e b91159e0 880aa06e
       d2976826 f796b201 df3131a1 27e8a392"""
)
LIBSRTP_SRTCP_GCM = h(
    """81c8000b cafebabe c98b8b5d f0392a55 852b6c21 ac8e7025 c52c6fbe
       a2b3b446 ea31123b a88ce61e 80000001"""
)


def test_libsrtp_reference_packets_aead_aes_128_gcm() -> None:
    sender, receiver = pair("AEAD_AES_128_GCM", LIBSRTP_GCM_KEY)
    assert sender.protect(LIBSRTP_RTP) == LIBSRTP_SRTP_GCM
    assert sender.protect_rtcp(LIBSRTP_RTCP) == LIBSRTP_SRTCP_GCM
    assert receiver.unprotect(LIBSRTP_SRTP_GCM) == LIBSRTP_RTP
    assert receiver.unprotect_rtcp(LIBSRTP_SRTCP_GCM) == LIBSRTP_RTCP


def test_model_reproduces_libsrtp_gcm_reference() -> None:
    suite = "AEAD_AES_128_GCM"
    assert model_gcm_rtp(suite, LIBSRTP_GCM_KEY, LIBSRTP_RTP) == LIBSRTP_SRTP_GCM
    assert model_gcm_rtcp(suite, LIBSRTP_GCM_KEY, LIBSRTP_RTCP, 1) == LIBSRTP_SRTCP_GCM


# --- RFC 7714 §16 (SRTP) and §17 (SRTCP) AES-GCM example packets ----------------------------
# Session (derived) keys: AES-128 000102...0f, AES-256 000102...1f; salt "Quid pro quo".
RFC7714_KEY_128 = h("000102030405060708090a0b0c0d0e0f")
RFC7714_KEY_256 = h("000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f")
RFC7714_SALT = h("517569642070726f2071756f")
RFC7714_RTP = h(
    """8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
       20646976 69736120 696e2070 61727465 73207472 6573"""
)
# RFC 7714 §16.1: AEAD_AES_128_GCM SRTP
RFC7714_SRTP_128 = h(
    """8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
       be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1
       6a9152cf 765ee439 0cce"""
)
# RFC 7714 §16.2: AEAD_AES_256_GCM SRTP
RFC7714_SRTP_256 = h(
    """8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa
       b1801238 9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff
       d6b0f9bb 7878d7a7 6c13"""
)
RFC7714_RTCP = h(
    """81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
       4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef"""
)
RFC7714_SRTCP_INDEX = 0x5D4
# RFC 7714 §17.1: AEAD_AES_128_GCM SRTCP, index 0x5d4, E flag set
RFC7714_SRTCP_128 = h(
    """81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7
       6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458
       96cf4d2f c5abf872 45d9eade 800005d4"""
)
# RFC 7714 §17.2: AEAD_AES_256_GCM SRTCP
RFC7714_SRTCP_256 = h(
    """81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d
       bffe0a50 a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c
       4446839f 57ff6f6c b26ac3be 800005d4"""
)


@pytest.mark.parametrize(
    ("key", "srtp", "srtcp"),
    [
        (RFC7714_KEY_128, RFC7714_SRTP_128, RFC7714_SRTCP_128),
        (RFC7714_KEY_256, RFC7714_SRTP_256, RFC7714_SRTCP_256),
    ],
    ids=["AEAD_AES_128_GCM", "AEAD_AES_256_GCM"],
)
def test_rfc7714_example_packets(key: bytes, srtp: bytes, srtcp: bytes) -> None:
    assert gcm_rtp(key, RFC7714_SALT, RFC7714_RTP) == srtp
    assert gcm_rtcp(key, RFC7714_SALT, RFC7714_RTCP, RFC7714_SRTCP_INDEX) == srtcp


# --- SrtpContext against the model, every suite -------------------------------------------


def master_for(suite: str) -> bytes:
    """A fixed master key||salt of the suite's size (RFC 3711 B.3 bytes, then counting)."""
    material = LIBSRTP_KEY + bytes(range(64))
    return material[: SUITES[suite].key_salt_length]


@pytest.mark.parametrize("suite", list(SUITES))
def test_context_matches_model_on_rfc7714_packets(suite: str) -> None:
    """The RFC 7714 example RTP packet and its RTCP packet at index 0x5d4, through our layer."""
    master = master_for(suite)
    sender, receiver = pair(suite, master)
    srtp = sender.protect(RFC7714_RTP)
    assert srtp == model_rtp(suite, master, RFC7714_RTP)
    assert len(srtp) == len(RFC7714_RTP) + SUITES[suite].rtp_tag_length
    assert receiver.unprotect(srtp) == RFC7714_RTP
    for _ in range(RFC7714_SRTCP_INDEX - 1):  # libsrtp numbers SRTCP packets from 1
        sender.protect_rtcp(RFC7714_RTCP)
    srtcp = sender.protect_rtcp(RFC7714_RTCP)
    assert srtcp == model_rtcp(suite, master, RFC7714_RTCP, RFC7714_SRTCP_INDEX)
    tag = SUITES[suite].rtcp_tag_length
    e_index = srtcp[-4:] if suite.startswith("AEAD") else srtcp[-4 - tag : -tag]
    assert e_index == h("800005d4")  # E flag + index: after the GCM tag, before the HMAC tag
    assert receiver.unprotect_rtcp(srtcp) == RFC7714_RTCP


@pytest.mark.parametrize("suite", list(SUITES))
def test_context_matches_model_across_rollover(suite: str) -> None:
    """The rollover counter enters the IV / HMAC after sequence 0xffff (RFC 3711 §3.3.1)."""
    master = master_for(suite)
    sender, receiver = pair(suite, master)
    for seq, roc in ((0xFFFE, 0), (0xFFFF, 0), (0x0000, 1), (0x0001, 1)):
        rtp = bytes(RtpPacket(0, seq, 160 * seq, 0x11223344, bytes(range(160))))
        srtp = sender.protect(rtp)
        assert srtp == model_rtp(suite, master, rtp, roc)
        assert receiver.unprotect(srtp) == rtp


def test_aes_cm_32_keeps_an_80_bit_srtcp_tag() -> None:
    """RFC 4568 §6.2.2: AES_CM_128_HMAC_SHA1_32 uses a 32-bit SRTP but an 80-bit SRTCP tag."""
    suite = "AES_CM_128_HMAC_SHA1_32"
    sender, _ = pair(suite, master_for(suite))
    assert len(sender.protect(LIBSRTP_RTP)) == len(LIBSRTP_RTP) + 4
    assert len(sender.protect_rtcp(LIBSRTP_RTCP)) == len(LIBSRTP_RTCP) + 4 + 10
