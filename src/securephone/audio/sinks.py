"""Audio sinks for calls: a WAV recorder, a memory buffer and a null sink.

The media pump pushes one decoded (or concealed) frame per packet time with
``write_frame(pcm)``: ``np.int16``, mono, at the call codec's audio rate — 8 kHz until told
otherwise (G.711, RFC 3551 §4.5.14), 16 kHz for G.722, 48 kHz for Opus — normally 20 ms but
any length is accepted. The media channel announces the rate with ``set_format``; a
``WavRecorder`` that has written nothing yet takes that rate for its file, one that has
converts later frames to its file's rate (``StreamResampler``, one conversion). Sinks are sans-I/O apart
from ``WavRecorder``'s file: no sound device, no clock.

``WavRecorder`` and crashes: the stdlib ``wave`` writer rewrites the RIFF and ``data`` sizes
in the header after every ``writeframes`` call (and on ``close``). The recorder writes the
header as soon as it is created, then keeps frames in memory and hands them to ``wave``
about once a second (``flush_interval``), flushing the file to the operating system each
time. So at every moment the file on disk is a complete, valid WAV file: if the process dies
mid-call it holds everything up to the last flush (at most ``flush_interval`` seconds are
lost), and ``close()`` writes the rest. Data reaches the OS, not necessarily the disk
(no ``fsync``): a process crash loses nothing more, a power cut may.
"""

from __future__ import annotations

import wave
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from securephone.audio.resample import StreamResampler
from securephone.audio.sources import SAMPLE_RATE, AudioError

__all__ = ["AudioSink", "BufferSink", "NullSink", "WavRecorder"]

Pcm = npt.NDArray[np.int16]


@runtime_checkable
class AudioSink(Protocol):
    """Takes one decoded frame per packet time."""

    def write_frame(self, pcm: Pcm) -> None:
        """Accept one frame: int16, mono, at the rate announced (8 kHz by default)."""
        ...

    def close(self) -> None:
        """Finish: flush and release whatever the sink holds."""
        ...


def _check_frame(pcm: Pcm) -> Pcm:
    """The frame as a 1-D int16 array, or an ``AudioError`` saying what is wrong with it."""
    frame = np.asarray(pcm)
    if frame.dtype != np.int16 or frame.ndim != 1:
        raise AudioError(
            f"audio frames must be 1-D int16 arrays, not {frame.dtype} of shape {frame.shape}"
        )
    return frame


class _Counter:
    """``frames_written`` (``write_frame`` calls) and ``samples_written``, and the duration."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.frames_written = 0
        self.samples_written = 0
        self.sample_rate = sample_rate
        self._earlier = 0.0  # seconds written at earlier rates
        self._at_rate = 0  # samples written at the current rate

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """Frames come at ``sample_rate`` from now on (their length is free)."""
        if sample_rate <= 0:
            raise AudioError(f"bad sample rate {sample_rate}")
        self._earlier += self._at_rate / self.sample_rate
        self.sample_rate, self._at_rate = sample_rate, 0

    def _count(self, frame: Pcm) -> None:
        self.frames_written += 1
        self.samples_written += frame.size
        self._at_rate += frame.size

    @property
    def duration(self) -> float:
        """Seconds of audio written so far."""
        return self._earlier + self._at_rate / self.sample_rate


class NullSink(_Counter):
    """Checks and counts frames, then drops them."""

    def write_frame(self, pcm: Pcm) -> None:
        self._count(_check_frame(pcm))

    def close(self) -> None:
        """Nothing to release."""


class BufferSink(_Counter):
    """Keeps every frame in memory, for tests and analysis; still readable after ``close``."""

    def __init__(self) -> None:
        super().__init__()
        self._frames: list[Pcm] = []

    def write_frame(self, pcm: Pcm) -> None:
        frame = _check_frame(pcm)
        self._frames.append(frame.copy())
        self._count(frame)

    def samples(self) -> Pcm:
        """Everything written so far, as one int16 array."""
        if not self._frames:
            return np.zeros(0, dtype=np.int16)
        joined: Pcm = np.concatenate(self._frames)
        return joined

    def close(self) -> None:
        """Nothing to release; the samples stay available."""


class WavRecorder(_Counter):
    """Records to a mono 16-bit WAV file (8 kHz, or the codec's rate) that stays valid while it
    grows.

    See the module docstring for what a crash leaves behind and how the rate is chosen.
    Writing after ``close`` raises ``ValueError``, like a closed file. Usable as a context
    manager.
    """

    def __init__(
        self, path: Path | str, *, flush_interval: float = 1.0, sample_rate: int = SAMPLE_RATE
    ) -> None:
        super().__init__(sample_rate)
        self.path = Path(path)
        self.file_rate = sample_rate
        self._flush_interval = flush_interval
        self._flush_samples = max(1, round(flush_interval * sample_rate))
        self._converter: StreamResampler | None = None
        self._pending: list[Pcm] = []
        self._pending_samples = 0
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        try:
            self._wav = self._start(self._file, sample_rate)
        except BaseException:
            self._file.close()
            raise

    @staticmethod
    def _start(file: BinaryIO, rate: int) -> wave.Wave_write:
        """Write the header now, so the file is a valid (empty) WAV from the start."""
        wav = wave.open(file, "wb")  # noqa: SIM115 - closed in close()
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"")
        file.flush()
        return wav

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """Frames come at ``sample_rate``: the file's rate while it is empty, else converted."""
        super().set_format(sample_rate, frame_samples)
        if self._file is None:
            return
        if self.samples_written == 0:
            self._file.seek(0)
            self._file.truncate()
            self._wav = self._start(self._file, sample_rate)
            self.file_rate = sample_rate
            self._flush_samples = max(1, round(self._flush_interval * sample_rate))
            return
        if self._converter is not None:
            self._queue(self._converter.flush())
        same = sample_rate == self.file_rate
        self._converter = None if same else StreamResampler(sample_rate, self.file_rate)

    @property
    def closed(self) -> bool:
        return self._file is None

    def write_frame(self, pcm: Pcm) -> None:
        """Queue the frame; every ``flush_interval`` seconds of audio go to the file."""
        if self._file is None:
            raise ValueError(f"write to a closed WavRecorder ({self.path})")
        frame = _check_frame(pcm)
        self._count(frame)
        self._queue(self._converter.process(frame) if self._converter else frame.copy())

    def _queue(self, frame: Pcm) -> None:
        self._pending.append(frame)
        self._pending_samples += frame.size
        if self._pending_samples >= self._flush_samples:
            self.flush()

    def flush(self) -> None:
        """Write the queued frames and fix the header, so the file on disk is complete."""
        if self._file is None or not self._pending:
            return
        self._wav.writeframes(np.concatenate(self._pending).tobytes())  # native order: wave swaps
        self._file.flush()
        self._pending.clear()
        self._pending_samples = 0

    def close(self) -> None:
        """Write what is queued, finalise the header and close the file (idempotent)."""
        if self._file is None:
            return
        try:
            if self._converter is not None:
                self._pending.append(self._converter.flush())
            self.flush()
            self._wav.close()
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> WavRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
