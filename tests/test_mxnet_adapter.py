"""MXNet-specific behaviour beyond the conformance suite, checked against Gluon's own objects."""
from __future__ import annotations

import numpy as onp
import pytest

import unified_params as up
from unified_params.backends.mxnet_import import import_mxnet

mx = import_mxnet()
from mxnet import autograd, gluon, nd  # noqa: E402
from mxnet.gluon import nn  # noqa: E402


class ConvNet(nn.HybridBlock):
    """Named child attributes under name_scope: conv, bn, ln, head (a nested HybridSequential)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(4, 3)
            self.bn = nn.BatchNorm()
            self.ln = nn.LayerNorm()
            self.head = nn.HybridSequential()
            self.head.register_child(nn.Dense(3), "block 0")

    def hybrid_forward(self, F, x):  # noqa: ANN001, ANN201, N803
        return self.head(self.ln(self.bn(self.conv(x))))


def images(channels: int = 3) -> onp.ndarray:
    return onp.random.default_rng(0).uniform(size=(2, channels, 6, 6)).astype(onp.float32)


@pytest.mark.parametrize("hybridize", [False, True])
def test_named_children_leaves_and_deferred_shapes(hybridize: bool) -> None:
    net = ConvNet()
    net.initialize()
    if hybridize:
        net.hybridize()
    pm = up.wrap(net)
    assert pm.names() == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                          "ln.weight", "ln.bias", "head.block 0.weight", "head.block 0.bias"]
    assert pm["conv.weight"].shape == (4, None, 3, 3) and pm["bn.weight"].shape == (None,)
    assert [p.native_name for p in pm.values()] == list(net.collect_params().keys())
    assert pm["bn.running_var"].kind == "running_var" and not pm["bn.running_var"].trainable
    pm.init(up.init.Constant(0.5), pattern=r"conv\.weight")
    pm.materialize(images())
    assert net.conv.weight.shape == (4, 3, 3, 3) and (net.conv.weight.data().asnumpy() == 0.5).all()
    assert net.head[0].weight.shape == (3, 64) and pm["head.block 0.weight"].shape == (3, 64)
    assert pm["bn.weight"].native is net.bn.gamma and pm["ln.bias"].native is net.ln.beta
    assert net._active is hybridize


def test_conv_embedding_shapes_are_gluons() -> None:
    layers = {"c1": nn.Conv1D(2, 3, in_channels=1), "c3": nn.Conv3D(2, 3, in_channels=1),
              "emb": nn.Embedding(10, 4), "dense": nn.Dense(5, in_units=7)}
    for layer in layers.values():
        layer.initialize()
        pm = up.wrap(layer)
        assert [p.shape for p in pm.values()] == [p.shape for p in layer.collect_params().values()]
        for name, p in pm.items():
            onp.testing.assert_array_equal(p.numpy(), getattr(layer, name).data().asnumpy())


def test_mismatch_leaves_deferred_params_deferred() -> None:
    net = nn.HybridSequential()
    net.add(nn.Dense(4), nn.Activation("relu"), nn.Dense(2, in_units=3))
    net.initialize()
    net.hybridize()
    pm = up.wrap(net)
    with pytest.raises(up.ShapeMismatchError, match=r"layer '2'.*3.*4"):
        pm.materialize(onp.ones((1, 7), onp.float32))
    assert net[0].weight.shape == (4, 0) and net[0].weight._deferred_init
    with pytest.raises(gluon.parameter.DeferredInitializationError):
        net[0].weight.data()
    assert net._active and pm.pending() == ["0.weight"]


def test_users_hybridized_forward_runs_recorded_init() -> None:
    net = nn.HybridSequential()
    net.add(nn.Dense(4), nn.Activation("relu"), nn.Dense(2))
    net.initialize()
    net.hybridize()
    pm = up.wrap(net)
    pm.init(up.init.Constant(0.25), kind="weight")
    out = net(nd.ones((1, 7)))
    assert (net[0].weight.data().asnumpy() == 0.25).all() and (net[2].weight.data().asnumpy() == 0.25).all()
    onp.testing.assert_allclose(out.asnumpy(), [[1.75, 1.75]])
    assert pm.initialized


def _deferred_net() -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(4), nn.Dense(2))
    net.initialize()
    return net


def test_the_later_call_wins_between_pm_init_and_gluons_own() -> None:
    net = _deferred_net()
    pm = up.wrap(net)
    pm.init(up.init.Constant(3), kind="weight")
    with pytest.warns(UserWarning, match="bias' is already initialized"):
        net.initialize(mx.init.Constant(7))
    net(nd.ones((1, 5)))
    assert (net[0].weight.data().asnumpy() == 7).all() and (net[1].weight.data().asnumpy() == 7).all()
    net = _deferred_net()
    net.initialize(mx.init.Constant(7), force_reinit=True)
    pm = up.wrap(net)
    pm.init(up.init.Constant(3), pattern=r"0\.weight")
    net(nd.ones((1, 5)))
    assert (net[0].weight.data().asnumpy() == 3).all() and (net[1].weight.data().asnumpy() == 7).all()
    pm.materialize(onp.ones((1, 5), onp.float32))
    assert (net[0].weight.data().asnumpy() == 3).all() and not pm._model.records


def test_initialize_that_gluon_ignores_changes_nothing() -> None:
    net = nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(1))
    pm = up.wrap(net)
    pm.init(up.init.Constant(3), kind="weight")
    with pytest.warns(UserWarning, match="already initialized"):
        net.initialize(mx.init.Constant(7))
    assert (net.weight.data().asnumpy() == 3).all()


def test_never_initialized_model_materializes_without_inputs() -> None:
    net = nn.Sequential()
    net.add(nn.Dense(5, in_units=3), nn.Dense(2, in_units=5))
    pm = up.wrap(net)
    assert pm.pending() == [] and pm.pending("storage") == pm.names()
    pm.init(up.init.Ones(), kind="weight")
    net.initialize(mx.init.Constant(2))
    assert (net[0].weight.data().asnumpy() == 2).all()
    assert pm.materialize() is pm and pm.initialized


def test_never_initialized_model() -> None:
    net = nn.Sequential()
    net.add(nn.Dense(5, in_units=3), nn.Dense(2))
    pm = up.wrap(net)
    assert [(p.shape, p.initialized) for p in pm.values()] == [((5, 3), False), ((5,), False),
                                                               ((2, None), False), ((2,), False)]
    with pytest.raises(up.DeferredInitializationError):
        pm.forward(onp.ones((1, 3), onp.float32))
    pm.init(up.init.Ones(), kind="weight")
    pm.materialize(onp.ones((1, 3), onp.float32))
    assert (net[0].weight.data().asnumpy() == 1).all() and net[1].weight.data().shape == (2, 5)
    assert (net[1].bias.data().asnumpy() == 0).all()


def test_grad_none_until_backward_and_after_zero_grad() -> None:
    net = nn.Dense(2, in_units=3)
    net.initialize()
    pm = up.wrap(net)
    assert (net.weight.grad().asnumpy() == 0).all() and pm["weight"].grad is None
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    with autograd.record():
        y = net(nd.ones((4, 3)))
    y.backward()
    onp.testing.assert_array_equal(pm["weight"].grad, net.weight.grad().asnumpy())
    trainer.step(4)
    onp.testing.assert_array_equal(pm["weight"].grad, net.weight.grad().asnumpy())
    net.collect_params().zero_grad()
    assert pm["weight"].grad is None


def test_running_stats_have_no_grad_and_forward_uses_them() -> None:
    net = nn.BatchNorm(in_channels=3)
    net.initialize()
    pm = up.wrap(net)
    pm["running_mean"].set(onp.full(3, 1.0, onp.float32))
    grads = pm.grads(images())
    assert set(grads) == {"weight", "bias"} and pm["running_mean"].grad is None
    with autograd.predict_mode():
        native = net(nd.array(images())).asnumpy()
    onp.testing.assert_allclose(pm.forward(images()), native, rtol=1e-6)
    assert (net.running_mean.data().asnumpy() == 1).all()


def test_grads_with_grad_req_add_leave_the_accumulator_as_it_was() -> None:
    net = nn.Dense(2, in_units=3)
    net.initialize()
    net.collect_params().setattr("grad_req", "add")
    pm = up.wrap(net)
    x = onp.arange(12, dtype=onp.float32).reshape(4, 3)
    with autograd.record():
        y = net(nd.array(x))
    y.backward()
    users = net.weight.grad().asnumpy().copy()
    first, second = pm.grads(x), pm.grads(x)
    onp.testing.assert_array_equal(net.weight.grad().asnumpy(), users)
    onp.testing.assert_array_equal(first["weight"], second["weight"])
    onp.testing.assert_allclose(first["weight"], users, rtol=1e-6)
    assert net.weight.data()._fresh_grad


class Aliased(nn.HybridBlock):
    """One Dense registered under two attributes (`self.b = self.a`): Gluon keeps both children keys."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.a = nn.Dense(3, in_units=3)
            self.c = nn.Dense(3, in_units=3)
            self.b = self.a

    def hybrid_forward(self, F, x):  # noqa: ANN001, ANN201, N803
        return self.b(self.c(self.a(x)))


def test_block_registered_under_two_attributes_is_a_tied_alias() -> None:
    net = Aliased()
    net.initialize()
    pm = up.wrap(net)
    assert list(net._children) == ["a", "c", "b"]
    assert pm.names() == ["a.weight", "a.bias", "c.weight", "c.bias", "b.weight", "b.bias"]
    assert pm.tied() == [["a.weight", "b.weight"], ["a.bias", "b.bias"]]
    pm["b.bias"].set(onp.full(3, 5, onp.float32))
    onp.testing.assert_array_equal(net.a.bias.data().asnumpy(), onp.full(3, 5, onp.float32))


def _half(shape, dtype, rng, name):  # noqa: ANN001, ANN202
    return onp.full(shape, 0.5)


@pytest.mark.parametrize("materialized", [False, True])
def test_wrapped_block_pickles_deep_copies_saves_and_exports(materialized: bool, tmp_path) -> None:  # noqa: ANN001
    import copy
    import pickle

    net = nn.HybridSequential()
    net.add(nn.Dense(8), nn.Dense(2))
    net.initialize()
    up.wrap(net).init(_half, kind="weight")
    x = nd.array(onp.ones((3, 5), onp.float32))
    if materialized:
        net(x)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        other(x)
        assert bool((other[0].weight.data().asnumpy() == 0.5).all()) == materialized
    net.hybridize()
    net(x)
    net.save_parameters(str(tmp_path / "net.params"))
    net.export(str(tmp_path / "net"))
    assert (net[0].weight.data().asnumpy() == 0.5).all() and (tmp_path / "net-symbol.json").exists()
