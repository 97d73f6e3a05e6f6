"""The conformance layers section's builders on Flax linen (channels-last input (2, 9, 8, 4))."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import linen as nn

from unified_params.conformance.examples import Built, layer_input, sequence_input

from .flax_attention import ATTENTION


def _one(layer: Any) -> Built:
    model = nn.Sequential([layer])
    return Built(model, model.init(jax.random.PRNGKey(0), layer_input().transpose(0, 2, 3, 1)))


class Recurrent(nn.Module):
    """A recurrent layer as attribute `layer` (batch-first, zero initial carry: every step's output)."""

    layer: nn.Module

    def __call__(self, x: Any) -> Any:
        return self.layer(x)


def _recurrent(make: Callable[[], nn.Module]) -> Callable[[], Built]:
    def build() -> Built:
        model = Recurrent(make())
        return Built(model, model.init(jax.random.PRNGKey(0), sequence_input()))
    return build


STACKED = "Flax has no multi-layer recurrent module: a stack of nn.RNN layers is one layer each (0.weight_ih_l0, ...)"

LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(nn.Conv(6, (3, 2), feature_group_count=2, padding="VALID")),
    "depthwise_conv": lambda: _one(nn.Conv(8, (3, 2), feature_group_count=4, padding="VALID")),
    "conv_transpose": lambda: _one(nn.ConvTranspose(6, (3, 2), strides=(2, 2), padding="VALID")),
    "group_norm": lambda: _one(nn.GroupNorm(num_groups=2, epsilon=1e-5)),
    "instance_norm": lambda: _one(nn.InstanceNorm(epsilon=1e-5)),
    "prelu": lambda: _one(nn.PReLU()),
    **ATTENTION,
    "lstm": _recurrent(lambda: nn.RNN(nn.LSTMCell(4))),
    "gru": _recurrent(lambda: nn.RNN(nn.GRUCell(4))),
    "rnn": _recurrent(lambda: nn.RNN(nn.SimpleCell(4))),
    "bidirectional_lstm": _recurrent(lambda: nn.Bidirectional(nn.RNN(nn.LSTMCell(4)), nn.RNN(nn.LSTMCell(4)))),
    "stacked_gru": STACKED,
}
FOLDED = ("lstm", "gru", "rnn", "bidirectional_lstm")
"""Flax keeps biases on one side only: torch's other-side biases are folded (docs/layouts.md, bias policy)."""
