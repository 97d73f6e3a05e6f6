"""Values from a stream's raw words, with IEEE-exact operations only, in pieces of a few hundred KiB.

The built-in initializers turn raw 64-bit words into values with integer bit operations, +, -, *, / and sqrt
(each rounded once), never with libm or SIMD transcendental functions, whose last bit differs between CPUs and
numpy builds:

- uniform: 23 (float32) or 52 (float64) random mantissa bits give an exact value in [0, 1);
- normal: Box-Muller over blocks of BLOCK values: the first half of a block is r * A, the second
  r * B, with r = sqrt(-2 ln y), (A, B) the cosine and sine of an angle made of a random quadrant
  and a residual in [-pi/4, pi/4), and ln, sin, cos fixed polynomials. Values are within a few ulp
  of the exact transform; float32 values reach 5.6 standard deviations, float64 ones 8.5.

Every operation is elementwise, so the words are drawn and transformed `sub` at a time. In place (normal(),
uniform()), a block's radius words come first (r is kept in the output's first half), then its angle words (each
gives its value in both halves). For memory that cannot be written in place (a strided or partial block),
normal_runs() and uniform_runs() hand the same values out as runs of at most `sub`, from two cursors into the
stream (radius and angle words of a block), so no whole block is ever held. The only scratch is a few arrays of
`sub` elements (scratch_bytes), whatever the output's size: SUB keeps them within one chunk of float32 for one
fill thread, where small pieces are also the fastest (they stay in cache); WIDE suits several fill threads, which
pay numpy's per-call overhead under one GIL.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

BLOCK = 1 << 18
SUB = 1 << 15
WIDE = 1 << 17


@dataclass(frozen=True)
class _Float:
    """Bit-level constants and polynomial coefficients of one float width."""

    float: type
    uint: type
    int: type
    bits: int
    fraction: int
    one: int
    sqrt_half: int
    log: tuple
    sin: tuple
    cos: tuple


def _float(dtype: type, uint: type, int_: type, log: tuple, sin: tuple, cos: tuple) -> _Float:
    """-2 ln(m) = s * P(s^2) with s = (m-1)/(m+1); sin x = x * S(x^2); cos x = C(x^2); |x| <= pi/4."""
    info = np.finfo(dtype)
    one, sqrt_half = (int(np.array(x, dtype).view(uint)) for x in (1.0, math.sqrt(0.5)))
    return _Float(dtype, uint, int_, info.bits, info.nmant, one, sqrt_half, log, sin, cos)


def _taylor(terms: int, odd: bool) -> tuple[float, ...]:
    return tuple((-1) ** k / math.factorial(2 * k + odd) for k in range(terms))


_F32 = _float(np.float32, np.uint32, np.int32, tuple(-4.0 / (2 * k + 1) for k in range(4)),
              (1.0, -0.16666650772094727, 0.00833203736692667, -0.00019504032388795167),
              (1.0, -0.4999985694885254, 0.041655026376247406, -0.001358591951429844))
_F64 = _float(np.float64, np.uint64, np.int64, tuple(-4.0 / (2 * k + 1) for k in range(11)), _taylor(9, True),
              _taylor(9, False))


def spec(dtype: np.dtype) -> _Float:
    """The constants of float32 or float64, the widths values are drawn in."""
    if dtype == np.float32:
        return _F32
    if dtype == np.float64:
        return _F64
    raise TypeError(f"random values are drawn in float32 or float64, not {dtype}")


def scratch_bytes(dtype: np.dtype, sub: int = SUB) -> int:
    """The most memory the draws hold at once besides their output: five arrays of sub values in runs (the run's two
    halves, the raw words, two working arrays); in place three, four for the last values of a block of odd size."""
    return 5 * sub * spec(np.dtype(dtype)).bits // 8


def reach(dtype: np.dtype) -> float:
    """The largest |value| normal() draws in dtype (std 1): sqrt(-2 ln) of the smallest uniform, plus 1%."""
    return 1.01 * math.sqrt(2 * spec(np.dtype(dtype)).fraction * math.log(2))


class _Words:
    """A cursor into a stream's raw words of one float's width, read in order, count at a time (two float32 words
    per 64-bit draw). After an odd number of float32 words it stands inside a draw: the next read steps back one
    draw (PCG advances by any delta mod 2^128) and returns a view past its first word, so no read copies."""

    BACK = (1 << 128) - 1

    def __init__(self, bits: np.random.BitGenerator, s: _Float, odd: bool = False) -> None:
        self.bits, self.s, self.odd = bits, s, odd

    def read(self, count: int) -> np.ndarray:
        if self.s.bits == 64:
            return self.bits.random_raw(count)
        skip = int(self.odd)
        if skip:
            self.bits.advance(self.BACK)
        self.odd = bool((count + skip) & 1)
        return self.bits.random_raw((count + skip + 1) // 2).view(np.uint32)[skip : skip + count]

    def ahead(self, count: int) -> _Words:
        """A second cursor, count words further on (this one must be at a whole draw)."""
        draws, odd = divmod(count, 64 // self.s.bits)
        clone = type(self.bits)(0)
        clone.state = self.bits.state
        clone.advance(draws + odd)
        return _Words(clone, self.s, bool(odd))


def _raw(g: np.random.Generator, count: int, s: _Float) -> np.ndarray:
    """count random words of s's width (two float32 words per 64-bit draw; an odd count leaves half a draw)."""
    return g.bit_generator.random_raw(-(-count * s.bits // 64)).view(s.uint)[:count]


def _unit(raw: np.ndarray, s: _Float) -> np.ndarray:
    """Exact floats in [1, 2) from the top mantissa bits of raw, in place; returned as a float view."""
    raw >>= s.uint(s.bits - s.fraction)
    raw |= s.uint(s.one)
    return raw.view(s.float)


def _horner(z: np.ndarray, coefficients: tuple, out: np.ndarray) -> np.ndarray:
    np.multiply(z, z.dtype.type(coefficients[-1]), out=out)
    out += z.dtype.type(coefficients[-2])
    for c in coefficients[-3::-1]:
        out *= z
        out += z.dtype.type(c)
    return out


def _radius(raw: np.ndarray, r: np.ndarray, s: _Float, t: list[np.ndarray]) -> None:
    """r = sqrt(-2 ln y) of the uniforms y in (0, 1] that raw's words give (as 2 - [1, 2)); raw is scratch after."""
    f, i = s.float, s.int
    t1, t2 = t
    np.subtract(f(2), _unit(raw, s), out=r)
    k = raw.view(i)
    ri = r.view(i)
    ri -= i(s.sqrt_half)
    np.right_shift(ri, i(s.fraction), out=k)
    ri &= i((1 << s.fraction) - 1)
    ri += i(s.sqrt_half)
    r -= f(1)
    np.add(r, f(2), out=t1)
    np.divide(r, t1, out=r)
    np.multiply(r, r, out=t1)
    _horner(t1, s.log, t2)
    t2 *= r
    np.multiply(k, f(-2 * math.log(2)), out=t1, dtype=f, casting="unsafe")
    t1 += t2
    np.sqrt(t1, out=r)


def _angle(raw: np.ndarray, r: np.ndarray, b: np.ndarray, s: _Float, sin: tuple, cos: tuple,
           t: list[np.ndarray]) -> None:
    """r <- r * A, b <- r * B for the angles raw's words give (sin and cos carry std); raw is scratch after.

    Of an angle word, bit 0 is the common sign, bit 1 swaps A and B, the top bits give x.
    """
    f, u, i = s.float, s.uint, s.int
    t1, t2 = t
    bu = b.view(u)
    np.right_shift(raw, u(s.bits - s.fraction), out=bu)
    bu |= u(s.one)
    b -= f(1.5)
    b *= f(math.pi / 2)
    np.multiply(b, b, out=t1)
    _horner(t1, sin, t2)
    b *= t2
    _horner(t1, cos, t2)
    mask = t1.view(u)
    np.left_shift(raw, u(s.bits - 1), out=mask)
    r.view(u)[...] ^= mask
    np.left_shift(raw, u(s.bits - 2), out=mask)
    np.right_shift(mask.view(i), i(s.bits - 1), out=mask.view(i))
    c = t2.view(u)
    np.bitwise_xor(c, bu, out=raw)
    raw &= mask
    c ^= raw
    bu ^= raw
    np.multiply(r, b, out=b)
    np.multiply(r, t2, out=r)


def _normal_block(words: _Words, out: np.ndarray, s: _Float, sin: tuple, cos: tuple, sub: int) -> None:
    """One Box-Muller block: out[:h] = r * A, out[h:] = r * B from 2h words (radii first, then angles)."""
    n = out.size
    h = (n + 1) // 2
    size = min(sub, h)
    t = [np.empty(size, s.float) for _ in range(2)]
    for j in range(0, h, sub):
        m = min(sub, h - j)
        _radius(words.read(m), out[j : j + m], s, t if m == size else [a[:m] for a in t])
    for j in range(0, h, sub):
        m = min(sub, h - j)
        b = out[h + j : h + j + m]
        short = b.size < m
        if short:
            b = np.empty(m, s.float)
        _angle(words.read(m), out[j : j + m], b, s, sin, cos, t if m == size else [a[:m] for a in t])
        if short:
            out[h + j :] = b[: n - h - j]


def _scaled(s: _Float, std: float) -> tuple[tuple, tuple]:
    return tuple(tuple(s.float(c * std) for c in poly) for poly in (s.sin, s.cos))  # type: ignore[return-value]


def normal(g: np.random.Generator, out: np.ndarray, mean: float = 0.0, std: float = 1.0, sub: int = SUB) -> None:
    """Fill the contiguous 1-D float32/float64 out with Normal(mean, std) values from g's raw bits."""
    s = spec(out.dtype)
    sin, cos = _scaled(s, std)
    words = _Words(g.bit_generator, s)
    for start in range(0, out.size, BLOCK):
        _normal_block(words, out[start : start + BLOCK], s, sin, cos, sub)
    if mean:
        out += s.float(mean)


Runs = Iterator[tuple[int, np.ndarray]]


def normal_runs(g: np.random.Generator, n: int, dtype: np.dtype, mean: float = 0.0, std: float = 1.0,
                sub: int = SUB) -> Runs:
    """The n values normal() would write, as (offset, values) runs of at most sub values each, without holding them
    all: each run's values are scratch, overwritten by the next. g ends where normal() leaves it."""
    s = spec(np.dtype(dtype))
    f = s.float
    sin, cos = _scaled(s, std)
    size = min(sub, (min(n, BLOCK) + 1) // 2)
    r_all, b_all, *t = (np.empty(size, f) for _ in range(4))
    radius = _Words(g.bit_generator, s)
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        h = (nb + 1) // 2
        angle = radius.ahead(h)
        for j in range(0, h, sub):
            m = min(sub, h - j)
            r, b = r_all[:m], b_all[:m]
            _radius(radius.read(m), r, s, t if m == size else [a[:m] for a in t])
            _angle(angle.read(m), r, b, s, sin, cos, t if m == size else [a[:m] for a in t])
            if mean:
                r += f(mean)
                b += f(mean)
            yield start + j, r
            yield start + h + j, b[: min(m, nb - h - j)]
        radius = angle
    g.bit_generator.state = radius.bits.state


def uniform(g: np.random.Generator, out: np.ndarray, low: float = 0.0, high: float = 1.0, sub: int = SUB) -> None:
    """Fill the contiguous 1-D float32/float64 out with values in [low, high) from g's raw bits."""
    for _ in _uniform(g, out.size, out.dtype, low, high, sub, out):
        pass


def uniform_runs(g: np.random.Generator, n: int, dtype: np.dtype, low: float = 0.0, high: float = 1.0,
                 sub: int = SUB) -> Runs:
    """The n values uniform() would write, as (offset, values) runs of at most sub values (scratch, as normal_runs)."""
    return _uniform(g, n, np.dtype(dtype), low, high, sub, np.empty(min(n, sub), dtype))


def _uniform(g: np.random.Generator, n: int, dtype: np.dtype, low: float, high: float, sub: int,
             out: np.ndarray) -> Runs:
    """Runs of uniform values, each written into out (the whole output, or one reused run of scratch)."""
    s = spec(np.dtype(dtype))
    whole = out.size == n
    for start in range(0, n, BLOCK):
        for j in range(start, min(n, start + BLOCK), sub):
            m = min(sub, n - j, start + BLOCK - j)
            part = out[j : j + m] if whole else out[:m]
            np.subtract(_unit(_raw(g, m, s), s), s.float(1), out=part)
            part *= s.float(high - low)
            part += s.float(low)
            yield j, part
