"""The conformance layers section's builders on MXNet Gluon (channels-first, like torch)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified_params.conformance.examples import Built, layer_input

from . import mxnet_groupnorm
from .mxnet_attention import ATTENTION
from .mxnet_import import import_mxnet

nn, nd = import_mxnet().gluon.nn, import_mxnet().nd


def _one(layer: Any) -> Built:
    net = nn.HybridSequential()
    net.add(layer)
    net.initialize()
    return Built(net)


def _ran(built: Built) -> Built:
    """GroupNorm learns its channel count from its input (gamma/beta are per group): run it once, recorded."""
    mxnet_groupnorm.install()
    built.model(nd.array(layer_input()))
    return built


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(nn.Conv2D(6, (3, 2), groups=2, in_channels=4)),
    "depthwise_conv": lambda: _one(nn.Conv2D(8, (3, 2), groups=4, in_channels=4)),
    "conv_transpose": lambda: _one(nn.Conv2DTranspose(6, (3, 2), strides=2, in_channels=4)),
    "group_norm": lambda: _ran(_one(nn.GroupNorm(2, epsilon=1e-5))),
    "instance_norm": lambda: _one(nn.InstanceNorm(in_channels=4, epsilon=1e-5)),
    "prelu": lambda: _one(nn.PReLU()),
    **ATTENTION,
}
