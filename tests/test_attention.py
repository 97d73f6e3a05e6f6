"""Multi-head attention moves between torch and Keras / Flax linen / NNX with torch's own outputs, and back bitwise.

The conformance layers rows cover self-attention with and without biases and kdim = vdim from torch; here: kdim !=
vdim, a mask, the way back to torch, configurations torch cannot express, and the names Keras must not leak.
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
import torch

import unified_params as up
from unified_params.conformance.examples import layer_input

TOL = {"rtol": 1e-5, "atol": 1e-5}
X = layer_input("attention")
CAUSAL = np.tril(np.ones((X.shape[1], X.shape[1]), bool))


def _module(framework: str) -> Any:
    pytest.importorskip("flax" if framework == "nnx" else framework)
    return importlib.import_module(f"unified_params.backends.{framework}_attention")


def _wrap(framework: str, **config: Any) -> tuple[up.ParamAPI, Any]:
    """The framework's tiny attention model, wrapped, and its forward on X (with the causal mask when mask=True)."""
    mask = config.pop("mask", False)
    model = _module(framework).Attention(**config)
    if framework == "torch":
        def run(m: Any) -> np.ndarray:
            with torch.no_grad():
                return m(torch.from_numpy(X), torch.from_numpy(CAUSAL) if mask else None).numpy()
        return up.wrap(model), lambda pm: run(pm.model)
    if framework == "keras":
        import keras

        model(X)
        return up.wrap(model), lambda pm: keras.ops.convert_to_numpy(pm.model(X, CAUSAL[None] if mask else None))
    if framework == "flax":
        import jax

        pm = up.wrap(model, model.init(jax.random.PRNGKey(0), X))
        return pm, lambda pm: np.asarray(pm.model.apply(pm.variables, X, CAUSAL[None, None] if mask else None))
    if framework == "equinox":
        import jax

        return up.wrap(model), lambda pm: np.asarray(jax.vmap(lambda x: pm.model(x, CAUSAL if mask else None))(X))
    return up.wrap(model), lambda pm: np.asarray(pm.model(X, CAUSAL[None, None] if mask else None))


CONFIGS = {
    "self": {}, "no_bias": {"bias": False}, "kdim": {"kdim": 6}, "kdim_vdim": {"kdim": 6, "vdim": 5},
    "masked": {"mask": True},
}
CASES = [(f, c) for f in ("keras", "flax", "nnx", "equinox") for c in CONFIGS if not (f == "nnx" and c == "kdim_vdim")]


@pytest.mark.parametrize(("framework", "config"), CASES, ids=[f"{f}-{c}" for f, c in CASES])
def test_from_torch_and_back(framework: str, config: str) -> None:
    source, run_source = _wrap("torch", **CONFIGS[config])
    target, run_target = _wrap(framework, **CONFIGS[config])
    state = {n: v.copy() for n, v in source.init(up.init.Uniform(-0.5, 0.5), seed=1).state_dict().items()}
    assert {n: v.shape for n, v in target.state_dict().items()} == {n: v.shape for n, v in state.items()}
    expected = run_source(source)
    up.transfer(source, target)
    np.testing.assert_allclose(run_target(target), expected, **TOL)
    source.init(up.init.Zeros())
    up.transfer(target, source)
    assert all(np.array_equal(v, state[n]) for n, v in source.state_dict().items())
    np.testing.assert_array_equal(run_source(source), expected)


def test_torch_names_are_its_own_state_dict() -> None:
    for config in ({}, {"kdim": 6, "vdim": 5}, {"bias": False}):
        pm, _ = _wrap("torch", **config)
        state = pm.model.state_dict()
        assert list(pm.names()) == list(state)
        assert all(np.array_equal(pm[n].numpy(), v.numpy()) for n, v in state.items())
        assert set(pm.collect(layer="attention")) == set(state)


@pytest.mark.parametrize("framework", ["torch", "keras", "flax", "nnx", "equinox"])
def test_attention_kernels_are_weights(framework: str) -> None:
    pm, _ = _wrap(framework)
    assert list(pm.collect(kind="weight")) == ["layer.in_proj_weight", "layer.out_proj.weight"]
    assert list(pm.collect(layer="attention", kind="bias")) == ["layer.in_proj_bias", "layer.out_proj.bias"]


def test_keras_names_leak_no_tracking_attribute() -> None:
    """On TensorFlow, Keras layers also hold their sublayers in `_self_unconditional_dependency_names`."""
    pm, _ = _wrap("keras", kdim=6, vdim=5)
    assert list(pm.names()) == ["layer.q_proj_weight", "layer.k_proj_weight", "layer.v_proj_weight",
                                "layer.in_proj_bias", "layer.out_proj.weight", "layer.out_proj.bias"]
    assert not [n for n in pm.names() if "_self_" in n or "dependenc" in n]


def test_extensions_keras_to_linen() -> None:
    """Configurations torch has no form for: heads * key_dim != E (Flax qkv_features), output size != E."""
    keras = pytest.importorskip("keras")
    source, run_source = _wrap("keras", key_dim=3, output_shape=4)
    target, run_target = _wrap("flax", qkv_features=6, out_features=4)
    shapes = {n: v.shape for n, v in source.state_dict().items()}
    assert shapes == {"layer.in_proj_weight": (18, 8), "layer.in_proj_bias": (18,), "layer.out_proj.weight": (4, 6),
                      "layer.out_proj.bias": (4,)}
    assert {n: v.shape for n, v in target.state_dict().items()} == shapes
    source.init(up.init.Uniform(-0.5, 0.5), seed=2)
    up.transfer(source, target)
    np.testing.assert_allclose(run_target(target), run_source(source), **TOL)
    assert keras.__version__


def test_keras_value_dim_unpacks() -> None:
    pm, _ = _wrap("keras", key_dim=3, value_dim=5)
    assert {n: v.shape for n, v in pm.state_dict().items()} == {
        "layer.q_proj_weight": (6, 8), "layer.k_proj_weight": (6, 8), "layer.v_proj_weight": (10, 8),
        "layer.in_proj_bias": (22,), "layer.out_proj.weight": (8, 10), "layer.out_proj.bias": (8,)}


def test_linen_setup_and_compact_parents_agree() -> None:
    """The attention rule holds whether linen knows the layer as a module (setup) or from its variables (compact)."""
    pytest.importorskip("flax")
    import jax
    from flax import linen as nn

    class Setup(nn.Module):
        def setup(self) -> None:
            self.layer = nn.MultiHeadDotProductAttention(2)

        def __call__(self, x: Any) -> Any:
            return self.layer(x)

    setup = Setup()
    compact, _ = _wrap("flax")
    pm = up.wrap(setup, setup.init(jax.random.PRNGKey(0), X))
    assert {n: v.shape for n, v in pm.state_dict().items()} == {n: v.shape for n, v in compact.state_dict().items()}
    compact.init(up.init.Uniform(-0.5, 0.5), seed=3)
    up.transfer(compact, pm)
    np.testing.assert_allclose(np.asarray(setup.apply(pm.variables, X)),
                               np.asarray(compact.model.apply(compact.variables, X)), **TOL)
