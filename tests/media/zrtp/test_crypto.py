"""ZRTP crypto (RFC 6189 §4.3-§4.5, §5.1.5-§5.1.6, §5.7, §9) over cryptography/hashlib."""

from __future__ import annotations

import hashlib
import os

import pytest

from securephone.media.zrtp import crypto
from securephone.media.zrtp.crypto import (
    DH3K_PRIME,
    BadPublicValue,
    HashChain,
    generate_key_pair,
    kdf,
)
from securephone.media.zrtp.pgpwords import EVEN_WORDS, ODD_WORDS

# KDF vector from the brief §10.1 (computed by GNU ZRTP, published in bzrtp's crypto tests).
KI = bytes.fromhex("33e66c01ca6fe64fb76ffde31cabc0fbad3d3102676b0c090fc996381e0a8c2f")
CONTEXT = bytes.fromhex(
    "f01f2402000000008024adfb94a90690cf9ced13998c51347dc435a74d75254480c211f2d3205ea7"
    "1b4ba4eec78eb7357528e56fcf4f749f"
)
KDF_VECTOR = [
    ("Responder SRTP master key", 16, "f2cfc5724acfd7b50e89bed8a5c9f2cd"),
    ("Responder SRTP master salt", 14, "3c8fb13fd6ca83fbd6af3bd5ab1c"),
    ("SAS", 32, "d269b0718ad58f3c8e0dcf4535811d951847314128319f54c606595b522c5287"),
    ("ZRTP Session Key", 32, "c363390bc9ee13aa9e6a00528409ddc90717e01d1ae2dcf9a70ab98886ac6975"),
    ("retained secret", 32, "a7272dee77e7990c24b20b9f54ba2b617a23d8a59765829b78072bc51299015c"),
    ("Responder ZRTP key", 16, "75767d41829cb697c7a20d6812eadb9a"),
    ("Initiator ZRTP key", 16, "08a821460cbd6ce0f1fe3c4c704e3bea"),
    ("Responder HMAC key", 32, "2169f15c1b85a23977024d5ea71f481623fe94dc1aabf489b8744d0d373d7cab"),
    ("Initiator HMAC key", 32, "1d117befd627cc5a80d0236e8d496be42a6a0118ac4159e861b9b14a784b5d3f"),
]


@pytest.mark.parametrize(("label", "length", "want"), KDF_VECTOR)
def test_kdf_vector(label: str, length: int, want: str) -> None:
    assert kdf("S256", KI, label.encode(), CONTEXT, length).hex() == want


def test_derive_keys_uses_the_same_labels() -> None:
    keys = crypto.derive_keys("S256", "AES1", KI, CONTEXT)
    assert keys.srtp_key_r.hex() == KDF_VECTOR[0][2]
    assert keys.srtp_salt_r.hex() == KDF_VECTOR[1][2]
    assert keys.sas_value == 0xD269B071
    assert keys.mackey_i.hex() == KDF_VECTOR[8][2]
    assert "d269" not in repr(keys) and KI.hex() not in repr(keys)


def test_s384_kdf_is_48_bytes_and_differs() -> None:
    keys = crypto.derive_keys("S384", "AES1", KI, CONTEXT)
    assert len(keys.zrtp_session) == 48 and len(keys.retained_secret) == 32
    assert keys.sas_hash != crypto.derive_keys("S256", "AES1", KI, CONTEXT).sas_hash


def test_hash_chain() -> None:
    chain = HashChain(os.urandom(32))
    assert chain.h1 == hashlib.sha256(chain.h0).digest()
    assert chain.h3 == hashlib.sha256(hashlib.sha256(chain.h1).digest()).digest()
    assert chain.h0.hex() not in repr(chain)


def test_sas_renderings() -> None:
    """RFC 6189 §5.1.6: B32 takes 20 bits, B256 two PGP words (even, odd)."""
    assert crypto.sas_b32(0xD269B071) == "4jw5"
    assert crypto.sas_b256(0xD269B071) == "standard:guitarist"
    assert crypto.sas_b256(0x29A40000) == "breakup:Pandora"  # printed by linphonec, brief §7
    assert crypto.render_sas("B32 ", 0) == "yyyy"
    with pytest.raises(ValueError):
        crypto.render_sas("B999", 0)


def test_pgp_word_lists_are_pinned() -> None:
    """Same lists (and capitalisation) Linphone displays, pinned by SHA-256 (brief §7)."""
    even = hashlib.sha256("\n".join(EVEN_WORDS).encode()).hexdigest()
    odd = hashlib.sha256("\n".join(ODD_WORDS).encode()).hexdigest()
    assert even == "dc8ab3dc96fe33b8bdaadd02b308f03819564be7e3a18fb1d9d18a2c2fba1845"
    assert odd == "d370a975447ee8bbaac0cb66e344dd689eea252ab8a86645f71f192c8c475c85"
    assert (EVEN_WORDS[0], ODD_WORDS[0], EVEN_WORDS[255], ODD_WORDS[255]) == (
        "aardvark",
        "adroitness",
        "Zulu",
        "Yucatan",
    )


@pytest.mark.parametrize(("name", "size"), [("DH3k", 384), ("X255", 32), ("EC25", 64)])
def test_key_agreements_agree(name: str, size: int) -> None:
    a, b = generate_key_pair(name), generate_key_pair(name)
    assert len(a.public_value) == size
    assert a.agree(b.public_value) == b.agree(a.public_value)


@pytest.mark.parametrize("value", [0, 1, DH3K_PRIME - 1, DH3K_PRIME])
def test_dh3k_refuses_degenerate_public_values(value: int) -> None:
    """RFC 6189 §4.4.1.1: pv of 1 or p−1 (and 0, p) must abort (Error 0x61)."""
    pair = generate_key_pair("DH3k")
    with pytest.raises(BadPublicValue):
        pair.agree(value.to_bytes(384, "big"))


def test_x25519_all_zero_result_and_bad_ec_points_are_refused() -> None:
    with pytest.raises(BadPublicValue):
        generate_key_pair("X255").agree(bytes(32))
    with pytest.raises(BadPublicValue):
        generate_key_pair("EC25").agree(bytes(63) + b"\x01")
    with pytest.raises(BadPublicValue):
        generate_key_pair("X255").agree(bytes(31))


def test_confirm_cfb_round_trip_with_truncated_last_block() -> None:
    key, iv = os.urandom(16), os.urandom(16)
    plain = os.urandom(40)
    cipher = crypto.confirm_encrypt(key, iv, plain)
    assert len(cipher) == 40 and cipher != plain
    assert crypto.confirm_decrypt(key, iv, cipher) == plain


def test_shared_secret_matching_rules() -> None:
    """RFC 6189 §4.3: initiator's rs1 first, then its rs2; both roles reach the same s1."""
    old, new, other = b"o" * 32, b"n" * 32, b"x" * 32

    def ids(secrets: tuple[bytes | None, bytes | None], label: bytes) -> tuple[bytes, bytes]:
        return tuple(  # type: ignore[return-value]
            crypto.secret_id("S256", s, label) if s else os.urandom(8) for s in secrets
        )

    # Initiator holds (new, old); responder missed the last update and holds (old, None).
    init, resp = (new, old), (old, None)
    from_init = crypto.match_shared_secret("S256", init, ids(resp, b"Responder"), True)
    from_resp = crypto.match_shared_secret("S256", resp, ids(init, b"Initiator"), False)
    assert from_init == from_resp == old
    assert crypto.match_shared_secret("S256", (other, None), ids(resp, b"Responder"), True) is None
