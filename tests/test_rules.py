"""Rules and layouts: exact transforms, lookup by class, layer types per framework, no guessed layout without a rule."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from unified_params.layout import (
    CHANNELS_LAST,
    IDENTITY,
    Layout,
    Permute,
    Reshape,
    Reverse,
    canonical_copy,
    copy_into,
    fill_native,
    native_copy,
)
from unified_params.rules import Leaf, Rule, RuleTable

DEPTHWISE = Layout((Permute((2, 3, 0, 1)), Reshape((-1, 4, 3, 3), (-1, 1, 3, 3)), Reverse((2,))))
"""A (kh, kw, in, mult) kernel as (in * mult, 1, kh, kw) with the kernel's rows reversed: every step at once."""


def depthwise_expected(native: np.ndarray) -> np.ndarray:
    c = native.shape[2]
    return native.transpose(2, 3, 0, 1).reshape(c * 4, 1, 3, 3)[:, :, ::-1, :]


@pytest.mark.parametrize("layout, native_shape, expected", [
    (CHANNELS_LAST, (3, 3, 2, 5), lambda a: a.transpose(3, 2, 0, 1)),
    (CHANNELS_LAST, (1, 1, 40, 24), lambda a: a.transpose(3, 2, 0, 1)),
    (CHANNELS_LAST, (1, 3, 40, 24), lambda a: a.transpose(3, 2, 0, 1)),
    (CHANNELS_LAST, (7, 2, 5), lambda a: a.transpose(2, 1, 0)),
    (DEPTHWISE, (3, 3, 2, 4), depthwise_expected),
])
def test_layout_is_exact_and_invertible(layout: Layout, native_shape: tuple, expected: Any) -> None:
    native = np.random.default_rng(0).standard_normal(native_shape).astype(np.float32)
    canonical = canonical_copy(native, layout)
    np.testing.assert_array_equal(canonical, expected(native))
    assert canonical.flags.c_contiguous and layout.canonical_shape(native_shape) == canonical.shape
    assert layout.native_shape(canonical.shape) == native_shape
    np.testing.assert_array_equal(native_copy(canonical, layout), native)


def test_shapes_with_unknown_dimensions() -> None:
    assert CHANNELS_LAST.canonical_shape((3, 3, None, 5)) == (5, None, 3, 3)
    assert CHANNELS_LAST.native_shape((5, None, 3, 3)) == (3, 3, None, 5)
    assert DEPTHWISE.canonical_shape((3, 3, None, 4)) == (None, 1, 3, 3)


def test_fill_writes_native_memory_through_a_view_or_one_scratch_array() -> None:
    source = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)
    for layout in (CHANNELS_LAST, DEPTHWISE, Layout((Reshape((-1,), (6, -1)),))):
        native = np.zeros_like(source)
        wanted = canonical_copy(source, layout)
        fill_native(native, layout, lambda view, wanted=wanted: np.copyto(view, wanted))
        np.testing.assert_array_equal(native, source)
    strided = np.zeros((4, 6), np.float32)[:, :3]
    flat = Layout((Reshape((4, 3), (-1,)),))
    assert flat.writable_view(strided) is None
    fill_native(strided, flat, lambda view: np.copyto(view, np.arange(12)))
    np.testing.assert_array_equal(strided, np.arange(12).reshape(4, 3))


@pytest.mark.parametrize("split", [False, True])
def test_copies_split_over_threads_equal_numpys_own(split: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """copy_into (tiles or panels for transposes, pieces on several threads above SPLIT_ABOVE) gives numpy's copyto
    for transposed, Fortran-ordered, reversed, broadcast and cast sources."""
    import unified_params.layout as layout

    monkeypatch.setattr(layout, "SPLIT_ABOVE", 64 if split else 1 << 40)
    monkeypatch.setattr(layout, "workers", lambda: 3)
    a = np.random.default_rng(0).standard_normal((70, 45)).astype(np.float32)
    wide = np.random.default_rng(1).standard_normal((40, 700)).astype(np.float32)
    b = np.random.default_rng(2).standard_normal((5, 6, 9, 4)).astype(np.float32)
    for shape, order, src in [((45, 70), "C", a.T), ((45, 70), "F", a.T), ((70, 45), "F", a), ((70, 45), "C", a[::-1]),
                              ((70, 45), "C", np.float64(2.5)), ((45, 70), "C", a.T.astype(np.float64)),
                              ((700, 40), "C", wide.T), ((40, 700), "F", wide), ((45, 70), "C", a[::-1].T),
                              ((4, 9, 6, 5), "C", b.transpose(3, 2, 1, 0)), ((5, 6, 9, 4), "F", b)]:
        out, wanted = np.empty(shape, np.float32, order=order), np.empty(shape, np.float32)
        copy_into(out, src)
        np.copyto(wanted, src, casting="unsafe")
        np.testing.assert_array_equal(out, wanted)


def test_lookup_follows_the_mro_and_none_stops_it() -> None:
    class Base:
        pass

    class Child(Base):
        pass

    class Opaque(Base):
        pass

    class Sized(Base):
        def __init__(self, n: int) -> None:
            self.n = n

    base = Rule("linear", (Leaf("w", "weight", IDENTITY),), lambda layer: {"w": (None, 3)})
    sized = lambda layer: Rule("conv", (Leaf("w", "weight", CHANNELS_LAST),)) if layer.n > 1 else None  # noqa: E731
    table = RuleTable(lambda: {Base: base, Opaque: None, Sized: sized})
    assert table.for_layer(Child()) is base and table.for_layer(Opaque()) is None
    assert table.for_layer(Sized(2)).layer_type == "conv" and table.for_layer(Sized(1)) is None
    assert table.by_autoname("Base_3") is base
    assert table.by_autoname("Sized_0") is None and table.by_autoname("x") is None
    leaf = base.leaf("other")
    assert (leaf.name, leaf.layout) == ("other", None)
    assert base.before_data(Child()) == [(base.leaves[0], (None, 3))]


ZOO_TYPES = {"conv": "conv", "bn": "batch_norm", "embed": "embedding", "norm": "layer_norm", "head": "linear"}


@pytest.mark.unified_params
def test_zoo_layer_types_on_every_backend(adapter_cls: Any, ex: Any) -> None:
    built = ex.zoo()
    root = adapter_cls(built.model, built.variables).tree()
    assert root.layer_type is None
    types = {c.key: c.layer_type for c in root.children if c.slots}
    assert types == ZOO_TYPES
    assert all(s.layout is not None for c in root.children for s in c.slots)


def test_keras_layer_without_rule_keeps_native_names_and_layout() -> None:
    keras = pytest.importorskip("keras")
    import unified_params as up

    class Custom(keras.layers.Layer):
        def build(self, shape: tuple) -> None:
            self.kernel = self.add_weight(shape=(3, 3, 2, 4), name="kernel")

        def call(self, x: Any) -> Any:
            return x

    layer = Custom()
    layer.build((1, 2))
    pm = up.wrap(layer)
    assert pm.names() == ["kernel"] and pm["kernel"].shape == tuple(layer.kernel.shape)
    np.testing.assert_array_equal(pm["kernel"].numpy(), keras.ops.convert_to_numpy(layer.kernel))


def test_linen_layer_without_rule_keeps_native_names_and_layout() -> None:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    import unified_params as up

    class Custom(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return x * self.param("kernel", nn.initializers.normal(), (3, 2, 4)).sum()

    variables = Custom().init(jax.random.PRNGKey(0), np.ones((1,), np.float32))
    pm = up.wrap(Custom(), variables)
    assert pm.names() == ["kernel"] and pm["kernel"].shape == (3, 2, 4)
    np.testing.assert_array_equal(pm["kernel"].numpy(), np.asarray(variables["params"]["kernel"]))


def test_nnx_layer_without_rule_keeps_native_names_and_layout() -> None:
    jax = pytest.importorskip("jax")
    nnx = pytest.importorskip("flax.nnx")
    import unified_params as up

    class Custom(nnx.Module):
        def __init__(self) -> None:
            self.kernel = nnx.Param(jax.random.normal(jax.random.PRNGKey(0), (3, 2, 4)))

    model = Custom()
    pm = up.wrap(model)
    assert pm.names() == ["kernel"] and pm["kernel"].shape == (3, 2, 4)
    np.testing.assert_array_equal(pm["kernel"].numpy(), np.asarray(model.kernel[...]))


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_linen_conv_transpose_carries_torch_weights_either_way(transpose_kernel: bool) -> None:
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    import unified_params as up

    x = np.random.default_rng(1).standard_normal((2, 5, 6, 3)).astype(np.float32)
    source = torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 4, (3, 2), stride=2))
    layer = nn.ConvTranspose(4, (3, 2), strides=(2, 2), padding="VALID", transpose_kernel=transpose_kernel)
    module = nn.Sequential([layer])
    pm = up.wrap(module, module.init(jax.random.PRNGKey(0), x))
    up.transfer(up.wrap(source), pm)
    with torch.no_grad():
        expected = source(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(module.apply(pm.variables, x)), expected, rtol=1e-5, atol=1e-5)
