"""Protocol errors that carry their SIP meaning (the status a UAS should answer)."""

from __future__ import annotations


class ProtocolError(Exception):
    """A SIP protocol violation; ``status_hint`` is the response code that fits (400, 413, 420, 505...)."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or unacceptable."""
