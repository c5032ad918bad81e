"""CPU cost of each codec per 20 ms frame, encode and decode, printed as a table.

Run: ``PYTHONPATH=src python benchmarks/codecs.py [frames]``. Each codec codes the same
second-long sentence-like signal (a vowel-ish harmonic series with a 6 kHz tone on top),
resampled by construction to its own audio rate, frame by frame through its per-stream
encoder and decoder objects; the best of three passes is reported as CPU microseconds per
frame (process time, so other load on the machine inflates it less) and as the share of one
core that a real-time stream costs (20 ms of audio per frame).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from securephone.media.codecs.base import AudioCodec, Pcm
from securephone.media.codecs.catalog import AUDIO_CODECS
from securephone.media.codecs.opus import opus_available

FRAME_MS = 20


def _signal(codec: AudioCodec, frames: int) -> list[Pcm]:
    """``frames`` frames of a speech-like harmonic signal plus a 6 kHz tone where it fits."""
    n = codec.frame_samples(FRAME_MS)
    t = np.arange(n * frames) / codec.sample_rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.cumsum(np.pi * f0) / codec.sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    tone = 0.2 * np.sin(2 * np.pi * 6000 * t) if codec.sample_rate > 12000 else 0
    pcm = (6000 * (voice + tone)).astype(np.int16)
    return list(pcm.reshape(frames, n))


def _measure(codec: AudioCodec, frames: int) -> tuple[float, float, float]:
    """Best-of-three process-time µs per frame for encoding and decoding; payload octets."""
    pcm = _signal(codec, frames)
    best_enc = best_dec = float("inf")
    payloads: list[bytes] = []
    for _ in range(3):
        encoder, decoder = codec.new_encoder(), codec.new_decoder()
        start = time.process_time()
        payloads = [encoder.encode(frame) for frame in pcm]
        middle = time.process_time()
        for payload in payloads:
            decoder.decode(payload)
        end = time.process_time()
        best_enc = min(best_enc, (middle - start) / frames * 1e6)
        best_dec = min(best_dec, (end - middle) / frames * 1e6)
    return best_enc, best_dec, sum(map(len, payloads)) / frames


def main(frames: int = 250) -> None:
    table = Table(title=f"codec CPU per {FRAME_MS} ms frame ({frames} frames, best of 3)")
    for column in ("codec", "rtpmap", "audio Hz", "octets/frame", "encode µs", "decode µs"):
        table.add_column(column, justify="left" if column in ("codec", "rtpmap") else "right")
    table.add_column("core % (enc+dec)", justify="right")
    for codec in AUDIO_CODECS:
        if codec.name == "opus" and not opus_available():
            table.add_row(codec.name, codec.rtpmap, "-", "-", "no libopus", "-", "-")
            continue
        enc, dec, octets = _measure(codec, frames)
        share = (enc + dec) / (FRAME_MS * 1000) * 100
        table.add_row(
            codec.name,
            codec.rtpmap,
            str(codec.sample_rate),
            f"{octets:.0f}",
            f"{enc:.1f}",
            f"{dec:.1f}",
            f"{share:.2f}",
        )
    Console(width=110).print(table)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 250)
