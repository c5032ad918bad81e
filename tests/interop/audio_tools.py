"""Test audio for interop calls: spoken WAVs, a WAV reader, and "did the far end hear this?".

* :func:`make_speech_wav` speaks a sentence with espeak-ng and converts it with sox to
  8 kHz mono 16-bit PCM (the format G.711 carries, RFC 3551 §4.5.14).  When the tools are
  missing it skips the test, or writes :func:`make_signal_wav` instead if asked to.
* :func:`make_signal_wav` is a deterministic, speech-like synthetic signal (syllable-long
  bursts of a few harmonics with random pitch) made with numpy: different seeds do not
  correlate with each other.
* :func:`read_wav` reads PCM / IEEE-float WAVs (also files whose header was never finalised,
  as a recorder killed mid-call leaves them) and returns int16 mono at a chosen rate.
* :func:`best_alignment` finds the delay of ``received`` against ``sent`` by FFT
  cross-correlation and returns the correlation coefficient over the overlapping part, so a
  G.711-coded, delayed, attenuated or clipped copy with leading silence scores close to 1 and
  unrelated audio (noise, another sentence) close to 0.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

Samples = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]
AudioInput = npt.NDArray[np.generic] | Path | str

RATE = 8000
"""Sample rate of every WAV this module writes (narrow-band telephony)."""

_PCM = 1
_IEEE_FLOAT = 3
_EXTENSIBLE = 0xFFFE


class WavFormatError(ValueError):
    """A file is not a WAV this module can read; the message says why."""


# --------------------------------------------------------------------------- writing


def missing_speech_tools() -> list[str]:
    """Names of the programs :func:`make_speech_wav` needs that are not installed."""
    return [name for name in ("espeak-ng", "sox") if shutil.which(name) is None]


def write_wav(path: Path | str, samples: npt.NDArray[np.generic], rate: int = RATE) -> Path:
    """Write mono 16-bit PCM (values are clipped to the int16 range)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(np.rint(np.asarray(samples, dtype=np.float64)), -32768, 32767)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.astype("<i2").tobytes())
    return path


def make_speech_wav(
    path: Path | str,
    text: str = "The quick brown fox jumps over the lazy dog by the river.",
    seconds: float | None = None,
    *,
    voice: str = "en",
    fallback_seed: int | None = None,
) -> Path:
    """Speak ``text`` into an 8 kHz mono 16-bit WAV at ``path`` (peak normalised to -3 dBFS).

    ``seconds`` pads with trailing silence or truncates to that length.  Without espeak-ng or
    sox the calling test is skipped, unless ``fallback_seed`` is given: then the deterministic
    :func:`make_signal_wav` is written instead (a different seed per "sentence").
    """
    path = Path(path)
    missing = missing_speech_tools()
    if missing:
        if fallback_seed is not None:
            return make_signal_wav(path, seed=fallback_seed, seconds=seconds or 3.5)
        pytest.skip(
            f"speech audio: {', '.join(missing)} not installed (apt-get install -y "
            "espeak-ng sox), or pass fallback_seed= for a synthetic signal"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="speech-") as tmp:
        raw = Path(tmp) / "espeak.wav"
        _run(["espeak-ng", "-v", voice, "-w", str(raw), text])
        sox = ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
        _run([*sox, str(path), "gain", "-n", "-3"])
    if seconds is not None:
        samples, _ = read_wav(path)
        write_wav(path, fit_length(samples, round(seconds * RATE)))
    return path


def make_signal_wav(path: Path | str, seed: int, seconds: float = 3.5) -> Path:
    """Write a deterministic speech-like test signal (8 kHz mono 16-bit) for ``seed``.

    It is a train of 80-250 ms "syllables": each a few harmonics of a random pitch
    (90-300 Hz) under a Hann envelope, separated by short pauses; two seeds give signals
    whose correlation is near zero at every lag.
    """
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    out = np.zeros(total, dtype=np.float64)
    pos = int(rng.integers(0, RATE // 10))
    while pos < total:
        length = int(rng.integers(RATE * 8 // 100, RATE // 4))
        out[pos : pos + length] = _syllable(rng, length)[: max(0, total - pos)]
        pos += length + int(rng.integers(RATE // 50, RATE // 6))
    peak = float(np.max(np.abs(out))) or 1.0
    return write_wav(path, out / peak * 0.7 * 32767)


def _syllable(rng: np.random.Generator, length: int) -> FloatArray:
    t = np.arange(length) / RATE
    pitch = rng.uniform(90.0, 300.0) * (1 + rng.uniform(-0.15, 0.15) * t / t[-1])
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    tone = sum(rng.uniform(0.2, 1.0) * np.sin(k * phase) for k in range(1, 6))
    return np.asarray(tone * np.hanning(length), dtype=np.float64)


def fit_length(samples: npt.NDArray[np.int16], count: int) -> Samples:
    """Truncate, or pad with trailing zeros, to exactly ``count`` samples."""
    out = np.zeros(count, dtype=np.int16)
    n = min(count, len(samples))
    out[:n] = samples[:n]
    return out


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Format:
    tag: int
    channels: int
    rate: int
    bits: int


def read_wav(path: Path | str, rate: int | None = RATE) -> tuple[Samples, int]:
    """Read a WAV file as int16 mono samples and return ``(samples, rate)``.

    Accepts 8/16/24/32-bit PCM and 32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE.
    Channels are averaged; with ``rate`` given (default 8000) the audio is resampled to it,
    with ``rate=None`` the file's own rate is kept.  A data chunk whose size field is 0 or
    too large (header not finalised) is read up to the end of the file.
    """
    data = Path(path).read_bytes()
    fmt, payload = _parse_riff(data, str(path))
    mono = _decode(fmt, payload).mean(axis=1) if fmt.channels > 1 else _decode(fmt, payload)[:, 0]
    out_rate = fmt.rate if rate is None else rate
    resampled = resample(mono, fmt.rate, out_rate)
    return np.clip(np.rint(resampled), -32768, 32767).astype(np.int16), out_rate


def _parse_riff(data: bytes, name: str) -> tuple[_Format, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavFormatError(f"{name}: not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body_start = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size], name)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavFormatError(f"{name}: data chunk before fmt chunk")
            end = len(data) if size == 0 or body_start + size > len(data) else body_start + size
            frame = fmt.channels * fmt.bits // 8
            return fmt, data[body_start : body_start + (end - body_start) // frame * frame]
        pos = body_start + size + (size & 1)
    raise WavFormatError(f"{name}: no fmt/data chunk")


def _parse_fmt(body: bytes, name: str) -> _Format:
    if len(body) < 16:
        raise WavFormatError(f"{name}: fmt chunk too short")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the SubFormat GUID
    if tag not in (_PCM, _IEEE_FLOAT) or channels < 1 or rate < 1:
        raise WavFormatError(f"{name}: unsupported WAV format tag {tag:#x}")
    if (tag, bits) not in {(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (3, 32), (3, 64)}:
        raise WavFormatError(f"{name}: unsupported sample size {bits} bits")
    return _Format(tag, channels, rate, bits)


def _decode(fmt: _Format, payload: bytes) -> FloatArray:
    """Samples as float64 scaled to the int16 range, shape (frames, channels)."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if fmt.tag == _IEEE_FLOAT:
        dtype = "<f4" if fmt.bits == 32 else "<f8"
        values = np.frombuffer(payload, dtype=dtype).astype(np.float64) * 32767.0
    elif fmt.bits == 8:
        values = (raw.astype(np.float64) - 128.0) * 256.0
    elif fmt.bits == 16:
        values = np.frombuffer(payload, dtype="<i2").astype(np.float64)
    elif fmt.bits == 24:
        triples = raw.reshape(-1, 3).astype(np.int32)
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = (np.where(ints >= 1 << 23, ints - (1 << 24), ints) / 256.0).astype(np.float64)
    else:
        values = np.frombuffer(payload, dtype="<i4").astype(np.float64) / 65536.0
    return np.asarray(values.reshape(-1, fmt.channels), dtype=np.float64)


def resample(samples: npt.NDArray[np.generic], rate_in: int, rate_out: int) -> FloatArray:
    """Resample by band-limited (windowed-sinc low-pass) linear interpolation.

    Good enough for correlating speech; not a studio resampler.
    """
    x = np.asarray(samples, dtype=np.float64)
    if rate_in == rate_out or len(x) == 0:
        return x
    if rate_out < rate_in:
        x = _lowpass(x, 0.45 * rate_out / rate_in)
    count = int(len(x) * rate_out // rate_in)
    positions = np.arange(count) * (rate_in / rate_out)
    return np.asarray(np.interp(positions, np.arange(len(x)), x), dtype=np.float64)


def _lowpass(x: FloatArray, cutoff: float, taps: int = 63) -> FloatArray:
    """FIR low-pass; ``cutoff`` is a fraction of the input sample rate (< 0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    return np.asarray(np.convolve(x, kernel / kernel.sum(), mode="same"), dtype=np.float64)


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Alignment:
    """Where ``sent`` lies inside ``received`` and how alike they are there.

    ``lag`` > 0 means ``received[n + lag]`` corresponds to ``sent[n]`` (the far end heard
    it ``lag`` samples late); ``overlap`` is the number of samples compared.
    """

    lag: int
    correlation: float
    overlap: int
    sent_len: int
    received_len: int
    sent_rms: float
    received_rms: float

    def describe(self, rate: int = RATE) -> str:
        """One line for assertion messages."""
        return (
            f"correlation={self.correlation:.3f} lag={self.lag} samples "
            f"({self.lag / rate * 1000:.0f} ms) overlap={self.overlap / rate:.2f} s "
            f"sent={self.sent_len / rate:.2f} s (rms {self.sent_rms:.0f}) "
            f"received={self.received_len / rate:.2f} s (rms {self.received_rms:.0f})"
        )


def best_alignment(
    sent: npt.NDArray[np.generic],
    received: npt.NDArray[np.generic],
    min_overlap: int | None = None,
) -> tuple[int, float]:
    """Return ``(lag_samples, normalized_correlation)`` of ``sent`` inside ``received``.

    See :func:`align` for the method; this is its short form.
    """
    found = align(sent, received, min_overlap)
    return found.lag, found.correlation


def align(
    sent: npt.NDArray[np.generic],
    received: npt.NDArray[np.generic],
    min_overlap: int | None = None,
) -> Alignment:
    """Locate ``sent`` in ``received`` by FFT cross-correlation.

    Both signals lose their DC offset.  The lag is the peak of the raw cross-correlation
    (energy-weighted, the classic delay estimate) among lags whose overlap is at least
    ``min_overlap`` samples (default: a quarter of the shorter signal), so a few samples of
    chance overlap at the edges cannot win.  The correlation reported is the Pearson-style
    coefficient ``Σ s·r / √(Σ s² · Σ r²)`` over the overlapping segments only, so leading
    silence, a delay, a gain change or the padding after the speech do not lower it, while
    G.711 coding or clipping lower it only a little.
    """
    s = _centred(sent)
    r = _centred(received)
    if len(s) == 0 or len(r) == 0:
        return Alignment(0, 0.0, 0, len(s), len(r), 0.0, 0.0)
    shortest = min(len(s), len(r))
    need = max(1, min(shortest, shortest // 4 if min_overlap is None else min_overlap))
    lags = np.arange(-(len(s) - 1), len(r))
    starts = np.maximum(0, -lags)  # first sent index compared at each lag
    stops = np.minimum(len(s), len(r) - lags)
    overlaps = stops - starts
    raw = _xcorr(s, r)
    allowed = overlaps >= need
    best = int(np.argmax(np.where(allowed, raw, -np.inf)))
    lag, start, stop = int(lags[best]), int(starts[best]), int(stops[best])
    seg_s, seg_r = s[start:stop], r[start + lag : stop + lag]
    energy = float(np.sqrt(np.dot(seg_s, seg_s) * np.dot(seg_r, seg_r)))
    corr = float(np.dot(seg_s, seg_r) / energy) if energy > 0 else 0.0
    return Alignment(lag, corr, stop - start, len(s), len(r), _rms(seg_s), _rms(seg_r))


def _centred(x: npt.NDArray[np.generic]) -> FloatArray:
    values = np.asarray(x, dtype=np.float64).ravel()
    return values - values.mean() if len(values) else values


def _xcorr(s: FloatArray, r: FloatArray) -> FloatArray:
    """``c[k] = Σ s[n]·r[n+k]`` for ``k = -(len(s)-1) … len(r)-1`` (FFT, zero-padded)."""
    size = 1 << (len(s) + len(r) - 1).bit_length()
    spectrum = np.fft.rfft(r, size) * np.conj(np.fft.rfft(s, size))
    full = np.fft.irfft(spectrum, size)
    return np.concatenate([full[size - (len(s) - 1) :], full[: len(r)]])


def _rms(x: FloatArray) -> float:
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def _as_samples(audio: AudioInput, rate: int) -> npt.NDArray[np.generic]:
    if isinstance(audio, (str, Path)):
        return read_wav(audio, rate)[0]
    return audio


def assert_audio_matches(
    sent: AudioInput,
    received: AudioInput,
    min_corr: float = 0.8,
    *,
    rate: int = RATE,
    min_overlap: int | None = None,
) -> Alignment:
    """Assert that ``received`` contains a copy of ``sent`` (arrays or WAV paths).

    Fails when the correlation at the best lag is below ``min_corr``, with a message giving
    the lag, correlation, overlap, lengths and RMS levels.  Returns the alignment found.
    """
    s, r = _as_samples(sent, rate), _as_samples(received, rate)
    found = align(s, r, min_overlap)
    if found.received_len == 0 or found.received_rms < 1.0:
        raise AssertionError(f"received audio is empty or silent: {found.describe(rate)}")
    if found.correlation < min_corr:
        matched, voiced = _segments_matching(s, r, found.lag, min_corr, rate)
        if voiced == 0 or matched / voiced < SEGMENT_SHARE:
            raise AssertionError(
                f"received audio does not match the sent audio (need correlation >= "
                f"{min_corr}, or {SEGMENT_SHARE:.0%} of its voiced 0.4 s pieces each matching "
                f"within ±{SLIP_SECONDS} s; {matched}/{voiced} did): {found.describe(rate)}"
            )
    return found


SEGMENT_SHARE = 0.85
SLIP_SECONDS = 0.3


def _segments_matching(
    s: npt.NDArray[np.generic], r: npt.NDArray[np.generic], lag: int, min_corr: float, rate: int
) -> tuple[int, int]:
    """Count voiced 0.4 s pieces of ``s`` found in ``r`` near ``lag``.

    A receiver's jitter buffer may slip by a few frames after an underrun (it conceals and then
    waits to refill), which shifts the rest of the audio: the whole sentence then no longer lines
    up with one lag, though every word arrived intact. Each piece is aligned on its own, within
    ±SLIP_SECONDS of the global lag; unrelated audio matches no piece.
    """
    sent = _centred(s)
    received = _centred(r)
    size, slip = int(0.4 * rate), int(SLIP_SECONDS * rate)
    loud = 0.25 * _rms(sent)
    matched = voiced = 0
    for start in range(0, len(sent) - size + 1, size):
        piece = sent[start : start + size]
        if _rms(piece) < loud:
            continue
        voiced += 1
        lo = max(0, start + lag - slip)
        window = received[lo : start + lag + size + slip]
        if len(window) < size:
            continue
        found = align(piece, window, size)
        matched += found.correlation >= min_corr
    return matched, voiced


WIDEBAND_TONE_HZ = 6000.0
"""The marker tone of the wideband test signal: above G.711's 4 kHz band, inside G.722's 7 kHz."""


def make_wideband_wav(
    path: Path | str, text: str, rate: int = 48000, *, fallback_seed: int | None = None
) -> tuple[Path, Path]:
    """Speech plus a steady 6 kHz tone at ``rate`` (48 kHz mono 16-bit) written to ``path``.

    Returns ``(wideband, speech)``: the second file is the same speech alone at 8 kHz, what a
    recording resampled to 8 kHz (which removes the tone) is compared with. The speech peaks
    at -6 dBFS, the tone at -20 dBFS.
    """
    path = Path(path)
    speech = make_speech_wav(path.with_suffix(".speech.wav"), text, fallback_seed=fallback_seed)
    narrow, _ = read_wav(speech)
    voice = resample(narrow.astype(np.float64), RATE, rate)
    voice *= 0.5 * 32767 / max(1.0, float(np.abs(voice).max()))
    t = np.arange(voice.size) / rate
    tone = 0.1 * 32767 * np.sin(2 * np.pi * WIDEBAND_TONE_HZ * t)
    write_wav(path, np.clip(np.rint(voice + tone), -32768, 32767), rate)
    return path, speech


def tone_share(
    samples: npt.NDArray[np.generic], rate: int, freq: float = WIDEBAND_TONE_HZ
) -> float:
    """Share of the signal's energy within ±150 Hz of ``freq`` (0 when ``rate`` cannot hold it)."""
    if rate <= 2 * freq or len(samples) < 1024:
        return 0.0
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) <= 150].sum() / (spectrum.sum() + 1e-9))


def speech_part(path: Path | str) -> Samples:
    """A recording of the wideband signal with the 6 kHz tone cut out (FFT band-stop at the
    file's own rate, before anything can fold it down), at 8 kHz: the speech to compare."""
    samples, rate = read_wav(path, rate=None)
    spectrum = np.fft.rfft(samples.astype(np.float64))
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    spectrum[np.abs(freqs - WIDEBAND_TONE_HZ) <= 400] = 0
    spectrum[freqs >= 0.45 * RATE] = 0  # nothing the 8 kHz comparison could alias
    clean = np.fft.irfft(spectrum, samples.size)
    narrow = resample(clean, rate, RATE)
    return np.clip(np.rint(narrow), -32768, 32767).astype(np.int16)
