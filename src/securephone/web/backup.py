"""Configuration backups: plain TOML without secrets, or everything encrypted with a passphrase.

The encrypted form derives a 256-bit key from the passphrase with scrypt (RFC 7914, N=2^15,
r=8, p=1, 16-byte random salt) and seals the TOML with AES-256-GCM (NIST SP 800-38D, 96-bit
random nonce); the header is authenticated as associated data, so nothing in it can be changed.
"""

from __future__ import annotations

import base64
import json
import os
import tomllib
from typing import Any

import tomli_w
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"SECUREPHONE-BACKUP-ENCRYPTED v1\n"
PLAIN_HEADER = "# securephone configuration backup (secrets left out)\n"
MAX_BACKUP_SIZE = 1024 * 1024
MIN_PASSPHRASE_LENGTH = 10
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class BackupError(Exception):
    """A backup cannot be made or read; the message says why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise BackupError(f"damaged backup: {what} is not base64") from None


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=n, r=r, p=p)
    return kdf.derive(passphrase.encode("utf-8"))


def strip_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config dict without account passwords."""
    out = json.loads(json.dumps(data))
    for account in out.get("accounts", []):
        account.pop("password", None)
    return dict(out)


def make_plain(data: dict[str, Any]) -> bytes:
    """A TOML backup with secrets left out (safe to store anywhere)."""
    return (PLAIN_HEADER + tomli_w.dumps(strip_secrets(data))).encode("utf-8")


def _header(salt: bytes) -> dict[str, Any]:
    kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)}
    return {"format": "securephone-backup", "version": 1, "kdf": kdf, "cipher": "AES-256-GCM"}


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def make_encrypted(data: dict[str, Any], passphrase: str) -> bytes:
    """Everything, secrets included, sealed with a key derived from ``passphrase``."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise BackupError(f"the passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = _header(salt)
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, tomli_w.dumps(data).encode("utf-8"), _aad(header))
    envelope = {**header, "nonce": _b64(nonce), "ciphertext": _b64(sealed)}
    return MAGIC + json.dumps(envelope, indent=1).encode("ascii") + b"\n"


def is_encrypted(blob: bytes) -> bool:
    """True for a backup made with a passphrase."""
    return blob.startswith(MAGIC)


def read_backup(blob: bytes, passphrase: str | None = None) -> dict[str, Any]:
    """The config dict inside a backup (plain or encrypted); BackupError when unusable."""
    if len(blob) > MAX_BACKUP_SIZE:
        raise BackupError(f"the file is larger than {MAX_BACKUP_SIZE // 1024} KiB")
    if is_encrypted(blob):
        if not passphrase:
            raise BackupError("this backup is encrypted: give its passphrase")
        blob = _decrypt(blob[len(MAGIC) :], passphrase)
    try:
        return tomllib.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BackupError(f"not a configuration backup: {exc}") from None


def _decrypt(body: bytes, passphrase: str) -> bytes:
    try:
        envelope = json.loads(body)
        kdf = envelope["kdf"]
        header = {key: envelope[key] for key in ("format", "version", "kdf", "cipher")}
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (ValueError, KeyError, TypeError):
        raise BackupError("damaged backup: the header cannot be read") from None
    if header["format"] != "securephone-backup" or header["cipher"] != "AES-256-GCM":
        raise BackupError("not a securephone backup")
    if not (2**10 <= n <= 2**20 and 1 <= r <= 16 and 1 <= p <= 4):
        raise BackupError("damaged backup: unexpected key derivation parameters")
    salt = _unb64(kdf.get("salt"), "the salt")
    nonce, sealed = (
        _unb64(envelope.get("nonce"), "the nonce"),
        _unb64(envelope.get("ciphertext"), "the data"),
    )
    key = _derive(passphrase, salt, n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, sealed, _aad(header))
    except (InvalidTag, ValueError):
        raise BackupError("wrong passphrase, or the backup was changed or damaged") from None
