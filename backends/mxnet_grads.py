"""Gluon gradients for the MXNet adapter: the gradient Gluon's own backward wrote, and a pass of our own that leaves
Gluon's buffers and fresh-gradient flags as they were."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from unified_params.outputs import loss_target

from . import mxnet_blocks as blocks
from .mxnet_deferred import outputs
from .mxnet_import import mx


def compute(model: Any, args: Callable[[], list[Any]],
            loss: Callable[[Any], Any] | None) -> dict[int, tuple[Any, np.ndarray]]:
    """autograd.record (predict mode, like forward) + backward into zeroed buffers; Gluon's own gradients put back.

    With grad_req="add" the buffers are accumulators: they are saved, zeroed for the pass and restored after it.
    Returns {id(param): (param, gradient)}.
    """
    params = [p for p in blocks.unique_params(model) if p.grad_req != "null" and p._grad is not None]
    saved = [(p, _grad_state(p)) for p in params]
    try:
        for p in params:
            for g in p.list_grad():
                g[:] = 0
            for d in p.list_data():
                d._fresh_grad = False
        with mx.autograd.record(train_mode=False):
            out = model(*args())
            value = loss(out) if loss is not None else sum(
                o.sum() for o in outputs(loss_target(out, lambda v: isinstance(v, mx.nd.NDArray))))
        value.backward()
        found = {id(p): (p, native_grad(p)) for p in params}
    finally:
        for p, state in saved:
            _restore_grad_state(p, state)
    return {key: (p, g) for key, (p, g) in found.items() if g is not None}


def native_grad(param: Any) -> np.ndarray | None:
    """Gluon's gradient once a backward pass wrote one; Gluon's buffers start as zeros.

    Backward marks the data `_fresh_grad` until a Trainer step clears it; a buffer that is not
    all zeros was written too (e.g. before that step), while zero_grad() makes it None again.
    """
    if param.grad_req == "null" or param._grad is None:
        return None
    grads = [g.asnumpy() for g in param.list_grad()]
    if not any(d._fresh_grad for d in param.list_data()) and not any(g.any() for g in grads):
        return None
    return grads[0] if len(grads) == 1 else np.sum(grads, axis=0)


def _grad_state(param: Any) -> tuple[list[Any], list[np.ndarray], list[bool]]:
    """Gluon's gradient buffers of param, a copy of their values and the data's fresh-gradient flags."""
    buffers = list(param.list_grad())
    return buffers, [g.asnumpy() for g in buffers], [bool(d._fresh_grad) for d in param.list_data()]


def _restore_grad_state(param: Any, state: Any) -> None:
    buffers, values, fresh = state
    for g, v in zip(buffers, values):
        g[:] = v
    for d, f in zip(param.list_data(), fresh):
        d._fresh_grad = f
