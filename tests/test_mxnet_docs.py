"""The documents' MXNet code (seed 001, and the MXNet parts of 003 and 004) run through up.wrap.

Each test runs the snippet as written with Gluon, then does the same through the unified API and
checks it against MXNet's own objects and against what the snippet prints.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as onp
import pytest

import unified_params as up
from unified_params.backends.mxnet_import import import_mxnet

mx = import_mxnet()
from mxnet import autograd, init, nd, npx  # noqa: E402
from mxnet.gluon import nn  # noqa: E402


def seed001_net() -> tuple[nn.Sequential, nd.NDArray]:
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"))
    net.add(nn.Dense(10))
    net.initialize()
    X = nd.random.uniform(shape=(2, 20))
    net(X)
    return net, X


def printing_init(pm: up.ParamAPI) -> up.init.Initializer:
    """The blog's MyInit through the unified API: U(-10, 10) zeroed where abs < 5, printing the native name."""

    def my_init(shape: tuple, dtype: onp.dtype, rng: onp.random.Generator, name: str) -> onp.ndarray:
        print("Init", pm[name].native_name, shape)
        data = rng.uniform(-10, 10, shape)
        return data * (onp.abs(data) >= 5)

    return my_init


def test_001_access(capsys: pytest.CaptureFixture) -> None:
    net, X = seed001_net()
    pm = up.wrap(net)
    print(pm.layer(0).summary())
    table = capsys.readouterr().out
    assert net[0].weight.name in table and "(256, 20)" in table
    assert [p.native_name for p in pm.layer(0).values()] == list(net[0].params.keys())
    assert pm.names() == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert pm["0.weight"].native is net[0].weight
    onp.testing.assert_array_equal(pm["0.weight"].numpy(), net[0].weight.data().asnumpy())
    onp.testing.assert_array_equal(pm["1.bias"].numpy(), net[1].bias.data().asnumpy())
    assert (net[0].weight.grad().asnumpy() == 0).all() and pm["0.weight"].grad is None
    assert [p.native for p in pm.collect(r".*weight").values()] == list(net.collect_params(".*weight").values())
    assert pm[net[1].bias.name].native is net[1].bias


def test_001_builtin_init() -> None:
    net, _ = seed001_net()
    pm = up.wrap(net)
    pm.init(up.init.Normal(std=0.01), kind="weight", seed=0)
    w = net[0].weight.data().asnumpy()
    assert 0.008 < w.std() < 0.012 and abs(w.mean()) < 0.002
    pm.init(up.init.Constant(2), kind="weight")
    print(net[0].weight.data()[0])
    assert (net[0].weight.data()[0].asnumpy() == 2).all() and (net[1].weight.data().asnumpy() == 2).all()
    assert (net[0].bias.data().asnumpy() == 0).all()


def test_001_custom_init_and_set_data(capsys: pytest.CaptureFixture) -> None:
    net, _ = seed001_net()
    pm = up.wrap(net)
    pm.init(printing_init(pm), kind="weight", seed=1)
    assert capsys.readouterr().out.splitlines() == [
        f"Init {net[0].weight.name} (256, 20)", f"Init {net[1].weight.name} (10, 256)"]
    w = net[0].weight.data().asnumpy()
    assert ((w == 0) | ((onp.abs(w) >= 5) & (onp.abs(w) <= 10))).all()
    pm["0.weight"].update(lambda v: v + 1)
    onp.testing.assert_array_equal(net[0].weight.data().asnumpy(), w + 1)
    wdata = net[0].weight.data()
    net[0].weight.set_data(wdata + 1)
    onp.testing.assert_array_equal(pm["0.weight"].numpy(), w + 2)


def test_001_native_custom_initializer_on_a_wrapped_model(capsys: pytest.CaptureFixture) -> None:
    class MyInit(init.Initializer):
        def _init_weight(self, name: str, data: nd.NDArray) -> None:
            print(name, data.shape)
            data[:] = nd.random.uniform(low=-10, high=10, shape=data.shape)
            data *= data.abs() >= 5

    net, _ = seed001_net()
    pm = up.wrap(net)
    net.initialize(MyInit(), force_reinit=True)
    assert capsys.readouterr().out.splitlines() == [
        f"{net[0].weight.name} (256, 20)", f"{net[1].weight.name} (10, 256)"]
    onp.testing.assert_array_equal(pm["0.weight"].numpy(), net[0].weight.data().asnumpy())


def test_001_shared_params(capsys: pytest.CaptureFixture) -> None:
    net = nn.Sequential()
    shared = nn.Dense(8, activation="relu")
    net.add(nn.Dense(8, activation="relu"), shared, nn.Dense(8, activation="relu", params=shared.params))
    net.initialize()
    X = nd.random.uniform(shape=(2, 20))
    net(X)
    pm = up.wrap(net)
    assert pm.tied() == [["1.weight", "2.weight"], ["1.bias", "2.bias"]]
    assert pm["2.weight"].native is net[2].weight is net[1].weight
    print(net[1].weight.data()[0])
    print(net[2].weight.data()[0])
    first, second = capsys.readouterr().out.split("<NDArray 8 @cpu(0)>")[:2]
    assert first.strip() == second.strip()
    pm["1.weight"].update(lambda v: (v.__setitem__((0, 0), 100), v)[1])
    assert net[2].weight.data()[0, 0].asscalar() == 100
    grads = pm.grads(X)
    with autograd.record():
        y = net(X)
    y.backward()
    onp.testing.assert_allclose(grads["1.weight"], net[1].weight.grad().asnumpy(), rtol=1e-5)
    assert "2.weight" not in grads
    assert pm.num_params() == (20 * 8 + 8) + (8 * 8 + 8)


def test_001_deferred_init_native_initializer(capsys: pytest.CaptureFixture) -> None:
    class MyInit(init.Initializer):
        def _init_weight(self, name: str, data: nd.NDArray) -> None:
            print("Init", name, data.shape)

    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"), nn.Dense(10))
    net.initialize(init=MyInit())
    pm = up.wrap(net)
    assert capsys.readouterr().out == ""
    assert not pm.initialized and pm["0.weight"].shape == (256, None)
    with pytest.raises(up.DeferredInitializationError, match="0.weight"):
        pm["0.weight"].numpy()
    X = nd.random.uniform(shape=(2, 20))
    net(X)
    assert capsys.readouterr().out.splitlines() == [
        f"Init {net[0].weight.name} (256, 20)", f"Init {net[1].weight.name} (10, 256)"]
    assert pm.initialized and [p.shape for p in pm.values()] == [(256, 20), (256,), (10, 256), (10,)]


def test_001_deferred_init_recorded_runs_on_users_forward(capsys: pytest.CaptureFixture) -> None:
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"), nn.Dense(10))
    net.initialize()
    pm = up.wrap(net)
    pm.init(printing_init(pm), kind="weight", seed=2)
    assert capsys.readouterr().out == ""
    net(nd.random.uniform(shape=(2, 20)))
    assert capsys.readouterr().out.splitlines() == [
        f"Init {net[0].weight.name} (256, 20)", f"Init {net[1].weight.name} (10, 256)"]
    w = net[1].weight.data().asnumpy()
    assert ((w == 0) | ((onp.abs(w) >= 5) & (onp.abs(w) <= 10))).all() and (w != 0).any()


def test_001_avoiding_deferral(capsys: pytest.CaptureFixture) -> None:
    net = nn.Sequential()
    net.add(nn.Dense(256, in_units=20, activation="relu"), nn.Dense(10, in_units=256))
    net.initialize()
    pm = up.wrap(net)
    assert pm.initialized and pm.pending() == []
    pm.init(printing_init(pm), kind="weight", seed=3)
    assert capsys.readouterr().out.splitlines() == [
        f"Init {net[0].weight.name} (256, 20)", f"Init {net[1].weight.name} (10, 256)"]
    before = net[0].weight.data().asnumpy()
    net.initialize(init=init.Constant(1), force_reinit=True)
    assert (pm["0.weight"].numpy() == 1).all() and not (before == 1).all()


@pytest.fixture
def np_mode() -> Iterator[None]:
    """The 003/004 chapters run Gluon with npx.set_np()."""
    npx.set_np()
    try:
        yield
    finally:
        npx.reset_np()


def test_003_parameter_access(np_mode: None) -> None:
    from mxnet import np

    net = nn.Sequential()
    net.add(nn.Dense(8, activation="relu"))
    net.add(nn.Dense(1))
    net.initialize()
    X = np.random.uniform(size=(2, 4))
    assert net(X).shape == (2, 1)
    pm = up.wrap(net)
    assert [p.native_name for p in pm.layer(1).values()] == list(net[1].params.keys())
    assert [p.shape for p in pm.layer(1).values()] == [(1, 8), (1,)]
    assert isinstance(pm["1.bias"].native, mx.gluon.Parameter) and pm["1.bias"].native is net[1].bias
    onp.testing.assert_array_equal(pm["1.bias"].numpy(), net[1].bias.data().asnumpy())
    assert (net[1].weight.grad() == 0).all() and pm["1.weight"].grad is None
    assert [p.native_name for p in pm.values()] == list(net.collect_params().keys())
    assert [p.shape for p in pm.values()] == [tuple(p.shape) for p in net.collect_params().values()]


def test_003_tied_parameters(np_mode: None, capsys: pytest.CaptureFixture) -> None:
    from mxnet import np

    net = nn.Sequential()
    shared = nn.Dense(8, activation="relu")
    net.add(nn.Dense(8, activation="relu"), shared, nn.Dense(8, activation="relu", params=shared.params), nn.Dense(10))
    net.initialize()
    X = np.random.uniform(size=(2, 20))
    net(X)
    pm = up.wrap(net)
    print(net[1].weight.data()[0] == net[2].weight.data()[0])
    net[1].weight.data()[0, 0] = 100
    print(net[1].weight.data()[0] == net[2].weight.data()[0])
    assert capsys.readouterr().out.splitlines() == ["[ True  True  True  True  True  True  True  True]"] * 2
    assert pm["2.weight"].numpy()[0, 0] == 100
    assert pm.tied() == [["1.weight", "2.weight"], ["1.bias", "2.bias"]]
    assert pm.num_params() == (20 * 8 + 8) + (8 * 8 + 8) + (8 * 10 + 10)


def test_004_deferred_shapes(np_mode: None) -> None:
    from mxnet import np

    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"))
    net.add(nn.Dense(10))
    pm = up.wrap(net)
    assert [p.shape for p in net.collect_params().values()] == [(256, -1), (256,), (10, -1), (10,)]
    assert [p.shape for p in pm.values()] == [(256, None), (256,), (10, None), (10,)]
    assert not any(p.initialized for p in pm.values())
    net.initialize()
    assert [p.shape for p in pm.values()] == [(256, None), (256,), (10, None), (10,)]
    assert pm.pending() == ["0.weight", "1.weight"]
    net(np.random.uniform(size=(2, 20)))
    assert [p.shape for p in net.collect_params().values()] == [(256, 20), (256,), (10, 256), (10,)]
    assert [p.shape for p in pm.values()] == [(256, 20), (256,), (10, 256), (10,)]


def test_004_exercises_mismatch_and_other_input_size() -> None:
    net = nn.Sequential()
    net.add(nn.Dense(256, in_units=20, activation="relu"), nn.Dense(10, in_units=100))
    net.initialize()
    pm = up.wrap(net)
    before = [p.data().asnumpy() for p in net.collect_params().values()]
    with pytest.raises(up.ShapeMismatchError, match=r"layer '1'.*100.*256"):
        pm.materialize(onp.zeros((2, 20), onp.float32))
    with pytest.raises(mx.base.MXNetError):
        net(nd.zeros((2, 20)))
    deferred = nn.Sequential()
    deferred.add(nn.Dense(256, activation="relu"), nn.Dense(10))
    deferred.initialize()
    pm = up.wrap(deferred)
    pm.materialize(onp.zeros((2, 20), onp.float32))
    with pytest.raises(up.ShapeMismatchError, match=r"layer '0'.*20.*30"):
        pm.materialize(onp.zeros((2, 30), onp.float32))
    assert deferred[0].weight.shape == (256, 20)
    for p, b in zip(net.collect_params().values(), before):
        onp.testing.assert_array_equal(p.data().asnumpy(), b)
