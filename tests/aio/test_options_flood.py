"""A 10,000-transaction OPTIONS flood over real UDP on 127.0.0.1, then one more OPTIONS: it is
still answered 200 (issue 13 item 7). The latency is printed; figures belong to
``benchmarks/options_flood.py``."""

from __future__ import annotations

import asyncio
import socket
import time

from securephone.aio.phone import Phone
from securephone.store.config import parse_config
from tests.sip.wire import build_request

FLOOD = 10_000
BATCH = 100


async def test_an_options_after_a_flood_is_answered() -> None:
    phone = Phone(
        parse_config(
            {
                "sip": {"listen_address": "127.0.0.1", "udp_port": 0, "transports": ["udp"]},
                "media": {"srtp": "off"},
            }
        )
    )
    await phone.start()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()[1]
    host, port = phone.status()["listen"]["udp"].split(":")
    target = (host, int(port))

    async def replies(count: int, quiet: float) -> list[bytes]:
        """Up to ``count`` datagrams, until none came for ``quiet`` seconds."""
        got: list[bytes] = []
        while len(got) < count:
            try:
                got.append(await asyncio.wait_for(loop.sock_recv(sock, 65535), quiet))
            except TimeoutError:
                break
        return got

    try:
        answered = 0
        for _ in range(FLOOD // BATCH):
            for _i in range(BATCH):
                sock.sendto(bytes(build_request("OPTIONS", port=me)), target)
            answered += len(await replies(BATCH, 0.5))
        assert phone.ua is not None
        live = phone.ua.endpoint.transaction_count
        assert live <= phone.ua.endpoint.limits.max_server_transactions
        probe = build_request("OPTIONS", port=me)
        sent_at = time.perf_counter()
        sock.sendto(bytes(probe), target)
        answer = await replies(1, 5)
        latency = (time.perf_counter() - sent_at) * 1000
        assert answer and answer[0].startswith(b"SIP/2.0 200")
        assert probe.call_id.encode() in answer[0]
        print(
            f"\n{answered}/{FLOOD} flood OPTIONS answered, {live} transactions live; "
            f"probe answered in {latency:.1f} ms"
        )
    finally:
        sock.close()
        await phone.stop(timeout=0.2)
