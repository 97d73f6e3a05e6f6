"""The documents' examples built with Keras 3 layers, and oracles that read them with Keras's own API.

nested(): Keras has no named Sequential, so block2 is a subclassed keras.Model whose four block1
children are attributes named ``block 0`` .. ``block 3`` (torch's add_module names); the names
come out as ``0.block 1.0.bias`` as on torch, and ``rgnet.layers[0].layers[1].layers[0]`` is
``rgnet[0][1][0]``.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers

from unified_params.conformance.examples import Built

PARAM_TYPE = keras.Variable
GRAD_BEFORE_BACKWARD = "no gradient on the variable (tf.GradientTape / jax.grad / torch.autograd compute them)"

LEAF_ATTRIBUTES = {
    "weight": ("kernel", "gamma", "embeddings"),
    "bias": ("bias", "beta"),
    "running_mean": ("moving_mean",),
    "running_var": ("moving_variance",),
}


def mlp() -> Built:
    return Built(keras.Sequential([keras.Input((4,)), layers.Dense(8), layers.ReLU(), layers.Dense(1)]))


def _block1() -> keras.Sequential:
    return keras.Sequential([layers.Dense(8), layers.ReLU(), layers.Dense(4), layers.ReLU()])


class Block2(keras.Model):
    """Four block1 children held in attributes named 'block 0' .. 'block 3', applied in order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for i in range(4):
            setattr(self, f"block {i}", _block1())

    def _blocks(self) -> list[keras.Layer]:
        return [getattr(self, f"block {i}") for i in range(4)]

    def build(self, input_shape: tuple) -> None:
        for block in self._blocks():
            block.build(input_shape)
            input_shape = block.compute_output_shape(input_shape)

    def call(self, x: Any) -> Any:
        for block in self._blocks():
            x = block(x)
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], 4)


def nested() -> Built:
    return Built(keras.Sequential([keras.Input((4,)), Block2(), layers.Dense(1)]))


def tied() -> Built:
    shared = layers.Dense(8)
    return Built(keras.Sequential([keras.Input((4,)), layers.Dense(8), layers.ReLU(), shared, layers.ReLU(),
                                   shared, layers.ReLU(), layers.Dense(1)]))


def deferred() -> Built:
    return Built(keras.Sequential([layers.Dense(256), layers.ReLU(), layers.Dense(10)]))


def eager() -> Built:
    return Built(keras.Sequential([keras.Input((20,)), layers.Dense(256), layers.ReLU(), layers.Dense(10)]))


class Pair(keras.Model):
    """A model taking one tuple (x, y): dense(x) + y, with an unbuilt Dense."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = layers.Dense(4)

    def call(self, pair: tuple[Any, Any]) -> Any:
        x, y = pair
        return self.dense(x) + y


def deferred_pair() -> Built:
    return Built(Pair())


def deferred_tied() -> Built:
    shared = layers.Dense(8)
    return Built(keras.Sequential([layers.Dense(8), layers.ReLU(), shared, layers.ReLU(), shared, layers.ReLU(),
                                   layers.Dense(1)]))


def native_reinit(pm: Any, x: np.ndarray, value: float) -> None:
    """Keras creates variables when a layer is built: the first call, then kernel.assign on every Dense."""
    native_forward(pm, x)
    for layer in pm.model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.Dense):
            layer.kernel.assign(np.full(tuple(layer.kernel.shape), value, "float32"))


def native_initialized(pm: Any, name: str) -> bool:
    *path, _ = name.split(".")
    layer = pm.model
    for key in path:
        layer = _child(layer, key)
    return bool(layer.built)


def _child(layer: keras.Layer, key: str) -> keras.Layer:
    if isinstance(layer, keras.Sequential):
        return layer.layers[int(key)]
    return getattr(layer, key)


def native_object(pm: Any, name: str) -> keras.Variable:
    *path, leaf = name.split(".")
    layer = pm.model
    for key in path:
        layer = _child(layer, key)
    for attribute in LEAF_ATTRIBUTES.get(leaf, (leaf,)):
        variable = getattr(layer, attribute, None)
        if isinstance(variable, keras.Variable):
            return variable
    raise KeyError(f"{type(layer).__name__} {layer.name!r} has no variable for {leaf!r}")


def _canonical(variable: keras.Variable) -> np.ndarray:
    value = keras.ops.convert_to_numpy(variable)
    if variable.name == "kernel" and value.ndim >= 2:
        value = (value.T if value.ndim == 2
                 else np.transpose(value, (value.ndim - 1, value.ndim - 2, *range(value.ndim - 2))))
    return np.array(value, copy=True)


def native_value(pm: Any, name: str) -> np.ndarray:
    return _canonical(native_object(pm, name))


def native_names(pm: Any) -> list[str]:
    return [v.path for v in pm.model.weights]


def native_forward(pm: Any, *xs: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """model(*xs) as the user calls it (each an array, or a tuple of arrays passed as one input)."""
    return keras.ops.convert_to_numpy(pm.model(*xs))


def _named_variables(layer: keras.Layer, prefix: str = "") -> list[tuple[str, keras.Variable]]:
    """(canonical name, variable) for the examples' structures: Sequential positions, Block2 attributes."""
    if isinstance(layer, keras.Sequential):
        children = [(str(i), c) for i, c in enumerate(layer.layers)]
    elif isinstance(layer, Block2):
        children = [(f"block {i}", getattr(layer, f"block {i}")) for i in range(4)]
    else:
        found = ((leaf, native_leaf(layer, leaf)) for leaf in LEAF_ATTRIBUTES)
        return [(prefix + leaf, v) for leaf, v in found if v is not None]
    return [item for key, child in children for item in _named_variables(child, f"{prefix}{key}.")]


def native_leaf(layer: keras.Layer, leaf: str) -> keras.Variable | None:
    """The layer's variable for a canonical leaf, or None."""
    for attribute in LEAF_ATTRIBUTES[leaf]:
        variable = getattr(layer, attribute, None) if layer.built else None
        if isinstance(variable, keras.Variable):
            return variable
    return None


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    model = pm.model
    trainable = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            total = keras.ops.sum(model(x))
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(total, trainable)]
    elif backend == "jax":
        import jax

        fixed = [v.value for v in model.non_trainable_variables]
        grads = jax.grad(lambda values: keras.ops.sum(model.stateless_call(values, fixed, x)[0]))(
            [v.value for v in trainable])
    else:
        import torch

        total = keras.ops.sum(model(x))
        grads = torch.autograd.grad(total, [v.value for v in trainable])
    by_variable = {id(v): g for v, g in zip(trainable, grads)}
    out: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for name, variable in _named_variables(model):
        if id(variable) in seen or id(variable) not in by_variable:
            continue
        seen.add(id(variable))
        g = np.array(keras.ops.convert_to_numpy(by_variable[id(variable)]), copy=True)
        out[name] = g.T if g.ndim == 2 else g
    return out


class Zoo(keras.Model):
    """Conv, batch norm, pooling, embedding, layer norm and dense: the cross-framework model (see docs/adapters.md)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(4, 3, padding="valid")
        self.bn = layers.BatchNormalization(epsilon=1e-5)
        self.embed = layers.Embedding(10, 4)
        self.norm = layers.LayerNormalization(epsilon=1e-5)
        self.head = layers.Dense(2)

    def call(self, image: Any, tokens: Any, training: bool = False) -> Any:
        h = keras.ops.relu(self.bn(self.conv(image), training=training))
        h = keras.ops.mean(keras.ops.average_pool(h, 2, strides=2, padding="valid"), axis=(1, 2))
        return self.head(self.norm(h + keras.ops.mean(self.embed(tokens), axis=1)))


def zoo() -> Built:
    model = Zoo()
    image, tokens = zoo_input()
    model(image, tokens)
    return Built(model)


def zoo_input() -> tuple[np.ndarray, np.ndarray]:
    """(image NHWC float32 (2, 8, 8, 3), tokens int32 (2, 5)): channels-last, as Keras expects."""
    from unified_params.conformance.examples import zoo_image, zoo_tokens

    return zoo_image(), zoo_tokens()


def replace_layer(model: keras.Sequential) -> None:
    model.pop()
    model.add(layers.Dense(3))


def append_layer(model: keras.Sequential) -> None:
    model.add(layers.Dense(2))


def delete_layer(model: keras.Sequential) -> None:
    model.pop()


def set_trainable(model: keras.Sequential, position: int, flag: bool) -> None:
    model.layers[position].trainable = flag


UNSUPPORTED_MUTATIONS = {
    "reassign_weight": "a built Keras layer refuses new state ('You cannot add new elements of state ... to a layer "
                       "that is already built'); its variables change in place (assign) instead",
    "cast": "Keras variables keep the dtype they were created with (assign casts to it); a new dtype means a new "
            "model (dtype policy at construction)",
}
