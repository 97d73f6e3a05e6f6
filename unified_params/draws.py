"""Values from a stream's raw words, with IEEE-exact operations only, in small pieces (a few KiB of scratch).

The built-in initializers turn raw 64-bit words into values with integer bit operations, +, -, *, / and sqrt
(each rounded once), never with libm or SIMD transcendental functions, whose last bit differs between CPUs and
numpy builds:

- uniform: 23 (float32) or 52 (float64) random mantissa bits give an exact value in [0, 1);
- normal: Box-Muller over blocks of BLOCK values: the first half of a block is r * A, the second
  r * B, with r = sqrt(-2 ln y), (A, B) the cosine and sine of an angle made of a random quadrant
  and a residual in [-pi/4, pi/4), and ln, sin, cos fixed polynomials. Values are within a few ulp
  of the exact transform; float32 values reach 5.6 standard deviations, float64 ones 8.5.

Every operation is elementwise, so the words are drawn and transformed SUB at a time: a block's radius words
first (r is kept in the output's first half), then its angle words (each gives its value in both halves). The
only scratch is a few arrays of SUB elements, whatever the output's size (SUB trades that scratch against numpy
call overhead, which the fill threads pay under one GIL: 2^15 made the 1 GB init 1.6x slower).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK = 1 << 18
SUB = 1 << 17


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


def scratch_bytes(dtype: np.dtype) -> int:
    """The most memory normal() and uniform() hold at once besides their output: four arrays of SUB values (three
    working arrays and the raw words; a block of odd size needs one more for its last value)."""
    return 5 * SUB * spec(np.dtype(dtype)).bits // 8


def reach(dtype: np.dtype) -> float:
    """The largest |value| normal() draws in dtype (std 1): sqrt(-2 ln) of the smallest uniform, plus 1%."""
    return 1.01 * math.sqrt(2 * spec(np.dtype(dtype)).fraction * math.log(2))


class _Words:
    """A stream's raw words of one float's width, read in order, count at a time (two float32 words per draw)."""

    def __init__(self, g: np.random.Generator, s: _Float) -> None:
        self.raw, self.s, self.left = g.bit_generator.random_raw, s, None

    def read(self, count: int) -> np.ndarray:
        if self.s.bits == 64:
            return self.raw(count)
        first, self.left = self.left, None
        need = count - (first is not None)
        words = self.raw(-(-need // 2)).view(np.uint32)
        if need & 1:
            self.left = words[need]
        if first is None:
            return words[:need]
        out = np.empty(count, np.uint32)
        out[0], out[1:] = first, words[:need]
        return out


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
    """r = sqrt(-2 ln y) of the uniforms y in (0, 1] that raw's words give (as 2 - [1, 2))."""
    f, i = s.float, s.int
    t1, t2, k = t[0], t[1], t[2].view(i)
    np.subtract(f(2), _unit(raw, s), out=r)
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
    """r <- r * A, b <- r * B for the angles raw's words give (sin and cos carry std).

    Of an angle word, bit 0 is the common sign, bit 1 swaps A and B, the top bits give x.
    """
    f, u, i = s.float, s.uint, s.int
    t1, t2, t3 = t
    bu = b.view(u)
    np.right_shift(raw, u(s.bits - s.fraction), out=bu)
    bu |= u(s.one)
    b -= f(1.5)
    b *= f(math.pi / 2)
    np.multiply(b, b, out=t1)
    _horner(t1, cos, t2)
    _horner(t1, sin, t3)
    t3 *= b
    mask, c, sn = t1.view(u), t2.view(u), t3.view(u)
    np.left_shift(raw, u(s.bits - 2), out=mask)
    np.right_shift(mask.view(i), i(s.bits - 1), out=mask.view(i))
    np.bitwise_xor(c, sn, out=bu)
    bu &= mask
    c ^= bu
    sn ^= bu
    np.left_shift(raw, u(s.bits - 1), out=mask)
    ru = r.view(u)
    ru ^= mask
    np.multiply(r, t3, out=b)
    np.multiply(r, t2, out=r)


def _normal_block(words: _Words, out: np.ndarray, s: _Float, sin: tuple, cos: tuple) -> None:
    """One Box-Muller block: out[:h] = r * A, out[h:] = r * B from 2h words (radii first, then angles)."""
    n = out.size
    h = (n + 1) // 2
    size = min(SUB, h)
    t = [np.empty(size, s.float) for _ in range(3)]
    for j in range(0, h, SUB):
        m = min(SUB, h - j)
        _radius(words.read(m), out[j : j + m], s, t if m == size else [a[:m] for a in t])
    for j in range(0, h, SUB):
        m = min(SUB, h - j)
        b = out[h + j : h + j + m]
        short = b.size < m
        if short:
            b = np.empty(m, s.float)
        _angle(words.read(m), out[j : j + m], b, s, sin, cos, t if m == size else [a[:m] for a in t])
        if short:
            out[h + j :] = b[: n - h - j]


def normal(g: np.random.Generator, out: np.ndarray, mean: float = 0.0, std: float = 1.0) -> None:
    """Fill the contiguous 1-D float32/float64 out with Normal(mean, std) values from g's raw bits."""
    s = spec(out.dtype)
    f = s.float
    sin, cos = (tuple(f(c * std) for c in poly) for poly in (s.sin, s.cos))
    words = _Words(g, s)
    for start in range(0, out.size, BLOCK):
        _normal_block(words, out[start : start + BLOCK], s, sin, cos)
    if mean:
        out += f(mean)


def uniform(g: np.random.Generator, out: np.ndarray, low: float = 0.0, high: float = 1.0) -> None:
    """Fill the contiguous 1-D float32/float64 out with values in [low, high) from g's raw bits."""
    s = spec(out.dtype)
    for start in range(0, out.size, BLOCK):
        block = out[start : start + BLOCK]
        for j in range(0, block.size, SUB):
            part = block[j : j + SUB]
            np.subtract(_unit(_raw(g, part.size, s), s), s.float(1), out=part)
            part *= s.float(high - low)
            part += s.float(low)
