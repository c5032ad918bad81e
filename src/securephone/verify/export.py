"""Hear and see a media stream: its payload decoded with its codec to WAV, and a picture of it.

The payload is decoded exactly as a receiver without keys would, with the codec the SDP (or
the static payload type) names: G.711 at 8 kHz (µ-law, or A-law for PCMA; ITU-T G.711, RFC 3551
§4.5.14), G.722 at 16 kHz (its RTP clock is 8000 Hz, RFC 3551 §4.5.2, so one timestamp unit is
two samples), Opus at 48 kHz through libopus when it is installed (RFC 7587; payloads libopus
refuses — ciphertext — become silence). Anything else is decoded as G.711 µ-law anyway and
says so. Audio is placed by RTP timestamp (RFC 3550 §5.1) so lost packets become silence. For plain RTP this is the call's audio; for SRTP it is what the
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from securephone.media.codecs.base import Pcm as CodecPcm
from securephone.media.codecs.g711 import alaw_decode, ulaw_decode
from securephone.media.codecs.g722 import G722Decoder
from securephone.media.codecs.opus import OpusDecoder, opus_available
from securephone.media.rtp import ts_diff
from securephone.verify.media import MediaStream

__all__ = [
    "RATE",
    "StreamExport",
    "decoder_for",
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
    rate: int = RATE
    codec: str = "PCMU"


Decode = Callable[[bytes], CodecPcm]


def decoder_for(codec: str | None) -> tuple[Decode, int, str]:
    """A fresh decoder for a stream's codec, the audio rate it gives, and the codec used.

    Opus needs libopus; without it (or for an unknown codec) the payload is decoded as
    G.711 µ-law, and the third value says so.
    """
    name = (codec or "").upper()
    if name == "PCMA":
        return alaw_decode, RATE, "PCMA"
    if name == "G722":
        return G722Decoder().decode, 16000, "G722"
    if name == "OPUS" and opus_available():
        return _lenient(OpusDecoder().decode), 48000, "opus"
    return ulaw_decode, RATE, "PCMU"


def _lenient(decode: Decode) -> Decode:
    """Payloads the decoder refuses (ciphertext, damage) become nothing instead of an error."""

    def run(payload: bytes) -> CodecPcm:
        try:
            return decode(payload)
        except ValueError:
            return np.zeros(0, dtype=np.int16)

    return run


def timeline(
    items: Sequence[tuple[int, bytes]],
    decode_a_law: bool = False,
    *,
    codec: str | None = None,
    clock_rate: int = RATE,
) -> Pcm:
    """Decode (timestamp, payload) pairs with the stream's codec and place them by timestamp.

    ``codec`` names it (``decoder_for``); without it G.711 (A-law when ``decode_a_law``).
    Timestamps count ``clock_rate`` units a second, which the audio rate may exceed (G.722).
    Falls back to plain concatenation when timestamps jump backwards or absurdly far.
    """
    if not items:
        return np.zeros(0, dtype=np.int16)
    decode, rate, _ = decoder_for(codec or ("PCMA" if decode_a_law else "PCMU"))
    chunks = [decode(payload) for _, payload in items]
    base = items[0][0]
    positions = [ts_diff(stamp, base) * rate // clock_rate for stamp, _ in items]
    end = max(p + len(c) for p, c in zip(positions, chunks, strict=True))
    if min(positions) < 0 or end > MAX_SECONDS * rate:
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
    return timeline(items, codec=stream.codec, clock_rate=stream.clock_rate)


def decrypted_audio(stream: MediaStream) -> Pcm | None:
    """The decrypted payload decoded as G.711, when the stream was decrypted."""
    result = stream.decryption
    if result is None or not result.confirmed or not result.payloads:
        return None
    items = [(stamp, data) for pt, stamp, data in result.payloads if pt == stream.payload_type]
    return timeline(items, codec=stream.codec, clock_rate=stream.clock_rate)


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


def render_png(path: Path, samples: Pcm, title: str, subtitle: str = "", rate: int = RATE) -> Path:
    """Waveform above spectrogram at ``rate``, written as PNG with the Agg backend."""
    figure = Figure(figsize=(9, 4.6), dpi=72)
    FigureCanvasAgg(figure)
    wave_ax, spec_ax = figure.subplots(2, 1, sharex=True, height_ratios=[1, 1.4])
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    t = np.arange(len(x)) / rate
    wave_ax.plot(t, x, linewidth=0.4, color="#1f4e79")
    wave_ax.set_ylim(-1.05, 1.05)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    if len(x) >= 256:
        with np.errstate(divide="ignore"):  # digital silence has zero power
            nfft = 256 * max(1, rate // RATE)
            spec_ax.specgram(
                x, NFFT=nfft, Fs=rate, noverlap=nfft // 2, cmap="magma", vmin=-120, vmax=-20
            )
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
    _, rate, used = decoder_for(stream.codec)
    same = used.upper() == (stream.codec or "").upper()
    note = f" ({used}, {rate // 1000} kHz)" if same else f" (payload is {codec}, decoded as G.711)"
    audio = wire_audio(stream)
    wav = write_wav(out_dir / f"{stem}.wav", audio, rate)
    title = f"{stream.name}: as on the wire"
    png = render_png(out_dir / f"{stem}.png", audio, title, label + note, rate)
    plain = decrypted_audio(stream)
    flat = spectral_flatness(audio)
    if plain is None:
        return StreamExport(wav, png, flat, rate=rate, codec=used)
    dwav = write_wav(out_dir / f"{stem}-decrypted.wav", plain, rate)
    title = f"{stream.name}: decrypted"
    dpng = render_png(
        out_dir / f"{stem}-decrypted.png", plain, title, "decrypted with its key", rate
    )
    return StreamExport(wav, png, flat, dwav, dpng, spectral_flatness(plain), rate, used)
