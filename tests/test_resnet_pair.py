"""The ResNet pair (issue 17 item 4): a transformers ResNet-18 (torch, tiny input, no weights) and MXNet's
gluon.model_zoo.vision.resnet18_v1. The architectures are the same; only the order in which a downsampling block
registers its two branches differs (transformers: shortcut, then the two convolutions; Gluon: body, then
downsample), so pairing by order stops at the first such block and a rename list pairs every tensor."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import unified_params as up

PARTS = {"layer.0.convolution": "body.0", "layer.0.normalization": "body.1", "layer.1.convolution": "body.3",
         "layer.1.normalization": "body.4", "shortcut.convolution": "downsample.0",
         "shortcut.normalization": "downsample.1"}
RENAME = [(r"resnet\.embedder\.embedder\.convolution\.(.*)", r"features.0.\1"),
          (r"resnet\.embedder\.embedder\.normalization\.(.*)", r"features.1.\1"),
          *[(rf"resnet\.encoder\.stages\.{s}\.layers\.(\d+)\.{part}\.(.*)", rf"features.{4 + s}.\1.{to}.\2")
            for s in range(4) for part, to in PARTS.items() if s or not part.startswith("shortcut")],
          (r"classifier\.1\.(.*)", r"output.\1")]
X = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any, Any]:
    from transformers import ResNetConfig, ResNetForImageClassification

    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    from mxnet.gluon.model_zoo import vision

    config = ResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                          layer_type="basic", num_labels=10)
    hf = ResNetForImageClassification(config).eval()
    gluon = vision.resnet18_v1(classes=10)
    gluon.initialize()
    up.wrap(gluon).materialize(X)
    pm = up.wrap(hf)
    pm.init(up.init.KaimingNormal(), layer="conv", kind="weight", seed=0)
    pm.init(up.init.Normal(std=0.01), layer="linear", kind="weight", seed=0)
    pm.init(up.init.Uniform(0.5, 1.5), layer="batch_norm", kind=("weight", "running_var"), seed=1)
    pm.init(up.init.Normal(std=0.1), kind=("bias", "running_mean"), seed=2)
    return mx, hf, gluon


def test_by_order_pairs_up_to_the_first_downsampling_block(pair: tuple[Any, Any, Any]) -> None:
    _, hf, gluon = pair
    found = up.match(hf, gluon, by="order")
    assert len(found.pairs) == 25 and found.pairs[-1].target == "features.4.1.body.4.running_var"
    assert found.disagreement == ("position 25: 'resnet.encoder.stages.1.layers.0.shortcut.convolution.weight' vs "
                                  "'features.5.0.body.0.weight': shape (128, 64, 1, 1) vs (128, 64, 3, 3)")
    assert [type(m).__name__ for m in hf.resnet.encoder.stages[1].layers[0].children()] == ["ResNetShortCut",
                                                                                          "Sequential", "ReLU"]
    assert list(gluon.features[5][0]._children) == ["body", "downsample"]
    with pytest.raises(up.ShapeMismatchError, match="position 25"):
        up.transfer(hf, gluon, by="order")


def test_renamed_transfer_gives_the_same_outputs(pair: tuple[Any, Any, Any]) -> None:
    mx, hf, gluon = pair
    found = up.match(hf, gluon, rename=RENAME)
    assert found and len(found.pairs) == len(list(gluon.collect_params().values())) == 102
    assert all(p.source_shape == p.target_shape and p.source_layer == p.target_layer for p in found.pairs)
    up.transfer(hf, gluon, rename=RENAME)
    state = hf.state_dict()
    params = {p.name: p for p in gluon.collect_params().values()}
    gluon_pm = up.wrap(gluon)
    for pairing in found.pairs:
        native = params[gluon_pm[pairing.target].native_name].data().asnumpy()
        assert np.array_equal(native, state[pairing.source].numpy()), pairing.target
    with torch.no_grad():
        ours = hf(torch.from_numpy(X)).logits.numpy()
    theirs = gluon(mx.nd.array(X)).asnumpy()
    assert np.abs(ours).max() > 1 and np.abs(ours - theirs).max() <= 1e-4
