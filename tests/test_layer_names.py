"""pm.layer(key) takes a dotted canonical path or the framework's own layer name (issue 16): Keras layer.name, Gluon
block.name, linen module name; torch's attribute path is its canonical path. A name several layers share is refused."""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from torch import nn

import unified_params as up


def _ids(pm: up.ParamAPI) -> set[int]:
    return {id(p.native) for _, p in pm.items()}


def test_keras_functional_positional_layers_by_their_layer_name() -> None:
    inp = keras.Input((4,))
    out = keras.layers.Dense(2)(keras.layers.Dense(8, name="fc2")(keras.layers.Dense(8)(inp)))
    model = keras.Model(inp, out)
    pm = up.wrap(model)
    first, last = (layer for layer in model.layers if layer.name not in ("fc2",) and layer.weights)
    assert pm.names()[:2] == ["0.weight", "0.bias"]
    assert pm.layer(first.name).native_layer is first and _ids(pm.layer(first.name)) == {id(v) for v in first.weights}
    assert pm.layer(last.name).native_layer is last and pm.layer(last.name).names() == pm.layer(2).names()
    assert pm.layer("fc2").native_layer is model.get_layer("fc2")
    with pytest.raises(up.ParameterNotFoundError, match="'fc3'.*closest: 'fc2'"):
        pm.layer("fc3")


def test_keras_applications_model_nested_under_a_dotted_name() -> None:
    app = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False)
    model = keras.Sequential([keras.Input((32, 32, 3)), app, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3)])
    pm = up.wrap(model)
    assert "." in app.name and pm.names()[0].startswith("0.")
    inner = pm.layer(app.name)
    assert inner.native_layer is app and len(inner) == len(app.weights)
    assert pm.layer("Conv1").native_layer is app.get_layer("Conv1")
    assert pm.layer(app.name, "bn_Conv1").native_layer is app.get_layer("bn_Conv1")
    assert pm.layer("0.bn_Conv1").native_layer is app.get_layer("bn_Conv1")


def test_a_native_name_of_several_layers_lists_the_candidates() -> None:
    def block(name: str) -> Any:
        inp = keras.Input((4,))
        return keras.Model(inp, keras.layers.Dense(4, name="proj")(inp), name=name)

    model = keras.Sequential([keras.Input((4,)), block("enc"), block("dec")])
    pm = up.wrap(model)
    before = pm.state_dict()
    with pytest.raises(up.SelectionError, match=r"'proj' names 2 layers.*'0\.proj', '1\.proj'"):
        pm.layer("proj")
    assert pm.layer("dec", "proj").native_layer is model.layers[1].get_layer("proj")
    assert all(np.array_equal(v, pm.state_dict()[k]) for k, v in before.items())


def test_torch_attribute_path_is_the_dotted_canonical_path() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1)))
    pm = up.wrap(net)
    named = dict(net.named_modules())
    assert pm.layer("1.2").native_layer is named["1.2"] and _ids(pm.layer("1.2")) == {id(named["1.2"].weight),
                                                                                     id(named["1.2"].bias)}
    assert pm.layer(1).layer("2").names() == ["weight", "bias"]
    with pytest.raises(up.ParameterNotFoundError):
        pm.layer("1.5")


def test_gluon_block_name() -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(3, in_units=2), mx.gluon.nn.Dense(1, in_units=3))
    net.initialize()
    pm = up.wrap(net)
    second = net[1]
    assert second.name not in ("0", "1")
    assert pm.layer(second.name).native_layer is second
    assert _ids(pm.layer(second.name)) == {id(p) for p in second.collect_params().values()}


def test_linen_module_name_and_scope_path() -> None:
    import jax
    from flax import linen

    class Encoder(linen.Module):
        @linen.compact
        def __call__(self, x: Any) -> Any:
            hidden = linen.Dense(3)(x)
            return linen.Dense(2)(hidden)

    class Net(linen.Module):
        def setup(self) -> None:
            self.encoder = Encoder()
            self.body = linen.Sequential([linen.Dense(2), linen.relu, linen.Dense(2)])
            self.head = linen.Sequential([linen.Dense(1)])

        def __call__(self, x: Any) -> Any:
            return self.head(self.body(self.encoder(x)))

    model = Net()
    variables = model.init(jax.random.key(0), np.ones((1, 4), np.float32))
    params = variables["params"]
    pm = up.wrap(model, variables)
    assert pm.layer("Dense_1")["weight"].native is params["encoder"]["Dense_1"]["kernel"]
    assert pm.layer("encoder/Dense_1")["weight"].native is params["encoder"]["Dense_1"]["kernel"]
    assert pm.layer("layers_2")["weight"].native is params["body"]["layers_2"]["kernel"]
    assert pm.layer("head/layers_0")["weight"].native is params["head"]["layers_0"]["kernel"]
    assert pm.layer("body", "layers_0")["weight"].native is params["body"]["layers_0"]["kernel"]
    with pytest.raises(up.SelectionError, match=r"'layers_0' names 2 layers.*'body\.0', 'head\.0'"):
        pm.layer("layers_0")
