"""The call state machine in one table: (state, trigger) → next state, and how calls end.

Like h11's ``_state.py``: every change of a call's state is looked up here, so what can happen to a
call is readable in one place. ``CallEnding`` says why a call ended, as a value the CLI's exit code,
the JSON summary, the history and the ``Reason`` header (RFC 3326) all use — never a string compare.
"""

from __future__ import annotations

from enum import Enum


class CallState(Enum):
    """What a user sees of a call."""

    CALLING = "calling"  # INVITE sent, nothing back yet
    RINGING = "ringing"  # a provisional response from the far end
    INCOMING = "incoming"  # INVITE received, not answered yet
    ANSWERING = "answering"  # 2xx sent, waiting for the ACK
    CONNECTED = "connected"
    TERMINATING = "terminating"  # BYE or CANCEL sent, waiting for its answer
    TERMINATED = "terminated"


class Trigger(Enum):
    """What moves a call: a message in or out, a command, a timer."""

    PROVISIONAL = "provisional"  # a 1xx (not 100) to our INVITE
    ACCEPTED = "accepted"  # a 2xx to our INVITE, acceptable answer
    ANSWERED = "answered"  # we sent a 2xx to their INVITE
    ACKED = "acked"  # the ACK for our 2xx arrived (or stopped mattering)
    HANG_UP = "hang up"  # we sent BYE or CANCEL (or will, once a 1xx allows CANCEL)
    END = "end"  # the call is over, for any reason in CallEnding


class CallEnding(Enum):
    """Why a call ended. ``ok`` ones are a normal end of an answered call."""

    HUNG_UP_HERE = "hung up"
    HUNG_UP_THERE = "the far end hung up"
    CANCELLED_HERE = "cancelled"
    CANCELLED_THERE = "cancelled by the caller"
    DECLINED_HERE = "declined here"
    REJECTED = "rejected by the far end"
    NO_ANSWER = "no answer"
    TIMED_OUT = "timed out"
    MEDIA_REFUSED = "media refused"
    SECURITY_REFUSED = "security refused"
    TRANSPORT_FAILED = "transport failed"
    PROTOCOL_ERROR = "protocol error"

    @property
    def ok(self) -> bool:
        """A normal end: somebody hung up an established call."""
        return self in (CallEnding.HUNG_UP_HERE, CallEnding.HUNG_UP_THERE)

    @property
    def reason_cause(self) -> int | None:
        """The SIP cause for a ``Reason`` header on our BYE (RFC 3326), None for a plain hang-up."""
        return _REASON_CAUSE.get(self)


_REASON_CAUSE = {
    CallEnding.MEDIA_REFUSED: 488,
    CallEnding.SECURITY_REFUSED: 488,
    CallEnding.TIMED_OUT: 408,
    CallEnding.PROTOCOL_ERROR: 400,
    CallEnding.TRANSPORT_FAILED: 503,
}

S, T = CallState, Trigger
_LIVE = (S.CALLING, S.RINGING, S.INCOMING, S.ANSWERING, S.CONNECTED, S.TERMINATING)

TRANSITIONS: dict[tuple[CallState, Trigger], CallState] = {
    (S.CALLING, T.PROVISIONAL): S.RINGING,
    (S.CALLING, T.ACCEPTED): S.CONNECTED,
    (S.RINGING, T.ACCEPTED): S.CONNECTED,
    (S.INCOMING, T.ANSWERED): S.ANSWERING,
    (S.ANSWERING, T.ACKED): S.CONNECTED,
    (S.CALLING, T.HANG_UP): S.TERMINATING,
    (S.RINGING, T.HANG_UP): S.TERMINATING,
    (S.ANSWERING, T.HANG_UP): S.TERMINATING,  # the BYE waits for the ACK (RFC 3261 §15)
    (S.CONNECTED, T.HANG_UP): S.TERMINATING,
    **{(state, T.END): S.TERMINATED for state in _LIVE},
}


class IllegalTransition(Exception):
    """A trigger that the table does not allow in the current state (a bug, never user input)."""


def next_state(state: CallState, trigger: Trigger) -> CallState:
    """The state after ``trigger`` in ``state``; IllegalTransition when the table has no entry."""
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger.value} is not allowed when {state.value}") from None
