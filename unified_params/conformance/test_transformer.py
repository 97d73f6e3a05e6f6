"""A Transformer encoder block built in each framework's own idiom: same seed, same parameters, torch's outputs.

Each backend's `*_attention` module (next to its examples module) builds the block (attention, LayerNorm, a ReLU
MLP, residuals) or says why its framework cannot (the test then skips with "not supported: ...").
"""
from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.conformance.examples import layer_input
from unified_params.conformance.plugin import NOT_SUPPORTED, require_backend

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _block(backend: str) -> tuple[up.ParamAPI, ModuleType]:
    """The wrapped block and the backend's examples module (for its native forward)."""
    cls = require_backend(backend)
    name = cls.examples.replace("_examples", "_attention")
    try:
        make = importlib.import_module(name).encoder_block
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        pytest.skip(f"{NOT_SUPPORTED}: the {backend} backend has no attention builders ({name})")
    if isinstance(make, str):
        pytest.skip(f"{NOT_SUPPORTED}: {make}")
    built = make()
    return up.wrap(built.model, built.variables), importlib.import_module(cls.examples)


def _seeded(pm: up.ParamAPI) -> dict[str, np.ndarray]:
    """The README's selections: Xavier projection weights, small biases, LayerNorm scales near one."""
    pm.init(up.init.XavierUniform(), layer=("linear", "attention"), kind="weight", seed=0)
    pm.init(up.init.Uniform(-0.2, 0.2), kind="bias", seed=1)
    pm.init(up.init.Normal(1.0, 0.1), layer="layer_norm", kind="weight", seed=2)
    return pm.state_dict()


@pytest.mark.feature("architectures: transformer encoder block")
def test_transformer_encoder_block(backend: str) -> None:
    reference, torch_examples = _block("torch")
    target, examples = _block(backend)
    assert [(n, p.shape, p.layer_type) for n, p in target.items()] == \
        [(n, p.shape, p.layer_type) for n, p in reference.items()]
    a, b = _seeded(reference), _seeded(target)
    assert all(np.array_equal(a[n], b[n]) for n in a), "same seed, different bits"
    x = layer_input("attention")
    np.testing.assert_allclose(examples.native_forward(target, x), torch_examples.native_forward(reference, x), **TOL)
