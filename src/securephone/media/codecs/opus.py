"""Opus over RTP through libopus (RFC 6716 codec, RFC 7587 payload format and SDP parameters).

The codec is libopus itself (Debian ``libopus0``), reached through the maintained ctypes binding
``opuslib_next``; docs/codecs.md says why this one. The binding is imported lazily, when the
first encoder or decoder is made, so the rest of the phone works on a machine without libopus
(``opus_available()`` tells).

RTP facts (RFC 7587 §4.1, §7): the rtpmap is always ``opus/48000/2`` — the RTP clock is 48 kHz
and the "2" only says that the stream may be stereo — and the payload type is dynamic. Audio
here is 48 kHz ``int16``, mono unless stereo was negotiated. What a receiver wants is said in
``a=fmtp`` (§6.1): ``stereo``, ``useinbandfec``, ``usedtx``, ``cbr``, ``maxaveragebitrate``,
``maxplaybackrate`` and their ``sprop-`` counterparts; ``ptime``/``maxptime`` travel as SDP
attributes (§7), not in fmtp. ``OpusParams`` parses and writes them, refusing bad values.

An encoder is set from the *remote* party's parameters (``OpusParams`` of its answer or offer):
in-band FEC when it says ``useinbandfec=1``, a bitrate capped by its ``maxaveragebitrate``, the
audio bandwidth capped by its ``maxplaybackrate``, DTX only when it asks with ``usedtx=1``.
A decoder conceals a lost packet with libopus's PLC, or recovers it from the LBRR (FEC) data of
the next packet when that packet is at hand (RFC 6716 §2.1.7, §4.2.5).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from securephone.media.codecs.base import Payload, Pcm

__all__ = [
    "OPUS",
    "OPUS_CLOCK_RATE",
    "OpusCodec",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "OpusFmtpError",
    "OpusParams",
    "OpusUnavailable",
    "opus_available",
]

OPUS_CLOCK_RATE = 48000  # RFC 7587 §4.1: always 48 kHz, whatever the audio bandwidth
_FRAME_TENTHS_MS = (25, 50, 100, 200, 400, 600)  # Opus frame durations (RFC 6716 §2.1.4)
_MAX_FRAME = OPUS_CLOCK_RATE * 120 // 1000  # samples per channel in the longest packet
DEFAULT_BITRATE = 32000
DEFAULT_LOSS_PERCENT = 10  # what libopus assumes when FEC is on: LBRR is only sent for loss > 0
_BANDWIDTHS = (  # (highest playback rate, OPUS_BANDWIDTH_*) (RFC 7587 §6.1 maxplaybackrate)
    (8000, 1101),  # narrowband
    (12000, 1102),  # mediumband
    (16000, 1103),  # wideband
    (24000, 1104),  # super-wideband
)
_FULLBAND = 1105


class OpusError(ValueError):
    """libopus refused a payload or a frame (RFC 6716 §3 malformed packet, bad frame size)."""


class OpusUnavailable(RuntimeError):
    """libopus or its binding is not installed (Debian ``libopus0``, PyPI ``opuslib-next``)."""


class OpusFmtpError(ValueError):
    """An Opus ``a=fmtp`` parameter has a value RFC 7587 §6.1 does not allow."""


@cache
def _binding() -> ModuleType:
    """Import the binding once; it loads libopus at import and fails without it."""
    try:
        return importlib.import_module("opuslib_next")
    except Exception as exc:  # the binding raises a bare Exception when libopus is missing
        raise OpusUnavailable(f"Opus needs libopus and opuslib-next: {exc}") from exc


def opus_available() -> bool:
    """Whether Opus encoders and decoders can be made on this machine."""
    try:
        _binding()
    except OpusUnavailable:
        return False
    return True


# --- SDP parameters (RFC 7587 §6.1) -----------------------------------------------------------

_RANGES: dict[str, tuple[int, int]] = {
    "maxplaybackrate": (8000, 48000),
    "sprop-maxcapturerate": (8000, 48000),
    "maxaveragebitrate": (6000, 510000),
}
_FLAGS = ("stereo", "sprop-stereo", "cbr", "useinbandfec", "usedtx")


@dataclass(frozen=True, slots=True)
class OpusParams:
    """The Opus ``a=fmtp`` parameters (RFC 7587 §6.1); ``None`` or False means absent/default.

    Each describes the party that sends it: "I prefer to receive stereo" (``stereo``), "I can
    use in-band FEC" (``useinbandfec``), "send me at most this" (``maxaveragebitrate``,
    ``maxplaybackrate``), "I will send" (the ``sprop-`` ones). Unknown parameters are ignored
    on parse (§6.1 lets new ones appear) and kept out of ``to_fmtp``.
    """

    maxplaybackrate: int | None = None
    sprop_maxcapturerate: int | None = None
    maxaveragebitrate: int | None = None
    stereo: bool = False
    sprop_stereo: bool = False
    cbr: bool = False
    useinbandfec: bool = False
    usedtx: bool = False
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name.replace("-", "_"))
            if value is not None and not low <= value <= high:
                raise OpusFmtpError(f"{name}={value} is outside {low}..{high}")

    @classmethod
    def parse(cls, fmtp: str) -> OpusParams:
        """Parse the parameter list of ``a=fmtp:<pt> <params>`` (``key=value;...``).

        Names are case-insensitive; integers must be plain decimal digits in range and flags
        exactly 0 or 1; a parameter given twice or without ``=`` is refused.
        """
        values: dict[str, Any] = {}
        ignored: list[str] = []
        for item in filter(None, (part.strip() for part in fmtp.split(";"))):
            name, sep, raw = item.partition("=")
            name, raw = name.strip().lower(), raw.strip()
            if not sep or not name:
                raise OpusFmtpError(f"malformed Opus fmtp parameter {item!r}")
            if name not in _RANGES and name not in _FLAGS:
                ignored.append(name)
                continue
            key = name.replace("-", "_")
            if key in values:
                raise OpusFmtpError(f"Opus fmtp parameter {name} given twice")
            values[key] = _flag(name, raw) if name in _FLAGS else _integer(name, raw)
        return cls(**values, ignored=tuple(ignored))

    def to_fmtp(self) -> str:
        """Serialise the parameters that differ from the defaults, in a stable order."""
        parts: list[str] = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "ignored" or value is None or value is False:
                continue
            parts.append(f"{spec.name.replace('_', '-')}={int(value)}")
        return ";".join(parts)


def _integer(name: str, raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 7:
        raise OpusFmtpError(f"{name} must be a decimal integer, not {raw!r}")
    return int(raw)


def _flag(name: str, raw: str) -> bool:
    if raw not in ("0", "1"):
        raise OpusFmtpError(f"{name} must be 0 or 1, not {raw!r}")
    return raw == "1"


# --- encoder and decoder -----------------------------------------------------------------------


def _frame_size(samples: int) -> int:
    """Check that ``samples`` per channel at 48 kHz is an Opus frame duration."""
    if samples * 10000 % OPUS_CLOCK_RATE or samples * 10000 // OPUS_CLOCK_RATE not in (
        _FRAME_TENTHS_MS
    ):
        raise OpusError(f"{samples} samples at 48 kHz is not an Opus frame (2.5-60 ms)")
    return samples


def _bandwidth(maxplaybackrate: int | None) -> int:
    """The widest libopus bandwidth that fits a receiver's ``maxplaybackrate``."""
    for rate, bandwidth in _BANDWIDTHS:
        if maxplaybackrate is not None and maxplaybackrate <= rate:
            return bandwidth
    return _FULLBAND


class OpusEncoder:
    """An Opus encoder for one sending stream, set up from the receiver's ``OpusParams``."""

    def __init__(
        self,
        remote: OpusParams | None = None,
        *,
        channels: int = 1,
        bitrate: int = DEFAULT_BITRATE,
        loss_percent: int = DEFAULT_LOSS_PERCENT,
    ) -> None:
        remote = remote or OpusParams()
        if channels not in (1, 2):
            raise ValueError("Opus streams here are mono or stereo")
        self.channels = channels
        self.bitrate = min(bitrate, remote.maxaveragebitrate or bitrate)
        self.fec = remote.useinbandfec
        self._encoder = _binding().Encoder(OPUS_CLOCK_RATE, channels, "voip")
        self._encoder.bitrate = self.bitrate
        self._encoder.inband_fec = int(self.fec)
        self._encoder.packet_loss_perc = loss_percent if self.fec else 0
        self._encoder.dtx = int(remote.usedtx)
        self._encoder.vbr = int(not remote.cbr)
        self._encoder.max_bandwidth = _bandwidth(remote.maxplaybackrate)

    @property
    def settings(self) -> dict[str, int]:
        """What libopus reports it is doing (read back through its CTLs), for tests and logs."""
        return {
            "bitrate": int(self._encoder.bitrate),
            "inband_fec": int(self._encoder.inband_fec),
            "packet_loss_perc": int(self._encoder.packet_loss_perc),
            "dtx": int(self._encoder.dtx),
            "vbr": int(self._encoder.vbr),
            "max_bandwidth": int(self._encoder.max_bandwidth),
        }

    def encode(self, pcm: npt.ArrayLike) -> bytes:
        """Encode one frame (2.5-60 ms of 48 kHz ``int16``, interleaved if stereo)."""
        samples = np.ascontiguousarray(pcm)
        if samples.dtype != np.int16:
            raise TypeError(f"Opus encodes int16 samples, got {samples.dtype}")
        if samples.size % self.channels:
            raise OpusError("a stereo frame needs an even number of interleaved samples")
        frame = _frame_size(samples.size // self.channels)
        try:
            return bytes(self._encoder.encode(samples.tobytes(), frame))
        except Exception as exc:  # the binding's OpusError carries libopus's message
            raise OpusError(f"libopus encode failed: {exc}") from exc


class OpusDecoder:
    """An Opus decoder for one receiving stream: 48 kHz ``int16`` out, PLC and FEC on loss."""

    def __init__(self, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise ValueError("Opus streams here are mono or stereo")
        self.channels = channels
        self._decoder = _binding().Decoder(OPUS_CLOCK_RATE, channels)

    def decode(self, payload: Payload) -> Pcm:
        """Decode one RTP payload (RFC 7587 §4.2); ``OpusError`` if libopus refuses it."""
        data = bytes(payload)
        if not data:
            raise OpusError("an empty payload is not an Opus packet (RFC 6716 §3.4 R1)")
        return self._run(data, _MAX_FRAME, fec=False)

    def conceal(self, samples: int, next_payload: Payload | None = None) -> Pcm | None:
        """Audio for one lost packet of ``samples`` per channel (RFC 6716 §4.4 PLC).

        With ``next_payload``, decode the lost frame from that packet's in-band FEC (LBRR)
        data; libopus falls back to PLC when the packet carries none. ``next_payload`` must
        then still be decoded normally afterwards.
        """
        size = _frame_size(samples)
        if next_payload:
            return self._run(bytes(next_payload), size, fec=True)
        return self._run(b"", size, fec=False)

    def _run(self, data: bytes, size: int, *, fec: bool) -> Pcm:
        try:
            raw = self._decoder.decode(data, size, decode_fec=fec)
        except Exception as exc:
            raise OpusError(f"libopus decode failed: {exc}") from exc
        return np.frombuffer(raw, dtype=np.int16).copy()


@dataclass(frozen=True, slots=True)
class OpusCodec:
    """Opus as an RTP audio codec (codecs/base.py ``AudioCodec``; RFC 7587 §6, §7).

    ``local`` is what we announce in our ``a=fmtp`` (what we like to receive), ``remote`` what
    the other side announced (how we must send); ``ptime`` the packet duration we send.
    """

    local: OpusParams = field(default_factory=lambda: OpusParams(useinbandfec=True))
    remote: OpusParams = field(default_factory=OpusParams)
    ptime: int = 20
    bitrate: int = DEFAULT_BITRATE
    name: str = "opus"
    payload_type: int | None = None  # dynamic (RFC 7587 §7)
    clock_rate: int = OPUS_CLOCK_RATE
    sample_rate: int = OPUS_CLOCK_RATE

    def __post_init__(self) -> None:
        if self.ptime * 10 not in _FRAME_TENTHS_MS:
            raise OpusFmtpError(f"ptime {self.ptime} ms is not an Opus frame duration")

    @property
    def channels(self) -> int:
        """2 only when both sides said stereo=1 (we send what they want, receive what we want)."""
        return 2 if self.local.stereo and self.remote.stereo else 1

    @property
    def rtpmap(self) -> str:
        """Always ``opus/48000/2`` (RFC 7587 §7)."""
        return f"{self.name}/{self.clock_rate}/2"

    @property
    def fmtp(self) -> str | None:
        """Our ``a=fmtp`` parameter list, or None when everything is at its default."""
        return self.local.to_fmtp() or None

    def timestamp_units(self, milliseconds: int) -> int:
        """RTP timestamp units: 48 per millisecond, 960 for 20 ms."""
        return self.clock_rate * milliseconds // 1000

    def frame_samples(self, milliseconds: int) -> int:
        """PCM samples per channel at 48 kHz: 960 for 20 ms."""
        return self.sample_rate * milliseconds // 1000

    def new_encoder(self) -> OpusEncoder:
        """An encoder shaped by the remote parameters."""
        return OpusEncoder(self.remote, channels=self.channels, bitrate=self.bitrate)

    def new_decoder(self) -> OpusDecoder:
        """A decoder giving PCM in our channel count."""
        return OpusDecoder(self.channels)


OPUS = OpusCodec()
