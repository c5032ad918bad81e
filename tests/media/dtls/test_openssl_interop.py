"""Our DTLS-SRTP endpoint against OpenSSL's own s_server and s_client over real UDP sockets.

Both sides print the RFC 5764 §4.2 keying material (``-keymatexport EXTRACTOR-dtls_srtp``):
client key | server key | client salt | server salt. Comparing it with the keys our endpoint
hands to SRTP proves the exporter call and the split are right, in both roles. s_server also
answers with a HelloVerifyRequest cookie (RFC 6347 §4.2.1), which our client must get through.
"""

from __future__ import annotations

import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securephone.media.dtls import (
    DtlsCertificate,
    DtlsConnected,
    DtlsEndpoint,
    DtlsRole,
    SrtpProfile,
)
from securephone.pki import create_media_certificate
from tests.media.dtls.helpers import certificate

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl program"),
]

LIMIT = 15.0
_KEYING = re.compile(r"Keying material:\s*([0-9A-Fa-f]+)")
_PROFILE = re.compile(r"SRTP Extension negotiated, profile=(\S+)")
_PROFILES = [SrtpProfile.AES128_CM_SHA1_80, SrtpProfile.AEAD_AES_128_GCM]


class Peer:
    """An openssl process whose output lines are read by a thread into a queue."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str], deadline: float) -> re.Match[str]:
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if found := pattern.search(line):
                return found
        raise AssertionError("openssl did not print it; its output:\n" + "".join(self.seen))

    def stop(self) -> None:
        self.process.kill()  # by its own PID; openssl was started directly, no wrapper
        self.process.wait(timeout=5)


@pytest.fixture
def openssl_cert(tmp_path: Path) -> Iterator[tuple[Path, Path, DtlsCertificate]]:
    issued = create_media_certificate("openssl peer")
    cert, key = tmp_path / "peer.pem", tmp_path / "peer.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    yield cert, key, DtlsCertificate.from_issued(issued)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def drive(endpoint: DtlsEndpoint, sock: socket.socket) -> DtlsConnected:
    """Run the endpoint on a real socket and the real clock until it connects."""
    start = time.monotonic()
    sock.settimeout(0.05)
    while True:
        now = time.monotonic()
        assert now - start < LIMIT, "no DTLS handshake with openssl"
        for data, address in endpoint.datagrams_to_send():
            sock.sendto(data, address)
        event = endpoint.next_event()
        if event is not None:
            assert isinstance(event, DtlsConnected), event
            return event
        try:
            data, source = sock.recvfrom(65535)
            endpoint.receive(data, source, time.monotonic())
        except TimeoutError:
            pass
        timer = endpoint.get_timer()
        if timer is not None and time.monotonic() >= timer:
            endpoint.handle_timer(time.monotonic())


def exported(event: DtlsConnected) -> str:
    """Our keys in the exporter's layout (RFC 5764 §4.2), as OpenSSL prints them."""
    keys = event.keys
    if event.role is DtlsRole.CLIENT:
        parts = (keys.local_key, keys.remote_key, keys.local_salt, keys.remote_salt)
    else:
        parts = (keys.remote_key, keys.local_key, keys.remote_salt, keys.local_salt)
    return b"".join(parts).hex().upper()


def negotiated(peer: Peer) -> str | None:
    """The profile openssl says it negotiated (printed before the keying material)."""
    found = (_PROFILE.search(line) for line in peer.seen)
    return next((match.group(1) for match in found if match), None)


def _common_args(cert: Path, key: Path, profile: SrtpProfile) -> list[str]:
    length = 2 * profile.suite.key_salt_length
    return [
        "-dtls1_2",
        "-cert",
        str(cert),
        "-key",
        str(key),
        "-use_srtp",
        profile.value,
        "-keymatexport",
        "EXTRACTOR-dtls_srtp",
        "-keymatexportlen",
        str(length),
    ]


@pytest.mark.parametrize("profile", _PROFILES, ids=lambda p: p.value)
def test_our_client_against_openssl_s_server(
    profile: SrtpProfile, openssl_cert: tuple[Path, Path, DtlsCertificate]
) -> None:
    cert, key, peer = openssl_cert
    port = free_udp_port()
    args = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-verify", "1"]
    server = Peer(args + _common_args(cert, key, profile))
    try:
        deadline = time.monotonic() + LIMIT
        server.wait_for(re.compile(r"ACCEPT"), deadline)
        endpoint = DtlsEndpoint(
            DtlsRole.CLIENT,
            certificate("alice"),
            remote=("127.0.0.1", port),
            remote_fingerprints=[peer.fingerprint()],
            profiles=[profile],
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            endpoint.start(time.monotonic())
            event = drive(endpoint, sock)
            theirs = server.wait_for(_KEYING, deadline).group(1).upper()
        assert event.profile is profile
        assert theirs == exported(event)
        assert negotiated(server) == profile.value
    finally:
        server.stop()


@pytest.mark.parametrize("profile", _PROFILES, ids=lambda p: p.value)
def test_openssl_s_client_against_our_server(
    profile: SrtpProfile, openssl_cert: tuple[Path, Path, DtlsCertificate]
) -> None:
    cert, key, peer = openssl_cert
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        endpoint = DtlsEndpoint(
            DtlsRole.SERVER,
            certificate("bob"),
            remote_fingerprints=[peer.fingerprint()],
            profiles=[profile],
        )
        endpoint.start(time.monotonic())
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
        client = Peer(args + _common_args(cert, key, profile))
        try:
            event = drive(endpoint, sock)
            theirs = client.wait_for(_KEYING, time.monotonic() + LIMIT).group(1).upper()
        finally:
            client.stop()
    assert event.profile is profile
    assert theirs == exported(event)
    assert negotiated(client) == profile.value


def pump_until(endpoint: DtlsEndpoint, sock: socket.socket, until: int) -> None:
    """Keep the endpoint running until it has received ``until`` datagrams in all."""
    start = time.monotonic()
    while endpoint.stats.datagrams_received < until:
        assert time.monotonic() - start < LIMIT, "openssl sent nothing more"
        for data, address in endpoint.datagrams_to_send():
            sock.sendto(data, address)
        try:
            data, source = sock.recvfrom(65535)
            endpoint.receive(data, source, time.monotonic())
        except TimeoutError:
            pass
    for data, address in endpoint.datagrams_to_send():
        sock.sendto(data, address)


def test_openssl_data_and_renegotiation_are_refused_and_the_association_lives_on(
    openssl_cert: tuple[Path, Path, DtlsCertificate],
) -> None:
    cert, key, peer = openssl_cert
    profile = SrtpProfile.AES128_CM_SHA1_80
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        endpoint = DtlsEndpoint(
            DtlsRole.SERVER, certificate("bob"), remote_fingerprints=[peer.fingerprint()]
        )
        endpoint.start(time.monotonic())
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
        client = Peer(args + _common_args(cert, key, profile))
        try:
            drive(endpoint, sock)
            client.wait_for(_KEYING, time.monotonic() + LIMIT)
            assert client.process.stdin is not None
            client.process.stdin.write("hello\n")  # s_client sends a line as application data
            client.process.stdin.flush()
            pump_until(endpoint, sock, endpoint.stats.datagrams_received + 1)
            assert endpoint.stats.dropped_application_data == 1
            client.process.stdin.write("R\n")  # s_client: renegotiate
            client.process.stdin.flush()
            client.wait_for(re.compile("RENEGOTIATING"), time.monotonic() + LIMIT)
            pump_until(endpoint, sock, endpoint.stats.datagrams_received + 1)
        finally:
            client.stop()
    assert endpoint.state.value == "connected"
    assert endpoint.next_event() is None


def test_openssl_client_with_another_certificate_fails_on_the_fingerprint(
    openssl_cert: tuple[Path, Path, DtlsCertificate],
) -> None:
    cert, key, _peer = openssl_cert
    profile = SrtpProfile.AES128_CM_SHA1_80
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        endpoint = DtlsEndpoint(
            DtlsRole.SERVER,
            certificate("bob"),
            remote_fingerprints=[certificate("mallory").fingerprint()],
        )
        endpoint.start(time.monotonic())
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
        client = Peer(args + _common_args(cert, key, profile))
        try:
            with pytest.raises(AssertionError, match="FINGERPRINT_MISMATCH"):
                drive(endpoint, sock)
            # OpenSSL turns a refused self-signed certificate into an unknown_ca alert.
            client.wait_for(re.compile(r"alert unknown ca"), time.monotonic() + LIMIT)
        finally:
            client.stop()
    assert endpoint.state.value == "failed"
