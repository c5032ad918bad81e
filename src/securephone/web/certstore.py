"""Certificate import for the web interface: ``https.pem``, ``sips.pem``, ``device.pem``.

Every upload is checked completely before anything is replaced (file name, size, PEM, key
match, validity dates, a key where none belongs); then the file is rewritten from the parsed
objects (no stray text survives) atomically with mode 0600. Private keys are never returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from securephone.pki.certs import (
    CertError,
    CertInfo,
    PrivateKey,
    certificate_info,
    inspect_keys,
    inspect_pem,
    load_ca_bundle,
    load_cert_and_key,
    warnings_for,
    write_secret_file,
)

MAX_UPLOAD = 64 * 1024
SELF_SIGNED_NAME = "https-selfsigned.pem"
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SUFFIXES = (".pem", ".crt", ".cer", ".key")


@dataclass(frozen=True)
class Slot:
    """One place a certificate goes: its file name, what it is for, whether it holds a key."""

    name: str
    filename: str
    title: str
    with_key: bool


SLOTS: dict[str, Slot] = {
    "https": Slot("https", "https.pem", "Web server certificate and key (https.pem)", True),
    "sips": Slot("sips", "sips.pem", "Trusted CAs for SIP over TLS (sips.pem)", False),
    "device": Slot("device", "device.pem", "Device certificate for mutual TLS (device.pem)", True),
}


class CertImportError(CertError):
    """An upload was refused; nothing was replaced."""


@dataclass
class SlotView:
    """What the certificate page and the API show for one slot (never a private key)."""

    slot: str
    filename: str
    title: str
    present: bool
    generated: bool = False
    certificates: list[dict[str, Any]] = field(default_factory=list)
    key: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Prepared:
    """A validated upload, ready to be written."""

    slot: Slot
    pem: bytes
    infos: list[CertInfo]
    warnings: list[str]


def check_filename(name: str | None) -> None:
    """Accept plain names like ``https.pem``; refuse paths, odd characters, other suffixes."""
    if not name:
        raise CertImportError("the upload has no file name")
    if not _FILENAME.fullmatch(name) or ".." in name or not name.lower().endswith(_SUFFIXES):
        shown = name if len(name) <= 60 else name[:60] + "..."
        raise CertImportError(
            f"odd file name {shown!r}: use a plain name such as https.pem "
            "(letters, digits, '.', '_', '-'; ending .pem, .crt, .cer or .key)"
        )


def check_size(data: bytes, what: str) -> None:
    """Refuse empty and oversized uploads."""
    if not data.strip():
        raise CertImportError(f"the {what} is empty")
    if len(data) > MAX_UPLOAD:
        raise CertImportError(
            f"the {what} is too large ({len(data)} bytes; at most {MAX_UPLOAD} bytes)"
        )


def _check_dates(infos: list[CertInfo], now: datetime) -> None:
    for number, info in enumerate(infos, start=1):
        which = "the certificate" if number == 1 else f"certificate #{number} ({info.subject})"
        if now > info.not_after:
            raise CertImportError(f"{which} expired on {_when(info.not_after)}")
        if now < info.not_before:
            raise CertImportError(f"{which} is not yet valid: valid from {_when(info.not_before)}")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _check_purpose(slot: Slot, leaf: CertInfo) -> None:
    if leaf.is_ca:
        raise CertImportError(f"{leaf.subject} is a CA certificate; {slot.filename} needs a leaf")
    wanted = "serverAuth" if slot.name == "https" else "clientAuth"
    if leaf.eku and wanted not in leaf.eku and "anyExtendedKeyUsage" not in leaf.eku:
        raise CertImportError(
            f"the certificate is for {', '.join(leaf.eku)}, not {wanted} ({slot.filename})"
        )


def _pem_of(certs: list[x509.Certificate], key: PrivateKey | None) -> bytes:
    out = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    if key is not None:
        out += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return out


def prepare(
    slot_name: str,
    data: bytes,
    filename: str | None,
    key_data: bytes | None = None,
    key_filename: str | None = None,
    now: datetime | None = None,
) -> Prepared:
    """Validate an upload completely; CertImportError (a CertError) says what is wrong."""
    slot = SLOTS.get(slot_name)
    if slot is None:
        raise CertImportError(f"unknown certificate slot {slot_name!r}: use {', '.join(SLOTS)}")
    check_filename(filename)
    check_size(data, "file")
    if key_data is not None:
        if not slot.with_key:
            raise CertImportError(f"{slot.filename} holds certificates only; do not upload a key")
        check_filename(key_filename)
        check_size(key_data, "key file")
    moment = now or datetime.now(UTC)
    try:
        if slot.with_key:
            certs, key = load_cert_and_key(data, key_data)
        else:
            certs, key = load_ca_bundle(data), None
        infos = [certificate_info(cert) for cert in certs]
    except CertImportError:
        raise
    except CertError as exc:
        raise CertImportError(str(exc)) from None
    _check_dates(infos, moment)
    if slot.with_key:
        _check_purpose(slot, infos[0])
    warnings = [w for info in infos for w in warnings_for(info, moment)]
    return Prepared(slot, _pem_of(certs, key), infos, warnings)


def install(prepared: Prepared, data_dir: Path) -> Path:
    """Write a validated upload atomically with mode 0600 and return its path."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / prepared.slot.filename
    write_secret_file(path, prepared.pem)
    return path


def describe(slot_name: str, data_dir: Path) -> SlotView:
    """The slot's current file: certificates, key description (never the key), warnings."""
    slot = SLOTS[slot_name]
    path = data_dir / slot.filename
    generated = False
    if slot.name == "https" and not path.exists() and (data_dir / SELF_SIGNED_NAME).exists():
        path, generated = data_dir / SELF_SIGNED_NAME, True
    view = SlotView(slot.name, slot.filename, slot.title, path.exists(), generated)
    if not view.present:
        return view
    try:
        data = path.read_bytes()
        infos = inspect_pem(data)
        keys = inspect_keys(data)
    except (OSError, CertError) as exc:
        view.error = str(exc)
        return view
    view.certificates = [info.to_dict() for info in infos]
    view.warnings = [w for info in infos for w in warnings_for(info)]
    if keys:
        key = keys[0]
        view.key = {"type": key.key_type, "bits": key.key_bits, "matches_certificate": key.matches}
    return view
