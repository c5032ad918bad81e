"""Audio sources: WAV files of many formats, tones, silence and the command-line helper."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from securephone.audio.sources import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    AudioSource,
    SilenceSource,
    ToneSource,
    WavSource,
    load_wav,
    open_source,
)
from securephone.media.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

Pcm = npt.NDArray[np.int16]
Float = npt.NDArray[np.float64]

# WAVE format tags and the KSDATAFORMAT sub-format GUID tail (Microsoft mmreg.h / ksmedia.h).
PCM, FLOAT, ALAW, MULAW, ADPCM, EXTENSIBLE = 1, 3, 6, 7, 2, 0xFFFE
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


# -- writing test files ------------------------------------------------------------------------------
def int_bytes(samples: npt.NDArray[np.generic], width: int) -> bytes:
    """Little-endian PCM bytes; 8-bit WAV samples are unsigned (offset 128)."""
    if width == 1:
        return (samples + 128).astype(np.uint8).tobytes()
    if width == 3:
        return samples.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return samples.astype("<i2" if width == 2 else "<i4").tobytes()


def write_wav(path: Path, samples: npt.NDArray[np.generic], rate: int, width: int) -> Path:
    """A PCM WAV written by the stdlib ``wave`` module; ``samples`` is (n,) or (n, channels)."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(frames.shape[1])
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(int_bytes(frames.reshape(-1), width))
    return path


def riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1) for cid, data in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, sub_tag: int | None = None) -> bytes:
    """A ``fmt `` body; with ``sub_tag`` a WAVE_FORMAT_EXTENSIBLE one wrapping that format."""
    align = channels * bits // 8
    head = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if sub_tag is None:
        return head
    guid = struct.pack("<H", sub_tag) + GUID_TAIL
    return head + struct.pack("<HHI", 22, bits, 0) + guid


def write_raw(
    path: Path,
    tag: int,
    channels: int,
    rate: int,
    bits: int,
    payload: bytes,
    sub: int | None = None,
) -> Path:
    """A WAV assembled by hand, for formats the stdlib ``wave`` module cannot write."""
    path.write_bytes(
        riff([(b"fmt ", fmt_chunk(tag, channels, rate, bits, sub)), (b"data", payload)])
    )
    return path


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> Float:
    n = np.arange(round(rate * seconds))
    result: Float = amplitude * np.sin(2 * np.pi * freq * n / rate)
    return result


def all_frames(source: AudioSource, limit: int = 100_000) -> list[Pcm]:
    frames: list[Pcm] = []
    for _ in range(limit):
        frame = source.read_frame()
        if frame is None:
            return frames
        frames.append(frame)
    raise AssertionError("source did not finish")


def peak_frequency(x: Float, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spectrum)])


def amplitude_db(pcm: Pcm, reference: float) -> float:
    """RMS of ``pcm`` relative to a sine of peak ``reference`` (full scale = 1), in dB."""
    rms = float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768) ** 2)))
    return 20 * math.log10(rms / (reference / math.sqrt(2)))


# -- WAV round trips ---------------------------------------------------------------------------------
def test_8khz_mono_16bit_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    original = rng.integers(-32768, 32768, size=1000)
    source = WavSource(write_wav(tmp_path / "a.wav", original, 8000, 2))
    frames = all_frames(source)
    assert len(frames) == math.ceil(1000 / FRAME_SAMPLES) == 7
    assert all(f.dtype == np.int16 and f.shape == (FRAME_SAMPLES,) for f in frames)
    joined = np.concatenate(frames)
    assert joined[:1000].tolist() == original.tolist()
    assert not joined[1000:].any()  # the last frame is zero-padded
    assert source.duration == 1000 / 8000
    assert source.read_frame() is None


def test_stereo_44k1_16bit_becomes_an_8khz_mono_sine(tmp_path: Path) -> None:
    tone = np.round(sine(1000, 44100, 2.0) * 32767).astype(np.int64)
    path = write_wav(tmp_path / "s.wav", np.stack([tone, tone], axis=1), 44100, 2)
    source = WavSource(path)
    assert source.info.describe() == "PCM 16-bit, 44100 Hz, stereo, 2.00 s"
    assert source.duration == pytest.approx(2.0, abs=1 / 8000)
    pcm = np.concatenate(all_frames(source))[2000:14000]
    assert abs(peak_frequency(pcm.astype(np.float64)) - 1000) <= 1
    assert abs(amplitude_db(pcm, 0.5)) < 1.0


def test_stereo_is_averaged_into_mono(tmp_path: Path) -> None:
    left = np.full(320, 1000)
    right = np.full(320, 3000)
    source = WavSource(write_wav(tmp_path / "lr.wav", np.stack([left, right], axis=1), 8000, 2))
    assert np.concatenate(all_frames(source)).tolist() == [2000] * 320


def test_8bit_unsigned_is_decoded_around_128(tmp_path: Path) -> None:
    values = np.array([-128, -1, 0, 1, 127] * 40)
    path = write_wav(tmp_path / "u8.wav", values, 8000, 1)
    assert path.read_bytes()[44:49] == bytes([0, 127, 128, 129, 255])  # really unsigned on disk
    pcm, info = load_wav(path)
    assert (info.encoding, info.bits) == ("pcm", 8)
    assert pcm.tolist() == (values * 256).tolist()


def test_8bit_unsigned_22k05_becomes_an_8khz_sine(tmp_path: Path) -> None:
    tone = np.round(sine(700, 22050, 1.0) * 127).astype(np.int64)
    pcm, _ = load_wav(write_wav(tmp_path / "u8.wav", tone, 22050, 1))
    assert pcm.size == math.ceil(22050 * 8000 / 22050)
    middle = pcm[2000:6000]
    assert abs(peak_frequency(middle.astype(np.float64)) - 700) <= 2
    assert abs(amplitude_db(middle, 0.5)) < 1.0


def test_24bit_keeps_the_top_16_bits(tmp_path: Path) -> None:
    values = np.array([0x7FFFFF, -0x800000, 0x123456, -0x123456, 256, -256, 127])
    pcm, info = load_wav(write_wav(tmp_path / "24.wav", values, 8000, 3))
    assert info.bits == 24
    expected = np.clip(np.round(values / 256), -32768, 32767)
    assert pcm.tolist() == expected.astype(int).tolist()


def test_32bit_integer_pcm(tmp_path: Path) -> None:
    values = np.array([2**31 - 1, -(2**31), 2**16, -(2**16), 0])
    pcm, _ = load_wav(write_wav(tmp_path / "32.wav", values, 8000, 4))
    assert pcm.tolist() == [32767, -32768, 1, -1, 0]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize(("width", "channels"), [(1, 1), (2, 2), (3, 1), (4, 2)])
def test_every_rate_and_width_gives_a_1khz_sine(
    tmp_path: Path, rate: int, width: int, channels: int
) -> None:
    full = 2 ** (8 * width - 1) - 1
    tone = np.round(sine(1000, rate, 1.0) * full).astype(np.int64)
    data = np.stack([tone] * channels, axis=1)
    source = WavSource(write_wav(tmp_path / "t.wav", data, rate, width))
    assert source.duration == pytest.approx(1.0, abs=1 / 8000)
    assert source.info.channels == channels
    assert source.info.sample_rate == rate
    pcm = np.concatenate(all_frames(source))[2000:6000]
    assert abs(peak_frequency(pcm.astype(np.float64)) - 1000) <= 2
    assert abs(amplitude_db(pcm, 0.5)) < 1.0


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("extensible", [False, True])
def test_ieee_float_wavs(tmp_path: Path, bits: int, extensible: bool) -> None:
    """stdlib ``wave`` (3.11) refuses these; the RIFF parser reads them."""
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -2.0, 0.25], dtype=f"<f{bits // 8}")
    tag, sub = (EXTENSIBLE, FLOAT) if extensible else (FLOAT, None)
    path = write_raw(tmp_path / "f.wav", tag, 1, 8000, bits, samples.tobytes(), sub)
    pcm, info = load_wav(path)
    assert (info.encoding, info.bits) == ("float", bits)
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 8192]  # clipped


def test_float_stereo_48k_via_extensible(tmp_path: Path) -> None:
    tone = sine(1000, 48000, 1.0).astype("<f4")
    payload = np.stack([tone, tone], axis=1).tobytes()
    path = write_raw(tmp_path / "f.wav", EXTENSIBLE, 2, 48000, 32, payload, FLOAT)
    pcm = np.concatenate(all_frames(WavSource(path)))[2000:6000]
    assert abs(peak_frequency(pcm.astype(np.float64)) - 1000) <= 2
    assert abs(amplitude_db(pcm, 0.5)) < 1.0


def test_nan_and_infinity_in_float_wavs_are_tamed(tmp_path: Path) -> None:
    samples = np.array([np.nan, np.inf, -np.inf, 0.5], dtype="<f4")
    pcm, _ = load_wav(write_raw(tmp_path / "f.wav", FLOAT, 1, 8000, 32, samples.tobytes()))
    assert pcm.tolist() == [0, 32767, -32768, 16384]


def test_pcm_inside_extensible(tmp_path: Path) -> None:
    values = np.array([1, -1, 12345], dtype="<i2")
    path = write_raw(tmp_path / "x.wav", EXTENSIBLE, 1, 8000, 16, values.tobytes(), PCM)
    assert load_wav(path)[0].tolist() == [1, -1, 12345]


@pytest.mark.parametrize(
    ("tag", "encode", "decode"),
    [(MULAW, ulaw_encode, ulaw_decode), (ALAW, alaw_encode, alaw_decode)],
)
def test_g711_wavs(tmp_path: Path, tag: int, encode: object, decode: object) -> None:
    assert callable(encode) and callable(decode)
    codes = encode(np.round(sine(400, 8000, 0.1) * 32767).astype(np.int16))
    pcm, info = load_wav(write_raw(tmp_path / "g.wav", tag, 1, 8000, 8, codes))
    assert info.encoding == ("mulaw" if tag == MULAW else "alaw")
    assert pcm.tolist() == decode(codes).tolist()


def test_chunks_before_fmt_and_odd_sizes_are_skipped(tmp_path: Path) -> None:
    """RIFF chunks are word aligned: an odd-sized chunk is followed by one pad byte."""
    values = np.array([7, -7, 700], dtype="<i2")
    data = riff(
        [
            (b"LIST", b"INFOabc"),  # odd size
            (b"fmt ", fmt_chunk(PCM, 1, 8000, 16)),
            (b"fact", b"\x03\x00\x00\x00"),
            (b"data", values.tobytes()),
            (b"junk", b"trailing"),
        ]
    )
    (tmp_path / "c.wav").write_bytes(data)
    assert load_wav(tmp_path / "c.wav")[0].tolist() == [7, -7, 700]


def test_data_size_past_the_end_reads_what_is_there(tmp_path: Path) -> None:
    """A recorder that died before fixing its header, or a streamed WAV (size 0xFFFFFFFF)."""
    values = np.arange(-50, 51, dtype="<i2")
    head = riff([(b"fmt ", fmt_chunk(PCM, 1, 8000, 16))])
    body = b"data" + struct.pack("<I", 0xFFFFFFFF) + values.tobytes() + b"\x01"  # half a sample
    (tmp_path / "t.wav").write_bytes(head + body)
    assert load_wav(tmp_path / "t.wav")[0].tolist() == values.tolist()


# -- WavSource frames --------------------------------------------------------------------------------
def test_loop_repeats_seamlessly(tmp_path: Path) -> None:
    original = np.arange(1, 251)  # 250 samples: not a whole number of frames
    source = WavSource(write_wav(tmp_path / "l.wav", original, 8000, 2), loop=True)
    frames = [source.read_frame() for _ in range(10)]
    assert all(f is not None for f in frames)
    joined = np.concatenate([f for f in frames if f is not None])
    assert joined.tolist() == np.resize(original, 10 * FRAME_SAMPLES).tolist()


def test_loop_of_a_file_shorter_than_a_frame(tmp_path: Path) -> None:
    source = WavSource(write_wav(tmp_path / "l.wav", np.array([1, 2, 3]), 8000, 2), loop=True)
    frame = source.read_frame()
    assert frame is not None
    assert frame.tolist() == [1, 2, 3] * 53 + [1]


def test_frames_are_independent_copies(tmp_path: Path) -> None:
    source = WavSource(write_wav(tmp_path / "l.wav", np.full(160, 5), 8000, 2), loop=True)
    first = source.read_frame()
    assert first is not None
    first[:] = 0
    second = source.read_frame()
    assert second is not None and second.tolist() == [5] * 160


def test_close_ends_the_source(tmp_path: Path) -> None:
    source = WavSource(write_wav(tmp_path / "c.wav", np.ones(1600), 8000, 2), loop=True)
    assert source.read_frame() is not None
    source.close()
    source.close()
    assert source.read_frame() is None


def test_sources_satisfy_the_protocol(tmp_path: Path) -> None:
    wav = WavSource(write_wav(tmp_path / "p.wav", np.ones(10), 8000, 2))
    for source in (wav, ToneSource(), SilenceSource()):
        assert isinstance(source, AudioSource)


# -- WAV errors --------------------------------------------------------------------------------------
def error_for(path: Path) -> str:
    with pytest.raises(AudioError) as info:
        WavSource(path)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in error_for(tmp_path / "nope.wav")


def test_directory(tmp_path: Path) -> None:
    assert "not a regular file" in error_for(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.wav").write_bytes(b"")
    message = error_for(tmp_path / "e.wav")
    assert "empty" in message and "e.wav" in message


def test_not_a_wav(tmp_path: Path) -> None:
    (tmp_path / "t.wav").write_text("hello, this is text and not RIFF audio\n")
    assert "not a WAV file" in error_for(tmp_path / "t.wav")


def test_wav_without_samples(tmp_path: Path) -> None:
    assert "no audio samples" in error_for(write_wav(tmp_path / "z.wav", np.zeros(0), 8000, 2))


def test_unsupported_encoding_is_named(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "a.wav", ADPCM, 1, 8000, 4, b"\0" * 256)
    message = error_for(path)
    assert "unsupported WAV encoding" in message
    assert "0x0002 (Microsoft ADPCM)" in message
    assert "PCM 8/16/24/32-bit" in message  # says what would work


def test_extensible_with_an_unknown_sub_format(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "x.wav", EXTENSIBLE, 1, 8000, 16, b"\0" * 4, 0x1234)
    (tmp_path / "x.wav").write_bytes(path.read_bytes().replace(GUID_TAIL, b"\x11" * 14))
    assert "unknown sub-format" in error_for(path)


def test_odd_sample_widths_are_refused(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "f.wav", FLOAT, 1, 8000, 16, b"\0" * 4)
    assert "float with 16 bits" in error_for(path)


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([(b"data", b"\0\0")], "no 'fmt ' chunk"),
        ([(b"fmt ", fmt_chunk(PCM, 1, 8000, 16))], "no 'data' chunk"),
        ([(b"fmt ", b"\1\0\1\0"), (b"data", b"\0\0")], "'fmt ' chunk of 4 bytes"),
        ([(b"fmt ", fmt_chunk(PCM, 0, 8000, 16)), (b"data", b"\0\0")], "0 channels"),
    ],
)
def test_broken_wav_structure(
    tmp_path: Path, chunks: list[tuple[bytes, bytes]], expected: str
) -> None:
    (tmp_path / "b.wav").write_bytes(riff(chunks))
    assert expected in error_for(tmp_path / "b.wav")


def test_big_endian_rifx_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "r.wav").write_bytes(b"RIFX" + b"\0\0\0\x04" + b"WAVE")
    assert "RIFX WAV files are not supported" in error_for(tmp_path / "r.wav")


# -- tones -------------------------------------------------------------------------------------------
def take(source: AudioSource, count: int) -> Pcm:
    frames = [source.read_frame() for _ in range(count)]
    assert all(f is not None and f.dtype == np.int16 and f.shape == (160,) for f in frames)
    return np.concatenate([f for f in frames if f is not None])


def test_tone_frequency_and_amplitude() -> None:
    pcm = take(ToneSource(440.0, amplitude=0.3), 50)  # one second: 1 Hz FFT bins
    assert peak_frequency(pcm.astype(np.float64)) == 440.0
    assert abs(int(np.abs(pcm).max()) - round(0.3 * 32767)) <= 1
    assert abs(amplitude_db(pcm, 0.3)) < 0.1


@pytest.mark.parametrize("freq", [441.7, 1000.0, 3333.3])
def test_tone_is_phase_continuous_across_frames(freq: float) -> None:
    """The frames join into exactly the sampled sine: no phase jump at any boundary."""
    source = ToneSource(freq, amplitude=0.5)
    pcm = take(source, 200).astype(np.float64)
    n = np.arange(pcm.size)
    ideal = 0.5 * 32767 * np.sin(2 * np.pi * freq * n / SAMPLE_RATE)
    assert np.max(np.abs(pcm - ideal)) <= 0.5 + 1e-9
    steps = np.abs(np.diff(pcm))
    boundary_steps = steps[FRAME_SAMPLES - 1 :: FRAME_SAMPLES]
    assert boundary_steps.max() <= steps.max()
    assert boundary_steps.max() <= 0.5 * 32767 * 2 * np.pi * freq / SAMPLE_RATE + 1


def test_tone_does_not_drift_over_a_long_call() -> None:
    """Ten minutes of frames later the phase is still that of the continuous sine."""
    source = ToneSource(441.7, amplitude=0.5)
    frames = 600 * 50
    for _ in range(frames):
        source.read_frame()
    pcm = take(source, 5).astype(np.float64)
    n = frames * FRAME_SAMPLES + np.arange(pcm.size)
    ideal = 0.5 * 32767 * np.sin(2 * np.pi * 441.7 * n / SAMPLE_RATE)
    assert np.max(np.abs(pcm - ideal)) <= 1


def test_dual_tone_has_both_frequencies_and_does_not_clip() -> None:
    pcm = take(ToneSource(frequencies=(350.0, 440.0), amplitude=0.9), 50).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm))  # 1 Hz bins over one second
    assert sorted(np.argsort(spectrum)[-2:].tolist()) == [350, 440]
    assert spectrum[350] == pytest.approx(spectrum[440], rel=1e-3)
    assert np.abs(pcm).max() <= 0.9 * 32767 + 1
    assert np.abs(pcm).max() > 0.8 * 32767  # the peaks do line up within a second


def test_tone_duration_pads_the_last_frame_then_ends() -> None:
    source = ToneSource(1000.0, duration=0.05)  # 400 samples: 2.5 frames
    frames = all_frames(source)
    assert len(frames) == 3
    endless = take(ToneSource(1000.0), 3)
    assert np.concatenate(frames)[:400].tolist() == endless[:400].tolist()
    assert endless[400:].any()
    assert not frames[2][80:].any()
    assert source.read_frame() is None


def test_zero_duration_gives_nothing() -> None:
    assert all_frames(ToneSource(duration=0)) == []


def test_tone_close_ends_it() -> None:
    source = ToneSource()
    source.close()
    assert source.read_frame() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frequency": 0.0}, "frequency"),
        ({"frequency": 24000.0}, "below 24000 Hz"),
        ({"frequency": -440.0}, "frequency"),
        ({"frequencies": ()}, "at least one"),
        ({"frequencies": (350.0, 30000.0)}, "30000"),
        ({"amplitude": 1.5}, "amplitude"),
        ({"duration": -1.0}, "duration"),
        ({"duration": math.nan}, "duration"),
    ],
)
def test_bad_tone_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AudioError, match=message):
        ToneSource(**kwargs)  # type: ignore[arg-type]


# -- silence -----------------------------------------------------------------------------------------
def test_silence_forever() -> None:
    pcm = take(SilenceSource(), 100)
    assert not pcm.any()


def test_silence_with_duration() -> None:
    frames = all_frames(SilenceSource(duration=1.0))
    assert len(frames) == 50
    assert all(f.dtype == np.int16 and f.shape == (160,) and not f.any() for f in frames)


def test_silence_close() -> None:
    source = SilenceSource()
    source.close()
    assert source.read_frame() is None


# -- open_source ---------------------------------------------------------------------------------------
def test_open_silence() -> None:
    assert isinstance(open_source("silence"), SilenceSource)
    assert isinstance(open_source(" Silence "), SilenceSource)


def test_open_tone() -> None:
    source = open_source("tone:440")
    assert isinstance(source, ToneSource)
    assert source.frequencies == (440.0,)


def test_open_dual_tone() -> None:
    source = open_source("TONE:350+440")
    assert isinstance(source, ToneSource)
    assert source.frequencies == (350.0, 440.0)


def test_open_wav_and_loop(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", np.full(100, 9), 8000, 2)
    once = open_source(str(path))
    assert isinstance(once, WavSource) and not once.loop
    looped = open_source(f"loop:{path}")
    assert isinstance(looped, WavSource) and looped.loop


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tone:abc", "bad tone"),
        ("tone:440+", "bad tone"),
        ("tone:25000", "below 24000 Hz"),
        ("sine", "no such file; audio sources are 'silence', 'tone:FREQ'"),
        ("loop:/nonexistent/x.wav", "no such file"),
    ],
)
def test_open_source_errors(spec: str, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        open_source(spec)


def test_open_source_reports_a_bad_wav(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_text("not audio")
    with pytest.raises(AudioError, match="not a WAV file"):
        open_source(str(tmp_path / "x.wav"))


@pytest.mark.parametrize(("rate", "size"), [(8000, 160), (16000, 320), (48000, 960)])
def test_whole_hertz_tone_from_its_table_is_the_sampled_sine_after_a_format_change(
    rate: int, size: int
) -> None:
    """Whole-hertz tones come from a precomputed repeat: still the continuous sine, across the
    table's wrap (more than one second of frames) and across a change of rate."""
    source = ToneSource(frequencies=(350.0, 440.0), amplitude=0.5)
    first = take(source, 10).astype(np.float64)  # 8 kHz, 0.2 s
    source.set_format(rate, size)
    frames = [source.read_frame() for _ in range(120)]  # 2.4 s: wraps the one-second repeat
    pcm = np.concatenate([f for f in frames if f is not None]).astype(np.float64)
    n = np.arange(first.size)
    ideal = sum(0.25 * 32767 * np.sin(2 * np.pi * f * n / SAMPLE_RATE) for f in (350, 440))
    assert np.max(np.abs(first - ideal)) <= 0.5 + 1e-9
    k = round(0.2 * rate) + np.arange(pcm.size)
    ideal = sum(0.25 * 32767 * np.sin(2 * np.pi * f * k / rate) for f in (350, 440))
    assert np.max(np.abs(pcm - ideal)) <= 0.5 + 1e-9


def test_frames_of_tones_sharing_a_table_are_independent_copies() -> None:
    """Sources of the same tone share one precomputed repeat: a frame the caller changes must
    not change what this or another source gives next."""
    first, second = ToneSource(440.0), ToneSource(440.0)
    expected = take(ToneSource(440.0), 30)
    frame = first.read_frame()
    assert frame is not None
    frame[:] = 0
    rest = take(first, 29)
    assert rest.tolist() == expected[160:].tolist()
    assert take(second, 30).tolist() == expected.tolist()
