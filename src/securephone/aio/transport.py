"""SIP transports on asyncio: UDP with small reads, TCP with framing and connection reuse (RFC 3261 §18).

This is shell code: it moves bytes between sockets and the sans-I/O user agent and does nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from securephone.aio.netaddr import dual_stack_options, family_of, for_socket, is_dual_stack, unmap
from securephone.errors import ProtocolError
from securephone.sip.flows import FlowAction, FlowTable
from securephone.sip.loglimit import LogLimiter
from securephone.sip.message import Request, Response, StreamParser
from securephone.sip.transport import Outgoing, Peer
from securephone.tls import (
    HandshakeNotes,
    TlsInfo,
    check_peer_name,
    explain,
    explain_close,
    explain_lost,
    handshake_notes,
)

log = logging.getLogger(__name__)

UDP_MAX_DATAGRAM = 65535  # RFC 3261 §18.1.1: a UDP message may be as large as IP allows
UDP_BATCH = 64  # datagrams read per readiness callback
# A connection whose peer does not read what we send: past the high-water mark we stop reading
# from it (its requests wait in the kernel, no more answers are made); past the limit (answers
# to requests read before the pause) it is closed. Nothing it sends can grow our buffers.
STREAM_WRITE_HIGH_WATER = 256 * 1024
STREAM_WRITE_LIMIT = 1024 * 1024

MessageHandler = Callable[[bytes | Request | Response, Peer], None]
ErrorHandler = Callable[[Peer, str], None]
TraceHandler = Callable[[str, Peer, bytes], None]
PinHandler = Callable[[Peer, bytes], str | None]  # server certificate (DER) -> refusal or None
BadMessageHandler = Callable[[ProtocolError, Peer], None]


def is_ip(host: str) -> bool:
    """True for an IPv4/IPv6 literal (no DNS needed)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _StreamConnection(asyncio.Protocol):
    """One TCP/TLS connection: frames messages with StreamParser, answers CRLF pings (RFC 5626 §4.4.1)."""

    def __init__(
        self, layer: TransportLayer, transport_name: str, conn_id: int, dialled: Peer | None = None
    ) -> None:
        self.layer = layer
        self.name = transport_name
        self.conn_id = conn_id
        self.dialled = dialled  # the peer we connected to (None for accepted connections)
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.tls: TlsInfo | None = None
        self.verified = False
        self.received = 0
        self.sent = 0
        self.refused = False
        self.notes: HandshakeNotes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer(self.name, unmap(host), port, self.conn_id)
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            self.verified = sslobj.context.verify_mode == ssl.CERT_REQUIRED
            self.tls = TlsInfo.from_ssl(sslobj, self.verified)
            if self.dialled is not None:
                self.notes = handshake_notes(sslobj)
        if not self.layer.flow_opened(self):
            self.refused = True
            transport.close()
            return
        transport.set_write_buffer_limits(high=STREAM_WRITE_HIGH_WATER)
        if self.dialled is None:
            self.layer._register_connection(self)

    def pause_writing(self) -> None:
        """The peer is not reading what we send: read nothing more from it until it does."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.received += len(data)
        items = self.parser.feed_items(data)
        if self.parser.take_pings() and self.transport is not None:
            self.transport.write(b"\r\n")  # RFC 5626 §4.4.1 pong
        pongs = self.parser.take_pongs()
        self.layer.flow_received(self, len(items), self.parser.partial, pongs)
        for item in items:
            if isinstance(item, ProtocolError):
                self.layer.on_bad_message(item, self.peer)
            else:
                self.layer._deliver(item, self.peer)
        if self.parser.broken:
            self.layer.note_bad("broken SIP stream", f"closing {self.peer}: it lost its framing")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refused:
            return
        self.layer._forget_connection(self)
        if self.dialled is not None:
            self.layer.on_error(self.dialled, self._close_reason(exc))
        elif exc is not None and self.peer is not None:
            self.layer.note_bad("lost SIP connection", f"from {self.peer}: {explain(exc)}")

    def _close_reason(self, exc: Exception | None) -> str:
        """What the server did, from what it sent: never a guess (issue 13 item 18)."""
        has_cert = self.layer.client_has_cert
        if self.notes is None:
            return explain(exc) if exc is not None else "the server closed the connection"
        if exc is not None:
            return explain_lost(exc, self.notes, received=self.received, has_cert=has_cert)
        return explain_close(self.notes, received=self.received, sent=self.sent, has_cert=has_cert)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.sent += len(data)
            transport.write(data)
            if data != b"\r\n\r\n":  # a keep-alive ping is no use of the flow
                self.layer.flow_sent(self, data.startswith(b"REGISTER "))
            unread = transport.get_write_buffer_size()
            if unread > STREAM_WRITE_LIMIT:
                self.layer.note_bad(
                    "SIP connection not reading", f"closing {self.peer}: {unread} bytes unread"
                )
                transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _dual_stack_listener(port: int) -> socket.socket:
    """A TCP socket listening on ``[::]:port`` with IPV6_V6ONLY off (IPv4 clients too).

    Protocol IPPROTO_TCP, as asyncio's own listeners have it: asyncio sets TCP_NODELAY on the
    connections it accepts only then.
    """
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        dual_stack_options(sock, "::")
        sock.bind(("::", port))
        sock.listen(100)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Connecting:
    """Bytes waiting for a connection that is being opened."""

    queue: list[bytes] = field(default_factory=list)


class TransportLayer:
    """Every SIP socket of one phone."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_error: ErrorHandler,
        trace: TraceHandler | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_bad_message: BadMessageHandler | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_error = on_error
        self.on_bad_message: BadMessageHandler = on_bad_message or (lambda exc, peer: None)
        self.trace = trace
        self.client_ssl = client_ssl
        self.listening: dict[str, tuple[str, int]] = {}
        self.flows = FlowTable()
        self._flow_timer: asyncio.TimerHandle | None = None
        self._flow_timer_at: float | None = None
        self._live: dict[int, _StreamConnection] = {}  # every open connection, by id
        self.tls_unavailable = "no TLS settings"
        self.client_has_cert = False
        self.check_pin: PinHandler | None = None  # TOFU pinning of servers we dial
        self._udp: socket.socket | None = None
        self._udp_buffer = bytearray(
            UDP_MAX_DATAGRAM
        )  # one reusable read buffer, copied per message
        self._servers: list[asyncio.Server] = []
        self._conns: dict[int, _StreamConnection] = {}
        self._by_addr: dict[tuple[str, str, int], int] = {}
        self._connecting: dict[tuple[str, str, int], _Connecting] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # per-packet and per-connection trouble: counted, not logged each time
        self.bad_input = LogLimiter(log)
        self.accept_failures = 0
        self._watching_accept = False
        # STUN on the SIP UDP socket (RFC 8489 responses, RFC 5626 §4.4.2 keep-alives): the
        # handler returns True when it took the datagram.
        self.on_stun: Callable[[bytes, tuple[str, int]], bool] | None = None

    def note_bad(self, what: str, detail: str) -> None:
        """Log bad input from the network, rate-limited (counts per interval, not lines)."""
        self.bad_input.note(asyncio.get_running_loop().time(), what, detail)

    # -- listening -----------------------------------------------------------------------------
    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        """Bind the UDP socket and read it with small, batched reads (``::``: IPv6 and IPv4)."""
        sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
        sock.setblocking(False)
        dual_stack_options(sock, host)
        sock.bind((host, port))
        self._udp = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._udp_ready)
        bound = sock.getsockname()[:2]
        self.listening["udp"] = (bound[0], bound[1])
        return self.listening["udp"]

    async def listen_stream(
        self, name: str, host: str, port: int, server_ssl: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Accept TCP (or TLS with ``server_ssl``) connections (``::``: IPv6 and IPv4)."""
        loop = asyncio.get_running_loop()
        self._watch_accept_errors(loop)

        def factory() -> _StreamConnection:
            return _StreamConnection(self, name, next(self._ids))

        if is_dual_stack(host):  # asyncio would set IPV6_V6ONLY on a socket it binds to ::
            server = await loop.create_server(
                factory, sock=_dual_stack_listener(port), ssl=server_ssl
            )
        else:
            server = await loop.create_server(
                factory, host, port, ssl=server_ssl, reuse_address=True
            )
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[:2]
        self.listening[name] = (bound[0], bound[1])
        return self.listening[name]

    def _watch_accept_errors(self, loop: asyncio.AbstractEventLoop) -> None:
        """Out of descriptors (EMFILE/ENFILE), asyncio pauses accepting for a second and reports it
        through the loop's exception handler each time: count those reports instead of logging a
        traceback per retry; everything else goes to the handler that was there before."""
        if self._watching_accept:
            return
        self._watching_accept = True
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
                self.accept_failures += 1
                self.note_bad("SIP accept failure", f"{exc.strerror or exc} (accepting paused 1 s)")
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)

    # -- receiving -----------------------------------------------------------------------------
    def _udp_ready(self) -> None:
        """Read up to UDP_BATCH datagrams of any size up to 65,535 bytes (RFC 3261 §18.1.2).

        Each read lands in one preallocated buffer; only the bytes received are copied out, so a
        flood of small datagrams does not allocate 64 KiB per packet.
        """
        assert self._udp is not None
        view = memoryview(self._udp_buffer)
        for _ in range(UDP_BATCH):
            try:
                size, addr = self._udp.recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("udp receive error: %s", exc)
                return
            data = bytes(view[:size])
            if data.strip(b"\r\n") == b"":
                continue  # keep-alive
            source = (unmap(addr[0]), addr[1])
            if data[0] < 4 and self.on_stun is not None and self.on_stun(data, source):
                continue  # STUN (RFC 7983 first byte 0..3), never SIP
            self._deliver(data, Peer("udp", *source))

    def _deliver(self, message: bytes | Request | Response, peer: Peer) -> None:
        if self.trace is not None:
            self.trace("in", peer, message if isinstance(message, bytes) else bytes(message))
        self.on_message(message, peer)

    # -- flow policy (the core's FlowTable decides; this only acts) ------------------------------
    @property
    def keepalive_interval(self) -> float:
        return self.flows.limits.keepalive_interval

    @keepalive_interval.setter
    def keepalive_interval(self, seconds: float) -> None:
        self.flows.limits = replace(self.flows.limits, keepalive_interval=seconds)

    def set_flow_keepalive(self, peer: Peer, seconds: float | None) -> bool:
        """Ping our connection to ``peer`` at least every ``seconds`` (its registrar's
        Flow-Timer, RFC 5626 §4.4.1), None for the configured interval; False when none is open."""
        conn_id = self._by_addr.get((peer.transport, peer.host, peer.port))
        if conn_id is None:
            return False
        done = self.flows.set_keepalive(conn_id, seconds, asyncio.get_running_loop().time())
        self._arm_flows()
        return done

    def connected(self, peer: Peer) -> bool:
        """True while a stream connection to ``peer`` is open."""
        return (peer.transport, peer.host, peer.port) in self._by_addr

    def flow_keepalive(self, peer: Peer) -> float | None:
        """The Flow-Timer our connection to ``peer`` is pinged by (``set_flow_keepalive``)."""
        conn_id = self._by_addr.get((peer.transport, peer.host, peer.port))
        return None if conn_id is None else self.flows.keepalive_of(conn_id)

    def flow_opened(self, conn: _StreamConnection) -> bool:
        """A connection is up: False when it must be refused (too many connections)."""
        now = asyncio.get_running_loop().time()
        host = conn.peer.host if conn.peer is not None else None
        if not self.flows.opened(
            conn.conn_id, dialled=conn.dialled is not None, now=now, host=host
        ):
            self.note_bad(
                "refused SIP connection",
                f"from {conn.peer}: {self.flows.accepted} connections already"
                f" ({self.flows.from_address(host or '')} from that address)",
            )
            return False
        self._live[conn.conn_id] = conn
        commands = self.flows.overflow() if conn.dialled is not None else []
        for command in commands:  # connections we opened, beyond the limit
            spare = self._live.get(command.conn)
            if spare is not None:
                log.info("closing the SIP connection with %s: %s", spare.peer, command.reason)
                spare.close()
        self._arm_flows()
        return True

    def flow_sent(self, conn: _StreamConnection, register: bool) -> None:
        self.flows.sent(conn.conn_id, asyncio.get_running_loop().time(), register=register)

    def flow_received(
        self, conn: _StreamConnection, messages: int, partial: bool, pongs: int
    ) -> None:
        now = asyncio.get_running_loop().time()
        self.flows.received(conn.conn_id, now, messages=messages, partial=partial, pongs=pongs)
        self._arm_flows()

    def _arm_flows(self) -> None:
        deadline = self.flows.get_timer()
        if deadline == self._flow_timer_at:
            return
        if self._flow_timer is not None:
            self._flow_timer.cancel()
        self._flow_timer_at = deadline
        loop = asyncio.get_running_loop()
        self._flow_timer = None if deadline is None else loop.call_at(deadline, self._on_flows)

    def _on_flows(self) -> None:
        self._flow_timer = self._flow_timer_at = None
        for command in self.flows.handle_timer(asyncio.get_running_loop().time()):
            conn = self._live.get(command.conn)
            if conn is None:
                continue
            if command.action is FlowAction.PING:
                conn.write(b"\r\n\r\n")
            elif conn.dialled is not None:
                log.warning("closing the SIP connection with %s: %s", conn.peer, command.reason)
                conn.close()
            else:
                self.note_bad("closed SIP connection", f"{conn.peer}: {command.reason}")
                conn.close()
        self._arm_flows()

    def _register_connection(self, conn: _StreamConnection) -> None:
        assert conn.peer is not None
        self._conns[conn.conn_id] = conn
        self._by_addr[(conn.name, conn.peer.host, conn.peer.port)] = conn.conn_id

    def _forget_connection(self, conn: _StreamConnection) -> None:
        self.flows.closed(conn.conn_id)
        self._live.pop(conn.conn_id, None)
        self._conns.pop(conn.conn_id, None)
        if conn.peer is not None:
            key = (conn.name, conn.peer.host, conn.peer.port)
            if self._by_addr.get(key) == conn.conn_id:
                del self._by_addr[key]

    # -- sending -------------------------------------------------------------------------------
    def send(self, out: Outgoing) -> None:
        """Send now, or as soon as the connection or the name resolution is ready."""
        if self.trace is not None:
            self.trace("out", out.peer, out.data)
        if out.peer.transport == "udp":
            self._send_udp(out)
        else:
            self._send_stream(out)

    def send_stun(self, data: bytes, address: tuple[str, int]) -> None:
        """A STUN datagram from the SIP UDP socket (so the server sees that socket's mapping)."""
        if self._udp is None:
            return
        try:
            self._udp.sendto(data, address)
        except OSError as exc:
            log.info("cannot send STUN to %s:%d: %s", *address, exc.strerror or exc)

    def _send_udp(self, out: Outgoing) -> None:
        if self._udp is None:
            self.on_error(out.peer, "no UDP listener")
            return
        if not is_ip(out.peer.host):
            self._spawn(self._resolve_and_send(out))
            return
        unreachable = self._family_mismatch(out.peer)
        if unreachable is not None:
            self.on_error(out.peer, unreachable)
            return
        try:
            address = for_socket(out.peer.host, self._udp.family)
            self._udp.sendto(out.data, (address, out.peer.port))
        except OSError as exc:
            self.on_error(out.peer, f"cannot send to {out.peer}: {exc.strerror or exc}")

    def _family_mismatch(self, peer: Peer) -> str | None:
        """Why our UDP socket cannot reach ``peer`` (IPv4 socket, IPv6 peer or the reverse)."""
        host = self.listening["udp"][0]
        if is_dual_stack(host) or (":" in peer.host) == (":" in host):
            return None
        ours = "IPv6" if ":" in host else "IPv4"
        return (
            f"cannot send to {peer}: SIP over UDP listens on {ours} only ({host}); "
            "listen on :: for IPv4 and IPv6"
        )

    async def _resolve_and_send(self, out: Outgoing) -> None:
        loop = asyncio.get_running_loop()
        host = self.listening["udp"][0]
        family = 0 if is_dual_stack(host) else family_of(host)
        try:
            infos = await loop.getaddrinfo(
                out.peer.host, out.peer.port, family=family, type=socket.SOCK_DGRAM
            )
        except OSError as exc:
            self.on_error(out.peer, f"cannot resolve {out.peer.host}: {exc}")
            return
        host = str(infos[0][4][0])
        self._send_udp(Outgoing(out.data, Peer("udp", host, out.peer.port)))

    def _send_stream(self, out: Outgoing) -> None:
        peer = out.peer
        conn = self._conns.get(peer.conn) if peer.conn is not None else None
        if conn is None:
            conn_id = self._by_addr.get((peer.transport, peer.host, peer.port))
            conn = self._conns.get(conn_id) if conn_id is not None else None
        if conn is not None:
            conn.write(out.data)
            return
        key = (peer.transport, peer.host, peer.port)
        if key in self._connecting:
            self._connecting[key].queue.append(out.data)
            return
        self._connecting[key] = _Connecting([out.data])
        self._spawn(self._connect(peer, key))

    async def _connect(self, peer: Peer, key: tuple[str, str, int]) -> None:
        loop = asyncio.get_running_loop()
        conn_id = next(self._ids)
        ctx = self.client_ssl if peer.transport == "tls" else None
        if peer.transport == "tls" and ctx is None:
            self._connecting.pop(key, None)
            self.on_error(peer, f"TLS is not available on this phone: {self.tls_unavailable}")
            return
        try:
            _, proto = await loop.create_connection(
                lambda: _StreamConnection(self, peer.transport, conn_id, dialled=peer),
                peer.host,
                peer.port,
                ssl=ctx,
                server_hostname=(peer.server_name or peer.host) if ctx is not None else None,
            )
        except (OSError, ssl.SSLError) as exc:
            self._connecting.pop(key, None)
            reason = explain(exc) if isinstance(exc, ssl.SSLError) else str(exc.strerror or exc)
            self.on_error(peer, f"cannot connect to {peer}: {reason}")
            return
        pending = self._connecting.pop(key, _Connecting())
        mismatch = self._name_mismatch(proto, peer) or self._pin_refusal(proto, peer)
        if mismatch is not None:
            proto.dialled = None  # reported here, not again when it closes
            proto.close()
            self.on_error(peer, f"cannot connect to {peer}: TLS: {mismatch}")
            return
        self._register_connection(proto)
        self._by_addr[key] = conn_id  # also reachable under the name we dialled
        for data in pending.queue:
            proto.write(data)

    def _name_mismatch(self, proto: _StreamConnection, peer: Peer) -> str | None:
        """RFC 5922 §7.2: check the server's name before a single SIP byte goes out."""
        if proto.transport is None or not proto.verified:
            return None
        sslobj = proto.transport.get_extra_info("ssl_object")
        cert = sslobj.getpeercert() if sslobj is not None else None
        if not cert:
            return "the server sent no certificate"
        return check_peer_name(cert, peer.server_name or peer.host)  # the SIP domain after SRV

    def _pin_refusal(self, proto: _StreamConnection, peer: Peer) -> str | None:
        """The server's key against its pin (``check_pin``, TOFU), also before any SIP byte."""
        if self.check_pin is None or proto.transport is None:
            return None
        sslobj = proto.transport.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        return self.check_pin(peer, der) if der else None

    def tls_info(self, peer: Peer) -> TlsInfo | None:
        """TLS details of the connection that carries traffic to ``peer``, if it is TLS."""
        conn = self._conns.get(peer.conn) if peer.conn is not None else None
        if conn is None:
            conn_id = self._by_addr.get((peer.transport, peer.host, peer.port))
            conn = self._conns.get(conn_id) if conn_id is not None else None
        return conn.tls if conn is not None else None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- shutdown ------------------------------------------------------------------------------
    async def close(self) -> None:
        """Close every socket and wait for pending work."""
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._flow_timer is not None:
            self._flow_timer.cancel()
        for conn in list(self._live.values()):
            conn.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        self._servers.clear()
