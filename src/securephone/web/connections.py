"""Connection limits and timeouts for the web server, around uvicorn's h11 protocol.

uvicorn alone lets idle clients starve the server: ``limit_concurrency`` answers 503 to
everyone once that many connections are open, a connection that never sends a request has no
timeout (``timeout_keep_alive`` only starts after a response), a request header may trickle in
for ever, and the TLS handshake runs before uvicorn sees the connection at all (asyncio's 60 s
default). So the web server does TLS itself, per connection, after the limits:

- at most ``per_address`` connections from one client address: more are closed at once;
- at most ``total`` connections: when full, the oldest *idle* connection (handshaking, or
  waiting for a request) is dropped for the new one, so idle clients from many addresses
  cannot lock a working client out; only when every connection is busy is the new one closed;
- the TLS handshake must finish within ``handshake_timeout``;
- each request's header must be complete within ``header_timeout`` of the connection (or of
  the first byte of a later request); uvicorn's ``timeout_keep_alive`` closes idle keep-alive
  connections between requests; h11 bounds the header size (16 KiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import Counter
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("securephone.web")


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections the web server keeps and how long it waits for each."""

    per_address: int = 16
    total: int = 128
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0


@dataclass
class ConnectionCounts:
    """What the guard did (counted, not logged one by one)."""

    refused: int = 0
    dropped_idle: int = 0
    timed_out: int = 0
    handshake_failed: int = 0


class ConnectionGuard:
    """The open connections of one listener, oldest first, and the limits on them."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.counts = ConnectionCounts()
        self._open: dict[GuardedH11, str] = {}
        self._per_address: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, conn: GuardedH11, address: str) -> bool:
        """Take ``conn`` in, dropping the oldest idle connection when full; False: refuse it."""
        if self._per_address[address] >= self.limits.per_address:
            self.counts.refused += 1
            log.debug("web connection from %s refused: per-address limit", address)
            return False
        if len(self._open) >= self.limits.total:
            victim = next((c for c in self._open if c.idle), None)
            if victim is None:
                self.counts.refused += 1
                log.debug("web connection from %s refused: every connection is busy", address)
                return False
            self.counts.dropped_idle += 1
            victim.drop()
        self._open[conn] = address
        self._per_address[address] += 1
        return True

    def release(self, conn: GuardedH11) -> None:
        """``conn`` is gone (idempotent)."""
        address = self._open.pop(conn, None)
        if address is not None:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def close_pending(self) -> None:
        """Drop the connections uvicorn does not know yet (still in the TLS handshake)."""
        for conn in [c for c in self._open if not c.connected]:
            conn.drop()


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol behind the guard, with TLS done here (handshake timeout) and a
    header timeout. uvicorn calls it like its own protocol class (``functools.partial``)."""

    def __init__(
        self,
        *args: Any,
        guard: ConnectionGuard,
        tls: ssl.SSLContext | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._tls = tls
        self._raw: asyncio.Transport | None = None
        self.connected = False
        self._early: list[bytes] = []
        self._header_timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None

    # -- state -------------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """True while no request is being answered (handshaking, or waiting for a request)."""
        return self.cycle is None or self.cycle.response_complete

    def drop(self) -> None:
        """Close at once, without a goodbye."""
        self._guard.release(self)
        if self._handshake is not None and not self._handshake.done():
            self._handshake.cancel()
        transport = self.transport if self.connected else self._raw
        if transport is not None:
            transport.abort()

    # -- asyncio protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        if not self._guard.admit(self, address):
            transport.abort()
            return
        self._arm_header_timer(self._guard.limits.header_timeout)
        if self._tls is None:
            self._connect(transport)
            return
        transport.pause_reading()  # start_tls resumes it under the TLS layer
        self._handshake = self.loop.create_task(self._start_tls(transport, self._tls))

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            transport = await self.loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._guard.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("web TLS handshake failed: %s", exc)
            self._guard.counts.handshake_failed += 1
            self.drop()
            return
        if transport is None or transport.is_closing():
            self.drop()
            return
        self._connect(transport)

    def _connect(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self.connected = True
        for data in self._early:  # what the client sent right behind its handshake
            super().data_received(data)
        self._early.clear()

    def data_received(self, data: bytes) -> None:
        if not self.connected:
            self._early.append(data)
            return
        if self.idle:
            self._arm_header_timer(self._guard.limits.header_timeout)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if not self.idle and self._header_timer is not None:
            self._header_timer.cancel()  # the request's header is complete
            self._header_timer = None

    def eof_received(self) -> None:
        if self.connected:
            super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.release(self)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self.connected:
            self.connected = False
            super().connection_lost(exc)

    # -- header timeout ----------------------------------------------------------------------------
    def _arm_header_timer(self, seconds: float) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(seconds, self._header_expired)

    def _header_expired(self) -> None:
        self._header_timer = None
        if self.idle:
            self._guard.counts.timed_out += 1
            with contextlib.suppress(Exception):
                self.drop()
