"""Events the sans-I/O SIP core hands to its user: one frozen dataclass each."""

from __future__ import annotations

from dataclasses import dataclass

from securephone.sip.message import Request, Response
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
