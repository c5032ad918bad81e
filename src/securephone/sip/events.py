"""Every event of the sans-I/O SIP core, one frozen dataclass each (h11's ``_events.py``).

The transaction layer's events feed the user agent; the user agent's and the calls' events go
out in one ordered queue to the shell.
"""

from __future__ import annotations

from dataclasses import dataclass

from securephone.sip.callstate import CallEnding, CallState
from securephone.sip.message import Request, Response
from securephone.sip.registration import StateChange
from securephone.sip.transport import Peer


@dataclass(frozen=True)
class Event:
    """Base class of every SIP core event."""


@dataclass(frozen=True)
class RequestReceived(Event):
    """A new request arrived (RFC 3261 §17.2): a server transaction now exists for it (none for ACK)."""

    request: Request
    peer: Peer
    transaction_id: str | None


@dataclass(frozen=True)
class ResponseReceived(Event):
    """A client transaction got a response (RFC 3261 §17.1)."""

    response: Response
    transaction_id: str


@dataclass(frozen=True)
class TransactionTimedOut(Event):
    """Timer B or F fired: the request got no final response (RFC 3261 §17.1.1.2, §17.1.2.2)."""

    transaction_id: str
    request: Request


@dataclass(frozen=True)
class TransportFailed(Event):
    """The transport could not deliver a request (RFC 3261 §17.1.4)."""

    transaction_id: str
    request: Request
    reason: str


@dataclass(frozen=True)
class StrayResponse(Event):
    """A response matched no client transaction, e.g. a retransmitted 2xx to INVITE (RFC 3261 §17.1.1.2)."""

    response: Response
    peer: Peer


@dataclass(frozen=True)
class MalformedMessage(Event):
    """A message from the network could not be parsed; it was answered with status when it was a request."""

    peer: Peer
    reason: str
    status: int


# -- the user agent's events (registrations, out-of-dialog requests) -----------------------------


@dataclass(frozen=True)
class RegistrationChanged(Event):
    """An account's registration state changed (``flow``: the reg-id, with several flows)."""

    account: str
    change: StateChange
    flow: int | None = None


@dataclass(frozen=True)
class FlowTimerChanged(Event):
    """A registrar's 2xx set or changed the Flow-Timer of an outbound flow (RFC 5626 §4.4.1):
    keep-alives on that flow must come at least every ``seconds`` (None: it gave none now)."""

    account: str
    seconds: int | None
    flow: int | None = None


@dataclass(frozen=True)
class RequestCompleted(Event):
    """An out-of-dialog request we sent got its final response (after any auth round)."""

    handle: str
    response: Response


@dataclass(frozen=True)
class RequestFailed(Event):
    """An out-of-dialog request got no final response: timeout or transport failure."""

    handle: str
    reason: str


# -- call events: one ordered stream, in the order things happened --------------------------------


@dataclass(frozen=True)
class IncomingCall(Event):
    """An INVITE arrived for a new call: answer it or reject it."""

    call_id: str
    request: Request


@dataclass(frozen=True)
class CallStateChanged(Event):
    """A call moved from one state to another; ``status`` is the SIP status behind it, if any.

    ``ending`` is set when ``new`` is TERMINATED.
    """

    call_id: str
    old: CallState
    new: CallState
    reason: str
    status: int | None
    ending: CallEnding | None = None


@dataclass(frozen=True)
class CallMediaUpdated(Event):
    """An offer/answer exchange completed on a connected call: (re)start the media with it."""

    call_id: str


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


@dataclass(frozen=True)
class SecurityAlarm(Event):
    """Something tried to lower a call's security and was refused (e.g. a re-INVITE to plain RTP,
    a weaker suite, SDES keys instead of an end-to-end agreement): users must see it."""

    call_id: str
    text: str
