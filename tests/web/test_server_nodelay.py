"""The web listener is a TCP socket by protocol, so every accepted connection has TCP_NODELAY.

Without it a response on a kept-alive connection waits for the client's delayed ACK (Nagle);
asyncio sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP.
"""

from __future__ import annotations

import asyncio
import socket

from securephone.web.server import bind


def test_listener_is_created_as_tcp() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.dup().proto == socket.IPPROTO_TCP  # restarts reuse a duplicate
    finally:
        sock.close()


async def test_accepted_connections_have_nodelay() -> None:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("socket")
        accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    sock = bind("127.0.0.1", 0)
    server = await asyncio.start_server(handle, sock=sock)
    try:
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
