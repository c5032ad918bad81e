"""The flow policy acting on real TCP sockets on 127.0.0.1: silent, slow and surplus connections are
closed by the phone, keep-alive pings go out on flows it opened, and a missing pong closes them."""

from __future__ import annotations

import asyncio
import socket

from securephone.aio.transport import TransportLayer
from securephone.sip.flows import FlowLimits, FlowTable
from securephone.sip.transport import Outgoing, Peer


def layer(limits: FlowLimits) -> TransportLayer:
    transports = TransportLayer(lambda message, peer: None, lambda peer, reason: None)
    transports.flows = FlowTable(limits)
    return transports


async def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the other side closes ``sock`` within ``timeout`` (EOF or reset)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 100), timeout)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return data == b""


async def test_silent_and_slow_connections_are_closed() -> None:
    transports = layer(FlowLimits(first_message_timeout=0.3, message_timeout=0.3))
    host, port = await transports.listen_stream("tcp", "127.0.0.1", 0)
    try:
        silent = socket.create_connection((host, port))
        slow = socket.create_connection((host, port))
        slow.sendall(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: ")  # and never more
        assert await closed_by_peer(silent, 3)
        assert await closed_by_peer(slow, 3)
        assert len(transports.flows) == 0
    finally:
        await transports.close()


async def test_connections_beyond_the_limit_are_refused() -> None:
    transports = layer(FlowLimits(max_connections=2, first_message_timeout=30))
    host, port = await transports.listen_stream("tcp", "127.0.0.1", 0)
    try:
        kept = [socket.create_connection((host, port)) for _ in range(2)]
        for _ in range(50):
            if transports.flows.accepted == 2:
                break
            await asyncio.sleep(0.02)
        extra = socket.create_connection((host, port))
        assert await closed_by_peer(extra, 3)
        assert transports.flows.refused == 1
        assert not await closed_by_peer(kept[0], 0.2)  # the first two stay
    finally:
        await transports.close()


async def test_keepalive_ping_and_close_without_pong() -> None:
    """RFC 5626 §4.4.1 on a flow we opened: CRLFCRLF pings; no pong by the next one closes it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    errors: list[str] = []
    transports = TransportLayer(
        lambda message, peer: None, lambda peer, reason: errors.append(reason)
    )
    transports.flows = FlowTable(FlowLimits(keepalive_interval=0.2))
    loop = asyncio.get_running_loop()
    try:
        port = server.getsockname()[1]
        transports.send(Outgoing(b"", Peer("tcp", "127.0.0.1", port)))
        conn, _ = await asyncio.wait_for(loop.sock_accept(server), 3)
        conn.setblocking(False)
        ping = await asyncio.wait_for(loop.sock_recv(conn, 100), 3)
        assert ping == b"\r\n\r\n"
        assert await closed_by_peer(conn, 3)  # no pong was sent
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert errors  # the core hears that the flow is gone (the registration recovers)
    finally:
        await transports.close()
        server.close()


async def test_connections_we_open_beyond_the_limit_close_the_least_used_but_not_a_flow() -> None:
    """Three servers we send to, two connections allowed: the one that carried a REGISTER
    stays, the least recently used other one is closed when the third opens."""
    transports = layer(FlowLimits(max_dialled=2))
    accepted: list[asyncio.StreamReader] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(reader)
        await reader.read()  # until we close it
        writer.close()

    servers = [await asyncio.start_server(serve, "127.0.0.1", 0) for _ in range(3)]
    peers = [Peer("tcp", "127.0.0.1", s.sockets[0].getsockname()[1]) for s in servers]
    try:
        transports.send(Outgoing(b"REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n", peers[0]))
        for peer in peers[1:]:
            await asyncio.sleep(0.2)
            transports.send(Outgoing(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\r\n", peer))
        for _ in range(100):
            if len(accepted) == 3 and not transports.connected(peers[1]):
                break
            await asyncio.sleep(0.02)
        assert [transports.connected(peer) for peer in peers] == [True, False, True]
        assert len(transports.flows) == 2
    finally:
        await transports.close()
        for server in servers:
            server.close()
