"""Grouped, depthwise and transposed convolutions move from torch to the other frameworks with torch's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unified_params as up


def _nchw(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, 4, 9, 8)).astype(np.float32)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_keras_depthwise_conv2d_is_torchs_grouped_conv(multiplier: int) -> None:
    keras = pytest.importorskip("keras")
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Conv2d(4, 4 * multiplier, (3, 2), groups=4))
    layer = keras.layers.DepthwiseConv2D((3, 2), depth_multiplier=multiplier)
    target = keras.Sequential([keras.Input((9, 8, 4)), layer])
    shapes = {n: tuple(v.shape) for n, v in up.wrap(target).collect().items()}
    assert shapes == {n: tuple(p.shape) for n, p in source.named_parameters()}
    up.transfer(source, target)
    x = _nchw()
    expected = source(torch.from_numpy(x)).detach().numpy()
    got = keras.ops.convert_to_numpy(target(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert up.wrap(target).collect(layer="conv", kind="weight")
