"""Configuration backups: plain TOML without secrets, encrypted (scrypt + AES-256-GCM) with them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from securephone.web.backup import (
    MAGIC,
    BackupError,
    is_encrypted,
    make_encrypted,
    make_plain,
    read_backup,
)

CONFIG: dict[str, Any] = {
    "sip": {"udp_port": 5070},
    "accounts": [
        {"name": "alice", "user": "alice", "domain": "example.com", "password": "s3cret-pw"}
    ],
    "web": {"type": "https"},
}
PASSPHRASE = "a long passphrase"


def test_plain_backup_leaves_secrets_out() -> None:
    blob = make_plain(CONFIG)
    assert b"s3cret-pw" not in blob
    assert not is_encrypted(blob)
    data = read_backup(blob)
    assert data["accounts"][0] == {"name": "alice", "user": "alice", "domain": "example.com"}
    assert data["sip"]["udp_port"] == 5070
    assert CONFIG["accounts"][0]["password"] == "s3cret-pw"  # the input was not changed


def test_encrypted_backup_round_trip_hides_everything() -> None:
    blob = make_encrypted(CONFIG, PASSPHRASE)
    assert blob.startswith(MAGIC) and is_encrypted(blob)
    assert b"s3cret-pw" not in blob and b"alice" not in blob
    assert read_backup(blob, PASSPHRASE) == CONFIG


def test_two_encryptions_differ_salt_and_nonce_are_random() -> None:
    a, b = make_encrypted(CONFIG, PASSPHRASE), make_encrypted(CONFIG, PASSPHRASE)
    assert a != b


def test_wrong_or_missing_passphrase() -> None:
    blob = make_encrypted(CONFIG, PASSPHRASE)
    with pytest.raises(BackupError, match="give its passphrase"):
        read_backup(blob)
    with pytest.raises(BackupError, match="wrong passphrase"):
        read_backup(blob, PASSPHRASE + "!")


def _tamper(blob: bytes, key: str, value: Any) -> bytes:
    envelope = json.loads(blob[len(MAGIC) :])
    envelope[key] = value
    return MAGIC + json.dumps(envelope).encode()


def test_tampered_header_or_data_is_refused() -> None:
    blob = make_encrypted(CONFIG, PASSPHRASE)
    envelope = json.loads(blob[len(MAGIC) :])
    # the header is authenticated (AAD): a changed salt or cipher name fails
    changed_kdf = dict(envelope["kdf"], p=2)
    with pytest.raises(BackupError, match="wrong passphrase, or the backup was changed"):
        read_backup(_tamper(blob, "kdf", changed_kdf), PASSPHRASE)
    with pytest.raises(BackupError, match="not a securephone backup"):
        read_backup(_tamper(blob, "cipher", "ROT13"), PASSPHRASE)
    with pytest.raises(BackupError, match="not base64"):
        read_backup(_tamper(blob, "ciphertext", "!!!"), PASSPHRASE)
    huge = dict(envelope["kdf"], n=2**30)
    with pytest.raises(BackupError, match="unexpected key derivation"):
        read_backup(_tamper(blob, "kdf", huge), PASSPHRASE)
    with pytest.raises(BackupError, match="header cannot be read"):
        read_backup(MAGIC + b"{", PASSPHRASE)


def test_short_passphrase_refused() -> None:
    with pytest.raises(BackupError, match="at least 10"):
        make_encrypted(CONFIG, "short")


def test_not_a_backup_and_too_large() -> None:
    with pytest.raises(BackupError, match="not a configuration backup"):
        read_backup(b"\xff\xfe binary")
    with pytest.raises(BackupError, match="not a configuration backup"):
        read_backup(b"[sip\nbroken = ")
    with pytest.raises(BackupError, match="larger than"):
        read_backup(b"#" * (1024 * 1024 + 1))
