"""Hear and see a media stream: its payload decoded as G.711 to WAV, and a picture of it.

The payload is decoded exactly as a receiver without keys would: G.711 (µ-law, or A-law for
PCMA; ITU-T G.711, RFC 3551 §4.5.14), placed by RTP timestamp (RFC 3550 §5.1) so lost
packets become silence. For plain RTP this is the call's audio; for SRTP it is what the
ciphertext sounds like — noise. When the stream could be decrypted, the decrypted audio is
exported next to it.

Each picture shows the waveform and a spectrogram (matplotlib's Agg canvas, no display and no
global pyplot state): speech has pauses, harmonics and formants; ciphertext fills the whole
spectrogram evenly. :func:`spectral_flatness` puts a number on that (near 0 for tones and
speech, about 0.5-0.6 for white noise, as the geometric/arithmetic mean ratio of a periodogram
of white noise is e^-γ ≈ 0.56).
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from securephone.media.codecs.g711 import alaw_decode, ulaw_decode
from securephone.media.rtp import ts_diff
from securephone.verify.media import MediaStream

__all__ = [
    "RATE",
    "StreamExport",
    "decrypted_audio",
    "export_stream",
    "render_png",
    "spectral_flatness",
    "timeline",
    "wire_audio",
    "write_wav",
]

RATE = 8000
MAX_SECONDS = 3600
Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class StreamExport:
    """Files written for one stream, and how noise-like each audio is."""

    wav: Path
    png: Path
    flatness: float | None
    decrypted_wav: Path | None = None
    decrypted_png: Path | None = None
    decrypted_flatness: float | None = None


def timeline(items: Sequence[tuple[int, bytes]], decode_a_law: bool) -> Pcm:
    """Decode (timestamp, payload) pairs as G.711 and place them by timestamp.

    Falls back to plain concatenation when timestamps jump backwards or absurdly far.
    """
    if not items:
        return np.zeros(0, dtype=np.int16)
    decode = alaw_decode if decode_a_law else ulaw_decode
    chunks = [decode(payload) for _, payload in items]
    base = items[0][0]
    positions = [ts_diff(stamp, base) for stamp, _ in items]
    end = max(p + len(c) for p, c in zip(positions, chunks, strict=True))
    if min(positions) < 0 or end > MAX_SECONDS * RATE:
        return np.concatenate(chunks).astype(np.int16)
    out = np.zeros(end, dtype=np.int16)
    for pos, chunk in zip(positions, chunks, strict=True):
        out[pos : pos + len(chunk)] = chunk
    return out


def wire_audio(stream: MediaStream) -> Pcm:
    """The stream's payload as captured, decoded as G.711 (SRTP: tag and MKI cut off)."""
    cut = stream.tag_length or 0
    items = []
    for packet in stream.main_packets:
        payload = packet.payload
        items.append((packet.header.timestamp, payload[: len(payload) - cut] if cut else payload))
    return timeline(items, stream.codec == "PCMA")


def decrypted_audio(stream: MediaStream) -> Pcm | None:
    """The decrypted payload decoded as G.711, when the stream was decrypted."""
    result = stream.decryption
    if result is None or not result.confirmed or not result.payloads:
        return None
    items = [(stamp, data) for pt, stamp, data in result.payloads if pt == stream.payload_type]
    return timeline(items, stream.codec == "PCMA")


def write_wav(path: Path, samples: Pcm, rate: int = RATE) -> Path:
    """Write 16-bit mono PCM."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def spectral_flatness(samples: Pcm, frame: int = 256) -> float | None:
    """Median spectral flatness of the non-silent frames (0 = tonal/speech, ~0.56 = white noise).

    None when there is no frame loud enough to judge (silence or too short).
    """
    x = np.asarray(samples, dtype=np.float64)
    count = len(x) // frame
    if count == 0:
        return None
    frames = x[: count * frame].reshape(count, frame) * np.hanning(frame)
    energy = (frames**2).mean(axis=1)
    loud = frames[energy > max(1e3, 0.01 * float(energy.max()))]
    if len(loud) == 0:
        return None
    power = np.abs(np.fft.rfft(loud, axis=1))[:, 1:] ** 2 + 1e-12
    flat = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    return float(np.median(flat))


def render_png(path: Path, samples: Pcm, title: str, subtitle: str = "") -> Path:
    """Waveform above spectrogram, 8 kHz, written as PNG with the Agg backend."""
    figure = Figure(figsize=(9, 4.6), dpi=72)
    FigureCanvasAgg(figure)
    wave_ax, spec_ax = figure.subplots(2, 1, sharex=True, height_ratios=[1, 1.4])
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    t = np.arange(len(x)) / RATE
    wave_ax.plot(t, x, linewidth=0.4, color="#1f4e79")
    wave_ax.set_ylim(-1.05, 1.05)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    if len(x) >= 256:
        with np.errstate(divide="ignore"):  # digital silence has zero power
            spec_ax.specgram(x, NFFT=256, Fs=RATE, noverlap=128, cmap="magma", vmin=-120, vmax=-20)
    spec_ax.set_facecolor("black")  # silence (zero power) is left out of the image
    spec_ax.set_ylabel("Hz")
    spec_ax.set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(str(path), format="png")
    return path


def export_stream(stream: MediaStream, index: int, out_dir: Path, label: str) -> StreamExport:
    """Write ``stream-NN.wav/.png`` (as on the wire) and ``-decrypted`` ones when possible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"stream-{index:02d}"
    codec = stream.codec or f"PT {stream.payload_type}"
    note = "" if stream.g711 else f" (payload is {codec}, decoded as G.711 anyway)"
    audio = wire_audio(stream)
    wav = write_wav(out_dir / f"{stem}.wav", audio)
    png = render_png(out_dir / f"{stem}.png", audio, f"{stream.name}: as on the wire", label + note)
    plain = decrypted_audio(stream)
    if plain is None:
        return StreamExport(wav, png, spectral_flatness(audio))
    dwav = write_wav(out_dir / f"{stem}-decrypted.wav", plain)
    title = f"{stream.name}: decrypted"
    dpng = render_png(out_dir / f"{stem}-decrypted.png", plain, title, "decrypted with its key")
    return StreamExport(wav, png, spectral_flatness(audio), dwav, dpng, spectral_flatness(plain))
