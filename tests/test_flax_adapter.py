"""The linen adapter beyond the docs: compact modules, conv layout, batch statistics, boxed and frozen variables."""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nn = pytest.importorskip("flax.linen")

import jax.numpy as jnp  # noqa: E402
from flax.core import freeze  # noqa: E402

import unified_params as up  # noqa: E402


class CNN(nn.Module):
    """Conv, BatchNorm, Dropout and Dense declared inline (compact): names come from the variables."""

    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = nn.Conv(4, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.relu(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(2)(x.reshape((x.shape[0], -1)))


@pytest.fixture(scope="module")
def cnn() -> tuple[nn.Module, dict, jax.Array]:
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 3))
    net = CNN()
    variables = net.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(2)}, x)
    return net, variables, x


def test_compact_names_kinds_and_layout(cnn: tuple) -> None:
    net, variables, _ = cnn
    pm = up.wrap(net, variables)
    assert pm.names() == [
        "Conv_0.weight", "Conv_0.bias",
        "BatchNorm_0.weight", "BatchNorm_0.bias", "BatchNorm_0.running_mean", "BatchNorm_0.running_var",
        "Dense_0.weight", "Dense_0.bias"]
    kernel = np.asarray(variables["params"]["Conv_0"]["kernel"])
    assert kernel.shape == (3, 3, 3, 4)
    np.testing.assert_array_equal(pm["Conv_0.weight"].numpy(), kernel.transpose(3, 2, 0, 1))
    assert pm["Conv_0.weight"].shape == (4, 3, 3, 3)
    stats = pm["BatchNorm_0.running_var"]
    assert not stats.trainable and stats.kind == "running_var" and stats.native_name == "batch_stats/BatchNorm_0/var"
    np.testing.assert_array_equal(stats.numpy(), np.asarray(variables["batch_stats"]["BatchNorm_0"]["var"]))
    assert pm["BatchNorm_0.weight"].native_name == "params/BatchNorm_0/scale"


def test_conv_write_lands_in_native_layout(cnn: tuple) -> None:
    net, variables, _ = cnn
    pm = up.wrap(net, variables)
    canonical = np.arange(4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    pm["Conv_0.weight"].set(canonical)
    native = np.asarray(pm.variables["params"]["Conv_0"]["kernel"])
    np.testing.assert_array_equal(native, canonical.transpose(2, 3, 1, 0))
    assert native[1, 2, 0, 3] == canonical[3, 0, 1, 2]


def test_forward_is_inference_mode(cnn: tuple) -> None:
    net, variables, x = cnn
    pm = up.wrap(net, variables)
    expected = np.asarray(net.apply(variables, x, train=False))
    np.testing.assert_allclose(pm.forward(x), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pm.forward(x), pm.forward(x))


def test_grads_in_inference_mode_like_every_backend(cnn: tuple) -> None:
    net, variables, x = cnn
    pm = up.wrap(net, variables)

    def loss(params: dict) -> jax.Array:
        return net.apply({**variables, "params": params}, x, train=False).sum()

    native = jax.grad(loss)(variables["params"])
    grads = pm.grads(x)
    assert list(grads) == [n for n in pm.names() if "running" not in n]
    np.testing.assert_allclose(grads["Conv_0.weight"], np.asarray(native["Conv_0"]["kernel"]).transpose(3, 2, 0, 1),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads["BatchNorm_0.weight"], np.asarray(native["BatchNorm_0"]["scale"]),
                               rtol=1e-4, atol=1e-5)
    assert pm["BatchNorm_0.running_mean"].grad is None
    stats = pm.variables["batch_stats"]["BatchNorm_0"]
    assert stats["mean"] is variables["batch_stats"]["BatchNorm_0"]["mean"], (
        "computing gradients leaves the statistics alone")


class Named(nn.Module):
    """Submodules assigned in setup keep their attribute names and definition order."""

    def setup(self) -> None:
        self.encoder = nn.Dense(3)
        self.norm = nn.LayerNorm()
        self.decoder = nn.Dense(2, use_bias=False)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decoder(self.norm(self.encoder(x)))


def test_setup_names_frozen_input_and_new_trees() -> None:
    net = Named()
    variables = freeze(net.init(jax.random.PRNGKey(0), jnp.ones((1, 4))))
    pm = up.wrap(net, variables)
    assert pm.names() == ["encoder.weight", "encoder.bias", "norm.weight", "norm.bias", "decoder.weight"]
    assert [c for c in pm.layer("norm").names()] == ["weight", "bias"]
    assert isinstance(pm.variables, dict)
    first = pm.variables
    pm.init(up.init.Zeros(), kind="bias")
    second = pm.variables
    assert second is not first and second["params"]["decoder"] is first["params"]["decoder"]
    assert (np.asarray(second["params"]["encoder"]["bias"]) == 0).all()
    assert (np.asarray(first["params"]["encoder"]["bias"]) == 0).all()
    pm["encoder.bias"].set(np.ones(3, np.float32))
    assert (np.asarray(second["params"]["encoder"]["bias"]) == 0).all()
    np.testing.assert_allclose(pm.forward(np.ones((1, 4), np.float32)),
                               np.asarray(net.apply(pm.variables, jnp.ones((1, 4)))), rtol=1e-6)


def test_deferred_shapes_from_module_fields() -> None:
    net = nn.Sequential([nn.Conv(6, (5, 5)), nn.relu, nn.BatchNorm(use_running_average=True), nn.Embed(7, 3)])
    pm = up.wrap(net, None)
    assert [(n, p.shape) for n, p in pm.items()] == [
        ("0.weight", (6, None, 5, 5)), ("0.bias", (6,)),
        ("2.weight", (None,)), ("2.bias", (None,)), ("2.running_mean", (None,)), ("2.running_var", (None,)),
        ("3.weight", (7, 3))]
    assert pm.pending("any") == pm.names() and pm.pending("storage") == ["3.weight"]
    assert pm.pending() == pm.names()[:-1]
    with pytest.raises(up.DeferredInitializationError, match=r"shape \(7, 3\) but its storage is not allocated"):
        pm["3.weight"].numpy()


def test_boxed_partitioned_params_stay_boxed() -> None:
    net = nn.Dense(3, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(), ("in", "out")))
    variables = net.init(jax.random.PRNGKey(0), jnp.ones((1, 2)))
    assert isinstance(variables["params"]["kernel"], nn.Partitioned)
    pm = up.wrap(net, variables)
    np.testing.assert_array_equal(pm["weight"].numpy(), np.asarray(variables["params"]["kernel"].value).T)
    pm["weight"].set(np.ones((3, 2), np.float32))
    box = pm.variables["params"]["kernel"]
    assert isinstance(box, nn.Partitioned) and box.names == ("in", "out")
    assert (np.asarray(box.value) == 1).all()


def test_recognizes_only_linen() -> None:
    from flax import nnx

    from unified_params.backends.flax import FlaxAdapter

    assert FlaxAdapter.recognizes(nn.Dense(2))
    assert not FlaxAdapter.recognizes(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    assert up.wrap(nn.Dense(2), None, backend="flax").backend == "flax"


def test_variables_can_be_handed_back_after_training_outside_pm(cnn: tuple, tmp_path) -> None:  # noqa: ANN001
    net, variables, x = cnn
    pm = up.wrap(net, variables)
    trained = jax.tree_util.tree_map(lambda a: a + 1, pm.variables)
    pm.variables = trained
    assert pm.variables is not None
    np.testing.assert_array_equal(pm["Dense_0.bias"].numpy(), np.asarray(trained["params"]["Dense_0"]["bias"]))
    pm.save(tmp_path / "trained.safetensors")
    again = up.wrap(net, variables).load(tmp_path / "trained.safetensors")
    np.testing.assert_array_equal(np.asarray(again.variables["params"]["Conv_0"]["kernel"]),
                                  np.asarray(trained["params"]["Conv_0"]["kernel"]))
    assert pm.names() == up.wrap(net, variables).names()
    deferred = up.wrap(net, None)
    deferred.variables = variables
    assert deferred.initialized and deferred.names() == pm.names()


def test_variables_that_do_not_fit_are_refused_and_change_nothing(cnn: tuple) -> None:
    net, variables, _ = cnn
    pm = up.wrap(net, variables)
    before = pm.variables
    params = dict(variables["params"])
    missing = {**variables, "params": {k: v for k, v in params.items() if k != "Dense_0"}}
    reshaped = {**variables, "params": {**params, "Dense_0": {**params["Dense_0"], "bias": jnp.zeros(3)}}}
    retyped = {**variables, "params": {**params, "Dense_0": {**params["Dense_0"], "bias": jnp.zeros(2, jnp.int32)}}}
    for tree, error, match in [(missing, up.ParameterNotFoundError,
                                "missing: 'params/Dense_0/kernel', 'params/Dense_0/bias'"),
                               (reshaped, up.ShapeMismatchError,
                                r"'params/Dense_0/bias': given \(3,\) vs model \(2,\)"),
                               (retyped, up.DtypeMismatchError, "given int32 vs model float32"),
                               ([1, 2], up.ShapeMismatchError, "'list'")]:
        with pytest.raises(error, match=match):
            pm.variables = tree
        assert pm.variables is before
    small = up.wrap(nn.Sequential([nn.Dense(3)]), None)
    with pytest.raises(up.ParameterNotFoundError, match="missing: '0.weight', '0.bias'"):
        small.variables = {"params": {}}
    with pytest.raises(up.ShapeMismatchError,
                       match=r"gives '0.weight' shape \(4, 2\), but the module's configuration says \(3, None\)"):
        small.variables = {"params": {"layers_0": {"kernel": jnp.zeros((2, 4)), "bias": jnp.zeros(4)}}}
    assert small.variables is None and small.pending() == ["0.weight", "0.bias"]


def test_variables_cannot_be_set_where_the_model_holds_its_parameters() -> None:
    torch = pytest.importorskip("torch")
    pm = up.wrap(torch.nn.Linear(2, 2))
    with pytest.raises(up.UnsupportedError, match="keeps its parameters in the model"):
        pm.variables = {}
