"""The documents' examples built with flax.nnx, and oracles that read them with NNX's own API.

NNX creates parameters eagerly, so `deferred()` uses the lazy modules of `nnx.bridge`: each
`ToNNX(linen.Dense(n))` gets its variables from `nnx.bridge.lazy_init(model, x)`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx
from flax.nnx import bridge

from unified_params.conformance.examples import Built

PARAM_TYPE = nnx.Param
LEAVES = {"weight": ("kernel", "scale", "embedding"), "running_mean": ("mean",), "running_var": ("var",)}


def mlp() -> Built:
    """E1-E5, E7-E9, E13: Dense(4->8), ReLU, Dense(8->1), initialized."""
    rngs = nnx.Rngs(0)
    return Built(nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, nnx.Linear(8, 1, rngs=rngs)))


def _block1(rngs: nnx.Rngs) -> nnx.Module:
    return nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, nnx.Linear(8, 4, rngs=rngs), nnx.relu)


class Block2(nnx.Module):
    """Four block1 children named `block 0`..`block 3`, like torch's add_module(f'block {i}', block1())."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        for i in range(4):
            setattr(self, f"block {i}", _block1(rngs))

    def __call__(self, x: Any) -> Any:
        for i in range(4):
            x = getattr(self, f"block {i}")(x)
        return x


def nested() -> Built:
    """E6: rgnet = Sequential(block2, Dense(4->1)), block2 holding `block 0`..`block 3`."""
    rngs = nnx.Rngs(0)
    return Built(nnx.Sequential(Block2(rngs), nnx.Linear(4, 1, rngs=rngs)))


def tied() -> Built:
    """E10: one shared Dense(8->8) object at positions 2 and 4."""
    rngs = nnx.Rngs(0)
    shared = nnx.Linear(8, 8, rngs=rngs)
    return Built(nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, shared, nnx.relu, shared, nnx.relu,
                                nnx.Linear(8, 1, rngs=rngs)))


def deferred() -> Built:
    """E11, E13: ToNNX(linen.Dense(256)), ReLU, ToNNX(linen.Dense(10)); lazy_init decides the input size."""
    return Built(nnx.Sequential(bridge.ToNNX(linen.Dense(256), rngs=nnx.Rngs(0)), nnx.relu,
                                bridge.ToNNX(linen.Dense(10), rngs=nnx.Rngs(1))))


def eager() -> Built:
    """E12: every input size known, initialized at once."""
    rngs = nnx.Rngs(0)
    return Built(nnx.Sequential(nnx.Linear(20, 256, rngs=rngs), nnx.relu, nnx.Linear(256, 10, rngs=rngs)))


class Pair(nnx.Module):
    """A model taking one tuple (x, y): dense(x) + y, with a lazy ToNNX Dense."""

    def __init__(self) -> None:
        self.dense = bridge.ToNNX(linen.Dense(4), rngs=nnx.Rngs(0))

    def __call__(self, pair: tuple[Any, Any]) -> Any:
        x, y = pair
        return self.dense(x) + y


def deferred_pair() -> Built:
    return Built(Pair())


def deferred_tied() -> Built:
    shared = bridge.ToNNX(linen.Dense(8), rngs=nnx.Rngs(1))
    return Built(nnx.Sequential(bridge.ToNNX(linen.Dense(8), rngs=nnx.Rngs(0)), nnx.relu, shared, nnx.relu, shared,
                                nnx.relu, bridge.ToNNX(linen.Dense(1), rngs=nnx.Rngs(2))))


def native_reinit(pm: Any, x: np.ndarray, value: float) -> None:
    """bridge.lazy_init creates the variables (the first call), then every kernel is set, as NNX code does."""
    native_forward(pm, x)
    for _, module in nnx.iter_graph(pm.model):
        if isinstance(module, bridge.ToNNX):
            module.kernel.value = jnp.full(module.kernel.value.shape, value, module.kernel.value.dtype)


class _Compact(linen.Module):
    @linen.compact
    def __call__(self, x: Any) -> Any:
        h = linen.relu(linen.Dense(8)(x))
        return linen.Dense(2)(h)


def deferred_compact() -> Built:
    """A ToNNX of a linen @compact module: its structure is known only once lazy_init runs it."""
    return Built(bridge.ToNNX(_Compact(), rngs=nnx.Rngs(0)))


def native_initialized(pm: Any, name: str) -> bool:
    obj, attr = _resolve(pm, name)
    return isinstance(_get(obj, attr), nnx.Variable)


def _resolve(pm: Any, name: str) -> tuple[Any, str]:
    """The module that owns canonical name, reached with NNX indexing, and the attribute holding it."""
    *keys, leaf = name.split(".")
    obj: Any = pm.model
    for key in keys:
        obj = obj.layers[int(key)] if isinstance(obj, nnx.Sequential) else _get(obj, key)
    attr = next((a for a in LEAVES.get(leaf, (leaf,)) if _get(obj, a) is not None), leaf)
    return obj, attr


def _get(obj: Any, key: str) -> Any:
    """obj.key, or obj[key] for the variable dicts a ToNNX of a @compact module holds."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def native_object(pm: Any, name: str) -> Any:
    """The framework's own object for canonical name, reached with the framework's own indexing."""
    obj, attr = _resolve(pm, name)
    return _get(obj, attr)


def native_value(pm: Any, name: str) -> np.ndarray:
    """The value of canonical name read with the framework's own API, in canonical layout."""
    obj, attr = _resolve(pm, name)
    value = np.array(_get(obj, attr)[...])
    return np.ascontiguousarray(_kernel_to_canonical(value) if attr == "kernel" else value)


def _kernel_to_canonical(value: np.ndarray) -> np.ndarray:
    """NNX kernels: Linear (in, out) -> (out, in); Conv (*k, in, out) -> (out, in, *k)."""
    return value.T if value.ndim == 2 else value.transpose(value.ndim - 1, value.ndim - 2, *range(value.ndim - 2))


def native_names(pm: Any) -> list[str]:
    """The framework's own listing of parameter names."""
    state = nnx.state(pm.model, nnx.Param, nnx.BatchStat)
    return ["/".join(map(str, path)) for part in state for path, _ in nnx.to_flat_state(part)]


def _lazy(model: Any) -> bool:
    """True while a ToNNX module has no parameters yet (lazy_init has not run)."""
    return any(isinstance(m, bridge.ToNNX) and not nnx.state(m, nnx.Param) for _, m in nnx.iter_graph(model))


def native_forward(pm: Any, *xs: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """The user's own forward call on xs (each an array, or a tuple of arrays passed as one input), as numpy."""
    args = [tuple(map(jnp.asarray, x)) if isinstance(x, tuple) else jnp.asarray(x) for x in xs]
    if _lazy(pm.model):
        bridge.lazy_init(pm.model, *args)
    return np.asarray(pm.model(*args))


def _canonical(path: tuple) -> str:
    """Canonical name of an NNX state path of the examples: Sequential's `layers` level dropped, kernel -> weight."""
    parts = [str(p) for p in path[:-1] if p != "layers"]
    leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(path[-1], path[-1])
    return ".".join((*parts, leaf))


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """{canonical name: grad of sum(output)} by the framework's own autodiff, canonical layout."""
    grads = nnx.grad(lambda model: model(jnp.asarray(x)).sum())(pm.model)
    out = {}
    for path, g in nnx.to_flat_state(grads):
        g = np.array(g[...])
        out[_canonical(path)] = _kernel_to_canonical(g) if path[-1] == "kernel" else g
    return out


GRAD_BEFORE_BACKWARD = "none stored (nnx.grad returns a State of gradients)"


class Zoo(nnx.Module):
    """Conv, batch norm, pooling, embedding, layer norm and dense: the cross-framework model (docs/adapters.md)."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 4, (3, 3), padding="VALID", rngs=rngs)
        self.bn = nnx.BatchNorm(4, epsilon=1e-5, rngs=rngs)
        self.embed = nnx.Embed(10, 4, rngs=rngs)
        self.norm = nnx.LayerNorm(4, epsilon=1e-5, rngs=rngs)
        self.head = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, image: Any, tokens: Any) -> Any:
        h = nnx.avg_pool(nnx.relu(self.bn(self.conv(image))), (2, 2), strides=(2, 2)).mean(axis=(1, 2))
        return self.head(self.norm(h + self.embed(tokens).mean(axis=1)))


def zoo() -> Built:
    """The cross-framework model (channels-last input, as NNX expects)."""
    return Built(Zoo(nnx.Rngs(0)))


def zoo_input() -> tuple[np.ndarray, np.ndarray]:
    """(image NHWC float32 (2, 8, 8, 3), tokens int32 (2, 5)): channels-last, as NNX expects."""
    from unified_params.conformance.examples import zoo_image, zoo_tokens

    return zoo_image(), zoo_tokens()


def replace_layer(model: nnx.Sequential) -> None:
    model.layers[2] = nnx.Linear(8, 3, rngs=nnx.Rngs(1))


def append_layer(model: nnx.Sequential) -> None:
    model.layers.append(nnx.Linear(1, 2, rngs=nnx.Rngs(2)))


def delete_layer(model: nnx.Sequential) -> None:
    model.layers.pop()


def reassign_weight(model: nnx.Sequential) -> None:
    model.layers[0].kernel = nnx.Param(jnp.full((4, 8), 0.5, jnp.float32))


def set_trainable(model: nnx.Sequential, position: int, flag: bool) -> None:
    """NNX's trainable state is the Variable type (an optimizer's wrt=nnx.Param): frozen means a plain nnx.Variable."""
    layer = model.layers[position]
    for name in ("kernel", "bias"):
        setattr(layer, name, (nnx.Param if flag else nnx.Variable)(getattr(layer, name)[...]))


def cast(model: nnx.Sequential) -> str:
    """float16 (JAX has no float64 unless jax_enable_x64 is set)."""
    state = nnx.state(model)
    nnx.update(model, jax.tree_util.tree_map(lambda v: v.astype(jnp.float16), state))
    return "float16"


UNSUPPORTED_MUTATIONS: dict[str, str] = {}
