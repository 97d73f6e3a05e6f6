"""Property-based tests over random MLPs (depth, widths, activation, tied layers, deferred or not) on every backend.

Expected names, shapes and ties come from the spec (tests/archs.py); values are read back with each
framework's own API (the examples modules' oracles) or with safetensors' own reader. Derandomized,
with a bounded number of examples (UP_HYPOTHESIS_EXAMPLES, default 10) so `make test` stays fast.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from archs import (
    ACTIVATIONS,
    Layer,
    NotBuildable,
    Spec,
    build,
    expected_names,
    expected_shapes,
    expected_ties,
    unique_names,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unified_params as up

PROPERTY = settings(
    max_examples=int(os.environ.get("UP_HYPOTHESIS_EXAMPLES", "10")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

feature = pytest.mark.feature
pytestmark = pytest.mark.unified_params


@st.composite
def specs(draw: st.DrawFn, deferred: bool | None = None) -> Spec:
    """A Sequential MLP of 1-4 Dense layers of width 1-6; a layer may reuse an earlier square layer."""
    n_in = draw(st.integers(1, 6))
    layers: list[Layer] = []
    width = n_in
    for _ in range(draw(st.integers(1, 4))):
        square = [j for j, layer in enumerate(layers)
                  if layer.shares is None and layer.out == width and (n_in if j == 0 else layers[j - 1].out) == width]
        if square and draw(st.booleans()):
            layers.append(Layer(width, shares=draw(st.sampled_from(square))))
        else:
            layers.append(Layer(draw(st.one_of(st.just(width), st.integers(1, 6)))))
        width = layers[-1].out
    return Spec(n_in, tuple(layers), draw(st.sampled_from(ACTIVATIONS)),
                draw(st.booleans()) if deferred is None else deferred)


INITIALIZERS = [
    (up.init.Normal(0.0, 0.5), None),
    (up.init.Uniform(-1.0, 1.0), None),
    (up.init.TruncatedNormal(0.0, 1.0), None),
    (up.init.XavierUniform(), "weight"),
    (up.init.KaimingNormal(nonlinearity="relu"), "weight"),
    (up.init.Orthogonal(), "weight"),
]


def examples_of(backend: str) -> ModuleType:
    from unified_params.registry import adapter_class

    return importlib.import_module(adapter_class(backend).examples)


def usable(backend: str) -> bool:
    from unified_params.registry import adapter_class, installed

    try:
        return installed(adapter_class(backend)) is None
    except up.BackendNotInstalledError:
        return False


def fit(spec: Spec, backend: str) -> Spec:
    """The spec, made eager where the backend cannot defer."""
    from unified_params.registry import adapter_class

    if spec.deferred and "deferred" in adapter_class(backend).capabilities:
        return dataclasses.replace(spec, deferred=False)
    return spec


def make(backend: str, spec: Spec, materialize: bool = True) -> up.ParamAPI:
    """The spec built natively on backend and wrapped; deferred models materialized on the spec's input."""
    try:
        built = build(backend, spec)
    except NotBuildable as e:
        pytest.skip(f"not supported: {e}")
    pm = up.wrap(built.model, built.variables)
    if spec.deferred and materialize:
        pm.materialize(spec.input())
    return pm


def native(ex: ModuleType, pm: up.ParamAPI, spec: Spec) -> dict[str, np.ndarray]:
    """Every expected name's value read with the framework's own API."""
    return {n: ex.native_value(pm, n) for n in expected_names(spec)}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def seeded(pm: up.ParamAPI, seed: int) -> up.ParamAPI:
    return pm.init(up.init.Uniform(-1.0, 1.0), seed=seed)


@feature("properties")
@PROPERTY
@given(spec=specs())
def test_structure_matches_the_spec(backend: str, ex: ModuleType, spec: Spec) -> None:
    spec = fit(spec, backend)
    pm = make(backend, spec, materialize=False)
    if spec.deferred:
        assert not pm.initialized
        for i, pos in enumerate(spec.positions()):
            assert pm[f"{pos}.weight"].shape == (spec.layers[i].out, None)
        pm.materialize(spec.input())
    assert pm.initialized and pm.pending() == []
    assert pm.names() == expected_names(spec)
    assert {n: p.shape for n, p in pm.items()} == expected_shapes(spec)
    assert {p.dtype for p in pm.values()} == {"float32"}
    assert pm.tied() == expected_ties(spec)
    assert list(pm.collect()) == unique_names(spec)
    assert pm.num_params() == sum(int(np.prod(expected_shapes(spec)[n])) for n in unique_names(spec))
    assert sorted(pm[n].native_name for n in unique_names(spec)) == sorted(ex.native_names(pm))
    values = native(ex, pm, spec)
    for name, value in values.items():
        assert value.shape == expected_shapes(spec)[name]
    for group in expected_ties(spec):
        assert all(pm[n].native is pm[group[0]].native for n in group)
    if backend != "torch" and usable("torch"):
        ref = make("torch", spec)
        assert ref.names() == pm.names() and [p.shape for p in ref.values()] == [p.shape for p in pm.values()]
        assert ref.tied() == pm.tied()


@feature("properties")
@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**32), which=st.integers(0, len(INITIALIZERS) - 1))
def test_seeded_init_is_deterministic(backend: str, ex: ModuleType, spec: Spec, seed: int, which: int) -> None:
    spec = fit(spec, backend)
    initializer, kind = INITIALIZERS[which]
    a, b = make(backend, spec), make(backend, spec)
    for pm in (a, b):
        pm.init(up.init.Zeros())
        pm.init(initializer, kind=kind, seed=seed)
    want = native(ex, a, spec)
    assert_same(native(ex, b, spec), want)
    for group in expected_ties(spec):
        for name in group[1:]:
            np.testing.assert_array_equal(want[name], want[group[0]])
    if spec.deferred:
        lazy = make(backend, spec, materialize=False)
        lazy.init(up.init.Zeros())
        lazy.init(initializer, kind=kind, seed=seed)
        lazy.materialize(spec.input())
        assert_same(native(ex, lazy, spec), want)
    if backend != "torch" and usable("torch"):
        ref = make("torch", spec)
        ref.init(up.init.Zeros())
        ref.init(initializer, kind=kind, seed=seed)
        assert_same(native(examples_of("torch"), ref, spec), want)
    if isinstance(initializer, up.init.Orthogonal):
        return
    b.init(initializer, kind=kind, seed=seed + 1)
    weights = [f"{pos}.weight" for pos in spec.positions()]
    assert any(not np.array_equal(ex.native_value(b, n), want[n]) for n in weights)


@feature("properties")
@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**32))
def test_state_dict_roundtrip_is_identity(backend: str, ex: ModuleType, spec: Spec, seed: int) -> None:
    spec = fit(spec, backend)
    a, b = seeded(make(backend, spec), seed), seeded(make(backend, spec), seed + 1)
    want = native(ex, a, spec)
    state = a.state_dict()
    assert list(state) == unique_names(spec)
    for name, value in state.items():
        np.testing.assert_array_equal(value, want[name], err_msg=name)
    b.load_state_dict(state)
    assert_same(native(ex, b, spec), want)
    a.load_state_dict(a.state_dict())
    assert_same(native(ex, a, spec), want)


@feature("properties")
@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**32))
def test_save_load_is_identity(backend: str, ex: ModuleType, spec: Spec, seed: int) -> None:
    from safetensors.numpy import load_file

    spec = fit(spec, backend)
    a, b = seeded(make(backend, spec), seed), seeded(make(backend, spec), seed + 1)
    want = native(ex, a, spec)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.safetensors")
        a.save(path)
        on_disk = load_file(path)
        assert sorted(on_disk) == sorted(unique_names(spec))
        for name, value in on_disk.items():
            np.testing.assert_array_equal(value, want[name], err_msg=name)
        b.load(path)
        assert sorted(os.listdir(folder)) == ["model.safetensors"]
    assert_same(native(ex, b, spec), want)


def partners(config: Any) -> list[str]:
    from unified_params.conformance.plugin import selected_backends

    return [b for b in selected_backends(config) if usable(b)]


@feature("properties")
@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**32), data=st.data())
def test_transfer_there_and_back_is_identity(backend: str, ex: ModuleType, pytestconfig: Any, spec: Spec,
                                             seed: int, data: st.DataObject) -> None:
    partner = data.draw(st.sampled_from(partners(pytestconfig)), label="partner")
    spec = fit(fit(spec, backend), partner)
    a = seeded(make(backend, spec), seed)
    b = seeded(make(partner, spec), seed + 1)
    c = seeded(make(backend, spec), seed + 2)
    want = native(ex, a, spec)
    assert up.transfer(a, b) is b
    assert_same(native(examples_of(partner), b, spec), want)
    up.transfer(b, c)
    assert_same(native(ex, c, spec), want)
    assert_same(native(ex, a, spec), want)
