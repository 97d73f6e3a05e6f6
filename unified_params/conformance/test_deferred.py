"""Deferred initialization on every backend: rollback, tied records, the later call wins, inputs (docs/deferred.md)."""
from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import (
    DEFERRED,
    EMPTY_BATCH,
    LOAD_DEFERRED,
    NATIVE_MATERIALIZE,
    UNALLOCATED,
    UNKNOWN_STRUCTURE,
)
from unified_params.conformance.examples import deferred_input
from unified_params.conformance.plugin import NOT_SUPPORTED

feature = pytest.mark.feature
requires = pytest.mark.requires


def wrapped(built) -> up.ParamAPI:  # noqa: ANN001
    return up.wrap(built.model, built.variables)


def pair(y_width: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The one tuple input of the deferred_pair model: x (2, 5) and y (2, y_width); y must be (2, 4) to fit."""
    return deferred_input(5), np.ones((2, y_width), np.float32)


def first_forward(pm: up.ParamAPI, ex: ModuleType, x: object) -> None:
    """The model's own first forward where the framework has one that makes shapes known, else pm.materialize."""
    if NATIVE_MATERIALIZE in pm.capabilities:
        pm.materialize(x)
    else:
        ex.native_forward(pm, x)


@feature("deferred: failed materialize")
@requires(DEFERRED)
def test_failed_materialize_restores_the_model_and_keeps_the_record(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred_pair())
    pm.init(up.init.Constant(0.5), pattern=r"dense\.weight")
    with pytest.raises(up.ShapeMismatchError, match="unchanged|nothing was changed"):
        pm.materialize(pair(y_width=7))
    assert not pm.initialized and "dense.weight" in pm.pending()
    assert pm["dense.weight"].shape == (4, None)
    assert not ex.native_initialized(pm, "dense.weight")
    with pytest.raises(up.DeferredInitializationError, match="dense.weight"):
        pm["dense.weight"].numpy()
    first_forward(pm, ex, pair())
    assert pm.initialized and ex.native_initialized(pm, "dense.weight")
    assert (ex.native_value(pm, "dense.weight") == 0.5).all()
    assert ex.native_value(pm, "dense.weight").shape == (4, 5)


def _fails(shape: tuple, dtype: np.dtype, rng: np.random.Generator, name: str) -> np.ndarray:
    raise RuntimeError("boom")


@feature("deferred: failed materialize")
@requires(DEFERRED)
def test_failing_record_puts_the_model_back_until_a_later_init(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred())
    pm.init(up.init.Constant(0.25), pattern=r"0\.weight")
    pm.init(_fails, kind="weight")
    x = deferred_input(20)
    for _ in range(2):
        with pytest.raises(up.InitializerError, match=r"boom.*nothing was written"):
            pm.materialize(x)
        assert not pm.initialized and not ex.native_initialized(pm, "0.weight")
    pm.init(up.init.Constant(0.5), kind="weight")
    assert pm.materialize(x) is pm
    assert (ex.native_value(pm, "0.weight") == 0.5).all()


@feature("deferred: tied records")
@requires(DEFERRED)
def test_record_through_a_tied_alias_runs_once(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred_tied())
    assert pm.tied()[0] == ["2.weight", "4.weight"]
    pm.layer(4).init(up.init.Constant(0.5), kind="weight")
    x = deferred_input(20)
    first_forward(pm, ex, x)
    for name in ("2.weight", "4.weight"):
        assert (ex.native_value(pm, name) == 0.5).all()
    pm["2.weight"].set(np.ones((8, 8), np.float32))
    pm.materialize(x)
    assert (ex.native_value(pm, "4.weight") == 1).all()


@feature("deferred: the later call wins")
@requires(DEFERRED, NATIVE_MATERIALIZE)
def test_frameworks_own_init_after_a_record_wins(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred())
    pm.init(up.init.Constant(3), kind="weight")
    x = deferred_input(20)
    ex.native_reinit(pm, x, 7.0)
    pm.materialize(x)
    for name in ("0.weight", "2.weight"):
        assert (ex.native_value(pm, name) == 7).all()
    pm.init(up.init.Constant(5), pattern=r"0\.weight")
    assert (ex.native_value(pm, "0.weight") == 5).all() and (ex.native_value(pm, "2.weight") == 7).all()


@feature("deferred: materialize() without inputs")
def test_materialize_without_inputs(ex: ModuleType, adapter_cls) -> None:  # noqa: ANN001
    pm = wrapped(ex.eager())
    before = {n: ex.native_value(pm, n) for n in pm.names()}
    assert pm.materialize() is pm
    for n, v in before.items():
        np.testing.assert_array_equal(ex.native_value(pm, n), v)
    if DEFERRED in adapter_cls.capabilities:
        return
    pm = wrapped(ex.deferred())
    pm.init(up.init.Constant(0.5), kind="weight")
    with pytest.raises(up.DeferredInitializationError, match=r"example inputs.*0\.weight"):
        pm.materialize()
    assert not pm.initialized and not ex.native_initialized(pm, "0.weight")
    pm.materialize(deferred_input(20))
    assert (ex.native_value(pm, "0.weight") == 0.5).all()


@feature("deferred: shape or storage")
@requires(DEFERRED)
def test_pending_names_wait_for_their_shape(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred())
    assert set(pm.pending()) >= {"0.weight", "2.weight"}
    assert pm.pending("storage") == [] and pm.pending("any") == pm.pending()
    with pytest.raises(up.DeferredInitializationError, match=r"shape (or memory )?is not known"):
        pm["0.weight"].numpy()


@feature("deferred: shape or storage")
@requires(UNALLOCATED)
def test_known_shape_without_storage(ex: ModuleType) -> None:
    pm = wrapped(ex.unallocated())
    assert not pm.initialized and pm.pending() == []
    assert pm.pending("storage") == pm.pending("any") == pm.names()
    with pytest.raises(up.DeferredInitializationError, match=r"shape \(5, 3\) but its storage is not allocated"):
        pm["0.weight"].numpy()
    with pytest.raises(up.DeferredInitializationError, match=r"storage of 0\.weight.* is not allocated"):
        pm.forward(np.ones((1, 3), np.float32))
    pm.init(up.init.Ones(), kind="weight")
    assert pm.materialize() is pm and pm.initialized
    assert (ex.native_value(pm, "0.weight") == 1).all() and ex.native_value(pm, "2.weight").shape == (2, 5)


@feature("deferred: load")
@requires(DEFERRED, LOAD_DEFERRED)
def test_load_takes_the_shapes_from_the_state(ex: ModuleType, tmp_path) -> None:  # noqa: ANN001
    eager = wrapped(ex.eager()).init(up.init.Uniform(-0.5, 0.5), seed=3)
    eager.save(tmp_path / "eager.safetensors")
    loaded, given = wrapped(ex.deferred()), wrapped(ex.deferred())
    loaded.load(tmp_path / "eager.safetensors")
    given.load_state_dict(eager.state_dict())
    for pm in (loaded, given):
        assert pm.initialized and pm.names() == eager.names()
        for name in eager.names():
            assert np.array_equal(ex.native_value(pm, name), ex.native_value(eager, name)), name


@feature("deferred: inputs")
@requires(DEFERRED)
def test_one_tuple_input(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred_pair())
    assert pm.materialize(pair()) is pm
    assert pm["dense.weight"].shape == (4, 5)
    np.testing.assert_allclose(pm.forward(pair()), ex.native_forward(pm, pair()), rtol=1e-6)
    grads = pm.grads(pair())
    assert grads["dense.weight"].shape == (4, 5)


@feature("deferred: inputs")
def test_float64_inputs_take_the_parameter_dtype(ex: ModuleType, adapter_cls) -> None:  # noqa: ANN001
    pm = wrapped(ex.eager())
    x = deferred_input(20)
    np.testing.assert_allclose(pm.forward(x.astype(np.float64)), ex.native_forward(pm, x), rtol=1e-6)
    if DEFERRED in adapter_cls.capabilities:
        return
    pm = wrapped(ex.deferred())
    pm.materialize(x.astype(np.float64))
    assert pm["0.weight"].shape == (256, 20) and pm["0.weight"].dtype == "float32"
    assert ex.native_value(pm, "0.weight").dtype == np.float32


@feature("deferred: inputs")
@requires(DEFERRED)
def test_forward_on_a_deferred_model_is_refused(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred())
    pending = pm.pending()
    with pytest.raises(up.DeferredInitializationError, match=r"0\.weight.*materialize"):
        pm.forward(deferred_input(20))
    assert not pm.initialized and pm.pending() == pending and not ex.native_initialized(pm, "0.weight")


@feature("deferred: inputs")
def test_a_batch_of_zero(ex: ModuleType, adapter_cls) -> None:  # noqa: ANN001
    empty = np.zeros((0, 20), np.float32)
    reason = adapter_cls.capabilities.get(EMPTY_BATCH)
    pm = wrapped(ex.eager())
    if reason:
        with pytest.raises(up.ShapeMismatchError, match="batch of 0"):
            pm.forward(empty)
        pm = wrapped(ex.deferred())
        with pytest.raises(up.ShapeMismatchError, match="batch of 0"):
            pm.materialize(empty)
        assert not pm.initialized and not ex.native_initialized(pm, "0.weight")
        pytest.skip(f"{NOT_SUPPORTED}: {reason} (refused clearly, the model unchanged)")
    assert pm.forward(empty).shape == (0, 10)
    pm = wrapped(ex.deferred())
    pm.materialize(empty)
    assert pm["0.weight"].shape == (256, 20) and ex.native_initialized(pm, "0.weight")


@feature("deferred: structure not known")
@requires(UNKNOWN_STRUCTURE)
def test_selection_recorded_until_the_structure_is_known(ex: ModuleType) -> None:
    pm = wrapped(ex.deferred_compact())
    assert not pm.initialized and pm.names() == []
    with pytest.raises(up.DeferredInitializationError, match="materialize"):
        pm.num_params()
    pm.init(up.init.Constant(0.5), kind="weight")
    pm.init(up.init.Constant(0.25), pattern=r"nope\..*")
    x = deferred_input(4)
    with pytest.raises(up.SelectionError, match=r"nope.*dropped, nothing was written"):
        pm.materialize(x)
    assert not pm.initialized and pm.names() == []
    assert pm.materialize(x) is pm and pm.initialized
    weights = list(pm.collect(kind="weight"))
    assert sorted(pm[n].shape for n in weights) == [(2, 8), (8, 4)]
    for name in weights:
        assert (ex.native_value(pm, name) == 0.5).all()
