"""Import MXNet 1.9.1 on numpy 2: lend numpy the names 2.0 removed only while `import mxnet` runs.

MXNet reads these names once at import (constants in ``mxnet.numpy.utils``, aliases in
``mxnet.numpy.fallback``, the ``__array_function__`` table, default arguments of the estimator
handlers) and keeps its own references afterwards, so numpy can lose them again right away.
"""
from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from unified_params.lazy import LazyModule

_LOCK = threading.Lock()


def _alias(name: str, target: Callable[..., Any]) -> Callable[..., Any]:
    """A distinct function object, so MXNet's dispatch table does not key two names on one function."""

    def removed(*args: Any, **kwargs: Any) -> Any:
        return target(*args, **kwargs)

    removed.__name__ = removed.__qualname__ = name
    removed.__doc__ = f"numpy 1.x `{name}`, lent to MXNet by unified_params (calls {target.__name__})."
    return removed


def _financial(name: str) -> Callable[..., Any]:
    """numpy 1.x financial function `name`, which now lives in numpy-financial."""

    def removed(*args: Any, **kwargs: Any) -> Any:
        try:
            npf = importlib.import_module("numpy_financial")
        except ImportError as err:
            raise NotImplementedError(
                f"np.{name} was removed in NumPy 2.0; pip install numpy-financial to use mx.np.{name}"
            ) from err
        return getattr(npf, name)(*args, **kwargs)

    removed.__name__ = removed.__qualname__ = name
    return removed


def _in1d(ar1: Any, ar2: Any, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
    return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()


def _msort(a: Any) -> np.ndarray:
    return np.sort(a, axis=0)


def _removed_names() -> dict[str, Any]:
    """The numpy 1.x names that MXNet 1.9.1 reads while it imports, with stand-ins."""
    return {
        "PZERO": 0.0,
        "NZERO": -0.0,
        "PINF": float("inf"),
        "NINF": float("-inf"),
        "Inf": float("inf"),
        "NAN": float("nan"),
        "NaN": float("nan"),
        "alltrue": _alias("alltrue", np.all),
        "sometrue": _alias("sometrue", np.any),
        "product": _alias("product", np.prod),
        "round_": _alias("round_", np.round),
        "in1d": _alias("in1d", _in1d),
        "msort": _alias("msort", _msort),
        "trapz": _alias("trapz", np.trapezoid) if hasattr(np, "trapezoid") else None,
        **{name: _financial(name) for name in ("mirr", "npv", "pmt", "ppmt", "pv", "rate")},
    }


@contextmanager
def lend_removed_numpy_names() -> Iterator[list[str]]:
    """Add the removed names that numpy lacks, yield their list, and delete exactly those afterwards."""
    lent = []
    try:
        for name, value in _removed_names().items():
            if value is not None and name not in np.__dict__:
                setattr(np, name, value)
                lent.append(name)
        yield lent
    finally:
        for name in lent:
            np.__dict__.pop(name, None)


def import_mxnet() -> ModuleType:
    """The mxnet module, imported with numpy's removed names lent for the duration of the import."""
    module = sys.modules.get("mxnet")
    if module is not None:
        return module
    with _LOCK, lend_removed_numpy_names():
        return importlib.import_module("mxnet")


class _MXNetModule(LazyModule):
    """The mxnet module, imported on first use through the numpy-2 shim."""

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            module = self.__dict__["_module"] = import_mxnet()
        return module


mx: Any = _MXNetModule("mxnet")


mx: Any = _MXNetModule("mxnet")
"""The mxnet module for the adapter's modules: imported (through the shim above) on first attribute access."""
