"""A slow, literal G.722 model for cross-checking the fast codec where the vectors do not reach.

It follows the G.722 block diagram one block per function (SUBTRA, QUANTL, INVQAL, LOGSCL,
SCALEL, UPZERO, UPPOL2, UPPOL1, FILTEZ, FILTEP, PREDIC, QMF) with every operation done as the
16-bit saturating fixed-point "basic operators" of ITU-T G.191 do it, without the fast module's
tables or its reasoning about which operations cannot overflow. The speech vectors never drive
the codec into saturation; loud synthetic signals compared against this model do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from securephone.media.codecs import g722 as fast


def sat(x: int) -> int:
    return max(-32768, min(32767, x))


def add(a: int, b: int) -> int:
    return sat(a + b)


def mult(a: int, b: int) -> int:
    return sat((a * b) >> 15)


def shl(a: int, n: int) -> int:
    return sat(a << n)


def neg(a: int) -> int:
    return sat(-a)


def sign(x: int) -> int:
    return -1 if x < 0 else 0


@dataclass
class Band:
    high: bool
    s: int = 0
    sz: int = 0
    nb: int = 0
    det: int = 0
    a: list[int] = field(default_factory=lambda: [0, 0, 0])
    b: list[int] = field(default_factory=lambda: [0] * 7)
    d: list[int] = field(default_factory=lambda: [0] * 7)
    p: list[int] = field(default_factory=lambda: [0, 0, 0])
    r: list[int] = field(default_factory=lambda: [0, 0, 0])

    def __post_init__(self) -> None:
        self.det = 8 if self.high else 32

    def quantise(self, e: int) -> int:
        wd = e if e >= 0 else sat(32767 - (e & 32767))
        if self.high:
            mih = 2 if wd >= mult(shl(fast._Q2, 3), self.det) else 1
            return {(0, 1): 3, (0, 2): 2, (-1, 1): 1, (-1, 2): 0}[(sign(e), mih)]
        mil = 1
        while mil < 30 and mult(shl(fast._Q6[mil], 3), self.det) <= wd:
            mil += 1
        return fast._low_code(mil, e < 0)

    def adapt(self, code: int) -> None:
        if self.high:
            level = fast._high_level(code)
            inc = fast._WH[1] if code in (0, 2) else fast._WH[0]
            nb_max, offset = fast._HIGH_NB_MAX, 0
        else:
            level = fast._low_level4(code)
            inc = fast._WL[fast._low_level4_magnitude(code)]
            nb_max, offset = fast._LOW_NB_MAX, 64
        d0 = mult(self.det, shl(level, 3))
        self.nb = min(max(add(mult(self.nb, 32512), inc), 0), nb_max)
        self.det = shl(fast._ILA[((self.nb >> 6) & 511) + offset] + 1, 2)
        self.d[0] = d0
        self.p[0] = add(d0, self.sz)
        self.r[0] = add(self.s, d0)
        self.upzero()
        self.uppol2()
        self.uppol1()
        self.sz = 0
        for i in range(6, 0, -1):
            self.sz = add(self.sz, mult(add(self.d[i], self.d[i]), self.b[i]))
        self.r[2], self.r[1] = self.r[1], self.r[0]
        sp = add(
            mult(self.a[1], add(self.r[1], self.r[1])), mult(self.a[2], add(self.r[2], self.r[2]))
        )
        self.s = add(sp, self.sz)

    def upzero(self) -> None:
        step = 128 if self.d[0] != 0 else 0
        for i in range(6, 0, -1):
            g = step if sign(self.d[0]) == sign(self.d[i]) else neg(step)
            self.b[i] = add(g, mult(self.b[i], 32640))
            self.d[i] = self.d[i - 1]

    def uppol2(self) -> None:
        wd1 = shl(self.a[1], 2)
        wd2 = neg(wd1) if sign(self.p[0]) == sign(self.p[1]) else wd1
        wd3 = 128 if sign(self.p[0]) == sign(self.p[2]) else -128
        a2 = add(add(wd2 >> 7, wd3), mult(self.a[2], 32512))
        self.a[2] = min(max(a2, -12288), 12288)

    def uppol1(self) -> None:
        wd1 = 192 if sign(self.p[0]) == sign(self.p[1]) else -192
        a1 = add(wd1, mult(self.a[1], 32640))
        limit = sub_(15360, self.a[2])
        self.a[1] = limit if a1 > limit else (neg(limit) if add(a1, limit) < 0 else a1)
        self.p[2], self.p[1] = self.p[1], self.p[0]


def sub_(a: int, b: int) -> int:
    return sat(a - b)


def limit(x: int) -> int:
    return min(max(x, -16384), 16383)


QMF = [2 * h for h in fast._QMF_HALF + fast._QMF_HALF[::-1]]


def qmf_sums(line: list[int]) -> tuple[int, int]:
    """The two 32-bit accumulators over a 24-value delay line (newest first)."""
    return sum(QMF[j] * line[j] for j in range(0, 24, 2)), sum(
        QMF[j] * line[j] for j in range(1, 24, 2)
    )


def encode(samples: list[int]) -> bytes:
    low, high, line = Band(False), Band(True), [0] * 24
    out = bytearray()
    for k in range(0, len(samples), 2):
        line = [samples[k + 1], samples[k], *line[:22]]
        acc_a, acc_b = qmf_sums(line)
        xl, xh = limit((2 * (acc_a + acc_b)) >> 16), limit((2 * (acc_a - acc_b)) >> 16)
        il = low.quantise(sub_(xl, low.s))
        low.adapt(il)
        ih = high.quantise(sub_(xh, high.s))
        high.adapt(ih)
        out.append(((ih << 6) + il) & 0xFF)
    return bytes(out)


def decode(data: bytes, mode: int) -> list[int]:
    low, high, line = Band(False), Band(True), [0] * 24
    levels = {1: fast._low_level6, 2: fast._low_level5, 3: fast._low_level4}[mode]
    out: list[int] = []
    for code in data:
        il, ih = code & 0x3F, code >> 6
        rl = limit(add(low.s, mult(low.det, shl(levels(il), 3))))
        low.adapt(il)
        rh = limit(add(high.s, mult(shl(fast._high_level(ih), 3), high.det)))
        high.adapt(ih)
        line = [sub_(rl, rh), add(rl, rh), *line[:22]]
        acc_a, acc_b = qmf_sums(line)
        for acc in (acc_a, acc_b):
            out.append(sat(max(-(2**31), min(2**31 - 1, acc << 4)) >> 16))
    return out
