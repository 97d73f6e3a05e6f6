"""Selection by layer type, native class, ndim, native name and count (issue 16), the same for collect and init."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LayerNorm(4 * 6 * 6),
                         nn.Linear(4 * 6 * 6, 5), nn.Embedding(7, 5))


def _ids(views: dict) -> set[int]:
    return {id(v.native) for v in views.values()}


def _params_of(model: nn.Module, classes: tuple[type, ...], leaves: tuple[str, ...] = ("weight", "bias")) -> set[int]:
    return {id(getattr(m, leaf)) for m in model.modules() if isinstance(m, classes) for leaf in leaves}


def test_layer_type_selects_the_parameters_of_those_torch_layers() -> None:
    net = _net()
    pm = up.wrap(net)
    assert _ids(pm.collect(layer="linear")) == _params_of(net, (nn.Linear,))
    assert _ids(pm.collect(layer=("linear", "conv"), kind="weight")) == {id(net[0].weight), id(net[5].weight)}
    assert _ids(pm.collect(layer="batch_norm")) == {id(t) for t in (*net[1].parameters(), *net[1].buffers())}
    assert _ids(pm.collect(layer="embedding")) == {id(net[6].weight)}


def test_native_class_selects_by_isinstance_and_mixes_with_layer_types() -> None:
    net = _net()
    pm = up.wrap(net)
    assert _ids(pm.collect(layer=nn.modules.batchnorm._BatchNorm, kind="weight")) == {id(net[1].weight)}
    assert _ids(pm.collect(layer=(nn.LayerNorm, "embedding"))) == _params_of(net, (nn.LayerNorm,)) | {id(net[6].weight)}


def test_ndim_native_and_pattern_combine_by_and() -> None:
    net = _net()
    pm = up.wrap(net)
    two = {id(p) for p in net.parameters() if p.dim() == 2}
    assert _ids(pm.collect(ndim=2)) == two
    assert _ids(pm.collect(ndim=(2, 4), kind="weight")) == two | {id(net[0].weight)}
    assert _ids(pm.collect(native=r"[56]\.weight")) == {id(net[5].weight), id(net[6].weight)}
    assert _ids(pm.collect(native=r".*weight", ndim=1, pattern=r"1\..*")) == {id(net[1].weight)}
    assert pm.collect(native=r".*weight", trainable=False) == {}


def test_readme_selection_leaves_norm_scales_and_biases_as_they_were() -> None:
    net = _net()
    before = {name: t.detach().clone() for name, t in net.state_dict().items()}
    up.wrap(net).init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=0)
    changed = {name for name, t in net.state_dict().items() if not torch.equal(t, before[name])}
    assert changed == {"0.weight", "5.weight"}


def test_expect_checks_the_count_before_anything_is_written() -> None:
    net = _net()
    pm = up.wrap(net)
    assert len(pm.collect(layer="linear", expect=2)) == 2
    before = [p.detach().clone() for p in net.parameters()]
    match = r"^layer 'linear' selects 2 parameters in the model, not expect=3: "
    with pytest.raises(up.SelectionError, match=match) as err:
        pm.init(up.init.Zeros(), layer="linear", expect=3)
    assert "'5.weight', '5.bias'" in str(err.value)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_long_selection_lists_ten_names_and_how_many_more() -> None:
    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(8)])
    with pytest.raises(up.SelectionError) as err:
        up.wrap(net).collect(expect=1)
    message = str(err.value)
    assert message.count(".weight") + message.count(".bias") == 10 and "6 more" in message


@pytest.mark.parametrize("kwargs, match", [
    ({"layer": "dense"}, "layer 'dense' is not a layer type: pass one of 'linear'"),
    ({"layer": 3}, "layer 3 is not a layer type"),
    ({"layer": ()}, r"layer \(\) is not a layer type"),
    ({"ndim": "2"}, "ndim '2' is not a number of dimensions"),
    ({"ndim": True}, "ndim True is not a number of dimensions"),
    ({"native": b"w"}, "pattern b'w' is not a string"),
    ({"expect": -1}, "expect -1 is not a count"),
    ({"trainable": "yes"}, "trainable 'yes' is not True, False or None"),
])
def test_wrong_selector_is_a_selection_error_and_writes_nothing(kwargs: dict, match: str) -> None:
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    pm = up.wrap(net)
    with pytest.raises(up.SelectionError, match=match):
        pm.collect(**kwargs)
    with pytest.raises(up.SelectionError, match=match):
        pm.init(up.init.Zeros(), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_keras_selection_by_layer_and_native_name() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    pm = up.wrap(model)
    conv, bn, head = (model.get_layer(n) for n in ("stem_conv", "stem_bn", "head"))
    assert _ids(pm.collect(layer="conv")) == {id(conv.kernel), id(conv.bias)}
    assert _ids(pm.collect(layer=keras.layers.Dense, kind="weight")) == {id(head.kernel)}
    assert _ids(pm.collect(native=r"stem_bn/.*", trainable=True)) == {id(bn.gamma), id(bn.beta)}
    before = {v.path: np.array(v.numpy()) for v in model.weights}
    pm.init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=0, expect=2)
    changed = {v.path for v in model.weights if not np.array_equal(before[v.path], np.array(v.numpy()))}
    assert changed == {conv.kernel.path, head.kernel.path}
