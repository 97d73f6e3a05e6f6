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


class _Separable(torch.nn.Module):
    """A separable conv as a torch user writes it: a depthwise conv, then a 1x1 pointwise conv."""

    def __init__(self, channels: int, multiplier: int, out: int) -> None:
        super().__init__()
        self.depthwise = torch.nn.Conv2d(channels, channels * multiplier, (3, 2), groups=channels, bias=False)
        self.pointwise = torch.nn.Conv2d(channels * multiplier, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def test_keras_separable_conv2d_is_torchs_depthwise_pointwise_pair() -> None:
    keras = pytest.importorskip("keras")
    torch.manual_seed(0)
    source = torch.nn.Sequential(_Separable(4, 2, 5))
    layer = keras.layers.SeparableConv2D(5, (3, 2), depth_multiplier=2)
    target = keras.Sequential([keras.Input((9, 8, 4)), layer])
    shapes = {n: tuple(v.shape) for n, v in up.wrap(target).collect().items()}
    assert shapes == {n: tuple(p.shape) for n, p in source.named_parameters()}
    up.transfer(source, target)
    x = _nchw()
    expected = source(torch.from_numpy(x)).detach().numpy()
    got = keras.ops.convert_to_numpy(target(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _grouped_torch() -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Conv2d(4, 6, (3, 2), groups=2))
    with torch.no_grad():
        return source, source(torch.from_numpy(_nchw())).numpy()


def test_keras_grouped_conv_is_torchs() -> None:
    keras = pytest.importorskip("keras")
    source, expected = _grouped_torch()
    target = keras.Sequential([keras.Input((9, 8, 4)), keras.layers.Conv2D(6, (3, 2), groups=2)])
    up.transfer(source, target)
    got = keras.ops.convert_to_numpy(target(_nchw().transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_mxnet_grouped_conv_is_torchs() -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    source, expected = _grouped_torch()
    target = mx.gluon.nn.HybridSequential()
    target.add(mx.gluon.nn.Conv2D(6, (3, 2), groups=2, in_channels=4))
    target.initialize()
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(_nchw())).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_linen_feature_group_count_is_torchs_groups() -> None:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    source, expected = _grouped_torch()
    x = _nchw().transpose(0, 2, 3, 1)
    module = nn.Sequential([nn.Conv(6, (3, 2), feature_group_count=2, padding="VALID")])
    pm = up.wrap(module, module.init(jax.random.PRNGKey(0), x))
    up.transfer(up.wrap(source), pm)
    got = np.asarray(module.apply(pm.variables, x)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_nnx_feature_group_count_is_torchs_groups() -> None:
    nnx = pytest.importorskip("flax.nnx")
    source, expected = _grouped_torch()
    model = nnx.Sequential(nnx.Conv(4, 6, (3, 2), feature_group_count=2, padding="VALID", rngs=nnx.Rngs(0)))
    up.transfer(source, model)
    got = np.asarray(model(_nchw().transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _transposed(dims: int) -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """A torch ConvTranspose{dims}d, an NC* input and torch's own output."""
    torch.manual_seed(0)
    kernel = (3, 2, 2)[:dims]
    source = torch.nn.Sequential(getattr(torch.nn, f"ConvTranspose{dims}d")(3, 4, kernel, stride=2))
    x = np.random.default_rng(dims).normal(size=(2, 3, *(5, 4, 3)[:dims])).astype(np.float32)
    with torch.no_grad():
        return source, x, source(torch.from_numpy(x)).numpy()


def _last(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_keras_conv_transpose_is_torchs(dims: int) -> None:
    keras = pytest.importorskip("keras")
    source, x, expected = _transposed(dims)
    layer = getattr(keras.layers, f"Conv{dims}DTranspose")(4, (3, 2, 2)[:dims], strides=2)
    target = keras.Sequential([keras.Input(_last(x).shape[1:]), layer])
    up.transfer(source, target)
    got = np.moveaxis(keras.ops.convert_to_numpy(target(_last(x))), -1, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_mxnet_conv_transpose_is_torchs(dims: int) -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    source, x, expected = _transposed(dims)
    target = mx.gluon.nn.HybridSequential()
    target.add(getattr(mx.gluon.nn, f"Conv{dims}DTranspose")(4, (3, 2, 2)[:dims], strides=2, in_channels=3))
    target.initialize()
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(x)).asnumpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("dims", [1, 3])
def test_nnx_conv_transpose_is_torchs_either_way(dims: int, transpose_kernel: bool) -> None:
    nnx = pytest.importorskip("flax.nnx")
    source, x, expected = _transposed(dims)
    layer = nnx.ConvTranspose(3, 4, (3, 2, 2)[:dims], strides=2, padding="VALID", transpose_kernel=transpose_kernel,
                              rngs=nnx.Rngs(0))
    model = nnx.Sequential(layer)
    up.transfer(source, model)
    np.testing.assert_allclose(np.moveaxis(np.asarray(model(_last(x))), -1, 1), expected, rtol=1e-5, atol=1e-5)
