"""The layers section: each layer type moves from torch to the backend with torch's own outputs.

Each backend's `*_layers` module (next to its examples module) builds every type of `examples.LAYERS` as the
only layer of a Sequential (attention and recurrent layers as attribute `layer` of a tiny model), or says why its
framework cannot (the test then skips with "not supported: ..."). Inputs are torch's channels-first image, moved to
channels-last where the framework takes that, or a batch-first sequence (the same on every framework). A backend
whose layer keeps fewer biases than torch (folded: docs/layouts.md) lists the type in its module's FOLDED: its
biases carry torch's function (outputs and gradients equal), not torch's bits.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import is_counter
from unified_params.conformance.examples import LAYERS, layer_input
from unified_params.conformance.plugin import NOT_SUPPORTED, require_backend

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _builders(backend: str) -> tuple[Any, Any]:
    """(layers module, examples module) of a backend; skipped as not supported when it has no layers module."""
    cls = require_backend(backend)
    name = cls.examples.replace("_examples", "_layers")
    try:
        layers = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        pytest.skip(f"{NOT_SUPPORTED}: the {backend} backend has no layers builders ({name})")
    return layers, importlib.import_module(cls.examples)


def _build(backend: str, layer_type: str) -> up.ParamAPI:
    make = _builders(backend)[0].LAYERS.get(layer_type, f"the {backend} layers module has no {layer_type!r} builder")
    if isinstance(make, str):
        pytest.skip(f"{NOT_SUPPORTED}: {make}")
    built = make()
    return up.wrap(built.model, built.variables)


def _group_constant(shape: tuple[int, ...], dtype: str, rng: np.random.Generator, name: str) -> np.ndarray:
    """U(0.2, 0.9) per group of the group_norm row (2 groups): MXNet keeps one affine value per group."""
    return np.repeat(rng.uniform(0.2, 0.9, size=2), shape[0] // 2).astype(dtype)


def _seeded(pm: up.ParamAPI, seed: int, layer_type: str = "") -> up.ParamAPI:
    return pm.init(_group_constant if layer_type == "group_norm" else up.init.Uniform(0.2, 0.9), seed=seed)


def _state(pm: up.ParamAPI) -> dict[str, np.ndarray]:
    return {n: v for n, v in pm.state_dict().items() if not is_counter(n)}


def _channels_last(pm: up.ParamAPI, layer_type: str) -> bool:
    return pm.channels_last and layer_input(layer_type).ndim == 4


def _input(pm: up.ParamAPI, layer_type: str) -> np.ndarray:
    """The layer type's input in the framework's own layout."""
    x = layer_input(layer_type)
    return np.moveaxis(x, 1, -1) if _channels_last(pm, layer_type) else x


def _run(backend: str, pm: up.ParamAPI, layer_type: str) -> np.ndarray:
    """The framework's own forward on the layers input in its own layout, as torch's layout in numpy."""
    out = _builders(backend)[1].native_forward(pm, _input(pm, layer_type))
    return np.moveaxis(out, -1, 1) if _channels_last(pm, layer_type) else out


def _square(out: Any) -> Any:
    return (out * out).sum()


def _check_grads(backend: str, source: up.ParamAPI, target: up.ParamAPI, layer_type: str) -> None:
    """The target's gradients of the sum of squared outputs are torch's own (autograd), name by name, within 1e-5 of
    each tensor's largest gradient (float32 sums of large terms that cancel carry errors of that size).

    Squares, not the plain sum: a normalization's output sums to zero whatever its scale, so its scale's
    gradient would be zero on every framework and prove nothing. A layers module's UNCHECKED_GRADS names the types
    whose parameters are not torch's per element (one value per group), with the reason."""
    layers = _builders(backend)[0]
    if layer_type in getattr(layers, "UNCHECKED_GRADS", {}):
        return
    expected = _builders("torch")[0].native_grads(source, _input(source, layer_type))
    got = target.grads(_input(target, layer_type), loss=getattr(layers, "loss", _square))
    assert set(got) == set(expected)
    for name, grad in expected.items():
        scale = max(1.0, float(np.abs(grad).max()))
        np.testing.assert_allclose(got[name], grad, rtol=TOL["rtol"], atol=TOL["atol"] * scale, err_msg=name)


def _features(layer_type: str) -> list:
    return [pytest.mark.feature(f"layers: {layer_type}")]


CASES = [pytest.param(t, id=t, marks=_features(t)) for t in LAYERS]


@pytest.mark.parametrize("layer_type", CASES)
def test_layer_from_torch(backend: str, layer_type: str, tmp_path: Path) -> None:
    source, target = _build("torch", layer_type), _build(backend, layer_type)
    shapes = {n: v.shape for n, v in _state(source).items()}
    assert {n: v.shape for n, v in _state(target).items()} == shapes
    a, b = _state(_seeded(source, 3, layer_type)), _state(_seeded(target, 3, layer_type))
    folded = layer_type in getattr(_builders(backend)[0], "FOLDED", ())
    exact = [n for n in a if not (folded and target[n].kind == "bias")]
    assert all(np.array_equal(a[n], b[n]) for n in exact), "same seed, different bits"
    np.testing.assert_allclose(_run(backend, target, layer_type), _run("torch", source, layer_type), **TOL)
    _seeded(target, 11, layer_type)
    expected = _run("torch", source, layer_type)
    up.transfer(source, target)
    np.testing.assert_allclose(_run(backend, target, layer_type), expected, **TOL)
    _check_grads(backend, source, target, layer_type)
    _seeded(target, 12, layer_type)
    source.save(tmp_path / "torch.safetensors")
    target.load(tmp_path / "torch.safetensors")
    np.testing.assert_allclose(_run(backend, target, layer_type), expected, **TOL)
    target.save(tmp_path / "target.safetensors")
    _seeded(source, 13, layer_type)
    source.load(tmp_path / "target.safetensors")
    np.testing.assert_allclose(_run("torch", source, layer_type), expected, **TOL)
