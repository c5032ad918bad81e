"""The certificate and key an endpoint presents in DTLS handshakes, and its fingerprints.

DTLS-SRTP peers authenticate each other by certificate fingerprints carried in SDP, not by a
CA (RFC 5763 §5, RFC 8122 §5), so a self-signed certificate is the norm. Creating one is
:func:`securephone.pki.create_media_certificate`; keeping it on disk is the shell's job
(:func:`securephone.store.media_cert.load_or_create`). This module only holds one in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from securephone.pki import Issued, PrivateKey, load_cert_and_key
from securephone.sdp.dtls import Fingerprint

__all__ = ["DtlsCertificate"]


@dataclass(frozen=True)
class DtlsCertificate:
    """A certificate and its private key (the key never appears in ``repr``)."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes | None = None) -> DtlsCertificate:
        """Load from one PEM (certificate and key) or two; CertError when unusable."""
        certs, key = load_cert_and_key(cert_pem, key_pem)
        return cls(certs[0], key)

    @classmethod
    def from_issued(cls, issued: Issued) -> DtlsCertificate:
        """Take a freshly created :class:`~securephone.pki.Issued` certificate."""
        return cls.from_pem(issued.cert_pem, issued.key_pem)

    @property
    def der(self) -> bytes:
        """The certificate in DER, the bytes its fingerprint is computed over (RFC 8122 §5)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def fingerprint(self, algorithm: str = "sha-256") -> Fingerprint:
        """Our ``a=fingerprint`` (RFC 8122 §5; sha-256 unless asked otherwise)."""
        return Fingerprint.of_certificate(self.der, algorithm)
