"""SDP (RFC 4566/8866) parse and serialise, offer/answer (RFC 3264), a=crypto (RFC 4568)."""

from securephone.errors import CryptoAttributeError, SdpError
from securephone.sdp.crypto import (
    CryptoAttribute,
    KeyParam,
    format_crypto,
    redact,
)
from securephone.sdp.offer_answer import (
    MediaCapabilities,
    NegotiatedMedia,
    create_answer,
    create_offer,
    hold_direction,
    make_reoffer,
    process_answer,
)
from securephone.sdp.session import (
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
    ZrtpHash,
    parse,
)

__all__ = [
    "Bandwidth",
    "Connection",
    "CryptoAttribute",
    "CryptoAttributeError",
    "KeyParam",
    "MediaCapabilities",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "ZrtpHash",
    "create_answer",
    "create_offer",
    "format_crypto",
    "hold_direction",
    "make_reoffer",
    "parse",
    "process_answer",
    "redact",
]
