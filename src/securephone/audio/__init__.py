"""Audio sources and sinks for calls: 20 ms frames of 8 kHz mono int16, no sound device."""

from securephone.audio.resample import resample, to_mono
from securephone.audio.sinks import AudioSink, BufferSink, NullSink, WavRecorder
from securephone.audio.sources import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    AudioSource,
    SilenceSource,
    ToneSource,
    WavInfo,
    WavSource,
    load_wav,
    open_source,
)

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "AudioError",
    "AudioSink",
    "AudioSource",
    "BufferSink",
    "NullSink",
    "SilenceSource",
    "ToneSource",
    "WavInfo",
    "WavRecorder",
    "WavSource",
    "load_wav",
    "open_source",
    "resample",
    "to_mono",
]
