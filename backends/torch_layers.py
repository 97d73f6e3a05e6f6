"""The conformance layers section's builders on PyTorch: the reference every other backend is compared with."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from unified_params.conformance.examples import Built

from .torch_attention import ATTENTION


def _one(layer: nn.Module) -> Built:
    return Built(nn.Sequential(layer))


class Recurrent(nn.Module):
    """A recurrent layer as attribute `layer`, batch-first, zero initial state: every step's output."""

    def __init__(self, layer: nn.RNNBase) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)[0]


def _recurrent(make: type, **kwargs: object) -> Callable[[], Built]:
    return lambda: Built(Recurrent(make(3, 4, batch_first=True, **kwargs)))


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(nn.Conv2d(4, 6, (3, 2), groups=2)),
    "depthwise_conv": lambda: _one(nn.Conv2d(4, 8, (3, 2), groups=4)),
    "conv_transpose": lambda: _one(nn.ConvTranspose2d(4, 6, (3, 2), stride=2)),
    "group_norm": lambda: _one(nn.GroupNorm(2, 4, eps=1e-5)),
    "instance_norm": lambda: _one(nn.InstanceNorm2d(4, affine=True, eps=1e-5)),
    "prelu": lambda: _one(nn.PReLU()),
    **ATTENTION,
    "lstm": _recurrent(nn.LSTM),
    "gru": _recurrent(nn.GRU),
    "rnn": _recurrent(nn.RNN),
    "bidirectional_lstm": _recurrent(nn.LSTM, bidirectional=True),
    "stacked_gru": _recurrent(nn.GRU, num_layers=2),
}


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """torch's own autograd: gradients of the sum of squared outputs, by (canonical) name."""
    model = pm.model
    params = dict(model.named_parameters())
    out = model(torch.from_numpy(x))
    grads = torch.autograd.grad((out * out).sum(), list(params.values()))
    return {n: g.numpy() for n, g in zip(params, grads)}
