"""NNX adapter beyond the docs: attribute order, batch statistics, containers, shared Variables, bridge lazy modules."""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

import jax.numpy as jnp  # noqa: E402
from flax import linen  # noqa: E402
from flax.nnx import bridge  # noqa: E402

import unified_params as up  # noqa: E402


class Net(nnx.Module):
    """Attributes defined out of alphabetical order, a conv, batch norm, dropout and an nnx.List."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.heads = nnx.List([nnx.Linear(4 * 5 * 5, 2, rngs=rngs), nnx.Linear(2, 1, rngs=rngs)])

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.drop(nnx.relu(self.bn(self.conv(x))))
        x = x.reshape((x.shape[0], -1))
        for head in self.heads:
            x = head(x)
        return x


@pytest.fixture
def net() -> Net:
    return Net(nnx.Rngs(0))


@pytest.fixture(scope="module")
def x() -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 3))


def test_names_follow_definition_order(net: Net) -> None:
    pm = up.wrap(net)
    assert pm.names() == [
        "conv.weight", "conv.bias",
        "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
        "heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias"]
    assert pm["bn.running_mean"].native is net.bn.mean and not pm["bn.running_mean"].trainable
    assert isinstance(pm["bn.weight"].native, nnx.Param) and pm["bn.weight"].native_name == "bn/scale"
    assert pm["heads.1.bias"].native_name == "heads/1/bias"
    np.testing.assert_array_equal(pm["conv.weight"].numpy(), np.asarray(net.conv.kernel[...]).transpose(3, 2, 0, 1))
    assert [c.key for c in pm._node().children] == ["conv", "bn", "drop", "heads"]


def test_write_in_place_and_native_layout(net: Net) -> None:
    pm = up.wrap(net)
    kernel = net.conv.kernel
    canonical = np.arange(4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    pm["conv.weight"].set(canonical)
    assert net.conv.kernel is kernel
    np.testing.assert_array_equal(np.asarray(kernel[...]), canonical.transpose(2, 3, 1, 0))


def test_forward_is_inference_and_leaves_the_model_alone(net: Net, x: jax.Array) -> None:
    pm = up.wrap(net)
    mean = np.asarray(net.bn.mean[...])
    out = pm.forward(x)
    assert net.bn.use_running_average is False and net.drop.deterministic is False
    np.testing.assert_array_equal(np.asarray(net.bn.mean[...]), mean)
    net.eval()
    np.testing.assert_allclose(out, np.asarray(net(x)), rtol=1e-6, atol=1e-6)


def test_grads_in_inference_mode_match_nnx_grad(net: Net, x: jax.Array) -> None:
    pm = up.wrap(net)
    mean = np.asarray(net.bn.mean[...])
    grads = pm.grads(x)
    np.testing.assert_array_equal(np.asarray(net.bn.mean[...]), mean)
    assert net.bn.use_running_average is False and net.drop.deterministic is False
    net.eval()
    native = nnx.grad(lambda m: m(x).sum())(net)
    np.testing.assert_allclose(grads["heads.0.weight"], np.asarray(native["heads"][0]["kernel"][...]).T,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["conv.weight"], np.asarray(native["conv"]["kernel"][...]).transpose(3, 2, 0, 1),
                               rtol=1e-4, atol=1e-6)
    assert "bn.running_mean" not in grads and pm["bn.running_mean"].grad is None


class SharedVariable(nnx.Module):
    """One Param referenced by two modules (weight tying without a shared module)."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(5, 3, rngs=rngs)
        self.out = nnx.Linear(3, 5, use_bias=False, rngs=rngs)
        self.out.kernel = self.embed.embedding

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.embed(ids) @ self.out.kernel[...]


def test_shared_variable_is_tied() -> None:
    model = SharedVariable(nnx.Rngs(0))
    pm = up.wrap(model)
    assert pm.names() == ["embed.weight", "out.weight"]
    assert pm.tied() == [["embed.weight", "out.weight"]]
    assert pm["embed.weight"].native is pm["out.weight"].native is model.embed.embedding
    assert pm.num_params() == 15


def test_deferred_through_bridge_with_batch_norm() -> None:
    inner = linen.Sequential([linen.Dense(6), linen.relu, linen.BatchNorm(use_running_average=True)])
    model = nnx.Sequential(bridge.ToNNX(inner, rngs=nnx.Rngs(0)), nnx.Linear(6, 1, rngs=nnx.Rngs(1)))
    pm = up.wrap(model)
    assert [(n, p.shape) for n, p in pm.items() if not p.initialized] == [
        ("0.0.weight", (6, None)), ("0.0.bias", (6,)),
        ("0.2.weight", (None,)), ("0.2.bias", (None,)), ("0.2.running_mean", (None,)), ("0.2.running_var", (None,))]
    assert pm["1.weight"].initialized
    pm.init(up.init.Constant(2.0), pattern=r"0\.0\.weight")
    pm.materialize(np.ones((3, 4), np.float32))
    assert pm.initialized and pm["0.0.weight"].shape == (6, 4)
    layer = model.layers[0]
    assert pm["0.0.weight"].native is layer.layers_0["kernel"]
    assert (np.asarray(layer.layers_0["kernel"][...]) == 2).all()
    assert pm["0.2.running_var"].native is layer.layers_2["var"] and not pm["0.2.running_var"].trainable
    assert pm["0.2.running_var"].native_name == "layers/0/layers_2/var"
    np.testing.assert_allclose(pm.forward(np.ones((3, 4), np.float32)), np.asarray(model(jnp.ones((3, 4)))), rtol=1e-6)


def test_two_wrappers_of_one_lazy_model_both_apply() -> None:
    model = nnx.Sequential(bridge.ToNNX(linen.Dense(3), rngs=nnx.Rngs(0)))
    a, b = up.wrap(model), up.wrap(model)
    a.init(up.init.Constant(1.0), kind="weight")
    b.init(up.init.Constant(5.0), kind="bias")
    bridge.lazy_init(model, jnp.ones((1, 2)))
    assert type(model) is nnx.Sequential
    assert (np.asarray(model.layers[0].kernel[...]) == 1).all() and (np.asarray(model.layers[0].bias[...]) == 5).all()
    assert a.initialized and b.initialized


def test_recognizes_only_nnx() -> None:
    from unified_params.backends.nnx import NNXAdapter

    assert NNXAdapter.recognizes(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    assert not NNXAdapter.recognizes(linen.Dense(2))
    assert up.wrap(nnx.Linear(2, 2, rngs=nnx.Rngs(0))).backend == "nnx"


def _half(shape, dtype, rng, name):  # noqa: ANN001, ANN202
    return np.full(shape, 0.5)


@pytest.mark.parametrize("materialized", [False, True])
def test_watched_model_clones_splits_and_deep_copies_as_its_own_class(materialized: bool) -> None:
    import copy

    from flax.nnx import bridge

    from unified_params.backends import nnx_examples as ex

    model = ex.deferred().model
    cls = type(model)
    pm = up.wrap(model).init(_half, kind="weight")
    x = jnp.ones((3, 20))
    if materialized:
        bridge.lazy_init(model, x)
    for other in (nnx.clone(model), nnx.merge(*nnx.split(model)), copy.deepcopy(model)):
        if not materialized:
            bridge.lazy_init(other, x)
        other(x)
    bridge.lazy_init(model, x) if not materialized else model(x)
    assert type(model) is cls and (pm["0.weight"].numpy() == 0.5).all()
