"""Initializers: the built-ins, and the adapter that validates custom ones.

Every initializer is a function of (shape, dtype, seed, canonical name), so the same call gives
bitwise-identical canonical values on every backend. Fan-in and fan-out come from the canonical
layout, as in PyTorch: weight (out, in, *kernel).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from . import chunk_fills, dtypes
from . import rng as _rng
from .chunk_fills import ChunkFill
from .dtypes import is_float, resolve
from .errors import InitializerError, quote
from .fit import fit_one
from .regions import Region
from .rng import set_threads, threads

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "Normal", "Uniform", "XavierUniform", "XavierNormal",
    "KaimingUniform", "KaimingNormal", "TruncatedNormal", "Orthogonal", "make_value", "threads", "set_threads",
]

CustomInit = Callable[[tuple, np.dtype, np.random.Generator, str], Any]


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """numpy draws float32 and float64 directly; narrower floats are drawn in float32 and cast."""
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _number(owner: str, key: str, value: Any, minimum: float | None = None, integral: bool = False) -> float:
    """value as a finite Python number (an int if integral and it is one); InitializerError naming owner and key if not.

    numpy and torch scalars count as numbers; bools, strings and arrays of more than one element do not.
    """
    number = None
    complex_ = isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)
    if not complex_ and not isinstance(value, (bool, np.bool_, str, bytes)) and getattr(value, "ndim", 0) == 0:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError, RuntimeError):
            number = math.inf if isinstance(value, numbers.Integral) else None
    if number is None:
        raise InitializerError(f"{owner}: {key}={quote(value)} is not a number; pass a finite float")
    if math.isfinite(number) and integral and isinstance(value, numbers.Integral):
        return int(value)
    if not math.isfinite(number):
        raise InitializerError(f"{owner}: {key}={quote(value)} is not finite; pass a finite float")
    if minimum is not None and number < minimum:
        raise InitializerError(f"{owner}: {key}={quote(value)} is negative; pass {key} >= {minimum:g}")
    return number


def _fits(initializer: Initializer, name: str, dtype: str, peak: float, what: str) -> None:
    """Refuse, before anything is written, an initializer whose values could reach peak, beyond dtype's largest value."""
    target = resolve(dtype)
    if not is_float(target):
        return
    largest = min(dtypes.largest(target), dtypes.largest(_work_dtype(target)))
    if not peak <= largest:
        raise InitializerError(f"{initializer!r} cannot initialize {quote(name)}: its {what} reach {peak:.3g}, beyond the "
                               f"largest {target.name} ({largest:.3g}), so it would write inf or NaN; use smaller arguments")


def _fill(initializer: Any, out: np.ndarray, seed: int, name: str, region: Region | None) -> None:
    """Draw a chunked built-in into out (or its block region of the tensor), in the dtype values are drawn in."""
    shape = out.shape if region is None else region.shape
    fill = initializer.chunk_fill(shape, name, out.dtype)
    _rng.fill_chunks(out, seed, name, fill, region, _work_dtype(out.dtype))


def fans(shape: tuple[int, ...], name: str = "") -> tuple[int, int]:
    """(fan_in, fan_out) of a canonical-layout shape (out, in, *kernel)."""
    if len(shape) < 2:
        raise InitializerError(
            f"cannot compute fan-in/fan-out of {quote(name) if name else 'a parameter'} with shape {shape}: it needs at "
            f"least 2 dimensions; select the weights of the layers that have a fan, e.g. "
            f"layer=('linear', 'conv'), kind='weight' or ndim=(2, 3, 4, 5)"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base of the built-ins: fill(out, seed, name) writes the values in place, chunk by chunk.

    fill(out, seed, name, region) writes the block `region` of the tensor into out (a device's shard), bitwise equal
    to that block of the whole tensor's values.
    """

    def fill(self, out: np.ndarray, seed: int, name: str, region: Region | None = None) -> None:
        raise NotImplementedError

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        """Raise InitializerError before anything is written if this initializer cannot fill shape in dtype."""
        for key, value in vars(self).items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
                raise InitializerError(f"{self!r} cannot initialize {quote(name)}: {key}={value} is not finite")

    def __call__(self, shape: tuple, dtype: Any, rng: np.random.Generator | None = None, name: str = "") -> np.ndarray:
        """The custom-initializer signature, so built-ins compose with user code."""
        out = np.empty(shape, dtype)
        self.fill(out, int(rng.integers(2**63)) if rng is not None else 0, name)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Constant(Initializer):
    """Every element equal to value."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = _number("Constant", "value", value, integral=True)

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        super().check(shape, name, dtype)
        target = resolve(dtype)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                cast = np.asarray(self.value).astype(target)
        except OverflowError:
            cast = np.asarray(np.inf)
        if not np.isfinite(cast).all() or (not is_float(target) and cast != self.value):
            raise InitializerError(f"{self!r} cannot initialize {quote(name)}: the value overflows {target.name}")

    def fill(self, out: np.ndarray, seed: int, name: str, region: Region | None = None) -> None:
        out[...] = self.value


class Zeros(Constant):
    """All zeros."""

    def __init__(self) -> None:
        super().__init__(0.0)


class Ones(Constant):
    """All ones."""

    def __init__(self) -> None:
        super().__init__(1.0)


class Normal(Initializer):
    """Normal(mean, std), drawn per chunk (Box-Muller from the chunk's raw bits, see rng.normal)."""

    def __init__(self, mean: float = 0.0, std: float = 0.01) -> None:
        self.mean = _number("Normal", "mean", mean)
        self.std = _number("Normal", "std", std, minimum=0.0)

    def _std(self, shape: tuple, name: str) -> float:
        return self.std

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        super().check(shape, name, dtype)
        if math.prod(shape):
            peak = abs(self.mean) + _rng.reach(_work_dtype(resolve(dtype))) * self._std(shape, name)
            _fits(self, name, dtype, peak, "values (mean + 5.6 std in float32, 8.5 in float64)")

    def chunk_fill(self, shape: tuple[int, ...], name: str, dtype: np.dtype) -> ChunkFill:
        """What one chunk of the tensor of this shape gets (in _work_dtype(dtype)): its own values from its own stream."""
        return chunk_fills.normal(self.mean, self._std(shape, name))

    def fill(self, out: np.ndarray, seed: int, name: str, region: Region | None = None) -> None:
        if out.size:
            _fill(self, out, seed, name, region)


class Uniform(Initializer):
    """Uniform on [low, high), drawn per chunk."""

    def __init__(self, low: float = -0.07, high: float = 0.07) -> None:
        self.low, self.high = _number("Uniform", "low", low), _number("Uniform", "high", high)
        if self.low > self.high:
            raise InitializerError(f"Uniform(low={self.low}, high={self.high}): low is above high; pass low <= high")

    def _bounds(self, shape: tuple, name: str) -> tuple[float, float]:
        return self.low, self.high

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        super().check(shape, name, dtype)
        if math.prod(shape):
            low, high = self._bounds(shape, name)
            _fits(self, name, dtype, max(abs(low), abs(high), high - low), "bounds (or their distance)")

    def chunk_fill(self, shape: tuple[int, ...], name: str, dtype: np.dtype) -> ChunkFill:
        """What one chunk of the tensor of this shape gets (in _work_dtype(dtype)): its own values from its own stream."""
        return chunk_fills.uniform(*self._bounds(shape, name))

    def fill(self, out: np.ndarray, seed: int, name: str, region: Region | None = None) -> None:
        if out.size:
            _fill(self, out, seed, name, region)


class _FanBased:
    """Mixin: fan-in and fan-out need at least 2 dimensions; say so before writing anything."""

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        super().check(shape, name, dtype)
        fans(shape, name)


class XavierUniform(_FanBased, Uniform):
    """Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _number(type(self).__name__, "gain", gain, minimum=0.0)

    def _bounds(self, shape: tuple, name: str) -> tuple[float, float]:
        fan_in, fan_out = fans(shape, name)
        b = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return -b, b


class XavierNormal(_FanBased, Normal):
    """Glorot normal: N(0, gain * sqrt(2 / (fan_in + fan_out)))."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain, self.mean = _number(type(self).__name__, "gain", gain, minimum=0.0), 0.0

    def _std(self, shape: tuple, name: str) -> float:
        fan_in, fan_out = fans(shape, name)
        return self.gain * math.sqrt(2.0 / (fan_in + fan_out))


def _kaiming_std(a: float, mode: str, nonlinearity: str, shape: tuple, name: str) -> float:
    if not isinstance(mode, str) or mode not in ("fan_in", "fan_out"):
        raise InitializerError(f"unknown mode {quote(mode)}; one of 'fan_in', 'fan_out'")
    fan_in, fan_out = fans(shape, name)
    fan = fan_in if mode == "fan_in" else fan_out
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0),
             "leaky_relu": math.sqrt(2.0 / (1 + a * a)), "selu": 0.75}
    if not isinstance(nonlinearity, str) or nonlinearity not in gains:
        raise InitializerError(f"unknown nonlinearity {quote(nonlinearity)}; one of {sorted(gains)}")
    return gains[nonlinearity] / math.sqrt(fan)


class KaimingUniform(_FanBased, Uniform):
    """He uniform, as torch.nn.init.kaiming_uniform_: U(-b, b), b = gain * sqrt(3 / fan)."""

    def __init__(self, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> None:
        self.a, self.mode, self.nonlinearity = _number(type(self).__name__, "a", a), mode, nonlinearity
        _kaiming_std(self.a, mode, nonlinearity, (1, 1), type(self).__name__)

    def _bounds(self, shape: tuple, name: str) -> tuple[float, float]:
        b = math.sqrt(3.0) * _kaiming_std(self.a, self.mode, self.nonlinearity, shape, name)
        return -b, b


class KaimingNormal(_FanBased, Normal):
    """He normal, as torch.nn.init.kaiming_normal_: N(0, gain / sqrt(fan))."""

    def __init__(self, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> None:
        self.a, self.mode, self.nonlinearity, self.mean = _number(type(self).__name__, "a", a), mode, nonlinearity, 0.0
        _kaiming_std(self.a, mode, nonlinearity, (1, 1), type(self).__name__)

    def _std(self, shape: tuple, name: str) -> float:
        return _kaiming_std(self.a, self.mode, self.nonlinearity, shape, name)


class TruncatedNormal(Initializer):
    """Normal(mean, std) redrawn outside [a, b] (default mean -/+ 2 std), per chunk."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, a: float | None = None, b: float | None = None) -> None:
        self.mean = _number("TruncatedNormal", "mean", mean)
        self.std = _number("TruncatedNormal", "std", std, minimum=0.0)
        if not self.std > 0:
            raise InitializerError(f"TruncatedNormal(std={self.std}): std must be above 0 (with std 0 every value is the mean: "
                                   f"use Constant({self.mean}))")
        self.a = self.mean - 2 * self.std if a is None else _number("TruncatedNormal", "a", a)
        self.b = self.mean + 2 * self.std if b is None else _number("TruncatedNormal", "b", b)
        if not self.a < self.b:
            raise InitializerError(f"TruncatedNormal(a={self.a}, b={self.b}): a must be below b")
        scale = self.std * math.sqrt(2)
        mass = 0.5 * (math.erf((self.b - self.mean) / scale) - math.erf((self.a - self.mean) / scale))
        if not mass > 1e-4:
            raise InitializerError(f"TruncatedNormal(mean={self.mean}, std={self.std}, a={self.a}, b={self.b}): [a, b] must hold "
                                   f"a sizeable part of the distribution (it holds {mass:.3g}); put a < b near the mean")

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        super().check(shape, name, dtype)
        spread = _rng.reach(_work_dtype(resolve(dtype))) * self.std
        _fits(self, name, dtype, abs(self.mean) + spread, "draws (mean + 5.6 std in float32, 8.5 in float64)")
        low, high = max(self.a, self.mean - spread), min(self.b, self.mean + spread)
        _fits(self, name, dtype, max(abs(low), abs(high)), "values")

    def fill(self, out: np.ndarray, seed: int, name: str, region: Region | None = None) -> None:
        if out.size:
            _fill(self, out, seed, name, region)

    def chunk_fill(self, shape: tuple[int, ...], name: str, dtype: np.dtype) -> ChunkFill:
        """What one chunk gets: normal draws, those outside [a, b] redrawn from the chunk's own stream (in order)."""
        return chunk_fills.truncated(self.mean, self.std, self.a, self.b)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix over (out, prod(rest)), as torch.nn.init.orthogonal_."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _number("Orthogonal", "gain", gain)

    def check(self, shape: tuple[int, ...], name: str, dtype: str = "float32") -> None:
        super().check(shape, name, dtype)
        if len(shape) < 2:
            raise InitializerError(f"Orthogonal needs at least 2 dimensions; {quote(name)} has shape {shape}: "
                                   f"select the weights of the layers that have a fan, e.g. "
                                   f"layer=('linear', 'conv'), kind='weight' or ndim=(2, 3, 4, 5)")
        _fits(self, name, dtype, abs(self.gain), "values (up to |gain|)")

    def fill(self, out: np.ndarray, seed: int, name: str, region: Region | None = None) -> None:
        """A block needs the whole matrix (QR couples every element): it is made, then the block copied out."""
        if region is not None and not region.whole:
            whole = np.empty(region.shape, out.dtype)
            self.fill(whole, seed, name)
            out[...] = whole[region.slices]
            return
        if not out.size:
            return
        rows, cols = out.shape[0], out.size // out.shape[0]
        flat = _rng.generator(seed, name).standard_normal((rows, cols))
        if rows < cols:
            flat = flat.T
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        out[...] = (self.gain * q).reshape(out.shape)


def fills_in_place(initializer: Initializer) -> bool:
    """True for a built-in fill (not overridden by a subclass): it cannot fail once check() passed, so it writes in place."""
    methods = [getattr(type(initializer), m, None) for m in ("fill", "chunk_fill", "_std", "_bounds")]
    return all(m is None or m.__module__ == __name__ for m in methods)


def in_place(initializer: Any) -> bool:
    """True for a built-in whose fill writes straight into the parameter's memory (or into each shard of it)."""
    return isinstance(initializer, Initializer) and fills_in_place(initializer)


class Filler:
    """fn(out) writes parameter name's value in place; fn(out, region) that block of it; fn.many([(out, region), ...])
    every block one process holds, drawing each random chunk once (an adapter's fill)."""

    def __init__(self, initializer: Initializer, seed: int, name: str) -> None:
        self.initializer, self.seed, self.name = initializer, seed, name

    def __call__(self, out: np.ndarray, region: Region | None = None) -> None:
        fill_value(self.initializer, out, self.seed, self.name, region)

    def many(self, blocks: list[tuple[np.ndarray, Region]]) -> None:
        if not blocks:
            return
        shape, dtype = blocks[0][1].shape, blocks[0][0].dtype
        chunk_fill = getattr(self.initializer, "chunk_fill", None) if in_place(self.initializer) else None
        if chunk_fill is not None and math.prod(shape):
            _rng.fill_blocks(blocks, self.seed, self.name, chunk_fill(shape, self.name, dtype), _work_dtype(dtype))
        elif isinstance(self.initializer, Constant) or not math.prod(shape):
            for out, region in blocks:
                self(out, region)
        else:
            whole = np.empty(shape, dtype)
            fill_value(self.initializer, whole, self.seed, self.name)
            for out, region in blocks:
                out[...] = whole[region.slices]


def filler(initializer: Initializer, seed: int, name: str) -> Filler:
    """The in-place fill of parameter name an adapter runs (see Filler)."""
    return Filler(initializer, seed, name)


def fill_value(initializer: Initializer | CustomInit, out: np.ndarray, seed: int, name: str,
               region: Region | None = None) -> None:
    """Write initializer's value of parameter name into out, or with a region that block of it (a device's shard).

    Built-in fills draw only the chunks that meet the block; others make the whole value and copy the block out.
    """
    if region is None or region.whole:
        if isinstance(initializer, Initializer) and fills_in_place(initializer):
            initializer.fill(out, seed, name)
        else:
            out[...] = make_value(initializer, seed, name, out.shape, out.dtype.name)
    elif isinstance(initializer, Initializer) and fills_in_place(initializer):
        initializer.fill(out, seed, name, region)
    else:
        out[...] = make_value(initializer, seed, name, region.shape, out.dtype.name)[region.slices]


def make_value(initializer: Initializer | CustomInit, seed: int, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The value initializer gives parameter name: validated shape, a safe dtype, all finite."""
    dtype_ = resolve(dtype)
    try:
        if isinstance(initializer, Initializer):
            result = np.empty(shape, dtype_)
            initializer.fill(result, seed, name)
            if fills_in_place(initializer):
                return result
        else:
            result = initializer(tuple(shape), dtype_, _rng.generator(seed, name), name)
    except InitializerError:
        raise
    except Exception as e:
        raise InitializerError(f"initializer {initializer!r} raised on parameter {quote(name)}: "
                               f"{type(e).__name__}: {e}") from e
    source = f"initializer {quote(getattr(initializer, '__name__', initializer))}"
    return fit_one(result, name, shape, dtype_, source, finite=True, error=InitializerError)
