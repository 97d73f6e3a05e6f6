"""Bad input on every backend: the named error, a message that says what to do, the model unchanged."""
from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.conformance.examples import Built

feature = pytest.mark.feature


def wrapped(built: Built) -> up.ParamAPI:
    return up.wrap(built.model, built.variables)


def native_state(ex: ModuleType, pm: up.ParamAPI) -> dict[str, np.ndarray]:
    return {n: ex.native_value(pm, n) for n in pm.names()}


def assert_unchanged(ex: ModuleType, pm: up.ParamAPI, before: dict[str, np.ndarray]) -> None:
    for n, v in before.items():
        np.testing.assert_array_equal(ex.native_value(pm, n), v, err_msg=n)


@feature("errors")
def test_unknown_name_suggests_closest(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    with pytest.raises(KeyError) as err:
        pm["0.wieght"]
    assert isinstance(err.value, up.ParameterNotFoundError) and "0.weight" in str(err.value)
    with pytest.raises(up.ParameterNotFoundError, match="3 children|has 3"):
        pm.layer(7)


@feature("errors")
def test_bad_regex_and_empty_selection(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    with pytest.raises(up.SelectionError, match=r"\(weight"):
        pm.init(up.init.Zeros(), pattern=r"(weight")
    with pytest.raises(ValueError, match="matches no parameter"):
        pm.init(up.init.Zeros(), pattern=r".*wieght")
    with pytest.raises(up.SelectionError, match="kind 'gamma'"):
        pm.init(up.init.Zeros(), kind="gamma")
    assert_unchanged(ex, pm, before)


def _raises(shape, dtype, rng, name):  # noqa: ANN001, ANN202
    if name.startswith("2."):
        raise RuntimeError("boom")
    return np.ones(shape)


@pytest.mark.parametrize("bad, match", [
    (_raises, "boom"),
    (lambda shape, dtype, rng, name: np.ones((3, 3)), r"shape \(3, 3\)"),
    (lambda shape, dtype, rng, name: np.ones(shape, np.complex64), "unsafe"),
    (lambda shape, dtype, rng, name: np.full(shape, np.nan) if name == "2.weight" else np.ones(shape), "NaN"),
    (lambda shape, dtype, rng, name: np.full(shape, np.inf) if name == "2.weight" else np.ones(shape), "inf"),
])
@feature("errors")
def test_bad_custom_initializer_changes_nothing(ex: ModuleType, bad, match: str) -> None:  # noqa: ANN001
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    with pytest.raises(up.InitializerError, match=match) as err:
        pm.init(bad, kind="weight")
    assert "weight" in str(err.value)
    assert_unchanged(ex, pm, before)


@feature("errors")
def test_set_checks_shape_and_dtype(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    with pytest.raises(up.ShapeMismatchError, match=r"0.weight.*\(8, 4\)|\(8, 4\).*0.weight"):
        pm["0.weight"].set(np.zeros((4, 8)))
    with pytest.raises(up.DtypeMismatchError, match="unsafe"):
        pm["0.weight"].set(np.zeros((8, 4), np.complex64))
    assert_unchanged(ex, pm, before)
    pm["0.weight"].set(np.full((8, 4), 2.0))
    assert (ex.native_value(pm, "0.weight") == 2).all()


@feature("errors")
def test_load_state_dict_lists_every_misfit(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    state = pm.state_dict()
    good = {k: np.full_like(v, 5) for k, v in state.items()}
    missing = {k: v for k, v in good.items() if k != "2.bias"}
    with pytest.raises(up.ParameterNotFoundError, match="missing: 2.bias"):
        pm.load_state_dict(missing)
    with pytest.raises(up.ParameterNotFoundError, match="unexpected: 9.weight"):
        pm.load_state_dict({**good, "9.weight": np.zeros(3)})
    with pytest.raises(up.ShapeMismatchError, match=r"0.weight: checkpoint \(4, 8\) vs model \(8, 4\)"):
        pm.load_state_dict({**good, "0.weight": np.zeros((4, 8), np.float32)})
    with pytest.raises(up.DtypeMismatchError, match="cast=True"):
        pm.load_state_dict({**good, "0.bias": np.zeros(8, np.float64)})
    assert_unchanged(ex, pm, before)
    pm.load_state_dict(missing, strict=False)
    assert (ex.native_value(pm, "0.weight") == 5).all()
    np.testing.assert_array_equal(ex.native_value(pm, "2.bias"), before["2.bias"])


@feature("errors")
def test_wrap_unsupported_object() -> None:
    with pytest.raises(TypeError) as err:
        up.wrap(object())
    assert isinstance(err.value, up.UnsupportedModelError) and "torch.nn.Module" in str(err.value)


@feature("errors")
def test_deferred_reads_and_writes_raise(ex: ModuleType, adapter_cls) -> None:  # noqa: ANN001
    if "deferred" in adapter_cls.capabilities:
        pytest.skip(f"not supported: {adapter_cls.capabilities['deferred']}")
    pm = wrapped(ex.deferred())
    for action in (lambda: pm["0.weight"].numpy(), lambda: pm["0.weight"].set(np.zeros((256, 20))),
                   lambda: pm["0.weight"].grad, pm.state_dict, pm.num_params):
        with pytest.raises(RuntimeError) as err:
            action()
        assert isinstance(err.value, up.DeferredInitializationError)
        assert "materialize" in str(err.value)


@feature("state")
def test_state_dict_roundtrip(ex: ModuleType) -> None:
    a, b = wrapped(ex.mlp()), wrapped(ex.mlp())
    a.init(up.init.Normal(std=1.0), seed=11)
    b.load_state_dict(a.state_dict())
    for n in a.names():
        np.testing.assert_array_equal(ex.native_value(b, n), ex.native_value(a, n))


@feature("state")
def test_save_load_and_transfer(ex: ModuleType, tmp_path) -> None:  # noqa: ANN001
    a, b, c = wrapped(ex.tied()), wrapped(ex.tied()), wrapped(ex.tied())
    a.init(up.init.Uniform(-1, 1), seed=5)
    path = tmp_path / "tied.safetensors"
    a.save(path)
    b.load(path)
    for n in a.names():
        np.testing.assert_array_equal(ex.native_value(b, n), ex.native_value(a, n))
    assert b["2.weight"].native is b["4.weight"].native
    up.transfer(a, c)
    for n in a.names():
        np.testing.assert_array_equal(ex.native_value(c, n), ex.native_value(a, n))
    assert up.compare(a, c).equal
    c.init(up.init.Constant(3.0), kind="bias")
    result = up.compare(a, c)
    assert not result and set(result.max_abs) == set(a.state_dict())
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
        assert sorted(f.keys()) == sorted(a.state_dict())
    assert meta["backend"] == a.backend and "2.weight" in meta["tied"]


@feature("state")
def test_checkpoint_refused_when_corrupt(ex: ModuleType, tmp_path) -> None:  # noqa: ANN001
    pm = wrapped(ex.mlp())
    path = tmp_path / "m.safetensors"
    pm.save(path)
    data = path.read_bytes()
    before = native_state(ex, pm)
    (tmp_path / "short.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    for bad in ("short", "junk"):
        with pytest.raises(up.CheckpointError):
            pm.load(tmp_path / f"{bad}.safetensors")
    other = wrapped(ex.nested())
    with pytest.raises(up.UnifiedParamsError, match="missing|unexpected"):
        other.load(path)
    assert_unchanged(ex, pm, before)
