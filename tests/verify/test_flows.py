"""Signalling flows: plaintext SIP over UDP/TCP (methods seen) and TLS (version, cipher suite).

The TLS cases use real handshakes: Python's ssl client and server on 127.0.0.1, sending SIP
inside TLS while :class:`securephone.capture.PacketCapture` records the loopback. The version
and cipher suite the analyser reads from the wire must be what OpenSSL negotiated.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest

from securephone.capture import CaptureUnavailable, PacketCapture
from securephone.pki.certs import create_ca, issue_certificate
from securephone.verify.flows import (
    FlowKind,
    analyze_tls,
    find_signalling,
    looks_like_tls,
    parse_sip_messages,
)
from securephone.verify.pcap import Endpoint, parse_capture, read_capture
from securephone.verify.report import Verdict, analyze_capture

from .synth import LO, Packet, pcap_bytes, sip_invite, sip_ok, sip_request, tcp_segments

A, B = (LO, 5070), (LO, 5060)
ENDS = (Endpoint(*A), Endpoint(*B))


def test_sip_over_udp_methods_and_responses() -> None:
    packets = [
        Packet(1.0, A, B, sip_invite(A, B, 30000)),
        Packet(1.1, B, A, sip_ok(A, B, 30002)),
        Packet(1.2, A, B, sip_request("ACK", A, B, 1)),
        Packet(2.0, B, A, sip_request("BYE", B, A, 5)),
        Packet(2.1, A, B, b"SIP/2.0 200 OK\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n"),
        Packet(2.2, A, B, b"\r\n\r\n"),  # keep-alive: not a message
    ]
    report = find_signalling(parse_capture(pcap_bytes(packets)))
    (flow,) = report.flows
    assert flow.kind is FlowKind.SIP_UDP and flow.client == ENDS[0]
    assert flow.methods == ["INVITE", "ACK", "BYE"]
    assert flow.responses == ["200 (INVITE)", "200 (BYE)"]
    assert flow.call_ids == ["c1@test"]
    assert flow.messages[0].sdp() is not None and b"m=audio 30000" in (
        flow.messages[0].sdp() or b""
    )
    assert report.stray_sip_text == 0


def test_sip_over_tcp_is_framed_by_content_length_across_segments() -> None:
    stream = sip_invite(A, B, 30000) + b"\r\n\r\n" + sip_request("OPTIONS", A, B, 3)
    stream += b"REGISTER sip:127.0.0.1 SIP/2.0\r\nCSeq: 9 REGISTER\r\nl: 0\r\n\r\n"
    answer = sip_ok(A, B, 30002)
    segments = tcp_segments(stream, A, B, size=37) + tcp_segments(
        answer, B, A, isn=9000, size=64, syn_ack=True
    )
    report = find_signalling(parse_capture(pcap_bytes(segments[::-1])))
    (flow,) = report.flows
    assert flow.kind is FlowKind.SIP_TCP
    assert flow.methods == ["INVITE", "OPTIONS", "REGISTER"]
    assert flow.responses == ["200 (INVITE)"]
    invite = flow.messages[0]
    assert invite.body.startswith(b"v=0") and invite.body.endswith(b"a=ptime:20\r\n")


def test_stream_parser_resynchronises_after_garbage() -> None:
    data = b"garbage\r\nmore" + sip_request("BYE", A, B) + b"\x00\x01" + sip_request("INFO", A, B)
    found = parse_sip_messages(data, ENDS, "tcp", 5.0)
    assert [m.method for m in found] == ["BYE", "INFO"]


def test_sip_text_outside_a_flow_is_counted() -> None:
    tunnel = b"\x00\x00junk" + sip_request("MESSAGE", A, B)  # not at the datagram start
    report = find_signalling(parse_capture(pcap_bytes([Packet(1.0, A, B, tunnel)])))
    assert report.flows == [] and report.stray_sip_text == 1
    verdict = analyze_capture(parse_capture(pcap_bytes([Packet(1.0, A, B, tunnel)])))
    assert verdict.overall is Verdict.PLAINTEXT and verdict.exit_code == 1


# --------------------------------------------------------------------------- synthetic TLS


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def hello(version: int, suites: list[int], extensions: bytes = b"", server: bool = False) -> bytes:
    """A ClientHello/ServerHello body (RFC 5246 §7.4.1.2-3); one suite when ``server``."""
    body = struct.pack("!H", version) + bytes(32) + b"\x00"
    if server:
        body += struct.pack("!HB", suites[0], 0)
    else:
        body += struct.pack("!H", 2 * len(suites)) + b"".join(struct.pack("!H", s) for s in suites)
        body += b"\x01\x00"
    return body + (struct.pack("!H", len(extensions)) + extensions if extensions else b"")


def test_tls10_and_null_cipher_verdicts_from_synthetic_handshakes() -> None:
    client = record(22, handshake(1, hello(0x0301, [0x002F, 0x0002])), 0x0301)
    weak = record(22, handshake(2, hello(0x0301, [0x002F], server=True)), 0x0301)
    null = record(22, handshake(2, hello(0x0303, [0x0002], server=True)))
    data = record(23, b"\x17" * 40)
    info = analyze_tls(client + data, weak + data)
    assert (
        info.version_name == "TLS 1.0" and info.cipher_suite_name == "TLS_RSA_WITH_AES_128_CBC_SHA"
    )
    assert info.client_versions == [0x0301] and info.application_bytes == 80
    segs = tcp_segments(client + data, A, B) + tcp_segments(
        weak + data, B, A, isn=7000, syn_ack=True
    )
    report = analyze_capture(parse_capture(pcap_bytes(segs)))
    assert report.items[0].verdict is Verdict.WEAK and "below TLS 1.2" in report.items[0].summary
    segs = tcp_segments(client, A, B) + tcp_segments(null + data, B, A, isn=7000, syn_ack=True)
    report = analyze_capture(parse_capture(pcap_bytes(segs)))
    assert report.items[0].verdict is Verdict.PLAINTEXT and "NULL cipher" in report.items[0].summary


def test_supported_versions_extension_gives_tls13() -> None:
    versions = b"\x00\x2b\x00\x05\x04\x03\x04\x03\x03"  # client offers 1.3, 1.2
    client = record(22, handshake(1, hello(0x0303, [0x1301], versions)), 0x0301)
    server_ext = b"\x00\x2b\x00\x02\x03\x04"
    server = record(22, handshake(2, hello(0x0303, [0x1302], server_ext, server=True)))
    info = analyze_tls(client, server + record(20, b"\x01") + record(23, b"x" * 30))
    assert info.client_versions == [0x0304, 0x0303]
    assert info.version_name == "TLS 1.3" and info.cipher_suite_name == "TLS_AES_256_GCM_SHA384"
    assert info.records == {"handshake": 2, "change_cipher_spec": 1, "application_data": 1}


def test_tls_record_detection() -> None:
    assert looks_like_tls(record(22, b"x"))
    assert not looks_like_tls(b"INVITE sip:x SIP/2.0\r\n")
    assert not looks_like_tls(b"\x16\x03\x01\xff\xff")  # longer than any record may be


# --------------------------------------------------------------------------- real TLS


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    ca = create_ca("verify test CA")
    leaf = issue_certificate(ca, "localhost", kind="server", dns=["localhost"], ips=[LO])
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    (folder / "server.pem").write_bytes(leaf.cert_pem + leaf.chain_pem + leaf.key_pem)
    return folder / "ca.pem", folder / "server.pem"


def tls_exchange(
    certs: tuple[Path, Path], pcap: Path, version: ssl.TLSVersion
) -> tuple[str, str, str]:
    """A TLS client sends a SIP OPTIONS to a TLS server and gets 200 OK; captured live.

    Returns what OpenSSL negotiated: (version, cipher name, server SNI seen).
    """
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs[1])
    server_ctx.minimum_version = server_ctx.maximum_version = version
    client_ctx = ssl.create_default_context(cafile=str(certs[0]))
    listener = socket.create_server((LO, 0))
    port = listener.getsockname()[1]
    seen: dict[str, str] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            request = tls.recv(4096)
            seen["request"] = request.decode()
            tls.sendall(b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            seen["cipher"], seen["version"] = tls.cipher()[0], str(tls.version())

    capture = PacketCapture(pcap)
    try:
        capture.start([port])
    except CaptureUnavailable as exc:
        listener.close()
        pytest.skip(str(exc))
    thread = threading.Thread(target=serve)
    thread.start()
    with (
        socket.create_connection((LO, port)) as raw,
        client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(sip_request("OPTIONS", (LO, 5999), (LO, port), 1))
        assert tls.recv(4096).startswith(b"SIP/2.0 200 OK")
    thread.join(10)
    listener.close()
    capture.stop()
    assert seen["request"].startswith("OPTIONS sip:")
    return seen["version"], seen["cipher"], "localhost"


def test_real_tls13_flow(certs: tuple[Path, Path], tmp_path: Path) -> None:
    version, cipher, sni = tls_exchange(certs, tmp_path / "tls13.pcap", ssl.TLSVersion.TLSv1_3)
    report = analyze_capture(read_capture(tmp_path / "tls13.pcap"))
    (item,) = report.items
    tls = item.flow.tls if item.flow else None
    assert tls is not None and version == "TLSv1.3"
    assert tls.version_name == "TLS 1.3"
    assert tls.cipher_suite_name == cipher  # OpenSSL uses the IANA names for TLS 1.3 suites
    assert tls.server_name == sni and 0x0304 in tls.client_versions
    assert tls.server_certificates == []  # encrypted in TLS 1.3
    assert item.verdict is Verdict.ENCRYPTED and report.exit_code == 0
    assert report.plaintext_sip == 0


def test_real_tls12_flow_shows_certificate(certs: tuple[Path, Path], tmp_path: Path) -> None:
    version, cipher, _ = tls_exchange(certs, tmp_path / "tls12.pcap", ssl.TLSVersion.TLSv1_2)
    report = analyze_capture(read_capture(tmp_path / "tls12.pcap"))
    tls = report.items[0].flow.tls if report.items[0].flow else None
    assert tls is not None and version == "TLSv1.2" and tls.version_name == "TLS 1.2"
    # OpenSSL says ECDHE-ECDSA-AES256-GCM-SHA384 for IANA TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    iana = tls.cipher_suite_name or ""
    openssl = iana.removeprefix("TLS_").replace("_WITH_", "_").replace("AES_", "AES")
    assert iana.startswith("TLS_ECDHE_") and openssl.replace("_", "-") == cipher
    assert tls.server_certificates and "CN=localhost" in tls.server_certificates[0]
    assert report.items[0].verdict is Verdict.ENCRYPTED
