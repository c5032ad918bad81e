"""The audio codecs the phone implements, found by SDP name or static payload type (RFC 3551 §6).

``audio_codec("G722")`` gives the codec description; Opus is described with default parameters
(the negotiation replaces them with the fmtp of both sides). Listing Opus needs no libopus:
only making its encoder or decoder does (``opus_available()``).
"""

from __future__ import annotations

from securephone.media.codecs.base import AudioCodec
from securephone.media.codecs.g711 import PCMA, PCMU
from securephone.media.codecs.g722 import G722
from securephone.media.codecs.opus import OPUS

__all__ = ["AUDIO_CODECS", "audio_codec", "audio_codec_by_payload_type"]

AUDIO_CODECS: tuple[AudioCodec, ...] = (OPUS, G722, PCMU, PCMA)


def audio_codec(name: str) -> AudioCodec:
    """A codec by encoding name or rtpmap, case-insensitively (``"g722"``, ``"opus/48000/2"``).

    Encoding names are case-insensitive (RFC 4855 §3); ``KeyError`` for codecs we lack.
    """
    wanted = name.strip().lower()
    for codec in AUDIO_CODECS:
        if wanted in (codec.name.lower(), codec.rtpmap.lower()):
            return codec
    raise KeyError(f"unsupported codec {name!r}")


def audio_codec_by_payload_type(payload_type: int) -> AudioCodec:
    """A codec by static payload type (0 PCMU, 8 PCMA, 9 G722); ``KeyError`` otherwise."""
    for codec in AUDIO_CODECS:
        if codec.payload_type is not None and codec.payload_type == payload_type:
            return codec
    raise KeyError(f"no codec for static payload type {payload_type}")
