"""No side effects on the user's state: gradients, modes and running statistics behave as if pm were not there."""
from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import NATIVE_GRAD
from unified_params.conformance.examples import Built, mlp_input

feature = pytest.mark.feature
requires = pytest.mark.requires


def wrapped(built: Built) -> up.ParamAPI:
    return up.wrap(built.model, built.variables)


@feature("state")
@requires(NATIVE_GRAD)
def test_grads_leave_the_users_own_gradients(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    x = mlp_input()
    fresh = pm.grads(2 * x + 1)
    for name, g in fresh.items():
        np.testing.assert_array_equal(pm[name].grad, g, err_msg=name)
    users = ex.native_grads(pm, x)
    first = pm.grads(2 * x + 1)
    second = pm.grads(2 * x + 1)
    after = ex.native_grad_state(pm)
    assert set(after) == set(users) == set(first)
    for name, g in users.items():
        np.testing.assert_array_equal(after[name], g, err_msg=name)
        np.testing.assert_array_equal(pm[name].grad, g, err_msg=name)
        np.testing.assert_array_equal(first[name], fresh[name], err_msg=name)
        np.testing.assert_array_equal(second[name], fresh[name], err_msg=name)
    assert not np.allclose(first["0.weight"], users["0.weight"])


@feature("state")
def test_grads_and_forward_leave_running_statistics(ex: ModuleType) -> None:
    pm = wrapped(ex.zoo())
    stats = [n for n, p in pm.items() if p.kind in ("running_mean", "running_var")]
    assert stats
    before = {n: ex.native_value(pm, n) for n in pm.names()}
    xs = ex.zoo_input()
    pm.grads(*xs)
    pm.forward(*xs)
    for n, v in before.items():
        np.testing.assert_array_equal(ex.native_value(pm, n), v, err_msg=n)
