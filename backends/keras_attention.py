"""Multi-head attention on Keras 3: the conformance layers rows and the Transformer encoder block."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import layers

from unified_params.conformance.examples import EMBED, HEADS, HIDDEN, KDIM, Built


class Attention(keras.Model):
    """MultiHeadAttention as attribute `layer`: self-attention, or keys and values from the first kdim / vdim
    features of the input; `attend` (batch, query, key) True where a query may attend."""

    def __init__(self, kdim: int | None = None, bias: bool = True, vdim: int | None = None, **config: Any) -> None:
        super().__init__()
        self.kdim, self.vdim = kdim, vdim or kdim
        self.layer = layers.MultiHeadAttention(HEADS, config.pop("key_dim", EMBED // HEADS), use_bias=bias, **config)

    def call(self, x: Any, attend: Any = None) -> Any:
        k, v = (x if d is None else x[..., :d] for d in (self.kdim, self.vdim))
        return self.layer(x, v, k, attention_mask=attend)


class EncoderBlock(keras.Model):
    """A post-norm Transformer encoder block: attention, LayerNormalization, a ReLU MLP, residuals."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = layers.MultiHeadAttention(HEADS, EMBED // HEADS)
        self.norm1 = layers.LayerNormalization(epsilon=1e-5)
        self.mlp = keras.Sequential([layers.Dense(HIDDEN), layers.ReLU(), layers.Dense(EMBED)])
        self.norm2 = layers.LayerNormalization(epsilon=1e-5)

    def call(self, x: Any) -> Any:
        x = self.norm1(x + self.attn(x, x))
        return self.norm2(x + self.mlp(x))


def _built(model: keras.Model) -> Built:
    model(np.zeros((1, 5, EMBED), "float32"))
    return Built(model)


ATTENTION: dict[str, Callable[[], Built] | str] = {
    "attention": lambda: _built(Attention()),
    "attention_no_bias": lambda: _built(Attention(bias=False)),
    "attention_kdim": lambda: _built(Attention(KDIM)),
}


def encoder_block() -> Built:
    return _built(EncoderBlock())
