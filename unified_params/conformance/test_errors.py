"""Bad input on every backend: the named error, a message that says what to do, the model unchanged."""
from __future__ import annotations

import re
from types import ModuleType

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import DEFERRED, LOAD_DEFERRED
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
    if DEFERRED in adapter_cls.capabilities:
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


@feature("errors")
def test_unknown_layer_key_and_relative_name_suggest_closest(ex: ModuleType) -> None:
    pm = wrapped(ex.nested())
    with pytest.raises(up.ParameterNotFoundError, match="block 1") as err:
        pm.layer(0, "blok 1")
    assert isinstance(err.value, KeyError)
    with pytest.raises(up.ParameterNotFoundError, match="closest: 'weight'"):
        pm.layer(1)["wieght"]
    with pytest.raises(up.ParameterNotFoundError, match="closest: .*0.block 1.0.bias"):
        pm["0.block 1.0.bais"]


@feature("errors")
def test_pattern_that_is_not_a_string_is_a_selection_error(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    with pytest.raises(up.SelectionError, match="3"):
        pm.collect(pattern=3)  # type: ignore[arg-type]
    with pytest.raises(up.SelectionError, match="matches no parameter"):
        pm.init(up.init.Zeros(), pattern=r"0\..*", kind="running_mean")


def _overflow(shape: tuple, dtype: np.dtype, rng: np.random.Generator, name: str) -> np.ndarray:
    return np.full(shape, 1e39 if name == "2.weight" else 1.0)


@pytest.mark.parametrize("initializer, kind, match", [
    (_overflow, "weight", "overflow float32"),
    (up.init.Normal(std=1e38), None, "'0.weight'.*reach 5.7e\\+38, beyond the largest float32"),
    (up.init.Normal(mean=3.3e38, std=1e37), None, "reach .* beyond the largest float32"),
    (up.init.Uniform(-3e38, 3e38), None, "'0.weight'.*bounds .*reach 6e\\+38"),
    (up.init.XavierUniform(gain=2.2e38), "weight", "'2.weight'.*beyond the largest float32"),
    (up.init.XavierNormal(gain=2e38), "weight", "beyond the largest float32"),
    (up.init.TruncatedNormal(std=1e38), None, "draws .* beyond the largest float32"),
    (up.init.Orthogonal(gain=1e39), "weight", "'0.weight'.*beyond the largest float32"),
    (up.init.XavierUniform(), None, "'0.bias'.*2 dimensions"),
    (up.init.Orthogonal(), "bias", "2 dimensions; '0.bias'"),
    (5, None, "not an initializer"),
])
@feature("errors")
def test_initializer_that_cannot_give_finite_values_changes_nothing(ex: ModuleType, initializer, kind: str | None, match: str) -> None:  # noqa: ANN001
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    with pytest.raises(up.InitializerError, match=match):
        pm.init(initializer, kind=kind, seed=0)
    assert_unchanged(ex, pm, before)


@pytest.mark.parametrize("make, match", [
    (lambda: up.init.TruncatedNormal(a=5.0, b=4.0), "a must be below b"),
    (lambda: up.init.TruncatedNormal(0.0, 1.0, a=20.0, b=21.0), "sizeable part"),
    (lambda: up.init.TruncatedNormal(std=0.0), r"^TruncatedNormal\(std=0.0\): std must be above 0 .*Constant\(0.0\)"),
    (lambda: up.init.Constant(float("nan")), "value=nan is not finite"),
    (lambda: up.init.KaimingNormal(nonlinearity="swish"), "unknown nonlinearity 'swish'"),
    (lambda: up.init.KaimingUniform(mode="fan_avg"), "unknown mode 'fan_avg'"),
    (lambda: up.init.KaimingUniform(mode=["fan_in"]), r"unknown mode \['fan_in'\]"),
    (lambda: up.init.Normal(std=float("nan")), "std=nan is not finite"),
    (lambda: up.init.Normal(std=np.float32("nan")), r"std=np.float32\(nan\) is not finite"),
    (lambda: up.init.Normal(mean=np.array(np.inf)), "mean=.*inf.* is not finite"),
    (lambda: up.init.Uniform(0.0, float("inf")), "high=inf is not finite"),
    (lambda: up.init.Uniform(1.0, 0.0), "low is above high"),
    (lambda: up.init.Normal(std=-0.1), "std=-0.1 is negative"),
    (lambda: up.init.TruncatedNormal(std=-1.0), "std=-1.0 is negative"),
    (lambda: up.init.XavierUniform(gain=-1.0), "gain=-1.0 is negative"),
    (lambda: up.init.XavierNormal(gain=float("inf")), "gain=inf is not finite"),
    (lambda: up.init.Orthogonal(gain=np.float64("nan")), "gain=.*nan.* is not finite"),
    (lambda: up.init.KaimingNormal(a=float("nan")), "a=nan is not finite"),
    (lambda: up.init.Normal(std="0.1"), "std='0.1' is not a number"),
    (lambda: up.init.Uniform(low=None), "low=None is not a number"),
    (lambda: up.init.Constant([1.0, 2.0]), r"value=\[1.0, 2.0\] is not a number"),
    (lambda: up.init.Constant(True), "value=True is not a number"),
    (lambda: up.init.Constant(1j), "value=1j is not a number"),
    (lambda: up.init.TruncatedNormal(a="x"), "a='x' is not a number"),
])
@feature("errors")
def test_builtin_initializer_arguments_are_checked(make, match: str) -> None:  # noqa: ANN001
    with pytest.raises(up.InitializerError, match=match):
        make()


@feature("errors")
def test_normal_with_std_zero_writes_the_mean(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    pm.init(up.init.Normal(mean=0.5, std=0.0), kind="weight", seed=0)
    for name in ("0.weight", "2.weight"):
        assert (ex.native_value(pm, name) == np.float32(0.5)).all()


@feature("errors")
def test_set_and_update_refuse_misfits(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    w = pm["0.weight"]
    with pytest.raises(up.ShapeMismatchError, match=r"0.weight.*\(8, 4\)"):
        w.update(lambda v: v.T)
    with pytest.raises(up.DtypeMismatchError, match="overflow float32"):
        w.set(np.full((8, 4), 1e39))
    with pytest.raises(up.DtypeMismatchError, match="unsafe"):
        w.set(np.full((8, 4), "x"))
    with pytest.raises(ZeroDivisionError):
        w.update(lambda v: v / 0 if v.dtype.kind == "i" else 1 // 0)
    assert_unchanged(ex, pm, before)


@feature("errors")
@pytest.mark.requires(DEFERRED)
def test_deferred_model_refuses_state_checkpoints_and_grads(ex: ModuleType, tmp_path) -> None:  # noqa: ANN001
    pm = wrapped(ex.deferred())
    eager = wrapped(ex.eager())
    if LOAD_DEFERRED in pm.capabilities:
        with pytest.raises(up.DeferredInitializationError, match="materialize"):
            pm.load_state_dict(eager.state_dict())
    with pytest.raises(up.DeferredInitializationError, match="materialize"):
        pm.save(tmp_path / "deferred.safetensors")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(up.DeferredInitializationError, match="materialize"):
        pm.grads(np.zeros((2, 20), np.float32))
    with pytest.raises(up.InitializerError, match="2 dimensions"):
        pm.init(up.init.XavierUniform())
    assert not pm.initialized


def _fails_late(shape: tuple, dtype: np.dtype, rng: np.random.Generator, name: str) -> np.ndarray:
    if name == "2.weight":
        raise RuntimeError("boom")
    return np.full(shape, 0.5)


@feature("errors")
@pytest.mark.requires(DEFERRED)
def test_recorded_initializer_that_fails_applies_nothing(ex: ModuleType) -> None:
    from unified_params.conformance.examples import deferred_input

    pm = wrapped(ex.deferred())
    pm.init(up.init.Constant(0.25), pattern=r"0\.weight")
    pm.init(_fails_late, kind="weight")
    with pytest.raises(up.InitializerError, match="2.weight.*boom"):
        pm.materialize(deferred_input(20))
    if pm["0.weight"].initialized:
        value = ex.native_value(pm, "0.weight")
        assert not (value == 0.25).all() and not (value == 0.5).all()


@feature("errors")
def test_transfer_between_misfit_models_changes_nothing(ex: ModuleType) -> None:
    dst = wrapped(ex.mlp())
    before = native_state(ex, dst)
    with pytest.raises(up.ParameterNotFoundError, match="missing: .*unexpected: "):
        up.transfer(wrapped(ex.nested()), dst)
    with pytest.raises(up.ShapeMismatchError, match=r"0.weight: checkpoint \(256, 20\) vs model \(8, 4\)"):
        up.transfer(wrapped(ex.eager()), dst)
    assert_unchanged(ex, dst, before)


@feature("errors")
def test_wrap_with_the_wrong_backend(ex: ModuleType, backend: str) -> None:
    with pytest.raises(up.UnsupportedModelError, match=f"backend {backend!r} does not recognise builtins.object"):
        up.wrap(object(), backend=backend)
    with pytest.raises(up.BackendNotInstalledError, match="no backend named 'nosuch'; registered: .*torch") as err:
        up.wrap(ex.mlp().model, backend="nosuch")
    assert isinstance(err.value, ImportError)


class _MissingFrameworkModel:
    """An object whose type lives in a framework that is not installed."""


_MissingFrameworkModel.__module__ = "up_missing_framework.nn"


def _missing_adapter() -> type:
    from unified_params.adapter import Adapter
    from unified_params.lazy import lazy

    framework = lazy("up_missing_framework")

    class MissingAdapter(Adapter):
        name = "missing"
        roots = ("up_missing_framework",)
        distribution = "up-missing-framework"
        extra = "missing"

        @classmethod
        def recognizes(cls, model: object) -> bool:
            return isinstance(model, framework.nn.Module)

    return MissingAdapter


@feature("errors")
def test_framework_not_installed_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from unified_params import registry

    fake = _missing_adapter()
    real_class, real_names = registry.adapter_class, registry.names
    monkeypatch.setattr(registry, "adapter_class", lambda name: fake if name == "missing" else real_class(name))
    monkeypatch.setattr(registry, "names", lambda: [*real_names(), "missing"])
    for backend in ("missing", None):
        with pytest.raises(up.BackendNotInstalledError, match=r"pip install 'unified-params\[missing\]'") as err:
            up.wrap(_MissingFrameworkModel(), backend=backend)
        assert isinstance(err.value, ImportError)
    info = {b.name: b for b in up.backends()}["missing"]
    assert not info.importable and "unified-params[missing]" in info.reason


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
@feature("state")
def test_load_state_dict_casts_only_when_asked(ex: ModuleType, dtype: str) -> None:
    from unified_params.dtypes import resolve

    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    state = {k: (np.arange(v.size).reshape(v.shape) / 8 - 1).astype(resolve(dtype)) for k, v in pm.state_dict().items()}
    with pytest.raises(up.DtypeMismatchError, match=f"checkpoint {dtype} vs model float32.*cast=True"):
        pm.load_state_dict(state)
    assert_unchanged(ex, pm, before)
    pm.load_state_dict(state, cast=True)
    for name, value in state.items():
        got = ex.native_value(pm, name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, value.astype(np.float32), err_msg=name)


@feature("state")
def test_cast_that_overflows_is_refused(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    state = {k: np.full(v.shape, 1e39) for k, v in pm.state_dict().items()}
    with pytest.raises(up.DtypeMismatchError, match="overflow float32"):
        pm.load_state_dict(state, cast=True)
    assert_unchanged(ex, pm, before)


@feature("errors")
@pytest.mark.requires(DEFERRED)
def test_capability_the_backend_lacks_is_refused(ex: ModuleType, adapter_cls) -> None:  # noqa: ANN001
    from unified_params.api import ParamAPI
    from unified_params.conformance.examples import deferred_input
    from unified_params.model_state import ModelState

    lacking = type("Lacking", (adapter_cls,), {"capabilities": {**adapter_cls.capabilities, DEFERRED: "test: no shape inference"}})
    built = ex.deferred()
    pm = ParamAPI(ModelState(lacking(built.model, built.variables)))
    with pytest.raises(NotImplementedError) as err:
        pm.materialize(deferred_input(20))
    assert isinstance(err.value, up.UnsupportedError) and "no shape inference" in str(err.value)
    assert not pm.initialized and pm["0.weight"].shape == (256, None)


@feature("errors")
def test_builtin_constant_that_overflows_changes_nothing(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    with pytest.raises(up.InitializerError, match="overflows float32"):
        pm.init(up.init.Constant(1e39))
    assert_unchanged(ex, pm, before)


@pytest.mark.parametrize("seed", [-1, 1.5, float("nan"), True, "0", np.float64(2.0), [0]], ids=repr)
@feature("errors")
def test_bad_seed_is_refused_before_anything_is_written(ex: ModuleType, seed: object) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    for initializer in (up.init.Normal(std=1.0), lambda shape, dtype, rng, name: rng.uniform(size=shape)):
        match = f"^seed {re.escape(repr(seed))} is not valid: pass a non-negative integer"
        with pytest.raises(up.InitializerError, match=match):
            pm.init(initializer, seed=seed)  # type: ignore[arg-type]
    assert_unchanged(ex, pm, before)


@feature("errors")
@pytest.mark.requires("deferred")
def test_bad_seed_on_a_deferred_model_is_refused_at_init_not_at_materialize(ex: ModuleType) -> None:
    from unified_params.conformance.examples import deferred_input

    pm = wrapped(ex.deferred())
    with pytest.raises(up.InitializerError, match="seed -1 is not valid"):
        pm.init(up.init.Normal(std=1.0), seed=-1)
    pm.materialize(deferred_input(20))
    assert pm.initialized


@pytest.mark.parametrize("selector", [
    {"kind": 3}, {"kind": b"weight"}, {"kind": ("weight", 3)}, {"kind": ()},
    {"pattern": b".*weight"}, {"pattern": re.compile(b".*")}, {"pattern": ["0.weight"]},
], ids=repr)
@feature("errors")
def test_selection_argument_of_the_wrong_type_is_a_selection_error(ex: ModuleType, selector: dict) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    key = next(iter(selector))
    match = f"^{key} {re.escape(repr(selector[key]))} is not a"
    with pytest.raises(up.SelectionError, match=match):
        pm.collect(**selector)
    with pytest.raises(up.SelectionError, match=match):
        pm.init(up.init.Zeros(), **selector)
    assert_unchanged(ex, pm, before)
    assert list(pm.collect(pattern=re.compile(r".*weight"), kind=["weight"])) == ["0.weight", "2.weight"]


@feature("errors")
def test_a_tied_parameter_is_selected_by_any_of_its_names(ex: ModuleType) -> None:
    pm, reference = wrapped(ex.tied()), wrapped(ex.tied())
    assert list(pm.collect(r"4\.weight")) == ["2.weight"]
    assert list(pm.collect(r"[46]\..*")) == ["2.weight", "2.bias", "6.weight", "6.bias"]
    assert list(pm.collect(r".*weight")) == ["0.weight", "2.weight", "6.weight"]
    before = native_state(ex, pm)
    pm.init(up.init.Normal(std=1.0), pattern=r"4\.weight", seed=3)
    reference.init(up.init.Normal(std=1.0), pattern=r"2\.weight", seed=3)
    for name in pm.names():
        expected = ex.native_value(reference, "2.weight") if name in ("2.weight", "4.weight") else before[name]
        np.testing.assert_array_equal(ex.native_value(pm, name), expected, err_msg=name)


@feature("errors")
def test_interrupt_during_init_is_held_until_every_write_is_done(ex: ModuleType,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from unified_params import rng

    pm, reference = wrapped(ex.mlp()), wrapped(ex.mlp())
    reference.init(up.init.Normal(std=1.0), seed=4)
    real, calls = rng.fill_chunks, []

    def fill_then_interrupt(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(rng, "fill_chunks", fill_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        pm.init(up.init.Normal(std=1.0), seed=4)
    assert len(calls) == len(pm.names())
    for name in pm.names():
        np.testing.assert_array_equal(ex.native_value(pm, name), ex.native_value(reference, name), err_msg=name)


@feature("errors")
def test_error_messages_quote_the_names_they_mention(ex: ModuleType) -> None:
    pm = wrapped(ex.mlp())
    with pytest.raises(up.ParameterNotFoundError, match="^no parameter named '0.wieght' in the model; closest: '0.weight"):
        pm["0.wieght"]
    with pytest.raises(up.SelectionError, match="^pattern '9.*' matches no parameter in the model; names are: '0.weight', "):
        pm.init(up.init.Zeros(), pattern="9.*")
    with pytest.raises(up.InitializerError, match="of '0.bias' with shape"):
        pm.init(up.init.XavierNormal())
