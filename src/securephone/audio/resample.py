"""Down-mixing and sample-rate conversion with numpy only (no scipy).

``resample`` is rational polyphase resampling: the rate ratio is reduced to ``up / down``
(48 000 → 8 000 is 1/6, 44 100 → 8 000 is 80/441), the signal is conceptually zero-stuffed
by ``up``, low-pass filtered at the upsampled rate and kept every ``down``-th sample. The
zero-stuffed samples are never materialised: output sample ``n`` needs only one *phase* of
the filter (every ``up``-th tap), so each output is a dot product of ``taps / up`` input
samples with one row of a polyphase table. Those dot products are computed a block of
outputs at a time with fancy indexing and ``einsum``: no per-sample Python loop.

The filter is a Kaiser-windowed sinc designed for the lower of the two Nyquist frequencies:

* pass band flat to 85 % of the lower Nyquist (3.4 kHz when the output is 8 kHz, the top of
  the telephone band), −6 dB at 92.5 %;
* stop band from the lower Nyquist itself (4 kHz) with at least 80 dB attenuation, so
  anything that would fold back (alias) into the output band is gone;
* ``≈ 67 · max(up, down)`` taps (403 for 48 k → 8 k; ≈ 29 500 for 44.1 k → 8 k, still only
  ≈ 370 multiply-adds per output sample because of the polyphase split).

The filter is centred (linear phase, group delay compensated), so output sample ``n`` lines
up in time with input time ``n / rate_out``; the signal is treated as zero outside its ends.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

__all__ = ["StreamResampler", "resample", "resample_length", "to_mono"]

Float = npt.NDArray[np.float64]

PASS_EDGE = 0.85
"""End of the flat pass band, as a fraction of the lower Nyquist frequency."""
STOP_EDGE = 1.0
"""Start of the stop band, as a fraction of the lower Nyquist frequency."""
STOP_ATTENUATION_DB = 80.0
"""Kaiser design target for the stop band."""
_BLOCK_OUTPUTS = 4096
"""Output samples computed per vectorised block (bounds the temporary index matrices)."""


def to_mono(x: npt.NDArray[np.generic]) -> Float:
    """Average the channels of ``x`` (shape ``(n,)`` or ``(n, channels)``) into float64 mono.

    Averaging (not summing) keeps full-scale stereo within full scale.
    """
    data = np.asarray(x)
    if data.ndim == 1:
        return data.astype(np.float64)
    if data.ndim == 2 and data.shape[1] >= 1:
        mono: Float = data.astype(np.float64).mean(axis=1)
        return mono
    raise ValueError(f"audio must have shape (n,) or (n, channels), not {data.shape}")


def resample_length(n: int, rate_in: int, rate_out: int) -> int:
    """How many samples ``resample`` returns for ``n`` input samples: ``ceil(n·out/in)``."""
    _check_rates(rate_in, rate_out)
    return -(-n * rate_out // rate_in)


def resample(x: npt.NDArray[np.generic], rate_in: int, rate_out: int) -> Float:
    """Resample the mono signal ``x`` from ``rate_in`` to ``rate_out`` Hz (float64 out).

    Works for any pair of positive integer rates; equal rates return a float64 copy.
    """
    _check_rates(rate_in, rate_out)
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"resample wants mono audio of shape (n,), not {data.shape}")
    if rate_in == rate_out or data.size == 0:
        return data.copy()
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    return _polyphase(data, up, down, _lowpass(up, down))


def _check_rates(rate_in: int, rate_out: int) -> None:
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, not {rate_in} → {rate_out}")


@functools.lru_cache(maxsize=8)  # streaming conversion asks for the same filter every chunk
def _lowpass(up: int, down: int) -> Float:
    """Kaiser-windowed sinc for the upsampled rate, odd length, DC gain ``up``.

    Frequencies are in cycles per upsampled sample; the lower Nyquist is ``0.5 / max(up,
    down)``. The Kaiser formulas (beta and length for a given attenuation and transition
    width) are the standard ones from Kaiser's 1974 paper.
    """
    nyquist = 0.5 / max(up, down)
    cutoff = nyquist * (PASS_EDGE + STOP_EDGE) / 2
    transition = 2 * math.pi * nyquist * (STOP_EDGE - PASS_EDGE)
    atten = STOP_ATTENUATION_DB
    beta = 0.1102 * (atten - 8.7)
    half = math.ceil((atten - 7.95) / (2.285 * transition) / 2)
    k = np.arange(-half, half + 1, dtype=np.float64)
    taps = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(k.size, beta)
    normalised: Float = taps * (up / taps.sum())
    normalised.flags.writeable = False  # shared by the cache
    return normalised


def _polyphase(x: Float, up: int, down: int, taps: Float) -> Float:
    """Filter the ``up``-times zero-stuffed ``x`` with ``taps`` and keep every ``down``-th sample.

    With the filter centred at ``c``, output ``n`` sits at upsampled index ``t = n·down`` and
    equals ``Σ_m taps[p + m·up] · x[b − m]`` where ``p = (t + c) mod up`` and
    ``b = (t + c) div up``: row ``p`` of the polyphase table against ``x`` read backwards.
    """
    centre = (taps.size - 1) // 2
    per_phase = -(-taps.size // up)
    table = np.zeros(per_phase * up, dtype=np.float64)
    table[: taps.size] = taps
    phases = table.reshape(per_phase, up).T[:, ::-1]  # row p, reversed: oldest sample first
    padded = np.concatenate((np.zeros(per_phase - 1), x, np.zeros(per_phase)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, per_phase)
    n_out = -(-x.size * up // down)
    out = np.empty(n_out, dtype=np.float64)
    for start in range(0, n_out, _BLOCK_OUTPUTS):
        t = np.arange(start, min(start + _BLOCK_OUTPUTS, n_out), dtype=np.int64) * down + centre
        base = np.minimum(t // up, x.size + per_phase - 1)  # window b covers x[b-P+1 .. b]
        out[start : start + t.size] = np.einsum("ij,ij->i", phases[t % up], windows[base])
    return out


class StreamResampler:
    """``resample`` for a stream that arrives frame by frame, with the same filter.

    Input is converted in blocks of whole ``down`` samples, each with a margin of real
    neighbouring samples on both sides (longer than half the filter), so every output sample
    is the one ``resample`` would give for the whole signal. The price is a delay of one
    margin (a few milliseconds): ``process`` returns what is ready, possibly nothing at first,
    and ``flush`` the rest. Equal rates pass frames through untouched.
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        _check_rates(rate_in, rate_out)
        g = math.gcd(rate_in, rate_out)
        self.rate_in, self.rate_out = rate_in, rate_out
        self._up, self._down = rate_out // g, rate_in // g
        half = -(-40 * max(self._up, self._down) // self._up)  # input samples, > half the taps
        self._margin = -(-half // self._down) * self._down
        self._pending: Float = np.zeros(self._margin)  # margin of history, then unconverted input

    def process(self, frame: npt.NDArray[np.generic]) -> npt.NDArray[np.int16]:
        """Convert one frame of int16 samples; returns the int16 output ready so far."""
        if self.rate_in == self.rate_out:
            return np.asarray(frame, dtype=np.int16).copy()
        self._pending = np.concatenate((self._pending, np.asarray(frame, dtype=np.float64)))
        ready = (self._pending.size - 2 * self._margin) // self._down * self._down
        if ready <= 0:
            return np.zeros(0, dtype=np.int16)
        window = self._pending[: ready + 2 * self._margin]
        converted = resample(window, self.rate_in, self.rate_out)
        first = self._margin * self._up // self._down
        out = converted[first : first + ready * self._up // self._down]
        self._pending = self._pending[ready:]
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)

    def flush(self) -> npt.NDArray[np.int16]:
        """The output still held back (the input's end treated as followed by silence)."""
        if self.rate_in == self.rate_out:
            return np.zeros(0, dtype=np.int16)
        tail = self._pending.size - self._margin
        pad = (-tail) % self._down + self._margin
        out = self.process(np.zeros(pad, dtype=np.int16))
        self._pending = np.zeros(self._margin)
        return out
