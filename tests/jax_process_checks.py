"""Checks of a JAX model split over 2 processes (jax.distributed, 2 CPU devices each): run by test_sharded.py as
`python tests/jax_process_checks.py PROCESS PORT FOLDER` in two processes. Every value is compared with the native
arrays of the same model built unsharded in this process and initialized with the same seed."""
from __future__ import annotations

import os
import sys
import traceback
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from collective_checks import atomic, check_provenance, saved_bytes  # noqa: E402
from flax import nnx  # noqa: E402

import unified_params as up  # noqa: E402
from unified_params import draws, rng  # noqa: E402

SPLITS = [(None, "model"), ("model", None)]


class Net(nnx.Module):
    """A kernel and bias split as spec says; under a mesh, the second layer is replicated over all 4 devices."""

    def __init__(self, spec: tuple | None) -> None:
        rngs, zeros = nnx.Rngs(0), nnx.initializers.zeros_init()
        kernel = zeros if spec is None else nnx.with_partitioning(zeros, spec)
        bias = zeros if spec is None else nnx.with_partitioning(zeros, (spec[1],))
        self.dense = nnx.Linear(64, 128, kernel_init=kernel, bias_init=bias, rngs=rngs)
        self.out = nnx.Linear(128, 8, kernel_init=zeros, bias_init=zeros, rngs=rngs)


def init(pm: up.ParamAPI, seed: int = 5) -> None:
    pm.init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=seed)
    pm.init(up.init.Normal(std=0.5), kind="bias", seed=seed)


def arrays(net: nnx.Module) -> dict[str, jax.Array]:
    return {n: v.native.get_value() for n, v in up.wrap(net).items()}


def same_shards(label: str, net: nnx.Module, want: dict[str, np.ndarray]) -> None:
    """Every shard this process holds is that block of the unsharded model's native array."""
    pm = up.wrap(net)
    for name, value in arrays(net).items():
        assert len(pm[name].sharding.shards) == len(value.addressable_shards) == 2, (label, name)
        assert not value.is_fully_addressable, (label, name)
        for shard in value.addressable_shards:
            assert np.array_equal(np.asarray(shard.data), want[name][shard.index]), f"{label}: {name} {shard.index}"


def main(process: int, port: str, folder: str) -> None:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process, initialization_timeout=60,
                               heartbeat_timeout_seconds=20, shutdown_timeout_seconds=20)
    assert jax.device_count() == 4 and jax.local_device_count() == 2
    reference = Net(None)
    init(up.wrap(reference))
    want = {n: np.asarray(a) for n, a in arrays(reference).items()}
    meshes = [jax.make_mesh((4,), ("model",)), jax.make_mesh((2, 2), ("data", "model"))]
    nets = []
    for mesh, spec in zip(meshes, SPLITS):
        with jax.set_mesh(mesh):
            nets.append(Net(spec))
        before = {n: a.sharding for n, a in arrays(nets[-1]).items()}
        init(up.wrap(nets[-1]))
        assert {n: a.sharding for n, a in arrays(nets[-1]).items()} == before, f"{spec}: a sharding changed"
        same_shards(f"{dict(mesh.shape)} {spec}", nets[-1], want)
    checkpoint(process, folder, nets[0], meshes[0], want)
    linen(folder, meshes[0])
    keras_model(process, folder)
    memory(process, meshes[0])
    print(f"process {process} ok", flush=True)
    jax.distributed.shutdown()


def checkpoint(process: int, folder: str, net: nnx.Module, mesh: jax.sharding.Mesh,
               want: dict[str, np.ndarray]) -> None:
    """Each process writes only the bytes of the blocks its devices are first to hold (a replicated tensor: process
    0); a save that fails on one process leaves the old files; the checkpoint loads back split the other way."""
    pm = up.wrap(net)
    written = saved_bytes(pm, folder)
    assert written == 2 * own_bytes(process, arrays(net).values()), written
    check_provenance(folder, want, 5)
    from jax.experimental import multihost_utils

    atomic(process, 2, pm, os.path.join(folder, "sharded"), lambda: multihost_utils.sync_global_devices("atomic"))
    with jax.set_mesh(mesh):
        other = Net(SPLITS[1])
    up.wrap(other).load(os.path.join(folder, "sharded"))
    same_shards("loaded split the other way", other, want)
    print(f"process {process} wrote {written} bytes", flush=True)


def own_bytes(process: int, values: Iterable[jax.Array]) -> int:
    """The bytes of the blocks this process's devices are first (lowest id) to hold; process 0 writes unsplit ones."""
    mine = 0
    for value in values:
        first: dict[str, int] = {}
        for device, index in value.sharding.devices_indices_map(value.shape).items():
            first[str(index)] = min(first.get(str(index), device.id), device.id)
        if value.is_fully_addressable:
            mine += value.nbytes if process == 0 else 0
        else:
            mine += sum(s.data.nbytes for s in value.addressable_shards if first[str(s.index)] == s.device.id)
    return mine


def linen(folder: str, mesh: jax.sharding.Mesh) -> None:
    """A linen model made by jax.jit(init, out_shardings=...) over both processes: pm.init fills its shards, each
    process saves its own blocks, the file loads into the same model split the other way."""
    import jax.numpy as jnp
    from flax import linen as nn

    class Net(nn.Module):
        spec: tuple | None = None

        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            zeros = nn.initializers.zeros_init()
            kw = {"kernel_init": zeros} if self.spec is None else {
                "kernel_init": nn.with_partitioning(zeros, self.spec),
                "bias_init": nn.with_partitioning(zeros, (self.spec[1],))}
            return nn.Dense(8, kernel_init=zeros)(nn.Dense(128, **kw)(x))

    def build(spec: tuple | None) -> up.ParamAPI:
        net, x = Net(spec), jnp.ones((2, 64))
        if spec is None:
            return up.wrap(net, net.init(jax.random.PRNGKey(0), x))
        abstract = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
        return up.wrap(net, jax.jit(net.init, out_shardings=nn.get_sharding(abstract, mesh))(jax.random.PRNGKey(0), x))

    def check(label: str, pm: up.ParamAPI) -> None:
        for name, view in pm.items():
            value = nn.unbox(view.native)
            assert not value.is_fully_addressable and len(value.addressable_shards) == 2, (label, name)
            for shard in value.addressable_shards:
                assert np.array_equal(np.asarray(shard.data), want[name][shard.index]), f"linen {label}: {name}"

    reference = build(None)
    init(reference)
    want = {n: np.asarray(nn.unbox(v.native)) for n, v in reference.items()}
    pm = build(SPLITS[0])
    before = {n: nn.unbox(v.native).sharding for n, v in pm.items()}
    init(pm)
    assert {n: nn.unbox(v.native).sharding for n, v in pm.items()} == before, "linen: a sharding changed"
    check("init", pm)
    pm.save(os.path.join(folder, "linen.safetensors"))
    other = build(SPLITS[1])
    other.load(os.path.join(folder, "linen.safetensors"))
    check("loaded split the other way", other)


def keras_split(specs: dict[str, tuple], build: Callable[[], Any]) -> Any:
    """What build() makes under keras.distribution.ModelParallel, each variable path of specs laid out over the 4
    devices of both processes."""
    import keras

    layouts = keras.distribution.LayoutMap(keras.distribution.DeviceMesh((4,), ["model"], jax.devices()))
    for path, spec in specs.items():
        layouts[path] = spec
    keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="model"))
    try:
        return build()
    finally:
        keras.distribution.set_distribution(None)


def keras_model(process: int, folder: str) -> None:
    """Keras on JAX under ModelParallel over both processes: pm.init fills each process's shards (the same blocks as
    the unsharded model's), each process writes its own blocks of one checkpoint (the kernel split over processes),
    and the file loads into the model split the other way; test_sharded.py loads it into an unsharded NNX model."""
    import keras

    def build(spec: tuple | None) -> keras.Model:
        if spec is None:
            dense = keras.layers.Dense(128, kernel_initializer="zeros", name="dense")
            out = keras.layers.Dense(8, kernel_initializer="zeros", name="out")
            return keras.Sequential([keras.Input((64,)), dense, out], name="net")
        return keras_split({"net/dense/kernel": spec, "net/dense/bias": (spec[1],)}, lambda: build(None))

    def check(label: str, model: keras.Model) -> None:
        kernel = model.get_layer("dense").kernel.value
        assert not kernel.is_fully_addressable and len(kernel.addressable_shards) == 2, label
        for variable in model.weights:
            value = variable.value
            for shard in value.addressable_shards:
                assert np.array_equal(np.asarray(shard.data), want[variable.path][shard.index]), (label, variable.path)

    reference = build(None)
    init(up.wrap(reference))
    want = {v.path: np.asarray(v.value) for v in reference.weights}
    model = build((None, "model"))
    before = {v.path: v.value.sharding for v in model.weights}
    pm = up.wrap(model)
    init(pm)
    assert {v.path: v.value.sharding for v in model.weights} == before, "keras: a sharding changed"
    check("init", model)
    os.makedirs(os.path.join(folder, "keras"), exist_ok=True)
    written = saved_bytes(pm, os.path.join(folder, "keras"))
    assert written == 2 * own_bytes(process, [v.value for v in model.weights]), written
    check_provenance(os.path.join(folder, "keras"), pm.names(), 5)
    print(f"process {process}: keras wrote {written} bytes", flush=True)
    other = build(("model", None))
    up.wrap(other).load(os.path.join(folder, "keras", "one.safetensors"))
    check("loaded split the other way", other)


def memory(process: int, mesh: jax.sharding.Mesh) -> None:
    """A 8 MB kernel split 4 ways, in NNX and in Keras under ModelParallel: numpy holds this process's 2 shards plus
    less than one chunk (the draws' scratch of one fill thread, the default for shards); with set_threads(2), two
    threads' wide scratch and numpy's ufunc buffers (rng.py)."""
    import keras

    with jax.set_mesh(mesh):
        net = nnx.Linear(1024, 2048, use_bias=False, kernel_init=nnx.with_partitioning(
            nnx.initializers.zeros_init(), (None, "model")), rngs=nnx.Rngs(0))
    dense = keras.layers.Dense(2048, use_bias=False, name="dense", kernel_initializer="zeros")
    big = keras_split({"big/dense/kernel": (None, "model")},
                      lambda: keras.Sequential([keras.Input((1024,)), dense], name="big"))
    for label, model, kernel in (("nnx", net, lambda: net.kernel.get_value()),
                                 ("keras", big, lambda: big.get_layer("dense").kernel.value)):
        pm = up.wrap(model)
        own = sum(s.data.nbytes for s in kernel().addressable_shards)
        assert own == 1024 * 2048 * 4 // 2, (label, own)
        peaks(process, label, pm, own)


def peaks(process: int, label: str, pm: up.ParamAPI, own: int) -> None:
    chunk = rng.CHUNK * 4
    wide = draws.scratch_bytes(np.float32, draws.WIDE) + (1 << 17)
    for threads, bound in ((None, own + chunk), (2, own + 2 * wide)):
        rng.set_threads(threads)
        tracemalloc.start()
        pm.init(up.init.Normal(std=0.02), seed=1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rng.set_threads(None)
        assert peak <= bound, f"{label}: numpy peak {peak} beyond {bound} ({own} of shards, threads {threads})"
        print(f"process {process}: {label}, threads {threads or 'default'}, shards {own / 2**20:.1f} MiB, numpy peak "
              f"{peak / 2**20:.2f} MiB, beyond the shards {(peak - own) / 2**20:.2f} MiB (bound "
              f"{(bound - own) / 2**20:.2f}; one chunk {chunk / 2**20:.0f} MiB)", flush=True)


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)  # at once: jax.distributed's exit would wait for the other process at its shutdown barrier
