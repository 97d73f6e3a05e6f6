"""wrap(): the one entry point from a native model to its ParamAPI view."""
from __future__ import annotations

from typing import Any

from .api import ParamAPI
from .model_state import ModelState
from .registry import find


def wrap(model: Any, variables: Any = None, backend: str | None = None) -> ParamAPI:
    """The ParamAPI view of a native model (for flax.linen also its variables; None means deferred)."""
    if isinstance(model, ParamAPI):
        return model
    cls = find(model, backend)
    return ParamAPI(ModelState(cls(model, variables)))
