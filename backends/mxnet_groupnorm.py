"""MXNet 1.9 GroupNorm keeps gamma/beta per group (G,) and learns its channel count C only from its input.

`install()` (when the rule table is built, i.e. at the first wrap of an MXNet model) makes every GroupNorm remember C
from its inputs (a class-level wrapper, nothing stored on the blocks); the rule shows gamma/beta as torch's
per-channel (C,) once C is known, and as not known yet before (pm.materialize(example_input) runs it).
"""
from __future__ import annotations

import functools
import weakref
from typing import Any

from unified_params.joins import Join, Part
from unified_params.layout import Layout, Repeat
from unified_params.rules import Rule

from .mxnet_import import import_mxnet

_CHANNELS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def install() -> None:
    """Wrap GroupNorm.hybrid_forward once: an imperative call (an NDArray input) records its channel count."""
    cls = import_mxnet().gluon.nn.GroupNorm
    original = cls.hybrid_forward
    if getattr(original, "_unified_params", False):
        return

    @functools.wraps(original)
    def hybrid_forward(self: Any, F: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        shape = getattr(data, "shape", None)
        if isinstance(shape, tuple) and len(shape) > 1 and shape[1]:
            _CHANNELS[self] = int(shape[1])
        return original(self, F, data, *args, **kwargs)

    hybrid_forward._unified_params = True  # type: ignore[attr-defined]
    cls.hybrid_forward = hybrid_forward


def group_norm(block: Any) -> Rule:
    """gamma/beta (G,) as weight/bias (C,): each group's value repeated C/G times (C None until the block has run)."""
    channels = _CHANNELS.get(block)
    groups = int(block._num_groups)
    return _rule(None if channels is None or channels % groups else channels // groups)


@functools.cache
def _rule(count: int | None) -> Rule:
    layout = Layout((Repeat(0, count),), "per group (G,)")
    return Rule("group_norm", (), joins=(Join("weight", (Part("gamma", layout),), kind="weight"),
                                         Join("bias", (Part("beta", layout),), kind="bias")))
