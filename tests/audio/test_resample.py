"""Sample-rate conversion: frequencies kept, amplitudes kept, aliases removed, lengths right."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from securephone.audio.resample import resample, resample_length, to_mono

Float = npt.NDArray[np.float64]


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> Float:
    n = np.arange(round(rate * seconds))
    result: Float = amplitude * np.sin(2 * np.pi * freq * n / rate)
    return result


def middle(x: Float, rate: int) -> Float:
    """Drop 0.25 s at each end, where the zero padding outside the signal shows."""
    edge = rate // 4
    return x[edge:-edge]


def peak_frequency(x: Float, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spectrum)])


def rms_db(x: Float) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(x**2))) + 1e-300)


SINE_RMS_DB = 20 * math.log10(0.5 / math.sqrt(2))  # a 0.5-amplitude sine


@pytest.mark.parametrize("rate_in", [48000, 44100, 22050, 16000, 11025])
def test_1khz_sine_stays_a_1khz_sine_of_the_same_amplitude(rate_in: int) -> None:
    out = middle(resample(sine(1000, rate_in, 1.5), rate_in, 8000), 8000)
    assert abs(peak_frequency(out, 8000) - 1000) <= 8000 / out.size
    assert abs(rms_db(out) - SINE_RMS_DB) < 1.0


@pytest.mark.parametrize("rate_in", [48000, 44100, 22050])
@pytest.mark.parametrize("freq", [300, 3000, 3400])
def test_telephone_band_is_passed_flat(rate_in: int, freq: int) -> None:
    out = middle(resample(sine(freq, rate_in, 1.0), rate_in, 8000), 8000)
    assert abs(rms_db(out) - SINE_RMS_DB) < 0.1


@pytest.mark.parametrize("rate_in", [48000, 44100, 16000])
def test_output_is_time_aligned_with_the_input(rate_in: int) -> None:
    """The filter delay is compensated: output n is the input at time n / 8000 exactly."""
    out = resample(sine(1000, rate_in, 1.0), rate_in, 8000)
    expected = sine(1000, 8000, 1.0)
    assert out.size == expected.size
    assert np.max(np.abs(middle(out, 8000) - middle(expected, 8000))) < 1e-3


@pytest.mark.parametrize(
    ("rate_in", "freq"), [(48000, 6000), (48000, 12000), (44100, 6000), (22050, 5000)]
)
def test_tones_above_the_new_nyquist_are_attenuated_not_aliased(rate_in: int, freq: int) -> None:
    """6 kHz at 48 kHz would fold to 2 kHz at 8 kHz; the anti-alias filter removes it."""
    out = middle(resample(sine(freq, rate_in, 1.5), rate_in, 8000), 8000)
    assert rms_db(out) - SINE_RMS_DB < -40


def test_without_a_filter_6khz_would_alias_to_2khz() -> None:
    """Control for the test above: plain decimation really does fold 6 kHz onto 2 kHz."""
    naive = sine(6000, 48000, 1.0)[::6]
    assert abs(peak_frequency(naive, 8000) - 2000) <= 2
    assert abs(rms_db(naive) - SINE_RMS_DB) < 1


def test_dc_gain_is_one_for_a_non_integer_ratio() -> None:
    """Every polyphase branch of the 80/441 filter passes DC at unit gain."""
    out = middle(resample(np.full(44100, 0.25), 44100, 8000), 8000)
    assert np.max(np.abs(out - 0.25)) < 1e-3


@pytest.mark.parametrize(
    ("n", "rate_in", "rate_out"),
    [
        (48000, 48000, 8000),
        (48001, 48000, 8000),
        (44100, 44100, 8000),
        (1000, 44100, 8000),
        (22050 * 3, 22050, 8000),
        (16000, 16000, 8000),
        (8000, 8000, 16000),
        (12345, 8000, 48000),
        (7, 48000, 8000),
        (1, 44100, 8000),
    ],
)
def test_length_is_ceil_of_n_times_ratio(n: int, rate_in: int, rate_out: int) -> None:
    out = resample(np.ones(n), rate_in, rate_out)
    assert out.size == math.ceil(n * rate_out / rate_in) == resample_length(n, rate_in, rate_out)
    assert out.dtype == np.float64


def test_upsampling_interpolates_the_sine() -> None:
    out = resample(sine(1000, 8000, 1.0), 8000, 48000)
    assert np.max(np.abs(middle(out, 48000) - middle(sine(1000, 48000, 1.0), 48000))) < 1e-3


def test_same_rate_is_a_float_copy() -> None:
    x = np.array([1, -2, 3], dtype=np.int16)
    out = resample(x, 8000, 8000)
    assert out.dtype == np.float64
    assert out.tolist() == [1.0, -2.0, 3.0]
    out[0] = 99
    assert x[0] == 1


def test_empty_input_gives_empty_output() -> None:
    assert resample(np.zeros(0), 44100, 8000).size == 0


@pytest.mark.parametrize(("rate_in", "rate_out"), [(0, 8000), (8000, 0), (-1, 8000)])
def test_bad_rates_are_rejected(rate_in: int, rate_out: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros(10), rate_in, rate_out)


def test_resample_wants_mono() -> None:
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((10, 2)), 16000, 8000)


def test_to_mono_averages_channels() -> None:
    stereo = np.array([[1000, 3000], [-2000, 0], [32767, 32767]], dtype=np.int16)
    assert to_mono(stereo).tolist() == [2000.0, -1000.0, 32767.0]
    assert to_mono(np.array([[0.5, -0.5, 0.25, 0.25]])).tolist() == [0.125]


def test_to_mono_keeps_mono_as_float() -> None:
    out = to_mono(np.array([1, 2, 3], dtype=np.int16))
    assert out.dtype == np.float64
    assert out.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("shape", [(2, 0), (2, 2, 2), ()])
def test_to_mono_rejects_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        to_mono(np.zeros(shape))
