"""The conformance layers section's builders on Keras 3 (channels-last input (2, 9, 8, 4))."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from unified_params.conformance.examples import Built, sequence_input

from .keras_attention import ATTENTION

layers = keras.layers


def loss(out: Any) -> Any:
    """The layers section's loss, the sum of squared outputs, in Keras ops (a TensorFlow tensor has no .sum())."""
    return keras.ops.sum(out * out)


def _one(layer: Any) -> Built:
    return Built(keras.Sequential([keras.Input((9, 8, 4)), layer]))


class Recurrent(keras.Model):
    """A recurrent layer as attribute `layer` (batch-first, zero initial state: every step's output)."""

    def __init__(self, layer: keras.Layer) -> None:
        super().__init__()
        self.layer = layer

    def call(self, x: Any) -> Any:
        return self.layer(x)


def _recurrent(make: Callable[[], keras.Layer]) -> Callable[[], Built]:
    def build() -> Built:
        model = Recurrent(make())
        model(sequence_input())
        return Built(model)
    return build


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(layers.Conv2D(6, (3, 2), groups=2)),
    "depthwise_conv": lambda: _one(layers.DepthwiseConv2D((3, 2), depth_multiplier=2)),
    "conv_transpose": lambda: _one(layers.Conv2DTranspose(6, (3, 2), strides=2)),
    "group_norm": lambda: _one(layers.GroupNormalization(2, epsilon=1e-5)),
    "instance_norm": "Keras has no instance norm layer (GroupNormalization(groups=-1) computes it as a group_norm)",
    "prelu": lambda: _one(layers.PReLU(shared_axes=[1, 2, 3])),
    **ATTENTION,
    "lstm": _recurrent(lambda: layers.LSTM(4, return_sequences=True)),
    "gru": _recurrent(lambda: layers.GRU(4, return_sequences=True)),
    "rnn": _recurrent(lambda: layers.SimpleRNN(4, return_sequences=True)),
    "bidirectional_lstm": _recurrent(lambda: layers.Bidirectional(layers.LSTM(4, return_sequences=True))),
    "stacked_gru": _recurrent(lambda: layers.RNN(layers.StackedRNNCells([layers.GRUCell(4), layers.GRUCell(4)]),
                                                 return_sequences=True)),
}
FOLDED = ("lstm", "rnn", "bidirectional_lstm")
"""Keras keeps one bias per gate here: torch's bias_hh is folded into bias_ih (docs/layouts.md, bias policy)."""
