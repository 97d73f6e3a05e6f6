"""A model changed after wrap is seen as it is now: structure, trainable flags and dtypes, on every backend.

Each change is made with the framework's own API by the examples module (see MUTATIONS in examples.py), after the
wrapper has cached everything it caches (names, views, state); every check reads back with the framework's own API.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import unified_params as up
from unified_params.conformance.examples import MUTATIONS, mlp_input
from unified_params.conformance.plugin import NOT_SUPPORTED

feature = pytest.mark.feature

EXPECTED = {
    "replace_layer": {"0.weight": (8, 4), "0.bias": (8,), "2.weight": (3, 8), "2.bias": (3,)},
    "append_layer": {"0.weight": (8, 4), "0.bias": (8,), "2.weight": (1, 8), "2.bias": (1,), "3.weight": (2, 1),
                     "3.bias": (2,)},
    "delete_layer": {"0.weight": (8, 4), "0.bias": (8,)},
    "reassign_weight": {"0.weight": (8, 4), "0.bias": (8,), "2.weight": (1, 8), "2.bias": (1,)},
}
TOUCHED = {"replace_layer": "2.weight", "append_layer": "3.weight", "delete_layer": "0.weight",
           "reassign_weight": "0.weight"}


def mutation(ex: ModuleType, name: str) -> Any:
    """The examples module's function for a change, or a skip naming why the framework cannot make it."""
    assert name in MUTATIONS
    reason = getattr(ex, "UNSUPPORTED_MUTATIONS", {}).get(name)
    if reason is not None:
        pytest.skip(f"{NOT_SUPPORTED}: {reason}")
    return getattr(ex, name)


def warmed(ex: ModuleType) -> tuple[Any, up.ParamAPI, dict[str, Any]]:
    """mlp() wrapped, with every cache the wrapper keeps filled (names, views, state, tied groups)."""
    built = ex.mlp()
    pm = up.wrap(built.model, built.variables)
    views = dict(pm.items())
    assert pm.names() == list(pm.collect()) == list(pm.state_dict())
    assert pm.tied() == [] and [v.shape for v in views.values()] == [(8, 4), (8,), (1, 8), (1,)]
    return built.model, pm, views


def assert_seen(ex: ModuleType, pm: up.ParamAPI, expected: dict[str, tuple[int, ...]], tmp_path: Path) -> None:
    """names, [], collect, state_dict, load_state_dict, save and tied all describe the model as it is now."""
    assert pm.names() == list(expected) and len(pm) == len(expected) == len(ex.native_names(pm))
    for name, shape in expected.items():
        native = ex.native_value(pm, name)
        assert pm[name].shape == native.shape == shape, name
        np.testing.assert_array_equal(pm[name].numpy(), native, err_msg=name)
        assert pm[name].native is ex.native_object(pm, name)
    assert list(pm.collect(r".*weight")) == [n for n in expected if n.endswith("weight")]
    assert pm.tied() == []
    state = pm.state_dict()
    assert list(state) == list(expected)
    for name, value in state.items():
        np.testing.assert_array_equal(value, ex.native_value(pm, name), err_msg=name)
    shifted = {n: (v + 1).astype(v.dtype) for n, v in state.items()}
    pm.load_state_dict(shifted)
    for name, value in shifted.items():
        np.testing.assert_array_equal(ex.native_value(pm, name), value, err_msg=name)
    pm.save(tmp_path / "live.safetensors")
    saved = load_file(str(tmp_path / "live.safetensors"))
    assert sorted(saved) == sorted(expected)
    for name, value in saved.items():
        np.testing.assert_array_equal(value, ex.native_value(pm, name), err_msg=name)


@pytest.mark.parametrize("change", list(EXPECTED))
@feature("live model")
def test_structure_changed_after_wrap_is_seen(ex: ModuleType, change: str, tmp_path: Path) -> None:
    mutate = mutation(ex, change)
    model, pm, views = warmed(ex)
    mutate(model)
    assert_seen(ex, pm, EXPECTED[change], tmp_path)
    target = TOUCHED[change]
    pm.init(up.init.Constant(0.25), pattern=target.replace(".", r"\."))
    np.testing.assert_array_equal(ex.native_value(pm, target), np.full(EXPECTED[change][target], 0.25, np.float32))
    if change == "delete_layer":
        with pytest.raises(up.ParameterNotFoundError, match="no longer in the model"):
            views["2.weight"].numpy()
        with pytest.raises(up.ParameterNotFoundError, match="2.weight"):
            pm["2.weight"]
        with pytest.raises(up.SelectionError, match="matches no parameter"):
            pm.init(up.init.Zeros(), pattern=r"2\..*")
    else:
        view = views[target] if target in views else pm[target]
        assert view.shape == EXPECTED[change][target]
        np.testing.assert_array_equal(view.numpy(), ex.native_value(pm, target))


@pytest.mark.parametrize("change", list(EXPECTED))
@feature("live model")
def test_structure_changed_after_a_first_listing_is_seen(ex: ModuleType, change: str) -> None:
    """Only names() ran before the change (the listing without the index): names() and len() see the model as it is."""
    mutate = mutation(ex, change)
    built = ex.mlp()
    pm = up.wrap(built.model, built.variables)
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"] and pm.names() == pm.names()
    mutate(built.model)
    assert pm.names() == list(EXPECTED[change]) and len(pm) == len(ex.native_names(pm))
    assert {n: v.shape for n, v in pm.items()} == EXPECTED[change]


@feature("live model")
def test_trainable_changed_after_wrap_is_seen(ex: ModuleType) -> None:
    set_trainable = mutation(ex, "set_trainable")
    model, pm, views = warmed(ex)
    x = mlp_input()
    every = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(pm.grads(x)) == every
    set_trainable(model, 2, False)
    assert [views[n].trainable for n in every] == [True, True, False, False]
    assert list(pm.collect(trainable=False)) == ["2.weight", "2.bias"]
    assert list(pm.grads(x)) == ["0.weight", "0.bias"]
    set_trainable(model, 2, True)
    assert all(views[n].trainable for n in every) and list(pm.collect(trainable=False)) == []
    grads = pm.grads(x)
    assert list(grads) == every
    np.testing.assert_allclose(grads["2.weight"], ex.native_grads(pm, x)["2.weight"], rtol=1e-5)


@feature("live model")
def test_dtype_changed_after_wrap_is_seen(ex: ModuleType) -> None:
    cast = mutation(ex, "cast")
    model, pm, views = warmed(ex)
    dtype = cast(model)
    for name, view in views.items():
        assert view.dtype == pm[name].dtype == ex.native_value(pm, name).dtype.name == dtype, name
    state = pm.state_dict()
    assert {v.dtype.name for v in state.values()} == {dtype}
    pm.load_state_dict(state)
    value = np.full((8,), 1 / 3, dtype=np.dtype(np.float64) if dtype == "float64" else views["0.bias"].numpy().dtype)
    views["0.bias"].set(value)
    np.testing.assert_array_equal(ex.native_value(pm, "0.bias"), value)
    pm.init(up.init.Constant(0.5), pattern=r"2\.weight")
    assert ex.native_value(pm, "2.weight").dtype.name == dtype
