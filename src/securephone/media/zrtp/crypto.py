"""ZRTP cryptography (RFC 6189 §4.3-§4.6, §5.1.5, §9) over ``cryptography`` and ``hashlib``.

* the hash chain H0..H3 and the 8-byte MACs keyed by it — always SHA-256 / HMAC-SHA-256
  (§9 "implicit hash and MAC algorithm"), whatever hash the Commit negotiates;
* the key agreements DH3k (RFC 3526 §4 group, g = 2), X255 (X25519) and EC25 (P-256), with
  the public-value checks of §4.4.1.1 (1 < pv < p−1, point on the curve, non-zero result);
* total_hash, s0 (DH mode §4.4.1.4, Preshared mode §4.4.2), the KDF (§4.5.1) and every key
  derived from s0 (§4.5.3), shared-secret IDs (§4.3.1), Confirm encryption AES-CFB-128 (§5.7);
* SAS rendering B32 and B256 (§5.1.6, §7).

No primitive is written here: hashing, HMAC, AES-CFB and (EC)DH all come from libraries.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.asymmetric import dh, ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.utils import CryptographyDeprecationWarning

from .pgpwords import EVEN_WORDS, ODD_WORDS

__all__ = [
    "DH3K_PRIME",
    "BadPublicValue",
    "DerivedKeys",
    "HashChain",
    "KeyPair",
    "chain_mac",
    "confirm_decrypt",
    "confirm_encrypt",
    "derive_keys",
    "generate_key_pair",
    "kdf",
    "negotiated_hash",
    "preshared_key",
    "render_sas",
    "s0_dh",
    "s0_preshared",
    "sas_b32",
    "sas_b256",
    "secret_id",
    "sha256",
]

# RFC 3526 §4: the 3072-bit MODP group, generator 2 (RFC 6189 §5.1.5 "DH3k").
DH3K_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
_DH3K_BYTES = 384
_B32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"  # RFC 6189 §5.1.6

_HASHES: dict[str, Callable[..., hashlib._Hash]] = {
    "S256": hashlib.sha256,
    "S384": hashlib.sha384,
}
# AES key length of each cipher block we can key SRTP with (§5.1.3; AES3 is refused: the SRTP
# layer, pylibsrtp, has no AES-256-CM profile).
CIPHER_KEY_LENGTHS = {"AES1": 16}
# Public value length of each key agreement we implement (§5.1.5, Table 5).
PV_LENGTHS = {"DH3k": 384, "X255": 32, "EC25": 64}


class BadPublicValue(ValueError):
    """A peer public value that must abort the key agreement (RFC 6189 §4.4.1.1, Error 0x61)."""


def sha256(data: bytes) -> bytes:
    """SHA-256, the implicit hash of the hash chain and the Hello hash (§9, §8.1)."""
    return hashlib.sha256(data).digest()


def chain_mac(key: bytes, data: bytes) -> bytes:
    """The 8-byte MAC of Hello/Commit/DHPart: HMAC-SHA-256 keyed by the hash chain (§9)."""
    return hmac.new(key, data, hashlib.sha256).digest()[:8]


def negotiated_hash(name: str) -> Callable[..., hashlib._Hash]:
    """The hash function a Commit's hash block names (§5.1.2); KeyError if unsupported."""
    return _HASHES[name]


def hmac_full(hash_name: str, key: bytes, data: bytes) -> bytes:
    """HMAC with the negotiated hash, full length (§5.1.2)."""
    return hmac.new(key, data, _HASHES[hash_name]).digest()


@dataclass(frozen=True)
class HashChain:
    """H0 (random, 256 bits) and its images H1 = SHA-256(H0), H2, H3 (RFC 6189 §9)."""

    h0: bytes = field(repr=False)

    @property
    def h1(self) -> bytes:
        return sha256(self.h0)

    @property
    def h2(self) -> bytes:
        return sha256(self.h1)

    @property
    def h3(self) -> bytes:
        return sha256(self.h2)


def kdf(hash_name: str, ki: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """KDF(KI, Label, Context, L) of RFC 6189 §4.5.1 with ``length`` in bytes.

    HMAC(KI, i ‖ Label ‖ 0x00 ‖ Context ‖ L) with i = 1 and L in bits, truncated to L bits.
    """
    data = struct.pack("!I", 1) + label + b"\x00" + context + struct.pack("!I", length * 8)
    out = hmac_full(hash_name, ki, data)
    if length > len(out):
        raise ValueError("KDF output longer than the hash")
    return out[:length]


def _secret_field(secret: bytes | None) -> bytes:
    """len(s) ‖ s with a 32-bit length; a null secret is four zero bytes (§4.4.1.4)."""
    secret = secret or b""
    return struct.pack("!I", len(secret)) + secret


def s0_dh(
    hash_name: str,
    dh_result: bytes,
    zid_i: bytes,
    zid_r: bytes,
    total_hash: bytes,
    secrets: tuple[bytes | None, bytes | None, bytes | None],
) -> bytes:
    """s0 in DH mode (RFC 6189 §4.4.1.4) from DHResult, the KDF context and s1, s2, s3."""
    data = struct.pack("!I", 1) + dh_result + b"ZRTP-HMAC-KDF" + zid_i + zid_r + total_hash
    data += b"".join(_secret_field(s) for s in secrets)
    return _HASHES[hash_name](data).digest()


def preshared_key(
    hash_name: str, rs1: bytes, auxsecret: bytes | None = None, pbxsecret: bytes | None = None
) -> bytes:
    """preshared_key = hash(len(rs1) ‖ rs1 ‖ len(aux) ‖ aux ‖ len(pbx) ‖ pbx), §4.4.2."""
    data = _secret_field(rs1) + _secret_field(auxsecret) + _secret_field(pbxsecret)
    return _HASHES[hash_name](data).digest()


def s0_preshared(hash_name: str, psk: bytes, context: bytes) -> bytes:
    """s0 = KDF(preshared_key, "ZRTP PSK", KDF_Context, hash length) — §4.4.2."""
    return kdf(hash_name, psk, b"ZRTP PSK", context, _HASHES[hash_name]().digest_size)


def secret_id(hash_name: str, secret: bytes, label: bytes) -> bytes:
    """rs1IDi = MAC(rs1, "Initiator") etc.: negotiated HMAC, 8 bytes (§4.3.1)."""
    return hmac_full(hash_name, secret, label)[:8]


@dataclass(frozen=True)
class DerivedKeys:
    """Everything derived from s0 (RFC 6189 §4.5.2, §4.5.3). Never shown in repr."""

    zrtp_session: bytes = field(repr=False)
    sas_hash: bytes = field(repr=False)
    mackey_i: bytes = field(repr=False)
    mackey_r: bytes = field(repr=False)
    zrtpkey_i: bytes = field(repr=False)
    zrtpkey_r: bytes = field(repr=False)
    srtp_key_i: bytes = field(repr=False)
    srtp_salt_i: bytes = field(repr=False)
    srtp_key_r: bytes = field(repr=False)
    srtp_salt_r: bytes = field(repr=False)
    retained_secret: bytes = field(repr=False)

    @property
    def sas_value(self) -> int:
        """The leftmost 32 bits of sashash (§4.5.2)."""
        return int.from_bytes(self.sas_hash[:4], "big")


def derive_keys(hash_name: str, cipher: str, s0: bytes, context: bytes) -> DerivedKeys:
    """Derive the session keys from s0 with KDF_Context = ZIDi ‖ ZIDr ‖ total_hash (§4.5.3)."""
    hash_len = _HASHES[hash_name]().digest_size
    key_len = CIPHER_KEY_LENGTHS[cipher]

    def derive(label: str, length: int) -> bytes:
        return kdf(hash_name, s0, label.encode("ascii"), context, length)

    return DerivedKeys(
        zrtp_session=derive("ZRTP Session Key", hash_len),
        sas_hash=derive("SAS", 32),
        mackey_i=derive("Initiator HMAC key", hash_len),
        mackey_r=derive("Responder HMAC key", hash_len),
        zrtpkey_i=derive("Initiator ZRTP key", key_len),
        zrtpkey_r=derive("Responder ZRTP key", key_len),
        srtp_key_i=derive("Initiator SRTP master key", key_len),
        srtp_salt_i=derive("Initiator SRTP master salt", 14),
        srtp_key_r=derive("Responder SRTP master key", key_len),
        srtp_salt_r=derive("Responder SRTP master salt", 14),
        retained_secret=derive("retained secret", 32),
    )


def confirm_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-CFB-128 with the ZRTP key (RFC 6189 §5.7); full-block feedback, no padding."""
    encryptor = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def confirm_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`confirm_encrypt`."""
    decryptor = Cipher(algorithms.AES(key), CFB(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def sas_b32(sas_value: int) -> str:
    """Base32 SAS: the 20 leftmost bits as 4 characters (RFC 6189 §5.1.6)."""
    return "".join(_B32_ALPHABET[sas_value >> shift & 0x1F] for shift in (27, 22, 17, 12))


def sas_b256(sas_value: int) -> str:
    """PGP word list SAS: byte 0 → even word, byte 1 → odd word, joined by ':' (§5.1.6)."""
    return f"{EVEN_WORDS[sas_value >> 24 & 0xFF]}:{ODD_WORDS[sas_value >> 16 & 0xFF]}"


def render_sas(sas_type: str, sas_value: int) -> str:
    """Render the SAS for the negotiated SAS type block (``"B32 "`` or ``"B256"``)."""
    if sas_type == "B256":
        return sas_b256(sas_value)
    if sas_type == "B32 ":
        return sas_b32(sas_value)
    raise ValueError(f"unsupported SAS type {sas_type!r}")


class KeyPair:
    """Our half of one key agreement: the public value sent in DHPart and ``agree()``."""

    name: str
    public_value: bytes

    def agree(self, peer_pv: bytes) -> bytes:
        """DHResult for the peer's public value; BadPublicValue if it must be refused."""
        raise NotImplementedError


class _Dh3kKeyPair(KeyPair):
    """DH3k: RFC 3526 3072-bit MODP group, g = 2; pv and DHResult 384 bytes big-endian."""

    name = "DH3k"

    def __init__(self) -> None:
        with _ffdh_quiet():
            self._numbers = dh.DHParameterNumbers(DH3K_PRIME, 2)
            self._key = self._numbers.parameters().generate_private_key()
            y = self._key.public_key().public_numbers().y
        self.public_value = y.to_bytes(_DH3K_BYTES, "big")

    def agree(self, peer_pv: bytes) -> bytes:
        if len(peer_pv) != _DH3K_BYTES:
            raise BadPublicValue("DH3k public value is not 384 bytes")
        y = int.from_bytes(peer_pv, "big")
        if not 1 < y < DH3K_PRIME - 1:
            raise BadPublicValue("DH3k public value is 0, 1, p-1 or out of range")
        try:
            with _ffdh_quiet():
                peer = dh.DHPublicNumbers(y, self._numbers).public_key()
                result = self._key.exchange(peer)
        except ValueError as exc:
            raise BadPublicValue("DH3k public value refused by OpenSSL") from exc
        return result.rjust(_DH3K_BYTES, b"\x00")


class _X25519KeyPair(KeyPair):
    """X255: X25519 (RFC 7748); pv and DHResult are the raw 32-byte u-coordinates."""

    name = "X255"

    def __init__(self) -> None:
        self._key = x25519.X25519PrivateKey.generate()
        self.public_value = self._key.public_key().public_bytes_raw()

    def agree(self, peer_pv: bytes) -> bytes:
        if len(peer_pv) != 32:
            raise BadPublicValue("X25519 public value is not 32 bytes")
        try:
            return self._key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_pv))
        except ValueError as exc:  # all-zero shared secret (small-order point)
            raise BadPublicValue("X25519 result is all zero") from exc


class _P256KeyPair(KeyPair):
    """EC25: ECDH on P-256; pv = X ‖ Y (64 bytes), DHResult = the x-coordinate (§5.1.5)."""

    name = "EC25"

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        numbers = self._key.public_key().public_numbers()
        self.public_value = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")

    def agree(self, peer_pv: bytes) -> bytes:
        if len(peer_pv) != 64:
            raise BadPublicValue("EC25 public value is not 64 bytes")
        x, y = int.from_bytes(peer_pv[:32], "big"), int.from_bytes(peer_pv[32:], "big")
        try:
            peer = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
            return self._key.exchange(ec.ECDH(), peer)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise BadPublicValue("EC25 public value is not a point on P-256") from exc


_KEY_PAIRS: dict[str, type[KeyPair]] = {
    "DH3k": _Dh3kKeyPair,
    "X255": _X25519KeyPair,
    "EC25": _P256KeyPair,
}


def generate_key_pair(name: str) -> KeyPair:
    """A fresh key pair for the key agreement block ``name`` (§5.1.5); KeyError if unknown."""
    return _KEY_PAIRS[name]()


@contextmanager
def _ffdh_quiet() -> Iterator[None]:
    """cryptography deprecates finite-field DH; DH3k is mandatory in ZRTP (RFC 6189 §5.1.5)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def match_shared_secret(
    hash_name: str,
    own: tuple[bytes | None, bytes | None],
    received_ids: tuple[bytes, bytes],
    we_are_initiator: bool,
) -> bytes | None:
    """s1 from our rs1/rs2 and the peer's rs1ID/rs2ID (RFC 6189 §4.3, §4.3.1).

    The peer's IDs are keyed with its role's label, so we compute ours with that label. s1 is
    the initiator's rs1 if it matches either responder secret, else the initiator's rs2 if it
    does, else None. Both sides reach the same secret.
    """
    label = b"Responder" if we_are_initiator else b"Initiator"
    ids = {slot: secret_id(hash_name, s, label) for slot, s in enumerate(own) if s}
    if we_are_initiator:
        for slot in (0, 1):
            if slot in ids and ids[slot] in received_ids:
                return own[slot]
        return None
    for received in received_ids:
        for slot in (0, 1):
            if ids.get(slot) == received:
                return own[slot]
    return None
