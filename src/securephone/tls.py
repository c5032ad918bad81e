"""TLS for SIP (RFC 3261 §26, RFC 5630, RFC 5922): context builders, certificate name checks,
and failures explained in words a user can act on."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import ssl
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography import x509

log = logging.getLogger(__name__)

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
WEAK_VERSIONS = ("TLSv1", "TLSv1.1")
# TLS 1.2 suites: forward-secret AEAD only (RFC 7525 §4.2; no CBC, so no Lucky Thirteen).
# TLS 1.3 suites are all AEAD and are not affected by this string.
AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TlsConfigError(Exception):
    """The TLS settings cannot be used (missing file, bad PEM, ...)."""


@dataclass(frozen=True)
class TlsSettings:
    """What the phone's TLS needs, resolved to files."""

    ca_file: Path | None = None  # the imported trust bundle, sips.pem
    use_system_cas: bool = True
    verify_server: bool = True
    certificate: Path | None = None  # our device certificate (+ key when key_file is None)
    key_file: Path | None = None
    min_version: str = "TLSv1.2"
    ciphers: str | None = None
    keylog_file: Path | None = None
    require_client_cert: bool = False


def _apply_common(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: we say so ourselves, below
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = VERSIONS[settings.min_version]
    if settings.min_version in WEAK_VERSIONS:
        log.warning(
            "TLS floor lowered to %s by configuration: TLS 1.0/1.1 are obsolete (RFC 8996)",
            settings.min_version,
        )
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        ctx.set_ciphers(AEAD_CIPHERS)
    if settings.ciphers:
        try:
            ctx.set_ciphers(settings.ciphers)
        except ssl.SSLError:
            raise TlsConfigError(f"no usable cipher in {settings.ciphers!r}") from None
    if settings.keylog_file is not None:
        private_keylog(settings.keylog_file)
        ctx.keylog_filename = str(settings.keylog_file)
        log.warning("TLS key log is ON: session keys are written to %s", settings.keylog_file)
    if settings.certificate is not None:
        _load_chain(ctx, settings.certificate, settings.key_file)


def private_keylog(path: Path) -> None:
    """Create the TLS key log as the owner's alone (0600) before OpenSSL appends to it: OpenSSL
    would create it with the umask's mode (usually world-readable). TlsConfigError when it
    cannot be opened."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TlsConfigError(f"cannot open the TLS key log {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        pass
    finally:
        os.close(fd)


def non_aead_ciphers(ciphers: str) -> list[str]:
    """The TLS 1.2 suites an OpenSSL cipher string enables that are not AEAD (CBC, RC4 ...)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.set_ciphers(ciphers)
    except ssl.SSLError:
        return []
    return [
        c["name"] for c in ctx.get_ciphers() if not c.get("aead") and c["protocol"] != "TLSv1.3"
    ]


def _load_chain(ctx: ssl.SSLContext, certificate: Path, key_file: Path | None) -> None:
    try:
        ctx.load_cert_chain(str(certificate), str(key_file) if key_file else None)
    except FileNotFoundError:
        raise TlsConfigError(f"certificate file not found: {certificate}") from None
    except ssl.SSLError as exc:
        raise TlsConfigError(f"cannot use certificate {certificate}: {exc.reason or exc}") from None


def _load_trust(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    if settings.use_system_cas:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if settings.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(settings.ca_file))
        except FileNotFoundError:
            raise TlsConfigError(f"CA bundle not found: {settings.ca_file}") from None
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"cannot read CA bundle {settings.ca_file}: {exc.reason or exc}"
            ) from None


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """A client context: chain verified by OpenSSL, names checked by ``check_peer_name`` (RFC 5922)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = (
        False  # RFC 5922 rules differ from HTTPS ones: no wildcards, SIP URIs first
    )
    if settings.verify_server:
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_trust(ctx, settings)
    else:
        ctx.verify_mode = ssl.CERT_NONE
        log.warning("TLS server certificate verification is OFF: anyone can impersonate the server")
    _apply_common(ctx, settings)
    cast(Any, ctx)._msg_callback = _note_record  # what the server said, to explain a failure
    return ctx


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context for incoming SIP over TLS; it may require and verify client certificates."""
    if settings.certificate is None:
        raise TlsConfigError("a TLS listener needs a certificate ([tls] certificate)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply_common(ctx, settings)
    if settings.require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_trust(ctx, settings)
    return ctx


# -- RFC 5922 §7.1 / §7.2: matching the SIP domain against the server certificate ---------------------
def _sans(cert: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(kind), str(value)) for kind, value in cert.get("subjectAltName", ())]


def _common_names(cert: dict[str, Any]) -> list[str]:
    return [str(v) for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _uri_domain(uri: str) -> str | None:
    """The host of a sip:/sips: SAN URI with no user part (RFC 5922 §7.1)."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() not in ("sip", "sips") or "@" in rest:
        return None
    return rest.split(";", 1)[0].split(":", 1)[0].lower()


def check_peer_name(cert: dict[str, Any], target: str) -> str | None:
    """None when the certificate names ``target``; else why not (RFC 5922 §7.2).

    IP targets match IP SANs. Names: SAN URIs (sip:domain) first; then DNS SANs when no URI SAN
    exists; the subject CN only when there is no SAN at all. Wildcards never match (§7.2).
    """
    host = target.strip("[]").lower()
    sans = _sans(cert)
    if _is_ip(host):
        ips = [ipaddress.ip_address(v) for k, v in sans if k == "IP Address" and _is_ip(v)]
        ok = ipaddress.ip_address(host) in ips
        return None if ok else f"the certificate does not name the address {host}"
    uris = [d for k, v in sans if k == "URI" and (d := _uri_domain(v)) is not None]
    dns = [v.lower() for k, v in sans if k == "DNS"]
    names = uris or dns or ([] if sans else [c.lower() for c in _common_names(cert)])
    if host in names:
        return None
    shown = ", ".join(names) or "no names"
    return f"the certificate names {shown}, not {host} (RFC 5922: no wildcards)"


# -- what the server said during the handshake (RFC 8446 §4.3.2, §6), to explain failures -------------
_HANDSHAKE, _ALERT = 22, 21  # TLS record content types
_CERTIFICATE_REQUEST = 13  # handshake message type
_CLOSE_NOTIFY = 0  # alert description
_ALERT_NAMES = {
    40: "handshake_failure",
    42: "bad_certificate",
    46: "certificate_unknown",
    48: "unknown_ca",
    49: "access_denied",
    70: "protocol_version",
    80: "internal_error",
    116: "certificate_required",
}


@dataclass
class HandshakeNotes:
    """What one client connection received: a client certificate request, a close_notify, an alert."""

    client_cert_requested: bool = False
    close_notify: bool = False
    alert: int | None = None

    @property
    def alert_name(self) -> str:
        return _ALERT_NAMES.get(self.alert or 0, f"alert {self.alert}")


_NOTES: weakref.WeakKeyDictionary[Any, HandshakeNotes] = weakref.WeakKeyDictionary()


def _note_record(
    conn: Any, direction: str, version: Any, content_type: int, msg_type: int, data: bytes
) -> None:
    """OpenSSL's message callback: remember the few records that explain a later failure."""
    if direction != "read" or content_type not in (_HANDSHAKE, _ALERT):
        return
    if content_type == _HANDSHAKE and msg_type != _CERTIFICATE_REQUEST:
        return
    notes = _NOTES.setdefault(conn, HandshakeNotes())
    if content_type == _HANDSHAKE:
        notes.client_cert_requested = True
    elif msg_type == _CLOSE_NOTIFY:
        notes.close_notify = True
    else:
        notes.alert = int(msg_type)


def handshake_notes(sslobj: Any) -> HandshakeNotes:
    """The notes of a client connection (an empty record for one nothing was noted on)."""
    return _NOTES.setdefault(sslobj, HandshakeNotes())


def explain_close(notes: HandshakeNotes, *, received: int, sent: int, has_cert: bool) -> str:
    """Why a TLS connection we opened ended without an error, from what the server actually sent."""
    if received:
        return "the server closed the connection"
    if notes.client_cert_requested and not has_cert:
        return (
            "TLS: the server asked for a client certificate during the handshake, none is "
            "configured ([tls] certificate), and it then closed the connection"
        )
    if notes.alert is not None:
        return f"TLS: the server ended the connection with the alert {notes.alert_name}"
    how = "closed the TLS session" if notes.close_notify else "dropped the connection"
    return f"TLS: the server {how} without answering (after we sent {sent} bytes)"


def explain_lost(
    exc: BaseException, notes: HandshakeNotes, *, received: int, has_cert: bool
) -> str:
    """Why a TLS connection we opened failed with ``exc`` (a reset after a certificate request ...)."""
    if not received and notes.client_cert_requested and not has_cert:
        return (
            "TLS: the server asked for a client certificate during the handshake, none is "
            f"configured ([tls] certificate), and it then ended the connection ({explain(exc)})"
        )
    if not received and notes.alert is not None:
        return f"TLS: the server ended the connection with the alert {notes.alert_name}"
    return explain(exc)


# -- what happened, in words ----------------------------------------------------------------------------
_VERIFY_MESSAGES = {
    "certificate has expired": "the server certificate has expired",
    "certificate is not yet valid": "the server certificate is not valid yet",
    "unable to get local issuer certificate": "the server certificate was issued by an unknown CA (not in sips.pem or the system store)",
    "self-signed certificate": "the server certificate is self-signed and not trusted",
    "self signed certificate": "the server certificate is self-signed and not trusted",
    "self-signed certificate in certificate chain": "the server certificate was issued by an unknown CA (its chain ends at a CA not in sips.pem or the system store)",
    "self signed certificate in certificate chain": "the server certificate was issued by an unknown CA (its chain ends at a CA not in sips.pem or the system store)",
}


def explain(exc: BaseException) -> str:
    """One line for a TLS failure: unknown CA, expired, version mismatch, client cert demanded ..."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = str(exc.verify_message or "")
        return "TLS: " + _VERIFY_MESSAGES.get(
            message, f"certificate verification failed: {message}"
        )
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).upper()
        if "CERTIFICATE_REQUIRED" in reason:
            return "TLS: the server demanded a client certificate we could not give (configure [tls] certificate)"
        if "HANDSHAKE_FAILURE" in reason and "ALERT" in reason:
            return (
                "TLS: the server refused the handshake (alert handshake_failure): no cipher suite "
                "in common, or it wanted a client certificate"
            )
        if (
            "PROTOCOL_VERSION" in reason
            or "UNSUPPORTED_PROTOCOL" in reason
            or "NO_PROTOCOLS" in reason
        ):
            return "TLS: no common protocol version (the server offers only versions below our floor, or above its ceiling)"
        if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
            return "TLS: the server rejected our client certificate"
        return f"TLS: handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc)


@dataclass(frozen=True)
class PeerCertificate:
    """What a user sees of the other side's certificate."""

    subject: str
    issuer: str
    sha256: str
    not_after: str

    @classmethod
    def from_der(cls, der: bytes) -> PeerCertificate:
        cert = x509.load_der_x509_certificate(der)
        digest = hashlib.sha256(der).hexdigest().upper()
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
            not_after=cert.not_valid_after_utc.isoformat(),
        )


@dataclass(frozen=True)
class TlsInfo:
    """The TLS state of one connection, for summaries and status pages."""

    version: str
    cipher: str
    peer: PeerCertificate | None
    verified: bool

    @classmethod
    def from_ssl(cls, sslobj: ssl.SSLObject | ssl.SSLSocket, verified: bool) -> TlsInfo:
        der = sslobj.getpeercert(binary_form=True)
        cipher = sslobj.cipher()
        return cls(
            version=sslobj.version() or "?",
            cipher=cipher[0] if cipher else "?",
            peer=PeerCertificate.from_der(der) if der else None,
            verified=verified,
        )

    def to_dict(self) -> dict[str, Any]:
        peer = self.peer
        return {
            "version": self.version,
            "cipher": self.cipher,
            "verified": self.verified,
            "peer_subject": peer.subject if peer else None,
            "peer_issuer": peer.issuer if peer else None,
            "peer_sha256": peer.sha256 if peer else None,
        }
