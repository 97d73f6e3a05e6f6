"""The conformance layers section's builders on Keras 3 (channels-last input (2, 9, 8, 4))."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from unified_params.conformance.examples import Built

from .keras_attention import ATTENTION

layers = keras.layers


def _one(layer: Any) -> Built:
    return Built(keras.Sequential([keras.Input((9, 8, 4)), layer]))


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": lambda: _one(layers.Conv2D(6, (3, 2), groups=2)),
    "depthwise_conv": lambda: _one(layers.DepthwiseConv2D((3, 2), depth_multiplier=2)),
    "conv_transpose": lambda: _one(layers.Conv2DTranspose(6, (3, 2), strides=2)),
    "group_norm": lambda: _one(layers.GroupNormalization(2, epsilon=1e-5)),
    "instance_norm": "Keras has no instance norm layer (GroupNormalization(groups=-1) computes it as a group_norm)",
    "prelu": lambda: _one(layers.PReLU(shared_axes=[1, 2, 3])),
    **ATTENTION,
}
