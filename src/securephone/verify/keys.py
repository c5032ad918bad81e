"""SRTP key export files: what ``securephone verify --keys`` reads to decrypt a capture.

A key export lets the owner of a call prove that the noise on the wire *is* their call: the
SRTP tags verify under the exported master key (RFC 3711 §3.4, §4.2) and the decrypted
payload is the audio. The format is the one the phone writes when ``[media]
srtp_key_export`` is set (:func:`securephone.aio.keyexport.write_key_export`): a JSON list with
one object per master key, appended call after call::

    [
      {
        "suite": "AES_CM_128_HMAC_SHA1_80",   # RFC 4568 §6.2 / RFC 7714 §14.2 name
        "key_b64": "base64(master key || master salt)",
        "direction": "outbound",              # of the exporting phone: outbound | inbound
        "ssrc": 305419896                     # int, "0x12345678", or null = try every stream
      }
    ]

Also accepted: ``{"format": "securephone-srtp-keys", "keys": [...]}``, ``send``/``receive``
for the direction, and the informational fields ``call_id``, ``local``, ``remote``. Only
``suite`` and ``key_b64`` are required: a key without an SSRC is tried on every SRTP stream and
kept where its tags verify. Error messages never show key material. The file holds secrets:
:func:`write_key_file` creates it with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pylibsrtp

from securephone.store.files import atomic_write

__all__ = [
    "KEY_FILE_FORMAT",
    "SUITES",
    "KeyEntry",
    "KeyFileError",
    "SuiteInfo",
    "dump_keys",
    "load_key_file",
    "parse_keys",
    "write_key_file",
]

KEY_FILE_FORMAT = "securephone-srtp-keys"


@dataclass(frozen=True, slots=True)
class SuiteInfo:
    """An SRTP crypto suite: key||salt length, auth tag length, pylibsrtp profile (or None)."""

    name: str
    key_salt_length: int
    tag_length: int
    profile: int | None


# Independent on purpose of the phone's own table (securephone.media.suites): the verifier
# checks captures without trusting the phone's code, so a wrong length there cannot hide here.
# RFC 4568 §6.2 (AES_CM_128_*), RFC 6188 §7 (AES_256_CM_*), RFC 7714 §14.2 (AEAD_*, 16-byte tag).
SUITES: dict[str, SuiteInfo] = {
    s.name: s
    for s in (
        SuiteInfo(
            "AES_CM_128_HMAC_SHA1_80", 30, 10, pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        ),
        SuiteInfo(
            "AES_CM_128_HMAC_SHA1_32", 30, 4, pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32
        ),
        SuiteInfo("AEAD_AES_128_GCM", 28, 16, pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM),
        SuiteInfo("AEAD_AES_256_GCM", 44, 16, pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM),
        SuiteInfo("AES_256_CM_HMAC_SHA1_80", 46, 10, None),
        SuiteInfo("AES_256_CM_HMAC_SHA1_32", 46, 4, None),
        SuiteInfo("AES_192_CM_HMAC_SHA1_80", 38, 10, None),
        SuiteInfo("AES_192_CM_HMAC_SHA1_32", 38, 4, None),
        SuiteInfo("F8_128_HMAC_SHA1_80", 30, 10, None),
    )
}


_DIRECTIONS: dict[object, str | None] = {
    None: None,
    "outbound": "outbound",
    "inbound": "inbound",
    "send": "outbound",
    "receive": "inbound",
}


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the entry, never the key."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One SRTP master key and salt for one sending direction."""

    suite: str
    key: bytes = field(repr=False)
    ssrc: int | None = None
    direction: str | None = None
    source: str = "key file"
    call_id: str | None = None
    local: str | None = None
    remote: str | None = None

    @property
    def info(self) -> SuiteInfo:
        """The suite's parameters."""
        return SUITES[self.suite]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this entry (includes the key: handle as a secret)."""
        data: dict[str, Any] = {
            "ssrc": self.ssrc,
            "suite": self.suite,
            "key_b64": base64.b64encode(self.key).decode("ascii"),
            "direction": self.direction,
        }
        for name in ("call_id", "local", "remote"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


def load_key_file(path: Path | str) -> list[KeyEntry]:
    """Read and check a key export file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path}: not JSON: {exc.msg} (line {exc.lineno})") from None
    try:
        return parse_keys(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def parse_keys(data: object) -> list[KeyEntry]:
    """Check the decoded JSON (an object with ``keys``, or a list) and build the entries."""
    if isinstance(data, dict):
        if data.get("format", KEY_FILE_FORMAT) != KEY_FILE_FORMAT:
            raise KeyFileError(f"format is {data.get('format')!r}, expected {KEY_FILE_FORMAT!r}")
        data = data.get("keys")
    if not isinstance(data, list):
        raise KeyFileError('expected a list of keys or an object with a "keys" list')
    if not data:
        raise KeyFileError("the key list is empty")
    return [_entry(number, item) for number, item in enumerate(data, start=1)]


def _entry(number: int, item: object) -> KeyEntry:
    if not isinstance(item, dict):
        raise KeyFileError(f"key #{number}: expected an object")
    suite = item.get("suite")
    if not isinstance(suite, str) or suite not in SUITES:
        raise KeyFileError(f"key #{number}: unknown suite {suite!r} (known: {', '.join(SUITES)})")
    key = _decode_key(number, item.get("key_b64"), SUITES[suite])
    direction = item.get("direction")
    if direction not in _DIRECTIONS:
        raise KeyFileError(f"key #{number}: direction must be 'outbound' or 'inbound'")
    return KeyEntry(
        suite=suite,
        key=key,
        ssrc=_ssrc(number, item.get("ssrc")),
        direction=_DIRECTIONS[direction],
        call_id=_optional_text(number, item, "call_id"),
        local=_optional_text(number, item, "local"),
        remote=_optional_text(number, item, "remote"),
    )


def _decode_key(number: int, value: object, suite: SuiteInfo) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"key #{number}: key_b64 (base64 of master key || salt) is missing")
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"key #{number}: key_b64 is not valid base64") from None
    if len(key) != suite.key_salt_length:
        raise KeyFileError(
            f"key #{number}: {suite.name} needs {suite.key_salt_length} bytes of key || salt, "
            f"got {len(key)}"
        )
    return key


def _ssrc(number: int, value: object) -> int | None:
    if value is None:
        return None
    try:
        ssrc = int(value, 0) if isinstance(value, str) else value
    except ValueError:
        ssrc = None
    if not isinstance(ssrc, int) or isinstance(ssrc, bool) or not 0 <= ssrc <= 0xFFFFFFFF:
        raise KeyFileError(f"key #{number}: ssrc must be a 32-bit number or null")
    return ssrc


def _optional_text(number: int, item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise KeyFileError(f"key #{number}: {name} must be text")
    return value


def dump_keys(entries: list[KeyEntry]) -> str:
    """The JSON text of a key file (the phone's export format: a list)."""
    return json.dumps([entry.to_dict() for entry in entries], indent=2) + "\n"


def write_key_file(path: Path | str, entries: list[KeyEntry]) -> None:
    """Write a key file atomically with mode 0600 (it holds SRTP master keys)."""
    atomic_write(path, dump_keys(entries).encode("utf-8"), 0o600)
