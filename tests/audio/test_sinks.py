"""Audio sinks: the WAV recorder (valid while it grows, and after a crash), buffer and null sink."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from securephone.audio.sinks import AudioSink, BufferSink, NullSink, WavRecorder
from securephone.audio.sources import AudioError, ToneSource, WavSource

Pcm = npt.NDArray[np.int16]
SRC = Path(__file__).resolve().parents[2] / "src"


def tone_frames(count: int, freq: float = 523.0) -> list[Pcm]:
    source = ToneSource(freq, amplitude=0.4)
    frames = [source.read_frame() for _ in range(count)]
    return [f for f in frames if f is not None]


def read_wav(path: Path) -> tuple[tuple[int, int, int], Pcm]:
    """(channels, sample width, rate) and the samples, read by the stdlib ``wave`` module."""
    with wave.open(str(path), "rb") as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        data = wav.readframes(wav.getnframes())
    return params, np.frombuffer(data, dtype="<i2").astype(np.int16)


# -- WavRecorder -------------------------------------------------------------------------------------
def test_recording_is_an_8khz_mono_16bit_wav_with_the_frames(tmp_path: Path) -> None:
    frames = tone_frames(100)
    path = tmp_path / "rec.wav"
    recorder = WavRecorder(path)
    for frame in frames:
        recorder.write_frame(frame)
    recorder.close()
    params, samples = read_wav(path)
    assert params == (1, 2, 8000)
    assert samples.tolist() == np.concatenate(frames).tolist()
    assert recorder.frames_written == 100
    assert recorder.samples_written == 16000
    assert recorder.duration == 2.0


def test_recording_plays_back_through_wav_source(tmp_path: Path) -> None:
    frames = tone_frames(7)
    with WavRecorder(tmp_path / "rec.wav") as recorder:
        for frame in frames:
            recorder.write_frame(frame)
    source = WavSource(tmp_path / "rec.wav")
    for frame in frames:
        again = source.read_frame()
        assert again is not None and again.tolist() == frame.tolist()
    assert source.read_frame() is None


def test_file_is_a_valid_empty_wav_from_the_start(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "rec.wav")
    params, samples = read_wav(tmp_path / "rec.wav")
    assert params == (1, 2, 8000)
    assert samples.size == 0
    recorder.close()


def test_file_is_readable_while_recording_up_to_the_last_flush(tmp_path: Path) -> None:
    frames = tone_frames(75)  # 1.5 s
    path = tmp_path / "rec.wav"
    recorder = WavRecorder(path)  # flushes every second
    for frame in frames:
        recorder.write_frame(frame)
    _, samples = read_wav(path)  # read behind the recorder's back, header and all
    assert samples.tolist() == np.concatenate(frames[:50]).tolist()
    recorder.close()
    _, samples = read_wav(path)
    assert samples.size == 75 * 160


def test_flush_interval_is_configurable(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "rec.wav", flush_interval=0.1)
    for frame in tone_frames(6):
        recorder.write_frame(frame)
    assert read_wav(tmp_path / "rec.wav")[1].size == 5 * 160
    recorder.flush()
    assert read_wav(tmp_path / "rec.wav")[1].size == 6 * 160
    recorder.close()


CRASH_SCRIPT = """
import os, sys
from securephone.audio.sinks import WavRecorder
from securephone.audio.sources import ToneSource
recorder = WavRecorder(sys.argv[1])
tone = ToneSource(523.0, amplitude=0.4)
for _ in range(130):  # 2.6 s
    recorder.write_frame(tone.read_frame())
os._exit(3)  # no close(), no finalisers: as if the process were killed
"""


def test_a_crashed_process_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "crash.wav"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(path)], env=env, capture_output=True, check=False
    )
    assert result.returncode == 3, result.stderr.decode()
    params, samples = read_wav(path)
    assert params == (1, 2, 8000)
    assert samples.tolist() == np.concatenate(tone_frames(100)).tolist()  # the first 2 s


def test_any_frame_length_is_recorded(tmp_path: Path) -> None:
    with WavRecorder(tmp_path / "rec.wav") as recorder:
        recorder.write_frame(np.arange(240, dtype=np.int16))  # a 30 ms frame
        recorder.write_frame(np.array([-32768, 32767], dtype=np.int16))
    assert read_wav(tmp_path / "rec.wav")[1].tolist() == [*range(240), -32768, 32767]
    assert recorder.frames_written == 2
    assert recorder.samples_written == 242


def test_close_is_idempotent_and_writing_afterwards_fails(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "rec.wav")
    recorder.write_frame(np.ones(160, dtype=np.int16))
    recorder.close()
    recorder.close()
    assert recorder.closed
    with pytest.raises(ValueError, match="closed"):
        recorder.write_frame(np.ones(160, dtype=np.int16))
    assert read_wav(tmp_path / "rec.wav")[1].tolist() == [1] * 160


def test_recorder_keeps_its_own_copy_of_frames(tmp_path: Path) -> None:
    frame = np.full(160, 7, dtype=np.int16)
    with WavRecorder(tmp_path / "rec.wav") as recorder:
        recorder.write_frame(frame)
        frame[:] = 0  # the caller reuses its buffer before the flush
    assert read_wav(tmp_path / "rec.wav")[1].tolist() == [7] * 160


def test_recorder_into_a_missing_directory_fails_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nodir"):
        WavRecorder(tmp_path / "nodir" / "rec.wav")


# -- frame checks, BufferSink, NullSink --------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", [np.zeros(160, dtype=np.float64), np.zeros((2, 160), dtype=np.int16), np.zeros(160)]
)
def test_sinks_refuse_what_is_not_1d_int16(tmp_path: Path, bad: Pcm) -> None:
    with WavRecorder(tmp_path / "rec.wav") as recorder:
        for sink in (recorder, BufferSink(), NullSink()):
            with pytest.raises(AudioError, match="1-D int16"):
                sink.write_frame(bad)
            assert sink.frames_written == 0


def test_buffer_sink_keeps_everything() -> None:
    sink = BufferSink()
    assert sink.samples().dtype == np.int16 and sink.samples().size == 0
    frames = tone_frames(3)
    for frame in frames:
        sink.write_frame(frame)
    frames[0][:] = 0  # stored frames are copies
    sink.close()
    assert sink.samples().tolist() == np.concatenate(tone_frames(3)).tolist()
    assert sink.frames_written == 3
    assert sink.duration == 0.06


def test_null_sink_counts_and_drops() -> None:
    sink = NullSink()
    for frame in tone_frames(4):
        sink.write_frame(frame)
    sink.close()
    assert sink.frames_written == 4
    assert sink.samples_written == 640
    assert sink.duration == 0.08


def test_sinks_satisfy_the_protocol(tmp_path: Path) -> None:
    with WavRecorder(tmp_path / "rec.wav") as recorder:
        for sink in (recorder, BufferSink(), NullSink()):
            assert isinstance(sink, AudioSink)
