"""Certificate creation and inspection: a small local CA, SIP server and device certificates.

Profiles follow RFC 5280 §4.2 (BasicConstraints, KeyUsage, ExtendedKeyUsage, subjectAltName,
SKI/AKI); SIP servers are identified by their subjectAltName, never by a wildcard (RFC 5922 §7.2).

File names follow the desk-phone convention:

- ``ca.pem`` / ``ca.key``: the CA certificate and its private key (``ca.key`` mode 0600);
- ``sips.pem``: the trusted CA bundle for SIP over TLS (certificates only, never a key);
- ``https.pem``: the web server certificate and key in ONE PEM file (mode 0600);
- ``device.pem``: the device certificate for mutual TLS, chain and key in one file (0600).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securephone.store.files import atomic_write

__all__ = [
    "CLOCK_SKEW",
    "EXPIRY_WARNING_DAYS",
    "MAX_LEAF_DAYS",
    "MEDIA_CERT_DAYS",
    "RSA_SIZES",
    "CertError",
    "CertInfo",
    "CertKind",
    "Issued",
    "KeyInfo",
    "KeyType",
    "PemBlock",
    "PrivateKey",
    "certificate_info",
    "create_ca",
    "create_media_certificate",
    "create_self_signed",
    "inspect_keys",
    "inspect_pem",
    "issue_certificate",
    "load_ca_bundle",
    "load_cert_and_key",
    "split_pem",
    "warnings_for",
    "write_public_file",
    "write_secret_file",
]

KeyType = Literal["ec", "rsa"]
CertKind = Literal["server", "client"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

RSA_SIZES = (2048, 3072, 4096)
CLOCK_SKEW = timedelta(minutes=5)
"""Default certificates start this long before "now", so a peer with a slow clock accepts them."""
EXPIRY_WARNING_DAYS = 30
MAX_LEAF_DAYS = 398
"""CA/Browser Forum Baseline Requirements §6.3.2 limit for TLS server certificates."""

_SIP_DOMAIN_EKU = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.20")  # id-kp-sipDomain, RFC 5924 §4
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    _SIP_DOMAIN_EKU: "sipDomain",
}
_KIND_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
_WEAK_HASHES = {"sha1": "SHA-1", "md5": "MD5", "md4": "MD4", "md2": "MD2"}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


class CertError(Exception):
    """A certificate, key or PEM file is unusable; the message says why in one line."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM (the key is PKCS#8, unencrypted).

    ``chain_pem`` holds the issuing CA certificate(s) for an issued leaf (empty for a CA or a
    self-signed certificate).
    """

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    def combined_pem(self) -> bytes:
        """Certificate, then chain, then key: the one-file form of ``https.pem``/``device.pem``."""
        return self.cert_pem + self.chain_pem + self.key_pem

    def certificate(self) -> x509.Certificate:
        """The certificate as a cryptography object."""
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class CertInfo:
    """What a person needs to know about one certificate (RFC 5280 §4.1, §4.2)."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    san_dns: list[str]
    san_ips: list[str]
    san_uris: list[str]
    key_type: str
    key_bits: int
    sha256_fingerprint: str
    is_ca: bool
    self_signed: bool
    eku: list[str]
    signature_hash: str = ""
    """Lower-case hash name of the signature ("sha256", "sha1"); "" when none (Ed25519)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 UTC strings)."""
        data = dict(self.__dict__)
        data["not_before"] = self.not_before.isoformat()
        data["not_after"] = self.not_after.isoformat()
        return data


@dataclass(frozen=True)
class KeyInfo:
    """A private key found in a PEM file, described without exposing it."""

    key_type: str
    key_bits: int
    encrypted: bool
    matches: int | None
    """Index (0-based) of the certificate in the same file whose public key matches."""


@dataclass(frozen=True)
class PemBlock:
    """One ``-----BEGIN label----- ... -----END label-----`` block (RFC 7468 §2)."""

    label: str
    pem: bytes

    @property
    def is_private_key(self) -> bool:
        """True for any private key block (PKCS#8, PKCS#1, SEC1, encrypted, OpenSSH)."""
        return self.label.endswith("PRIVATE KEY")


# ---------------------------------------------------------------------------------------
# Creation


def create_ca(
    common_name: str,
    *,
    key_type: KeyType = "ec",
    rsa_bits: int = 3072,
    days: int = 3650,
    now: datetime | None = None,
) -> Issued:
    """Create a self-signed root CA that may only sign end-entity certificates (pathLen 0).

    Validity starts at ``now`` (default: the current time minus :data:`CLOCK_SKEW`); a negative
    ``days`` makes a CA that expired ``-days`` days before ``now`` (valid for one day before).
    """
    key = _new_key(key_type, rsa_bits)
    name = _name(common_name)
    not_before, not_after = _validity(days, now)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_key_usage(ca=True, rsa_key=False), True),
        (ski, False),
        (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False),
    ]
    cert = _sign(name, name, key.public_key(), key, (not_before, not_after), extensions)
    return Issued(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def issue_certificate(
    ca: Issued,
    common_name: str,
    *,
    kind: CertKind,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    uris: Sequence[str] = (),
    key_type: KeyType = "ec",
    rsa_bits: int = 3072,
    days: int = 90,
    not_before: datetime | None = None,
) -> Issued:
    """Issue a TLS server or client (device) certificate signed by ``ca`` (RFC 5280 §4.2).

    A server certificate without ``dns``/``ips`` gets its common name as its only
    subjectAltName. ``not_before`` may lie in the past (to make expired certificates) or in
    the future (not yet valid); with ``not_before`` given, ``days`` must be positive. Without
    it, a negative ``days`` makes a certificate that expired ``-days`` days ago.
    """
    if kind not in _KIND_EKU:
        raise CertError(f"unknown certificate kind {kind!r}: use 'server' or 'client'")
    if not_before is not None and days <= 0:
        raise CertError("days must be positive when not_before is given")
    ca_cert, ca_key = _load_ca(ca)
    names = _alt_names(common_name, dns, ips, uris, default_from_cn=kind == "server")
    key = _new_key(key_type, rsa_bits)
    extensions = [*_leaf_extensions(key, names, _KIND_EKU[kind]), (_aki_for(ca_cert), False)]
    validity = _validity(days, not_before)
    cert = _sign(
        _name(common_name), ca_cert.subject, key.public_key(), ca_key, validity, extensions
    )
    return Issued(_cert_pem(cert), _key_pem(key), chain_pem=_cert_pem(ca_cert))


def create_self_signed(
    common_name: str,
    *,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    key_type: KeyType = "ec",
    days: int = 365,
    rsa_bits: int = 3072,
) -> Issued:
    """Create a self-signed web server certificate (serverAuth, CA=false) for ``https.pem``.

    Without ``dns``/``ips`` the common name becomes the only subjectAltName.
    """
    key = _new_key(key_type, rsa_bits)
    names = _alt_names(common_name, dns, ips, (), default_from_cn=True)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    extensions = [*_leaf_extensions(key, names, ExtendedKeyUsageOID.SERVER_AUTH), (aki, False)]
    name = _name(common_name)
    cert = _sign(name, name, key.public_key(), key, _validity(days, None), extensions)
    return Issued(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


MEDIA_CERT_DAYS = 365


def create_media_certificate(
    common_name: str = "securephone media",
    *,
    days: int = MEDIA_CERT_DAYS,
    now: datetime | None = None,
) -> Issued:
    """Create the self-signed ECDSA P-256 certificate a phone presents in DTLS-SRTP handshakes.

    Peers do not validate it against a CA: they compare its hash with the ``a=fingerprint``
    of our SDP (RFC 5763 §5, RFC 8122 §5). So it names no host and has no EKU; it is an
    end-entity certificate (CA=false) allowed to sign (ECDHE-ECDSA handshakes).
    """
    key = _new_key("ec", 0)
    name = _name(common_name)
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(ca=False, rsa_key=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    cert = _sign(name, name, key.public_key(), key, _validity(days, now), extensions)
    return Issued(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def _new_key(key_type: str, rsa_bits: int) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type != "rsa":
        raise CertError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")
    if rsa_bits not in RSA_SIZES:
        sizes = ", ".join(str(size) for size in RSA_SIZES)
        raise CertError(f"unsupported RSA key size {rsa_bits}: use one of {sizes}")
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def _validity(days: int, start: datetime | None) -> tuple[datetime, datetime]:
    if days == 0:
        raise CertError("days must not be 0")
    begin = _as_utc(start) if start is not None else datetime.now(UTC) - CLOCK_SKEW
    if days > 0:
        return begin, begin + timedelta(days=days)
    end = begin + timedelta(days=days)
    return end - timedelta(days=1), end


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, like X.509 itself (RFC 5280 §4.1.2.5)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _name(common_name: str) -> x509.Name:
    """Subject with a single CN; RFC 5280 Appendix A caps it at 64 characters."""
    if not common_name or not common_name.strip():
        raise CertError("the common name must not be empty")
    if len(common_name) > 64:
        raise CertError(f"the common name is {len(common_name)} characters; at most 64 allowed")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    """RFC 5280 §4.2.1.3; keyEncipherment only for RSA (TLS 1.2 RSA key exchange)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_extensions(
    key: PrivateKey, names: list[x509.GeneralName], eku: x509.ObjectIdentifier
) -> list[tuple[x509.ExtensionType, bool]]:
    """End-entity extensions: CA=false, KeyUsage, EKU, SAN (RFC 5280 §4.2.1.6), SKI."""
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(ca=False, rsa_key=isinstance(key, rsa.RSAPrivateKey)), True),
        (x509.ExtendedKeyUsage([eku]), False),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    if names:
        extensions.append((x509.SubjectAlternativeName(names), False))
    return extensions


def _aki_for(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """RFC 5280 §4.2.1.1: the AKI repeats the issuer's SKI."""
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_key(ca_cert))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _issuer_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CertError("the CA key must be EC or RSA")
    return key


def _sign(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    signing_key: PrivateKey,
    validity: tuple[datetime, datetime],
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, _signature_hash(signing_key))


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """SHA-256, or SHA-384 for EC keys on P-384 and larger curves."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(ca: Issued) -> tuple[x509.Certificate, PrivateKey]:
    certs, key = load_cert_and_key(ca.cert_pem, ca.key_pem)
    if not _is_ca(certs[0]):
        raise CertError(f"{_subject(certs[0])} is not a CA certificate (BasicConstraints CA=false)")
    return certs[0], key


# ---------------------------------------------------------------------------------------
# subjectAltName


def _alt_names(
    common_name: str,
    dns: Sequence[str],
    ips: Sequence[str],
    uris: Sequence[str],
    *,
    default_from_cn: bool,
) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(_dns_name(name)) for name in dns]
    names += [x509.IPAddress(_ip_address(ip)) for ip in ips]
    names += [x509.UniformResourceIdentifier(_uri(uri)) for uri in uris]
    if not dns and not ips and default_from_cn:
        names.insert(0, _name_from_cn(common_name))
    return names


def _name_from_cn(common_name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(common_name))
    except ValueError:
        return x509.DNSName(_dns_name(common_name))


def _dns_name(name: str) -> str:
    """A host name for dNSName (RFC 5280 §4.2.1.6): LDH labels, IDNA A-labels, optional '*.'."""
    try:
        ascii_name = name.strip().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise CertError(f"not a valid DNS name: {name!r}") from None
    labels = ascii_name.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if len(ascii_name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise CertError(f"not a valid DNS name: {name!r}")
    return ascii_name.lower()


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        text = text.strip()
        bracketed = text.startswith("[") and text.endswith("]") and ":" in text
        return ipaddress.ip_address(text[1:-1] if bracketed else text)
    except ValueError:
        raise CertError(f"not an IP address: {text!r}") from None


def _uri(text: str) -> str:
    """A URI such as ``sip:alice@example.com`` (RFC 5922 §7.1 uses SAN URIs for SIP identity)."""
    if not text.isascii() or not _URI.fullmatch(text):
        raise CertError(f"not a URI (expected scheme:rest, e.g. sip:alice@example.com): {text!r}")
    return text


# ---------------------------------------------------------------------------------------
# Reading


def split_pem(data: bytes) -> list[PemBlock]:
    """All PEM blocks in ``data`` (RFC 7468 §2); text outside blocks is ignored."""
    if b"-----BEGIN " not in data:
        raise CertError("not PEM: no '-----BEGIN ...-----' line found")
    blocks = [PemBlock(m[1].decode("ascii"), m[0] + b"\n") for m in _PEM_BLOCK.finditer(data)]
    if len(blocks) != data.count(b"-----BEGIN "):
        raise CertError("truncated PEM: a '-----BEGIN' line has no matching '-----END' line")
    return blocks


def inspect_pem(data: bytes) -> list[CertInfo]:
    """Describe every certificate in a PEM bundle (a single DER certificate is accepted too)."""
    if b"-----BEGIN " not in data:
        return [certificate_info(_load_der(data))]
    certs = _certificates(split_pem(data))
    if not certs:
        raise CertError("no certificate found (expected a '-----BEGIN CERTIFICATE-----' block)")
    return [certificate_info(cert) for cert in certs]


def inspect_keys(data: bytes) -> list[KeyInfo]:
    """Describe the private keys in a PEM file without revealing them."""
    if b"-----BEGIN " not in data:
        return []
    blocks = split_pem(data)
    certs = _certificates(blocks)
    return [_key_info(block, certs) for block in blocks if block.is_private_key]


def _key_info(block: PemBlock, certs: list[x509.Certificate]) -> KeyInfo:
    if _is_encrypted(block):
        return KeyInfo(key_type="encrypted", key_bits=0, encrypted=True, matches=None)
    key = _load_private_key(block)
    key_type, bits = describe_key(key.public_key())
    index = _matching_index(key, certs)
    return KeyInfo(key_type=key_type, key_bits=bits, encrypted=False, matches=index)


def certificate_info(cert: x509.Certificate) -> CertInfo:
    """Summarise one certificate; CertError when its extensions cannot be decoded."""
    try:
        return _certificate_info(cert)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertError(f"certificate cannot be decoded: {exc}") from None


def _certificate_info(cert: x509.Certificate) -> CertInfo:
    san = _extension(cert, x509.SubjectAlternativeName)
    key_type, bits = describe_key(cert.public_key())
    return CertInfo(
        subject=_subject(cert),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        san_dns=san.get_values_for_type(x509.DNSName) if san else [],
        san_ips=[str(ip) for ip in san.get_values_for_type(x509.IPAddress)] if san else [],
        san_uris=san.get_values_for_type(x509.UniformResourceIdentifier) if san else [],
        key_type=key_type,
        key_bits=bits,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        is_ca=_is_ca(cert),
        self_signed=_is_self_signed(cert),
        eku=_eku_names(cert),
        signature_hash=_hash_name(cert),
    )


def describe_key(key: CertificatePublicKeyTypes) -> tuple[str, int]:
    """("EC P-256", 256), ("RSA 2048", 2048), ("Ed25519", 256) ..."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}", key.key_size
    return type(key).__name__, 0


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return bool(constraints is not None and constraints.ca)


def _is_self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, UnsupportedAlgorithm):  # "Unsupported signature algorithm" (SHA-1)
        return _legacy_signature_ok(cert)
    except (TypeError, InvalidSignature):
        return False
    return True


def _legacy_signature_ok(cert: x509.Certificate) -> bool:
    """Check an RSA/ECDSA self-signature whose hash (SHA-1) cryptography's X.509 layer refuses."""
    key, algorithm = cert.public_key(), cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _eku_names(cert: x509.Certificate) -> list[str]:
    usage = _extension(cert, x509.ExtendedKeyUsage)
    if usage is None:
        return []
    return [_EKU_NAMES.get(oid, oid.dotted_string) for oid in usage]


def _hash_name(cert: x509.Certificate) -> str:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "unknown"
    return algorithm.name if algorithm is not None else ""


def _certificates(blocks: list[PemBlock]) -> list[x509.Certificate]:
    found = [b for b in blocks if b.label in ("CERTIFICATE", "X509 CERTIFICATE")]
    return [_load_cert(block, number) for number, block in enumerate(found, start=1)]


def _load_cert(block: PemBlock, number: int) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(
            block.pem.replace(b"X509 CERTIFICATE", b"CERTIFICATE")
        )
    except ValueError as exc:
        raise CertError(f"certificate #{number} is not a valid certificate: {exc}") from None


def _load_der(data: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertError("not a certificate: neither PEM nor DER") from None


def _is_encrypted(block: PemBlock) -> bool:
    """PKCS#8 ``ENCRYPTED PRIVATE KEY`` or a legacy OpenSSL ``Proc-Type: 4,ENCRYPTED`` header."""
    return block.label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block.pem


def _load_private_key(block: PemBlock) -> PrivateKey:
    if _is_encrypted(block):
        raise CertError(
            "the private key is encrypted; store it unencrypted "
            "(openssl pkey -in key.pem -out plain.pem) and keep the file mode 0600"
        )
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(block.pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertError(f"the private key ({block.label}) cannot be read: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertError(f"unsupported private key type {type(key).__name__}: use EC or RSA")
    return key


def _same_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    return mine == cert.public_key().public_bytes(serialization.Encoding.DER, spki)


def _matching_index(key: PrivateKey, certs: list[x509.Certificate]) -> int | None:
    return next((i for i, cert in enumerate(certs) if _same_key(key, cert)), None)


def load_cert_and_key(
    pem: bytes, key_pem: bytes | None = None
) -> tuple[list[x509.Certificate], PrivateKey]:
    """Certificates (leaf first) and the private key from one PEM file, or from two.

    With one file it must hold the certificate(s) and exactly one key; with two, ``pem``
    holds only certificates and ``key_pem`` only the key. The certificate matching the key
    is moved to the front; the others keep their order (they are the chain).
    """
    blocks = split_pem(pem)
    key_blocks = split_pem(key_pem) if key_pem is not None else blocks
    if key_pem is not None:
        _check_separate_files(blocks, key_blocks)
    certs = _certificates(blocks)
    if not certs:
        raise CertError("no certificate found (expected a '-----BEGIN CERTIFICATE-----' block)")
    key = _single_key(key_blocks)
    index = _matching_index(key, certs)
    if index is None:
        raise CertError(f"the private key does not match the certificate {_subject(certs[0])}")
    return [certs[index], *certs[:index], *certs[index + 1 :]], key


def _check_separate_files(cert_blocks: list[PemBlock], key_blocks: list[PemBlock]) -> None:
    if any(block.is_private_key for block in cert_blocks):
        raise CertError(
            "a private key was given where only certificates are allowed "
            "(the certificate file holds a key while a separate key file was given)"
        )
    if any(not block.is_private_key for block in key_blocks):
        raise CertError("the key file holds something other than a private key")


def _single_key(blocks: list[PemBlock]) -> PrivateKey:
    keys = [block for block in blocks if block.is_private_key]
    if not keys:
        raise CertError("no private key found (expected a '-----BEGIN PRIVATE KEY-----' block)")
    if len(keys) > 1:
        raise CertError(f"{len(keys)} private keys found; exactly one is allowed")
    return _load_private_key(keys[0])


def load_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    """The trusted certificates of a CA bundle such as ``sips.pem`` (RFC 5280 §6.1.1 anchors).

    Errors (CertError): a private key in the bundle, no certificate at all, or a certificate
    that is neither a CA (BasicConstraints CA=true) nor self-signed. A self-signed end-entity
    certificate is accepted on purpose: pinning a server's self-signed certificate is how
    phones trust a PBX without a CA, and OpenSSL accepts it as a trust anchor. Any other
    non-CA certificate could never anchor a chain, so importing it is almost surely the
    mistake of taking the server certificate instead of its CA, and it is refused.
    """
    blocks = split_pem(pem)
    if any(block.is_private_key for block in blocks):
        raise CertError("a private key does not belong in a CA bundle; import only certificates")
    certs = _certificates(blocks)
    if not certs:
        raise CertError("the CA bundle holds no certificate")
    for number, cert in enumerate(certs, start=1):
        if not _is_ca(cert) and not _is_self_signed(cert):
            raise CertError(
                f"certificate #{number} ({_subject(cert)}) is not a CA certificate; "
                "import the CA that issued it instead"
            )
    return certs


# ---------------------------------------------------------------------------------------
# Warnings


def warnings_for(info: CertInfo, now: datetime | None = None) -> list[str]:
    """Problems a careful person would flag for this certificate (empty list: none)."""
    moment = _as_utc(now) if now is not None else datetime.now(UTC)
    return [
        *_key_warnings(info),
        *_validity_warnings(info, moment),
        *_name_warnings(info),
        *_signature_warnings(info),
        *_lifetime_warnings(info),
    ]


def _key_warnings(info: CertInfo) -> list[str]:
    is_ec = info.key_type.startswith("EC ")
    minimum = 256 if is_ec else 2048
    if (is_ec or info.key_type.startswith(("RSA ", "DSA "))) and info.key_bits < minimum:
        return [f"weak key: {info.key_type} (use EC P-256 or RSA 2048 or larger)"]
    return []


def _validity_warnings(info: CertInfo, now: datetime) -> list[str]:
    if now > info.not_after:
        return [f"expired on {_when(info.not_after)}"]
    if now < info.not_before:
        return [f"not yet valid: valid from {_when(info.not_before)}"]
    if info.not_after - now < timedelta(days=EXPIRY_WARNING_DAYS):
        days = (info.not_after - now).days
        return [f"expires within {EXPIRY_WARNING_DAYS} days ({_when(info.not_after)}, {days} d)"]
    return []


def _name_warnings(info: CertInfo) -> list[str]:
    found: list[str] = []
    if not info.is_ca and not (info.san_dns or info.san_ips or info.san_uris):
        found.append("no subjectAltName: TLS clients ignore the common name (RFC 6125 §6.4.4)")
    found += [
        f"wildcard name {name}: SIP clients must not accept wildcards (RFC 5922 §7.2)"
        for name in info.san_dns
        if "*" in name
    ]
    return found


def _signature_warnings(info: CertInfo) -> list[str]:
    label = _WEAK_HASHES.get(info.signature_hash)
    return [f"weak signature hash {label}: reissue with SHA-256"] if label else []


def _lifetime_warnings(info: CertInfo) -> list[str]:
    """Only leaf certificates usable for TLS servers (serverAuth or no EKU) are checked."""
    if info.is_ca or (info.eku and "serverAuth" not in info.eku):
        return []
    days = (info.not_after - info.not_before).days
    if days > MAX_LEAF_DAYS:
        return [f"validity of {days} days exceeds {MAX_LEAF_DAYS} (browsers reject such certs)"]
    return []


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------------------
# Files


def write_secret_file(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 (private keys, ``https.pem``, ``device.pem``)."""
    atomic_write(path, data, 0o600)


def write_public_file(path: Path, data: bytes) -> None:
    """Write atomically with mode 0644 (certificates, ``sips.pem``)."""
    atomic_write(path, data, 0o644)
