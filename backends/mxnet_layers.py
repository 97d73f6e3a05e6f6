"""The conformance layers section's builders on MXNet Gluon (channels-first, like torch)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified_params.conformance.examples import Built, layer_input

from . import mxnet_groupnorm
from .mxnet_attention import ATTENTION
from .mxnet_import import import_mxnet

mx = import_mxnet()
nn, nd, rnn = mx.gluon.nn, mx.nd, mx.gluon.rnn


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


class Recurrent(mx.gluon.HybridBlock):
    """A recurrent layer as attribute `layer`, batch-first (layout NTC), zero initial state: every step's output."""

    def __init__(self, make: type, **kwargs: Any) -> None:
        super().__init__()
        with self.name_scope():
            self.layer = make(4, layout="NTC", input_size=3, **kwargs)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        return self.layer(x)


def _recurrent(make: type, **kwargs: Any) -> Callable[[], Built]:
    def build() -> Built:
        net = Recurrent(make, **kwargs)
        net.initialize()
        return Built(net)
    return build


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(nn.Conv2D(6, (3, 2), groups=2, in_channels=4)),
    "depthwise_conv": lambda: _one(nn.Conv2D(8, (3, 2), groups=4, in_channels=4)),
    "conv_transpose": lambda: _one(nn.Conv2DTranspose(6, (3, 2), strides=2, in_channels=4)),
    "group_norm": lambda: _ran(_one(nn.GroupNorm(2, epsilon=1e-5))),
    "instance_norm": lambda: _one(nn.InstanceNorm(in_channels=4, epsilon=1e-5, scale=True)),
    "prelu": lambda: _one(nn.PReLU()),
    **ATTENTION,
    "lstm": _recurrent(rnn.LSTM),
    "gru": _recurrent(rnn.GRU),
    "rnn": _recurrent(rnn.RNN, activation="tanh"),
    "bidirectional_lstm": _recurrent(rnn.LSTM, bidirectional=True),
    "stacked_gru": _recurrent(rnn.GRU, num_layers=2),
}
UNCHECKED_GRADS = {"group_norm": "MXNet keeps one gamma/beta per group: its gradient is the group's sum, torch's is "
                                 "per channel"}
"""Layer types whose gradients are not torch's per element (the outputs, values and checkpoints still are)."""
