"""up.compare on one's own models: a torch CNN and its idiomatic Keras and NNX ports (other names, channels
last) agree after transfer; a deliberately wrong port is caught and the first layer that disagrees is named."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

import unified_params as up

RENAME = [(r"features\.0\.(.*)", r"conv.\1"), (r"features\.1\.(.*)", r"bn.\1"), (r"classifier\.(.*)", r"head.\1")]


class TorchCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.classifier = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class KerasCNN(keras.Model):
    def __init__(self, epsilon: float = 1e-5, use_bias: bool = True, head: type = keras.layers.Dense) -> None:
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, use_bias=use_bias)
        self.bn = keras.layers.BatchNormalization(epsilon=epsilon)
        self.head = head(4)

    def call(self, x: object, training: bool = False) -> object:
        h = keras.ops.relu(self.bn(self.conv(x), training=training))
        return self.head(keras.ops.mean(h, axis=(1, 2)))


class NNXCNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 4, (3, 3), padding="VALID", rngs=rngs)
        self.bn = nnx.BatchNorm(4, epsilon=1e-5, rngs=rngs)
        self.head = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x: object) -> object:
        return self.head(nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2)))


def images() -> np.ndarray:
    """Canonical layout (channels first); compare gives channels-last frameworks their own layout."""
    return np.random.default_rng(0).uniform(-1, 1, size=(2, 3, 8, 8)).astype(np.float32)


def torch_cnn() -> up.ParamAPI:
    torch.manual_seed(0)
    pm = up.wrap(TorchCNN())
    pm.init(up.init.Uniform(0.5, 1.5), kind="running_var", seed=1)
    return pm


def keras_cnn(**kwargs: object) -> keras.Model:
    model = KerasCNN(**kwargs)
    model(np.zeros((1, 8, 8, 3), np.float32))
    return model


@pytest.mark.parametrize("port", ["keras", "nnx"])
def test_idiomatic_ports_compare_equal(port: str) -> None:
    other = keras_cnn() if port == "keras" else NNXCNN(nnx.Rngs(0))
    result = up.compare(torch_cnn(), other, inputs=images(), rename=RENAME, per_layer=True, rtol=1e-4, atol=1e-5)
    assert result, str(result)
    assert result.first_mismatch is None
    assert set(result.layers) == {"features.0", "features.1", "classifier"}
    native = other(np.moveaxis(images(), 1, -1))
    native = native if port == "nnx" else keras.ops.convert_to_numpy(native)
    assert np.asarray(native).shape == (2, 4)
    assert json.loads(result.to_json())["first_mismatch"] is None


@pytest.mark.parametrize(("wrong", "layer"), [({"epsilon": 0.5}, "features.1"), ({"use_bias": False}, "features.0")])
def test_a_wrong_port_is_caught_and_the_layer_named(wrong: dict, layer: str) -> None:
    result = up.compare(torch_cnn(), keras_cnn(**wrong), inputs=images(), rename=RENAME, per_layer=True)
    assert not result
    assert result.first_mismatch == layer, str(result)


class TransposedDense(keras.layers.Dense):
    """A port that multiplies by the kernel the wrong way round (a square layer, so the shapes still fit)."""

    def call(self, x: object) -> object:
        return keras.ops.matmul(x, keras.ops.transpose(self.kernel)) + self.bias


def test_a_transposed_kernel_is_caught_at_its_layer() -> None:
    result = up.compare(torch_cnn(), keras_cnn(head=TransposedDense), inputs=images(), rename=RENAME, per_layer=True)
    assert not result and result.outputs > 1e-3
    assert result.first_mismatch == "classifier", str(result)
