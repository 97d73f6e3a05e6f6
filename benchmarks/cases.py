"""Per-backend models and the frameworks' own calls that the unified_params calls are measured against.

Each case builds a model of many small layers (for access: names, collect, lookup) and a large one
(for init, state_dict and transfer), and does the same jobs with the framework's own API.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import unified_params as up


@dataclass
class Model:
    """A native model; for linen, the module and its variables (which native init replaces)."""

    net: Any
    variables: Any = None


def big_shapes(layers: int, small: bool) -> list[tuple[int, int]]:
    """(out, in) per dense layer: alternating 4096x3814 and 3814x4096 (1 GB float32 in 16 layers), or 1024x953."""
    a, b = (1024, 953) if small else (4096, 3814)
    return [(a, b) if i % 2 == 0 else (b, a) for i in range(layers)]


class Case:
    """One backend: its models and its own ways of listing, selecting, finding and initializing parameters."""

    name = ""
    native_pattern = r".*weight"
    lookup_label = ""

    def many(self, n: int) -> Model:
        """A Sequential of n Dense(8 -> 8) layers (2n parameter tensors), initialized."""
        raise NotImplementedError

    def big(self, shapes: list[tuple[int, int]]) -> Model:
        """A Sequential of Dense layers of the given (out, in), values not yet meaningful."""
        raise NotImplementedError

    def wrap(self, m: Model) -> Any:
        """The ParamAPI view of m."""
        return up.wrap(m.net) if m.variables is None else up.wrap(m.net, m.variables)

    def native_names(self, m: Model) -> list[str]:
        """The framework's own listing of parameter names."""
        raise NotImplementedError

    def native_collect(self, m: Model, regex: re.Pattern) -> dict[str, Any]:
        """The framework's own selection of parameters by a regular expression on native names."""
        return {n: None for n in self.native_names(m) if regex.fullmatch(n)}

    def native_lookup(self, m: Model, pm: Any, name: str) -> Callable[[], Any]:
        """A function returning the parameter object called name, the framework's own way."""
        raise NotImplementedError

    def native_init(self, m: Model, std: float, seed: int) -> None:
        """Normal(0, std) into every weight with the framework's own initializer."""
        raise NotImplementedError

    def native_state(self, m: Model) -> dict[str, np.ndarray]:
        """Every parameter as a numpy copy, the framework's own way (native layout)."""
        raise NotImplementedError

    def native_export(self, m: Model) -> list[np.ndarray]:
        """[weight, bias] of every layer as numpy in canonical layout, as a user reads them (views where possible)."""
        raise NotImplementedError

    def native_import(self, m: Model, arrays: list[np.ndarray]) -> None:
        """Set [weight, bias] of every layer from canonical numpy arrays, the way a user would."""
        raise NotImplementedError

    def sync(self, m: Model) -> None:
        """Wait for asynchronous work on m's parameters."""

    def pm_sync(self, pm: Any) -> None:
        """Wait for asynchronous work on pm's parameters."""


class TorchCase(Case):
    name = "torch"
    lookup_label = "net.get_parameter(name)"

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def many(self, n: int) -> Model:
        nn = self.torch.nn
        return Model(nn.Sequential(*[nn.Linear(8, 8) for _ in range(n)]))

    def big(self, shapes: list[tuple[int, int]]) -> Model:
        nn = self.torch.nn
        return Model(nn.Sequential(*[nn.utils.skip_init(nn.Linear, i, o) for o, i in shapes]))

    def native_names(self, m: Model) -> list[str]:
        return [n for n, _ in m.net.named_parameters()]

    def native_collect(self, m: Model, regex: re.Pattern) -> dict[str, Any]:
        return {n: p for n, p in m.net.named_parameters() if regex.fullmatch(n)}

    def native_lookup(self, m: Model, pm: Any, name: str) -> Callable[[], Any]:
        return lambda: m.net.get_parameter(name)

    def native_init(self, m: Model, std: float, seed: int) -> None:
        torch = self.torch
        torch.manual_seed(seed)
        with torch.no_grad():
            for n, p in m.net.named_parameters():
                if n.endswith("weight"):
                    torch.nn.init.normal_(p, 0.0, std)

    def native_state(self, m: Model) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in m.net.state_dict().items()}

    def native_export(self, m: Model) -> list[np.ndarray]:
        return [p.detach().numpy() for p in m.net.parameters()]

    def native_import(self, m: Model, arrays: list[np.ndarray]) -> None:
        torch = self.torch
        with torch.no_grad():
            for p, a in zip(m.net.parameters(), arrays):
                p.copy_(torch.from_numpy(a))


class MXNetCase(Case):
    name = "mxnet"
    lookup_label = "net.collect_params()[name]"

    def __init__(self) -> None:
        from unified_params.backends.mxnet_import import import_mxnet

        self.mx = import_mxnet()

    def _sequential(self, layers: list[Any]) -> Any:
        net = self.mx.gluon.nn.Sequential()
        net.add(*layers)
        return net

    def many(self, n: int) -> Model:
        nn = self.mx.gluon.nn
        net = self._sequential([nn.Dense(8, in_units=8) for _ in range(n)])
        net.initialize()
        return Model(net)

    def big(self, shapes: list[tuple[int, int]]) -> Model:
        nn = self.mx.gluon.nn
        net = self._sequential([nn.Dense(o, in_units=i) for o, i in shapes])
        net.initialize(self.mx.init.Zero())
        self.mx.nd.waitall()
        return Model(net)

    def native_names(self, m: Model) -> list[str]:
        return list(m.net.collect_params().keys())

    def native_collect(self, m: Model, regex: re.Pattern) -> dict[str, Any]:
        return dict(m.net.collect_params(regex.pattern).items())

    def native_lookup(self, m: Model, pm: Any, name: str) -> Callable[[], Any]:
        native = pm[name].native_name
        return lambda: m.net.collect_params()[native]

    def native_init(self, m: Model, std: float, seed: int) -> None:
        self.mx.random.seed(seed)
        m.net.collect_params(".*weight").initialize(self.mx.init.Normal(std), force_reinit=True)
        self.mx.nd.waitall()

    def native_state(self, m: Model) -> dict[str, np.ndarray]:
        return {k: p.data().asnumpy() for k, p in m.net.collect_params().items()}

    def native_export(self, m: Model) -> list[np.ndarray]:
        return [p.data().asnumpy() for p in m.net.collect_params().values()]

    def native_import(self, m: Model, arrays: list[np.ndarray]) -> None:
        for p, a in zip(m.net.collect_params().values(), arrays):
            p.set_data(self.mx.nd.array(a))
        self.mx.nd.waitall()

    def sync(self, m: Model) -> None:
        self.mx.nd.waitall()

    def pm_sync(self, pm: Any) -> None:
        self.mx.nd.waitall()


class KerasCase(Case):
    name = "keras"
    native_pattern = r".*kernel"
    lookup_label = "scan model.weights for v.path"

    def __init__(self) -> None:
        import keras

        self.keras = keras

    def _sequential(self, width: int, layers: list[Any]) -> Any:
        return self.keras.Sequential([self.keras.Input((width,)), *layers])

    def many(self, n: int) -> Model:
        layers = self.keras.layers
        return Model(self._sequential(8, [layers.Dense(8) for _ in range(n)]))

    def big(self, shapes: list[tuple[int, int]]) -> Model:
        layers = self.keras.layers
        return Model(self._sequential(shapes[0][1], [layers.Dense(o, kernel_initializer="zeros") for o, _ in shapes]))

    def native_names(self, m: Model) -> list[str]:
        return [v.path for v in m.net.weights]

    def native_collect(self, m: Model, regex: re.Pattern) -> dict[str, Any]:
        return {v.path: v for v in m.net.weights if regex.fullmatch(v.path)}

    def native_lookup(self, m: Model, pm: Any, name: str) -> Callable[[], Any]:
        path = pm[name].native_name
        return lambda: next(v for v in m.net.weights if v.path == path)

    def native_init(self, m: Model, std: float, seed: int) -> None:
        init = self.keras.initializers.RandomNormal(stddev=std, seed=seed)
        for v in m.net.weights:
            if v.path.endswith("kernel"):
                v.assign(init(v.shape, v.dtype))

    def native_state(self, m: Model) -> dict[str, np.ndarray]:
        return {v.path: np.array(v.numpy(), copy=True) for v in m.net.weights}

    def native_export(self, m: Model) -> list[np.ndarray]:
        return [v.numpy().T if v.path.endswith("kernel") else v.numpy() for v in m.net.weights]

    def native_import(self, m: Model, arrays: list[np.ndarray]) -> None:
        for v, a in zip(m.net.weights, arrays):
            v.assign(a.T if v.path.endswith("kernel") else a)


class FlaxCase(Case):
    name = "flax"
    native_pattern = r".*kernel"
    lookup_label = 'variables["params"][layer]["kernel"]'

    def __init__(self) -> None:
        import jax
        from flax import linen, traverse_util

        self.jax, self.linen, self.tu = jax, linen, traverse_util

    def _init(self, module: Any, width: int) -> Model:
        jnp = self.jax.numpy
        return Model(module, module.init(self.jax.random.key(0), jnp.zeros((1, width), jnp.float32)))

    def many(self, n: int) -> Model:
        nn = self.linen
        return self._init(nn.Sequential([nn.Dense(8) for _ in range(n)]), 8)

    def big(self, shapes: list[tuple[int, int]]) -> Model:
        nn, jax = self.linen, self.jax
        module = nn.Sequential([nn.Dense(o, kernel_init=nn.initializers.zeros) for o, _ in shapes])
        x = jax.ShapeDtypeStruct((1, shapes[0][1]), jax.numpy.float32)
        abstract = jax.eval_shape(module.init, jax.random.key(0), x)
        variables = jax.tree_util.tree_map(lambda s: jax.numpy.zeros(s.shape, s.dtype), abstract)
        return Model(module, jax.block_until_ready(variables))

    def native_names(self, m: Model) -> list[str]:
        return ["/".join(str(getattr(k, "key", k)) for k in path)
                for path, _ in self.jax.tree_util.tree_flatten_with_path(m.variables)[0]]

    def native_collect(self, m: Model, regex: re.Pattern) -> dict[str, Any]:
        flat = self.tu.flatten_dict(m.variables, sep="/")
        return {k: v for k, v in flat.items() if regex.fullmatch(k)}

    def native_lookup(self, m: Model, pm: Any, name: str) -> Callable[[], Any]:
        path = pm[name].native_name.split("/")
        tree = m.variables

        def lookup() -> Any:
            node = tree
            for key in path:
                node = node[key]
            return node

        return lookup

    def native_init(self, m: Model, std: float, seed: int) -> None:
        jax = self.jax
        init = jax.nn.initializers.normal(std)
        flat = self.tu.flatten_dict(m.variables)
        keys = jax.random.split(jax.random.key(seed), len(flat))
        new = {path: init(k, v.shape, v.dtype) if path[-1] == "kernel" else v
               for k, (path, v) in zip(keys, flat.items())}
        m.variables = jax.block_until_ready(self.tu.unflatten_dict(new))

    def native_state(self, m: Model) -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in self.tu.flatten_dict(m.variables, sep="/").items()}

    def native_export(self, m: Model) -> list[np.ndarray]:
        layers = [m.variables["params"][f"layers_{i}"] for i in range(len(m.variables["params"]))]
        return [a for layer in layers for a in (np.asarray(layer["kernel"]).T, np.asarray(layer["bias"]))]

    def native_import(self, m: Model, arrays: list[np.ndarray]) -> None:
        jnp = self.jax.numpy
        params = {f"layers_{i}": {"kernel": jnp.asarray(arrays[2 * i].T), "bias": jnp.asarray(arrays[2 * i + 1])}
                  for i in range(len(arrays) // 2)}
        m.variables = self.jax.block_until_ready({**m.variables, "params": params})

    def sync(self, m: Model) -> None:
        self.jax.block_until_ready(m.variables)

    def pm_sync(self, pm: Any) -> None:
        self.jax.block_until_ready(pm.variables)


class NNXCase(Case):
    name = "nnx"
    native_pattern = r".*kernel"
    lookup_label = "model.layers[i].kernel"

    def __init__(self) -> None:
        import jax
        from flax import nnx

        self.jax, self.nnx = jax, nnx

    def many(self, n: int) -> Model:
        nnx = self.nnx
        rngs = nnx.Rngs(0)
        return Model(nnx.Sequential(*[nnx.Linear(8, 8, rngs=rngs) for _ in range(n)]))

    def big(self, shapes: list[tuple[int, int]]) -> Model:
        nnx = self.nnx
        rngs = nnx.Rngs(0)
        zeros = nnx.initializers.zeros
        return Model(nnx.Sequential(*[nnx.Linear(i, o, kernel_init=zeros, rngs=rngs) for o, i in shapes]))

    def _flat(self, m: Model) -> list[tuple[str, Any]]:
        return [(".".join(map(str, path)), v) for path, v in nnx_flat(self.nnx.state(m.net, self.nnx.Param))]

    def native_names(self, m: Model) -> list[str]:
        return [k for k, _ in self._flat(m)]

    def native_collect(self, m: Model, regex: re.Pattern) -> dict[str, Any]:
        return {k: v for k, v in self._flat(m) if regex.fullmatch(k)}

    def native_lookup(self, m: Model, pm: Any, name: str) -> Callable[[], Any]:
        index = int(name.split(".")[0])
        return lambda: m.net.layers[index].kernel

    def native_init(self, m: Model, std: float, seed: int) -> None:
        jax, nnx = self.jax, self.nnx
        init = jax.nn.initializers.normal(std)
        layers = m.net.layers
        keys = jax.random.split(jax.random.key(seed), len(layers))
        for k, layer in zip(keys, layers):
            layer.kernel.value = init(k, layer.kernel.value.shape, layer.kernel.value.dtype)
        jax.block_until_ready(nnx.state(m.net))

    def native_state(self, m: Model) -> dict[str, np.ndarray]:
        return {k: np.array(v.value if hasattr(v, "value") else v, copy=True) for k, v in self._flat(m)}

    def native_export(self, m: Model) -> list[np.ndarray]:
        return [a for layer in m.net.layers for a in (np.asarray(layer.kernel.value).T, np.asarray(layer.bias.value))]

    def native_import(self, m: Model, arrays: list[np.ndarray]) -> None:
        jnp = self.jax.numpy
        for i, layer in enumerate(m.net.layers):
            layer.kernel.value = jnp.asarray(arrays[2 * i].T)
            layer.bias.value = jnp.asarray(arrays[2 * i + 1])
        self.jax.block_until_ready(self.nnx.state(m.net))

    def sync(self, m: Model) -> None:
        self.jax.block_until_ready(self.nnx.state(m.net))

    def pm_sync(self, pm: Any) -> None:
        self.jax.block_until_ready(self.nnx.state(pm.model))


def nnx_flat(state: Any) -> list[tuple[tuple, Any]]:
    """(path, variable) pairs of an nnx.State, across flax versions."""
    flat = state.flat_state()
    return list(flat.items() if hasattr(flat, "items") else flat)


CASES: dict[str, type[Case]] = {c.name: c for c in (TorchCase, MXNetCase, KerasCase, FlaxCase, NNXCase)}
