"""Idle and slow clients cannot starve the web server (loopback only, bounded floods):
per-address and total connection limits, TLS handshake and request header timeouts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from securephone.store.config import WebSettings
from securephone.web.app import create_app
from securephone.web.connections import ConnectionLimits
from securephone.web.manager import PhoneManager
from securephone.web.server import WebServer

from ..helpers import await_until

IDLE_TLS = 250
IDLE_TCP = 50
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 27)]  # 25 sources, 10 idle TLS each


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


async def open_idle(
    port: int, source: str, tls: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that says nothing (after the TLS handshake, when ``tls``)."""
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, local_addr=(source, 0), server_hostname="" if tls else None
    )


async def normal_request(url: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=False, timeout=20) as client:
        return await client.get(url + "login")


def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.transport.abort()


async def test_250_idle_tls_connections_do_not_starve_a_normal_request(
    manager: PhoneManager,
) -> None:
    await manager.start_web(create_app(manager))
    assert manager.server is not None
    url = manager.server.url
    port = urlsplit(url).port
    assert port is not None
    writers: list[asyncio.StreamWriter] = []
    try:
        tls = client_tls()
        for batch in range(0, IDLE_TLS, 25):
            opened = await asyncio.gather(
                *(
                    open_idle(port, ADDRESSES[n % len(ADDRESSES)], tls)
                    for n in range(batch, batch + 25)
                ),
                return_exceptions=True,
            )
            writers += [w for r in opened if not isinstance(r, BaseException) for w in r[1:]]
        opened = await asyncio.gather(
            *(open_idle(port, ADDRESSES[n % len(ADDRESSES)], None) for n in range(IDLE_TCP)),
            return_exceptions=True,
        )  # and some that never start the handshake
        writers += [w for r in opened if not isinstance(r, BaseException) for w in r[1:]]
        assert len(writers) >= 128  # the flood really reached the server
        response = await normal_request(url)
        assert response.status_code == 200, response.text
        assert "password" in response.text
        guard = manager.server.main_guard
        assert len(guard) <= guard.limits.total
        assert guard.counts.dropped_idle > 0  # idle ones made room for the working client
    finally:
        close_all(writers)


@pytest.fixture
async def small(manager: PhoneManager) -> AsyncIterator[WebServer]:
    """The web server with small limits and short timeouts."""
    limits = ConnectionLimits(per_address=4, total=8, handshake_timeout=0.5, header_timeout=0.5)
    server = WebServer(create_app(manager), manager.data_dir, "127.0.0.1", limits)
    await server.start(WebSettings(port=0, listen_address="127.0.0.1"))
    try:
        yield server
    finally:
        await server.stop()


def port_of(server: WebServer) -> int:
    port = urlsplit(server.url).port
    assert port is not None
    return port


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server closed the connection (EOF or reset) within the test's deadline."""
    try:
        data = await asyncio.wait_for(reader.read(1024), timeout=10)
    except (ConnectionError, ssl.SSLError):
        return True
    return data == b""


async def test_per_address_limit_refuses_the_extra_connections(small: WebServer) -> None:
    port = port_of(small)
    streams = [await open_idle(port, "127.0.0.30", None) for _ in range(6)]
    try:
        guard = small.main_guard
        await await_until(lambda: guard.counts.refused == 2, message="2 refused")
        assert len(guard) == 4
        assert await closed_by_server(streams[-1][0])
        response = await normal_request(small.url)  # another address still gets in
        assert response.status_code == 200
    finally:
        close_all([w for _, w in streams])


async def test_when_full_only_busy_connections_refuse_newcomers(small: WebServer) -> None:
    port = port_of(small)
    sources = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
    streams = [await open_idle(port, sources[n % 3], None) for n in range(8)]
    try:
        guard = small.main_guard
        await await_until(lambda: len(guard) == 8, message="8 open")
        late = await open_idle(port, "127.0.0.34", None)
        streams.append(late)
        await await_until(lambda: guard.counts.dropped_idle == 1, message="one idle dropped")
        assert await closed_by_server(streams[0][0])  # the oldest idle one made room
        assert len(guard) == 8
    finally:
        close_all([w for _, w in streams])


async def test_silent_and_slow_clients_are_closed_by_the_timeouts(small: WebServer) -> None:
    port = port_of(small)
    silent_tcp = await open_idle(port, "127.0.0.40", None)  # never starts the handshake
    silent_tls = await open_idle(port, "127.0.0.41", client_tls())  # handshake, no request
    half = await open_idle(port, "127.0.0.42", client_tls())
    half[1].write(b"GET /login HTTP/1.1\r\nHost: x\r\n")  # a header that never ends
    try:
        for reader, _ in (silent_tcp, silent_tls, half):
            assert await closed_by_server(reader)
        guard = small.main_guard
        assert guard.counts.timed_out + guard.counts.handshake_failed >= 3
        assert len(guard) == 0
        response = await normal_request(small.url)
        assert response.status_code == 200
    finally:
        close_all([silent_tcp[1], silent_tls[1], half[1]])


async def test_keep_alive_requests_on_one_connection_still_work(small: WebServer) -> None:
    async with httpx.AsyncClient(verify=False, timeout=20) as client:
        for _ in range(3):
            response = await client.get(small.url + "login")
            assert response.status_code == 200
    assert small.main_guard.counts.timed_out == 0
