"""Audio sources for calls: WAV files, tones and silence, as frames at the codec's audio rate.

The media pump pulls one frame per packet time with ``read_frame()``: a ``np.int16`` array,
mono, at ``sample_rate``. Until told otherwise a source gives ``FRAME_SAMPLES`` (160) samples
at 8 kHz — the G.711 sampling clock (RFC 3551 §4.5.14) and its default 20 ms packet time
(RFC 3551 §4.5). When a call's codec is known the media channel calls
``set_format(sample_rate, frame_samples)`` (a source that has it is ``FormatAware``): 16 kHz
and 320 samples for 20 ms of G.722, 48 kHz and 960 for Opus. A WAV file is then converted
from its own rate straight to that rate — once, never through 8 kHz — and a tone is computed
at it. ``None`` means the source has finished (the call may hang up). Sources are sans-I/O: no sound device, no clock; a WAV file is read,
decoded, down-mixed and resampled once when it is opened, and every frame after that is a
slice of the converted samples.

WAV files are parsed here (RIFF chunks, ``fmt`` and ``data``) rather than with the stdlib
``wave`` module, which before Python 3.12 reads only integer PCM and rejects IEEE float and
``WAVE_FORMAT_EXTENSIBLE`` files, the formats most editors write at 24/32 bits. Accepted:
integer PCM 8 (unsigned), 16, 24 and 32 bits; IEEE float 32 and 64 bits; G.711 A-law and
µ-law (the usual telephony WAVs); each plain or wrapped in ``WAVE_FORMAT_EXTENSIBLE``; any
sample rate and channel count. A ``data`` chunk whose declared size runs past the end of the
file (a recorder that died before fixing its header, a streamed WAV) is read to the last
whole sample frame.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from securephone.audio.resample import resample, to_mono
from securephone.media.codecs.g711 import alaw_decode, ulaw_decode

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioError",
    "AudioSource",
    "FormatAware",
    "SilenceSource",
    "ToneSource",
    "WavInfo",
    "WavSource",
    "load_wav",
    "open_source",
]

FRAME_SAMPLES = 160
"""Samples per 20 ms frame at 8 kHz (RFC 3551 §4.5: default packet time 20 ms)."""
SAMPLE_RATE = 8000
"""The G.711 sampling rate (RFC 3551 §4.5.14), the default until a codec says otherwise."""
MAX_SAMPLE_RATE = 48000
"""The highest audio rate a codec here uses (Opus, RFC 7587 §4.1)."""

Pcm = npt.NDArray[np.int16]
Float = npt.NDArray[np.float64]


class AudioError(ValueError):
    """An audio file or source specification that cannot be used; the message says why."""


@runtime_checkable
class AudioSource(Protocol):
    """Gives one 20 ms frame per packet time; ``None`` once finished."""

    def read_frame(self) -> Pcm | None:
        """The next frame: int16, shape ``(FRAME_SAMPLES,)``; ``None`` when finished."""
        ...

    def close(self) -> None:
        """Release what the source holds; later reads return ``None``."""
        ...


@runtime_checkable
class FormatAware(Protocol):
    """A source or sink that works at the rate and frame size it is given (the codec's)."""

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """From now on, frames of ``frame_samples`` samples at ``sample_rate`` Hz."""
        ...


def _check_format(sample_rate: int, frame_samples: int) -> None:
    if sample_rate <= 0 or frame_samples <= 0:
        raise AudioError(f"bad audio format: {frame_samples} samples at {sample_rate} Hz")


# -- duration bookkeeping -------------------------------------------------------------------------
def _check_duration(duration: float | None) -> float | None:
    if duration is not None and (not math.isfinite(duration) or duration < 0):
        raise AudioError(f"duration must be a non-negative number of seconds, not {duration}")
    return duration


class _Budget:
    """Counts down the time a timed source still has to give (``None``: forever), in samples
    of the current format; a format change converts what is left."""

    def __init__(self, duration: float | None) -> None:
        seconds = _check_duration(duration)
        self.sample_rate, self.frame = SAMPLE_RATE, FRAME_SAMPLES
        self.remaining = None if seconds is None else round(seconds * SAMPLE_RATE)

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        _check_format(sample_rate, frame_samples)
        if self.remaining is not None:
            self.remaining = round(self.remaining * sample_rate / self.sample_rate)
        self.sample_rate, self.frame = sample_rate, frame_samples

    def take(self) -> int | None:
        """How many samples of the next frame carry signal; ``None`` when finished."""
        if self.remaining is None:
            return self.frame
        if self.remaining <= 0:
            return None
        count = min(self.remaining, self.frame)
        self.remaining -= count
        return count

    def stop(self) -> None:
        self.remaining = 0


# -- silence and tones ------------------------------------------------------------------------------
class SilenceSource:
    """Digital silence (all-zero frames), forever or for ``duration`` seconds."""

    def __init__(self, duration: float | None = None) -> None:
        self.duration = duration
        self._budget = _Budget(duration)

    @property
    def sample_rate(self) -> int:
        return self._budget.sample_rate

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """Frames of ``frame_samples`` zeros from now on."""
        self._budget.set_format(sample_rate, frame_samples)

    def read_frame(self) -> Pcm | None:
        """A frame of zeros, or ``None`` once ``duration`` has been given."""
        if self._budget.take() is None:
            return None
        return np.zeros(self._budget.frame, dtype=np.int16)

    def close(self) -> None:
        self._budget.stop()


class ToneSource:
    """A sine tone, or the sum of several (``frequencies=(350, 440)``: the US dial tone).

    ``amplitude`` is the peak of the whole signal as a fraction of full scale; with several
    tones each gets an equal share, so the sum never clips. Each tone keeps its phase from
    one frame to the next (reduced modulo 2π), so frame boundaries are seamless: the output
    is exactly the sampled continuous sine, however long the call. With ``duration`` the
    last frame is zero-padded and the source then finishes. A tone must lie below half the
    highest rate a codec uses (24 kHz); at a lower rate (``set_format``) tones at or above
    that rate's Nyquist frequency are left out, as a channel of that bandwidth would.

    Whole-hertz tones repeat within one second of samples, so at each rate one repeat is
    computed once and every frame is a slice of it (no sines per frame); other tones are
    computed frame by frame from the running phase.
    """

    def __init__(
        self,
        frequency: float = 440.0,
        amplitude: float = 0.3,
        duration: float | None = None,
        *,
        frequencies: tuple[float, ...] | None = None,
    ) -> None:
        self.frequencies = _check_frequencies(
            (frequency,) if frequencies is None else tuple(frequencies)
        )
        if not 0.0 <= amplitude <= 1.0:
            raise AudioError(f"tone amplitude must be within 0..1 of full scale, not {amplitude}")
        self.amplitude = amplitude
        self.duration = duration
        self._budget = _Budget(duration)
        self._freqs: Float = np.array(self.frequencies, dtype=np.float64)
        self._time = 0.0  # seconds of tone given so far (phase is kept across format changes)
        self._scale = amplitude * 32767 / len(self.frequencies)
        self._whole = all(f.is_integer() for f in self.frequencies)
        self._table: Pcm | None = None  # one repeat (+ a frame) at the current rate
        self._period = 0  # samples in one repeat
        self._position = 0  # where the next frame starts in the table

    @property
    def sample_rate(self) -> int:
        return self._budget.sample_rate

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """Compute the tone at ``sample_rate`` in frames of ``frame_samples`` from now on."""
        self._budget.set_format(sample_rate, frame_samples)
        self._table = None

    def _repeat_table(self, rate: int, size: int) -> Pcm:
        """The shared repeat table at ``rate`` (see :func:`_tone_table`); the position in it that
        continues the tone."""
        table = _tone_table(self.frequencies, self._scale, rate, size)
        self._period = len(table) - size
        self._position = round(self._time * rate) % self._period
        return table

    def read_frame(self) -> Pcm | None:
        """The next frame of the tone, or ``None`` once ``duration`` has been given."""
        count = self._budget.take()
        if count is None:
            return None
        rate, size = self._budget.sample_rate, self._budget.frame
        if self._whole:
            table = self._table
            if table is None or len(table) != self._period + size:
                table = self._table = self._repeat_table(rate, size)
            start = self._position
            self._position = (start + size) % self._period
            self._time += size / rate
            frame: Pcm = table[start : start + size].copy()
            if count < size:
                frame[count:] = 0
            return frame
        audible = self._freqs < rate / 2
        omega = 2 * np.pi * self._freqs / rate
        phase = (2 * np.pi * self._freqs * self._time) % (2 * np.pi)
        steps = np.arange(size, dtype=np.float64)
        angles = phase[:, None] + omega[:, None] * steps[None, :]
        angles = angles[audible] if audible.any() else np.zeros((1, size))
        self._time += size / rate
        frame = np.round(np.sin(angles).sum(axis=0) * self._scale).astype(np.int16)
        frame[count:] = 0
        return frame

    def close(self) -> None:
        self._budget.stop()


@functools.lru_cache(maxsize=64)
def _tone_table(frequencies: tuple[float, ...], scale: float, rate: int, size: int) -> Pcm:
    """One repeat of whole-hertz tones at ``rate`` plus ``size`` samples to slice across the
    wrap: sample k is the sine at k / rate, exactly what the per-frame sines give. Read-only and
    shared by every source of the same tone (a call per tone: one table, not one per call)."""
    period = math.lcm(*(rate // math.gcd(int(f), rate) for f in frequencies))
    freqs = np.array(frequencies, dtype=np.float64)
    audible = freqs[freqs < rate / 2]
    k = np.arange(period + size, dtype=np.float64) % period
    if audible.size:
        angles = 2 * np.pi * audible[:, None] * k[None, :] / rate
        table: Pcm = np.round(np.sin(angles).sum(axis=0) * scale).astype(np.int16)
    else:
        table = np.zeros(period + size, dtype=np.int16)
    table.setflags(write=False)
    return table


def _check_frequencies(frequencies: tuple[float, ...]) -> tuple[float, ...]:
    if not frequencies:
        raise AudioError("a tone needs at least one frequency")
    nyquist = MAX_SAMPLE_RATE / 2
    for freq in frequencies:
        if not 0 < freq < nyquist:
            raise AudioError(f"tone frequency must be above 0 and below {nyquist:g} Hz, not {freq}")
    return tuple(float(f) for f in frequencies)


# -- WAV files --------------------------------------------------------------------------------------
_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_ALAW = 0x0006
_FORMAT_MULAW = 0x0007
_FORMAT_EXTENSIBLE = 0xFFFE
_KSDATAFORMAT_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0022: "TrueSpeech",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG audio",
    0x0055: "MPEG Layer 3 (MP3)",
    0x0064: "G.726 ADPCM",
    0x00FF: "AAC",
    0x0161: "Windows Media Audio",
    _FORMAT_EXTENSIBLE: "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format",
}
_SUPPORTED = "integer PCM 8/16/24/32-bit, IEEE float 32/64-bit, G.711 A-law or µ-law (8-bit)"


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV file holds, as found in its ``fmt`` and ``data`` chunks."""

    encoding: str
    """``"pcm"``, ``"float"``, ``"alaw"`` or ``"mulaw"``."""
    bits: int
    """Container bits per sample (8, 16, 24, 32 or 64)."""
    sample_rate: int
    channels: int
    frames: int
    """Sample frames (samples per channel) in the file."""

    @property
    def duration(self) -> float:
        """Length of the file in seconds at its own rate."""
        return self.frames / self.sample_rate

    def describe(self) -> str:
        """E.g. ``"PCM 16-bit, 44100 Hz, stereo, 2.50 s"``."""
        name = {"pcm": "PCM", "float": "float", "alaw": "A-law", "mulaw": "µ-law"}[self.encoding]
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        return f"{name} {self.bits}-bit, {self.sample_rate} Hz, {layout}, {self.duration:.2f} s"


@dataclass(frozen=True, slots=True)
class _Format:
    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int


def load_wav(path: Path | str, sample_rate: int = SAMPLE_RATE) -> tuple[Pcm, WavInfo]:
    """Read a WAV file and convert it to mono int16 at ``sample_rate`` (down-mix, resample once,
    round, clip).

    Raises ``AudioError`` for a missing file, a file that is not a WAV, an encoding this
    module cannot decode, and a file without audio.
    """
    mono, info = load_wav_mono(path)
    return _to_pcm(mono, info.sample_rate, sample_rate), info


def _to_pcm(mono: Float, rate_in: int, rate_out: int) -> Pcm:
    converted = resample(mono, rate_in, rate_out)
    pcm: Pcm = np.clip(np.round(converted * 32768), -32768, 32767).astype(np.int16)
    return pcm


def load_wav_mono(path: Path | str) -> tuple[Float, WavInfo]:
    """Read a WAV file as float mono in [-1, 1) at its own rate (no conversion yet)."""
    file = Path(path)
    data = _read_file(file)
    fmt_body, payload = _riff_chunks(data, file)
    fmt = _parse_fmt(fmt_body, file)
    encoding, width = _encoding(fmt, file)
    frames = len(payload) // fmt.block_align
    if frames == 0:
        raise AudioError(f"{file}: the WAV file has no audio samples")
    samples = _decode(payload[: frames * fmt.block_align], encoding, width)
    mono = to_mono(samples.reshape(frames, fmt.channels))
    return mono, WavInfo(encoding, width * 8, fmt.rate, fmt.channels, frames)


def _read_file(file: Path) -> bytes:
    if not file.exists():
        raise AudioError(f"{file}: no such file")
    if not file.is_file():
        raise AudioError(f"{file}: not a regular file")
    try:
        return file.read_bytes()
    except OSError as exc:
        raise AudioError(f"{file}: cannot read: {exc.strerror or exc}") from None


def _riff_chunks(data: bytes, file: Path) -> tuple[memoryview, memoryview]:
    """The bodies of the ``fmt`` and first ``data`` chunk of a RIFF/WAVE file (not copied)."""
    if len(data) == 0:
        raise AudioError(f"{file}: the file is empty (0 bytes), not a WAV file")
    if data[:4] in (b"RIFX", b"RF64") and data[8:12] == b"WAVE":
        raise AudioError(f"{file}: {data[:4].decode()} WAV files are not supported")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{file}: not a WAV file (no RIFF/WAVE header)")
    chunks: dict[bytes, memoryview] = {}
    view = memoryview(data)
    offset = 12
    while offset + 8 <= len(data) and b"data" not in chunks:
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        chunks.setdefault(chunk_id, view[offset + 8 : offset + 8 + size])  # clamps at EOF
        offset += 8 + size + (size & 1)
    if b"fmt " not in chunks:
        raise AudioError(f"{file}: not a valid WAV file (no 'fmt ' chunk before the data)")
    if b"data" not in chunks:
        raise AudioError(f"{file}: not a valid WAV file (no 'data' chunk)")
    return chunks[b"fmt "], chunks[b"data"]


def _parse_fmt(body: memoryview, file: Path) -> _Format:
    if len(body) < 16:
        raise AudioError(f"{file}: not a valid WAV file ('fmt ' chunk of {len(body)} bytes)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    return _Format(_effective_tag(tag, body), channels, rate, block_align, bits)


def _encoding(fmt: _Format, file: Path) -> tuple[str, int]:
    """The decoder name and the container bytes per sample, or an ``AudioError``."""
    choices = {
        _FORMAT_PCM: ("pcm", (1, 2, 3, 4)),
        _FORMAT_FLOAT: ("float", (4, 8)),
        _FORMAT_ALAW: ("alaw", (1,)),
        _FORMAT_MULAW: ("mulaw", (1,)),
    }
    if fmt.tag not in choices:
        name = _FORMAT_NAMES.get(fmt.tag, "unknown")
        raise AudioError(
            f"{file}: unsupported WAV encoding: format 0x{fmt.tag:04X} ({name}); "
            f"supported: {_SUPPORTED}"
        )
    if fmt.channels == 0 or fmt.rate == 0:
        raise AudioError(f"{file}: not a valid WAV file ({fmt.channels} channels, {fmt.rate} Hz)")
    encoding, widths = choices[fmt.tag]
    width, rest = divmod(fmt.block_align, fmt.channels)
    if rest or width not in widths or fmt.bits > width * 8:
        raise AudioError(
            f"{file}: unsupported WAV encoding: {encoding} with {fmt.bits} bits in "
            f"{fmt.block_align}-byte frames of {fmt.channels} channels; supported: {_SUPPORTED}"
        )
    return encoding, width


def _effective_tag(tag: int, body: memoryview) -> int:
    """The format tag, looking inside ``WAVE_FORMAT_EXTENSIBLE`` at its sub-format GUID."""
    if tag != _FORMAT_EXTENSIBLE:
        return tag
    if len(body) < 40 or body[26:40] != _KSDATAFORMAT_TAIL:
        return _FORMAT_EXTENSIBLE
    sub_tag: int = struct.unpack_from("<H", body, 24)[0]
    return sub_tag


def _decode(payload: memoryview, encoding: str, width: int) -> Float:
    """Interleaved little-endian samples → float64 in [-1, 1) (floats passed through)."""
    if encoding == "float":
        raw = np.frombuffer(payload, dtype="<f4" if width == 4 else "<f8")
        return np.nan_to_num(raw.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    if encoding in ("alaw", "mulaw"):
        pcm = alaw_decode(payload) if encoding == "alaw" else ulaw_decode(payload)
        return pcm.astype(np.float64) / 32768
    return _decode_pcm(payload, width)


def _decode_pcm(payload: memoryview, width: int) -> Float:
    if width == 1:  # 8-bit WAV samples are unsigned, 128 = silence
        return (np.frombuffer(payload, dtype=np.uint8).astype(np.float64) - 128) / 128
    if width == 3:  # widen to 32 bits: the three bytes become the top of a little-endian int32
        wide = np.zeros((len(payload) // 3, 4), dtype=np.uint8)
        wide[:, 1:] = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3)
        return wide.view("<i4")[:, 0].astype(np.float64) / 2**31
    raw = np.frombuffer(payload, dtype="<i2" if width == 2 else "<i4")
    scaled: Float = raw.astype(np.float64) / float(2 ** (8 * width - 1))
    return scaled


class WavSource:
    """A WAV file, converted once to mono int16 at the call's rate and played frame by frame.

    The file is read at open and converted to 8 kHz; ``set_format`` (the codec's rate, before
    the first frame) converts the file's own samples again straight to that rate, so audio is
    never resampled twice. Without ``loop`` the last frame is zero-padded and ``read_frame``
    then returns ``None``; with ``loop`` the file repeats seamlessly (a frame may span the end
    and the start). Frames are fresh copies of slices, so callers may modify them.
    """

    def __init__(self, path: Path | str, *, loop: bool = False) -> None:
        self._mono, self.info = load_wav_mono(path)
        self.path = Path(path)
        self.loop = loop
        self.duration: float = self.info.duration
        self.sample_rate = 0
        self._frame = FRAME_SAMPLES
        self._pos = 0
        self._closed = False
        self.set_format(SAMPLE_RATE, FRAME_SAMPLES)

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """Frames of ``frame_samples`` at ``sample_rate`` from the current position on."""
        _check_format(sample_rate, frame_samples)
        if self._closed:
            return
        if sample_rate != self.sample_rate:
            pcm = _to_pcm(self._mono, self.info.sample_rate, sample_rate)
            if self.sample_rate:
                self._pos = round(self._pos * sample_rate / self.sample_rate)
            self.sample_rate, self.samples = sample_rate, pcm.size
            self._pcm = pcm
        self._frame = frame_samples
        self._buffer = self._layout(self._pcm, self.loop, frame_samples)
        self._buffer.flags.writeable = False

    @staticmethod
    def _layout(pcm: Pcm, loop: bool, frame: int) -> Pcm:
        """Room for every frame to be one slice: wrapped round when looping, padded if not."""
        if loop:
            wrapped: Pcm = np.resize(pcm, pcm.size + frame - 1)
            return wrapped
        padded = np.zeros(-(-pcm.size // frame) * frame, dtype=np.int16)
        padded[: pcm.size] = pcm
        return padded

    def read_frame(self) -> Pcm | None:
        """The next frame; ``None`` at the end (never when looping) or after close."""
        if self._closed or (not self.loop and self._pos >= self.samples):
            return None
        frame = np.zeros(self._frame, dtype=np.int16)
        chunk = self._buffer[self._pos : self._pos + self._frame]
        frame[: chunk.size] = chunk
        self._pos += self._frame
        if self.loop:
            self._pos %= self.samples
        return frame

    def close(self) -> None:
        self._closed = True
        self._buffer = np.zeros(0, dtype=np.int16)
        self._mono = np.zeros(0)


# -- the command-line helper ------------------------------------------------------------------------
_SPEC_HELP = "'silence', 'tone:FREQ', 'tone:FREQ+FREQ', a WAV file or 'loop:' and a WAV file"


def open_source(spec: str) -> AudioSource:
    """A source from a command-line word: ``silence``, ``tone:440``, ``tone:350+440``, a WAV
    file path, or ``loop:PATH`` for a WAV file played over and over.

    The keywords are matched first (case-insensitive); write ``./silence`` for a file of that
    name. Raises ``AudioError`` listing the forms above when ``spec`` is none of them.
    """
    text = spec.strip()
    lower = text.lower()
    if lower == "silence":
        return SilenceSource()
    if lower.startswith("tone:"):
        return ToneSource(frequencies=_parse_tone(text))
    if lower.startswith("loop:"):
        return WavSource(_existing(text[5:], spec), loop=True)
    return WavSource(_existing(text, spec))


def _existing(path: str, spec: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise AudioError(f"{spec!r}: no such file; audio sources are {_SPEC_HELP}")
    return file


def _parse_tone(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text[5:].split("+"))
    except ValueError:
        raise AudioError(
            f"{text!r}: bad tone; want tone:FREQ or tone:FREQ+FREQ in Hz, e.g. tone:350+440"
        ) from None
