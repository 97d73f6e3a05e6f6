"""PReLU's slope is torch's `weight` on every framework: transfer from torch gives torch's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unified_params as up

X = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)


def _torch(channels: int) -> tuple[torch.nn.Module, np.ndarray]:
    source = torch.nn.Sequential(torch.nn.PReLU(channels))
    with torch.no_grad():
        source[0].weight.copy_(torch.linspace(0.1, 0.7, channels))
        return source, source(torch.from_numpy(X)).numpy()


def test_keras_prelu_with_shared_spatial_axes_is_torchs_per_channel_prelu() -> None:
    keras = pytest.importorskip("keras")
    source, expected = _torch(3)
    target = keras.Sequential([keras.Input((5, 4, 3)), keras.layers.PReLU(shared_axes=[1, 2])])
    assert {n: tuple(v.shape) for n, v in up.wrap(target).collect(layer="prelu").items()} == {"0.weight": (3,)}
    up.transfer(source, target)
    got = keras.ops.convert_to_numpy(target(X.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_keras_prelu_with_one_slope_per_position_stays_native() -> None:
    keras = pytest.importorskip("keras")
    target = keras.Sequential([keras.Input((3, 5, 4)), keras.layers.PReLU()])
    assert {n: tuple(v.shape) for n, v in up.wrap(target).collect(layer="prelu").items()} == {"0.alpha": (3, 5, 4)}


def test_mxnet_prelu_alpha_is_torchs_weight() -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    source, expected = _torch(3)
    target = mx.gluon.nn.HybridSequential()
    target.add(mx.gluon.nn.PReLU(in_channels=3))
    target.initialize()
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(X)).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_linen_prelu_negative_slope_is_torchs_single_weight() -> None:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    source, expected = _torch(1)
    module = nn.Sequential([nn.PReLU()])
    pm = up.wrap(module, module.init(jax.random.PRNGKey(0), X))
    assert {n: tuple(v.shape) for n, v in pm.collect(layer="prelu").items()} == {"0.weight": (1,)}
    up.transfer(up.wrap(source), pm)
    np.testing.assert_allclose(np.asarray(module.apply(pm.variables, X)), expected, rtol=1e-5, atol=1e-5)


def test_nnx_prelu_negative_slope_is_torchs_single_weight() -> None:
    nnx = pytest.importorskip("flax.nnx")
    source, expected = _torch(1)
    model = nnx.Sequential(nnx.PReLU())
    up.transfer(source, model)
    np.testing.assert_allclose(np.asarray(model(X)), expected, rtol=1e-5, atol=1e-5)
