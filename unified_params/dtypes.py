"""numpy dtypes by name, including bfloat16 (from ml_dtypes, which JAX, TensorFlow and safetensors use)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def resolve(name: str) -> np.dtype:
    """The numpy dtype called name; bfloat16 and the float8 types come from ml_dtypes."""
    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))


def is_float(dtype: np.dtype) -> bool:
    """True for real and complex floats, including ml_dtypes' bfloat16 and float8 types (numpy kind 'V')."""
    return dtype.kind in "fc" or (dtype.kind == "V" and dtype.name.startswith(("bfloat", "float")))


def largest(dtype: np.dtype) -> float:
    """The largest finite value of a float dtype, including ml_dtypes' (which numpy's finfo does not know)."""
    if dtype.kind == "V":
        import ml_dtypes

        return float(ml_dtypes.finfo(dtype).max)
    return float(np.finfo(dtype).max)


def can_cast(src: np.dtype, dst: np.dtype) -> bool:
    """numpy's same_kind rule, with every float-to-float cast allowed (numpy refuses bfloat16 -> float16)."""
    if np.can_cast(src, dst, casting="same_kind"):
        return True
    return is_float(src) and is_float(dst) and "c" not in (src.kind, dst.kind)


def overflowed(src: np.ndarray, dst: np.ndarray) -> int:
    """How many values the cast src -> dst made NaN or inf although they were finite in src."""
    if not is_float(dst.dtype):
        return 0
    made = ~np.isfinite(dst)
    if not made.any():
        return 0
    if is_float(src.dtype):
        made &= np.isfinite(src)
    return int(made.sum())
