"""Signalling flows in a capture: plaintext SIP (which methods) or TLS (version, cipher suite).

SIP is found by its start line anywhere a message can begin: at the start of a UDP datagram
(RFC 3261 §18.3: one message per datagram) and along each reassembled TCP byte stream, where
messages are framed by Content-Length (RFC 3261 §18.3, compact form ``l``). The reader is
deliberately lenient — it must recognise other phones' messages, not judge them — so it only
needs a start line, header lines and the blank line.

TLS is recognised by its record header (RFC 8446 §5.1: content type 20-23, legacy version
3.x, length up to 2^14 + 2048). The handshake is read while it is in the clear: the
ClientHello's offered versions and SNI, the ServerHello's chosen cipher suite and, for
TLS 1.3, the ``supported_versions`` extension that carries the real version (RFC 8446
§4.2.1; the record and ServerHello ``legacy_version`` say 1.2). dpkt parses the hello bodies
(``dpkt.ssl``) and names the cipher suites (``dpkt.ssl_ciphersuites``). For TLS 1.2 and
older the server certificate is in the clear too and its subject is shown.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import dpkt
from cryptography import x509

from securephone.verify.pcap import Capture, Datagram, Endpoint, StreamChunk, TcpConnection

__all__ = [
    "SIP_START",
    "FlowKind",
    "SignallingReport",
    "SipFlow",
    "SipMessage",
    "TlsInfo",
    "analyze_tls",
    "find_signalling",
    "parse_sip_messages",
    "tls_version_name",
]

SIP_START = re.compile(
    rb"(?:[A-Z][A-Z-]{1,30} (?:sips?|tel|urn):[^ \r\n]{1,1024} SIP/2\.0|SIP/2\.0 [1-6]\d\d [^\r\n]{0,200})\r?\n"
)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_HEAD = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})", re.I | re.M)
_CONTENT_TYPE = re.compile(rb"^(?:content-type|c)[ \t]*:[ \t]*([^\r\n;]+)", re.I | re.M)
_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]+)", re.I | re.M)
_CSEQ = re.compile(rb"^cseq[ \t]*:[ \t]*\d+[ \t]+([A-Za-z-]+)", re.I | re.M)

TLS_VERSIONS = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
_TLS_CONTENT_TYPES = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
}
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
_HANDSHAKE_CLIENT_HELLO = 1
_HANDSHAKE_SERVER_HELLO = 2
_HANDSHAKE_CERTIFICATE = 11
_WEAK_CIPHER_WORDS = ("NULL", "EXPORT", "anon", "RC4", "_DES_", "DES40", "MD5")


class FlowKind(StrEnum):
    """How a signalling flow travels."""

    SIP_UDP = "SIP/UDP"
    SIP_TCP = "SIP/TCP"
    TLS = "TLS"


def tls_version_name(version: int | None) -> str:
    """``TLS 1.3`` for 0x0304, ``0x7f1c`` for drafts and unknown values, ``unknown`` for None."""
    if version is None:
        return "unknown"
    return TLS_VERSIONS.get(version, f"0x{version:04x}")


# --------------------------------------------------------------------------- SIP messages


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One plaintext SIP message seen on the wire (RFC 3261 §7)."""

    time: float
    src: Endpoint
    dst: Endpoint
    transport: str
    start_line: str
    method: str | None
    status: int | None
    call_id: str | None
    cseq_method: str | None
    content_type: str | None
    body: bytes = field(repr=False)

    @property
    def label(self) -> str:
        """``INVITE`` for a request, ``200 (INVITE)`` for a response."""
        if self.method is not None:
            return self.method
        return f"{self.status} ({self.cseq_method or '?'})"

    def sdp(self) -> bytes | None:
        """The SDP body (RFC 3264), also inside a multipart body; None when there is none."""
        kind = (self.content_type or "").lower()
        body = self.body
        if kind.startswith("application/sdp") or (not kind and body.startswith(b"v=0")):
            return body
        start = body.find(b"v=0")
        if start < 0 or "multipart" not in kind:
            return None
        end = body.find(b"\r\n--", start)
        return body[start : end if end >= 0 else len(body)]


def _text(match: re.Match[bytes] | None) -> str | None:
    return match.group(1).decode("utf-8", "replace").strip() if match else None


def _message_at(
    data: bytes, start: int, when: float, ends: tuple[Endpoint, Endpoint], transport: str
) -> tuple[SipMessage, int] | None:
    """Parse the message whose start line begins at ``start``; return it and its end offset."""
    line = SIP_START.match(data, start)
    if line is None:
        return None
    head_end = _HEADER_END.search(data, line.end() - 2, min(len(data), start + _MAX_HEAD))
    if head_end is None:
        return None
    head = data[start : head_end.start()]
    length_match = _CONTENT_LENGTH.search(head)
    body_start = head_end.end()
    if length_match is not None:
        body_end = min(len(data), body_start + int(length_match.group(1)))
    else:
        follower = SIP_START.search(data, body_start) if transport != "udp" else None
        body_end = follower.start() if follower else len(data)
    first = line.group(0).decode("utf-8", "replace").strip()
    method, status = _start_fields(first)
    message = SipMessage(
        time=when,
        src=ends[0],
        dst=ends[1],
        transport=transport,
        start_line=first,
        method=method,
        status=status,
        call_id=_text(_CALL_ID.search(head)),
        cseq_method=(_text(_CSEQ.search(head)) or "").upper() or None,
        content_type=_text(_CONTENT_TYPE.search(head)),
        body=data[body_start:body_end],
    )
    return message, body_end


def _start_fields(line: str) -> tuple[str | None, int | None]:
    if line.startswith("SIP/2.0 "):
        return None, int(line[8:11])
    return line.split(" ", 1)[0], None


def parse_sip_messages(
    data: bytes, ends: tuple[Endpoint, Endpoint], transport: str, times: StreamChunk | float
) -> list[SipMessage]:
    """Every SIP message in ``data``: one for a datagram, all along a stream chunk.

    On a stream, bytes that are not a message (a hole's other side, keep-alive CRLFs) are
    skipped up to the next start line.
    """
    found: list[SipMessage] = []
    pos = 0
    while pos < len(data):
        if transport == "udp" and pos > 0:
            break
        when = times if isinstance(times, float) else times.time_at(pos)
        parsed = _message_at(data, pos, when, ends, transport)
        if parsed is None:
            if transport == "udp":
                break
            nxt = SIP_START.search(data, pos + 1)
            if nxt is None:
                break
            pos = nxt.start()
            continue
        found.append(parsed[0])
        pos = max(parsed[1], pos + 1)
    return found


def count_sip_text(payloads: Iterable[bytes]) -> int:
    """How many SIP start lines appear anywhere in the payloads (not only at the start)."""
    return sum(len(SIP_START.findall(payload)) for payload in payloads)


# --------------------------------------------------------------------------- TLS


@dataclass(slots=True)
class TlsInfo:
    """What the visible part of a TLS connection tells (RFC 8446 §4.1, RFC 5246 §7.4)."""

    client_versions: list[int] = field(default_factory=list)
    client_legacy_version: int | None = None
    server_version: int | None = None
    cipher_suite: int | None = None
    cipher_suite_name: str | None = None
    server_name: str | None = None
    alpn: list[str] = field(default_factory=list)
    hello_retry: bool = False
    server_certificates: list[str] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    application_bytes: int = 0
    alerts: int = 0
    plaintext_after_handshake: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def version(self) -> int | None:
        """The negotiated version: ServerHello ``supported_versions``, else its legacy field."""
        return self.server_version

    @property
    def version_name(self) -> str:
        """e.g. ``TLS 1.3``; ``unknown`` when the handshake was not captured."""
        return tls_version_name(self.version)

    @property
    def handshake_seen(self) -> bool:
        """True when the ServerHello was captured."""
        return self.server_version is not None

    @property
    def weak_cipher(self) -> bool:
        """NULL, export, anonymous, RC4, DES or MD5-based suites (RFC 7465, RFC 8996)."""
        name = self.cipher_suite_name or ""
        return any(word in name for word in _WEAK_CIPHER_WORDS)

    @property
    def null_cipher(self) -> bool:
        """A suite that authenticates but does not encrypt (``*_WITH_NULL_*``)."""
        return "WITH_NULL" in (self.cipher_suite_name or "") or self.cipher_suite == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "version": self.version_name,
            "client_versions": [tls_version_name(v) for v in self.client_versions],
            "cipher_suite": self.cipher_suite_name,
            "cipher_suite_code": None
            if self.cipher_suite is None
            else f"0x{self.cipher_suite:04x}",
            "server_name": self.server_name,
            "alpn": self.alpn,
            "hello_retry": self.hello_retry,
            "server_certificates": self.server_certificates,
            "records": dict(self.records),
            "application_bytes": self.application_bytes,
            "alerts": self.alerts,
            "problems": list(self.problems),
        }


def looks_like_tls(data: bytes) -> bool:
    """True when ``data`` starts with a TLS record header (RFC 8446 §5.1)."""
    return (
        len(data) >= 5
        and data[0] in _TLS_CONTENT_TYPES
        and data[1] == 3
        and data[2] <= 4
        and struct.unpack_from("!H", data, 3)[0] <= 18432
    )


def _records(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(content type, legacy version, fragment) for each whole record; stops at garbage."""
    pos = 0
    while pos + 5 <= len(data) and looks_like_tls(data[pos : pos + 5]):
        ctype, version, length = struct.unpack_from("!BHH", data, pos)
        fragment = data[pos + 5 : pos + 5 + length]
        if len(fragment) < length:
            return
        yield ctype, version, fragment
        pos += 5 + length


def _handshake_messages(blob: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, body) for each handshake message in concatenated handshake fragments."""
    pos = 0
    while pos + 4 <= len(blob):
        kind = blob[pos]
        length = int.from_bytes(blob[pos + 1 : pos + 4], "big")
        if pos + 4 + length > len(blob):
            return
        yield kind, blob[pos + 4 : pos + 4 + length]
        pos += 4 + length


def analyze_tls(client_data: bytes, server_data: bytes) -> TlsInfo:
    """Read both directions of a TLS connection: records, hellos, certificates, volume."""
    info = TlsInfo()
    for data, from_client in ((client_data, True), (server_data, False)):
        handshake = _count_records(info, data)
        for kind, body in _handshake_messages(handshake):
            _handshake(info, kind, body, from_client)
    return info


def _count_records(info: TlsInfo, data: bytes) -> bytes:
    """Count record types; return the handshake bytes sent before encryption started."""
    handshake = bytearray()
    encrypted = False
    consumed = 0
    for ctype, _version, fragment in _records(data):
        consumed += 5 + len(fragment)
        name = _TLS_CONTENT_TYPES[ctype]
        info.records[name] = info.records.get(name, 0) + 1
        if ctype == 23:
            info.application_bytes += len(fragment)
            encrypted = True
        elif ctype == 20:
            encrypted = True
        elif ctype == 21:
            info.alerts += 1
        elif ctype == 22 and not encrypted:
            handshake += fragment
    if consumed < len(data):
        info.problems.append(f"{len(data) - consumed} bytes after the last whole TLS record")
        if SIP_START.search(data, consumed):
            info.plaintext_after_handshake = True
    return bytes(handshake)


def _handshake(info: TlsInfo, kind: int, body: bytes, from_client: bool) -> None:
    try:
        if kind == _HANDSHAKE_CLIENT_HELLO and from_client:
            _client_hello(info, dpkt.ssl.TLSClientHello(body))
        elif kind == _HANDSHAKE_SERVER_HELLO and not from_client:
            _server_hello(info, dpkt.ssl.TLSServerHello(body))
        elif kind == _HANDSHAKE_CERTIFICATE and not from_client:
            _certificates(info, dpkt.ssl.TLSCertificate(body))
    except (dpkt.UnpackError, dpkt.ssl.SSL3Exception, struct.error, ValueError, IndexError) as exc:
        info.problems.append(f"unreadable handshake message {kind}: {type(exc).__name__}")


def _extensions(hello: Any) -> dict[int, bytes]:
    return {int(kind): bytes(data) for kind, data in getattr(hello, "extensions", [])}


def _client_hello(info: TlsInfo, hello: Any) -> None:
    info.client_legacy_version = int(hello.version)
    ext = _extensions(hello)
    versions = ext.get(_EXT_SUPPORTED_VERSIONS)
    if versions:  # RFC 8446 §4.2.1: 1-byte list length, then 2-byte versions
        info.client_versions = [
            v
            for (v,) in struct.iter_unpack("!H", versions[1 : 1 + versions[0]])
            if v & 0x0F0F != 0x0A0A
        ]
    else:
        info.client_versions = [int(hello.version)]
    info.server_name = _server_name(ext.get(_EXT_SERVER_NAME))
    info.alpn = _alpn(ext.get(_EXT_ALPN))


def _server_name(data: bytes | None) -> str | None:
    """host_name from the server_name extension (RFC 6066 §3)."""
    if not data or len(data) < 5 or data[2] != 0:
        return None
    length = struct.unpack_from("!H", data, 3)[0]
    return data[5 : 5 + length].decode("ascii", "replace")


def _alpn(data: bytes | None) -> list[str]:
    """Protocol names from the ALPN extension (RFC 7301 §3.1)."""
    names: list[str] = []
    pos = 2
    while data and pos < len(data):
        length = data[pos]
        names.append(data[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    return names


def _server_hello(info: TlsInfo, hello: Any) -> None:
    ext = _extensions(hello)
    chosen = ext.get(_EXT_SUPPORTED_VERSIONS)
    version = (
        struct.unpack("!H", chosen[:2])[0] if chosen and len(chosen) >= 2 else int(hello.version)
    )
    if bytes(hello.random) == _HRR_RANDOM:  # RFC 8446 §4.1.3: a HelloRetryRequest
        info.hello_retry = True
        return
    info.server_version = version
    info.cipher_suite = int(hello.ciphersuite.code)
    info.cipher_suite_name = str(hello.ciphersuite.name)


def _certificates(info: TlsInfo, message: Any) -> None:
    for der in message.certificates:
        try:
            cert = x509.load_der_x509_certificate(bytes(der))
            info.server_certificates.append(cert.subject.rfc4514_string())
        except ValueError:
            info.server_certificates.append("(undecodable certificate)")


# --------------------------------------------------------------------------- flows


@dataclass(slots=True)
class SipFlow:
    """One signalling flow: a UDP endpoint pair or one TCP connection (plaintext or TLS)."""

    kind: FlowKind
    client: Endpoint
    server: Endpoint
    first_time: float
    messages: list[SipMessage] = field(default_factory=list)
    tls: TlsInfo | None = None
    bytes_client: int = 0
    bytes_server: int = 0
    note: str = ""

    @property
    def name(self) -> str:
        """``SIP/UDP 127.0.0.1:5070 ⇄ 127.0.0.1:5060``."""
        return f"{self.kind.value} {self.client} ⇄ {self.server}"

    @property
    def methods(self) -> list[str]:
        """Request methods seen, in order of first appearance."""
        return _unique(m.method for m in self.messages if m.method)

    @property
    def responses(self) -> list[str]:
        """Response labels seen, e.g. ``200 (INVITE)``, in order of first appearance."""
        return _unique(m.label for m in self.messages if m.status is not None)

    @property
    def call_ids(self) -> list[str]:
        """Call-IDs seen in plaintext."""
        return _unique(m.call_id for m in self.messages if m.call_id)

    @property
    def plaintext(self) -> bool:
        """True when SIP was readable on this flow."""
        return bool(self.messages)


def _unique(items: Iterable[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item is not None:
            seen.setdefault(item, None)
    return list(seen)


@dataclass(slots=True)
class SignallingReport:
    """Every signalling flow, plus SIP text found outside them and unclassified TCP."""

    flows: list[SipFlow]
    stray_sip_text: int
    other_tcp: list[str]
    sip_datagrams: set[int]

    @property
    def messages(self) -> list[SipMessage]:
        """All plaintext SIP messages in time order."""
        return sorted((m for f in self.flows for m in f.messages), key=lambda m: m.time)


def find_signalling(capture: Capture) -> SignallingReport:
    """Classify every SIP-bearing UDP pair and every TCP connection of the capture."""
    flows, sip_frames = _udp_flows(capture.datagrams)
    other: list[str] = []
    for conn in capture.connections:
        flow = _tcp_flow(conn)
        if flow is not None:
            flows.append(flow)
        elif conn.forward.chunks or conn.reverse.chunks:
            other.append(f"TCP {conn.client} ⇄ {conn.server}")
    stray = count_sip_text(d.payload for d in capture.datagrams if d.frame not in sip_frames)
    flows.sort(key=lambda f: f.first_time)
    return SignallingReport(flows, stray, other, sip_frames)


def _udp_flows(datagrams: list[Datagram]) -> tuple[list[SipFlow], set[int]]:
    flows: dict[frozenset[Endpoint], SipFlow] = {}
    frames: set[int] = set()
    for dgram in datagrams:
        found = parse_sip_messages(dgram.payload, (dgram.src, dgram.dst), "udp", dgram.time)
        if not found:
            continue
        frames.add(dgram.frame)
        key = frozenset((dgram.src, dgram.dst))
        flow = flows.get(key)
        if flow is None:
            client, server = _udp_roles(found[0], dgram)
            flow = flows[key] = SipFlow(FlowKind.SIP_UDP, client, server, dgram.time)
        flow.messages.extend(found)
        _count_bytes(flow, dgram.src, len(dgram.payload))
    return list(flows.values()), frames


def _udp_roles(message: SipMessage, dgram: Datagram) -> tuple[Endpoint, Endpoint]:
    """The first request's sender is the client; a response first means the reverse."""
    return (dgram.src, dgram.dst) if message.method else (dgram.dst, dgram.src)


def _count_bytes(flow: SipFlow, src: Endpoint, size: int) -> None:
    if src == flow.client:
        flow.bytes_client += size
    else:
        flow.bytes_server += size


def _tcp_flow(conn: TcpConnection) -> SipFlow | None:
    fwd, rev = conn.forward, conn.reverse
    first = (fwd.chunks[0].data if fwd.chunks else b"") or (
        rev.chunks[0].data if rev.chunks else b""
    )
    if not first:
        return None
    flow = SipFlow(FlowKind.SIP_TCP, conn.client, conn.server, conn.first_time)
    flow.bytes_client = sum(len(c.data) for c in fwd.chunks)
    flow.bytes_server = sum(len(c.data) for c in rev.chunks)
    if looks_like_tls(first):
        flow.kind = FlowKind.TLS
        flow.tls = analyze_tls(fwd.data, rev.data)
        flow.note = _tls_note(conn)
        return flow
    for stream in conn.streams():
        for chunk in stream.chunks:
            ends = (stream.src, stream.dst)
            flow.messages.extend(parse_sip_messages(chunk.data, ends, "tcp", chunk))
    flow.messages.sort(key=lambda m: m.time)
    return flow if flow.messages else None


def _tls_note(conn: TcpConnection) -> str:
    if 5061 in (conn.client.port, conn.server.port):
        return "port 5061 (SIP over TLS)"
    return "" if conn.saw_syn else "connection start not captured"
