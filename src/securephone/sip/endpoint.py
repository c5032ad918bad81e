"""The sans-I/O transaction layer of one SIP endpoint (RFC 3261 §17, §18).

Bytes or parsed messages come in with the peer and ``now``; ``outgoing()`` gives what to send, ``next_event()``
what happened, ``get_timer()`` when to call ``handle_timer(now)`` next. No sockets, no clock, no event loop.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections import deque

from securephone.errors import ProtocolError, RemoteProtocolError
from securephone.sip.events import Event, MalformedMessage, RequestReceived, StrayResponse
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
    client_key,
    server_key,
    stamp_via,
)
from securephone.sip.transport import Outgoing, Peer

log = logging.getLogger(__name__)

ClientTx = ClientTransaction | ClientInviteTransaction
ServerTx = ServerTransaction | ServerInviteTransaction


def new_branch() -> str:
    """A fresh RFC 3261 §8.1.1.7 branch: the magic cookie and 96 random bits."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def new_tag() -> str:
    """A From/To tag with 64 random bits (RFC 3261 §19.3)."""
    return secrets.token_hex(8)


class SipEndpoint:
    """Holds every transaction of one user agent and routes messages to them."""

    def __init__(self, timers: TimerSettings | None = None) -> None:
        self.timers = timers or TimerSettings()
        self._client: dict[str, ClientTx] = {}
        self._server: dict[str, ServerTx] = {}
        self._outgoing: list[Outgoing] = []
        self._events: deque[Event] = deque()

    # -- input -----------------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        """One whole message (a UDP datagram, or a framed stream message's bytes)."""
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
        log.info("malformed message from %s: %s", peer, exc)
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
        new: ServerTx
        if request.method == "INVITE":
            new = ServerInviteTransaction(request, peer, self.timers)
        else:
            new = ServerTransaction(request, peer, self.timers)
        self._server[key] = new
        self._events.append(RequestReceived(request, peer, key))

    def _retransmission(self, tx: ServerTx, request: Request, peer: Peer, now: float) -> None:
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
        self._client[tx.key] = tx
        self._collect()
        return tx.key

    def send_response(self, transaction_id: str, response: Response, now: float) -> None:
        """Answer the request of server transaction ``transaction_id``."""
        tx = self._server.get(transaction_id)
        if tx is None:
            raise KeyError(f"no server transaction {transaction_id}")
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
        for tx in self._all():
            same = (tx.peer.transport, tx.peer.host, tx.peer.port)
            if same == (peer.transport, peer.host, peer.port) or (
                peer.conn is not None and tx.peer.conn == peer.conn
            ):
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
        """The earliest deadline at which handle_timer() must run."""
        deadlines = [t for tx in self._all() if (t := tx.deadline()) is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every due timer, then drop terminated transactions."""
        for tx in self._all():
            tx.handle_timer(now)
        self._collect()

    def _all(self) -> list[Transaction]:
        return [*self._client.values(), *self._server.values()]

    def _collect(self) -> None:
        for table in (self._client, self._server):
            for key, tx in list(table.items()):
                self._outgoing.extend(tx.outgoing)
                self._events.extend(tx.events)
                tx.outgoing.clear()
                tx.events.clear()
                if tx.terminated:
                    del table[key]

    @property
    def transaction_count(self) -> int:
        """Live transactions (for tests and status)."""
        return len(self._client) + len(self._server)
