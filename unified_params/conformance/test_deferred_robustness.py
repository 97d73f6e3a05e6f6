"""Deferred models under bad use: example inputs that are not arrays, a recorded initializer that keeps failing."""
from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import DEFERRED, NATIVE_MATERIALIZE
from unified_params.conformance.examples import Built, deferred_input

feature = pytest.mark.feature
requires = pytest.mark.requires


def wrapped(built: Built) -> up.ParamAPI:
    return up.wrap(built.model, built.variables)


@pytest.mark.parametrize("bad, match", [("abc", "'abc' \\(str\\)"), (3.0, "the scalar 3.0"),
                                        (None, "None \\(NoneType\\)"), ([[1.0, 2.0], "x"], "'x' \\(str\\)")])
@feature("errors")
@requires(DEFERRED)
def test_materialize_with_inputs_that_are_not_arrays(ex: ModuleType, bad: object, match: str) -> None:
    pm = wrapped(ex.deferred())
    pending = pm.pending()
    with pytest.raises(up.ShapeMismatchError, match=f"example input 0 is {match}, not an array"):
        pm.materialize(bad)
    assert pm.pending() == pending and not pm.initialized


def _fails_on_layer_2(shape, dtype, rng, name):  # noqa: ANN001, ANN202
    if name.startswith("2."):
        raise RuntimeError("boom")
    return np.full(shape, 0.5)


@feature("errors")
@requires(NATIVE_MATERIALIZE)
def test_recorded_initializer_that_fails_in_the_users_forward_keeps_failing(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred())
    pm.init(_fails_on_layer_2, kind="weight")
    x = deferred_input(20)
    for _ in range(2):
        with pytest.raises(up.InitializerError, match="2.weight.*boom"):
            ex.native_forward(pm, x)
    pm.init(up.init.Constant(0.25), kind="weight")
    ex.native_forward(pm, x)
    for name in ("0.weight", "2.weight"):
        assert (ex.native_value(pm, name) == 0.25).all(), name
