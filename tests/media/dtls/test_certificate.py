"""The media certificate: ECDSA P-256, self-signed, made once, kept 0600, fingerprint in RFC 8122 form."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from securephone.media.dtls import DtlsCertificate
from securephone.pki import CertError, create_media_certificate, create_self_signed, inspect_pem
from securephone.store.media_cert import MEDIA_CERT_FILE, load_or_create

RFC_8122 = re.compile(r"sha-256 [0-9A-F]{2}(:[0-9A-F]{2}){31}")


def test_created_certificate_is_self_signed_p256() -> None:
    issued = create_media_certificate()
    info = inspect_pem(issued.cert_pem)[0]
    assert info.key_type == "EC P-256" and info.self_signed and not info.is_ca
    certificate = DtlsCertificate.from_issued(issued)
    assert isinstance(certificate.private_key, ec.EllipticCurvePrivateKey)
    fingerprint = str(certificate.fingerprint())
    assert RFC_8122.fullmatch(fingerprint)
    assert fingerprint.split()[1] == info.sha256_fingerprint  # same hash as pki's inspection
    assert "PRIVATE" not in repr(certificate) and "private_key" not in repr(certificate)


def test_made_once_then_loaded(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    first = load_or_create(directory)
    path = directory / MEDIA_CERT_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "BEGIN CERTIFICATE" in text and "BEGIN PRIVATE KEY" in text
    again = load_or_create(directory)
    assert again.fingerprint() == first.fingerprint()
    assert path.read_text() == text


def test_renewed_when_it_is_about_to_expire(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    expiry = first.certificate.not_valid_after_utc
    still = load_or_create(tmp_path, now=expiry - timedelta(days=31))
    assert still.fingerprint() == first.fingerprint()
    renewed = load_or_create(tmp_path, now=expiry - timedelta(days=29))
    assert renewed.fingerprint() != first.fingerprint()
    assert renewed.certificate.not_valid_after_utc > expiry
    assert load_or_create(tmp_path, now=expiry).fingerprint() == renewed.fingerprint()


def test_a_broken_file_is_an_error_and_stays(tmp_path: Path) -> None:
    path = tmp_path / MEDIA_CERT_FILE
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertError, match="remove it"):
        load_or_create(tmp_path)
    assert b"not base64" in path.read_bytes()


def test_a_non_p256_file_is_refused(tmp_path: Path) -> None:
    rsa = create_self_signed("rsa.example", key_type="rsa", rsa_bits=2048)
    (tmp_path / MEDIA_CERT_FILE).write_bytes(rsa.combined_pem())
    with pytest.raises(CertError, match="P-256"):
        load_or_create(tmp_path, now=datetime.now(UTC))
