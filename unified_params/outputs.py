"""What pm.grads' default loss sums: the model's output, or the first tensor of a mapping or dataclass output."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from . import errors


def loss_target(out: Any, is_tensor: Callable[[Any], bool]) -> Any:
    """out itself (a tensor, tuple or list); for a mapping (transformers ModelOutput, Keras dict outputs) or a
    dataclass, its first tensor value; UnsupportedError naming loss= for anything else."""
    if is_tensor(out) or isinstance(out, (tuple, list)):
        return out
    if isinstance(out, Mapping):
        values = list(out.values())
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        values = [getattr(out, f.name) for f in dataclasses.fields(out)]
    else:
        values = []
    first = next((v for v in values if is_tensor(v)), None)
    if first is None:
        raise errors.UnsupportedError(
            f"pass loss= to pm.grads: the model returns {type(out).__name__}, and the default loss sums a tensor "
            f"output or the first tensor of a mapping or dataclass output, e.g. pm.grads(x, loss=lambda out: ...)")
    return first
