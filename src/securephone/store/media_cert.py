"""The phone's DTLS-SRTP media certificate on disk: created once, then loaded (RFC 5763 §5).

``media.pem`` in the data directory holds the certificate and its private key in one file,
mode 0600, written through :func:`securephone.store.config.atomic_write`. Peers never check it
against a CA, only against the ``a=fingerprint`` we put in SDP, so it is self-signed
(ECDSA P-256). It is replaced by a new one when it has expired or will within
:data:`RENEW_BEFORE` — its fingerprint then changes, which peers learn from the next SDP.
A file that cannot be read is an error, never silently overwritten.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from securephone.media.dtls.certificate import DtlsCertificate
from securephone.pki import CertError, create_media_certificate
from securephone.store.files import atomic_write

__all__ = ["MEDIA_CERT_FILE", "RENEW_BEFORE", "CertError", "load_or_create"]

log = logging.getLogger(__name__)

MEDIA_CERT_FILE = "media.pem"
RENEW_BEFORE = timedelta(days=30)


def load_or_create(directory: Path, *, now: datetime | None = None) -> DtlsCertificate:
    """The media certificate from ``directory``, created (or renewed) when needed."""
    moment = now if now is not None else datetime.now(UTC)
    path = Path(directory) / MEDIA_CERT_FILE
    if path.exists():
        certificate = _load(path)
        if certificate.certificate.not_valid_after_utc - moment > RENEW_BEFORE:
            return certificate
        log.info("media certificate %s expires soon or has expired: making a new one", path)
    return _create(path, moment)


def _load(path: Path) -> DtlsCertificate:
    try:
        certificate = DtlsCertificate.from_pem(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise CertError(
            f"the media certificate {path} cannot be used ({exc}); "
            "remove it and a new one will be made"
        ) from None
    key = certificate.private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CertError(f"the media certificate {path} must be ECDSA P-256")
    return certificate


def _create(path: Path, now: datetime) -> DtlsCertificate:
    issued = create_media_certificate(now=now - timedelta(minutes=5))
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, issued.cert_pem + issued.key_pem, mode=0o600)
    certificate = DtlsCertificate.from_issued(issued)
    log.info("media certificate %s created, %s", path, certificate.fingerprint())
    return certificate
