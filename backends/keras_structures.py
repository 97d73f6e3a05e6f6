"""The naming section's eight structures written the natural Keras way (see docs/names.md)."""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from unified_params.conformance.examples import Built


def _built(model: keras.Layer, width: int = 4, dtype: str = "float32") -> Built:
    model(np.zeros((1, width), dtype))
    return Built(model)


class Attributes(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = layers.Dense(8)
        self.fc2 = layers.Dense(2)

    def call(self, x: Any) -> Any:
        return self.fc2(ops.relu(self.fc1(x)))


class ListOfBlocks(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = [layers.Dense(4) for _ in range(3)]

    def call(self, x: Any) -> Any:
        for block in self.blocks:
            x = ops.relu(block(x))
        return x


class DictOfHeads(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = layers.Dense(8)
        self.heads = {"cls": layers.Dense(3), "box": layers.Dense(4)}

    def call(self, x: Any) -> Any:
        h = ops.relu(self.trunk(x))
        return ops.concatenate([self.heads["cls"](h), self.heads["box"](h)], axis=-1)


class EncoderDecoder(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = keras.Sequential([layers.Dense(8), layers.ReLU(), layers.Dense(2)])
        self.decoder = layers.Dense(4)

    def call(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))


class Residual(keras.layers.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = layers.Dense(4)

    def call(self, x: Any) -> Any:
        return x + ops.tanh(self.fc(x))


class ResidualTwice(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.block = Residual()
        self.out = layers.Dense(1)

    def call(self, x: Any) -> Any:
        return self.out(self.block(self.block(x)))


class TiedEmbedding(keras.Model):
    """The output projection is the embedding table transposed (Keras has no layer for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = layers.Embedding(10, 4)
        self.norm = layers.LayerNormalization(epsilon=1e-5)

    def call(self, tokens: Any) -> Any:
        return ops.matmul(self.norm(self.embed(tokens)), ops.transpose(self.embed.embeddings))


def attributes() -> Built:
    return _built(Attributes())


def list_of_blocks() -> Built:
    return _built(ListOfBlocks())


def dict_of_heads() -> Built:
    return _built(DictOfHeads())


def encoder_decoder() -> Built:
    return _built(EncoderDecoder())


def sequential_in_sequential() -> Built:
    return _built(keras.Sequential([keras.Sequential([layers.Dense(8), layers.ReLU()]), layers.Dense(1)]))


def residual_twice() -> Built:
    return _built(ResidualTwice())


def tied_embedding() -> Built:
    return _built(TiedEmbedding(), 5, "int32")


def named_layers() -> Built:
    """The functional idiom: layers named by the user where they are made."""
    inputs = keras.Input((4,))
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    return Built(keras.Model(inputs, layers.Dense(1, name="output")(hidden)))


def run(pm: Any, x: np.ndarray) -> np.ndarray:
    """The native forward of the wrapped model in inference mode, as numpy."""
    return np.asarray(keras.ops.convert_to_numpy(pm.model(x, training=False)))
