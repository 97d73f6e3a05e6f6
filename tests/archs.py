"""Random MLP architectures built with each framework's own layers, and what their canonical view must be.

A `Spec` is a Sequential of Dense layers with an activation layer between consecutive ones; a
layer may reuse an earlier square layer object (tied). The expected canonical names, shapes and
tied groups are computed from the spec alone, so tests never compare the API with itself.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified_params.conformance.examples import Built

ACTIVATIONS = ("relu", "tanh", "sigmoid", "none")


class NotBuildable(Exception):
    """The framework cannot build this spec (for example a dtype it does not support)."""


@dataclass(frozen=True)
class Layer:
    """A Dense layer to `out` units, or (shares=j) the same layer object as spec layer j."""

    out: int
    shares: int | None = None


@dataclass(frozen=True)
class Spec:
    """A Sequential MLP: input width, Dense layers, the activation between them, deferred input size, dtype."""

    n_in: int
    layers: tuple[Layer, ...]
    activation: str = "relu"
    deferred: bool = False
    dtype: str = "float32"

    def items(self) -> list[tuple[str, int, int | None]]:
        """(kind, position, dense index) of every Sequential item: 'dense' or 'act'."""
        out, pos = [], 0
        for i in range(len(self.layers)):
            out.append(("dense", pos, i))
            pos += 1
            if self.activation != "none" and i < len(self.layers) - 1:
                out.append(("act", pos, None))
                pos += 1
        return out

    def positions(self) -> list[int]:
        """The Sequential position of each Dense layer."""
        return [pos for kind, pos, _ in self.items() if kind == "dense"]

    def owner(self, i: int) -> int:
        """The index of the layer object that dense layer i uses."""
        shares = self.layers[i].shares
        return i if shares is None else self.owner(shares)

    def in_width(self, i: int) -> int:
        return self.n_in if i == 0 else self.layers[i - 1].out

    def input(self, batch: int = 2, seed: int = 0) -> np.ndarray:
        """An input batch of shape (batch, n_in), float32."""
        return np.random.default_rng(seed).uniform(-1, 1, size=(batch, self.n_in)).astype(np.float32)


def expected_names(spec: Spec) -> list[str]:
    """Every canonical name, in canonical order (each name of a tied group)."""
    return [f"{pos}.{leaf}" for pos in spec.positions() for leaf in ("weight", "bias")]


def expected_shapes(spec: Spec) -> dict[str, tuple[int, ...]]:
    """Canonical shapes: weight (out, in), bias (out,)."""
    out = {}
    for i, pos in enumerate(spec.positions()):
        out[f"{pos}.weight"] = (spec.layers[i].out, spec.in_width(i))
        out[f"{pos}.bias"] = (spec.layers[i].out,)
    return out


def expected_ties(spec: Spec) -> list[list[str]]:
    """Tied groups: for each layer object used more than once, its weights' names, then its biases'."""
    users: dict[int, list[int]] = {}
    for i, pos in enumerate(spec.positions()):
        users.setdefault(spec.owner(i), []).append(pos)
    groups = []
    for owner in sorted(users, key=lambda o: users[o][0]):
        if len(users[owner]) > 1:
            groups += [[f"{p}.{leaf}" for p in users[owner]] for leaf in ("weight", "bias")]
    return sorted(groups, key=lambda g: expected_names(spec).index(g[0]))


def unique_names(spec: Spec) -> list[str]:
    """One name per storage: the first use of each layer object."""
    seen, out = set(), []
    for i, pos in enumerate(spec.positions()):
        if spec.owner(i) not in seen:
            seen.add(spec.owner(i))
            out += [f"{pos}.weight", f"{pos}.bias"]
    return out


def _sequence(spec: Spec, dense: Callable[[int], Any], act: Callable[[], Any]) -> list[Any]:
    """The Sequential items: dense(i) builds layer i's object (reused for tied layers), act() an activation."""
    objects: dict[int, Any] = {}
    items = []
    for kind, _, i in spec.items():
        if kind == "act":
            items.append(act())
            continue
        owner = spec.owner(i)
        if owner not in objects:
            objects[owner] = dense(owner)
        items.append(objects[owner])
    return items


def build_torch(spec: Spec) -> Built:
    """torch.nn.Sequential of Linear (LazyLinear when deferred) and ReLU/Tanh/Sigmoid."""
    import torch
    from torch import nn

    dtype = getattr(torch, spec.dtype)
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}

    def dense(i: int) -> nn.Module:
        out = spec.layers[i].out
        return nn.LazyLinear(out, dtype=dtype) if spec.deferred else nn.Linear(spec.in_width(i), out, dtype=dtype)

    return Built(nn.Sequential(*_sequence(spec, dense, lambda: acts[spec.activation]())))


def build_mxnet(spec: Spec) -> Built:
    """gluon.nn.Sequential of Dense (no in_units when deferred) and Activation, then initialize()."""
    if spec.dtype not in ("float32", "float16", "float64"):
        raise NotBuildable(f"mxnet 1.9 parameters cannot be {spec.dtype}")
    from unified_params.backends.mxnet_import import import_mxnet

    nn = import_mxnet().gluon.nn

    def dense(i: int) -> Any:
        in_units = 0 if spec.deferred else spec.in_width(i)
        return nn.Dense(spec.layers[i].out, in_units=in_units, dtype=spec.dtype)

    net = nn.Sequential()
    net.add(*_sequence(spec, dense, lambda: nn.Activation(spec.activation)))
    net.initialize()
    return Built(net)


def build_keras(spec: Spec) -> Built:
    """keras.Sequential of Dense and Activation; with keras.Input unless deferred."""
    import keras
    from keras import layers

    items = _sequence(spec, lambda i: layers.Dense(spec.layers[i].out, dtype=spec.dtype),
                      lambda: layers.Activation(spec.activation))
    head = [] if spec.deferred else [keras.Input((spec.n_in,), dtype=spec.dtype)]
    return Built(keras.Sequential(head + items))


def build_flax(spec: Spec) -> Built:
    """flax.linen.Sequential of Dense and activation functions; variables from module.init unless deferred."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    dtype = jnp.dtype(spec.dtype)
    acts = {"relu": nn.relu, "tanh": nn.tanh, "sigmoid": nn.sigmoid}
    module = nn.Sequential(_sequence(spec, lambda i: nn.Dense(spec.layers[i].out, dtype=dtype, param_dtype=dtype),
                                     lambda: acts[spec.activation]))
    if spec.deferred:
        return Built(module, None)
    return Built(module, module.init(jax.random.PRNGKey(0), jnp.zeros((1, spec.n_in), dtype)))


def build_nnx(spec: Spec) -> Built:
    """flax.nnx.Sequential of Linear (bridge.ToNNX(linen.Dense) when deferred) and activation functions."""
    import jax.numpy as jnp
    from flax import linen, nnx
    from flax.nnx import bridge

    dtype = jnp.dtype(spec.dtype)
    acts = {"relu": nnx.relu, "tanh": nnx.tanh, "sigmoid": nnx.sigmoid}
    rngs = nnx.Rngs(0)

    def dense(i: int) -> Any:
        out = spec.layers[i].out
        if spec.deferred:
            return bridge.ToNNX(linen.Dense(out, dtype=dtype, param_dtype=dtype), rngs=nnx.Rngs(i))
        return nnx.Linear(spec.in_width(i), out, dtype=dtype, param_dtype=dtype, rngs=rngs)

    return Built(nnx.Sequential(*_sequence(spec, dense, lambda: acts[spec.activation])))


def build_equinox(spec: Spec) -> Built:
    """equinox.nn.Sequential of Linear and Lambda(activation); Equinox cannot defer, so every input size is given."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    dtype = jnp.dtype(spec.dtype)
    acts = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
    keys = jax.random.split(jax.random.PRNGKey(0), len(spec.layers))
    return Built(eqx.nn.Sequential(_sequence(
        spec, lambda i: eqx.nn.Linear(spec.in_width(i), spec.layers[i].out, dtype=dtype, key=keys[i]),
        lambda: eqx.nn.Lambda(acts[spec.activation]))))


BUILDERS: dict[str, Callable[[Spec], Built]] = {
    "torch": build_torch, "mxnet": build_mxnet, "keras": build_keras, "flax": build_flax, "nnx": build_nnx,
    "equinox": build_equinox,
}


def build(backend: str, spec: Spec) -> Built:
    """The spec built with backend's own layers."""
    return BUILDERS[backend](spec)
