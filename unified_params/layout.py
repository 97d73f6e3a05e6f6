"""Layouts: exact, invertible transforms between a framework's native array and the canonical tensor.

Canonical is PyTorch's layout: dense weight (out, in), conv weight (out, in, *kernel). A `Layout` is
a sequence of steps applied native -> canonical (`Permute`, `Reshape`, `Reverse`); each step has an
exact inverse, works on shapes with None for unknown dimensions, and gives views where numpy can,
so reads and writes go through native memory without a temporary. `IDENTITY` is a layout whose
native form is already canonical; `None` where a layout is expected means "no rule: native layout,
not known to be canonical" and transforms nothing. A step that cannot be a view (a gate reorder, a
concatenation of several native arrays) returns a copy; `writable_view` then gives None and the
copy helpers below go through one scratch array instead.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .parallel import SPLIT_ABOVE, bounds, run, workers

Shape = tuple  # of int | None


class Step(Protocol):
    """One exact transform of a layout; forward is native -> canonical."""

    def forward(self, array: np.ndarray) -> np.ndarray:
        """The array in the next (more canonical) form, a view where possible."""

    def inverse(self, array: np.ndarray) -> np.ndarray:
        """The array in the previous (more native) form, a view where possible."""

    def forward_shape(self, shape: Shape) -> Shape:
        """The shape forward gives an array of this shape (None for unknown dimensions)."""

    def inverse_shape(self, shape: Shape) -> Shape:
        """The shape inverse gives an array of this shape (None for unknown dimensions)."""


def _axes(spec: tuple, ndim: int) -> tuple[int, ...]:
    """A permutation spec with negative axes and at most one Ellipsis (the other axes in order) for ndim axes."""
    explicit = [a % ndim for a in spec if a is not Ellipsis]
    rest = [a for a in range(ndim) if a not in explicit]
    out: list[int] = []
    for a in spec:
        out.extend(rest if a is Ellipsis else [a % ndim])
    if sorted(out) != list(range(ndim)):
        raise ValueError(f"permutation {spec} does not fit {ndim} dimensions")
    return tuple(out)


@dataclass(frozen=True)
class Permute:
    """Canonical axis i is native axis axes[i]; axes may count from the end and hold one `...` for the rest in order."""

    axes: tuple

    def forward(self, array: np.ndarray) -> np.ndarray:
        return array.transpose(_axes(self.axes, array.ndim))

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return array.transpose(np.argsort(_axes(self.axes, array.ndim)))

    def forward_shape(self, shape: Shape) -> Shape:
        return tuple(shape[i] for i in _axes(self.axes, len(shape)))

    def inverse_shape(self, shape: Shape) -> Shape:
        return tuple(shape[i] for i in np.argsort(_axes(self.axes, len(shape))))


@dataclass(frozen=True)
class Reverse:
    """Reverse the order of elements along axes (counted from the end when negative); its own inverse."""

    axes: tuple[int, ...]

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.flip(array, self.axes)

    inverse = forward

    def forward_shape(self, shape: Shape) -> Shape:
        return tuple(shape)

    inverse_shape = forward_shape


@dataclass(frozen=True)
class Merge:
    """Native axes axis, axis+1, ... of `sizes` (one -1 allowed) are one canonical axis: (E, heads, head_dim) <->
    (E, heads * head_dim). Unlike `Reshape` it needs no other dimension, so it fits layers whose input size is unknown."""

    axis: int
    sizes: tuple[int, ...]

    def _split(self, total: int | None) -> tuple[int | None, ...]:
        known = int(np.prod([d for d in self.sizes if d != -1], dtype=np.int64))
        return tuple((None if total is None else total // known) if d == -1 else d for d in self.sizes)

    def forward(self, array: np.ndarray) -> np.ndarray:
        return _reshape(array, self.forward_shape(array.shape))

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return _reshape(array, self.inverse_shape(array.shape))

    def forward_shape(self, shape: Shape) -> Shape:
        a, n = self.axis, len(self.sizes)
        merged = shape[a : a + n]
        total = None if None in merged else int(np.prod(merged, dtype=np.int64))
        return (*shape[:a], total, *shape[a + n :])

    def inverse_shape(self, shape: Shape) -> Shape:
        return (*shape[: self.axis], *self._split(shape[self.axis]), *shape[self.axis + 1 :])


class Unrepresentable(ValueError):
    """A canonical value the native layout cannot hold (a `Repeat` of values that differ within a group)."""


@dataclass(frozen=True)
class Repeat:
    """Each native element along axis is `count` equal canonical ones: MXNet GroupNorm's per-group (G,) gamma as
    torch's per-channel (C,). Reads repeat; a write must be constant within each group (else `Unrepresentable`).
    count None: not known yet (the canonical size is None)."""

    axis: int
    count: int | None

    def forward(self, array: np.ndarray) -> np.ndarray:
        return np.repeat(array, self.count, axis=self.axis)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        a, n = self.axis % array.ndim, array.shape[self.axis]
        groups = array.reshape((*array.shape[:a], n // self.count, self.count, *array.shape[a + 1 :]))
        first = np.take(groups, 0, axis=a + 1)
        if not np.array_equal(groups, np.broadcast_to(np.expand_dims(first, a + 1), groups.shape),
                              equal_nan=array.dtype.kind in "fc"):
            raise Unrepresentable(f"it keeps one value per group of {self.count} (axis {a}) and these differ within a "
                                  f"group: give equal values within each group")
        return first

    def forward_shape(self, shape: Shape) -> Shape:
        size = shape[self.axis]
        out = list(shape)
        out[self.axis] = None if size is None or self.count is None else size * self.count
        return tuple(out)

    def inverse_shape(self, shape: Shape) -> Shape:
        size = shape[self.axis]
        out = list(shape)
        out[self.axis] = None if size is None or self.count is None else size // self.count
        return tuple(out)


def _reshape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """array reshaped, a view when its strides allow (numpy copies otherwise)."""
    try:
        return np.reshape(array, shape, copy=False)
    except ValueError:
        return np.reshape(array, shape)


def _fit(spec: tuple[int, ...], shape: Shape) -> Shape:
    """spec (one -1 allowed) resolved against shape's total size; -1 stays None while a dimension is unknown."""
    if None in shape:
        return tuple(None if d == -1 else d for d in spec)
    total = int(np.prod(shape, dtype=np.int64))
    known = int(np.prod([d for d in spec if d != -1], dtype=np.int64))
    return tuple(total // known if d == -1 else d for d in spec)


@dataclass(frozen=True)
class Reshape:
    """Native-side shape <-> canonical-side shape (each may hold one -1): (kh, kw, in, mult) <-> (kh, kw, in * mult)."""

    native: tuple[int, ...]
    canonical: tuple[int, ...]

    def forward(self, array: np.ndarray) -> np.ndarray:
        return _reshape(array, _fit(self.canonical, array.shape))

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return _reshape(array, _fit(self.native, array.shape))

    def forward_shape(self, shape: Shape) -> Shape:
        return _fit(self.canonical, shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        return _fit(self.native, shape)


@dataclass(frozen=True)
class Blocks:
    """Axis split into len(order) equal blocks; canonical block i is native block order[i] (gate orders). Copies."""

    axis: int
    order: tuple[int, ...]

    def _reorder(self, array: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
        n = len(self.order)
        if array.shape[self.axis] % n:
            raise ValueError(f"axis {self.axis} of {array.shape} does not split into {n} equal blocks")
        parts = np.split(array, n, axis=self.axis)
        return np.concatenate([parts[i] for i in order], axis=self.axis)

    def forward(self, array: np.ndarray) -> np.ndarray:
        return self._reorder(array, self.order)

    def inverse(self, array: np.ndarray) -> np.ndarray:
        return self._reorder(array, tuple(int(i) for i in np.argsort(self.order)))

    def forward_shape(self, shape: Shape) -> Shape:
        return tuple(shape)

    inverse_shape = forward_shape


@dataclass(frozen=True)
class Layout:
    """An exact transform native -> canonical: its steps in order; `name` says it in words for docs and errors."""

    steps: tuple[Step, ...] = ()
    name: str = "canonical"

    def to_canonical(self, native: np.ndarray) -> np.ndarray:
        """The native array in canonical layout (a view where every step allows)."""
        for step in self.steps:
            native = step.forward(native)
        return native

    def from_canonical(self, canonical: np.ndarray) -> np.ndarray:
        """The canonical array in native layout (a view where every step allows)."""
        for step in reversed(self.steps):
            canonical = step.inverse(canonical)
        return canonical

    def canonical_shape(self, native: Shape) -> Shape:
        """A native shape (None for unknown dimensions) in canonical form."""
        for step in self.steps:
            native = step.forward_shape(native)
        return tuple(native)

    def native_shape(self, canonical: Shape) -> Shape:
        """A canonical shape (None for unknown dimensions) in native form."""
        for step in reversed(self.steps):
            canonical = step.inverse_shape(canonical)
        return tuple(canonical)

    def writable_view(self, native: np.ndarray) -> np.ndarray | None:
        """A canonical view that writes through to native memory, or None when a step has to copy."""
        view = self.to_canonical(native)
        return view if np.may_share_memory(view, native) else None


def axis_map(layout: Layout | None, ndim: int) -> list[tuple[int, bool]] | None:
    """(native axis, reversed) for each canonical axis; None when a step reshapes (a block is then no block)."""
    axes = [(i, False) for i in range(ndim)]
    for step in () if layout is None else layout.steps:
        if isinstance(step, Permute):
            axes = [axes[i] for i in _axes(step.axes, ndim)]
        elif isinstance(step, Reverse):
            flip = {a % ndim for a in step.axes}
            axes = [(a, f != (i in flip)) for i, (a, f) in enumerate(axes)]
        else:
            return None
    return axes


IDENTITY = Layout()
"""The native form is canonical (PyTorch, Gluon)."""

DENSE_IN_OUT = Layout((Permute((1, 0)),), "dense kernel (in, out)")
"""A dense kernel stored (in, out), as Keras and Flax do."""

CHANNELS_LAST = Layout((Permute((-1, -2, ...)),), "conv kernel (*kernel, in, out)")
"""A conv kernel stored (*kernel, in, out) (Keras, Flax); a transposed-conv kernel (*kernel, out, in) alike."""


def to_canonical(array: np.ndarray, layout: Layout | None) -> np.ndarray:
    """A view of a natively laid out array in canonical layout."""
    return array if layout is None else layout.to_canonical(array)


def from_canonical(array: np.ndarray, layout: Layout | None) -> np.ndarray:
    """A view of a canonical array in the native layout."""
    return array if layout is None else layout.from_canonical(array)


def shape_to_canonical(shape: Shape, layout: Layout | None) -> Shape:
    """A native shape (None allowed for unknown dimensions) in canonical order."""
    return tuple(shape) if layout is None else layout.canonical_shape(tuple(shape))


def shape_to_native(shape: Shape, layout: Layout | None) -> Shape:
    """A canonical shape (None allowed for unknown dimensions) in native order."""
    return tuple(shape) if layout is None else layout.native_shape(tuple(shape))


PANEL = 16
TILE = (128, 512)


def _outer_axis(array: np.ndarray) -> int:
    """The axis with the largest stride: pieces along it are whole blocks of the array's memory."""
    return max(range(array.ndim), key=lambda a: (abs(array.strides[a]) if array.shape[a] > 1 else -1, -a))


def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src; a large transposed copy is split over the CPUs (along dst's outermost axis in memory). Axes of
    size 1 are dropped first, so a 1x1 convolution kernel is such a 2-D copy too.

    Only transposes are split: they are bound by the CPU (1.05-1.4x on two CPUs here), while a plain copy into fresh
    pages is bound by the kernel's page faults and gained nothing from a second thread (docs/benchmarks.md).
    """
    if dst.ndim > 2 and 1 in dst.shape and src.shape == dst.shape:
        dst, src = dst.squeeze(), src.squeeze()
    if dst.nbytes < SPLIT_ABOVE or not _transposed(dst, src) or workers() == 1:
        _copy(dst, src)
        return
    axis = _outer_axis(dst)

    def part(a: int, b: int) -> Callable[[], None]:
        where = (slice(a, b), slice(None)) if axis == 0 else (slice(None), slice(a, b))
        return lambda: _copy(dst[where], src[where])

    run([part(a, b) for a, b in bounds(dst.shape[axis], workers())])


def _transposed(dst: np.ndarray, src: np.ndarray) -> bool:
    """True for a 2-D copy whose two sides are stored in opposite orders (the blocked path of _copy)."""
    return (dst.ndim == 2 and src.ndim == 2 and dst.size >= PANEL * PANEL and 0 not in src.strides
            and _fast(dst) != _fast(src))


def _fast(array: np.ndarray) -> int:
    """The axis of a 2-D array whose elements are nearer in memory."""
    return 0 if abs(array.strides[0]) < abs(array.strides[1]) else 1


def _copy(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src; a 2-D transposed copy goes in blocks, written a row of the block at a time: tiles of TILE
    (128 x 512: 1.5-1.7x faster than panels here), or panels of 16 columns where the source's rows are a multiple of
    512 bytes apart (tiles then read rows that share cache sets: 2x slower than panels). Either is 2-4x numpy's
    strided copy."""
    if not _transposed(dst, src):
        np.copyto(dst, src, casting="unsafe")
        return
    if not _fast(dst):
        dst, src = dst.T, src.T
    rows, cols = (dst.shape[0], PANEL) if abs(src.strides[1]) % 512 == 0 else TILE
    for i in range(0, dst.shape[0], rows):
        for j in range(0, dst.shape[1], cols):
            dst[i : i + rows, j : j + cols] = src[i : i + rows, j : j + cols]


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | str, align: int = 64) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an align-byte boundary (JAX adopts it without a copy)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + align, np.uint8)
    offset = -raw.ctypes.data % align
    return raw[offset : offset + size].view(dtype).reshape(shape)


def canonical_copy(native: np.ndarray, layout: Layout | None) -> np.ndarray:
    """A C-contiguous copy of a natively laid out array, in canonical layout."""
    view = to_canonical(native, layout)
    out = np.empty(view.shape, view.dtype)
    copy_into(out, view)
    return out


def fill_native(native: np.ndarray, layout: Layout | None, fn: Callable[[np.ndarray], None]) -> None:
    """fn writes native's canonical view in place, or one canonical scratch array that is then copied in."""
    view = native if layout is None else layout.writable_view(native)
    if view is not None:
        fn(view)
        return
    scratch = np.empty(layout.canonical_shape(native.shape), native.dtype)
    fn(scratch)
    copy_into(native, layout.from_canonical(scratch))


def native_copy(value: np.ndarray, layout: Layout | None, dtype: np.dtype | str | None = None) -> np.ndarray:
    """A 64-byte aligned C-contiguous copy of a canonical value in native layout (and dtype, if given)."""
    value = np.asarray(value)
    out = aligned_empty(shape_to_native(value.shape, layout), value.dtype if dtype is None else dtype)
    fill_native(out, layout, lambda view: copy_into(view, value))
    return out
