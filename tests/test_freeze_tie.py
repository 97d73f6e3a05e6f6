"""freeze/unfreeze set the framework's own trainability; tie shares storage after build (issue 16)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up


def test_torch_freeze_sets_requires_grad_and_grads_leave_frozen_out() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    pm = up.wrap(net)
    pm.freeze(pattern=r"0\..*")
    assert not net[0].weight.requires_grad and not net[0].bias.requires_grad and net[2].weight.requires_grad
    assert pm["0.weight"].trainable is False and pm["2.weight"].trainable is True
    grads = pm.grads(np.ones((5, 4), np.float32))
    assert "0.weight" not in grads and "2.weight" in grads
    assert not pm.collect(trainable=False, kind="weight").keys() - {"0.weight", "1.running_mean", "1.running_var"}
    pm.unfreeze()
    assert all(p.requires_grad for p in net.parameters())
    assert not any(b.requires_grad for b in net.buffers())


def test_freeze_selects_like_collect_and_refuses_an_empty_selection() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    pm = up.wrap(net)
    pm.freeze(layer=nn.LayerNorm, expect=2)
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == ["1.weight", "1.bias"]
    with pytest.raises(up.SelectionError, match="^pattern 'x' matches no parameter to freeze in the model"):
        pm.freeze("x")
    with pytest.raises(up.SelectionError, match="not expect=1"):
        pm.unfreeze(layer=nn.LayerNorm, expect=1)
    assert not net[1].weight.requires_grad


def test_keras_freeze_sets_variable_trainable() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")])
    pm = up.wrap(model)
    pm.freeze(native=".*/a/.*")
    kernel = model.get_layer("a").kernel
    assert kernel.trainable is False and all(v.trainable for v in model.get_layer("b").weights)
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in model.get_layer("b").weights}
    assert pm[kernel.path].trainable is False
    assert set(pm.grads(np.ones((2, 4), np.float32))) == {"1.weight", "1.bias"}
    pm.unfreeze()
    assert kernel.trainable is True


def test_mxnet_freeze_sets_grad_req_and_tie_shares_the_parameter() -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(4, in_units=4), mx.gluon.nn.Dense(4, in_units=4))
    net.initialize()
    pm = up.wrap(net)
    pm.freeze(kind="bias")
    assert [p.grad_req for p in net.collect_params().values()] == ["write", "null", "write", "null"]
    pm.unfreeze(kind="bias")
    pm.tie("0.weight", "1.weight")
    assert net[1].weight is net[0].weight and pm.tied() == [["0.weight", "1.weight"]]
    x = mx.nd.ones((2, 4))
    net.hybridize()
    expected = mx.nd.dot(mx.nd.dot(x, net[0].weight.data().T) + net[0].bias.data(), net[0].weight.data().T)
    assert np.allclose(net(x).asnumpy(), (expected + net[1].bias.data()).asnumpy())
    assert len(pm.state_dict()) == 3


def test_torch_tie_shares_storage_and_sums_gradients() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    pm = up.wrap(net)
    pm.tie("0.weight", "1.weight")
    assert net[1].weight is net[0].weight and pm.tied() == [["0.weight", "1.weight"]]
    x = torch.randn(2, 3)
    net(x).sum().backward()
    expected = net[0].weight.grad.clone()
    grads = pm.grads(x.numpy())
    assert list(grads) == ["0.weight"] and np.array_equal(grads["0.weight"], expected.numpy())


def test_tie_refuses_misfits_and_leaves_the_model_as_it_was() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2), nn.Linear(2, 2).double())
    pm = up.wrap(net)
    with pytest.raises(up.ShapeMismatchError, match="cannot tie '1.weight' .* tie parameters of one shape"):
        pm.tie("0.weight", "1.weight")
    with pytest.raises(up.DtypeMismatchError, match="cannot tie '2.bias' .*float64"):
        pm.tie("1.bias", "2.bias")
    with pytest.raises(up.ParameterNotFoundError):
        pm.tie("0.weight", "9.weight")
    assert pm.tied() == [] and len({id(p) for p in net.parameters()}) == 6


def test_nnx_tie_shares_the_variable_and_freeze_says_how_to_mask() -> None:
    from flax import nnx

    model = nnx.Sequential(nnx.Linear(3, 3, rngs=nnx.Rngs(0)), nnx.Linear(3, 3, rngs=nnx.Rngs(1)))
    pm = up.wrap(model)
    pm.tie("0.weight", "1.weight")
    assert model.layers[1].kernel is model.layers[0].kernel and pm.tied() == [["0.weight", "1.weight"]]
    with pytest.raises(up.UnsupportedError, match="nnx cannot freeze parameters: .*optax.masked"):
        pm.freeze(kind="bias")


def test_linen_and_keras_refuse_tie_and_say_why() -> None:
    import flax.linen as linen
    import jax

    module = linen.Dense(3)
    pm = up.wrap(module, module.init(jax.random.key(0), np.ones((1, 3), np.float32)))
    with pytest.raises(up.UnsupportedError, match="flax cannot tie parameters: .*setup"):
        pm.tie("weight", "bias")
    with pytest.raises(up.UnsupportedError, match="flax cannot unfreeze parameters: .*optax.masked"):
        pm.unfreeze()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), keras.layers.Dense(3)])
    with pytest.raises(up.UnsupportedError, match="keras cannot tie parameters: .*share the layer"):
        up.wrap(model).tie("0.weight", "1.weight")
