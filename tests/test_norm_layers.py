"""GroupNorm and InstanceNorm move from torch to the other frameworks with torch's outputs (channels-last there)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unified_params as up

X = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype(np.float32)
NHWC = X.transpose(0, 2, 3, 1)


def _torch(layer: torch.nn.Module) -> tuple[torch.nn.Module, np.ndarray]:
    source = torch.nn.Sequential(layer)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2.0, 4))
        layer.bias.copy_(torch.linspace(-1.0, 1.0, 4))
        return source, source(torch.from_numpy(X)).numpy()


def _group() -> tuple[torch.nn.Module, np.ndarray]:
    return _torch(torch.nn.GroupNorm(2, 4, eps=1e-5))


def _instance() -> tuple[torch.nn.Module, np.ndarray]:
    return _torch(torch.nn.InstanceNorm2d(4, affine=True, eps=1e-5))


def _close(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, rtol=1e-5, atol=1e-5)


def test_keras_group_normalization_is_torchs_group_norm() -> None:
    keras = pytest.importorskip("keras")
    source, expected = _group()
    target = keras.Sequential([keras.Input((5, 3, 4)), keras.layers.GroupNormalization(2, epsilon=1e-5)])
    up.transfer(source, target)
    _close(keras.ops.convert_to_numpy(target(NHWC)), expected)


@pytest.mark.parametrize("make", [_group, _instance], ids=["group_norm", "instance_norm"])
def test_linen_norms_are_torchs(make) -> None:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    source, expected = make()
    layer = nn.GroupNorm(num_groups=2, epsilon=1e-5) if make is _group else nn.InstanceNorm(epsilon=1e-5)
    module = nn.Sequential([layer])
    pm = up.wrap(module, module.init(jax.random.PRNGKey(0), NHWC))
    up.transfer(up.wrap(source), pm)
    _close(module.apply(pm.variables, NHWC), expected)


@pytest.mark.parametrize("make", [_group, _instance], ids=["group_norm", "instance_norm"])
def test_nnx_norms_are_torchs(make) -> None:
    nnx = pytest.importorskip("flax.nnx")
    source, expected = make()
    rngs = nnx.Rngs(0)
    if make is _group:
        layer = nnx.GroupNorm(4, num_groups=2, epsilon=1e-5, rngs=rngs)
    else:
        layer = nnx.InstanceNorm(4, epsilon=1e-5, rngs=rngs)
    model = nnx.Sequential(layer)
    up.transfer(source, model)
    _close(model(NHWC), expected)


def test_mxnet_instance_norm_is_torchs() -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    source, expected = _instance()
    target = mx.gluon.nn.HybridSequential()
    target.add(mx.gluon.nn.InstanceNorm(in_channels=4, epsilon=1e-5))
    target.initialize()
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(X)).asnumpy(), expected, rtol=1e-5, atol=1e-5)
