"""The audio codecs the phone implements, found by SDP name or static payload type (RFC 3551 §6).

``audio_codec("G722")`` gives the codec description; Opus is described with default parameters
(the negotiation replaces them with the fmtp of both sides). Listing Opus needs no libopus:
only making its encoder or decoder does (``opus_available()``).
"""

from __future__ import annotations

import logging

from securephone.media.codecs.base import AudioCodec
from securephone.media.codecs.g711 import PCMA, PCMU
from securephone.media.codecs.g722 import G722
from securephone.media.codecs.opus import OPUS, OpusCodec, OpusFmtpError, OpusParams

__all__ = [
    "AUDIO_CODECS",
    "audio_codec",
    "audio_codec_by_payload_type",
    "bandwidth_label",
    "negotiated_codec",
]

log = logging.getLogger(__name__)

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


def negotiated_codec(
    name: str, local_fmtp: str | None, remote_fmtp: str | None, ptime: int
) -> AudioCodec:
    """The codec an offer/answer agreed on, shaped by both sides' ``a=fmtp`` (RFC 7587 §6.1).

    A peer's Opus parameters only say what it prefers to receive, and every Opus decoder decodes
    every Opus packet (RFC 7587 §7), so a malformed or out-of-range parameter list is ignored
    (defaults are used) rather than failing the call. The Opus frame is ``ptime`` when that is
    an Opus frame duration, else 20 ms (RFC 6716 §2.1.4 frames last 2.5 to 60 ms).
    """
    codec = audio_codec(name)
    if not isinstance(codec, OpusCodec):
        return codec
    return OpusCodec(
        local=_opus_params(local_fmtp, "our"),
        remote=_opus_params(remote_fmtp, "the peer's"),
        ptime=ptime if ptime in (10, 20, 40, 60) else 20,
    )


def _opus_params(fmtp: str | None, whose: str) -> OpusParams:
    try:
        return OpusParams.parse(fmtp or "")
    except OpusFmtpError as exc:
        log.warning("%s Opus fmtp is ignored (%s): using the RFC 7587 defaults", whose, exc)
        return OpusParams()


def bandwidth_label(codec: AudioCodec) -> str:
    """How users see a codec: ``"G722 (wideband, 16 kHz)"``, ``"PCMU (narrowband, 8 kHz)"``.

    Opus is named by the widest audio it may carry here: fullband 48 kHz unless the receiver
    capped it with ``maxplaybackrate`` (RFC 7587 §6.1).
    """
    rate = codec.sample_rate
    if isinstance(codec, OpusCodec) and codec.remote.maxplaybackrate is not None:
        rate = min(rate, codec.remote.maxplaybackrate)
    band = _BANDS.get(rate, "fullband" if rate > 24000 else "wideband")
    return f"{codec.name} ({band}, {rate // 1000} kHz)"


_BANDS = {8000: "narrowband", 12000: "mediumband", 16000: "wideband", 24000: "super-wideband"}
