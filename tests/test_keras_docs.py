"""The documents' Keras snippets (seed 003: parameter management, seed 004: deferred initialization) through up.wrap.

Each test runs the snippet as the document writes it (tf.keras spelled keras, tf.nn.relu spelled
"relu", so that it runs on every Keras backend), prints what the document prints, and checks the
unified view against Keras's own objects. Where Keras 3 prints something else than the document's
tf.keras 2, the test says so.
"""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import unified_params as up  # noqa: E402


def value(variable: keras.Variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable))


@pytest.fixture
def X() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(2, 4)).astype("float32")


def doc_mlp() -> keras.Sequential:
    return keras.models.Sequential([
        keras.layers.Flatten(),
        keras.layers.Dense(4, activation="relu"),
        keras.layers.Dense(1),
    ])


def test_003_mlp_output_shape(X: np.ndarray, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    print(tuple(net(X).shape))
    assert capsys.readouterr().out == "(2, 1)\n"
    pm = up.wrap(net)
    assert pm.backend == "keras"
    np.testing.assert_allclose(pm.forward(X), value(net(X)), rtol=1e-6)


def test_003_parameters_of_one_layer(X: np.ndarray) -> None:
    net = doc_mlp()
    net(X)
    kernel, bias = net.layers[2].weights
    assert (kernel.shape, bias.shape) == ((4, 1), (1,))
    layer = up.wrap(net).layer(2)
    assert layer.names() == ["weight", "bias"]
    assert [p.shape for p in layer.values()] == [(1, 4), (1,)]
    np.testing.assert_array_equal(layer["weight"].numpy(), value(kernel).T)
    np.testing.assert_array_equal(layer["bias"].numpy(), value(bias))
    assert layer["weight"].native_name == kernel.path


def test_003_targeted_parameter(X: np.ndarray, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    net(X)
    bias = net.layers[2].weights[1]
    print(type(bias).__name__, value(bias))
    assert capsys.readouterr().out == "Variable [0.]\n"
    p = up.wrap(net)["2.bias"]
    assert p.native is bias and isinstance(p.native, keras.Variable)
    np.testing.assert_array_equal(p.numpy(), [0.0])
    assert p.grad is None


def test_003_all_parameters_at_once(X: np.ndarray, capsys: pytest.CaptureFixture) -> None:
    net = doc_mlp()
    net(X)
    print([w.shape for w in net.get_weights()])
    assert capsys.readouterr().out == "[(4, 4), (4,), (4, 1), (1,)]\n"
    pm = up.wrap(net)
    assert pm.names() == ["1.weight", "1.bias", "2.weight", "2.bias"]
    native = net.get_weights()
    for (name, array), expected in zip(pm.state_dict().items(), native):
        np.testing.assert_array_equal(array, expected.T if name.endswith("weight") else expected)
    assert sorted(p.native_name for p in pm.values()) == sorted(v.path for v in net.weights)


def test_003_shared_layer(X: np.ndarray, capsys: pytest.CaptureFixture) -> None:
    shared = keras.layers.Dense(4, activation="relu")
    net = keras.models.Sequential([
        keras.layers.Flatten(),
        shared,
        shared,
        keras.layers.Dense(1),
    ])
    net(X)
    # tf.keras 2 listed the reused layer once and printed True; Keras 3 keeps both positions.
    print(len(net.layers) == 3)
    assert capsys.readouterr().out == "False\n"
    assert net.layers[1] is net.layers[2]
    pm = up.wrap(net)
    assert pm.tied() == [["1.weight", "2.weight"], ["1.bias", "2.bias"]]
    assert pm["1.weight"].native is pm["2.weight"].native is shared.kernel
    assert pm.num_params() == sum(int(np.prod(v.shape)) for v in net.weights)
    pm["1.weight"].update(lambda w: (w.__setitem__((0, 0), 100), w)[1])
    assert value(shared.kernel)[0, 0] == 100 and pm["2.weight"].numpy()[0, 0] == 100


def doc_deferred() -> keras.Sequential:
    return keras.models.Sequential([
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10),
    ])


def test_004_deferred_until_data(capsys: pytest.CaptureFixture) -> None:
    net = doc_deferred()
    pm = up.wrap(net)
    print([net.layers[i].get_weights() for i in range(len(net.layers))])
    assert capsys.readouterr().out == "[[], []]\n"
    assert not pm.initialized
    assert [p.shape for p in pm.values()] == [(256, None), (256,), (10, None), (10,)]
    with pytest.raises(up.DeferredInitializationError, match="materialize"):
        pm["0.weight"].numpy()

    def my_init(shape: tuple, dtype: np.dtype, rng: np.random.Generator, name: str) -> np.ndarray:
        print("Init", name, shape)
        return rng.uniform(-10, 10, shape) * (rng.uniform(size=shape) > 0.5)

    pm.init(my_init, kind="weight", seed=0)
    assert capsys.readouterr().out == ""
    X = np.random.default_rng(1).uniform(size=(2, 20)).astype("float32")
    net(X)
    assert capsys.readouterr().out.splitlines() == ["Init 0.weight (256, 20)", "Init 1.weight (10, 256)"]
    print([w.shape for w in net.get_weights()])
    assert capsys.readouterr().out == "[(20, 256), (256,), (256, 10), (10,)]\n"
    assert pm.initialized and [p.shape for p in pm.values()] == [(256, 20), (256,), (10, 256), (10,)]
    np.testing.assert_array_equal(pm["0.weight"].numpy(), value(net.layers[0].kernel).T)
    np.testing.assert_array_equal(pm["1.weight"].numpy(), value(net.layers[1].kernel).T)


def test_004_exercise_input_size_given_initializes_at_once() -> None:
    net = keras.models.Sequential([keras.Input((20,)), keras.layers.Dense(256, activation="relu"),
                                   keras.layers.Dense(10)])
    assert net.built and len(net.get_weights()) == 4
    pm = up.wrap(net)
    assert pm.initialized and pm.pending() == []
    np.testing.assert_array_equal(pm["1.weight"].numpy(), value(net.layers[1].kernel).T)


def test_004_exercise_mismatched_and_changed_sizes() -> None:
    net = doc_deferred()
    pm = up.wrap(net).materialize(np.zeros((2, 20), "float32"))
    before = [w.copy() for w in net.get_weights()]
    with pytest.raises(up.ShapeMismatchError, match=r"'0'.*20.*30"):
        pm.materialize(np.zeros((2, 30), "float32"))
    with pytest.raises(ValueError, match="incompatible"):
        net(np.zeros((2, 30), "float32"))
    for w, b in zip(net.get_weights(), before):
        np.testing.assert_array_equal(w, b)
