"""Example inputs for materialize, forward and grads: one rule for their structure, dtype and description.

An input is an array (numpy or a framework's tensor) or a tuple, list or dict of inputs; a list or
tuple that holds no array (plain numbers) is one array. Every array is converted by the adapter;
floating arrays take the model's floating parameter dtype (see docs/deferred.md).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


def is_array(x: Any) -> bool:
    """True for numpy arrays and framework tensors (anything with a shape and a dtype)."""
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type)


def _is_structure(x: Any) -> bool:
    if isinstance(x, Mapping):
        return True
    return isinstance(x, (tuple, list)) and any(is_array(v) or _is_structure(v) for v in x)


def map_arrays(x: Any, convert: Callable[[Any], Any]) -> Any:
    """x with convert applied to every array leaf, tuples, lists and dicts kept as they are."""
    if isinstance(x, Mapping):
        return type(x)({k: map_arrays(v, convert) for k, v in x.items()})  # type: ignore[call-arg]
    if _is_structure(x):
        items = [map_arrays(v, convert) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    return convert(x)


def leaves(x: Any) -> list[Any]:
    """The array leaves of an input, in order."""
    out: list[Any] = []
    map_arrays(x, out.append)
    return out


def describe(inputs: Sequence[Any]) -> str:
    """The inputs' shapes for messages: `(2, 20)`, `((2, 4), (2, 3))` for a tuple input."""
    def shape(a: Any) -> tuple:
        try:
            return tuple(np.shape(a))
        except (ValueError, TypeError):
            return ("?",)

    shapes = [map_arrays(x, shape) for x in inputs]
    return ", ".join(map(str, shapes)) or "no inputs"


def float_dtype(dtypes: Sequence[Any]) -> np.dtype | None:
    """The dtype floating inputs take: the first floating parameter dtype of the model, else None."""
    for d in dtypes:
        try:
            dt = np.dtype(d)
        except TypeError:
            continue
        if dt.kind == "f" or dt.name == "bfloat16":
            return dt
    return None


def empty_batch(inputs: Sequence[Any]) -> bool:
    """True when some array input has a batch (first) dimension of 0."""
    return any(len(np.shape(a)) > 0 and np.shape(a)[0] == 0 for x in inputs for a in leaves(x))
