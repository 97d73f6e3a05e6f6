"""The conformance layers section's builders on PyTorch: the reference every other backend is compared with."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from unified_params.conformance.examples import Built

from .torch_attention import ATTENTION


def _one(layer: nn.Module) -> Built:
    return Built(nn.Sequential(layer))


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(nn.Conv2d(4, 6, (3, 2), groups=2)),
    "depthwise_conv": lambda: _one(nn.Conv2d(4, 8, (3, 2), groups=4)),
    "conv_transpose": lambda: _one(nn.ConvTranspose2d(4, 6, (3, 2), stride=2)),
    "group_norm": lambda: _one(nn.GroupNorm(2, 4, eps=1e-5)),
    "instance_norm": lambda: _one(nn.InstanceNorm2d(4, affine=True, eps=1e-5)),
    "prelu": lambda: _one(nn.PReLU()),
    **ATTENTION,
}
