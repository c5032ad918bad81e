"""Client and server transactions, INVITE and non-INVITE (RFC 3261 §17, with RFC 6026's Accepted state).

Sans-I/O: a transaction takes messages and ``now`` in, and leaves bytes to send (``Outgoing``), events for its
user and timer deadlines behind. Retransmissions happen on unreliable transports only (RFC 3261 §17.1.1.2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from securephone.sip.events import Event, ResponseReceived, TransactionTimedOut, TransportFailed
from securephone.sip.headers import Via
from securephone.sip.message import Request, Response
from securephone.sip.transport import Outgoing, Peer

log = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class TimerSettings:
    """RFC 3261 §17.1.1.1 / Table 4 base timers, in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class TxState(Enum):
    """Every transaction state of RFC 3261 §17 figures 5–8 plus RFC 6026 'Accepted'."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


S = TxState
# The one transition table: kind -> state -> states it may move to.
TRANSITIONS: dict[str, dict[TxState, frozenset[TxState]]] = {
    "client-invite": {
        S.CALLING: frozenset({S.PROCEEDING, S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
    },
    "client-non-invite": {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    },
    "server-invite": {
        S.PROCEEDING: frozenset({S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.CONFIRMED, S.TERMINATED}),
        S.CONFIRMED: frozenset({S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
    },
    "server-non-invite": {
        S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
    },
}


def client_key(branch: str, method: str) -> str:
    """RFC 3261 §17.1.3: a response matches by top Via branch and CSeq method (ACK never has one)."""
    return f"c|{branch}|{method}"


def server_key(request: Request, method: str | None = None) -> str:
    """RFC 3261 §17.2.3 matching key; ACK maps onto its INVITE. RFC 2543 peers get a best-effort key.

    ``method`` overrides the request's: a CANCEL finds the INVITE it cancels with ``method="INVITE"``.
    """
    via = request.top_via
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return f"s|{branch}|{via.host}:{via.port}|{method}"
    cseq = request.cseq.seq
    return f"s2543|{request.call_id}|{request.from_.tag}|{cseq}|{method}|{via.host}:{via.port}"


class Transaction:
    """Shared state-machine machinery: states, timers, output queues."""

    kind = ""

    def __init__(self, key: str, request: Request, peer: Peer, timers: TimerSettings) -> None:
        self.key = key
        self.request = request
        self.peer = peer
        self.settings = timers
        self.state = TxState.TERMINATED
        self.timers: dict[str, float] = {}
        self.outgoing: list[Outgoing] = []
        self.events: list[Event] = []

    def _set_state(self, new: TxState) -> None:
        allowed = TRANSITIONS[self.kind].get(self.state, frozenset())
        if new not in allowed:
            raise RuntimeError(f"{self.kind} {self.key}: illegal {self.state.value} -> {new.value}")
        log.debug("%s %s: %s -> %s", self.kind, self.key, self.state.value, new.value)
        self.state = new
        if new is TxState.TERMINATED:
            self.timers.clear()

    def _send(self, data: bytes) -> None:
        self.outgoing.append(Outgoing(data, self.peer))

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED

    def deadline(self) -> float | None:
        """The earliest pending timer, or None."""
        return min(self.timers.values(), default=None)

    def _fire_due(self, now: float) -> list[str]:
        due = sorted((t, name) for name, t in self.timers.items() if t <= now)
        for _, name in due:
            del self.timers[name]
        return [name for _, name in due]

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline has passed, in deadline order."""
        for name in self._fire_due(now):
            if not self.terminated:
                self._on_timer(name, now)

    def _on_timer(self, name: str, now: float) -> None:
        raise NotImplementedError

    def fail(self, reason: str) -> None:
        """The transport could not carry our request (RFC 3261 §17.1.4): tell the user if it still waits."""
        waiting = self.state in (TxState.CALLING, TxState.TRYING, TxState.PROCEEDING)
        if self.terminated:
            return
        self._set_state(TxState.TERMINATED)
        if waiting and self.kind.startswith("client"):
            self.events.append(TransportFailed(self.key, self.request, reason))

    def _wait(self, seconds: float, now: float) -> float:
        """Completed-state wait: zero on reliable transports (Timers D, I, J, K)."""
        return now if self.peer.reliable else now + seconds


class ClientTransaction(Transaction):
    """Non-INVITE client transaction, RFC 3261 §17.1.2 (figure 6)."""

    kind = "client-non-invite"

    def __init__(self, request: Request, peer: Peer, timers: TimerSettings, now: float) -> None:
        branch = request.top_via.branch or ""
        super().__init__(client_key(branch, request.method), request, peer, timers)
        self.state = TxState.TRYING
        self._interval = timers.t1
        self._wire = bytes(request)
        self._send(self._wire)
        if not peer.reliable:
            self.timers["E"] = now + timers.t1
        self.timers["F"] = now + 64 * timers.t1

    def receive_response(self, response: Response, now: float) -> None:
        """Provisional responses move to Proceeding; finals to Completed; both go up once."""
        if self.state in (TxState.COMPLETED, TxState.TERMINATED):
            return
        if response.status < 200:
            if self.state is TxState.TRYING:
                self._set_state(TxState.PROCEEDING)
        else:
            self._set_state(TxState.COMPLETED)
            self.timers.pop("E", None)
            self.timers.pop("F", None)
            self.timers["K"] = self._wait(self.settings.t4, now)
        self.events.append(ResponseReceived(response, self.key))

    def _on_timer(self, name: str, now: float) -> None:
        if name == "E" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            self._send(self._wire)
            grow = self.state is TxState.TRYING
            self._interval = min(2 * self._interval, self.settings.t2) if grow else self.settings.t2
            self.timers["E"] = now + self._interval
        elif name == "F":
            self._set_state(TxState.TERMINATED)
            self.events.append(TransactionTimedOut(self.key, self.request))
        elif name == "K":
            self._set_state(TxState.TERMINATED)


class ClientInviteTransaction(Transaction):
    """INVITE client transaction, RFC 3261 §17.1.1 (figure 5) with RFC 6026 §7.2 Accepted."""

    kind = "client-invite"

    def __init__(self, request: Request, peer: Peer, timers: TimerSettings, now: float) -> None:
        branch = request.top_via.branch or ""
        super().__init__(client_key(branch, "INVITE"), request, peer, timers)
        self.state = TxState.CALLING
        self._interval = timers.t1
        self._wire = bytes(request)
        self._ack: bytes | None = None
        self._send(self._wire)
        if not peer.reliable:
            self.timers["A"] = now + timers.t1
        self.timers["B"] = now + 64 * timers.t1

    def receive_response(self, response: Response, now: float) -> None:
        """RFC 3261 §17.1.1.2: 1xx → Proceeding, 2xx → Accepted, 300–699 → Completed with an ACK."""
        if response.status < 200:
            self._provisional(response)
        elif response.status < 300:
            self._success(response, now)
        else:
            self._failure(response, now)

    def _provisional(self, response: Response) -> None:
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            if self.state is TxState.CALLING:
                self._set_state(TxState.PROCEEDING)
            self.timers.pop("A", None)
            self.events.append(ResponseReceived(response, self.key))

    def _success(self, response: Response, now: float) -> None:
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            self._set_state(TxState.ACCEPTED)
            self.timers.clear()
            self.timers["M"] = now + 64 * self.settings.t1
            self.events.append(ResponseReceived(response, self.key))
        elif self.state is TxState.ACCEPTED:
            self.events.append(ResponseReceived(response, self.key))

    def _failure(self, response: Response, now: float) -> None:
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            self._set_state(TxState.COMPLETED)
            self.timers.clear()
            self.timers["D"] = self._wait(32.0, now)
            self._ack = bytes(build_ack_for_failure(self.request, response))
            self._send(self._ack)
            self.events.append(ResponseReceived(response, self.key))
        elif self.state is TxState.COMPLETED and self._ack is not None:
            self._send(self._ack)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "A" and self.state is TxState.CALLING:
            self._send(self._wire)
            self._interval *= 2
            self.timers["A"] = now + self._interval
        elif name == "B" and self.state is TxState.CALLING:
            self._set_state(TxState.TERMINATED)
            self.events.append(TransactionTimedOut(self.key, self.request))
        elif name in ("D", "M"):
            self._set_state(TxState.TERMINATED)


def build_ack_for_failure(request: Request, response: Response) -> Request:
    """RFC 3261 §17.1.1.3: the ACK for a non-2xx final response, part of the INVITE transaction."""
    headers = request.headers.copy()
    for name in list(dict.fromkeys(n for n, _ in headers)):
        if name not in ("Via", "From", "Call-ID", "Route", "Max-Forwards"):
            headers.remove(name)
    headers.set("Via", str(request.top_via))
    to_value = response.headers.get("To")
    if to_value is not None:
        headers.add("To", to_value)
    headers.add("CSeq", f"{request.cseq.seq} ACK")
    return Request("ACK", request.uri, headers)


class ServerTransaction(Transaction):
    """Non-INVITE server transaction, RFC 3261 §17.2.2 (figure 8)."""

    kind = "server-non-invite"

    def __init__(self, request: Request, peer: Peer, timers: TimerSettings) -> None:
        super().__init__(server_key(request), request, peer, timers)
        self.state = TxState.TRYING
        self._last: bytes | None = None

    def receive_request(self, request: Request, now: float) -> None:
        """A retransmission: resend the last response, if any (nothing in Trying)."""
        if self._last is not None and self.state in (TxState.PROCEEDING, TxState.COMPLETED):
            self._send(self._last)

    def send_response(self, response: Response, now: float) -> None:
        """The TU answers: 1xx keeps it open, a final response completes it (Timer J)."""
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            raise RuntimeError(f"response {response.status} after the final one on {self.key}")
        self._last = bytes(response)
        self._send(self._last)
        if response.status < 200:
            if self.state is TxState.TRYING:
                self._set_state(TxState.PROCEEDING)
            return
        self._set_state(TxState.COMPLETED)
        self.timers["J"] = self._wait(64 * self.settings.t1, now)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "J":
            self._set_state(TxState.TERMINATED)


class ServerInviteTransaction(Transaction):
    """INVITE server transaction, RFC 3261 §17.2.1 (figure 7) with RFC 6026 §7.1 Accepted."""

    kind = "server-invite"

    def __init__(self, request: Request, peer: Peer, timers: TimerSettings) -> None:
        super().__init__(server_key(request), request, peer, timers)
        self.state = TxState.PROCEEDING
        self._last: bytes | None = None
        self._interval = timers.t1

    def receive_request(self, request: Request, now: float) -> bool:
        """A retransmitted INVITE or an ACK. Returns True when an ACK must go up to the TU (2xx ACK)."""
        if request.method == "ACK":
            return self._receive_ack(now)
        if self._last is not None and self.state in (TxState.PROCEEDING, TxState.COMPLETED):
            self._send(self._last)
        return False

    def _receive_ack(self, now: float) -> bool:
        if self.state is TxState.COMPLETED:
            self._set_state(TxState.CONFIRMED)
            self.timers.clear()
            self.timers["I"] = self._wait(self.settings.t4, now)
        return self.state is TxState.ACCEPTED

    def send_response(self, response: Response, now: float, *, retransmit: bool = True) -> None:
        """1xx stay in Proceeding; 2xx → Accepted (Timer L); 300–699 → Completed (Timers G, H).

        ``retransmit=False`` (a refusal to a source that is not trusted, whose address may be
        forged): no Timer G; a retransmitted INVITE still gets the response again, one for one.
        """
        wire = bytes(response)
        if self.state is TxState.ACCEPTED and 200 <= response.status < 300:
            self._send(wire)  # the TU's own 2xx retransmission (RFC 3261 §13.3.1.4)
            return
        if self.state is not TxState.PROCEEDING:
            raise RuntimeError(
                f"response {response.status} in state {self.state.value} on {self.key}"
            )
        self._last = wire
        self._send(wire)
        if response.status < 200:
            return
        if response.status < 300:
            self._set_state(TxState.ACCEPTED)
            self.timers["L"] = now + 64 * self.settings.t1
            return
        self._set_state(TxState.COMPLETED)
        if not self.peer.reliable and retransmit:
            self.timers["G"] = now + self.settings.t1
        self.timers["H"] = now + 64 * self.settings.t1

    def _on_timer(self, name: str, now: float) -> None:
        if name == "G" and self.state is TxState.COMPLETED and self._last is not None:
            self._send(self._last)
            self._interval = min(2 * self._interval, self.settings.t2)
            self.timers["G"] = now + self._interval
        elif name == "H" and self.state is TxState.COMPLETED:
            self._set_state(TxState.TERMINATED)
            self.events.append(TransactionTimedOut(self.key, self.request))
        elif name in ("I", "L"):
            self._set_state(TxState.TERMINATED)


def stamp_via(request: Request, peer: Peer) -> None:
    """RFC 3261 §18.2.1 and RFC 3581 §4: record where the request really came from in its top Via."""
    via = request.top_via
    params: dict[str, str | None] = {}
    if via.host.strip("[]") != peer.host:
        params["received"] = peer.host
    if via.has_rport:
        params["received"] = peer.host
        params["rport"] = str(peer.port)
    if params:
        vias = request.headers.get_all("Via")
        request.headers.remove("Via")
        request.headers.add("Via", str(via.with_params(**params)))
        for value in vias[1:]:
            request.headers.add("Via", value)


def make_via(transport: str, host: str, port: int, branch: str) -> Via:
    """Our own Via with rport (RFC 3581) and the given branch."""
    return Via(transport.upper(), host, port, (("branch", branch), ("rport", None)))
