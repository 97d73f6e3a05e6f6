"""Canonical layout (PyTorch's) and the transforms from the layouts other frameworks store.

Canonical: dense weight (out, in); conv weight (out, in, *kernel). Native layouts handled here:
``"dense_in_out"`` (Keras/Flax dense kernel (in, out)) and ``"channels_last"`` (Keras/Flax conv
kernel (*kernel, in, out)). ``""`` means the native layout is already canonical.
"""
from __future__ import annotations

import numpy as np


def _perm_to_canonical(layout: str, ndim: int) -> tuple[int, ...] | None:
    if not layout or ndim < 2:
        return None
    if layout == "dense_in_out":
        return (1, 0) if ndim == 2 else None
    if layout == "channels_last":
        return (ndim - 1, ndim - 2, *range(ndim - 2))
    raise ValueError(f"unknown layout {layout!r}")


def to_canonical(array: np.ndarray, layout: str) -> np.ndarray:
    """A view of a natively laid out array in canonical layout."""
    perm = _perm_to_canonical(layout, array.ndim)
    return array if perm is None else array.transpose(perm)


def from_canonical(array: np.ndarray, layout: str) -> np.ndarray:
    """A view of a canonical array in the native layout."""
    perm = _perm_to_canonical(layout, array.ndim)
    return array if perm is None else array.transpose(np.argsort(perm))


def shape_to_canonical(shape: tuple, layout: str) -> tuple:
    """A native shape (None allowed for unknown dimensions) in canonical order."""
    perm = _perm_to_canonical(layout, len(shape))
    return tuple(shape) if perm is None else tuple(shape[i] for i in perm)


PANEL = 16


def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src; a 2-D transposed copy goes in panels of 16 columns (4x faster than numpy's strided copy)."""
    if dst.ndim != 2 or dst.flags.c_contiguous == src.flags.c_contiguous or dst.size < PANEL * PANEL:
        np.copyto(dst, src, casting="unsafe")
        return
    for i in range(0, dst.shape[1], PANEL):
        dst[:, i : i + PANEL] = src[:, i : i + PANEL]


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | str, align: int = 64) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an align-byte boundary (JAX adopts those without a copy)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + align, np.uint8)
    offset = -raw.ctypes.data % align
    return raw[offset : offset + size].view(dtype).reshape(shape)


def canonical_copy(native: np.ndarray, layout: str) -> np.ndarray:
    """A C-contiguous copy of a natively laid out array, in canonical layout."""
    view = to_canonical(native, layout)
    out = np.empty(view.shape, view.dtype)
    copy_into(out, view)
    return out


def native_copy(value: np.ndarray, layout: str, dtype: np.dtype | str | None = None) -> np.ndarray:
    """A 64-byte aligned C-contiguous copy of a canonical value in native layout (and dtype, if given)."""
    value = np.asarray(value)
    target = from_canonical(value, layout)
    out = aligned_empty(target.shape, value.dtype if dtype is None else dtype)
    copy_into(to_canonical(out, layout), value)
    return out
