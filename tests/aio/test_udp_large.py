"""RFC 3261 §18.1.1: a UDP message may be as large as IP allows (65,535 bytes), not 2,048.

RFC 4475 §3.1.1.7 ``longreq`` (3.5 kB) sent over a real UDP socket to a running Phone gets its
answer; a datagram of almost 64 KiB reaches the transport whole.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from securephone.aio.phone import Phone
from securephone.aio.transport import TransportLayer
from securephone.store.config import parse_config
from tests.helpers import await_until

LONGREQ = (Path(__file__).parents[1] / "vectors" / "rfc4475" / "longreq.dat").read_bytes()


def config() -> Any:
    return parse_config(
        {
            "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
            "media": {"port_min": 49000, "port_max": 49999, "srtp": "off"},
        }
    )


async def test_longreq_over_udp_is_answered() -> None:
    assert len(LONGREQ) > 2048
    phone = Phone(config())
    await phone.start()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        host, port = phone.status()["listen"]["udp"].split(":")
        await loop.sock_sendto(sock, LONGREQ, (host, int(port)))
        reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
        assert reply.startswith(b"SIP/2.0 ")
        assert b"longreq.onereallyreally" in reply  # the answer to this very request
    finally:
        sock.close()
        await phone.stop(timeout=0.5)


async def test_a_64k_datagram_arrives_whole() -> None:
    got: list[bytes] = []
    transports = TransportLayer(
        lambda message, peer: got.append(message if isinstance(message, bytes) else b""),
        lambda peer, reason: None,
    )
    host, port = await transports.listen_udp("127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        big = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n" + b"X" * 65000
        small = b"OPTIONS sip:y@127.0.0.1 SIP/2.0\r\n\r\n"
        sender.sendto(big, (host, port))
        sender.sendto(small, (host, port))
        await await_until(lambda: len(got) == 2, 5, message="both datagrams delivered")
        assert got == [big, small]  # the reused buffer never leaks one datagram into the next
    finally:
        sender.close()
        await transports.close()
