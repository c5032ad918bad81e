"""Dual stack and IPv6 on real sockets: a SIP listener on ``::`` takes IPv4 and IPv6 peers and
the core sees plain IPv4 addresses (RFC 4291 §2.5.5.2 mapped addresses are unmapped); replies go
back to each; an IPv4-only listener says clearly why it cannot send to an IPv6 peer."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from securephone.aio import netaddr
from securephone.aio.media import bind_rtp_pair
from securephone.aio.transport import TransportLayer
from securephone.pki.certs import create_ca, issue_certificate
from securephone.sip.message import Request, Response
from securephone.sip.transport import Outgoing, Peer

from ..helpers import await_until

OPTIONS = (
    b"OPTIONS sip:x@[::1] SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:9;branch=z9hG4bKdual\r\n"
    b"From: <sip:a@[::1]>;tag=1\r\nTo: <sip:x@[::1]>\r\nCall-ID: dual\r\nCSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


class Collector:
    def __init__(self) -> None:
        self.peers: list[Peer] = []
        self.errors: list[str] = []

    def message(self, message: bytes | Request | Response, peer: Peer) -> None:
        self.peers.append(peer)

    def error(self, peer: Peer, reason: str) -> None:
        self.errors.append(reason)


def test_addresses() -> None:
    assert netaddr.unmap("::ffff:127.0.0.1") == "127.0.0.1"
    assert netaddr.unmap("::1") == "::1" and netaddr.unmap("127.0.0.1") == "127.0.0.1"
    assert netaddr.for_socket("127.0.0.1", socket.AF_INET6) == "::ffff:127.0.0.1"
    assert netaddr.for_socket("[::1]", socket.AF_INET6) == "::1"
    assert netaddr.for_socket("127.0.0.1", socket.AF_INET) == "127.0.0.1"
    assert netaddr.families("::") == ("IPv6", "IPv4")
    assert netaddr.families("::1") == ("IPv6",) and netaddr.families("0.0.0.0") == ("IPv4",)
    assert netaddr.hostport("::1", 5060) == "[::1]:5060"
    assert netaddr.hostport("127.0.0.1", 5060) == "127.0.0.1:5060"
    assert netaddr.is_wildcard("[::]") and not netaddr.is_dual_stack("0.0.0.0")


def test_route_lookup_on_the_loopback() -> None:
    assert netaddr.route_source("::1") == "::1"
    assert netaddr.route_source("[::1]") == "::1"
    assert netaddr.route_source("127.0.0.1") == "127.0.0.1"
    assert netaddr.route_source("::ffff:127.0.0.1") == "127.0.0.1"
    assert netaddr.route_source("example.test") is None


async def test_udp_on_any_address_takes_ipv4_and_ipv6_and_answers_both() -> None:
    seen = Collector()
    layer = TransportLayer(seen.message, seen.error)
    host, port = await layer.listen_udp("::", 0)
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        assert host == "::"
        v4.bind(("127.0.0.1", 0))
        v6.bind(("::1", 0))
        v4.sendto(OPTIONS, ("127.0.0.1", port))
        v6.sendto(OPTIONS, ("::1", port))
        await await_until(lambda: len(seen.peers) == 2, 3, message="both datagrams")
        hosts = sorted(p.host for p in seen.peers)
        assert hosts == ["127.0.0.1", "::1"]  # the IPv4 source is not ::ffff:127.0.0.1
        for peer in seen.peers:
            layer.send(Outgoing(b"SIP/2.0 200 OK\r\n\r\n", peer))
        for sock in (v4, v6):
            sock.settimeout(3)
            assert (await asyncio.to_thread(sock.recv, 100)).startswith(b"SIP/2.0 200")
        assert seen.errors == []
    finally:
        v4.close()
        v6.close()
        await layer.close()


async def test_tcp_on_any_address_takes_an_ipv4_client() -> None:
    seen = Collector()
    layer = TransportLayer(seen.message, seen.error)
    _, port = await layer.listen_stream("tcp", "::", 0)
    try:
        for address in ("127.0.0.1", "::1"):
            client = await asyncio.to_thread(socket.create_connection, (address, port), 3)
            client.sendall(OPTIONS)
            await await_until(lambda: len(seen.peers) == 1, 3, message=f"OPTIONS from {address}")
            assert seen.peers.pop().host == address
            client.close()
    finally:
        await layer.close()


@pytest.mark.parametrize(("listen", "peer", "ours"), [("127.0.0.1", "::1", "IPv4"),
                                                      ("::1", "127.0.0.1", "IPv6")])  # fmt: skip
async def test_a_single_family_listener_says_why_it_cannot_send(
    listen: str, peer: str, ours: str
) -> None:
    seen = Collector()
    layer = TransportLayer(seen.message, seen.error)
    await layer.listen_udp(listen, 0)
    try:
        layer.send(Outgoing(b"OPTIONS", Peer("udp", peer, 5060)))
    finally:
        await layer.close()
    (error,) = seen.errors
    assert (
        f"SIP over UDP listens on {ours} only ({listen}); listen on :: for IPv4 and IPv6" in error
    )


def test_media_sockets_on_any_address_are_dual_stack() -> None:
    rtp, rtcp = bind_rtp_pair("::", 55000, 55999)
    try:
        for sock in (rtp, rtcp):
            assert sock.family == socket.AF_INET6
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with v4:
            v4.sendto(b"\x80" * 20, ("127.0.0.1", rtp.getsockname()[1]))
            rtp.settimeout(3)
            data, source = rtp.recvfrom(100)
        assert data == b"\x80" * 20 and source[0] == "::ffff:127.0.0.1"
    finally:
        rtp.close()
        rtcp.close()


async def test_connections_accepted_on_any_address_send_without_delay() -> None:
    """TCP_NODELAY on accepted connections, as on single-address listeners (no Nagle wait)."""
    accepted: list[socket.socket] = []

    class Keep(TransportLayer):
        def flow_opened(self, conn: Any) -> bool:
            accepted.append(conn.transport.get_extra_info("socket"))
            return super().flow_opened(conn)

    layer = Keep(lambda message, peer: None, lambda peer, reason: None)
    _, port = await layer.listen_stream("tcp", "::", 0)
    try:
        client = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port), 3)
        await await_until(lambda: bool(accepted), 3, message="connection accepted")
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client.close()
    finally:
        await layer.close()


async def test_tls_on_any_address_serves_ipv4_and_ipv6_clients_checking_ip_sans(
    tmp_path: Path,
) -> None:
    """One TLS listener on ``::``; clients over 127.0.0.1 and ::1 each check the server's IP SAN
    for the address they dialled (RFC 5922 §7.2)."""
    ca = create_ca("dual-stack test CA")
    server = issue_certificate(ca, "phone", kind="server", ips=["127.0.0.1", "::1"])
    pem = tmp_path / "server.pem"
    pem.write_bytes(server.combined_pem())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(pem))
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    seen = Collector()
    layer = TransportLayer(seen.message, seen.error)
    _, port = await layer.listen_stream("tls", "::", 0, server_ctx)
    try:
        for address in ("127.0.0.1", "::1"):
            _, writer = await asyncio.open_connection(
                address, port, ssl=client_ctx, server_hostname=address
            )
            writer.write(OPTIONS)
            await writer.drain()
            await await_until(lambda: len(seen.peers) == 1, 3, message=f"OPTIONS from {address}")
            peer = seen.peers.pop()
            assert (peer.transport, peer.host) == ("tls", address)
            writer.close()
            await writer.wait_closed()
    finally:
        await layer.close()
