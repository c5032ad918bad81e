"""Self-test of the Kamailio harness with hand-built SIP over UDP, TCP and TLS.

The requests are raw bytes (RFC 3261 §7) and the digest responses are computed
here with hashlib (RFC 2617 §3.2.2.1, ``qop=auth``), so the harness is checked
without the phone's own SIP stack.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import secrets
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import kamailio as harness
from .conftest import KamailioFactory, require_kamailio
from .kamailio import (
    LOOPBACK,
    Kamailio,
    KamailioError,
    LoggedSdp,
    TlsConfig,
    parse_ul_dump,
)

TIMEOUT = 5.0

# --------------------------------------------------------------------------- digest


def hash_hex(text: str, algorithm: str = "MD5") -> str:
    """Lower-case hex MD5 or SHA-256 of a UTF-8 string (RFC 7616 §3.4.1 ``H``)."""
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]
    return hashlib.new(name, text.encode()).hexdigest()


def digest_response(
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    algorithm: str = "MD5",
) -> str:
    """RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1 request-digest for ``qop=auth``."""
    ha1 = hash_hex(f"{user}:{realm}:{password}", algorithm)
    ha2 = hash_hex(f"{method}:{uri}", algorithm)
    return hash_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}", algorithm)


def parse_challenge(value: str) -> dict[str, str]:
    """Parameters of a ``Digest`` challenge (RFC 2617 §3.2.1)."""
    assert value.startswith("Digest "), value
    return {m[1].lower(): m[3] if m[3] is not None else m[4] for m in _PARAM_RE.finditer(value[7:])}


_PARAM_RE = re.compile(r'([A-Za-z-]+)=("([^"]*)"|([^,\s]+))')


def credentials(challenge: dict[str, str], user: str, password: str, method: str, uri: str) -> str:
    """An Authorization/Proxy-Authorization value answering ``challenge``."""
    cnonce = secrets.token_hex(8)
    realm, nonce = challenge["realm"], challenge["nonce"]
    algorithm = challenge.get("algorithm", "MD5")
    response = digest_response(
        user, realm, password, method, uri, nonce, "00000001", cnonce, algorithm
    )
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc=00000001, '
        f'cnonce="{cnonce}"'
    )


def test_digest_helper_matches_rfc2617_example() -> None:
    """RFC 2617 §3.5: Mufasa / "Circle Of Life" gives 6629fae4...; checks our helper."""
    got = digest_response(
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "00000001",
        "0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_digest_helper_matches_rfc7616_sha256_example() -> None:
    """RFC 7616 §3.9.1: Mufasa / "Circle of Life" with SHA-256 gives 753927fa...."""
    got = digest_response(
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "00000001",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        "SHA-256",
    )
    assert got == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


# --------------------------------------------------------------------------- raw SIP


@dataclass
class Message:
    """A parsed SIP message: start line, headers in order, body."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status(self) -> int:
        """Status code of a response."""
        assert self.start.startswith("SIP/2.0 "), self.start
        return int(self.start.split()[1])

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive)."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str:
        """The first value of header ``name``; fails the test if absent."""
        values = self.all(name)
        assert values, f"no {name} in {self.start}"
        return values[0]


def parse_message(data: bytes) -> Message:
    """Split one SIP message (RFC 3261 §7) into start line, headers and body."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return Message(lines[0], headers, body)


@dataclass
class Peer:
    """One SIP endpoint on 127.0.0.1 sending hand-built bytes over udp, tcp or tls."""

    kam: Kamailio
    transport: str
    user: str
    tls_context: ssl.SSLContext | None = None
    sock: socket.socket = field(init=False)
    buffer: bytes = b""
    cseq: int = 0
    call_id: str = field(default_factory=lambda: secrets.token_hex(8))
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    expires: int = 60
    domain: str = LOOPBACK
    last_challenge: Message | None = None

    def __post_init__(self) -> None:
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.settimeout(TIMEOUT)
        sock.bind((LOOPBACK, 0))
        if self.transport != "udp":
            sock.connect(self.kam.address(self.transport))
        if self.tls_context is not None:
            sock = self.tls_context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock

    @property
    def port(self) -> int:
        """Local port of the socket."""
        return int(self.sock.getsockname()[1])

    @property
    def contact(self) -> str:
        """Contact URI (for TCP/TLS a port nobody listens on: the proxy must use the flow)."""
        if self.transport == "udp":
            return f"sip:{self.user}@{LOOPBACK}:{self.port}"
        return f"sip:{self.user}@{LOOPBACK}:9;transport={self.transport}"

    def request(
        self, method: str, ruri: str, to_user: str, extra: tuple[str, ...] = (), body: str = ""
    ) -> bytes:
        """Build an out-of-dialog request from this peer (next CSeq, fresh branch)."""
        self.cseq += 1
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {LOOPBACK}:{self.port}"
            f";branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={self.tag}",
            f"To: <sip:{to_user}@{self.domain}>" if to_user else f"To: <{ruri}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <{self.contact}>",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def send(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send to the proxy (or to ``addr`` over UDP)."""
        if self.transport == "udp":
            self.sock.sendto(data, addr or self.kam.address("udp"))
        else:
            self.sock.sendall(data)

    def receive(self) -> tuple[Message, tuple[str, int]]:
        """Next SIP message and where it came from (stream framing by Content-Length)."""
        if self.transport == "udp":
            data, addr = self.sock.recvfrom(65535)
            return parse_message(data), addr
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                match = re.search(rb"(?im)^(content-length|l)\s*:\s*(\d+)", head)
                length = int(match[2]) if match else 0
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    return parse_message(head + sep + rest[:length]), self.kam.address("tcp")
            chunk = self.sock.recv(65535)
            assert chunk, "connection closed by Kamailio"
            self.buffer += chunk

    def final(self) -> Message:
        """The next final (non-1xx) response."""
        while True:
            msg, _ = self.receive()
            if msg.start.startswith("SIP/2.0 ") and msg.status >= 200:
                return msg

    def authenticate(
        self, method: str, ruri: str, to_user: str, password: str, body: str = ""
    ) -> Message | None:
        """Send a request and answer a 401/407 challenge once (without awaiting the result).

        Returns the first final response if it was not a challenge, else None.
        """
        self.send(self.request(method, ruri, to_user, self._expires(method), body))
        first = self.final()
        if first.status not in (401, 407):
            return first
        self.last_challenge = first
        header = "WWW-Authenticate" if first.status == 401 else "Proxy-Authenticate"
        reply = "Authorization" if first.status == 401 else "Proxy-Authorization"
        creds = credentials(parse_challenge(first.get(header)), self.user, password, method, ruri)
        extra = (*self._expires(method), f"{reply}: {creds}")
        self.send(self.request(method, ruri, to_user, extra, body))
        return None

    def with_auth(
        self, method: str, ruri: str, to_user: str, password: str, body: str = ""
    ) -> Message:
        """:meth:`authenticate`, then the final response."""
        return self.authenticate(method, ruri, to_user, password, body) or self.final()

    def _expires(self, method: str) -> tuple[str, ...]:
        return (f"Expires: {self.expires}",) if method == "REGISTER" else ()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def register(peer: Peer, password: str, expires: int = 60) -> Message:
    """REGISTER ``peer`` at the proxy (answering the 401 once)."""
    peer.expires = expires
    return peer.with_auth("REGISTER", f"sip:{LOOPBACK}", peer.user, password)


def answer(peer: Peer, request: Message, status: str, body: str = "") -> bytes:
    """Build a response to ``request`` (RFC 3261 §8.2.6) with a To tag and our Contact."""
    copied = [(k, v) for k, v in request.headers if k.lower() in ("via", "record-route")]
    to = request.get("To") + ("" if ";tag=" in request.get("To") else f";tag={peer.tag}")
    lines = [f"SIP/2.0 {status}", *(f"{k}: {v}" for k, v in copied)]
    lines += [f"From: {request.get('From')}", f"To: {to}", f"Call-ID: {request.get('Call-ID')}"]
    lines += [f"CSeq: {request.get('CSeq')}", f"Contact: <{peer.contact}>"]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sdp(user: str, port: int) -> str:
    """A minimal audio offer/answer pinned to 127.0.0.1 (RFC 4566 §5)."""
    return (
        f"v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Collects peers so their sockets are closed after the test."""
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


# --------------------------------------------------------------------------- tests


USERS = {"alice": "alice-pw", "bob": "b0b!secret"}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_then_unregister(
    kamailio_factory: KamailioFactory, peers: list[Peer], transport: str
) -> None:
    kam = kamailio_factory(users=USERS)
    alice = Peer(kam, transport, "alice")
    peers.append(alice)
    alice.send(alice.request("REGISTER", f"sip:{LOOPBACK}", "alice", ("Expires: 60",)))
    challenge = alice.final()
    assert challenge.status == 401
    params = parse_challenge(challenge.get("WWW-Authenticate"))
    assert params["realm"] == LOOPBACK
    assert "auth" in params["qop"].split(",")

    ok = register(alice, USERS["alice"])
    assert ok.status == 200, ok.start
    contacts = kam.wait_registered("sip:alice@127.0.0.1")
    assert [c["contact"] for c in contacts] == [alice.contact]
    assert contacts[0]["aor"] == "alice"
    assert 0 < contacts[0]["expires"] <= 60
    if transport == "tcp":  # fix_nated_register(): the flow, not the Contact port
        assert contacts[0]["received"] == f"sip:{LOOPBACK}:{alice.port};transport=tcp"
    else:
        assert contacts[0]["received"] is None

    bye = register(alice, USERS["alice"], expires=0)
    assert bye.status == 200, bye.start
    kam.wait_unregistered("alice")
    assert kam.ul_dump() == []


def test_wrong_password_is_refused(kamailio_factory: KamailioFactory, peers: list[Peer]) -> None:
    kam = kamailio_factory(users=USERS)
    alice = Peer(kam, "udp", "alice")
    peers.append(alice)
    refused = register(alice, "not-the-password")
    assert refused.status == 403
    assert kam.ul_dump() == []
    mallory = Peer(kam, "udp", "mallory")
    peers.append(mallory)
    assert register(mallory, "anything").status == 403
    assert "HARNESS-AUTH REGISTER" in kam.log_text()


def test_options_to_proxy_gets_200(kamailio_factory: KamailioFactory, peers: list[Peer]) -> None:
    kam = kamailio_factory(users=USERS)
    for transport in ("udp", "tcp"):
        peer = Peer(kam, transport, "alice")
        peers.append(peer)
        peer.send(peer.request("OPTIONS", f"sip:{LOOPBACK}:{kam.port}", ""))
        assert peer.final().status == 200
    assert kam.ping("udp").startswith("SIP/2.0 200")


def test_invite_is_challenged_relayed_and_routed(
    kamailio_factory: KamailioFactory, peers: list[Peer]
) -> None:
    """407 for a local caller, relay to the registered callee over UDP, BYE via Route."""
    kam = kamailio_factory(users=USERS)
    bob = Peer(kam, "udp", "bob")
    alice = Peer(kam, "tcp", "alice")
    peers += [bob, alice]
    assert register(bob, USERS["bob"]).status == 200

    target = f"sip:bob@{LOOPBACK}"
    assert alice.authenticate("INVITE", target, "bob", USERS["alice"], sdp("alice", 40000)) is None
    assert alice.last_challenge is not None and alice.last_challenge.status == 407

    invite, proxy = bob.receive()
    assert invite.start == f"INVITE {bob.contact} SIP/2.0"
    assert invite.all("Proxy-Authorization") == []  # consume_credentials()
    assert invite.all("Record-Route"), "INVITE must be record-routed"
    bob.send(answer(bob, invite, "200 OK", sdp("bob", 40002)), proxy)
    ok = alice.final()
    assert ok.status == 200
    assert ";alias=" not in ok.get("Contact")  # bob is on UDP without NAT

    route = list(reversed(ok.all("Record-Route")))
    to = ok.get("To")
    for method in ("ACK", "BYE"):
        cseq = alice.cseq if method == "ACK" else alice.cseq + 1
        alice.cseq = cseq
        lines = [
            f"{method} {bob.contact} SIP/2.0",
            f"Via: SIP/2.0/TCP {LOOPBACK}:{alice.port};branch=z9hG4bK{secrets.token_hex(8)}",
            "Max-Forwards: 70",
            *(f"Route: {r}" for r in route),
            f"From: <sip:alice@{LOOPBACK}>;tag={alice.tag}",
            f"To: {to}",
            f"Call-ID: {alice.call_id}",
            f"CSeq: {cseq} {method}",
            "Content-Length: 0",
        ]
        alice.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        got, proxy = bob.receive()
        assert got.start.startswith(f"{method} "), got.start
    bob.send(answer(bob, got, "200 OK"), proxy)
    assert alice.final().status == 200

    logged = kam.logged_sdp()
    firsts = [entry.first for entry in logged]
    assert "INVITE" in firsts and "200 INVITE" in firsts
    assert all(entry.connection_addresses() == ["127.0.0.1"] for entry in logged)
    assert {entry.call_id for entry in logged} == {alice.call_id}


def test_options_and_message_to_user_need_auth(
    kamailio_factory: KamailioFactory, peers: list[Peer]
) -> None:
    kam = kamailio_factory(users=USERS)
    bob = Peer(kam, "udp", "bob")
    alice = Peer(kam, "udp", "alice")
    carol = Peer(kam, "udp", "carol")  # not in the user table: anonymous inbound caller
    peers += [bob, alice, carol]
    assert register(bob, USERS["bob"]).status == 200
    target = f"sip:bob@{LOOPBACK}"

    for method in ("OPTIONS", "MESSAGE"):
        alice.send(alice.request(method, target, "bob"))
        assert alice.final().status == 407
        refused = alice.with_auth(method, target, "bob", "wrong-password")
        assert refused.status == 403

    for method in ("OPTIONS", "MESSAGE"):
        assert alice.authenticate(method, target, "bob", USERS["alice"]) is None
        request, proxy = bob.receive()
        assert request.start == f"{method} {bob.contact} SIP/2.0"
        assert request.all("Proxy-Authorization") == []
        bob.send(answer(bob, request, "200 OK"), proxy)
        assert alice.final().status == 200

    carol.send(carol.request("MESSAGE", target, "bob"))
    request, proxy = bob.receive()
    assert request.start == f"MESSAGE {bob.contact} SIP/2.0"
    bob.send(answer(bob, request, "200 OK"), proxy)
    assert carol.final().status == 200

    assert (
        alice.with_auth("OPTIONS", f"sip:nobody@{LOOPBACK}", "nobody", USERS["alice"]).status == 404
    )


def test_localhost_domain_with_sha256_digest(
    kamailio_factory: KamailioFactory, peers: list[Peer]
) -> None:
    kam = kamailio_factory(users=USERS, domain="localhost", algorithm="SHA-256")
    bob = Peer(kam, "udp", "bob", domain="localhost")
    peers.append(bob)
    bob.send(bob.request("REGISTER", "sip:localhost", "bob", ("Expires: 30",)))
    challenge = parse_challenge(bob.final().get("WWW-Authenticate"))
    assert (challenge["realm"], challenge["algorithm"]) == ("localhost", "SHA-256")
    assert bob.with_auth("REGISTER", "sip:localhost", "bob", USERS["bob"]).status == 200
    [contact] = kam.wait_registered("sip:bob@localhost")
    assert contact["contact"] == bob.contact


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Pki:
    """A throw-away CA with a server leaf (and a client leaf for alice)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca[0].subject if ca else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if ca is None:
        usage_ext = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage_ext, critical=True)
    signer = ca[1] if ca else key
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.with_suffix(".key").write_bytes(pem)
        os.chmod(path.with_suffix(".key"), 0o600)
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """ECDSA P-256 CA, server leaf (SAN DNS:localhost, IP:127.0.0.1), client leaf; 90 days."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("securephone test CA", ca_key, None, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, (ca_cert, ca_key), ExtendedKeyUsageOID.SERVER_AUTH)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("alice", client_key, (ca_cert, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH)
    ca = _write(tmp_path / "ca.pem", ca_cert, None)
    server_path = _write(tmp_path / "server.pem", server, server_key)
    client_path = _write(tmp_path / "client.pem", client, client_key)
    return Pki(
        ca,
        server_path,
        server_path.with_suffix(".key"),
        client_path,
        client_path.with_suffix(".key"),
    )


def _client_context(pki: Pki, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca))
    if with_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def test_tls_register_and_mutual_tls(
    kamailio_factory: KamailioFactory, peers: list[Peer], pki: Pki
) -> None:
    """REGISTER over TLS (hostname verified); mutual TLS refuses a client without a cert."""
    plain = kamailio_factory(users=USERS, tls=TlsConfig(pki.server_cert, pki.server_key, pki.ca))
    alice = Peer(plain, "tls", "alice", _client_context(pki, with_cert=False))
    peers.append(alice)
    assert register(alice, USERS["alice"]).status == 200
    [contact] = plain.wait_registered("alice")
    assert contact["received"] == f"sip:{LOOPBACK}:{alice.port};transport=tls"
    assert contact["socket"] == f"tls:{LOOPBACK}:{plain.tls_port}"
    assert "HARNESS-TLS REGISTER" in plain.log_text()
    assert "version=TLSv1.3" in plain.log_text()

    mutual = kamailio_factory(
        users=USERS,
        tls=TlsConfig(pki.server_cert, pki.server_key, pki.ca, require_client_cert=True),
    )
    bob = Peer(mutual, "tls", "alice", _client_context(pki, with_cert=True))
    peers.append(bob)
    assert register(bob, USERS["alice"]).status == 200
    assert "verified=1 cn=alice" in mutual.log_text()

    anonymous = Peer(mutual, "tls", "alice", _client_context(pki, with_cert=False))
    peers.append(anonymous)
    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
        anonymous.send(anonymous.request("OPTIONS", f"sip:{LOOPBACK}", ""))
        anonymous.final()  # TLS 1.3: the missing certificate is reported on first read


def _tls_client(pki: Pki, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = _client_context(pki, with_cert=False)
    context.minimum_version = version
    context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at level 1+
    return context


def _handshake(kam: Kamailio, context: ssl.SSLContext) -> str | None:
    """Negotiated TLS version, or None when the server refuses the handshake."""
    with socket.create_connection(kam.address("tls"), timeout=TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version()
        except (ssl.SSLError, ConnectionError):
            return None


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_old_tls_server_emulation(kamailio_factory: KamailioFactory, pki: Pki) -> None:
    """``min_tls="TLSv1"`` accepts only TLS 1.0; the default accepts only TLS 1.2 and up."""
    try:
        _tls_client(pki, ssl.TLSVersion.TLSv1)
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"this OpenSSL cannot offer TLS 1.0: {exc}")
    old = kamailio_factory(
        users=USERS, tls=TlsConfig(pki.server_cert, pki.server_key, pki.ca, min_tls="TLSv1")
    )
    current = kamailio_factory(users=USERS, tls=TlsConfig(pki.server_cert, pki.server_key))
    assert _handshake(old, _tls_client(pki, ssl.TLSVersion.TLSv1)) == "TLSv1"
    assert _handshake(old, _tls_client(pki, ssl.TLSVersion.TLSv1_2)) is None
    assert _handshake(current, _tls_client(pki, ssl.TLSVersion.TLSv1_1)) is None
    assert _handshake(current, _tls_client(pki, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


# --------------------------------------------------------------------------- harness


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    require_kamailio()
    with Kamailio(tmp_path / "k", users={"alice": "pw"}) as kam:
        assert kam.pid is not None and kam.wrapper_pid is not None
        pids = [kam.pid, kam.wrapper_pid]
        config = str(kam.config_path)
        ctl = kam.ctl_socket
        assert ctl.exists()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        assert config.encode() not in cmdline, f"process {pid} survived stop()"
    survivors = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and config.encode() in _cmdline(p)
    ]
    assert survivors == []
    assert not ctl.exists()


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_port_clash_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port taken between allocation and bind (parallel runs) makes start() retry."""
    require_kamailio()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind((LOOPBACK, 0))
    busy = int(taken.getsockname()[1])
    offered = iter([busy])
    real = harness.free_port
    monkeypatch.setattr(
        harness, "free_port", lambda *args, **kwargs: next(offered, None) or real(*args, **kwargs)
    )
    try:
        with Kamailio(tmp_path / "k", users={"alice": "pw"}) as kam:
            assert kam.port != busy
            assert "Address already in use" in kam.log_text()
            assert kam.ping("udp").startswith("SIP/2.0 200")
    finally:
        taken.close()


def test_invalid_config_is_reported(tmp_path: Path) -> None:
    require_kamailio()
    kam = Kamailio(tmp_path / "k", users={"alice": "pw"})
    try:
        kam.write_config()
        kam.check_config()  # the generated script is valid
        with kam.config_path.open("a") as cfg:
            cfg.write("\nroute[BROKEN] { no_such_function(); }\n")
        with pytest.raises(KamailioError, match="no_such_function"):
            kam.check_config()
    finally:
        kam.stop()


def test_bad_parameters_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Kamailio(tmp_path, users={'al"ice': "pw"})
    with pytest.raises(ValueError):
        Kamailio(tmp_path, users={"alice": 'p"w'})
    with pytest.raises(ValueError):
        Kamailio(tmp_path, tls=TlsConfig(tmp_path, tmp_path, min_tls="SSLv3"))


UL_DUMP_SAMPLE = """{
\tDomains: {
\t\tDomain: {
\t\t\tDomain: location
\t\t\tAoRs: {
\t\t\t\tInfo: {
\t\t\t\t\tAoR: bob
\t\t\t\t\tContacts: {
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:bob@127.0.0.1:5070;transport=tls
\t\t\t\t\t\t\tExpires: 599
\t\t\t\t\t\t\tUser-Agent: baresip v1.0.0
\t\t\t\t\t\t\tReceived: sip:127.0.0.1:41234;transport=tls
\t\t\t\t\t\t\tSocket: tls:127.0.0.1:5061
\t\t\t\t\t\t}
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:bob@127.0.0.1:5072
\t\t\t\t\t\t\tExpires: permanent
\t\t\t\t\t\t\tReceived: [not set]
\t\t\t\t\t\t}
\t\t\t\t\t}
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""


def test_parse_ul_dump_sample() -> None:
    first, second = parse_ul_dump(UL_DUMP_SAMPLE)
    assert first["aor"] == "bob" and second["aor"] == "bob"
    assert first["contact"] == "sip:bob@127.0.0.1:5070;transport=tls"
    assert first["expires"] == 599
    assert first["received"] == "sip:127.0.0.1:41234;transport=tls"
    assert first["user_agent"] == "baresip v1.0.0"
    assert second["expires"] == -1 and second["received"] is None


def test_logged_sdp_connection_addresses() -> None:
    entry = LoggedSdp(
        "reply",
        "200 INVITE",
        "x",
        "v=0\r\nc=IN IP4 10.1.2.3\r\nm=audio 4 RTP/AVP 0\r\nc=IN IP4 127.0.0.1/127\r\n",
    )
    assert entry.connection_addresses() == ["10.1.2.3", "127.0.0.1"]
