"""Across frameworks: the same model on every backend holds the same parameters, outputs and gradients,
and moves between backends by canonical name. Run in one process with every backend (`-m cross`).
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import is_counter

MODELS = {"mlp": "mlp", "nested": "nested", "tied": "tied", "zoo": "zoo"}
pytestmark = pytest.mark.cross


def examples(name: str) -> ModuleType:
    from unified_params.conformance.plugin import require_backend

    return importlib.import_module(require_backend(name).examples)


def build(name: str, kind: str) -> up.ParamAPI:
    ex = examples(name)
    if not hasattr(ex, MODELS[kind]):
        pytest.skip(f"not supported: the {name} examples have no {kind}() builder")
    built = getattr(ex, MODELS[kind])()
    return up.wrap(built.model, built.variables)


def model_input(pm: up.ParamAPI, kind: str) -> tuple:
    """The kind's inputs in the layout this framework expects (channels-last where it is native)."""
    if kind == "zoo":
        return tuple(examples(pm.backend).zoo_input())
    return (np.random.default_rng(5).uniform(-1, 1, size=(3, 4)).astype(np.float32),)


def seeded(pm: up.ParamAPI, seed: int = 3) -> up.ParamAPI:
    pm.init(up.init.Uniform(-0.5, 0.5), seed=seed)
    if pm.collect(kind="running_var"):
        pm.init(up.init.Uniform(0.5, 1.5), kind="running_var", seed=seed)
    return pm


def shared(pm: up.ParamAPI) -> dict[str, np.ndarray]:
    """The state every framework has: torch's step counters (num_batches_tracked) have no counterpart elsewhere."""
    return {n: v for n, v in pm.state_dict().items() if not is_counter(n)}


@pytest.mark.feature("cross: same seed, same bits")
@pytest.mark.parametrize("kind", list(MODELS))
def test_same_seed_bitwise(pair: tuple[str, str], kind: str) -> None:
    a, b = (seeded(build(n, kind)) for n in pair)
    sa, sb = shared(a), shared(b)
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and np.array_equal(sa[name], sb[name]), name


@pytest.mark.feature("cross: outputs and gradients")
@pytest.mark.parametrize("kind", list(MODELS))
def test_outputs_and_grads_agree(pair: tuple[str, str], kind: str) -> None:
    a, b = (seeded(build(n, kind)) for n in pair)
    xa, xb = model_input(a, kind), model_input(b, kind)
    np.testing.assert_allclose(a.forward(*xa), b.forward(*xb), rtol=1e-5, atol=1e-6)
    ga, gb = a.grads(*xa), b.grads(*xb)
    assert set(ga) == set(gb)
    for name in ga:
        np.testing.assert_allclose(ga[name], gb[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.feature("cross: transfer")
@pytest.mark.parametrize("kind", list(MODELS))
def test_transfer(pair: tuple[str, str], kind: str) -> None:
    src, dst = build(pair[0], kind), build(pair[1], kind)
    seeded(src, seed=9)
    seeded(dst, seed=10)
    assert up.transfer(src, dst) is dst
    for name, value in shared(src).items():
        np.testing.assert_array_equal(examples(pair[1]).native_value(dst, name), value, err_msg=name)
    np.testing.assert_allclose(dst.forward(*model_input(dst, kind)), src.forward(*model_input(src, kind)), rtol=1e-5, atol=1e-6)


@pytest.mark.feature("cross: checkpoints")
@pytest.mark.parametrize("kind", list(MODELS))
def test_checkpoint_between_backends(pair: tuple[str, str], kind: str, tmp_path: Any) -> None:
    src, dst = build(pair[0], kind), build(pair[1], kind)
    seeded(src, seed=21)
    path = tmp_path / f"{pair[0]}-{kind}.safetensors"
    src.save(path)
    dst.load(path)
    for name, value in shared(src).items():
        np.testing.assert_array_equal(examples(pair[1]).native_value(dst, name), value, err_msg=name)
