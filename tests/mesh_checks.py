"""Sharded-model checks that need 8 JAX host devices: run as `python tests/mesh_checks.py nnx linen ...` in a
subprocess (XLA_FLAGS is set here, before jax is imported). Every value is compared with the native arrays of the
same model built unsharded and initialized with the same seed; every sharding with the one the array had."""
from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ["KERAS_BACKEND"] = "jax"

import numpy as np  # noqa: E402

import unified_params as up  # noqa: E402
from unified_params import rng  # noqa: E402

MESHES = [((1,), ("model",)), ((2,), ("model",)), ((4,), ("model",)), ((8,), ("model",)), ((2, 4), ("data", "model"))]
"""Every mesh of the issue: 1, 2, 4, 8 devices, and 8 as 2 x 4 (kernels split on the second axis, replicated on the
first)."""


def init(pm: up.ParamAPI) -> None:
    pm.init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=11)
    pm.init(up.init.Normal(std=0.5), kind="bias", seed=11)


def native_arrays(leaves: dict) -> dict:
    return {k: np.asarray(v) for k, v in leaves.items()}


def check_same(name: str, got: dict, want: dict) -> None:
    assert got.keys() == want.keys(), (name, got.keys(), want.keys())
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k].view(np.uint8), want[k].view(np.uint8)), \
            f"{name}: {k} differs from the unsharded init"


def check_shards(name: str, pm: up.ParamAPI, arrays: dict, reference: up.ParamAPI) -> None:
    """pm[n].sharding's shards hold, on each device, exactly that block of the canonical reference value."""
    want = reference.state_dict()
    for n, view in pm.items():
        native = arrays[n]
        placement = view.sharding
        assert placement is not None and placement.engine == "jax", (name, n)
        assert len(placement.shards) == len(native.addressable_shards)
        by_device = {f"{s.device.platform}:{s.device.id}": np.asarray(s.data) for s in native.addressable_shards}
        for shard in placement.shards:
            block = want[n][shard.index]
            data = by_device[shard.device]
            canonical = data if data.ndim == 1 else np.moveaxis(data, (-1, -2), (0, 1))
            assert np.array_equal(canonical, block), (name, n, shard)


def nnx_checks() -> None:
    import jax
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs, spec: tuple | None = None, conv: tuple | None = None) -> None:
            zeros = nnx.initializers.zeros_init()

            def part(names: tuple | None) -> dict:
                return {"kernel_init": zeros if names is None else nnx.with_partitioning(zeros, names)}

            self.conv = nnx.Conv(8, 16, (3, 3), rngs=rngs, **part(conv))
            self.dense = nnx.Linear(64, 128, rngs=rngs, **part(spec))
            self.out = nnx.Linear(128, 8, rngs=rngs, **part(None))

    reference = up.wrap(Net(nnx.Rngs(0)))
    init(reference)
    want = native_arrays({n: v.native.get_value() for n, v in reference.items()})
    count = 0
    for shape, names in MESHES:
        mesh = jax.make_mesh(shape, names)
        splits = [((None, "model"), (None, None, None, "model")), (("model", None), (None, None, "model", None))]
        for spec, conv in splits:
            with jax.set_mesh(mesh):
                net = Net(nnx.Rngs(1), spec, conv)
            pm = up.wrap(net)
            before = {n: v.native.get_value().sharding for n, v in pm.items()}
            init(pm)
            arrays = {n: v.native.get_value() for n, v in pm.items()}
            assert {n: a.sharding for n, a in arrays.items()} == before, f"nnx {shape} {spec}: sharding changed"
            check_same(f"nnx {shape} {spec}", native_arrays(arrays), want)
            check_shards(f"nnx {shape} {spec}", pm, arrays, reference)
            split = pm["dense.weight"].sharding.split
            assert split == ({0: ("model",)} if spec[1] else {1: ("model",)}), split
            count += 1
        with jax.set_mesh(mesh):
            abstract = nnx.eval_shape(lambda: Net(nnx.Rngs(1), (None, "model"), (None, None, None, "model")))
        pm = up.wrap(abstract)
        assert not pm.initialized and pm.pending("storage") == pm.names() and pm.pending() == []
        try:
            pm["dense.weight"].numpy()
            raise AssertionError("an abstract parameter was read")
        except up.DeferredInitializationError:
            pass
        pm.init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=11)
        try:
            pm.materialize()
            raise AssertionError("materialize allocated parameters that no record covers")
        except up.DeferredInitializationError as e:
            assert "conv/bias" in str(e) and isinstance(abstract.conv.bias.get_value(), jax.ShapeDtypeStruct), e
        pm.init(up.init.Normal(std=0.5), kind="bias", seed=11)
        with jax.set_mesh(mesh):
            pm.materialize()
        arrays = {n: v.native.get_value() for n, v in pm.items()}
        assert pm.initialized and arrays["dense.weight"].sharding.spec == jax.sharding.PartitionSpec(None, "model")
        check_same(f"nnx eval_shape {shape}", native_arrays(arrays), want)
        count += 1
    whole_checks(pm, reference)
    joined_checks()
    print(f"nnx ok {count}")


def joined_checks() -> None:
    """An NNX LSTMCell whose per-gate kernels are split: its joined weights (torch's weight_ih, weight_hh) have no
    one placement, so pm.init warns that it builds them whole (even for Normal), naming them and not the unsplit
    biases; the values equal the unsharded cell's, and every gate kernel keeps its sharding."""
    import warnings

    import jax
    from flax import nnx

    def cell(split: bool) -> nnx.LSTMCell:
        part = (lambda init: nnx.with_partitioning(init, (None, "model"))) if split else (lambda init: init)
        return nnx.LSTMCell(8, 16, kernel_init=part(nnx.initializers.lecun_normal()),
                            recurrent_kernel_init=part(nnx.initializers.lecun_normal()), rngs=nnx.Rngs(0))

    with jax.set_mesh(jax.make_mesh((2,), ("model",), devices=jax.devices()[:2])):
        split = cell(True)
    reference = cell(False)
    before = {n: g.kernel.get_value().sharding for n, g in vars(split).items() if isinstance(g, nnx.Linear)}
    assert before and all(s.spec == jax.sharding.PartitionSpec(None, "model") for s in before.values()), before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        up.wrap(split).init(up.init.Normal(std=0.5), seed=3)
    up.wrap(reference).init(up.init.Normal(std=0.5), seed=3)
    assert [w.category for w in caught] == [up.WholeTensorWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert "'weight_ih' (64 x 8 float32" in message and "'weight_hh' (64 x 16 float32" in message, message
    assert "joined from several native arrays" in message and "bias" not in message, message
    for n, sharding in before.items():
        assert getattr(split, n).kernel.get_value().sharding == sharding, n
        assert np.array_equal(np.asarray(getattr(split, n).kernel.get_value()),
                              np.asarray(getattr(reference, n).kernel.get_value())), n


def whole_checks(pm: up.ParamAPI, reference: up.ParamAPI) -> None:
    """Orthogonal and a custom initializer on a split kernel warn (WholeTensorWarning, naming it and its size) and
    give the unsharded values, sharding kept; the chunked built-ins and unsplit parameters do not warn."""
    import warnings

    def custom(shape: tuple, dtype: object, generator: object, name: str) -> np.ndarray:
        return np.full(shape, 0.25, dtype)

    for initializer in (up.init.Orthogonal(), custom):
        before = pm["dense.weight"].native.get_value().sharding
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pm.init(initializer, pattern="dense.weight", seed=4)
            reference.init(initializer, pattern="dense.weight", seed=4)
        assert [w.category for w in caught] == [up.WholeTensorWarning], [str(w.message) for w in caught]
        assert "'dense.weight' (128 x 64 float32, 0.0312 MiB)" in str(caught[0].message), caught[0].message
        value = pm["dense.weight"].native.get_value()
        assert value.sharding == before
        assert np.array_equal(np.asarray(value), np.asarray(reference["dense.weight"].native.get_value()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pm.init(up.init.TruncatedNormal(std=0.1), pattern="dense.weight", seed=4)
        reference.init(up.init.Orthogonal(), pattern="dense.weight", seed=4)


def linen_checks() -> None:
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    class Net(nn.Module):
        spec: tuple | None = None

        @nn.compact
        def __call__(self, x: object) -> object:
            zeros = nn.initializers.zeros_init()
            kw = {"kernel_init": zeros} if self.spec is None else {
                "kernel_init": nn.with_partitioning(zeros, self.spec),
                "bias_init": nn.with_partitioning(zeros, (self.spec[1],))}
            hidden = nn.Dense(128, **kw)(x)
            return nn.Dense(8, kernel_init=zeros)(hidden)

    x = jnp.ones((2, 64))
    reference = up.wrap(Net(), Net().init(jax.random.PRNGKey(0), x))
    init(reference)
    want = native_arrays({n: nn.unbox(v.native) for n, v in reference.items()})
    count = 0
    for shape, names in MESHES:
        mesh = jax.make_mesh(shape, names)
        for spec in [(None, "model"), ("model", None)]:
            net = Net(spec)
            abstract = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
            variables = jax.jit(net.init, out_shardings=nn.get_sharding(abstract, mesh))(jax.random.PRNGKey(1), x)
            pm = up.wrap(net, variables)
            before = {n: nn.unbox(v.native).sharding for n, v in pm.items()}
            init(pm)
            arrays = {n: nn.unbox(v.native) for n, v in pm.items()}
            assert {n: a.sharding for n, a in arrays.items()} == before, f"linen {shape} {spec}: sharding changed"
            check_same(f"linen {shape} {spec}", native_arrays(arrays), want)
            pa = up.wrap(net, abstract)
            assert not pa.initialized and pa.pending("storage") == pa.names()
            init(pa)
            with jax.set_mesh(mesh):
                pa.materialize()
            arrays = {n: nn.unbox(v.native) for n, v in pa.items()}
            split = {n: arrays[n].sharding for n in ("Dense_0.weight", "Dense_0.bias")}
            assert split == {n: before[n] for n in split}, f"linen eval_shape {shape} {spec}: placement"
            check_same(f"linen eval_shape {shape} {spec}", native_arrays(arrays), want)
            assert net.apply(pa.variables, x).shape == (2, 8)
            count += 2
    print(f"linen ok {count}")


def keras_checks() -> None:
    import jax
    import keras

    def build() -> object:
        return keras.Sequential([keras.Input((6, 6, 8)), keras.layers.Conv2D(16, 3, name="conv"),
                                 keras.layers.Flatten(), keras.layers.Dense(64, name="dense"),
                                 keras.layers.Dense(8, name="out")])

    reference = up.wrap(build())
    init(reference)
    want = {v.path.split("/", 1)[1]: np.asarray(v.value) for v in reference.model.weights}
    devices = keras.distribution.list_devices()
    count = 0
    for shape, names in MESHES:
        mesh = keras.distribution.DeviceMesh(shape, list(names), devices[: int(np.prod(shape))])
        for kernel in [(None, "model"), ("model", None)]:
            layouts = keras.distribution.LayoutMap(mesh)
            layouts[".*dense/kernel"] = kernel
            layouts[".*dense/bias"] = (kernel[1],)
            layouts[".*conv/kernel"] = (None, None, *kernel)
            keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layouts,
                                                                                 batch_dim_name=names[0]))
            try:
                model = build()
            finally:
                keras.distribution.set_distribution(None)
            pm = up.wrap(model)
            before = {v.path: v.value.sharding for v in model.weights}
            split = int(np.prod(shape)) > 1
            if split:
                assert before[f"{model.name}/dense/kernel"].spec == jax.sharding.PartitionSpec(*kernel)
            init(pm)
            assert {v.path: v.value.sharding for v in model.weights} == before, f"keras {shape}: sharding changed"
            check_same(f"keras {shape} {kernel}", {v.path.split("/", 1)[1]: np.asarray(v.value) for v in model.weights},
                       want)
            if split:
                check_shards(f"keras {shape} {kernel}", pm, {n: v.native.value for n, v in pm.items()}, reference)
            else:
                assert all(v.sharding is None for v in pm.values()), "keras on one device: no sharding"
            count += 1
    depthwise(keras, devices)
    print(f"keras ok {count}")


def depthwise(keras: object, devices: list) -> None:
    """A Keras depthwise kernel (stored reshaped) split by a LayoutMap: pm.init warns that it builds it whole
    (WholeTensorWarning, even for Normal), gives the unsharded values and keeps the layout."""
    import warnings

    def build() -> object:
        layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")
        return keras.Sequential([keras.Input((6, 6, 8)), layer])

    reference = up.wrap(build())
    layouts = keras.distribution.LayoutMap(keras.distribution.DeviceMesh((2,), ["model"], devices[:2]))
    layouts[".*dw/kernel"] = (None, None, "model", None)
    keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="model"))
    try:
        model = build()
    finally:
        keras.distribution.set_distribution(None)
    pm = up.wrap(model)
    before = model.layers[0].kernel.value.sharding
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm.init(up.init.Normal(std=0.5), pattern="0.weight", seed=2)
    reference.init(up.init.Normal(std=0.5), pattern="0.weight", seed=2)
    assert [w.category for w in caught] == [up.WholeTensorWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert "stored reshaped" in message and "'0.weight' (16 x 1 x 3 x 3 float32" in message, message
    assert model.layers[0].kernel.value.sharding == before
    assert np.array_equal(np.asarray(model.layers[0].kernel.value), np.asarray(reference.model.layers[0].kernel.value))


def partition_checks() -> None:
    """up.partition on NNX (resharded in place, values kept), and its errors (nothing moves); Keras: the LayoutMap."""
    import jax
    import keras
    from flax import nnx

    net = nnx.Sequential(nnx.Linear(32, 64, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(64, 12, rngs=nnx.Rngs(1)))
    pm = up.wrap(net)
    values = {n: np.asarray(v.native.get_value()) for n, v in pm.items()}
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    bad = [[("3.weight", ("model", None))], [("0.weight", ("nope", None))], [("0.weight", ("model", None, None))],
           [({"layer": "conv"}, ("model",))], [("0.bias", ("data", "data"))], [("2.bias", (("data", "model"),))]]
    for rules in bad:
        try:
            up.partition(pm, rules, mesh)
            raise AssertionError(f"no error for {rules}")
        except (up.SelectionError, up.ShapeMismatchError):
            assert all(v.native.get_value().sharding.num_devices == 1 for v in pm.values()), rules
    done = up.partition(pm, [("0.weight", ("model", None)), ({"layer": "linear", "kind": "weight"}, (None, "model")),
                             (r".*bias", ("model",))], mesh)
    assert list(done.specs) == pm.names()
    specs = {n: v.native.get_value().sharding.spec for n, v in pm.items()}
    P = jax.sharding.PartitionSpec
    assert specs == {"0.weight": P(None, "model"), "0.bias": P("model"), "2.weight": P("model", None),
                     "2.bias": P("model")}, specs
    check_same("partition", {n: np.asarray(v.native.get_value()) for n, v in pm.items()}, values)
    import jax.numpy as jnp
    from flax import linen as nn

    module = nn.Sequential([nn.Dense(64), nn.relu, nn.Dense(12)])
    pl = up.wrap(module, module.init(jax.random.PRNGKey(0), jnp.ones((1, 32))))
    values = {n: np.asarray(nn.unbox(v.native)) for n, v in pl.items()}
    up.partition(pl, [({"layer": "linear", "kind": "weight"}, ("model", None))], mesh)
    specs = {n: nn.unbox(v.native).sharding.spec for n, v in pl.items()}
    assert specs == {"0.weight": P(None, "model"), "0.bias": P(None), "2.weight": P(None, "model"),
                     "2.bias": P(None)}, specs
    check_same("linen partition", {n: np.asarray(nn.unbox(v.native)) for n, v in pl.items()}, values)

    def build() -> object:
        layers = [keras.layers.Dense(64, name="a"), keras.layers.Dense(16, name="b")]
        return keras.Sequential([keras.Input((32,)), *layers])

    km = up.wrap(build())
    devices = keras.distribution.DeviceMesh((2, 4), ["data", "model"], keras.distribution.list_devices())
    rules = [({"layer": "linear", "kind": "weight"}, ("model", None))]
    try:
        up.partition(km, rules, devices)
        raise AssertionError("Keras cannot move a built variable")
    except up.UnsupportedError:
        pass
    layouts = up.partition(km, rules, devices, apply=False).layout_map
    keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="data"))
    try:
        built = build()
    finally:
        keras.distribution.set_distribution(None)
    specs = [v.value.sharding.spec for v in built.weights]
    assert specs == [P(None, "model"), P(None), P(None, "model"), P(None)], specs
    print("partition ok")


def checkpoint_checks() -> None:
    """Saved from 8 devices (2 x 4 mesh, sharded files + index), loaded onto 2 devices, onto 1, into unsharded torch."""
    import tempfile

    import jax
    import torch
    from flax import nnx

    def net(spec: tuple | None) -> object:
        zeros = nnx.initializers.zeros_init()
        kernel = zeros if spec is None else nnx.with_partitioning(zeros, spec)
        return nnx.Sequential(nnx.Linear(64, 128, kernel_init=kernel, rngs=nnx.Rngs(0)), nnx.relu,
                              nnx.Linear(128, 16, kernel_init=zeros, rngs=nnx.Rngs(0)))

    reference = up.wrap(net(None))
    init(reference)
    want = native_arrays({n: v.native.get_value() for n, v in reference.items()})
    with jax.set_mesh(jax.make_mesh((2, 4), ("data", "model"))):
        saved = up.wrap(net(("data", "model")))
    init(saved)
    folder = tempfile.mkdtemp()
    saved.save(folder, max_shard_size=8 * 1024)
    for shape, spec in [((2,), (None, "model")), ((2,), ("model", None)), ((1,), (None, "model"))]:
        with jax.set_mesh(jax.make_mesh(shape, ("model",))):
            model = net(spec)
        pm = up.wrap(model)
        before = {n: v.native.get_value().sharding for n, v in pm.items()}
        pm.load(folder)
        arrays = {n: v.native.get_value() for n, v in pm.items()}
        assert {n: a.sharding for n, a in arrays.items()} == before
        check_same(f"load onto {shape} {spec}", native_arrays(arrays), want)
    plain = up.wrap(net(None))
    plain.load(folder)
    check_same("load unsharded", native_arrays({n: v.native.get_value() for n, v in plain.items()}), want)
    torch_model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 16))
    up.wrap(torch_model).load(folder)
    for name, t in torch_model.state_dict().items():
        native = want[name] if t.ndim == 1 else want[name].T
        assert np.array_equal(t.numpy(), native), f"torch {name} differs from the unsharded NNX init"
    print("checkpoint ok")


CHECKS = {"checkpoint": checkpoint_checks, "partition": partition_checks, "nnx": nnx_checks, "linen": linen_checks,
          "keras": keras_checks}

if __name__ == "__main__":
    rng.CHUNK = 1 << 12
    for which in sys.argv[1:]:
        CHECKS[which]()
