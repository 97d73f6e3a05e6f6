"""The documents' examples built with mxnet.gluon, and oracles that read them with Gluon's own API."""
from __future__ import annotations

from typing import Any

import numpy as np

from unified_params.backends.mxnet_import import import_mxnet
from unified_params.conformance.examples import Built

mx = import_mxnet()
from mxnet import autograd, nd  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

PARAM_TYPE = mx.gluon.Parameter
_LEAVES = {"weight": "gamma", "bias": "beta"}


def _sequential(*layers: Any) -> nn.Sequential:
    net = nn.Sequential()
    net.add(*layers)
    return net


def _relu() -> nn.Activation:
    return nn.Activation("relu")


def mlp() -> Built:
    """E1-E5: Dense(4->8), ReLU, Dense(8->1), initialized with Gluon's default initializer."""
    net = _sequential(nn.Dense(8, in_units=4), _relu(), nn.Dense(1, in_units=8))
    net.initialize()
    return Built(net)


def _block1() -> nn.Sequential:
    return _sequential(nn.Dense(8, in_units=4), _relu(), nn.Dense(4, in_units=8), _relu())


def _block2() -> nn.Sequential:
    net = nn.Sequential()
    for i in range(4):
        net.register_child(_block1(), f"block {i}")
    return net


def nested() -> Built:
    """E6: rgnet = Sequential(block2(), Dense(4->1)), block2 holding block1s registered as `block 0..3`."""
    net = _sequential(_block2(), nn.Dense(1, in_units=4))
    net.initialize()
    return Built(net)


def tied() -> Built:
    """E10: one `shared` Dense block added at positions 2 and 4."""
    shared = nn.Dense(8, in_units=8)
    net = _sequential(nn.Dense(8, in_units=4), _relu(), shared, _relu(), shared, _relu(), nn.Dense(1, in_units=8))
    net.initialize()
    return Built(net)


def deferred() -> Built:
    """E11: Dense(256), ReLU, Dense(10) with no in_units; initialize() registers the deferred init."""
    net = _sequential(nn.Dense(256), _relu(), nn.Dense(10))
    net.initialize()
    return Built(net)


def eager() -> Built:
    """E12: every in_units given, so initialize() initializes at once."""
    net = _sequential(nn.Dense(256, in_units=20), _relu(), nn.Dense(10, in_units=256))
    net.initialize()
    return Built(net)


class Pair(mx.gluon.Block):
    """A model taking one tuple (x, y): dense(x) + y, with a deferred Dense."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(4)

    def forward(self, pair: tuple[Any, Any]) -> Any:
        x, y = pair
        return self.dense(x) + y


def deferred_pair() -> Built:
    net = Pair()
    net.initialize()
    return Built(net)


def deferred_tied() -> Built:
    """The shared Dense used again through `params=` (Gluon's alias of a shared layer), all deferred."""
    shared = nn.Dense(8)
    net = _sequential(nn.Dense(8), _relu(), shared, _relu(), nn.Dense(8, params=shared.params), _relu(), nn.Dense(1))
    net.initialize()
    return Built(net)


def unallocated() -> Built:
    """Dense(5, in_units=3): its shapes are known, but initialize() was never called."""
    return Built(_sequential(nn.Dense(5, in_units=3), _relu(), nn.Dense(2, in_units=5)))


def native_reinit(pm: Any, x: np.ndarray, value: float) -> None:
    """net.initialize(Constant(value), force_reinit=True) on the deferred net, before any data; then a forward."""
    pm.model.initialize(mx.init.Constant(value), force_reinit=True)
    native_forward(pm, x)


def native_initialized(pm: Any, name: str) -> bool:
    try:
        native_object(pm, name).data()
    except (mx.gluon.parameter.DeferredInitializationError, RuntimeError):
        return False
    return True


def _child(block: Any, key: str) -> Any:
    """net[i] for a Sequential (the key's position), the attribute for a custom block."""
    if isinstance(block, (nn.Sequential, nn.HybridSequential)):
        return block[list(block._children).index(key)]
    return getattr(block, key)


def native_object(pm: Any, name: str) -> Any:
    """The gluon.Parameter for a canonical name, reached as net[0][1][0].bias (gamma/beta for norms)."""
    *path, leaf = name.split(".")
    block = pm.model
    for key in path:
        block = _child(block, key)
    found = getattr(block, leaf, None)
    return found if isinstance(found, PARAM_TYPE) else getattr(block, _LEAVES[leaf])


def native_value(pm: Any, name: str) -> np.ndarray:
    """The parameter's value read with Parameter.data()."""
    return native_object(pm, name).data().asnumpy()


def native_names(pm: Any) -> list[str]:
    """Gluon's own listing: collect_params() keys (a shared parameter once)."""
    return list(pm.model.collect_params().keys())


def native_forward(pm: Any, *xs: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """net(*xs) as the user calls it (each an array, or a tuple of arrays as one input); it finishes a deferred init."""
    def arg(x: Any) -> Any:
        return tuple(map(arg, x)) if isinstance(x, tuple) else nd.array(x, dtype=x.dtype)

    return pm.model(*map(arg, xs)).asnumpy()


def _canonical(structural: str) -> str:
    """Gluon's structural name (`0.gamma`, as save_parameters writes it) with the canonical leaf."""
    path, _, leaf = structural.rpartition(".")
    leaf = {v: k for k, v in _LEAVES.items()}.get(leaf, leaf)
    return f"{path}.{leaf}" if path else leaf


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of sum(net(x)) by autograd.record + backward, named by Gluon's structural names."""
    with autograd.record():
        y = pm.model(nd.array(x, dtype=x.dtype))
    y.backward()
    return native_grad_state(pm)


def native_grad_state(pm: Any) -> dict[str, np.ndarray]:
    """What Gluon's own gradient buffers hold now (param.grad()), without computing anything."""
    grads: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for name, p in pm.model._collect_params_with_prefix().items():
        if id(p) not in seen and p.grad_req != "null":
            seen.add(id(p))
            grads[_canonical(name)] = p.grad().asnumpy()
    return grads


GRAD_BEFORE_BACKWARD = "zeros (param.grad())"


class Zoo(nn.HybridBlock):
    """Conv, batch norm, pooling, embedding, layer norm and dense: the cross-framework model (docs/adapters.md)."""

    def __init__(self) -> None:
        super().__init__()
        with self.name_scope():
            self.conv = nn.Conv2D(4, 3, in_channels=3)
            self.bn = nn.BatchNorm(epsilon=1e-5, in_channels=4, use_global_stats=True)
            self.embed = nn.Embedding(10, 4)
            self.norm = nn.LayerNorm(epsilon=1e-5, in_channels=4)
            self.head = nn.Dense(2, in_units=4)
            self.pool = nn.AvgPool2D(2)

    def hybrid_forward(self, F: Any, image: Any, tokens: Any) -> Any:
        h = self.pool(F.relu(self.bn(self.conv(image)))).mean(axis=(2, 3))
        return self.head(self.norm(h + self.embed(tokens).mean(axis=1)))


def zoo() -> Built:
    net = Zoo()
    net.initialize()
    return Built(net)


def zoo_input() -> tuple[np.ndarray, np.ndarray]:
    """(image NCHW float32 (2, 3, 8, 8), tokens int32 (2, 5)): channels-first, as Gluon expects."""
    from unified_params.conformance.examples import zoo_image, zoo_tokens

    return zoo_image().transpose(0, 3, 1, 2).copy(), zoo_tokens()


def replace_layer(model: Any) -> None:
    model.register_child(nn.Dense(3, in_units=8), "2")
    model[2].initialize()


def append_layer(model: Any) -> None:
    model.add(nn.Dense(2, in_units=1))
    model[3].initialize()


def delete_layer(model: Any) -> None:
    del model._children["2"]


def set_trainable(model: Any, position: int, flag: bool) -> None:
    model[position].collect_params().setattr("grad_req", "write" if flag else "null")


def cast(model: Any) -> str:
    model.cast("float64")
    return "float64"


UNSUPPORTED_MUTATIONS = {
    "reassign_weight": "Gluon refuses to assign a Parameter attribute twice ('Overriding Parameter attribute ... is "
                       "not allowed'); its values change in place (set_data) instead",
}
