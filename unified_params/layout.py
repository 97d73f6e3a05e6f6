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
