"""The same ResNet in two frameworks: transformers `ResNetModel` (torch, bottleneck blocks) and keras-hub
`ResNetBackbone` (v1 bottleneck, Keras), built from configs without weights. Their parameters have equal canonical
shapes and layer types but different names and order (keras-hub creates a block's layers in the order its functional
graph calls them), so a rename list pairs them; after `up.transfer` each framework's forward gives the other's
features, both ways."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

import unified_params as up

FILTERS, BLOCKS = [64, 8, 16], [1, 2, 2]  # keras-hub requires 64 first
STEM = 8
RENAME = [(r"embedder\.embedder\.convolution\.(.*)", r"conv1_conv.\1"),
          (r"embedder\.embedder\.normalization\.(.*)", r"conv1_bn.\1"),
          (r"encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.(.*)", r"stack\1_block\2_0_conv.\3"),
          (r"encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.(.*)", r"stack\1_block\2_0_bn.\3"),
          *[(rf"encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.{k}\.{part}\.(.*)", rf"stack\1_block\2_{k + 1}_{to}.\3")
            for k in range(3) for part, to in (("convolution", "conv"), ("normalization", "bn"))]]
X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


def _keras_hub() -> Any:
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[STEM], input_conv_kernel_sizes=[7], stackwise_num_filters=FILTERS,
        stackwise_num_blocks=BLOCKS, stackwise_num_strides=[1, 2, 2], block_type="bottleneck_block",
        use_pre_activation=False, image_shape=(None, None, 3))


def _transformers() -> Any:
    from transformers import ResNetConfig, ResNetModel

    config = ResNetConfig(embedding_size=STEM, hidden_sizes=[4 * f for f in FILTERS], depths=BLOCKS,
                          layer_type="bottleneck", downsample_in_first_stage=False)
    return ResNetModel(config).eval()


def _randomize(pm: up.ParamAPI) -> None:
    """Values that make every tensor matter (the frameworks' defaults give BatchNorm identity statistics)."""
    pm.init(up.init.KaimingNormal(), layer="conv", kind="weight", seed=0)
    pm.init(up.init.Uniform(0.5, 1.5), layer="batch_norm", kind=("weight", "running_var"), seed=1)
    pm.init(up.init.Normal(std=0.1), kind=("bias", "running_mean"), seed=2)


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any]:
    return _transformers(), _keras_hub()


def _torch_features(model: Any) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(X)).last_hidden_state.numpy()


def _keras_features(model: Any) -> np.ndarray:
    import keras

    out = keras.ops.convert_to_numpy(model(X.transpose(0, 2, 3, 1), training=False))
    return out.transpose(0, 3, 1, 2)


def test_the_rename_list_pairs_every_tensor_by_shape_and_layer_type(pair: tuple[Any, Any]) -> None:
    hf, hub = pair
    found = up.match(hf, hub, rename=RENAME)
    assert found and len(found.pairs) == len(hub.weights)
    assert all(p.source_shape == p.target_shape and p.source_layer == p.target_layer for p in found.pairs)
    by_order = up.match(hf, hub, by="order")
    assert not by_order and by_order.disagreement.startswith(
        "position 5: 'encoder.stages.0.layers.0.shortcut.convolution.weight' vs 'stack0_block0_1_conv.weight'")


def test_transfer_from_transformers_gives_keras_hub_the_same_features(pair: tuple[Any, Any]) -> None:
    hf, hub = pair
    _randomize(up.wrap(hf))
    up.transfer(hf, hub, rename=RENAME)
    state = hf.state_dict()
    hub_pm = up.wrap(hub)
    for pairing in up.match(hf, hub, rename=RENAME).pairs:
        native = hub_pm[pairing.target].native.numpy()
        expected = state[pairing.source].numpy()
        if expected.ndim == 4:
            expected = expected.transpose(2, 3, 1, 0)
        assert np.array_equal(native, expected), pairing.target
    ours, theirs = _torch_features(hf), _keras_features(hub)
    assert np.abs(ours).max() > 0.1 and np.abs(ours - theirs).max() <= 5e-6 * np.abs(ours).max()


def test_transfer_from_keras_hub_gives_transformers_the_same_features(pair: tuple[Any, Any]) -> None:
    hf, hub = pair
    _randomize(up.wrap(hub))
    back = [(re.escape(p.target), p.source) for p in up.match(hf, hub, rename=RENAME).pairs]
    up.transfer(hub, hf, rename=back)
    ours, theirs = _keras_features(hub), _torch_features(hf)
    assert np.abs(ours).max() > 0.1 and np.abs(ours - theirs).max() <= 5e-6 * np.abs(ours).max()
