"""Keras EinsumDense and Flax DenseGeneral / LinearGeneral: torch's Linear where they are plain projections, else
native names and layout (no guess)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unified_params as up
from unified_params.layout import Layout, Merge, Permute
from unified_params.projections import einsum_projection

TOL = {"rtol": 1e-5, "atol": 1e-5}
X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32)


def _linear(inputs: int, outputs: int) -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(inputs, outputs))
    with torch.no_grad():
        return model, model(torch.from_numpy(X[..., :inputs])).numpy()


def test_merge_is_exact_and_writes_through() -> None:
    native = np.arange(8 * 2 * 3, dtype=np.float32).reshape(8, 2, 3)
    layout = Layout((Merge(1, (2, -1)), Permute((1, 0))))
    canonical = layout.to_canonical(native)
    assert canonical.shape == (6, 8) and np.shares_memory(canonical, native)
    np.testing.assert_array_equal(canonical, native.reshape(8, 6).T)
    np.testing.assert_array_equal(layout.from_canonical(canonical), native)
    assert layout.native_shape((6, None)) == (None, 2, 3)
    assert layout.canonical_shape((None, 2, 3)) == (6, None)


@pytest.mark.parametrize(("equation", "bias", "plain"), [
    ("abc,cde->abde", "de", (1, 2)), ("abcd,cde->abe", "e", (2, 1)), ("...b,bc->...c", "c", (1, 1)),
    ("ab,bc->ac", None, (1, 1)), ("abc,cde->abde", "e", None), ("abc,bcd->abd", "d", None),
    ("abc,cd->abdc", None, None), ("abc,dc->abd", None, None),
])
def test_einsum_projection(equation: str, bias: str | None, plain: tuple[int, int] | None) -> None:
    assert einsum_projection(equation, bias) == plain


def test_keras_einsum_dense_is_torchs_linear() -> None:
    keras = pytest.importorskip("keras")
    source, expected = _linear(8, 6)
    layer = keras.layers.EinsumDense("abc,cde->abde", (5, 2, 3), bias_axes="de")
    target = keras.Sequential([keras.Input((5, 8)), layer])
    pm = up.wrap(target)
    assert {n: (p.shape, p.layer_type) for n, p in pm.items()} == {"0.weight": ((6, 8), "linear"),
                                                                    "0.bias": ((6,), "linear")}
    up.transfer(source, target)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target(X)).reshape(2, 5, 6), expected, **TOL)


def test_keras_einsum_dense_with_a_partial_bias_stays_native() -> None:
    keras = pytest.importorskip("keras")
    layer = keras.layers.EinsumDense("abc,cde->abde", (5, 2, 3), bias_axes="e")
    target = keras.Sequential([keras.Input((5, 8)), layer])
    pm = up.wrap(target)
    assert {n: (p.shape, p.layer_type) for n, p in pm.items()} == {"0.kernel": ((8, 2, 3), None),
                                                                    "0.bias": ((3,), None)}
    with pytest.raises(up.UnifiedParamsError):
        up.transfer(_linear(8, 6)[0], target)


def test_linen_dense_general_is_torchs_linear() -> None:
    pytest.importorskip("flax")
    import jax
    from flax import linen

    source, expected = _linear(8, 6)
    model = linen.Sequential([linen.DenseGeneral((2, 3))])
    pm = up.wrap(model, model.init(jax.random.PRNGKey(0), X))
    assert pm.collect(layer="linear", kind="weight")["0.weight"].shape == (6, 8)
    up.transfer(source, pm)
    np.testing.assert_allclose(np.asarray(model.apply(pm.variables, X)).reshape(2, 5, 6), expected, **TOL)
    other = linen.Sequential([linen.DenseGeneral(4, axis=(-2, -1))])
    pm = up.wrap(other, other.init(jax.random.PRNGKey(0), X))
    assert {n: p.shape for n, p in pm.items()} == {"0.kernel": (5, 8, 4), "0.bias": (4,)}


def test_nnx_linear_general_over_two_axes_is_torchs_linear() -> None:
    pytest.importorskip("flax")
    from flax import nnx

    source, expected = _linear(6, 4)
    model = nnx.Sequential(nnx.LinearGeneral((2, 3), 4, axis=(-2, -1), rngs=nnx.Rngs(0)))
    up.transfer(source, model)
    np.testing.assert_allclose(np.asarray(model(X[..., :6].reshape(2, 5, 2, 3))), expected, **TOL)
