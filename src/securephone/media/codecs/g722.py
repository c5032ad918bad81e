"""G.722 wideband ADPCM at 64 kbit/s, sans I/O, bit-exact (ITU-T G.722, RFC 3551 §4.5.2).

G.722 codes 16 kHz audio (50-7000 Hz) in two sub-bands:

* a 24-tap quadrature mirror filter (QMF, G.722 §3.2 / §4.4) splits each pair of input
  samples into one low-band sample (0-4 kHz) and one high-band sample (4-8 kHz), each at
  8 kHz; the decoder's QMF merges them back;
* each sub-band is coded by backward-adaptive ADPCM (§3.3-§3.6): 6 bits per low-band sample
  (a 60-level quantiser), 2 bits per high-band sample (4 levels). The predictor has two poles
  and six zeros, the step size adapts in the log domain. Nothing but the codewords is sent:
  the decoder rebuilds the same state from them.

One 8-bit codeword per sample pair: bits 7-6 the high band, bits 5-0 the low band; RTP carries
the octets in order (RFC 3551 §4.5.2). The decoder can drop 1 or 2 low-band bits (modes 2 and 3,
56 and 48 kbit/s, for auxiliary data); the encoder always produces mode 1.

Arithmetic follows the 16-bit fixed-point reference of ITU-T G.191 (STL ``src/g722``, basic
operators with saturation) so that the codec matches its test data bit for bit; every place
where a saturating 16-bit operation can actually overflow is clamped here, the others are plain
integer arithmetic (their bounds are noted). The per-sample ADPCM recursion is inherently
sequential and runs as a tight Python loop over ints, with every scale-dependent product
(quantiser thresholds, inverse-quantised values) read from tables built once at import and
indexed by the log scale factor; the QMF filters are vectorised with numpy per frame.

RTP facts: the rtpmap is ``G722/8000`` although audio is sampled at 16 kHz (an error in the
original RFC 1890 kept for compatibility), so a 20 ms frame is 320 samples, 160 octets and
160 RTP timestamp units; static payload type 9.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

__all__ = [
    "G722",
    "G722_CLOCK_RATE",
    "G722_PAYLOAD_TYPE",
    "G722_SAMPLE_RATE",
    "G722Codec",
    "G722Decoder",
    "G722Encoder",
    "g722_decode",
    "g722_encode",
]

G722_PAYLOAD_TYPE = 9  # RFC 3551 §6, Table 4
G722_CLOCK_RATE = 8000  # RTP timestamp rate (RFC 3551 §4.5.2), not the sampling rate
G722_SAMPLE_RATE = 16000

# --- G.722 constant tables ---------------------------------------------------------------------

# Scale factor antilog table (G.722 §3.5, ILA): step size = (ILA[n] + 1) << 2.
_ILA = (
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4,
    4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6,
    7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 9, 9, 9, 9, 10,
    10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 13, 13, 13, 13, 14, 14,
    15, 15, 15, 16, 16, 16, 17, 17, 18, 18, 18, 19, 19, 20, 20, 21,
    21, 22, 22, 23, 23, 24, 24, 25, 25, 26, 27, 27, 28, 28, 29, 30,
    31, 31, 32, 33, 33, 34, 35, 36, 37, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 57, 58, 60, 61,
    63, 64, 65, 67, 68, 70, 71, 73, 75, 76, 78, 80, 82, 83, 85, 87,
    89, 91, 93, 95, 97, 99, 102, 104, 106, 109, 111, 113, 116, 118, 121, 124,
    127, 129, 132, 135, 138, 141, 144, 147, 151, 154, 157, 161, 165, 168, 172, 176,
    180, 184, 188, 192, 196, 200, 205, 209, 214, 219, 223, 228, 233, 238, 244, 249,
    255, 260, 266, 272, 278, 284, 290, 296, 303, 310, 316, 323, 331, 338, 345, 353,
    361, 369, 377, 385, 393, 402, 411, 420, 429, 439, 448, 458, 468, 478, 489, 500,
    511, 522, 533, 545, 557, 569, 582, 594, 607, 621, 634, 648, 663, 677, 692, 707,
    723, 739, 755, 771, 788, 806, 823, 841, 860, 879, 898, 918, 938, 958, 979, 1001,
    1023, 1045, 1068, 1092, 1115, 1140, 1165, 1190, 1216, 1243, 1270, 1298, 1327, 1356, 1386, 1416,
    1447, 1479, 1511, 1544, 1578, 1613, 1648, 1684, 1721, 1759, 1797, 1837, 1877, 1918, 1960, 2003,
    2047, 2092, 2138, 2185, 2232, 2281, 2331, 2382, 2434, 2488, 2542, 2598, 2655, 2713, 2773, 2833,
    2895, 2959, 3024, 3090, 3157, 3227, 3297, 3370, 3443, 3519, 3596, 3675, 3755, 3837, 3921, 4007,
    4095,
)  # fmt: skip

# Low band, 6-bit quantiser decision levels (§3.3, Table 6), normalised; level 30 is open-ended.
_Q6 = (
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714,
    786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
)  # fmt: skip
# Inverse quantiser output levels: 4-bit (adaptation, mode 3), 5-bit (mode 2), 6-bit (mode 1).
_OQ4 = (0, 150, 323, 530, 786, 1121, 1612, 2557)
_OQ5 = (0, 35, 110, 190, 276, 370, 473, 587, 714, 858, 1023, 1219, 1458, 1765, 2195, 2919)
_OQ6 = (
    0, 17, 54, 91, 130, 170, 211, 254, 300, 347, 396, 447, 501, 558, 618, 682,
    750, 822, 899, 982, 1072, 1170, 1279, 1399, 1535, 1689, 1873, 2088, 2376, 2738, 3101,
)  # fmt: skip
# Log scale factor increments by 4-bit magnitude (§3.5, WL) and high-band ones (§3.6, WH).
_WL = (-60, -30, 58, 172, 334, 538, 1198, 3042)
_LOW_NB_MAX = 18432
_HIGH_NB_MAX = 22528
# High band, 2-bit quantiser (§3.6): one decision level, two output levels.
_Q2 = 564
_OQ2 = (202, 926)
_WH = (-214, 798)
# QMF coefficients h0..h11 (§3.2, Table 11, times 2 as in the fixed-point reference); symmetric.
_QMF_HALF = (3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876)
_QMF = np.array([2 * h for h in _QMF_HALF + _QMF_HALF[::-1]], dtype=np.int64)
_QMF_ODD = _QMF[1::2].copy()  # taps applied to the newer sample of each pair ("accuma")
_QMF_EVEN = _QMF[0::2].copy()  # taps applied to the older sample of each pair ("accumb")
_QMF_HISTORY = 22


def _low_code(mil: int, negative: bool) -> int:
    """6-bit low-band codeword for quantiser interval ``mil`` (1..30) and sign (Table 6)."""
    if not negative:
        return 62 - mil
    return 64 - mil if mil <= 2 else 34 - mil


def _low_level4(code: int) -> int:
    """Signed 4-bit inverse quantiser level of a low-band codeword (QQ4, from its top 4 bits)."""
    il4 = code >> 2
    if il4 == 0:
        return 0
    return -_OQ4[8 - il4] if il4 < 8 else _OQ4[15 - il4]


def _low_level4_magnitude(code: int) -> int:
    """Magnitude index 0..7 of the 4-bit part of a low-band codeword (for WL)."""
    il4 = code >> 2
    if il4 == 0:
        return 0
    return 8 - il4 if il4 < 8 else 15 - il4


def _low_level5(code: int) -> int:
    """Signed 5-bit inverse quantiser level (mode 2, top 5 bits of the codeword)."""
    il5 = code >> 1
    if il5 in (0, 1, 31):
        return -_OQ5[1]
    return -_OQ5[17 - il5] if il5 < 16 else _OQ5[31 - il5]


def _low_level6(code: int) -> int:
    """Signed 6-bit inverse quantiser level (mode 1, the whole low-band codeword)."""
    if code < 4:
        return -_OQ6[1]
    if code >= 62:
        return -_OQ6[64 - code]
    return -_OQ6[34 - code] if code < 32 else _OQ6[62 - code]


def _high_level(code: int) -> int:
    """Signed 2-bit high-band inverse quantiser level (§3.6)."""
    magnitude = _OQ2[1] if code in (0, 2) else _OQ2[0]
    return -magnitude if code < 2 else magnitude


def _mult(a: int, b: int) -> int:
    """The reference ``mult``: Q15 product, floor; no operand here is -32768."""
    return (a * b) >> 15


@dataclass(frozen=True, slots=True)
class _BandTables:
    """Everything one sub-band's ADPCM needs, indexed by the log scale factor ``nb >> 6``.

    ``thresholds[n]``: quantiser decision levels times the step size, for ``bisect_right`` on
    the error magnitude; ``codes_pos``/``codes_neg``: bisect result -> codeword;
    ``adapt[n][code]``: the quantised difference the predictor adapts on; ``out[mode][n][code]``:
    the decoder's reconstructed difference; ``nb_add[code]``: the log scale increment.
    """

    thresholds: tuple[tuple[int, ...], ...]
    codes_pos: tuple[int, ...]
    codes_neg: tuple[int, ...]
    adapt: tuple[tuple[int, ...], ...]
    out: dict[int, tuple[tuple[int, ...], ...]]
    nb_add: tuple[int, ...]
    nb_max: int


def _steps(ila_offset: int, nb_max: int) -> list[int]:
    """Step size (DETL/DETH) for every ``nb >> 6`` (§3.5 SCALEL, §3.6 SCALEH)."""
    return [(_ILA[n + ila_offset] + 1) << 2 for n in range((nb_max >> 6) + 1)]


def _scaled(steps: list[int], levels: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """``mult(step, level << 3)`` for every step size and level."""
    return tuple(tuple(_mult(step, level << 3) for level in levels) for step in steps)


def _low_tables() -> _BandTables:
    """Tables of the low band (§3.3-§3.5): 6-bit codewords, 64 entries per step size."""
    steps = _steps(64, _LOW_NB_MAX)
    codes = range(64)
    return _BandTables(
        thresholds=_scaled(steps, _Q6[1:30]),
        codes_pos=tuple(_low_code(mil, False) for mil in range(1, 31)),
        codes_neg=tuple(_low_code(mil, True) for mil in range(1, 31)),
        adapt=_scaled(steps, [_low_level4(c) for c in codes]),
        out={
            1: _scaled(steps, [_low_level6(c) for c in codes]),
            2: _scaled(steps, [_low_level5(c) for c in codes]),
            3: _scaled(steps, [_low_level4(c) for c in codes]),
        },
        nb_add=tuple(_WL[_low_level4_magnitude(c)] for c in codes),
        nb_max=_LOW_NB_MAX,
    )


def _high_tables() -> _BandTables:
    """Tables of the high band (§3.6): 2-bit codewords, one decision level."""
    steps = _steps(0, _HIGH_NB_MAX)
    adapt = _scaled(steps, [_high_level(c) for c in range(4)])
    return _BandTables(
        thresholds=_scaled(steps, [_Q2]),
        codes_pos=(3, 2),
        codes_neg=(1, 0),
        adapt=adapt,
        out={1: adapt, 2: adapt, 3: adapt},
        nb_add=tuple(_WH[1] if c in (0, 2) else _WH[0] for c in range(4)),
        nb_max=_HIGH_NB_MAX,
    )


@cache
def _tables() -> tuple[_BandTables, _BandTables]:
    """The low and high band tables, built by the first encoder or decoder (about 1.6 MB: a
    process whose calls never use G.722 never builds them)."""
    return _low_tables(), _high_tables()


# --- the sub-band ADPCM state and loops --------------------------------------------------------

# State of one sub-band (§3.4-§3.6), as a list of ints in this order:
# s (prediction), sz (zero-section prediction), nb (log scale factor), a1, a2 (pole
# coefficients), b1..b6 (zero coefficients), d1..d6 (past quantised differences),
# p1, p2 (past partial reconstructions), r1, r2 (past reconstructed signals).
_STATE_LEN = 21


def _initial_state() -> list[int]:
    """The reset state (§3.7): all zero; the step size follows from nb = 0."""
    return [0] * _STATE_LEN


def _run_band(
    values: list[int],
    state: list[int],
    t: _BandTables,
    out_rows: tuple[tuple[int, ...], ...] | None,
) -> list[int]:
    """Run one sub-band's ADPCM over ``values``, updating ``state`` in place (§3.3-§3.6, §4).

    Encoding (``out_rows`` is None): ``values`` are sub-band samples, the result their
    codewords. Decoding: ``values`` are codewords, the result the reconstructed sub-band
    samples, ``out_rows[n][code]`` giving the decoder's quantised difference for the mode.
    Both directions share the predictor and scale adaptation, so they stay in step.
    """
    s, sz, nb, a1, a2, b1, b2, b3, b4, b5, b6, d1, d2, d3, d4, d5, d6, p1, p2, r1, r2 = state
    thresholds, adapt, nb_add, nb_max = t.thresholds, t.adapt, t.nb_add, t.nb_max
    codes_pos, codes_neg = t.codes_pos, t.codes_neg
    out: list[int] = []
    append = out.append
    for value in values:
        n = nb >> 6
        if out_rows is None:
            e = value - s  # subtra, saturating: s spans 16 bits
            if e > 32767:
                e = 32767
            elif e < -32768:
                e = -32768
            if e < 0:
                code = codes_neg[bisect_right(thresholds[n], ~e)]
            else:
                code = codes_pos[bisect_right(thresholds[n], e)]
            append(code)
        else:
            code = value
            y = s + out_rows[n][code]  # recons, then limit to the sub-band range
            if y > 16383:
                y = 16383
            elif y < -16384:
                y = -16384
            append(y)
        d0 = adapt[n][code]
        nb = ((nb * 32512) >> 15) + nb_add[code]  # logscl / logsch
        if nb < 0:
            nb = 0
        elif nb > nb_max:
            nb = nb_max
        # --- predictor adaptation, identical in the decoder ---
        p0 = d0 + sz  # parrec
        if p0 > 32767:
            p0 = 32767
        elif p0 < -32768:
            p0 = -32768
        r0 = s + d0  # recons
        if r0 > 32767:
            r0 = 32767
        elif r0 < -32768:
            r0 = -32768
        # upzero (§3.6.3): sign-sign update with leakage; cannot leave 16 bits
        if d0:
            g = 128 if d0 >= 0 else -128
            b1 = ((b1 * 32640) >> 15) + (g if d1 >= 0 else -g)
            b2 = ((b2 * 32640) >> 15) + (g if d2 >= 0 else -g)
            b3 = ((b3 * 32640) >> 15) + (g if d3 >= 0 else -g)
            b4 = ((b4 * 32640) >> 15) + (g if d4 >= 0 else -g)
            b5 = ((b5 * 32640) >> 15) + (g if d5 >= 0 else -g)
            b6 = ((b6 * 32640) >> 15) + (g if d6 >= 0 else -g)
        else:
            b1 = (b1 * 32640) >> 15
            b2 = (b2 * 32640) >> 15
            b3 = (b3 * 32640) >> 15
            b4 = (b4 * 32640) >> 15
            b5 = (b5 * 32640) >> 15
            b6 = (b6 * 32640) >> 15
        d6, d5, d4, d3, d2, d1 = d5, d4, d3, d2, d1, d0
        # uppol2 (§3.6.2): the old a1 times 4 saturates to 16 bits
        w = a1 << 2
        if w > 32767:
            w = 32767
        elif w < -32768:
            w = -32768
        negative0 = p0 < 0
        if negative0 == (p1 < 0):
            w = 32767 if w == -32768 else -w
        a2 = (w >> 7) + (128 if negative0 == (p2 < 0) else -128) + ((a2 * 32512) >> 15)
        if a2 > 12288:
            a2 = 12288
        elif a2 < -12288:
            a2 = -12288
        # uppol1 (§3.6.1), bounded by the new a2
        a1 = (192 if negative0 == (p1 < 0) else -192) + ((a1 * 32640) >> 15)
        limit = 15360 - a2
        if a1 > limit:
            a1 = limit
        elif a1 < -limit:
            a1 = -limit
        p2 = p1
        p1 = p0
        # filtez: six zero-section products, summed with 16-bit saturation in reference order
        sz = ((d6 + d6) * b6) >> 15
        sz += ((d5 + d5) * b5) >> 15
        if sz > 32767:
            sz = 32767
        elif sz < -32768:
            sz = -32768
        sz += ((d4 + d4) * b4) >> 15
        if sz > 32767:
            sz = 32767
        elif sz < -32768:
            sz = -32768
        sz += ((d3 + d3) * b3) >> 15
        if sz > 32767:
            sz = 32767
        elif sz < -32768:
            sz = -32768
        sz += ((d2 + d2) * b2) >> 15
        if sz > 32767:
            sz = 32767
        elif sz < -32768:
            sz = -32768
        sz += ((d1 + d1) * b1) >> 15
        if sz > 32767:
            sz = 32767
        elif sz < -32768:
            sz = -32768
        # filtep: the pole section on doubled, saturated past reconstructions
        r2 = r1
        r1 = r0
        w = r1 + r1
        if w > 32767:
            w = 32767
        elif w < -32768:
            w = -32768
        v = r2 + r2
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        s = ((a1 * w) >> 15) + ((a2 * v) >> 15)
        if s > 32767:
            s = 32767
        elif s < -32768:
            s = -32768
        s += sz  # predic
        if s > 32767:
            s = 32767
        elif s < -32768:
            s = -32768
    state[:] = [s, sz, nb, a1, a2, b1, b2, b3, b4, b5, b6, d1, d2, d3, d4, d5, d6, p1, p2, r1, r2]
    return out


# --- QMF (§3.2 transmit, §4.4 receive), vectorised per frame -----------------------------------


def _qmf_sums(
    history: npt.NDArray[np.int64], pairs: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The two polyphase sums of the 24-tap QMF for every sample pair, and the new history.

    ``pairs`` is the interleaved sequence (older sample of each pair first); the filter sees
    the 22 values before it from ``history``. Returns (sum over newer samples, sum over older
    samples, last 22 values). Exact in int64: the sums stay below 2**31 as in the reference.
    """
    line = np.concatenate((history, pairs))
    windows = np.lib.stride_tricks.sliding_window_view(line, 24)[::2]
    return windows[:, 1::2] @ _QMF_ODD, windows[:, 0::2] @ _QMF_EVEN, line[-_QMF_HISTORY:]


def _as_pcm(pcm: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """16-bit samples as a flat int64 array of even length; anything else is refused."""
    samples = np.ascontiguousarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"G.722 encodes int16 samples, got {samples.dtype}")
    if samples.size % 2:
        raise ValueError("G.722 codes sample pairs: the frame needs an even number of samples")
    return samples.reshape(-1).astype(np.int64)


class G722Encoder:
    """A G.722 encoder (64 kbit/s, mode 1) with its own state: one per sending stream.

    ``encode`` takes 16 kHz int16 samples (an even count) and returns one octet per pair;
    state carries over between calls, so a stream cut into frames codes exactly as a whole.
    """

    def __init__(self) -> None:
        self._tables_low, self._tables_high = _tables()
        self.reset()

    def reset(self) -> None:
        """Back to the initial state (§3.7 reset)."""
        self._history = np.zeros(_QMF_HISTORY, dtype=np.int64)
        self._low = _initial_state()
        self._high = _initial_state()

    def encode(self, pcm: npt.ArrayLike) -> bytes:
        """Encode 16 kHz int16 PCM to G.722 codewords (§3.1): ``len(pcm) // 2`` octets."""
        newer, older, self._history = _qmf_sums(self._history, _as_pcm(pcm))
        low = np.clip((newer + older) >> 15, -16384, 16383)
        high = np.clip((newer - older) >> 15, -16384, 16383)
        il = _run_band(low.tolist(), self._low, self._tables_low, None)
        ih = _run_band(high.tolist(), self._high, self._tables_high, None)
        codes = (np.array(ih, dtype=np.uint8) << 6) | np.array(il, dtype=np.uint8)
        return codes.tobytes()


class G722Decoder:
    """A G.722 decoder with its own state: one per receiving stream.

    ``mode`` 1, 2 or 3 uses 6, 5 or 4 low-band bits of each codeword (64, 56, 48 kbit/s,
    §1.2); RTP streams are mode 1. ``decode`` returns two 16 kHz int16 samples per octet.
    """

    def __init__(self, mode: int = 1) -> None:
        if mode not in (1, 2, 3):
            raise ValueError(f"G.722 decoder mode must be 1, 2 or 3, not {mode!r}")
        self.mode = mode
        self._tables_low, self._tables_high = _tables()
        self.reset()

    def reset(self) -> None:
        """Back to the initial state (§4 reset)."""
        self._history = np.zeros(_QMF_HISTORY, dtype=np.int64)
        self._low = _initial_state()
        self._high = _initial_state()

    def decode(self, data: bytes | bytearray | memoryview) -> Pcm:
        """Decode G.722 octets to 16 kHz int16 PCM (§4), ``2 * len(data)`` samples."""
        codes = np.frombuffer(data, dtype=np.uint8)
        t_low, t_high = self._tables_low, self._tables_high
        rl = np.array(_run_band((codes & 0x3F).tolist(), self._low, t_low, t_low.out[self.mode]))
        rh = np.array(_run_band((codes >> 6).tolist(), self._high, t_high, t_high.out[1]))
        pairs = np.empty(2 * codes.size, dtype=np.int64)
        pairs[0::2] = rl + rh
        pairs[1::2] = rl - rh
        first, second, self._history = _qmf_sums(self._history, pairs)
        out = np.empty(2 * codes.size, dtype=np.int16)
        out[0::2] = np.clip(first >> 12, -32768, 32767)
        out[1::2] = np.clip(second >> 12, -32768, 32767)
        return out

    def conceal(
        self, samples: int, next_payload: bytes | bytearray | memoryview | None = None
    ) -> Pcm | None:
        """G.722 itself has no packet-loss concealment (that is G.722 Appendix III/IV): None."""
        return None


def g722_encode(pcm: npt.ArrayLike) -> bytes:
    """Encode a whole signal from the reset state (one-shot helper)."""
    return G722Encoder().encode(pcm)


def g722_decode(data: bytes | bytearray | memoryview, mode: int = 1) -> Pcm:
    """Decode a whole G.722 stream from the reset state (one-shot helper)."""
    return G722Decoder(mode).decode(data)


@dataclass(frozen=True, slots=True)
class G722Codec:
    """G.722 as an RTP audio codec (codecs/base.py ``AudioCodec``; RFC 3551 §4.5.2).

    Static payload type 9, rtpmap ``G722/8000``: the RTP clock runs at 8000 Hz while the audio
    is sampled at 16 kHz, so 20 ms is 320 samples, 160 octets and 160 timestamp units.
    """

    name: str = "G722"
    payload_type: int | None = G722_PAYLOAD_TYPE
    clock_rate: int = G722_CLOCK_RATE
    sample_rate: int = G722_SAMPLE_RATE
    channels: int = 1

    @property
    def rtpmap(self) -> str:
        """``G722/8000`` (RFC 3551 §4.5.2, Table 4)."""
        return f"{self.name}/{self.clock_rate}"

    @property
    def fmtp(self) -> str | None:
        """G.722 has no format parameters."""
        return None

    def timestamp_units(self, milliseconds: int) -> int:
        """RTP timestamp units: 8 per millisecond, 160 for 20 ms."""
        return self.clock_rate * milliseconds // 1000

    def frame_samples(self, milliseconds: int) -> int:
        """PCM samples at 16 kHz: 16 per millisecond, 320 for 20 ms."""
        return self.sample_rate * milliseconds // 1000

    def new_encoder(self) -> G722Encoder:
        """A fresh encoder (reset state) for one sending stream."""
        return G722Encoder()

    def new_decoder(self) -> G722Decoder:
        """A fresh mode-1 decoder (reset state) for one receiving stream."""
        return G722Decoder()


G722 = G722Codec()
