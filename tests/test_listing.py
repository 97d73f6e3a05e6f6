"""The first listing (names() before any index) on Keras and linen, and the lookups that skip per-call checks.

The listing walks the model once without building the index; it must give the index's names, hand over to the index
where it is not sure, and see every change the user makes after it (the Keras stamp, linen's variables tree).
"""
from __future__ import annotations

import copy
import importlib
from typing import Any

import numpy as np
import pytest

import unified_params as up
from unified_params.conformance.plugin import require_backend
from unified_params.conformance.test_names import STRUCTURES


def listed(model: Any, variables: Any = None) -> list[str] | None:
    """The adapter's listing of a freshly wrapped model (None: it leaves the names to the index)."""
    found = up.wrap(model, variables)._model.adapter.listing()
    return None if found is None else found[0]


def indexed(model: Any, variables: Any = None) -> list[str]:
    """The names the full index gives (items() builds it)."""
    return [n for n, _ in up.wrap(model, variables).items()]


LISTED = {"keras": list(STRUCTURES), "flax": ["sequential_in_sequential", "named_layers"]}
"""Conformance structures the listing handles itself (the others: linen modules with setup() go to the index)."""


@pytest.mark.parametrize("backend", sorted(LISTED))
@pytest.mark.parametrize("structure", [*STRUCTURES, "mlp"])
def test_listing_gives_the_index_names_or_leaves_them_to_it(backend: str, structure: str) -> None:
    adapter = require_backend(backend)
    module = importlib.import_module(adapter.examples if structure == "mlp" else adapter.structures)
    built = getattr(module, structure)()
    names = listed(built.model, built.variables)
    if structure == "mlp" or structure in LISTED[backend]:
        assert names is not None
    assert names is None or names == indexed(built.model, built.variables)


def test_keras_listing_sees_a_variable_added_after_it() -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.ReLU(), keras.layers.Dense(1)])
    pm = up.wrap(model)
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    layer = model.layers[2]
    layer._tracker.unlock()  # what Keras's own quantize() does to add variables to a built layer
    layer.add_weight(shape=(3,), name="gain")
    layer._tracker.lock()
    assert pm.names() == indexed(model) == ["0.weight", "0.bias", "2.weight", "2.bias", "2.gain"]
    assert [v.path for v in model.weights][-1] == pm["2.gain"].native_name


def test_keras_listing_hands_over_unbuilt_layers_and_follows_the_build() -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(2)])
    assert listed(model) is None
    pm = up.wrap(model)
    assert pm.names() == ["0.weight", "0.bias", "1.weight", "1.bias"] and pm["0.weight"].shape == (8, None)
    model.build((None, 5))
    assert listed(model) == pm.names() == indexed(model) and pm["0.weight"].shape == (8, 5)


def test_keras_variable_held_by_two_layers_goes_to_the_index() -> None:
    keras = pytest.importorskip("keras")

    class Borrowing(keras.layers.Layer):
        """Holds the kernel of another layer as its own variable."""

        def __init__(self, dense: Any) -> None:
            super().__init__()
            self.shared = dense.kernel

        def call(self, x: Any) -> Any:
            return keras.ops.matmul(x, self.shared)

    dense = keras.layers.Dense(4)
    dense.build((None, 4))
    model = keras.Sequential([keras.Input((4,)), dense, Borrowing(dense)])
    assert sum(v is dense.kernel for v in model.layers[1].weights) == 1
    assert listed(model) is None
    assert up.wrap(model).names() == indexed(model)


def test_keras_collect_by_pattern_is_the_selection_of_every_selector() -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    pm = up.wrap(model)
    picked = pm.collect(r".*weight")
    assert list(picked) == ["0.weight", "1.weight"] == list(pm.collect(r".*weight", trainable=True))
    assert [v.native for v in picked.values()] == [layer.kernel for layer in model.layers]
    assert pm.collect(r".*weight") == picked and pm["0.weight"] is picked["0.weight"]
    with pytest.raises(up.SelectionError, match="expect=3"):
        pm.collect(r".*weight", expect=3)


def _linen() -> tuple[Any, Any, Any]:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")
    net = nn.Sequential([nn.Dense(3), nn.relu, nn.Dense(2)])
    return jax, net, net.init(jax.random.PRNGKey(0), np.ones((1, 4), np.float32))


def test_linen_wrap_holds_its_own_tree() -> None:
    jax, net, variables = _linen()
    kernel = variables["params"]["layers_0"]["kernel"]
    pm = up.wrap(net, variables)
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    variables["params"]["layers_0"]["kernel"] = kernel + 1
    del variables["params"]["layers_2"]
    assert pm.names() == indexed(net, pm.variables) and pm.variables is not variables
    np.testing.assert_array_equal(pm["0.weight"].numpy(), np.asarray(kernel).T)


def test_linen_views_follow_a_tree_handed_back() -> None:
    jax, net, variables = _linen()
    pm = up.wrap(net, variables)
    view = pm["0.weight"]
    assert pm["0.weight"] is view
    pm.init(up.init.Zeros(), pattern=r"0\.weight")
    assert pm["0.weight"] is view and not pm["0.weight"].numpy().any()
    trained = jax.tree_util.tree_map(lambda a: a + 2, pm.variables)
    pm.variables = trained
    assert pm.variables["params"]["layers_0"]["kernel"] is trained["params"]["layers_0"]["kernel"]
    np.testing.assert_array_equal(pm["0.weight"].numpy(), np.asarray(trained["params"]["layers_0"]["kernel"]).T)
    np.testing.assert_array_equal(view.numpy(), np.full((3, 4), 2, np.float32))
    with pytest.raises(up.ParameterNotFoundError):
        pm["1.weight"]


def test_linen_own_copy_is_unfreeze() -> None:
    _linen()
    from flax.core.frozen_dict import FrozenDict, freeze, unfreeze

    from unified_params.backends.flax import _own_copy

    tree = {"params": freeze({"a": {"kernel": np.ones(2)}}), "batch_stats": {"b": {"mean": np.zeros(1)}}}
    copy = _own_copy(tree)
    assert copy == unfreeze(tree) and type(copy["params"]) is dict and type(copy["params"]["a"]) is dict
    stats = tree["batch_stats"]
    assert copy["batch_stats"] is not stats and copy["batch_stats"]["b"]["mean"] is stats["b"]["mean"]
    assert type(_own_copy(FrozenDict(tree))) is dict


def test_linen_copy_is_told_its_own_changes() -> None:
    jax, net, variables = _linen()
    pm = up.wrap(net, variables)
    view = pm["0.weight"]
    twin = copy.deepcopy(pm)
    assert twin._model.adapter.on_change.__self__ is twin._model.views is not pm._model.views
    twin.variables = jax.tree_util.tree_map(lambda a: a * 0, twin.variables)
    assert not twin._model.views and not twin["0.weight"].numpy().any()
    assert pm["0.weight"] is view and view.numpy().any()


def test_linen_compact_attention_known_from_its_variables_goes_to_the_index() -> None:
    jax, _, _ = _linen()
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return nn.Dense(4)(nn.MultiHeadDotProductAttention(num_heads=2)(x))

    net = Net()
    variables = net.init(jax.random.PRNGKey(0), np.ones((1, 3, 4), np.float32))
    assert listed(net, variables) is None
    assert up.wrap(net, variables).names() == indexed(net, variables)
    assert "MultiHeadDotProductAttention_0.in_proj_weight" in indexed(net, variables)
