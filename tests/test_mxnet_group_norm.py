"""MXNet 1.9 GroupNorm keeps gamma/beta per group (G,): canonical per channel (C,), exact where values allow it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import unified_params as up
from unified_params.backends.mxnet_import import import_mxnet

X = np.random.default_rng(0).normal(size=(2, 4, 3, 3)).astype(np.float32)


def _mxnet() -> tuple[object, up.ParamAPI]:
    mx = import_mxnet()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.GroupNorm(2, epsilon=1e-5))
    net.initialize()
    return net, up.wrap(net)


def _torch(weight: list[float], bias: list[float]) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.GroupNorm(2, 4, eps=1e-5))
    with torch.no_grad():
        model[0].weight[:] = torch.tensor(weight)
        model[0].bias[:] = torch.tensor(bias)
    return model


def _run(net: object) -> np.ndarray:
    return net(import_mxnet().nd.array(X)).asnumpy()


def test_channels_are_known_once_the_layer_has_run() -> None:
    net, pm = _mxnet()
    assert pm.pending() == ["0.weight", "0.bias"]
    with pytest.raises(up.DeferredInitializationError, match="materialize"):
        pm["0.weight"].numpy()
    pm.materialize(X)
    assert {n: p.shape for n, p in pm.items()} == {"0.weight": (4,), "0.bias": (4,)}
    np.testing.assert_array_equal(pm["0.weight"].numpy(), np.repeat(net[0].gamma.data().asnumpy(), 2))


def test_from_torch_and_back(tmp_path: Path) -> None:
    net, pm = _mxnet()
    pm.materialize(X)
    source = _torch([1.5, 1.5, 0.5, 0.5], [0.25, 0.25, -1.0, -1.0])
    up.transfer(source, pm)
    expected = source(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(_run(net), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(net[0].gamma.data().asnumpy(), [1.5, 0.5])
    pm.save(tmp_path / "mxnet.safetensors")
    back = up.wrap(_torch([0, 0, 0, 0], [0, 0, 0, 0])).load(tmp_path / "mxnet.safetensors")
    assert all(np.array_equal(v, source.state_dict()[n].numpy()) for n, v in back.state_dict().items())


def test_values_that_differ_within_a_group_are_refused() -> None:
    net, pm = _mxnet()
    pm.materialize(X)
    before = {n: v.copy() for n, v in pm.state_dict().items()}
    with pytest.raises(up.UnsupportedError, match=r"layer '0' .* 'weight'.* differ within a group"):
        up.transfer(_torch([1.0, 2.0, 3.0, 3.0], [0, 0, 0, 0]), pm)
    with pytest.raises(up.UnsupportedError, match="equal values within each group"):
        pm.init(up.init.Uniform(0.2, 0.9), seed=0)
    assert all(np.array_equal(v, before[n]) for n, v in pm.state_dict().items())
    pm.init(up.init.Constant(0.5), kind="weight")
    np.testing.assert_array_equal(net[0].gamma.data().asnumpy(), [0.5, 0.5])


def test_gradient_is_mxnets_per_group_gradient_shown_per_channel() -> None:
    mx = import_mxnet()
    net, pm = _mxnet()
    pm.materialize(X)
    grads = pm.grads(X, loss=lambda out: (out * out).sum())
    x = mx.nd.array(X)
    with mx.autograd.record():
        out = net(x)
        loss = (out * out).sum()
    loss.backward()
    np.testing.assert_allclose(grads["0.weight"], np.repeat(net[0].gamma.grad().asnumpy(), 2), rtol=1e-6)
