"""The conformance layers section's builders on MXNet Gluon (channels-first, like torch)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified_params.conformance.examples import Built

from .mxnet_import import import_mxnet

nn = import_mxnet().gluon.nn


def _one(layer: Any) -> Built:
    net = nn.HybridSequential()
    net.add(layer)
    net.initialize()
    return Built(net)


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(nn.Conv2D(6, (3, 2), groups=2, in_channels=4)),
    "depthwise_conv": lambda: _one(nn.Conv2D(8, (3, 2), groups=4, in_channels=4)),
    "conv_transpose": lambda: _one(nn.Conv2DTranspose(6, (3, 2), strides=2, in_channels=4)),
    "group_norm": "MXNet 1.9 GroupNorm keeps gamma/beta per group (num_groups,), torch per channel (C,)",
    "instance_norm": lambda: _one(nn.InstanceNorm(in_channels=4, epsilon=1e-5)),
    "prelu": lambda: _one(nn.PReLU()),
}
