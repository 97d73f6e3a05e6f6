"""The documents' examples built with flax.linen, and oracles that read them with Flax's and JAX's own API.

Linen's `name=` of a module inside a Sequential is replaced by `layers_N`, so rgnet's block2 names
its four children `block 0..3` the way PyTorch's `add_module` does: by attribute in `setup`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from unified_params.conformance.examples import Built

PARAM_TYPE = jax.Array
LEAVES = {"weight": ("kernel", "scale", "embedding"), "bias": ("bias",)}
STATS = {"running_mean": "mean", "running_var": "var"}


def _init(module: nn.Module, width: int) -> Built:
    return Built(module, module.init(jax.random.PRNGKey(0), jnp.zeros((1, width), jnp.float32)))


def mlp() -> Built:
    """E1-E5, E7-E9, E13: Dense(4->8), ReLU, Dense(8->1), initialized."""
    return _init(nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(1)]), 4)


def _block1() -> nn.Module:
    return nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(4), nn.relu])


class Block2(nn.Module):
    """Four block1 children named `block 0`..`block 3`, like torch's add_module(f'block {i}', block1())."""

    def setup(self) -> None:
        for i in range(4):
            setattr(self, f"block {i}", _block1())

    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(4):
            x = getattr(self, f"block {i}")(x)
        return x


def nested() -> Built:
    """E6: rgnet = Sequential(block2, Dense(4->1)), block2 holding `block 0`..`block 3`."""
    return _init(nn.Sequential([Block2(), nn.Dense(1)]), 4)


def tied() -> Built:
    """E10: one shared Dense(8->8) object at positions 2 and 4."""
    shared = nn.Dense(8)
    return _init(nn.Sequential([nn.Dense(8), nn.relu, shared, nn.relu, shared, nn.relu, nn.Dense(1)]), 4)


def deferred() -> Built:
    """E11, E13: Dense(256), ReLU, Dense(10) with no variables (input (2, 20) will decide)."""
    return Built(nn.Sequential([nn.Dense(256), nn.relu, nn.Dense(10)]), None)


def eager() -> Built:
    """E12: every input size known, initialized at once."""
    return _init(nn.Sequential([nn.Dense(256), nn.relu, nn.Dense(10)]), 20)


class Pair(nn.Module):
    """A model taking one tuple (x, y): dense(x) + y."""

    def setup(self) -> None:
        self.dense = nn.Dense(4)

    def __call__(self, pair: tuple[Any, Any]) -> Any:
        x, y = pair
        return self.dense(x) + y


def deferred_pair() -> Built:
    return Built(Pair(), None)


def deferred_tied() -> Built:
    shared = nn.Dense(8)
    return Built(nn.Sequential([nn.Dense(8), nn.relu, shared, nn.relu, shared, nn.relu, nn.Dense(1)]), None)


class Compact(nn.Module):
    """The usual linen style: submodules made inline in a @compact __call__."""

    @nn.compact
    def __call__(self, x: Any) -> Any:
        h = nn.relu(nn.Dense(8)(x))
        return nn.Dense(2)(h)


def deferred_compact() -> Built:
    """A @compact module with no variables: its structure is known only once it runs."""
    return Built(Compact(), None)


def native_initialized(pm: Any, name: str) -> bool:
    """linen keeps no state: a parameter exists once the wrapper holds variables that contain it."""
    try:
        native_object(pm, name)
    except (KeyError, TypeError):
        return False
    return True


def _path(pm: Any, name: str) -> tuple[str, ...]:
    """The variables path of canonical name: Sequential position i is `layers_<first index of that module>`."""
    *keys, leaf = name.split(".")
    module: Any = pm.model
    path: list[str] = []
    for key in keys:
        if isinstance(module, nn.Sequential) and key.isdigit():
            layer = module.layers[int(key)]
            first = next(j for j, other in enumerate(module.layers) if other is layer)
            path.append(f"layers_{first}")
            module = layer
        elif module is None and key.isdigit():
            path.append(f"layers_{key}")
        else:
            path.append(key)
            module = None
    if leaf in STATS:
        return ("batch_stats", *path, STATS[leaf])
    scope = pm.variables["params"]
    for key in path:
        scope = scope[key]
    native = next((n for n in LEAVES.get(leaf, (leaf,)) if n in scope), leaf)
    return ("params", *path, native)


def native_object(pm: Any, name: str) -> Any:
    """The framework's own object for canonical name, reached with the framework's own indexing."""
    node = pm.variables
    for key in _path(pm, name):
        node = node[key]
    return node


def native_value(pm: Any, name: str) -> np.ndarray:
    """The value of canonical name read with the framework's own API, in canonical layout."""
    value = np.array(native_object(pm, name))
    if _path(pm, name)[-1] == "kernel":
        value = _kernel_to_canonical(value)
    return np.ascontiguousarray(value)


def _kernel_to_canonical(value: np.ndarray) -> np.ndarray:
    """Flax kernels: dense (in, out) -> (out, in); conv (*k, in, out) -> (out, in, *k)."""
    return value.T if value.ndim == 2 else value.transpose(value.ndim - 1, value.ndim - 2, *range(value.ndim - 2))


def native_names(pm: Any) -> list[str]:
    """The framework's own listing of parameter names."""
    return list(traverse_util.flatten_dict(pm.variables, sep="/"))


def native_forward(pm: Any, *xs: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """The user's own forward call on xs (each an array, or a tuple of arrays passed as one input), as numpy."""
    args = [tuple(map(jnp.asarray, x)) if isinstance(x, tuple) else jnp.asarray(x) for x in xs]
    if pm.variables is None:
        out, _ = pm.model.init_with_output(jax.random.PRNGKey(0), *args)
        return np.asarray(out)
    return np.asarray(pm.model.apply(pm.variables, *args))


def _canonical(path: tuple[str, ...]) -> str:
    """The canonical name of a params path of the examples: `layers_N` -> N, kernel -> weight."""
    parts = [p.removeprefix("layers_") if p.startswith("layers_") else p for p in path[:-1]]
    leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(path[-1], path[-1])
    return ".".join((*parts, leaf))


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """{canonical name: grad of sum(output)} by the framework's own autodiff, canonical layout."""
    variables = pm.variables
    others = {k: v for k, v in variables.items() if k != "params"}

    def loss(params: Any) -> jax.Array:
        return pm.model.apply({**others, "params": params}, jnp.asarray(x)).sum()

    grads = traverse_util.flatten_dict(jax.grad(loss)(variables["params"]))
    out = {}
    for path, g in grads.items():
        g = np.array(g)
        out[_canonical(path)] = _kernel_to_canonical(g) if path[-1] == "kernel" else g
    return out


GRAD_BEFORE_BACKWARD = "none stored (jax.grad returns gradients)"


class Zoo(nn.Module):
    """Conv, batch norm, pooling, embedding, layer norm and dense: the cross-framework model (docs/adapters.md)."""

    def setup(self) -> None:
        self.conv = nn.Conv(4, (3, 3), padding="VALID")
        self.bn = nn.BatchNorm(epsilon=1e-5)
        self.embed = nn.Embed(10, 4)
        self.norm = nn.LayerNorm(epsilon=1e-5)
        self.head = nn.Dense(2)

    def __call__(self, image: jax.Array, tokens: jax.Array, train: bool = False) -> jax.Array:
        h = nn.relu(self.bn(self.conv(image), use_running_average=not train))
        h = nn.avg_pool(h, (2, 2), strides=(2, 2)).mean(axis=(1, 2))
        return self.head(self.norm(h + self.embed(tokens).mean(axis=1)))


def zoo() -> Built:
    """The cross-framework model, initialized (channels-last input, as Flax expects)."""
    model = Zoo()
    return Built(model, model.init(jax.random.PRNGKey(0), *map(jnp.asarray, zoo_input())))


def zoo_input() -> tuple[np.ndarray, np.ndarray]:
    """(image NHWC float32 (2, 8, 8, 3), tokens int32 (2, 5)): channels-last, as Flax expects."""
    from unified_params.conformance.examples import zoo_image, zoo_tokens

    return zoo_image(), zoo_tokens()


LINEN = "linen modules are immutable dataclasses and the wrapper holds the variables: a changed model is a new wrap"
UNSUPPORTED_MUTATIONS = dict.fromkeys(
    ("replace_layer", "append_layer", "delete_layer", "reassign_weight", "set_trainable", "cast"), LINEN)
