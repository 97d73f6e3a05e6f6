"""The documents' Flax snippets (seed 003: parameter management, seed 004: deferred initialization) through up.wrap.

Each test runs the snippet as the document writes it (with `jax.random.PRNGKey(0)` for d2l's
`get_key()`), prints what the document prints, and checks the unified view against Flax's own
variables. Where today's Flax prints something else than the document (a plain dict instead of a
FrozenDict, `ArrayImpl` now living in `jaxlib._jax`), the test says so.
"""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nn = pytest.importorskip("flax.linen")

import jax.numpy as jnp  # noqa: E402

import unified_params as up  # noqa: E402


def key() -> jax.Array:
    return jax.random.PRNGKey(0)


@pytest.fixture
def X() -> jax.Array:
    return jax.random.uniform(key(), (2, 4))


def doc_mlp() -> nn.Module:
    return nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(1)])


def test_003_mlp_output_shape(X: jax.Array, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    params = net.init(key(), X)
    print(net.apply(params, X).shape)
    assert capsys.readouterr().out == "(2, 1)\n"
    pm = up.wrap(net, params)
    assert pm.backend == "flax"
    np.testing.assert_allclose(pm.forward(X), np.asarray(net.apply(params, X)), rtol=1e-6)
    assert pm.variables["params"]["layers_0"]["kernel"] is params["params"]["layers_0"]["kernel"]


def test_003_parameters_of_one_layer(X: jax.Array, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    params = net.init(key(), X)
    layer2 = params["params"]["layers_2"]
    print({k: v.shape for k, v in layer2.items()})
    assert capsys.readouterr().out == "{'kernel': (8, 1), 'bias': (1,)}\n"
    np.testing.assert_array_equal(layer2["bias"], [0.0])
    layer = up.wrap(net, params).layer(2)
    assert layer.names() == ["weight", "bias"]
    assert [p.shape for p in layer.values()] == [(1, 8), (1,)]
    np.testing.assert_array_equal(layer["weight"].numpy(), np.asarray(layer2["kernel"]).T)
    np.testing.assert_array_equal(layer["bias"].numpy(), np.asarray(layer2["bias"]))
    assert [p.native_name for p in layer.values()] == ["params/layers_2/kernel", "params/layers_2/bias"]


def test_003_targeted_parameter(X: jax.Array, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    params = net.init(key(), X)
    bias = params["params"]["layers_2"]["bias"]
    # The document printed jaxlib.xla_extension.ArrayImpl; today's jaxlib calls the module jaxlib._jax.
    print(type(bias).__name__, bias)
    assert capsys.readouterr().out == "ArrayImpl [0.]\n"
    p = up.wrap(net, params)["2.bias"]
    assert p.native is bias and isinstance(p.native, jax.Array)
    np.testing.assert_array_equal(p.numpy(), [0.0])
    assert p.grad is None


def test_003_all_parameters_at_once(X: jax.Array, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    params = net.init(key(), X)
    # The document printed a FrozenDict; Flax's init has returned a plain dict since 0.8.
    print(jax.tree_util.tree_map(lambda x: x.shape, params))
    assert capsys.readouterr().out == (
        "{'params': {'layers_0': {'bias': (8,), 'kernel': (4, 8)}, 'layers_2': {'bias': (1,), 'kernel': (8, 1)}}}\n")
    pm = up.wrap(net, params)
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    native = {"/".join(p.key for p in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert sorted(p.native_name for p in pm.values()) == sorted(native)
    for p in pm.values():
        expected = np.asarray(native[p.native_name])
        np.testing.assert_array_equal(p.numpy(), expected.T if p.kind == "weight" else expected)
    assert pm.num_params() == sum(v.size for v in native.values())


def test_003_shared_layer(X: jax.Array, capsys: pytest.CaptureFixture) -> None:
    shared = nn.Dense(8)
    net = nn.Sequential([nn.Dense(8), nn.relu,
                         shared, nn.relu,
                         shared, nn.relu,
                         nn.Dense(1)])
    params = net.init(jax.random.PRNGKey(0), X)
    print(len(params["params"]) == 3)
    assert capsys.readouterr().out == "True\n"
    pm = up.wrap(net, params)
    assert pm.tied() == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    assert pm["2.weight"].native is pm["4.weight"].native is params["params"]["layers_2"]["kernel"]
    assert pm.num_params() == sum(v.size for v in jax.tree_util.tree_leaves(params))

    pm["2.weight"].update(lambda w: (w.__setitem__((0, 0), 100), w)[1])
    new = pm.variables["params"]["layers_2"]["kernel"]
    assert new[0, 0] == 100 and pm["4.weight"].numpy()[0, 0] == 100
    assert params["params"]["layers_2"]["kernel"][0, 0] != 100, "the variables the user passed stay as they were"

    def loss(p: dict) -> jax.Array:
        return net.apply({"params": p}, X).sum()

    native = jax.grad(loss)(pm.variables["params"])
    grads = pm.grads(X)
    np.testing.assert_allclose(grads["2.weight"], np.asarray(native["layers_2"]["kernel"]).T, rtol=1e-5)
    assert "4.weight" not in grads
    np.testing.assert_array_equal(pm["4.weight"].grad, pm["2.weight"].grad)


def doc_deferred() -> nn.Module:
    return nn.Sequential([nn.Dense(256), nn.relu, nn.Dense(10)])


def test_004_deferred_until_data(capsys: pytest.CaptureFixture) -> None:
    net = doc_deferred()
    pm = up.wrap(net, None)
    # "Flax models are stateless hence there is no parameters attribute": the wrapper holds none yet.
    assert pm.variables is None and not pm.initialized
    assert [(n, p.shape) for n, p in pm.items()] == [
        ("0.weight", (256, None)), ("0.bias", (256,)), ("2.weight", (10, None)), ("2.bias", (10,))]
    with pytest.raises(up.DeferredInitializationError, match="materialize"):
        pm["0.weight"].numpy()

    def my_init(shape: tuple, dtype: np.dtype, rng: np.random.Generator, name: str) -> np.ndarray:
        print("Init", name, shape)
        return rng.uniform(-10, 10, shape)

    pm.init(my_init, kind="weight", seed=0)
    assert capsys.readouterr().out == ""

    pm.materialize(jnp.zeros((2, 20)))
    assert capsys.readouterr().out == "Init 0.weight (256, 20)\nInit 2.weight (10, 256)\n"
    print(jax.tree_util.tree_map(lambda x: x.shape, pm.variables))
    expected = jax.tree_util.tree_map(lambda x: x.shape, net.init(key(), jnp.zeros((2, 20))))
    printed = capsys.readouterr().out
    assert printed == ("{'params': {'layers_0': {'bias': (256,), 'kernel': (20, 256)}, "
                       "'layers_2': {'bias': (10,), 'kernel': (256, 10)}}}\n")
    assert printed == f"{expected}\n"
    assert pm.initialized and pm.pending() == []
    out = net.apply(pm.variables, jnp.ones((2, 20)))
    assert out.shape == (2, 10)
    np.testing.assert_allclose(pm.forward(np.ones((2, 20), np.float32)), np.asarray(out), rtol=1e-6)
    kernel = np.asarray(pm.variables["params"]["layers_0"]["kernel"])
    np.testing.assert_array_equal(pm["0.weight"].numpy(), kernel.T)
    assert np.abs(kernel).max() > 1, "the recorded initializer, not Flax's default, made the values"


def test_004_input_size_given_means_nothing_deferred() -> None:
    net = doc_deferred()
    params = net.init(key(), jnp.zeros((1, 20)))
    pm = up.wrap(net, params)
    assert pm.initialized
    pm.init(up.init.Constant(1.0), kind="weight")
    assert (np.asarray(pm.variables["params"]["layers_2"]["kernel"]) == 1).all()
    assert (np.asarray(params["params"]["layers_2"]["kernel"]) != 1).any()


def test_004_exercise_mismatched_dimensions() -> None:
    net = doc_mlp()
    params = net.init(key(), jnp.zeros((2, 4)))
    pm = up.wrap(net, params)
    with pytest.raises(up.ShapeMismatchError) as err:
        pm.materialize(jnp.zeros((2, 5)))
    assert "'0'" in str(err.value) and "4" in str(err.value) and "5" in str(err.value)
    assert pm.variables["params"]["layers_0"]["kernel"] is params["params"]["layers_0"]["kernel"]
    with pytest.raises(Exception, match="shape"):
        net.apply(params, jnp.zeros((2, 5)))


def test_004_exercise_other_input_size_after_materializing() -> None:
    net = doc_deferred()
    pm = up.wrap(net, None).materialize(jnp.zeros((2, 20)))
    before = pm.variables
    with pytest.raises(up.ShapeMismatchError) as err:
        pm.materialize(jnp.zeros((2, 30)))
    assert "'0'" in str(err.value) and "20" in str(err.value) and "30" in str(err.value)
    assert pm.variables is before and pm["0.weight"].shape == (256, 20)
