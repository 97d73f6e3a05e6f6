"""The Keras adapter beyond the documents' examples: functional and subclassed models, conv and norm layouts,
tying by variable, deferred builds from the user's own call, and materialize leaving a failed model as it was.

Runs on whatever KERAS_BACKEND selects; values are checked against Keras's own variables or plain algebra.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

import unified_params as up  # noqa: E402


def value(variable: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable))


def wrap(model: Any) -> up.ParamAPI:
    return up.wrap(model, backend="keras")


class Net(keras.Model):
    """Conv, batch norm, a list and a dict of layers: keys are attribute names, `attr.i`, `attr.key`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = layers.Conv2D(3, (3, 2))
        self.bn = layers.BatchNormalization()
        self.blocks = [layers.Dense(5), layers.Dense(6)]
        self.heads = {"a": layers.Dense(2)}

    def call(self, x: Any, training: bool = False) -> Any:
        y = self.bn(self.conv(x), training=training)
        y = keras.ops.mean(y, axis=(1, 2))
        for block in self.blocks:
            y = block(y)
        return self.heads["a"](y)


def image() -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(2, 6, 5, 2)).astype("float32")


def test_import_does_not_import_keras() -> None:
    code = "import sys, unified_params.backends.keras; assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_functional_model_keys_are_positions_without_input_layer() -> None:
    inputs = keras.Input((4,))
    outputs = layers.Dense(1)(layers.ReLU()(layers.Dense(8)(inputs)))
    model = keras.Model(inputs, outputs)
    pm = wrap(model)
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    np.testing.assert_array_equal(pm["2.weight"].numpy(), value(dense[1].kernel).T)
    assert pm["0.bias"].native is dense[0].bias


def test_subclassed_model_names_shapes_and_layouts() -> None:
    net = Net()
    pm = wrap(net)
    assert pm.names() == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                          "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                          "heads.a.weight", "heads.a.bias"]
    assert pm["conv.weight"].shape == (3, None, 3, 2) and pm["blocks.1.weight"].shape == (6, None)
    assert set(pm.pending()) == set(pm.names())
    pm.materialize(image())
    assert pm.initialized
    np.testing.assert_array_equal(pm["conv.weight"].numpy(), value(net.conv.kernel).transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(pm["blocks.1.weight"].numpy(), value(net.blocks[1].kernel).T)
    assert pm["bn.running_var"].native is net.bn.moving_variance
    assert [p.kind for p in pm.layer("bn").values()] == ["weight", "bias", "running_mean", "running_var"]
    assert [p.trainable for p in pm.layer("bn").values()] == [True, True, False, False]
    assert pm.layer("heads", "a")["bias"].native is net.heads["a"].bias
    assert sorted(p.native_name for p in pm.values()) == sorted(v.path for v in net.weights)


def test_write_in_canonical_layout_reaches_the_keras_variable() -> None:
    net = Net()
    pm = wrap(net).materialize(image())
    w = np.arange(3 * 2 * 3 * 2, dtype="float32").reshape(3, 2, 3, 2)
    pm["conv.weight"].set(w)
    np.testing.assert_array_equal(value(net.conv.kernel), w.transpose(2, 3, 1, 0))
    pm.init(up.init.Constant(0.5), pattern=r"bn\.running_mean")
    assert (value(net.bn.moving_mean) == 0.5).all()


def test_grads_of_one_dense_layer_match_algebra() -> None:
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    pm = wrap(model)
    x = np.random.default_rng(1).uniform(size=(2, 4)).astype("float32")
    assert pm["0.weight"].grad is None
    grads = pm.grads(x)
    np.testing.assert_allclose(grads["0.weight"], np.tile(x.sum(0), (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(grads["0.bias"], np.full(3, 2.0), rtol=1e-6)
    kernel, bias = value(model.layers[0].kernel), value(model.layers[0].bias)
    grads = pm.grads(x, loss=lambda out: keras.ops.sum(out * out))
    expected = 2 * x.T @ (x @ kernel + bias)
    np.testing.assert_allclose(grads["0.weight"], expected.T, rtol=1e-5)
    np.testing.assert_allclose(pm["0.weight"].grad, expected.T, rtol=1e-5)


def test_grads_skip_moving_statistics_and_run_in_inference_mode() -> None:
    net = Net()
    pm = wrap(net).materialize(image())
    mean = value(net.bn.moving_mean).copy()
    grads = pm.grads(image())
    assert "bn.running_mean" not in grads and set(grads) == {n for n, p in pm.items() if p.trainable}
    assert pm["bn.running_mean"].grad is None
    np.testing.assert_array_equal(value(net.bn.moving_mean), mean)


class TiedDense(layers.Layer):
    """Uses another Dense's kernel, transposed: the variable is assigned in build, as tied embeddings are."""

    def __init__(self, source: layers.Dense, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._source = source

    def build(self, input_shape: tuple) -> None:
        self.kernel = self._source.kernel

    def call(self, x: Any) -> Any:
        return keras.ops.matmul(x, keras.ops.transpose(self.kernel))


class AutoEncoder(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = layers.Dense(3)
        self.decoder = TiedDense(self.encoder)

    def call(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))


def test_variable_assigned_to_another_layer_is_tied() -> None:
    model = AutoEncoder()
    model(np.ones((2, 5), "float32"))
    pm = wrap(model)
    assert ["encoder.weight", "decoder.weight"] in [g[:2] for g in pm.tied()]
    assert pm["decoder.weight"].native is model.encoder.kernel
    pm["encoder.weight"].set(np.zeros((3, 5), "float32"))
    assert (pm["decoder.weight"].numpy() == 0).all() and (value(model.decoder.kernel) == 0).all()
    assert pm.num_params() == 5 * 3 + 3


def test_shared_unbuilt_layer_is_tied_before_and_after_build() -> None:
    shared = layers.Dense(8)
    model = keras.Sequential([layers.Dense(8), layers.ReLU(), shared, layers.ReLU(), shared])
    pm = wrap(model)
    assert pm.tied() == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    pm.materialize(np.ones((1, 4), "float32"))
    assert pm.tied() == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    assert pm["4.weight"].native is shared.kernel


class Pair(keras.Model):
    """A subclassed model without build(): Keras builds its layers during the call."""

    def __init__(self) -> None:
        super().__init__()
        self.a = layers.Dense(7)
        self.b = layers.Dense(2)

    def call(self, x: Any) -> Any:
        return self.b(keras.ops.relu(self.a(x)))


@pytest.mark.parametrize("make, widths", [
    (Pair, (3, 7, 2)),
    (lambda: keras.Sequential([Pair(), layers.Dense(3)]), (3, 7, 2, 3)),
], ids=["subclassed", "nested"])
def test_users_own_first_call_runs_recorded_initializers_before_using_values(make: Any, widths: tuple) -> None:
    model = make()
    pm = wrap(model)
    pm.init(up.init.Constant(0.1), kind="weight")
    pm.init(up.init.Zeros(), kind="bias")
    x = np.random.default_rng(2).uniform(size=(2, 3)).astype("float32")
    out = value(model(x))
    assert pm.initialized
    for variable in model.weights:
        assert (value(variable) == (0.1 if variable.name == "kernel" else 0.0)).all()
    h = np.maximum(x @ np.full(widths[:2], 0.1), 0) @ np.full(widths[1:3], 0.1)
    if len(widths) == 4:
        h = h @ np.full(widths[2:], 0.1)
    np.testing.assert_allclose(out, h, rtol=1e-5)


def test_materialize_failure_half_way_leaves_the_model_unbuilt() -> None:
    last = layers.Dense(1)
    last.build((None, 8))
    model = keras.Sequential([layers.Dense(16), layers.ReLU(), last])
    pm = wrap(model)
    pm.init(up.init.Ones(), kind="weight")
    with pytest.raises(up.ShapeMismatchError, match=r"layer '2'.*8.*16") as err:
        pm.materialize(np.ones((2, 5), "float32"))
    assert isinstance(err.value, ValueError)
    assert not model.layers[0].built and not model.built
    assert [v.path for v in model.weights] == [v.path for v in last.weights]
    assert pm.pending() == ["0.weight", "0.bias"]


def test_forward_is_inference_mode() -> None:
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8), layers.Dropout(0.5), layers.Dense(1)])
    pm = wrap(model)
    x = np.ones((3, 4), "float32")
    np.testing.assert_array_equal(pm.forward(x), value(model(x, training=False)))
    np.testing.assert_array_equal(pm.forward(x), pm.forward(x))


@pytest.mark.parametrize("run", ["predict", "fit"])
def test_predict_and_fit_build_with_the_recorded_initializers(run: str) -> None:
    model = keras.Sequential([layers.Dense(5), layers.ReLU(), layers.Dense(2)])
    pm = wrap(model)
    pm.init(up.init.Constant(0.25), kind="weight")
    x = np.ones((4, 3), "float32")
    if run == "predict":
        model.predict(x, verbose=0)
    else:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
        model.fit(x, np.zeros((4, 2), "float32"), epochs=1, batch_size=4, verbose=0)
    assert pm.initialized
    for layer in (model.layers[0], model.layers[2]):
        assert (value(layer.kernel) == 0.25).all()


def test_materialize_mismatch_names_the_layer_in_nested_and_functional_models() -> None:
    from unified_params.backends.keras_examples import nested

    rgnet = nested().model
    with pytest.raises(up.ShapeMismatchError, match=r"layer '0\.block 0\.0'.*size 4.*size 5"):
        wrap(rgnet).materialize(np.ones((2, 5), "float32"))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(1)(inputs))
    with pytest.raises(up.ShapeMismatchError, match=r"input.*size 4.*size 5"):
        wrap(model).materialize(np.ones((2, 5), "float32"))


def test_grads_and_forward_store_nothing_on_the_model() -> None:
    model = keras.Sequential([keras.Input((4,)), layers.Dense(6), layers.BatchNormalization(), layers.Dropout(0.5),
                              layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    layers_ = model._flatten_layers(include_self=True, recursive=True)
    attrs = [(layer, set(vars(layer))) for layer in layers_]
    before = [value(v) for v in model.variables]
    pm = wrap(model)
    pm.grads(x)
    pm.forward(x)
    assert [set(vars(layer)) for layer, _ in attrs] == [keys for _, keys in attrs]
    for v, old in zip(model.variables, before):
        np.testing.assert_array_equal(value(v), old, err_msg=v.path)
    if keras.backend.backend() == "torch":
        assert all(v.value.grad is None for v in model.variables)


class Aliased(keras.Model):
    """One Dense reused under two attributes (`self.b = self.a`), a list alias, and another layer between them."""

    def __init__(self) -> None:
        super().__init__()
        self.a = layers.Dense(3)
        self.c = layers.Dense(3)
        self.b = self.a
        self.blocks = [self.c, layers.Dense(3)]

    def call(self, x: Any) -> Any:
        return self.blocks[1](self.b(self.c(self.a(x))))


def test_layer_reused_under_two_attributes_is_a_tied_alias_as_in_torch() -> None:
    torch = pytest.importorskip("torch")

    class TorchAliased(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(3, 3)
            self.c = torch.nn.Linear(3, 3)
            self.b = self.a
            self.blocks = torch.nn.ModuleList([self.c, torch.nn.Linear(3, 3)])

    model = Aliased()
    model(np.ones((1, 3), np.float32))
    pm, reference = wrap(model), up.wrap(TorchAliased())
    assert pm.names()[:6] == reference.names()[:6] == ["a.weight", "a.bias", "c.weight", "c.bias", "b.weight", "b.bias"]
    assert sorted(pm.names()) == sorted(reference.names())
    assert sorted(pm.tied()) == sorted(reference.tied()) and ["a.weight", "b.weight"] in pm.tied()
    up.transfer(reference, pm)
    np.testing.assert_array_equal(value(model.b.kernel).T, reference["b.weight"].numpy())
    pm["b.bias"].set(np.full(3, 7, np.float32))
    np.testing.assert_array_equal(value(model.a.bias), np.full(3, 7, np.float32))


def _half(shape, dtype, rng, name):  # noqa: ANN001, ANN202
    return np.full(shape, 0.5)


@pytest.mark.parametrize("materialized", [False, True])
def test_wrapped_model_deep_copies_pickles_clones_and_saves(materialized: bool, tmp_path) -> None:  # noqa: ANN001
    import copy
    import pickle

    model = keras.Sequential([layers.Dense(8), layers.Dense(2)])
    wrap(model).init(_half, kind="weight")
    x = np.ones((3, 5), np.float32)
    if materialized:
        model(x)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), keras.models.clone_model(model)):
        assert other is not model and tuple(other(x).shape) == (3, 2)
    model(x)
    assert (value(model.layers[0].kernel) == 0.5).all() and (value(model.layers[1].kernel) == 0.5).all()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(value(loaded.layers[0].kernel), value(model.layers[0].kernel))


def test_provenance_is_claimed_on_jax_and_torch_backends_only() -> None:
    """Keras on JAX makes a new array per assign, on torch copy_ bumps _version; TensorFlow has no change token."""
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    pm = up.wrap(model).init(up.init.Normal(std=0.1), kind="weight", seed=3)
    claimed = {n: o for n, o in pm.provenance().items() if o}
    if keras.backend.backend() == "tensorflow":
        assert claimed == {}
        return
    assert claimed == {"0.weight": {"initializer": "Normal(mean=0.0, std=0.1)", "seed": 3}}
    model.layers[0].kernel.assign(np.zeros((4, 3), np.float32))
    assert not any(pm.provenance().values())


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's resource variables")
def test_tensorflow_writes_keep_earlier_reads_and_leave_reads_uncopied() -> None:
    """init and set hand the variable a new tensor (no in-place scatter): a read taken before keeps its values, and
    the variable stays out of copy-on-read mode (two later reads share one buffer, so a forward pass copies nothing)."""
    import tensorflow as tf

    model = keras.Sequential([keras.Input((40,)), layers.Dense(30)])
    pm = wrap(model)
    kernel = model.layers[0].kernel.value
    before = np.asarray(tf.convert_to_tensor(kernel))
    kept = before.copy()
    pm.init(up.init.Normal(std=1.0), seed=3)
    new = np.arange(1200, dtype=np.float32).reshape(30, 40)
    pm["0.weight"].set(new)
    np.testing.assert_array_equal(before, kept)
    np.testing.assert_array_equal(value(model.layers[0].kernel), new.T)
    first, second = np.asarray(tf.convert_to_tensor(kernel)), np.asarray(tf.convert_to_tensor(kernel))
    assert first.ctypes.data == second.ctypes.data
