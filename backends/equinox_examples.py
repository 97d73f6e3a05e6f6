"""The documents' examples built with Equinox, and oracles that read them with Equinox's and JAX's own API.

Equinox layers take one example: the oracles call the model the Equinox way, `jax.vmap(model)(x)`.
Models are immutable: the oracles read `pm.model` (and `pm.variables`, the eqx.nn.State) as they are now.
"""
from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from unified_params.conformance.examples import Built

PARAM_TYPE = jax.Array
STATS = {"running_mean": 0, "running_var": 1}


def _keys(n: int, seed: int = 0) -> list[Any]:
    return list(jax.random.split(jax.random.PRNGKey(seed), n))


def _relu() -> eqx.nn.Lambda:
    return eqx.nn.Lambda(jax.nn.relu)


def mlp() -> Built:
    """E1-E5, E7-E9, E13: Linear(4->8), ReLU, Linear(8->1)."""
    k = _keys(2)
    return Built(eqx.nn.Sequential([eqx.nn.Linear(4, 8, key=k[0]), _relu(), eqx.nn.Linear(8, 1, key=k[1])]))


def _block1(key: Any) -> eqx.nn.Sequential:
    k = jax.random.split(key, 2)
    return eqx.nn.Sequential([eqx.nn.Linear(4, 8, key=k[0]), _relu(), eqx.nn.Linear(8, 4, key=k[1]), _relu()])


class Block2(eqx.Module):
    """Four block1 children named `block 0`..`block 3` (fields named like torch's add_module(f'block {i}', ...))."""

    __annotations__ = {f"block {i}": eqx.nn.Sequential for i in range(4)}

    def __init__(self, key: Any) -> None:
        for i, k in enumerate(jax.random.split(key, 4)):
            setattr(self, f"block {i}", _block1(k))

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        for i in range(4):
            x = getattr(self, f"block {i}")(x)
        return x


def nested() -> Built:
    """E6: rgnet = Sequential(block2, Linear(4->1))."""
    k = _keys(2)
    return Built(eqx.nn.Sequential([Block2(k[0]), eqx.nn.Linear(4, 1, key=k[1])]))


def tied() -> Built:
    """E10: one shared Linear(8->8) object at positions 2 and 4 (the pytree holds its arrays twice)."""
    k = _keys(3)
    shared = eqx.nn.Linear(8, 8, key=k[1])
    return Built(eqx.nn.Sequential([eqx.nn.Linear(4, 8, key=k[0]), _relu(), shared, _relu(), shared, _relu(),
                                    eqx.nn.Linear(8, 1, key=k[2])]))


def eager() -> Built:
    """E12: Linear(20->256), ReLU, Linear(256->10)."""
    k = _keys(2)
    return Built(eqx.nn.Sequential([eqx.nn.Linear(20, 256, key=k[0]), _relu(), eqx.nn.Linear(256, 10, key=k[1])]))


def deferred() -> Built:
    """Equinox has no deferred shapes (capability `deferred`): the E11 model with its input size given."""
    return eager()


def native_initialized(pm: Any, name: str) -> bool:
    """Equinox arrays exist from construction."""
    return native_object(pm, name) is not None


def _owner(model: Any, keys: list[str]) -> Any:
    obj = model
    for key in keys:
        obj = obj.layers[int(key)] if isinstance(obj, eqx.nn.Sequential) else getattr(obj, key)
    return obj


def native_object(pm: Any, name: str) -> Any:
    """The jax.Array for canonical name: `model.layers[2].bias`, `state.get(model.bn.ema_state_index)[1]`."""
    *keys, leaf = name.split(".")
    owner = _owner(pm.model, keys)
    if leaf in STATS:
        return pm.variables.get(owner.ema_state_index)[STATS[leaf]]
    return getattr(owner, leaf)


def native_value(pm: Any, name: str) -> np.ndarray:
    """The value as numpy in canonical layout (a conv bias (out, 1, 1) becomes (out,))."""
    value = np.array(native_object(pm, name))
    return value.reshape(value.shape[0]) if name.endswith("bias") and value.ndim > 1 else value


def _keystr(path: Any) -> str:
    return jax.tree_util.keystr(path)[1:]


def native_names(pm: Any) -> list[str]:
    """Paths of the model's arrays (a shared array once, where first met) and of its (mean, var) state entries."""
    seen: set[int] = set()
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(eqx.filter(pm.model, eqx.is_array))[0]:
        if id(leaf) not in seen:
            seen.add(id(leaf))
            names.append(_keystr(path))
    is_index = lambda x: isinstance(x, eqx.nn.StateIndex)  # noqa: E731
    for path, leaf in jax.tree_util.tree_flatten_with_path(pm.model, is_leaf=is_index)[0]:
        if is_index(leaf) and isinstance(pm.variables.get(leaf), tuple):
            names += [f"{_keystr(path)}[0]", f"{_keystr(path)}[1]"]
    return names


def _call(pm: Any, xs: list[Any], model: Any = None) -> Any:
    model = eqx.nn.inference_mode(pm.model if model is None else model, True)
    if pm.variables is None:
        return jax.vmap(model)(*xs)
    state = pm.variables
    return jax.vmap(lambda *a: model(*a, state), axis_name="batch")(*xs)[0]


def native_forward(pm: Any, *xs: np.ndarray) -> np.ndarray:
    """The user's own call: the per-example model vmapped over the batch, in inference mode."""
    return np.asarray(_call(pm, [jnp.asarray(x) for x in xs]))


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """{canonical name: grad of sum(output)} by eqx.filter_grad; a shared layer's gradient summed over its uses."""
    grads = eqx.filter_grad(lambda m: _call(pm, [jnp.asarray(x)], m).sum())(pm.model)
    out: dict[str, np.ndarray] = {}
    first: dict[int, str] = {}

    def visit(layer: Any, grad: Any, prefix: str) -> None:
        if isinstance(layer, eqx.nn.Sequential):
            for i, (sub, g) in enumerate(zip(layer.layers, grad.layers)):
                visit(sub, g, f"{prefix}{i}.")
        elif isinstance(layer, Block2):
            for i in range(4):
                visit(getattr(layer, f"block {i}"), getattr(grad, f"block {i}"), f"{prefix}block {i}.")
        elif isinstance(layer, eqx.nn.Linear):
            for leaf in ("weight", "bias"):
                name = first.setdefault(id(getattr(layer, leaf)), prefix + leaf)
                value = np.array(getattr(grad, leaf))
                out[name] = out[name] + value if name in out else value

    visit(pm.model, grads, "")
    return out


GRAD_BEFORE_BACKWARD = "none stored (eqx.filter_grad returns a pytree of gradients)"


class Zoo(eqx.Module):
    """Conv, batch norm, pooling, embedding, layer norm and dense on one example (C, H, W) and its tokens."""

    conv: eqx.nn.Conv2d
    bn: eqx.nn.BatchNorm
    embed: eqx.nn.Embedding
    norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, key: Any) -> None:
        k = jax.random.split(key, 3)
        self.conv = eqx.nn.Conv2d(3, 4, 3, key=k[0])
        self.bn = eqx.nn.BatchNorm(4, axis_name="batch", eps=1e-5, mode="ema")
        self.embed = eqx.nn.Embedding(10, 4, key=k[1])
        self.norm = eqx.nn.LayerNorm(4, eps=1e-5)
        self.head = eqx.nn.Linear(4, 2, key=k[2])

    def __call__(self, image: Any, tokens: Any, state: eqx.nn.State) -> tuple[Any, eqx.nn.State]:
        h, state = self.bn(self.conv(image), state)
        h = eqx.nn.AvgPool2d(2, 2)(jax.nn.relu(h)).mean(axis=(1, 2))
        h = h + jax.vmap(self.embed)(tokens).mean(axis=0)
        return self.head(self.norm(h)), state


def zoo() -> Built:
    """The cross-framework model and its State; running statistics start at mean 0, variance 1 (as in PyTorch)."""
    model, state = eqx.nn.make_with_state(Zoo)(jax.random.PRNGKey(0))
    state = state.set(model.bn.ema_state_index, (jnp.zeros(4), jnp.ones(4)))
    return Built(model, state)


def zoo_input() -> tuple[np.ndarray, np.ndarray]:
    """(image NCHW float32 (2, 3, 8, 8), tokens int32 (2, 5)): channels-first, as Equinox's Conv2d expects."""
    from unified_params.conformance.examples import zoo_image, zoo_tokens

    return zoo_image().transpose(0, 3, 1, 2).copy(), zoo_tokens()


_IMMUTABLE = ("Equinox models are immutable pytrees: a change makes a new model (eqx.tree_at) that the wrapper "
              "never sees; wrap the new model")
UNSUPPORTED_MUTATIONS: dict[str, str] = {name: _IMMUTABLE for name in
                                         ("replace_layer", "append_layer", "delete_layer", "reassign_weight",
                                          "set_trainable", "cast")}
