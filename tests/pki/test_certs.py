"""Tests for securephone.pki.certs: profiles (RFC 5280 §4.2), chain verification, real TLS."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from securephone.pki.certs import (
    CertError,
    CertInfo,
    Issued,
    create_ca,
    create_self_signed,
    inspect_keys,
    inspect_pem,
    issue_certificate,
    load_ca_bundle,
    load_cert_and_key,
    warnings_for,
    write_public_file,
    write_secret_file,
)

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)

# A legacy certificate: RSA 1024, sha1WithRSAEncryption, self-signed, CA:FALSE, serverAuth,
# valid 2026-11-28 .. 2036-11-25 (3650 days). cryptography refuses to sign with SHA-1, so it
# was made with: openssl req -x509 -sha1 -newkey rsa:1024 -nodes -days 3650
#   -subj /CN=legacy.example -addext subjectAltName=DNS:legacy.example
#   -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth
LEGACY_SHA1_RSA1024_PEM = b"""-----BEGIN CERTIFICATE-----
MIICPDCCAaWgAwIBAgIUZLUtoZb1LBnr15mj8740Na7aqjowDQYJKoZIhvcNAQEF
BQAwGTEXMBUGA1UEAwwObGVnYWN5LmV4YW1wbGUwHhcNMjYxMTI4MTIyODI5WhcN
MzYxMTI1MTIyODI5WjAZMRcwFQYDVQQDDA5sZWdhY3kuZXhhbXBsZTCBnzANBgkq
hkiG9w0BAQEFAAOBjQAwgYkCgYEAv11LJan9bJd8LUjj685vm+20PKW8ZGgLDcHZ
FOmHBzhOruMbO04d+1+AOpiCQqsZwgGHIi+dVZWvfcVyUckHfZ6tGBmcsSX1yiFA
zECnlWoaH00c4Du77IH15peiK8GV+z9HKSC5SSOZ2pd99busauSBj51ka+nDp/p0
JnSqiy8CAwEAAaOBgDB+MB0GA1UdDgQWBBR/mESJ5HGCXfXNGURRNYxfOKrX5jAf
BgNVHSMEGDAWgBR/mESJ5HGCXfXNGURRNYxfOKrX5jAZBgNVHREEEjAQgg5sZWdh
Y3kuZXhhbXBsZTAMBgNVHRMBAf8EAjAAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMA0G
CSqGSIb3DQEBBQUAA4GBAH9SHFjkawoxyKHmCKPiL7bNiuj3yFpekuEalRPcjf3V
Ggui9+ZewqYGp8cgM3ZLaqy/tb1n1w6sQoNtaOiEt7+kBODeFnPjCrdj1FSA9DKd
DlZKhUZe5sRkspGBuydXORL+2DDPZCjzm+nPjDVrelHknO5KH/pPzJnnxduqIYnp
-----END CERTIFICATE-----
"""


# --------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def ca() -> Issued:
    return create_ca("Test Root CA")


@pytest.fixture(scope="module")
def server(ca: Issued) -> Issued:
    return issue_certificate(
        ca, "localhost", kind="server", dns=["localhost"], ips=["127.0.0.1", "::1"]
    )


@pytest.fixture(scope="module")
def client(ca: Issued) -> Issued:
    return issue_certificate(
        ca, "alice", kind="client", uris=["sip:alice@example.com"], dns=["alice.example.com"]
    )


ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[ExtensionT]) -> x509.Extension[ExtensionT]:
    return cert.extensions.get_extension_for_class(kind)


def _verifier_store(ca: Issued) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca.certificate()]))


# --------------------------------------------------------------------------------------
# Creation: extensions (RFC 5280 §4.2.1)


def test_ca_extensions_and_validity() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    ca = create_ca("My CA", now=start, days=100)
    cert = ca.certificate()
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + timedelta(days=100)
    cert.verify_directly_issued_by(cert)
    assert cert.subject.rfc4514_string() == "CN=My CA"


def test_ca_key_is_ec_p256_by_default_and_pkcs8_unencrypted() -> None:
    ca = create_ca("EC CA")
    assert ca.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert inspect_pem(ca.cert_pem)[0].key_type == "EC P-256"


def test_ca_rsa_2048() -> None:
    ca = create_ca("RSA CA", key_type="rsa", rsa_bits=2048)
    info = inspect_pem(ca.cert_pem)[0]
    assert (info.key_type, info.key_bits, info.is_ca, info.self_signed) == (
        "RSA 2048",
        2048,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("key_type", "bits", "message"),
    [("rsa", 1024, "unsupported RSA key size 1024"), ("dsa", 2048, "unknown key type 'dsa'")],
)
def test_bad_key_choices_are_refused(key_type: str, bits: int, message: str) -> None:
    with pytest.raises(CertError, match=message):
        create_ca("x", key_type=key_type, rsa_bits=bits)  # type: ignore[arg-type]


def test_server_certificate_extensions(ca: Issued, server: Issued) -> None:
    cert, ca_cert = server.certificate(), ca.certificate()
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment and not usage.key_cert_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    ca_ski = _ext(ca_cert, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert cert.issuer == ca_cert.subject
    cert.verify_directly_issued_by(ca_cert)
    assert server.chain_pem == ca.cert_pem


def test_rsa_leaf_has_key_encipherment(ca: Issued) -> None:
    issued = issue_certificate(ca, "pbx", kind="server", key_type="rsa", rsa_bits=2048)
    usage = _ext(issued.certificate(), x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    assert inspect_pem(issued.cert_pem)[0].key_type == "RSA 2048"


def test_client_certificate_has_client_auth_and_uri(client: Issued) -> None:
    info = inspect_pem(client.cert_pem)[0]
    assert info.eku == ["clientAuth"]
    assert info.san_uris == ["sip:alice@example.com"]
    assert info.san_dns == ["alice.example.com"]
    assert not info.is_ca and not info.self_signed


def test_server_without_names_uses_common_name(ca: Issued) -> None:
    by_name = inspect_pem(issue_certificate(ca, "pbx.example.com", kind="server").cert_pem)[0]
    by_ip = inspect_pem(issue_certificate(ca, "192.0.2.7", kind="server").cert_pem)[0]
    assert (by_name.san_dns, by_name.san_ips) == (["pbx.example.com"], [])
    assert (by_ip.san_dns, by_ip.san_ips) == ([], ["192.0.2.7"])


def test_client_without_names_has_no_san(ca: Issued) -> None:
    info = inspect_pem(issue_certificate(ca, "001122334455", kind="client").cert_pem)[0]
    assert (info.san_dns, info.san_ips, info.san_uris) == ([], [], [])


def test_idna_and_wildcard_names(ca: Issued) -> None:
    issued = issue_certificate(ca, "x", kind="server", dns=["Bücher.Example", "*.example.com"])
    assert inspect_pem(issued.cert_pem)[0].san_dns == ["xn--bcher-kva.example", "*.example.com"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dns": ["-bad.example"]}, "not a valid DNS name"),
        ({"dns": ["a..b"]}, "not a valid DNS name"),
        ({"dns": ["*.com"]}, "not a valid DNS name"),
        ({"ips": ["1.2.3"]}, "not an IP address"),
        ({"uris": ["no scheme here"]}, "not a URI"),
        ({"kind": "peer"}, "unknown certificate kind"),
        ({"days": 0}, "days must not be 0"),
        ({"days": -5, "not_before": NOW}, "days must be positive"),
    ],
)
def test_bad_issue_arguments(ca: Issued, kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"kind": "server", **kwargs}
    with pytest.raises(CertError, match=message):
        issue_certificate(ca, "localhost", **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "message"), [("", "must not be empty"), ("x" * 65, "at most 64")])
def test_bad_common_name(ca: Issued, name: str, message: str) -> None:
    with pytest.raises(CertError, match=message):
        issue_certificate(ca, name, kind="client")


def test_issue_requires_a_ca(ca: Issued, server: Issued) -> None:
    with pytest.raises(CertError, match="not a CA certificate"):
        issue_certificate(server, "x", kind="client")
    wrong_key = Issued(cert_pem=ca.cert_pem, key_pem=server.key_pem)
    with pytest.raises(CertError, match="does not match"):
        issue_certificate(wrong_key, "x", kind="client")


def test_explicit_not_before_and_negative_days(ca: Issued) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    past = issue_certificate(ca, "old", kind="server", not_before=start, days=10).certificate()
    assert past.not_valid_before_utc == start
    assert past.not_valid_after_utc == start + timedelta(days=10)
    expired = issue_certificate(ca, "gone", kind="server", days=-3).certificate()
    now = datetime.now(UTC)
    assert expired.not_valid_after_utc < now - timedelta(days=2)
    assert expired.not_valid_before_utc < expired.not_valid_after_utc


def test_self_signed_web_certificate() -> None:
    issued = create_self_signed("phone.local", ips=["127.0.0.1"], days=365)
    info = inspect_pem(issued.cert_pem)[0]
    assert info.self_signed and not info.is_ca
    assert info.eku == ["serverAuth"]
    assert (info.san_dns, info.san_ips) == ([], ["127.0.0.1"])
    assert info.not_after - info.not_before == timedelta(days=365)
    assert warnings_for(info) == []
    assert issued.combined_pem() == issued.cert_pem + issued.key_pem


# --------------------------------------------------------------------------------------
# Chain verification with cryptography's WebPKI verifier


def test_server_chain_verifies_for_localhost_and_ip(ca: Issued, server: Issued) -> None:
    leaf = server.certificate()
    for subject in (DNSName("localhost"), IPAddress(ipaddress.ip_address("127.0.0.1"))):
        chain = _verifier_store(ca).build_server_verifier(subject).verify(leaf, [])
        assert chain == [leaf, ca.certificate()]


def test_server_verifier_rejects_other_name(ca: Issued, server: Issued) -> None:
    verifier = _verifier_store(ca).build_server_verifier(DNSName("example.org"))
    with pytest.raises(VerificationError, match="subjectAltName"):
        verifier.verify(server.certificate(), [])


def test_server_verifier_rejects_other_ca(server: Issued) -> None:
    other = create_ca("Other CA")
    verifier = _verifier_store(other).build_server_verifier(DNSName("localhost"))
    with pytest.raises(VerificationError):
        verifier.verify(server.certificate(), [])


def test_client_certificate_verifies_as_client_only(ca: Issued, client: Issued) -> None:
    verified = _verifier_store(ca).build_client_verifier().verify(client.certificate(), [])
    assert x509.UniformResourceIdentifier("sip:alice@example.com") in (verified.subjects or [])
    as_server = _verifier_store(ca).build_server_verifier(DNSName("alice.example.com"))
    with pytest.raises(VerificationError):
        as_server.verify(client.certificate(), [])


def test_expired_certificate_fails_verification(ca: Issued, server: Issued) -> None:
    later = server.certificate().not_valid_after_utc + timedelta(days=1)
    verifier = _verifier_store(ca).time(later).build_server_verifier(DNSName("localhost"))
    with pytest.raises(VerificationError, match="not valid at validation time"):
        verifier.verify(server.certificate(), [])


# --------------------------------------------------------------------------------------
# Real TLS handshakes on 127.0.0.1 with the stdlib ssl module


@dataclass
class Outcome:
    client_error: BaseException | None = None
    server_error: BaseException | None = None
    echoed: bytes = b""
    client_cert_seen: dict[str, object] | None = None


def _serve_once(listener: socket.socket, context: ssl.SSLContext, outcome: Outcome) -> None:
    try:
        conn, _ = listener.accept()
        conn.settimeout(10)
        with context.wrap_socket(conn, server_side=True) as tls:
            outcome.client_cert_seen = tls.getpeercert() or None  # type: ignore[assignment]
            tls.sendall(tls.recv(64).upper())
    except OSError as exc:  # ssl.SSLError is an OSError
        outcome.server_error = exc


def _run_tls(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> Outcome:
    outcome = Outcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        thread = threading.Thread(target=_serve_once, args=(listener, server_ctx, outcome))
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=10) as raw,
                client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                tls.sendall(b"ping")
                outcome.echoed = tls.recv(64)
        except OSError as exc:
            outcome.client_error = exc
        finally:
            thread.join()
    return outcome


PemWriter = Callable[[bytes], str]


@pytest.fixture
def pem_file(tmp_path: Path) -> PemWriter:
    """Write PEM data to a fresh 0600 file and return its path (ssl wants paths)."""
    counter = iter(range(1000))

    def write(data: bytes) -> str:
        path = tmp_path / f"file{next(counter)}.pem"
        write_secret_file(path, data)
        return str(path)

    return write


def _server_ctx(pem_path: str, client_ca: Issued | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem_path)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.cert_pem.decode())
    return context


def _client_ctx(trust: bytes, pem_path: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=trust.decode())
    if pem_path is not None:
        context.load_cert_chain(pem_path)
    return context


def test_tls_one_way(ca: Issued, server: Issued, pem_file: PemWriter) -> None:
    server_ctx = _server_ctx(pem_file(server.combined_pem()))
    for hostname in ("localhost", "127.0.0.1"):
        outcome = _run_tls(server_ctx, _client_ctx(ca.cert_pem), hostname)
        assert (outcome.client_error, outcome.server_error) == (None, None)
        assert outcome.echoed == b"PING"


def test_tls_mutual(ca: Issued, server: Issued, client: Issued, pem_file: PemWriter) -> None:
    server_ctx = _server_ctx(pem_file(server.combined_pem()), client_ca=ca)
    client_ctx = _client_ctx(ca.cert_pem, pem_file(client.combined_pem()))
    outcome = _run_tls(server_ctx, client_ctx, "localhost")
    assert (outcome.client_error, outcome.server_error) == (None, None)
    assert outcome.echoed == b"PING"
    assert outcome.client_cert_seen is not None
    assert outcome.client_cert_seen["subject"] == ((("commonName", "alice"),),)
    assert ("URI", "sip:alice@example.com") in outcome.client_cert_seen["subjectAltName"]  # type: ignore[operator]


def test_tls_mutual_without_client_certificate_fails(
    ca: Issued, server: Issued, pem_file: PemWriter
) -> None:
    server_ctx = _server_ctx(pem_file(server.combined_pem()), client_ca=ca)
    outcome = _run_tls(server_ctx, _client_ctx(ca.cert_pem), "localhost")
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(outcome.server_error)
    assert outcome.echoed == b""


def test_tls_rsa_server_over_tls12(ca: Issued, pem_file: PemWriter) -> None:
    issued = issue_certificate(ca, "localhost", kind="server", key_type="rsa", rsa_bits=2048)
    server_ctx = _server_ctx(pem_file(issued.combined_pem()))
    client_ctx = _client_ctx(ca.cert_pem)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = _run_tls(server_ctx, client_ctx, "localhost")
    assert (outcome.client_error, outcome.echoed) == (None, b"PING")


def test_tls_expired_server_certificate_is_rejected(ca: Issued, pem_file: PemWriter) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    expired = issue_certificate(ca, "localhost", kind="server", not_before=start, days=10)
    outcome = _run_tls(
        _server_ctx(pem_file(expired.combined_pem())), _client_ctx(ca.cert_pem), "localhost"
    )
    error = outcome.client_error
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert error.verify_message == "certificate has expired"


def test_tls_not_yet_valid_server_certificate_is_rejected(ca: Issued, pem_file: PemWriter) -> None:
    start = datetime.now(UTC) + timedelta(days=5)
    future = issue_certificate(ca, "localhost", kind="server", not_before=start, days=10)
    outcome = _run_tls(
        _server_ctx(pem_file(future.combined_pem())), _client_ctx(ca.cert_pem), "localhost"
    )
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert outcome.client_error.verify_message == "certificate is not yet valid"


def test_tls_wrong_hostname_is_rejected(ca: Issued, server: Issued, pem_file: PemWriter) -> None:
    outcome = _run_tls(
        _server_ctx(pem_file(server.combined_pem())), _client_ctx(ca.cert_pem), "pbx.example.com"
    )
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in outcome.client_error.verify_message


def test_tls_expired_client_certificate_is_rejected(
    ca: Issued, server: Issued, pem_file: PemWriter
) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    device = issue_certificate(ca, "bob", kind="client", not_before=start, days=10)
    server_ctx = _server_ctx(pem_file(server.combined_pem()), client_ca=ca)
    client_ctx = _client_ctx(ca.cert_pem, pem_file(device.combined_pem()))
    outcome = _run_tls(server_ctx, client_ctx, "localhost")
    error = outcome.server_error
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert error.verify_message == "certificate has expired"
    assert outcome.echoed == b""


def test_tls_self_signed_https_pem_pinned(pem_file: PemWriter) -> None:
    https = create_self_signed("localhost")
    load_ca_bundle(https.cert_pem)  # accepted as a pinned trust anchor
    outcome = _run_tls(
        _server_ctx(pem_file(https.combined_pem())), _client_ctx(https.cert_pem), "localhost"
    )
    assert (outcome.client_error, outcome.echoed) == (None, b"PING")


# --------------------------------------------------------------------------------------
# Inspection


def test_inspect_bundle_and_fingerprint(ca: Issued, server: Issued) -> None:
    infos = inspect_pem(server.combined_pem())
    assert [info.subject for info in infos] == ["CN=localhost", "CN=Test Root CA"]
    der = server.certificate().public_bytes(serialization.Encoding.DER)
    expected = ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())
    assert infos[0].sha256_fingerprint == expected
    assert infos[0].serial == format(server.certificate().serial_number, "X")
    assert infos[0].issuer == "CN=Test Root CA"
    assert infos[1].is_ca and infos[1].self_signed and not infos[0].self_signed


def test_inspect_der_certificate(server: Issued) -> None:
    der = server.certificate().public_bytes(serialization.Encoding.DER)
    assert inspect_pem(der)[0].subject == "CN=localhost"


def test_inspect_legacy_certificate() -> None:
    info = inspect_pem(LEGACY_SHA1_RSA1024_PEM)[0]
    assert (info.key_type, info.key_bits, info.signature_hash) == ("RSA 1024", 1024, "sha1")
    assert info.self_signed and not info.is_ca
    assert info.not_before == datetime(2026, 11, 28, 12, 28, 29, tzinfo=UTC)


def _broken_cert_body(cert_pem: bytes) -> bytes:
    lines = cert_pem.splitlines(keepends=True)
    return b"".join([lines[0], b"AAAA" + lines[1][4:], *lines[2:]])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "neither PEM nor DER"),
        (b"hello world\x00\xff", "neither PEM nor DER"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "truncated PEM"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a valid"),
    ],
)
def test_inspect_garbage(data: bytes, message: str) -> None:
    with pytest.raises(CertError, match=message):
        inspect_pem(data)


def test_inspect_corrupted_certificate(server: Issued) -> None:
    with pytest.raises(CertError, match="certificate #1"):
        inspect_pem(_broken_cert_body(server.cert_pem))


def test_inspect_keys_never_needs_secret_output(server: Issued) -> None:
    keys = inspect_keys(server.combined_pem())
    assert len(keys) == 1
    assert (keys[0].key_type, keys[0].encrypted, keys[0].matches) == ("EC P-256", False, 0)
    assert inspect_keys(server.cert_pem) == []
    encrypted = _encrypted_pkcs8(server)
    assert inspect_keys(server.cert_pem + encrypted)[0].encrypted


# --------------------------------------------------------------------------------------
# load_cert_and_key


def _encrypted_pkcs8(issued: Issued) -> bytes:
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def _encrypted_traditional(issued: Issued) -> bytes:
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"),
    )


def test_load_one_file_leaf_first(ca: Issued, server: Issued) -> None:
    certs, key = load_cert_and_key(server.combined_pem())
    assert certs == [server.certificate(), ca.certificate()]
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_load_reorders_leaf_to_front(ca: Issued, server: Issued) -> None:
    certs, _ = load_cert_and_key(server.key_pem + ca.cert_pem + server.cert_pem)
    assert certs == [server.certificate(), ca.certificate()]


def test_load_two_files(client: Issued) -> None:
    certs, key = load_cert_and_key(client.cert_pem, client.key_pem)
    assert certs == [client.certificate()]
    assert key.public_key() == client.certificate().public_key()


def test_load_rsa_traditional_key(ca: Issued) -> None:
    issued = issue_certificate(ca, "rsa", kind="client", key_type="rsa", rsa_bits=2048)
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    pkcs1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    _, loaded = load_cert_and_key(issued.cert_pem + pkcs1)
    assert isinstance(loaded, rsa.RSAPrivateKey)


def _ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("garbage", "not PEM"),
        ("mismatch", "does not match the certificate CN=localhost"),
        ("no_key", "no private key found"),
        ("no_cert", "no certificate found"),
        ("two_keys", "2 private keys found"),
        ("encrypted_pkcs8", "the private key is encrypted"),
        ("encrypted_traditional", "the private key is encrypted"),
        ("key_in_cert_file", "private key was given where only certificates are allowed"),
        ("cert_in_key_file", "something other than a private key"),
        ("ed25519", "unsupported private key type"),
        ("bad_key", "cannot be read"),
    ],
)
def test_load_cert_and_key_errors(server: Issued, client: Issued, case: str, message: str) -> None:
    cert, key = server.cert_pem, server.key_pem
    cases: dict[str, tuple[bytes, bytes | None]] = {
        "garbage": (b"\x00\x01garbage", None),
        "mismatch": (cert + client.key_pem, None),
        "no_key": (cert, None),
        "no_cert": (key, None),
        "two_keys": (cert + key + client.key_pem, None),
        "encrypted_pkcs8": (cert + _encrypted_pkcs8(server), None),
        "encrypted_traditional": (cert, _encrypted_traditional(server)),
        "key_in_cert_file": (cert + key, key),
        "cert_in_key_file": (cert, cert + key),
        "ed25519": (cert + _ed25519_pem(), None),
        "bad_key": (cert + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None),
    }
    pem, key_pem = cases[case]
    with pytest.raises(CertError, match=message):
        load_cert_and_key(pem, key_pem)


def test_traditional_encrypted_key_has_legacy_header(server: Issued) -> None:
    assert b"Proc-Type: 4,ENCRYPTED" in _encrypted_traditional(server)


# --------------------------------------------------------------------------------------
# load_ca_bundle


def test_ca_bundle_accepts_cas(ca: Issued) -> None:
    other = create_ca("Second CA", key_type="rsa", rsa_bits=2048)
    bundle = b"# comment lines are ignored\n" + ca.cert_pem + other.cert_pem
    assert load_ca_bundle(bundle) == [ca.certificate(), other.certificate()]


def test_ca_bundle_refuses_private_key(ca: Issued) -> None:
    with pytest.raises(CertError, match="a private key does not belong in a CA bundle"):
        load_ca_bundle(ca.cert_pem + ca.key_pem)


def test_ca_bundle_refuses_encrypted_key(ca: Issued) -> None:
    with pytest.raises(CertError, match="a private key does not belong in a CA bundle"):
        load_ca_bundle(ca.cert_pem + _encrypted_pkcs8(ca))


def test_ca_bundle_refuses_issued_leaf(ca: Issued, server: Issued) -> None:
    with pytest.raises(CertError, match=r"certificate #2 \(CN=localhost\) is not a CA"):
        load_ca_bundle(ca.cert_pem + server.cert_pem)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not PEM"),
        (b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "holds no certificate"),
    ],
)
def test_ca_bundle_empty(data: bytes, message: str) -> None:
    with pytest.raises(CertError, match=message):
        load_ca_bundle(data)


# --------------------------------------------------------------------------------------
# warnings_for


@pytest.fixture
def good_info() -> CertInfo:
    return CertInfo(
        subject="CN=pbx.example.com",
        issuer="CN=CA",
        serial="01",
        not_before=NOW - timedelta(days=10),
        not_after=NOW + timedelta(days=80),
        san_dns=["pbx.example.com"],
        san_ips=[],
        san_uris=[],
        key_type="EC P-256",
        key_bits=256,
        sha256_fingerprint="AA",
        is_ca=False,
        self_signed=False,
        eku=["serverAuth"],
        signature_hash="sha256",
    )


def test_no_warnings_for_good_certificate(good_info: CertInfo, server: Issued) -> None:
    assert warnings_for(good_info, NOW) == []
    assert warnings_for(inspect_pem(server.cert_pem)[0]) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"key_type": "RSA 1024", "key_bits": 1024}, "weak key: RSA 1024"),
        ({"key_type": "EC P-192", "key_bits": 192}, "weak key: EC P-192"),
        ({"not_after": NOW - timedelta(days=1)}, "expired on 2030-05-31 12:00:00 UTC"),
        ({"not_before": NOW + timedelta(hours=1)}, "not yet valid"),
        ({"not_after": NOW + timedelta(days=29)}, "expires within 30 days"),
        ({"san_dns": []}, "no subjectAltName"),
        ({"san_dns": ["*.example.com"]}, "wildcard name *.example.com"),
        ({"signature_hash": "sha1"}, "weak signature hash SHA-1"),
        ({"not_after": NOW + timedelta(days=400)}, "validity of 410 days exceeds 398"),
    ],
)
def test_single_warning(good_info: CertInfo, changes: dict[str, object], expected: str) -> None:
    found = warnings_for(dataclasses.replace(good_info, **changes), NOW)  # type: ignore[arg-type]
    assert len(found) == 1, found
    assert expected in found[0]


def test_ca_is_exempt_from_san_and_lifetime(good_info: CertInfo) -> None:
    ca_info = dataclasses.replace(
        good_info, is_ca=True, san_dns=[], eku=[], not_after=NOW + timedelta(days=3650)
    )
    assert warnings_for(ca_info, NOW) == []


def test_lifetime_limit_only_for_server_certificates(good_info: CertInfo) -> None:
    device = dataclasses.replace(
        good_info, eku=["clientAuth"], not_after=NOW + timedelta(days=3650)
    )
    assert warnings_for(device, NOW) == []
    no_eku = dataclasses.replace(good_info, eku=[], not_after=NOW + timedelta(days=3650))
    assert len(warnings_for(no_eku, NOW)) == 1


def test_strong_keys_are_not_flagged(good_info: CertInfo) -> None:
    for key_type, bits in (("RSA 2048", 2048), ("EC P-384", 384), ("Ed25519", 256)):
        info = dataclasses.replace(good_info, key_type=key_type, key_bits=bits)
        assert warnings_for(info, NOW) == []


def test_warnings_for_legacy_certificate() -> None:
    info = inspect_pem(LEGACY_SHA1_RSA1024_PEM)[0]
    found = warnings_for(info, datetime(2027, 6, 1, tzinfo=UTC))
    assert len(found) == 3
    assert found[0].startswith("weak key: RSA 1024")
    assert found[1].startswith("weak signature hash SHA-1")
    assert found[2].startswith("validity of 3650 days")
    expired = warnings_for(info, datetime(2037, 1, 1, tzinfo=UTC))
    assert "expired on 2036-11-25 12:28:29 UTC" in expired


def test_wildcard_and_missing_san_on_real_certificates(ca: Issued) -> None:
    wild = issue_certificate(ca, "w", kind="server", dns=["*.example.com"])
    assert any("RFC 5922" in w for w in warnings_for(inspect_pem(wild.cert_pem)[0]))
    bare = issue_certificate(ca, "001122334455", kind="client")
    assert any("no subjectAltName" in w for w in warnings_for(inspect_pem(bare.cert_pem)[0]))


# --------------------------------------------------------------------------------------
# Files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_secret_file_mode_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "https.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_secret_file(path, b"new secret")
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new secret"
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["https.pem"]


def test_write_public_file_mode_ignores_umask(tmp_path: Path) -> None:
    path = tmp_path / "sips.pem"
    old_umask = os.umask(0o077)
    try:
        write_public_file(path, b"cert")
    finally:
        os.umask(old_umask)
    assert (path.read_bytes(), _mode(path)) == (b"cert", 0o644)


def test_write_into_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_secret_file(tmp_path / "missing" / "ca.key", b"x")
    assert list(tmp_path.iterdir()) == []
