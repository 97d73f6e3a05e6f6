"""unified_params: one way to manage model parameters across PyTorch, MXNet Gluon, Keras 3 and Flax.

Importing this package imports no framework and not even numpy: names load on first use, and
wrap() loads only the adapter the model needs.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    BackendNotInstalledError,
    CheckpointError,
    DeferredInitializationError,
    DtypeMismatchError,
    InitializerError,
    ParameterNotFoundError,
    SelectionError,
    ShapeMismatchError,
    UnifiedParamsError,
    UnsupportedError,
    UnsupportedModelError,
    WholeTensorWarning,
)

__version__ = "0.1.0"

_LAZY = {
    "wrap": "wrapping", "backends": "registry", "BackendInfo": "registry", "transfer": "transfers", "compare": "comparison",
    "Comparison": "comparison", "match": "transfers", "Match": "matching", "ParamAPI": "api", "ParamView": "param_view", "init": None,
    "partition": "partitioning", "Partition": "partitioning", "Sharding": "sharding",
}

__all__ = [
    *_LAZY, "UnifiedParamsError", "ParameterNotFoundError", "SelectionError", "InitializerError",
    "ShapeMismatchError", "DtypeMismatchError", "CheckpointError", "DeferredInitializationError",
    "UnsupportedModelError", "BackendNotInstalledError", "UnsupportedError", "WholeTensorWarning",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'unified_params' has no attribute {name!r}")
    module = importlib.import_module(f".{_LAZY[name] or name}", __name__)
    value = module if _LAZY[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
