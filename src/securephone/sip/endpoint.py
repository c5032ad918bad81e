"""The sans-I/O transaction layer of one SIP endpoint (RFC 3261 §17, §18).

Bytes or parsed messages come in with the peer and ``now``; ``outgoing()`` gives what to send, ``next_event()``
what happened, ``get_timer()`` when to call ``handle_timer(now)`` next. No sockets, no clock, no event loop.

Cost per message is O(1) in the number of live transactions (issue 13 item 7): transactions are
found by key in dicts, only the ones a message or timer touched are collected afterwards, and the
deadlines sit in a heap (stale entries are skipped when they surface). The server table is bounded
(``max_server_transactions``): when it is full, the oldest completed non-INVITE transaction (one
that only absorbs retransmissions, Timer J) makes room; when none is completed, a new request gets a
stateless 503 with Retry-After (RFC 3261 §21.5.4), at most ``overload_replies_per_second``, and
is dropped beyond that.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import TypeVar

from securephone.errors import ProtocolError, RemoteProtocolError
from securephone.sip.events import Event, MalformedMessage, RequestReceived, StrayResponse
from securephone.sip.loglimit import LogLimiter
from securephone.sip.message import (
    InvalidRequestError,
    Request,
    Response,
    make_response,
    parse_message,
)
from securephone.sip.transaction import (
    MAGIC_COOKIE,
    ClientInviteTransaction,
    ClientTransaction,
    ServerInviteTransaction,
    ServerTransaction,
    TimerSettings,
    Transaction,
    TxState,
    client_key,
    server_key,
    stamp_via,
)
from securephone.sip.transport import Outgoing, Peer

log = logging.getLogger(__name__)
K = TypeVar("K")

ClientTx = ClientTransaction | ClientInviteTransaction
ServerTx = ServerTransaction | ServerInviteTransaction


def new_branch() -> str:
    """A fresh RFC 3261 §8.1.1.7 branch: the magic cookie and 96 random bits."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def new_tag() -> str:
    """A From/To tag with 64 random bits (RFC 3261 §19.3)."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class EndpointLimits:
    """How many server transactions may live, and how hard an overload is answered."""

    max_server_transactions: int = 4096
    overload_replies_per_second: float = 200.0
    retry_after: int = 5  # seconds, in the 503's Retry-After


def _route(peer: Peer) -> tuple[str, str, int]:
    return (peer.transport, peer.host, peer.port)


def _discard(index: dict[K, set[str]], name: K, key: str) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[name]


class SipEndpoint:
    """Holds every transaction of one user agent and routes messages to them."""

    def __init__(
        self, timers: TimerSettings | None = None, limits: EndpointLimits | None = None
    ) -> None:
        self.timers = timers or TimerSettings()
        self.limits = limits or EndpointLimits()
        self._client: dict[str, ClientTx] = {}
        self._server: dict[str, ServerTx] = {}
        self._outgoing: list[Outgoing] = []
        self._events: deque[Event] = deque()
        self._dirty: dict[str, None] = {}  # keys touched since the last collect, in order
        self._heap: list[tuple[float, str]] = []  # (deadline, key); stale entries are skipped
        self._completed: dict[str, None] = {}  # completed non-INVITE server keys, oldest first
        self._by_route: dict[tuple[str, str, int], set[str]] = {}
        self._by_conn: dict[int, set[str]] = {}
        self._overload_tokens = 0.0
        self._overload_at = 0.0
        self.overloaded = 0  # requests refused (503) or dropped because the table was full
        self.bad_input = LogLimiter(log)
        self._now = 0.0  # the latest time seen, for inputs that come without one

    # -- input -----------------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        """One whole message (a UDP datagram, or a framed stream message's bytes)."""
        self._now = now
        try:
            message = parse_message(data)
        except InvalidRequestError as exc:
            self._malformed(peer, exc, exc.request)  # readable enough to answer 400/416/505
            return
        except ProtocolError as exc:
            self._malformed(peer, exc)
            return
        self.receive_message(message, peer, now)

    def receive_error(self, exc: ProtocolError, peer: Peer) -> None:
        """A stream transport could not accept a message: answer it when it was a readable request."""
        request = exc.request if isinstance(exc, InvalidRequestError) else None
        self._malformed(peer, exc, request)

    def receive_message(self, message: Request | Response, peer: Peer, now: float) -> None:
        """A parsed message from ``peer``: match it to a transaction or start a server transaction."""
        self._now = now
        try:
            if isinstance(message, Response):
                self._receive_response(message, peer, now)
            else:
                self._receive_request(message, peer, now)
        except RemoteProtocolError as exc:
            self._malformed(peer, exc, message)
        self._collect()

    def _malformed(
        self, peer: Peer, exc: ProtocolError, message: Request | Response | None = None
    ) -> None:
        self.bad_input.note(self._now, "malformed SIP", f"from {peer}: {exc}")
        self._events.append(MalformedMessage(peer, str(exc), exc.status_hint))
        if isinstance(message, Request) and message.method != "ACK":
            with contextlib.suppress(ProtocolError):
                response = make_response(message, exc.status_hint)
                self._outgoing.append(Outgoing(bytes(response), peer))

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        if len(response.vias) != 1:  # RFC 3261 §18.1.2: not for us
            raise RemoteProtocolError("response with more than one Via")
        key = client_key(response.top_via.branch or "", response.cseq.method)
        tx = self._client.get(key)
        if tx is None:
            self._events.append(StrayResponse(response, peer))
            return
        self._dirty[key] = None
        tx.receive_response(response, now)

    def _receive_request(self, request: Request, peer: Peer, now: float) -> None:
        stamp_via(request, peer)
        key = server_key(request)
        tx = self._server.get(key)
        if tx is not None:
            self._retransmission(tx, request, peer, now)
            return
        if request.method == "ACK":  # ACK for a 2xx: a separate transaction for the TU (§17.2.3)
            self._events.append(RequestReceived(request, peer, None))
            return
        if len(self._server) >= self.limits.max_server_transactions and not self._evict():
            self._overload(request, peer, now)
            return
        new: ServerTx
        if request.method == "INVITE":
            new = ServerInviteTransaction(request, peer, self.timers)
        else:
            new = ServerTransaction(request, peer, self.timers)
        self._add(new)
        self._events.append(RequestReceived(request, peer, key))

    def _evict(self) -> bool:
        """Drop the oldest completed non-INVITE server transaction to make room (False: none)."""
        for key in self._completed:
            del self._completed[key]
            tx = self._server.pop(key, None)
            if tx is not None:
                self._unindex(tx)
                return True
        return False

    def _overload(self, request: Request, peer: Peer, now: float) -> None:
        """The server table is full: 503 + Retry-After (RFC 3261 §21.5.4), or drop beyond the budget."""
        self.overloaded += 1
        rate = self.limits.overload_replies_per_second
        self._overload_tokens = min(rate, self._overload_tokens + (now - self._overload_at) * rate)
        self._overload_at = now
        if request.method == "ACK" or self._overload_tokens < 1:
            return
        self._overload_tokens -= 1
        self.bad_input.note(now, "overload", f"503 to {request.method} from {peer}")
        with contextlib.suppress(ProtocolError):
            response = make_response(request, 503)
            response.headers.add("Retry-After", str(self.limits.retry_after))
            self._outgoing.append(Outgoing(bytes(response), peer))

    def _retransmission(self, tx: ServerTx, request: Request, peer: Peer, now: float) -> None:
        self._dirty[tx.key] = None
        if isinstance(tx, ServerInviteTransaction):
            if tx.receive_request(request, now):
                self._events.append(RequestReceived(request, peer, None))
        elif request.method != "ACK":
            tx.receive_request(request, now)

    # -- commands from the transaction user ------------------------------------------------------
    def send_request(self, request: Request, peer: Peer, now: float) -> str:
        """Start a client transaction for ``request`` (its top Via must carry a fresh branch)."""
        if request.method == "ACK":
            raise ValueError("an ACK for a 2xx is sent with send_stateless()")
        tx: ClientTx
        if request.method == "INVITE":
            tx = ClientInviteTransaction(request, peer, self.timers, now)
        else:
            tx = ClientTransaction(request, peer, self.timers, now)
        if tx.key in self._client:
            raise ValueError(f"transaction {tx.key} already exists: use a new branch")
        self._add(tx)
        self._collect()
        return tx.key

    def send_response(
        self, transaction_id: str, response: Response, now: float, *, retransmit: bool = True
    ) -> None:
        """Answer the request of server transaction ``transaction_id`` (``retransmit=False``: a
        final answer to an INVITE is not repeated unasked, see ServerInviteTransaction)."""
        tx = self._server.get(transaction_id)
        if tx is None:
            raise KeyError(f"no server transaction {transaction_id}")
        self._dirty[transaction_id] = None
        if isinstance(tx, ServerInviteTransaction):
            tx.send_response(response, now, retransmit=retransmit)
        else:
            tx.send_response(response, now)
        self._collect()

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send outside any transaction: the ACK for a 2xx, a 2xx retransmission (RFC 3261 §13.3.1.4)."""
        self._outgoing.append(Outgoing(bytes(message), peer))

    def server_request(self, transaction_id: str) -> Request | None:
        """The request that started a server transaction, while it lives."""
        tx = self._server.get(transaction_id)
        return tx.request if tx is not None else None

    def transport_failed(self, peer: Peer, reason: str) -> None:
        """Sending to ``peer`` failed: end the transactions that talk to it (RFC 3261 §17.1.4)."""
        keys = set(self._by_route.get(_route(peer), ()))
        if peer.conn is not None:
            keys |= self._by_conn.get(peer.conn, set())
        for key in sorted(keys):
            tx = self._get(key)
            if tx is not None:
                self._dirty[key] = None
                tx.fail(reason)
        self._collect()

    # -- output ----------------------------------------------------------------------------------
    def outgoing(self) -> list[Outgoing]:
        """Take the messages to send, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> Event | None:
        """The next event for the transaction user, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest deadline at which handle_timer() must run (the top of the heap)."""
        heap = self._heap
        while heap:
            at, key = heap[0]
            tx = self._get(key)
            if tx is not None and tx.deadline() == at:
                return at
            heapq.heappop(heap)  # stale: the transaction moved on or ended
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every due timer, then collect what the fired transactions produced."""
        self._now = now
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            tx = self._get(key)
            if tx is not None:
                self._dirty[key] = None
                tx.handle_timer(now)
        self._collect()

    def _get(self, key: str) -> Transaction | None:
        return self._client.get(key) or self._server.get(key)

    def _add(self, tx: ClientTx | ServerTx) -> None:
        if isinstance(tx, ClientTransaction | ClientInviteTransaction):
            self._client[tx.key] = tx
        else:
            self._server[tx.key] = tx
        self._by_route.setdefault(_route(tx.peer), set()).add(tx.key)
        if tx.peer.conn is not None:
            self._by_conn.setdefault(tx.peer.conn, set()).add(tx.key)
        self._dirty[tx.key] = None

    def _remove(self, tx: Transaction) -> None:
        self._client.pop(tx.key, None)
        self._server.pop(tx.key, None)
        self._unindex(tx)

    def _unindex(self, tx: Transaction) -> None:
        self._completed.pop(tx.key, None)
        _discard(self._by_route, _route(tx.peer), tx.key)
        if tx.peer.conn is not None:
            _discard(self._by_conn, tx.peer.conn, tx.key)

    def _collect(self) -> None:
        """Take the output of every transaction touched since the last collect."""
        dirty, self._dirty = self._dirty, {}
        for key in dirty:
            tx = self._get(key)
            if tx is None:
                continue
            self._outgoing.extend(tx.outgoing)
            self._events.extend(tx.events)
            tx.outgoing.clear()
            tx.events.clear()
            if tx.terminated:
                self._remove(tx)
                continue
            if tx.state is TxState.COMPLETED and isinstance(tx, ServerTransaction):
                self._completed[key] = None
            at = tx.deadline()
            if at is not None:
                heapq.heappush(self._heap, (at, key))
        if len(self._heap) > 4 * self.transaction_count + 64:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heap from the live deadlines when stale entries pile up."""
        live = ((tx.deadline(), tx.key) for tx in [*self._client.values(), *self._server.values()])
        self._heap = [(at, key) for at, key in live if at is not None]
        heapq.heapify(self._heap)

    @property
    def transaction_count(self) -> int:
        """Live transactions (for tests and status)."""
        return len(self._client) + len(self._server)
