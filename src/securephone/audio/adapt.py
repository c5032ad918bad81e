"""Fit any audio source or sink to the call codec's rate and frame size, converting once.

``FormatAware`` sources and sinks (WAV files, tones, silence, the recorder) are simply told
the format (``set_format``) and produce or take it natively. Others — a sound device at its
own rate, say — are wrapped: ``RateAdaptedSource`` converts the source's frames (at its
``sample_rate`` attribute, 8 kHz when it has none) to the codec's rate and cuts them into the
codec's frame size; ``RateAdaptedSink`` converts the codec's frames to the sink's rate. Each
uses one ``StreamResampler``: audio is resampled once on its way, never twice.
"""

from __future__ import annotations

import numpy as np

from securephone.audio.resample import StreamResampler
from securephone.audio.sinks import AudioSink
from securephone.audio.sources import SAMPLE_RATE, AudioSource, FormatAware, Pcm

__all__ = ["RateAdaptedSink", "RateAdaptedSource", "fit_sink", "fit_source", "native_rate"]


def native_rate(part: object) -> int:
    """The rate a source or sink works at: its ``sample_rate``, else 8 kHz."""
    rate = getattr(part, "sample_rate", SAMPLE_RATE)
    return rate if isinstance(rate, int) and rate > 0 else SAMPLE_RATE


class RateAdaptedSource:
    """A source at its own rate, given out in frames at another rate and size."""

    def __init__(self, source: AudioSource, sample_rate: int, frame_samples: int) -> None:
        self.source = source
        self.sample_rate, self.frame_samples = sample_rate, frame_samples
        self._converter = StreamResampler(native_rate(source), sample_rate)
        self._fifo = np.zeros(0, dtype=np.int16)
        self._ended = False

    def read_frame(self) -> Pcm | None:
        while self._fifo.size < self.frame_samples and not self._ended:
            frame = self.source.read_frame()
            if frame is None:
                self._ended = True
                self._fifo = np.concatenate((self._fifo, self._converter.flush()))
            else:
                self._fifo = np.concatenate((self._fifo, self._converter.process(frame)))
        if self._fifo.size == 0:
            return None
        out = np.zeros(self.frame_samples, dtype=np.int16)
        chunk = self._fifo[: self.frame_samples]
        out[: chunk.size] = chunk
        self._fifo = self._fifo[chunk.size :]
        return out

    def close(self) -> None:
        self.source.close()


class RateAdaptedSink:
    """A sink at its own rate, fed with frames at the codec's rate."""

    def __init__(self, sink: AudioSink, sample_rate: int) -> None:
        self.sink = sink
        self.sample_rate = sample_rate
        self._converter = StreamResampler(sample_rate, native_rate(sink))

    def write_frame(self, pcm: Pcm) -> None:
        out = self._converter.process(pcm)
        if out.size:
            self.sink.write_frame(out)

    def close(self) -> None:
        tail = self._converter.flush()
        if tail.size:
            self.sink.write_frame(tail)
        self.sink.close()


def _unwrap(part: object) -> object:
    inner = getattr(part, "source", None) or getattr(part, "sink", None)
    return inner if isinstance(part, RateAdaptedSource | RateAdaptedSink) else part


def fit_source(source: AudioSource, sample_rate: int, frame_samples: int) -> AudioSource:
    """``source`` set to (or wrapped for) ``frame_samples`` samples at ``sample_rate``."""
    inner = _unwrap(source)
    assert isinstance(inner, AudioSource)
    if isinstance(inner, FormatAware):
        inner.set_format(sample_rate, frame_samples)
        return inner
    if native_rate(inner) == sample_rate and frame_samples == 160 and sample_rate == SAMPLE_RATE:
        return inner
    return RateAdaptedSource(inner, sample_rate, frame_samples)


def fit_sink(sink: AudioSink, sample_rate: int, frame_samples: int) -> AudioSink:
    """``sink`` set to (or wrapped for) frames at ``sample_rate``."""
    inner = _unwrap(sink)
    assert isinstance(inner, AudioSink)
    if isinstance(inner, FormatAware):
        inner.set_format(sample_rate, frame_samples)
        return inner
    if native_rate(inner) == sample_rate:
        return inner
    return RateAdaptedSink(inner, sample_rate)
