"""The signalling state of one call, sans-I/O: the one source of truth for everything a call is.

The ``CallManager`` drives it with messages and timers; the shell's ``Call`` handle only reads it.
Every change of state goes through ``fire`` (the table in ``callstate``), which logs old → new,
keeps the call's history and puts a ``CallStateChanged`` on the phone's one ordered event queue.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from typing import Protocol

from securephone.sip.callstate import CallEnding, CallState, Trigger, next_state
from securephone.sip.dialog import Dialog
from securephone.sip.events import CallStateChanged, Event
from securephone.sip.message import Request, Response
from securephone.sip.sessiontimer import SessionTimer
from securephone.sip.transport import Peer

log = logging.getLogger(__name__)

EventQueue = deque[Event]


class CallMedia(Protocol):
    """What a call needs from its media side: SDP in and out (RFC 3264)."""

    def create_offer(self, hold: bool) -> bytes: ...

    def receive_offer(self, body: bytes, hold: bool) -> bytes: ...

    def receive_answer(self, body: bytes) -> None: ...

    @property
    def remote_hold(self) -> bool:
        """The far end's last SDP holds us (sendonly/inactive towards us)."""
        ...


class CallSession:
    """One call's signalling: state, dialog, transactions in flight, timers, how it ended."""

    def __init__(
        self,
        key: str,
        *,
        outgoing: bool,
        account: str | None,
        remote: str,
        events: EventQueue,
        now: float,
    ) -> None:
        self.key = key
        self.outgoing = outgoing
        self.account = account
        self.remote = remote  # the far end's URI
        self.remote_display_name: str | None = None  # as the far end gave it: untrusted text
        self.state = CallState.CALLING if outgoing else CallState.INCOMING
        self.reason = ""
        self.status: int | None = None
        self.ending: CallEnding | None = None
        self.history: list[tuple[str, str]] = []  # (state, reason), oldest first
        self.started_at = now
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.local_hold = False
        self.remote_hold = False
        self.dialog: Dialog | None = None
        self.forks: set[str | None] = set()  # To-tags of other forks' 2xx we ACKed and BYEd
        self.media: CallMedia | None = None
        self.peer: Peer | None = None  # where our INVITE went / theirs came from
        self.invite: Request | None = None  # our INVITE (UAC) or theirs (UAS)
        self.invite_tx: str | None = None
        self.local_tag = ""
        self.provisional = False  # a 1xx arrived: CANCEL is allowed (RFC 3261 §9.1)
        self.hangup_pending = False  # CANCEL waits for a 1xx, or BYE for the ACK
        self.pending: tuple[CallEnding, str] | None = (
            None  # how the call ends once BYE/CANCEL is done
        )
        self.auth_tries = 0
        self.min_se_retried = False  # RFC 4028 §7.4: one retry after 422 with the larger interval
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
        # RFC 4028 session timer: the agreement, our next refresh, when the session expires
        self.session_timer: SessionTimer | None = None
        self.session_refresh_at: float | None = None
        self.session_expires_at: float | None = None
        self._events = events

    # -- state ---------------------------------------------------------------------------------------
    def fire(
        self,
        trigger: Trigger,
        reason: str,
        status: int | None,
        now: float,
        ending: CallEnding | None = None,
    ) -> None:
        """The one place a call changes state: the table decides, the change is logged and queued."""
        old = self.state
        new = next_state(old, trigger)
        log.info("call %s: %s -> %s (%s)", self.key[:8], old.value, new.value, reason)
        self.state, self.reason = new, reason
        if status is not None:
            self.status = status
        self.history.append((new.value, reason))
        if new is CallState.CONNECTED:
            self.connected_at = now
            self.ring_deadline = None
        if new in (CallState.TERMINATING, CallState.TERMINATED):
            self.session_refresh_at = self.session_expires_at = None
        if new is CallState.TERMINATED:
            self.ending = ending or CallEnding.PROTOCOL_ERROR
            self.ended_at = now
            self.ok_next = self.ok_deadline = self.glare_at = self.ring_deadline = None
            self.hangup_pending = False
        event = CallStateChanged(self.key, old, new, reason, status, self.ending)
        self._events.append(event)

    def end(self, ending: CallEnding, reason: str, status: int | None, now: float) -> None:
        """Terminate the call (once) with ``ending``."""
        if not self.ended:
            self.fire(Trigger.END, reason, status, now, ending)

    def end_pending(
        self, now: float, default: CallEnding, suffix: str = "", status: int | None = None
    ) -> None:
        """Terminate with the ending recorded when BYE/CANCEL went out (``default`` if none)."""
        ending, reason = self.pending or (default, default.value)
        self.end(ending, reason + suffix, status, now)

    @property
    def ended(self) -> bool:
        return self.state is CallState.TERMINATED

    @property
    def answered(self) -> bool:
        """The call was connected at some point."""
        return self.connected_at is not None

    def timers(self) -> list[float]:
        """Pending deadlines of this call."""
        times = (
            self.ok_next,
            self.ok_deadline,
            self.glare_at,
            self.ring_deadline,
            self.session_refresh_at,
            self.session_expires_at,
        )
        return [t for t in times if t is not None]

    def glare_delay(self, rng: random.Random) -> float:
        """RFC 3261 §14.1: 2.1–4 s when we own the Call-ID, else 0–2 s."""
        return rng.uniform(2.1, 4.0) if self.outgoing else rng.uniform(0.0, 2.0)
