"""One call's signalling (RFC 3261 §13–15, RFC 3264 via a media negotiator), sans-I/O.

The call asks a ``CallMedia`` for SDP offers and answers and tells it about the other side's; it never
touches a socket. The user agent feeds it responses, in-dialog requests and timer expiries.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from securephone.sip.dialog import Dialog
from securephone.sip.events import Event
from securephone.sip.message import Request, Response

log = logging.getLogger(__name__)


class MediaError(Exception):
    """The media negotiator cannot accept an SDP body; ``status`` is the SIP answer (488, 400)."""

    def __init__(self, message: str, status: int = 488) -> None:
        super().__init__(message)
        self.status = status


class CallMedia(Protocol):
    """What a call needs from its media side: SDP in and out (RFC 3264)."""

    def create_offer(self, hold: bool) -> bytes: ...

    def receive_offer(self, body: bytes, hold: bool) -> bytes: ...

    def receive_answer(self, body: bytes) -> None: ...

    @property
    def remote_hold(self) -> bool:
        """The far end's last SDP holds us (sendonly/inactive towards us)."""
        ...


class CallState(Enum):
    """What a user sees of a call."""

    CALLING = "calling"  # INVITE sent, nothing back yet
    RINGING = "ringing"  # a provisional response from the far end
    INCOMING = "incoming"  # INVITE received, not answered yet
    ANSWERING = "answering"  # 2xx sent, waiting for the ACK
    CONNECTED = "connected"
    TERMINATING = "terminating"  # BYE or CANCEL sent
    TERMINATED = "terminated"


C = CallState
TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    C.CALLING: frozenset({C.RINGING, C.CONNECTED, C.TERMINATING, C.TERMINATED}),
    C.RINGING: frozenset({C.CONNECTED, C.TERMINATING, C.TERMINATED}),
    C.INCOMING: frozenset({C.ANSWERING, C.TERMINATED}),
    C.ANSWERING: frozenset({C.CONNECTED, C.TERMINATING, C.TERMINATED}),
    C.CONNECTED: frozenset({C.TERMINATING, C.TERMINATED}),
    C.TERMINATING: frozenset({C.TERMINATED}),
    C.TERMINATED: frozenset(),
}


@dataclass(frozen=True)
class CallStateChanged(Event):
    """A call moved from one state to another; ``status`` is the SIP status behind it, if any."""

    call_id: str
    old: CallState
    new: CallState
    reason: str
    status: int | None


@dataclass(frozen=True)
class CallMediaUpdated(Event):
    """An offer/answer exchange completed: (re)start the media with what was negotiated."""

    call_id: str


@dataclass(frozen=True)
class IncomingCall(Event):
    """An INVITE arrived for a new call: answer it with ``UserAgent.answer`` or reject it."""

    call_id: str
    request: Request


@dataclass(frozen=True)
class HoldChanged(Event):
    """Local or remote hold changed (RFC 3264 §8.4)."""

    call_id: str
    local_hold: bool
    remote_hold: bool


@dataclass(frozen=True)
class InfoReceived(Event):
    """An INFO inside the call (e.g. application/dtmf-relay)."""

    call_id: str
    request: Request


class Call:
    """Signalling state of one call. Owned and driven by ``UserAgent``."""

    def __init__(self, key: str, outgoing: bool, account: str | None, state: CallState) -> None:
        self.key = key
        self.outgoing = outgoing
        self.account = account
        self.state = state
        self.reason = ""
        self.status: int | None = None
        self.dialog: Dialog | None = None
        self.media: CallMedia | None = None
        self.invite: Request | None = None  # our INVITE (UAC) or theirs (UAS)
        self.invite_tx: str | None = None
        self.local_tag = ""
        self.local_hold = False
        self.remote_hold = False
        self.provisional = False  # a 1xx arrived: CANCEL is allowed (RFC 3261 §9.1)
        self.cancel_wanted = False
        self.auth_tries = 0
        self.offer_in_ack = False  # we sent the offer in our 2xx (INVITE without SDP)
        self.reinvite_tx: str | None = None
        self.reinvite_wanted: bool | None = None  # hold state asked while a re-INVITE is busy
        self.reinvite_request: Request | None = None
        self.answer_ok: Response | None = None  # our 2xx to retransmit until ACK (§13.3.1.4)
        self.ok_interval = 0.0
        self.ok_next: float | None = None
        self.ok_deadline: float | None = None
        self.glare_at: float | None = None
        self.ring_deadline: float | None = None
        self.started_at: float | None = None
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.events: list[Event] = []

    def set_state(self, new: CallState, reason: str, status: int | None, now: float) -> None:
        """The one place a call changes state; logs old → new."""
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"call {self.key}: illegal {old.value} -> {new.value}")
        log.info("call %s: %s -> %s (%s)", self.key, old.value, new.value, reason)
        self.state, self.reason, self.status = new, reason, status
        if new is CallState.CONNECTED:
            self.connected_at = now
        if new is CallState.TERMINATED:
            self.ended_at = now
            self.ok_next = self.ok_deadline = self.glare_at = self.ring_deadline = None
        self.events.append(CallStateChanged(self.key, old, new, reason, status))

    @property
    def ended(self) -> bool:
        return self.state is CallState.TERMINATED

    def timers(self) -> list[float]:
        """Pending deadlines of this call."""
        times = (self.ok_next, self.ok_deadline, self.glare_at, self.ring_deadline)
        return [t for t in times if t is not None]

    def glare_delay(self, rng: random.Random) -> float:
        """RFC 3261 §14.1: 2.1–4 s when we own the Call-ID, else 0–2 s."""
        return rng.uniform(2.1, 4.0) if self.outgoing else rng.uniform(0.0, 2.0)
