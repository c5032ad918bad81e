"""Sources and sinks at the codec's rate (8, 16, 48 kHz), converted once (audio/adapt.py)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from securephone.audio.adapt import RateAdaptedSink, RateAdaptedSource, fit_sink, fit_source
from securephone.audio.resample import StreamResampler, resample
from securephone.audio.sinks import BufferSink, WavRecorder
from securephone.audio.sources import SilenceSource, ToneSource, WavSource


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.astype("<i2").tobytes())
    return path


def share_at(pcm: np.ndarray, rate: int, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) < 100].sum() / (spectrum.sum() + 1e-9))


def frames(source: object, count: int) -> np.ndarray:
    return np.concatenate([source.read_frame() for _ in range(count)])  # type: ignore[attr-defined]


def test_a_48khz_wav_is_converted_once_to_16khz_and_keeps_its_6khz_tone(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    path = write_wav(tmp_path / "x.wav", (10000 * np.sin(2 * np.pi * 6000 * t)), 48000)
    source = WavSource(path)
    source.set_format(16000, 320)
    audio = frames(source, 50)
    assert audio.size == 16000 and source.sample_rate == 16000
    direct = np.round(resample(10000 * np.sin(2 * np.pi * 6000 * t) / 32768, 48000, 16000) * 32768)
    assert np.abs(audio.astype(float) - direct[:16000]).max() <= 1  # one conversion, not two
    assert share_at(audio, 16000, 6000) > 0.95


def test_at_8khz_the_same_file_loses_the_6khz_tone(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    path = write_wav(tmp_path / "x.wav", 10000 * np.sin(2 * np.pi * 6000 * t), 48000)
    audio = frames(WavSource(path), 50)
    assert audio.size == 8000 and np.abs(audio[800:-800]).max() < 50  # edges: the onset clicks


def test_tones_and_silence_follow_the_format() -> None:
    tone = ToneSource(6000.0, duration=0.05)
    tone.set_format(48000, 960)
    first = tone.read_frame()
    assert first is not None and first.size == 960 and share_at(first, 48000, 6000) > 0.9
    assert tone.read_frame() is not None and tone.read_frame() is not None  # 50 ms = 2.5 frames
    assert tone.read_frame() is None
    narrow = ToneSource(6000.0)
    assert not np.any(narrow.read_frame())  # above 4 kHz: nothing at 8 kHz
    silence = SilenceSource()
    silence.set_format(16000, 320)
    assert silence.read_frame() is not None and silence.read_frame().size == 320  # type: ignore[union-attr]


def test_the_recorder_takes_the_codec_rate_before_its_first_frame(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "r.wav")
    recorder.set_format(16000, 320)
    recorder.write_frame(np.ones(320, dtype=np.int16))
    recorder.close()
    with wave.open(str(tmp_path / "r.wav")) as wav:
        assert (wav.getframerate(), wav.getnframes()) == (16000, 320)
    assert recorder.duration == 0.02


def test_a_codec_change_mid_recording_is_converted_to_the_files_rate(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "r.wav")
    recorder.set_format(16000, 320)
    recorder.write_frame(np.zeros(320, dtype=np.int16))
    recorder.set_format(48000, 960)
    for _ in range(50):
        recorder.write_frame(np.zeros(960, dtype=np.int16))
    recorder.close()
    with wave.open(str(tmp_path / "r.wav")) as wav:
        assert wav.getframerate() == 16000 and wav.getnframes() == 320 + 50 * 320


class EightKilohertzOnly:
    """A source that knows no formats (like a device at its own rate)."""

    sample_rate = 8000

    def __init__(self) -> None:
        self.tone = ToneSource(1000.0)

    def read_frame(self) -> np.ndarray | None:
        return self.tone.read_frame()

    def close(self) -> None:
        pass


def test_a_source_without_formats_is_wrapped_and_resampled_once() -> None:
    fitted = fit_source(EightKilohertzOnly(), 48000, 960)  # type: ignore[arg-type]
    assert isinstance(fitted, RateAdaptedSource)
    audio = frames(fitted, 20)
    assert audio.size == 20 * 960 and share_at(audio[4800:], 48000, 1000) > 0.9


def test_a_sink_without_formats_is_fed_at_its_own_rate() -> None:
    class Eight(BufferSink):
        set_format = None  # type: ignore[assignment]

    inner = BufferSink()
    fitted = fit_sink(inner, 16000, 320)
    assert fitted is inner and inner.sample_rate == 16000
    stream = StreamResampler(16000, 8000)
    assert stream.process(np.zeros(320, dtype=np.int16)).size < 160  # held back: the margin
    wrapped = RateAdaptedSink(inner, 48000)
    wrapped.write_frame(np.zeros(960 * 10, dtype=np.int16))
    wrapped.close()
    assert inner.samples().size == 16000 * 10 * 960 // 48000
