"""The certificate and key an endpoint presents in DTLS handshakes, and its fingerprints.

DTLS-SRTP peers authenticate each other by certificate fingerprints carried in SDP, not by a
CA (RFC 5763 §5, RFC 8122 §5), so a self-signed certificate is the norm. Creating one is
:func:`securephone.pki.create_media_certificate`; keeping it on disk is the shell's job
(:func:`securephone.store.media_cert.load_or_create`). This module only holds one in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from securephone.sdp.dtls import Fingerprint

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class PemPair(Protocol):
    """A freshly made certificate in PEM (``securephone.pki.Issued`` is one)."""

    @property
    def cert_pem(self) -> bytes: ...

    @property
    def key_pem(self) -> bytes: ...


__all__ = ["DtlsCertificate"]


@dataclass(frozen=True)
class DtlsCertificate:
    """A certificate and its private key (the key never appears in ``repr``)."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes | None = None) -> DtlsCertificate:
        """Load from one PEM (certificate and key) or two; ValueError when unusable."""
        certificate = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem or cert_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the media certificate key must be ECDSA or RSA")
        if _spki(key.public_key()) != _spki(certificate.public_key()):
            raise ValueError("the private key does not match the media certificate")
        return cls(certificate, key)

    @classmethod
    def from_issued(cls, issued: PemPair) -> DtlsCertificate:
        """Take a freshly created certificate (e.g. :class:`securephone.pki.Issued`)."""
        return cls.from_pem(issued.cert_pem, issued.key_pem)

    @property
    def der(self) -> bytes:
        """The certificate in DER, the bytes its fingerprint is computed over (RFC 8122 §5)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def fingerprint(self, algorithm: str = "sha-256") -> Fingerprint:
        """Our ``a=fingerprint`` (RFC 8122 §5; sha-256 unless asked otherwise)."""
        return Fingerprint.of_certificate(self.der, algorithm)


def _spki(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | object) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key (to compare a key with a certificate)."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
