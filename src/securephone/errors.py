"""The core's error types, in one module (sip, sdp and media raise them; the shell catches them).

Every protocol error carries its SIP meaning: ``status_hint`` is the response a UAS should send
(h11's ``error_status_hint``). Parser-internal refinements (``InvalidRequestError``,
``UnsupportedChallenge``) live beside their parsers and subclass these.
"""

from __future__ import annotations

from collections.abc import Sequence


class ProtocolError(Exception):
    """A SIP protocol violation; ``status_hint`` is the response code that fits (400, 413, 420, 505...)."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed or unacceptable."""


class SdpError(RemoteProtocolError):
    """Malformed (``status_hint`` 400) or unacceptable (488) SDP; RFC 3261 §21.4.26 for 488.

    A UAS can answer any SDP problem with ``status_hint`` like any other protocol error.
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message, status_hint)


class CryptoAttributeError(SdpError):
    """A malformed or unusable ``a=crypto`` attribute (RFC 4568); never quotes the key."""


class MediaParseError(RemoteProtocolError, ValueError):
    """A malformed RTP, RTCP or payload-format packet arrived from the network.

    It is a ``RemoteProtocolError`` (the peer sent garbage) and a ``ValueError``.
    """


class MediaError(Exception):
    """The media side cannot accept an SDP body; ``status`` is the SIP answer (488, 400).

    ``security`` is True when the refusal comes from the security policy (SRTP mandatory and not
    possible, keys that would cross plaintext signalling) rather than from codecs or syntax.
    """

    def __init__(self, message: str, status: int = 488, *, security: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.security = security


class SrtpError(MediaError):
    """SDES keying or SRTP failed; ``status`` is the SIP answer (488 for unacceptable crypto).

    ``reasons`` lists why each rejected ``a=crypto`` line was refused. No key material is ever
    part of the message.
    """

    def __init__(self, message: str, status: int = 488, reasons: Sequence[str] = ()) -> None:
        super().__init__(message, status, security=True)
        self.reasons = list(reasons)


class CallError(Exception):
    """A call operation that cannot be done now (wrong state, unknown call, unknown account)."""


class StunError(RemoteProtocolError, ValueError):
    """A datagram is not a well-formed STUN message (RFC 8489 §5, §14)."""
