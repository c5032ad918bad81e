"""The shell side of NAT traversal: STUN (RFC 8489) over the phone's own sockets.

The core (``net/stun.py``) builds and judges every message; this module only owns sockets, name
resolution and ``loop.call_at``:

- the SIP UDP socket's public address, learnt at start from ``[nat] stun_server`` (Contact);
- each call's RTP socket mapping, learnt from that socket itself before the call needs it (SDP);
- RFC 5626 §4.4.2 keep-alives of outbound accounts' UDP flows: a Binding request to the
  registrar every ``[nat] keepalive_interval``; a changed mapping or no answer re-registers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from securephone.errors import StunError
from securephone.net.stun import (
    Address,
    BindingOutcome,
    BindingResult,
    BindingTransaction,
    RetransmitPolicy,
    StunAgent,
    StunEvent,
    StunMessage,
)
from securephone.store.config import NatSettings, stun_address

log = logging.getLogger(__name__)

SIP_KEY = "sip"
KEEPALIVE_PREFIX = "flow:"


async def resolve(host: str, port: int, family: int = socket.AF_INET) -> Address | None:
    """The first address of ``host`` (an IP literal stays as it is)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    except OSError as exc:
        log.warning("STUN server %s: %s", host, exc)
        return None
    return (str(infos[0][4][0]), int(infos[0][4][1])) if infos else None


async def map_socket(
    sock: socket.socket, server: Address, timeout: float, software: str | None = None
) -> BindingResult | None:
    """Ask ``server`` what address ``sock`` has on the outside (one Binding, §6.2.1 resends).

    Only for a socket nobody else reads yet (a call's RTP socket before its call starts).
    None when no answer came within ``timeout``.
    """
    loop = asyncio.get_running_loop()
    tx = BindingTransaction(server, loop.time(), RetransmitPolicy(), software)
    deadline = loop.time() + timeout
    sock.sendto(tx.request, server)
    while tx.result is None:
        wake = min(tx.get_timer() or deadline, deadline)
        try:
            data, source = await asyncio.wait_for(
                loop.sock_recvfrom(sock, 2048), max(0.0, wake - loop.time())
            )
        except TimeoutError:
            if loop.time() >= deadline:
                return None
            again = tx.handle_timer(loop.time())
            if again is not None:
                sock.sendto(again, server)
            continue
        with_source = (str(source[0]), int(source[1]))
        try:
            tx.receive(StunMessage.parse(data), with_source)
        except StunError:
            continue  # not STUN: nothing may reach an unused RTP socket yet
    return tx.result


class NatTraversal:
    """STUN for one phone: discovery on the SIP socket, keep-alives, media mappings."""

    def __init__(
        self,
        settings: NatSettings,
        send: Callable[[bytes, Address], None],
        *,
        software: str | None = None,
        note: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.settings = settings
        self.software = software
        self._send = send
        self._note = note
        self.agent = StunAgent(software=software)
        self.server: Address | None = None
        self.public: Address | None = None  # what the STUN server saw of the SIP UDP socket
        self.last_media: Address | None = None  # the latest RTP socket mapping
        self.error: str | None = None
        self.on_event: Callable[[StunEvent], None] = lambda event: None
        self._waiters: dict[str, asyncio.Future[BindingResult]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.stun_server is not None

    async def start(self) -> Address | None:
        """Resolve the STUN server and learn the SIP socket's public address (bounded wait)."""
        if self.settings.stun_server is None:
            return None
        host, port = stun_address(self.settings.stun_server)
        self.server = await resolve(host, port)
        if self.server is None:
            self.error = f"cannot resolve STUN server {host}"
            return None
        result = await self.discover(SIP_KEY, self.server, self.settings.stun_timeout)
        if result is None or result.mapped is None:
            self.error = result.reason if result else "no STUN answer"
            self._note(f"STUN {self.server[0]}:{self.server[1]}: {self.error}")
            log.warning("STUN %s:%d: %s", *self.server, self.error)
            return None
        self.public = result.mapped
        self._note(f"STUN {self.server[0]}:{self.server[1]}: public address {_text(result.mapped)}")
        log.info("STUN: the SIP socket is %s on the outside", _text(result.mapped))
        return self.public

    async def discover(self, key: str, server: Address, timeout: float) -> BindingResult | None:
        """One Binding request from the SIP socket; its result (None when nothing within timeout)."""
        future: asyncio.Future[BindingResult] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        self.agent.discover(key, server, self._now())
        self._pump()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(key, None)

    def keep_alive(self, account: str, server: Address, interval: float) -> None:
        """RFC 5626 §4.4.2: keep the UDP flow of ``account`` to ``server`` open and checked."""
        self.agent.keep_alive(KEEPALIVE_PREFIX + account, server, interval, self._now())
        self._pump()

    def keepalive_interval(self, account: str) -> float | None:
        """The interval the UDP flow of ``account`` is kept alive by, None when it is not."""
        return self.agent.keepalive_interval(KEEPALIVE_PREFIX + account)

    def receive(self, data: bytes, source: Address) -> bool:
        """A datagram on the SIP UDP socket that may be STUN; True when it was."""
        taken = self.agent.receive(data, source, self._now())
        self._pump()
        return taken

    async def map_media(self, sock: socket.socket) -> Address | None:
        """The outside address of a call's RTP socket (None when unknown)."""
        if self.server is None:
            return None
        result = await map_socket(sock, self.server, self.settings.stun_timeout, self.software)
        if result is None or result.outcome is not BindingOutcome.MAPPED:
            why = result.reason if result else "no STUN answer"
            log.warning("STUN for RTP socket %s: %s", sock.getsockname(), why)
            return None
        mapped = self.last_media = result.mapped
        assert mapped is not None  # MAPPED results carry the address
        self._note(f"STUN RTP {_text(sock.getsockname()[:2])} is {_text(mapped)} outside")
        return mapped

    def status(self) -> dict[str, object]:
        """For Phone.status(): the server, what it saw, and the last error."""
        return {
            "stun_server": _text(self.server) if self.server else self.settings.stun_server,
            "public_address": _text(self.public) if self.public else None,
            "media_address": _text(self.last_media) if self.last_media else None,
            "keepalives": sorted(k.removeprefix(KEEPALIVE_PREFIX) for k in self.agent.keeping),
            "error": self.error,
        }

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _pump(self) -> None:
        for data, server in self.agent.datagrams_to_send():
            self._send(data, server)
        while (event := self.agent.next_event()) is not None:
            waiter = self._waiters.get(event.key)
            if waiter is not None and not waiter.done():
                waiter.set_result(event.result)
            self.on_event(event)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        due = self.agent.get_timer()
        self._timer = None if due is None else asyncio.get_running_loop().call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.agent.handle_timer(self._now())
        self._pump()


def _text(address: Address | tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
