"""Synthetic captures for the verify tests: frames, pcap/pcapng files, RTP and SRTP streams.

Everything is built with dpkt (frames and files), numpy (audio), the product's own G.711
tables and pylibsrtp (SRTP), so the tests control every byte and know the right answer.
"""

from __future__ import annotations

import io
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dpkt
import numpy as np
import numpy.typing as npt
import pylibsrtp

from securephone.media.codecs.g711 import alaw_encode, ulaw_encode
from securephone.media.rtp import RtpPacket

RATE = 8000
LO = "127.0.0.1"


@dataclass(frozen=True)
class Packet:
    """One transport payload to put in a capture."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes
    proto: str = "udp"
    seq: int = 0
    flags: int = dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH


def _ip_bytes(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def ip_packet(p: Packet) -> bytes:
    """The IPv4 or IPv6 packet carrying ``p`` (checksums filled in by dpkt)."""
    if p.proto == "udp":
        layer: dpkt.Packet = dpkt.udp.UDP(sport=p.src[1], dport=p.dst[1], data=p.payload)
        layer.ulen = 8 + len(p.payload)
        proto = dpkt.ip.IP_PROTO_UDP
    else:
        layer = dpkt.tcp.TCP(
            sport=p.src[1], dport=p.dst[1], seq=p.seq, flags=p.flags, data=p.payload, off=5
        )
        proto = dpkt.ip.IP_PROTO_TCP
    if ":" in p.src[0]:
        ip6 = dpkt.ip6.IP6(src=_ip_bytes(p.src[0]), dst=_ip_bytes(p.dst[0]), nxt=proto, hlim=64)
        ip6.data = layer
        ip6.plen = len(bytes(layer))
        return bytes(ip6)
    ip = dpkt.ip.IP(src=_ip_bytes(p.src[0]), dst=_ip_bytes(p.dst[0]), p=proto, ttl=64, data=layer)
    ip.len = 20 + len(bytes(layer))
    return bytes(ip)


def frame(p: Packet, linktype: int) -> bytes:
    """``p`` framed for a link type: Ethernet, Linux cooked v1/v2, BSD loopback, raw IP."""
    raw = ip_packet(p)
    v6 = ":" in p.src[0]
    ethertype = dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP
    if linktype == 1:
        return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=ethertype)) + raw
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, ethertype) + raw
    if linktype == 276:
        return struct.pack("!HHiHBB8s", ethertype, 0, 1, 772, 0, 6, b"\0" * 8) + raw
    if linktype == 0:
        return struct.pack("=I", 30 if v6 else 2) + raw
    if linktype == 101:
        return raw
    raise ValueError(f"linktype {linktype} not supported by the test builder")


def pcap_bytes(packets: Iterable[Packet], linktype: int = 1, nano: bool = False) -> bytes:
    """A classic pcap file."""
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=linktype, nano=nano)
    for p in packets:
        writer.writepkt(frame(p, linktype), ts=p.time)
    return out.getvalue()


def pcapng_bytes(packets: Iterable[Packet], linktype: int = 1) -> bytes:
    """A pcapng file (one interface)."""
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out, linktype=linktype)
    for p in packets:
        writer.writepkt(frame(p, linktype), ts=p.time)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- audio and RTP


def speechlike(seconds: float, seed: int = 1) -> npt.NDArray[np.int16]:
    """Syllable-like harmonic bursts with pauses (deterministic per seed), int16 at 8 kHz."""
    rng = np.random.default_rng(seed)
    total = int(seconds * RATE)
    out = np.zeros(total)
    pos = 400
    while pos < total:
        length = int(rng.integers(700, 2000))
        t = np.arange(length) / RATE
        pitch = rng.uniform(100, 250)
        tone = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * k * pitch * t) for k in range(1, 6))
        seg = tone * np.hanning(length)
        out[pos : pos + length] = seg[: max(0, total - pos)]
        pos += length + int(rng.integers(200, 1200))
    return np.asarray(out / np.max(np.abs(out)) * 20000, dtype=np.int16)


def rtp_packets(
    audio: npt.NDArray[np.int16],
    *,
    ssrc: int,
    payload_type: int = 0,
    seq: int = 1000,
    timestamp: int = 5000,
    ptime_ms: int = 20,
) -> list[bytes]:
    """Plain RTP packets of G.711 audio (PCMU for PT 0, PCMA for PT 8)."""
    encode = alaw_encode if payload_type == 8 else ulaw_encode
    step = RATE * ptime_ms // 1000
    packets = []
    for i in range(len(audio) // step):
        chunk = audio[i * step : (i + 1) * step]
        packet = RtpPacket(
            payload_type=payload_type,
            sequence_number=(seq + i) & 0xFFFF,
            timestamp=(timestamp + i * step) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=encode(chunk),
            marker=i == 0,
        )
        packets.append(bytes(packet))
    return packets


PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AES_CM_128_HMAC_SHA1_32": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 30),
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}


def srtp_protect(packets: Sequence[bytes], suite: str, key: bytes) -> list[bytes]:
    """Protect RTP packets with libsrtp (RFC 3711 §3.3) under one master key."""
    profile, length = PROFILES[suite]
    assert len(key) == length
    policy = pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
    )
    session = pylibsrtp.Session(policy=policy)
    return [session.protect(p) for p in packets]


def udp_flow(
    payloads: Sequence[bytes],
    src: tuple[str, int],
    dst: tuple[str, int],
    start: float = 1000.0,
    interval: float = 0.02,
) -> list[Packet]:
    """Datagrams sent ``interval`` seconds apart."""
    return [Packet(start + i * interval, src, dst, data) for i, data in enumerate(payloads)]


def tcp_segments(
    data: bytes,
    src: tuple[str, int],
    dst: tuple[str, int],
    *,
    isn: int = 1000,
    size: int = 100,
    start: float = 1000.0,
    syn: bool = True,
    syn_ack: bool = False,
) -> list[Packet]:
    """One direction of a TCP connection: optional SYN (SYN+ACK for the server), then ``data`` in ``size``-byte segments."""
    out = []
    if syn:
        flags = dpkt.tcp.TH_SYN | (dpkt.tcp.TH_ACK if syn_ack else 0)
        out.append(Packet(start, src, dst, b"", "tcp", isn, flags))
    for i, offset in enumerate(range(0, len(data), size)):
        out.append(
            Packet(
                start + 0.001 * (i + 1),
                src,
                dst,
                data[offset : offset + size],
                "tcp",
                isn + 1 + offset,
            )
        )
    return out


def sip_invite(
    caller: tuple[str, int],
    callee: tuple[str, int],
    rtp_port: int,
    *,
    crypto: str | None = None,
    proto: str = "RTP/AVP",
    call_id: str = "c1@test",
) -> bytes:
    """An INVITE with an SDP offer for PCMU/PCMA on ``rtp_port``."""
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} {proto} 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"
        + (f"a=crypto:{crypto}\r\n" if crypto else "")
    ).encode()
    head = (
        f"INVITE sip:bob@{callee[0]}:{callee[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {caller[0]}:{caller[1]};branch=z9hG4bK-1\r\n"
        f"From: <sip:alice@{caller[0]}>;tag=a\r\nTo: <sip:bob@{callee[0]}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{caller[0]}:{caller[1]}>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    return head + sdp


def sip_ok(
    caller: tuple[str, int],
    callee: tuple[str, int],
    rtp_port: int,
    *,
    crypto: str | None = None,
    proto: str = "RTP/AVP",
    call_id: str = "c1@test",
) -> bytes:
    """The 200 OK answer with SDP for ``rtp_port``."""
    sdp = (
        "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        + (f"a=crypto:{crypto}\r\n" if crypto else "")
    ).encode()
    head = (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/UDP {caller[0]}:{caller[1]};branch=z9hG4bK-1\r\n"
        f"From: <sip:alice@{caller[0]}>;tag=a\r\nTo: <sip:bob@{callee[0]}>;tag=b\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@{callee[0]}:{callee[1]}>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    return head + sdp


def sip_request(method: str, src: tuple[str, int], dst: tuple[str, int], cseq: int = 2) -> bytes:
    """A body-less request (BYE, OPTIONS, REGISTER...)."""
    return (
        f"{method} sip:bob@{dst[0]}:{dst[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bK-{cseq}\r\n"
        f"From: <sip:alice@{src[0]}>;tag=a\r\nTo: <sip:bob@{dst[0]}>;tag=b\r\n"
        f"Call-ID: c1@test\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def zrtp_packet(seq: int, message: str, ssrc: int = 0x1234) -> bytes:
    """A ZRTP packet header with a message type block (RFC 6189 §5); body and CRC are dummies."""
    block = message.ljust(8).encode("ascii")
    body = struct.pack("!HH", 0x505A, 3) + block
    return struct.pack("!BBH4sI", 0x10, 0, seq, b"ZRTP", ssrc) + body + b"\0\0\0\0"
