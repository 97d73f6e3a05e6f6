"""E1-E13 on every backend, asserted against the framework's own objects (the examples module's oracles)."""
from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import DEFERRED, NATIVE_GRAD, NATIVE_MATERIALIZE
from unified_params.conformance.examples import Built, deferred_input, mlp_input

feature = pytest.mark.feature
requires = pytest.mark.requires


def wrapped(built: Built) -> up.ParamAPI:
    return up.wrap(built.model, built.variables)


def custom_init(shape: tuple, dtype: np.dtype, rng: np.random.Generator, name: str) -> np.ndarray:
    """The documents' MyInit: U(-10, 10), zeroed where abs < 5, printing each parameter it sees."""
    print("Init", name, shape)
    w = rng.uniform(-10, 10, shape)
    w *= np.abs(w) >= 5
    return w


def assert_custom_rule(value: np.ndarray) -> None:
    a = np.abs(value)
    assert ((a == 0) | ((a >= 5) & (a <= 10))).all()
    assert (a > 0).any()


@feature("E1")
def test_e1_mlp_forward(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    x = mlp_input()
    out = pm.forward(x)
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out, ex.native_forward(pm, x), rtol=1e-6)


@feature("E2")
def test_e2_one_layer(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    layer = pm.layer(2)
    assert layer.names() == ["weight", "bias"]
    assert [p.shape for p in layer.values()] == [(1, 8), (1,)]
    assert {p.dtype for p in layer.values()} == {"float32"}
    for name, p in layer.items():
        np.testing.assert_array_equal(p.numpy(), ex.native_value(pm, "2." + name))


@feature("E3")
def test_e3_one_parameter_and_grad(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    p = pm["2.bias"]
    assert isinstance(p.native, ex.PARAM_TYPE)
    assert p.native is ex.native_object(pm, "2.bias")
    np.testing.assert_array_equal(p.numpy(), ex.native_value(pm, "2.bias"))
    assert p.grad is None
    assert p.trainable and p.kind == "bias"
    x = mlp_input()
    grads = pm.grads(x)
    native = ex.native_grads(pm, x)
    assert set(grads) == set(native) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for name in native:
        np.testing.assert_allclose(grads[name], native[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(pm[name].grad, native[name], rtol=1e-5, atol=1e-7)


@feature("E3")
@requires(NATIVE_GRAD)
def test_e3_grad_from_users_own_backward(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    assert pm["0.weight"].grad is None
    native = ex.native_grads(pm, mlp_input())
    for name, g in native.items():
        np.testing.assert_allclose(pm[name].grad, g, rtol=1e-6)


@feature("E4")
def test_e4_all_parameters(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(pm) == 4
    assert [p.shape for p in pm.values()] == [(8, 4), (8,), (1, 8), (1,)]
    assert sorted(p.native_name for p in pm.values()) == sorted(ex.native_names(pm))
    assert pm.num_params() == 8 * 4 + 8 + 8 + 1
    table = pm.summary()
    for name, p in pm.items():
        assert name in table and p.native_name in table


@feature("E5")
def test_e5_access_by_name(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    for name in pm.names():
        np.testing.assert_array_equal(pm[name].numpy(), ex.native_value(pm, name))
    np.testing.assert_array_equal(pm[pm["2.bias"].native_name].numpy(), ex.native_value(pm, "2.bias"))
    with pytest.raises(up.ParameterNotFoundError, match="2.bias") as err:
        pm["2.bais"]
    assert isinstance(err.value, KeyError)


@feature("E6")
def test_e6_nested_blocks(ex: ModuleType) -> None:
    pm = wrapped(ex.nested())
    assert len(pm) == 4 * 4 + 2
    inner = pm.layer(0, 1, 0)
    assert inner.names() == ["weight", "bias"]
    bias = inner["bias"]
    assert bias.shape == (8,)
    assert bias.native is ex.native_object(pm, bias.full_name)
    np.testing.assert_array_equal(bias.numpy(), ex.native_value(pm, bias.full_name))
    assert [p.shape for p in pm.layer(0, 3).values()] == [(8, 4), (8,), (4, 8), (4,)]
    assert pm.layer(1).names() == ["weight", "bias"] and pm.layer(1)["weight"].shape == (1, 4)
    assert sorted(p.native_name for p in pm.values()) == sorted(ex.native_names(pm))


@feature("E7")
def test_e7_normal_weights_zero_biases(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    pm.init(up.init.Normal(mean=0.0, std=0.01), pattern=r".*weight", seed=0)
    pm.init(up.init.Zeros(), kind="bias")
    weights = np.concatenate([ex.native_value(pm, n).ravel() for n in ("0.weight", "2.weight")])
    assert 0.004 < weights.std() < 0.02 and abs(weights.mean()) < 0.01
    for n in ("0.bias", "2.bias"):
        assert (ex.native_value(pm, n) == 0).all()


@feature("E7")
def test_e7_constant_and_untouched(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    biases = {n: ex.native_value(pm, n) for n in ("0.bias", "2.bias")}
    pm.init(up.init.Constant(1), kind="weight")
    for n in ("0.weight", "2.weight"):
        assert (ex.native_value(pm, n) == 1).all()
    for n, before in biases.items():
        np.testing.assert_array_equal(ex.native_value(pm, n), before)


@feature("E7")
def test_e7_xavier_layer0_constant42_layer2(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    bias0 = ex.native_value(pm, "0.bias")
    pm.layer(0).init(up.init.XavierUniform(), kind="weight", seed=1)
    pm.layer(2).init(up.init.Constant(42))
    w0 = ex.native_value(pm, "0.weight")
    bound = np.sqrt(6.0 / (4 + 8))
    assert (np.abs(w0) <= bound).all() and np.unique(w0).size > 1
    np.testing.assert_array_equal(ex.native_value(pm, "0.bias"), bias0)
    assert (ex.native_value(pm, "2.weight") == 42).all() and (ex.native_value(pm, "2.bias") == 42).all()


@feature("E7")
def test_e7_same_seed_same_bits(ex: ModuleType) -> None:
    a, b = wrapped(ex.mlp()), wrapped(ex.mlp())
    for pm in (a, b):
        pm.init(up.init.XavierNormal(), kind="weight", seed=7)
    for n in ("0.weight", "2.weight"):
        np.testing.assert_array_equal(ex.native_value(a, n), ex.native_value(b, n))
    b.init(up.init.XavierNormal(), kind="weight", seed=8)
    assert not np.array_equal(ex.native_value(a, "0.weight"), ex.native_value(b, "0.weight"))


@feature("E8")
def test_e8_custom_init_and_edit(ex: ModuleType, capsys: pytest.CaptureFixture) -> None:
    pm = wrapped(ex.mlp())
    pm.init(custom_init, kind="weight", seed=0)
    assert capsys.readouterr().out.splitlines() == ["Init 0.weight (8, 4)", "Init 2.weight (1, 8)"]
    before = ex.native_value(pm, "0.weight")
    assert_custom_rule(before)
    assert_custom_rule(ex.native_value(pm, "2.weight"))
    w = pm["0.weight"]
    w.update(lambda v: v + 1)

    def edit(v: np.ndarray) -> None:
        v[0, 0] = 42

    w.update(edit)
    after = ex.native_value(pm, "0.weight")
    assert after[0, 0] == 42
    np.testing.assert_array_equal(after.ravel()[1:], (before + 1).ravel()[1:])


@feature("E9")
def test_e9_collect_by_regex(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    got = pm.collect(r".*weight")
    assert list(got) == ["0.weight", "2.weight"]
    for name, p in got.items():
        assert p.native is ex.native_object(pm, name)
    assert list(pm.collect(kind="bias")) == ["0.bias", "2.bias"]
    nested = wrapped(ex.nested())
    assert len(nested.collect(r".*weight")) == 9 and len(nested.collect(r".*bias")) == 9
    assert list(nested.collect(r".*weight"))[-1] == "1.weight"
    with pytest.raises(up.SelectionError, match=r"\[weight"):
        pm.collect(r"[weight")


@feature("E10")
def test_e10_tied_layer(ex: ModuleType) -> None:
    pm = wrapped(ex.tied())
    assert pm.tied() == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    assert pm["2.weight"].native is pm["4.weight"].native
    assert pm["2.weight"].native is ex.native_object(pm, "2.weight")
    pm["2.weight"].update(lambda v: (v.__setitem__((0, 0), 100), v)[1])
    assert ex.native_value(pm, "4.weight")[0, 0] == 100
    assert pm["4.weight"].numpy()[0, 0] == 100
    assert pm.num_params() == (4 * 8 + 8) + (8 * 8 + 8) + (8 + 1)
    assert list(pm.collect()) == ["0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"]
    assert list(pm.state_dict()) == list(pm.collect())
    x = mlp_input()
    grads = pm.grads(x)
    native = ex.native_grads(pm, x)
    assert set(grads) == set(native)
    for name in native:
        np.testing.assert_allclose(grads[name], native[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pm["4.weight"].grad, pm["2.weight"].grad)


@feature("E11")
@requires(DEFERRED)
def test_e11_deferred_materialize(ex: ModuleType, capsys: pytest.CaptureFixture) -> None:
    pm = wrapped(ex.deferred())
    assert not pm.initialized
    assert pm["0.weight"].shape == (256, None) and pm["2.weight"].shape == (10, None)
    assert set(pm.pending()) >= {"0.weight", "2.weight"}
    with pytest.raises(up.DeferredInitializationError, match="0.weight"):
        pm["0.weight"].numpy()
    pm.init(custom_init, kind="weight", seed=0)
    assert capsys.readouterr().out == ""
    assert pm.materialize(deferred_input(20)) is pm
    assert capsys.readouterr().out.splitlines() == ["Init 0.weight (256, 20)", "Init 2.weight (10, 256)"]
    assert pm.initialized and pm.pending() == []
    assert pm["0.weight"].shape == (256, 20) and pm["2.weight"].shape == (10, 256)
    assert_custom_rule(ex.native_value(pm, "0.weight"))
    assert_custom_rule(ex.native_value(pm, "2.weight"))
    pm.forward(deferred_input(20))
    assert capsys.readouterr().out == ""


@feature("E11")
@requires(DEFERRED, NATIVE_MATERIALIZE)
def test_e11_deferred_users_own_forward(ex: ModuleType, capsys: pytest.CaptureFixture) -> None:
    pm = wrapped(ex.deferred())
    pm.init(custom_init, kind="weight", seed=0)
    pm.init(up.init.Constant(0.5), kind="bias")
    assert capsys.readouterr().out == ""
    out = ex.native_forward(pm, deferred_input(20))
    assert out.shape == (2, 10)
    assert capsys.readouterr().out.splitlines() == ["Init 0.weight (256, 20)", "Init 2.weight (10, 256)"]
    assert pm.initialized
    assert_custom_rule(ex.native_value(pm, "0.weight"))
    assert (ex.native_value(pm, "0.bias") == 0.5).all()
    np.testing.assert_allclose(ex.native_forward(pm, deferred_input(20)), out, rtol=1e-6)


@feature("E12")
def test_e12_avoid_deferral_and_reinit(ex: ModuleType) -> None:
    pm = wrapped(ex.eager())
    assert pm.initialized and pm.pending() == []
    assert pm["0.weight"].shape == (256, 20) and pm["2.weight"].shape == (10, 256)
    np.testing.assert_array_equal(pm["0.weight"].numpy(), ex.native_value(pm, "0.weight"))
    pm.init(up.init.Constant(3), kind="weight")
    assert (ex.native_value(pm, "0.weight") == 3).all() and (ex.native_value(pm, "2.weight") == 3).all()
    pm.init(up.init.Normal(std=0.01), kind="weight", seed=3)
    assert np.abs(ex.native_value(pm, "0.weight")).max() < 0.1


@feature("E13")
def test_e13_mismatched_input(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = {n: ex.native_value(pm, n) for n in pm.names()}
    with pytest.raises(up.ShapeMismatchError) as err:
        pm.materialize(np.zeros((2, 5), np.float32))
    text = str(err.value)
    assert "'0'" in text and "4" in text and "5" in text
    for n, v in before.items():
        np.testing.assert_array_equal(ex.native_value(pm, n), v)


@feature("E13")
@requires(DEFERRED)
def test_e13_other_size_after_materializing(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred())
    pm.materialize(deferred_input(20))
    before = {n: ex.native_value(pm, n) for n in pm.names()}
    with pytest.raises(up.ShapeMismatchError) as err:
        pm.materialize(deferred_input(30))
    text = str(err.value)
    assert "'0'" in text and "20" in text and "30" in text
    assert pm["0.weight"].shape == (256, 20)
    for n, v in before.items():
        np.testing.assert_array_equal(ex.native_value(pm, n), v)
