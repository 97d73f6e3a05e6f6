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
