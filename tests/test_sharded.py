"""Sharded parameters: blocks of the counter-based streams, and JAX models split over 8 host devices."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import unified_params as up
from unified_params import rng
from unified_params.init import fill_value, filler
from unified_params.regions import Region

HERE = Path(__file__).parent
INITS = [up.init.Normal(std=0.5), up.init.Uniform(-1, 1), up.init.XavierUniform(), up.init.TruncatedNormal(std=1.0),
         up.init.KaimingNormal(), up.init.Orthogonal(), up.init.Constant(3.0)]


def _regions(shape: tuple[int, ...], seed: int) -> list[Region]:
    """Splits along each dimension into 1-4 parts, and random blocks."""
    r = np.random.default_rng(seed)
    out = []
    for dim, n in enumerate(shape):
        for parts in (2, 3, 4):
            size = -(-n // parts)
            for i in range(parts):
                start, stop = [0] * len(shape), list(shape)
                start[dim], stop[dim] = min(i * size, n), min((i + 1) * size, n)
                out.append(Region(shape, tuple(start), tuple(stop)))
    for _ in range(6):
        start = [int(r.integers(0, d)) for d in shape]
        out.append(Region(shape, tuple(start), tuple(int(r.integers(s + 1, d + 1)) for s, d in zip(start, shape))))
    return out


@pytest.mark.parametrize("shape", [(37,), (64, 48), (3, 700), (700, 3), (8, 6, 5, 3), (2, 3, 4, 5, 6)])
def test_a_block_of_the_streams_is_the_same_block_of_the_whole_tensor(shape: tuple[int, ...],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rng, "CHUNK", 1 << 10)
    for initializer in INITS:
        if len(shape) < 2 and type(initializer).__name__ not in ("Normal", "Uniform", "Constant", "TruncatedNormal"):
            continue
        for dtype in (np.float32, np.float64):
            whole = np.empty(shape, dtype)
            initializer.fill(whole, 5, "a.weight")
            for region in _regions(shape, len(shape)):
                out = np.empty(region.block_shape, dtype)
                fill_value(initializer, out, 5, "a.weight", region)
                strided = np.empty(region.block_shape[::-1], dtype).T
                fill_value(initializer, strided, 5, "a.weight", region)
                assert out.tobytes() == whole[region.slices].tobytes(), (initializer, region)
                assert np.array_equal(strided, whole[region.slices]), (initializer, region)


def test_the_blocks_of_one_process_draw_each_chunk_once_and_equal_the_whole_tensor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rng, "CHUNK", 1 << 10)
    drawn: list[int] = []
    real = rng.stream
    monkeypatch.setattr(rng, "stream", lambda seed, name, k: drawn.append(k) or real(seed, name, k))
    shape = (64, 96)
    for initializer in INITS:
        whole = np.empty(shape, np.float32)
        initializer.fill(whole, 2, "w")
        for dim in (0, 1):
            regions = _regions(shape, 0)[dim * 9 + 5 : dim * 9 + 9]
            blocks = [(np.empty(r.block_shape, np.float32), r) for r in regions]
            drawn.clear()
            filler(initializer, 2, "w").many(blocks)
            assert all(out.tobytes() == whole[r.slices].tobytes() for out, r in blocks), (initializer, dim)
            assert len(drawn) == len(set(drawn)), (initializer, dim)


def test_a_block_draws_only_the_chunks_it_meets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rng, "CHUNK", 1 << 10)
    drawn = []
    real = rng.stream
    monkeypatch.setattr(rng, "stream", lambda seed, name, k: drawn.append(k) or real(seed, name, k))
    out = np.empty((16, 256), np.float32)
    fill_value(up.init.Normal(), out, 0, "w", Region((64, 256), (16, 0), (32, 256)))
    assert sorted(drawn) == [4, 5, 6, 7]


def _mesh_checks(*which: str) -> str:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run([sys.executable, str(HERE / "mesh_checks.py"), *which], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_jax_models_on_1_2_4_8_devices_init_each_shard_bitwise_and_keep_their_sharding() -> None:
    """NNX and linen, kernels split on either dimension (and conv kernels), eval_shape models materialized; a
    checkpoint saved from 8 devices loads onto 2, onto 1 and into unsharded NNX and torch models, bitwise; Orthogonal
    and a custom initializer on a split kernel warn (WholeTensorWarning) and give the unsharded values."""
    out = _mesh_checks("nnx", "linen", "checkpoint")
    assert "nnx ok 15" in out and "linen ok 20" in out and "checkpoint ok" in out


def test_keras_on_jax_under_model_parallel_inits_each_shard_bitwise_and_keeps_its_layout() -> None:
    """keras.distribution.ModelParallel + LayoutMap on 1, 2, 4, 8 devices: Dense and Conv2D kernels split either way;
    up.partition rules on NNX (resharded, values kept; errors move nothing) and as a Keras LayoutMap; a split depthwise
    kernel (stored reshaped) warns that it is built whole."""
    out = _mesh_checks("keras", "partition")
    assert "keras ok 10" in out and "partition ok" in out


@pytest.mark.parametrize("world", [2, 4])
def test_torch_dtensor_and_fully_shard_over_gloo_init_each_local_shard_bitwise(world: int, tmp_path: Path) -> None:
    """distribute_tensor (Shard(0), Shard(1), Replicate), fully_shard, and fully_shard on the meta device then
    pm.materialize(device='cpu'): torch's own full_tensor() and local shards equal the unsharded init; a 16 MB layer's
    shard is all torch holds, numpy only the streams' chunk scratch; each process saves only its shards' bytes into
    one checkpoint, which loads unsharded and split the other way; up.partition makes DTensors."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(HERE / "dtensor_checks.py"), str(world), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"dtensor ok {world}" in done.stdout and done.stdout.count("torch shard") == world


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_jax_processes(folder: Path) -> list[tuple[int, str, str]]:
    """Run jax_process_checks.py as processes 0 and 1 of one jax.distributed job: (return code, stdout, stderr) each.
    One that fails ends the other (it would wait for it at a collective), as does the 300 s deadline."""
    port, env = _free_port(), {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(HERE / "jax_process_checks.py"), str(i), str(port), str(folder)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    deadline = time.monotonic() + 300
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outs = [p.communicate() for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def test_nnx_and_linen_over_two_jax_processes_init_their_own_shards_and_save_a_checkpoint_that_loads_on_one(
        tmp_path: Path) -> None:
    """jax.distributed with 2 processes of 2 CPU devices: each process's shards equal the same blocks of the unsharded
    init, placements kept, numpy peak within its shards + one chunk (two threads: their scratch); each writes its
    own blocks of one checkpoint, which loads split the other way there and, here, into an unsharded model. A linen
    model made by jax.jit(init, out_shardings=...) over both processes: the same, saved and loaded there. Keras on
    JAX under ModelParallel over both processes: the same; its checkpoints load here into the unsharded NNX model."""
    from flax import nnx

    for attempt in range(3):
        outs = _two_jax_processes(tmp_path)
        if not any("already in use" in err.lower() for _, _, err in outs) or attempt == 2:
            break
    for i, (code, out, _) in enumerate(outs):
        assert code == 0 and f"process {i} ok" in out, "\n".join(f"process {j}: {e[-3000:]}"
                                                                  for j, (_, _, e) in enumerate(outs))

    class Net(nnx.Module):
        def __init__(self) -> None:
            self.dense, self.out = nnx.Linear(64, 128, rngs=nnx.Rngs(0)), nnx.Linear(128, 8, rngs=nnx.Rngs(0))

    def sequential() -> nnx.Sequential:
        return nnx.Sequential(nnx.Linear(64, 128, rngs=nnx.Rngs(0)), nnx.Linear(128, 8, rngs=nnx.Rngs(0)))

    for saved, build in (("one.safetensors", Net), ("keras/one.safetensors", sequential),
                         ("keras/sharded", sequential)):
        loaded, reference = build(), build()
        up.wrap(loaded).load(tmp_path / saved)
        pm = up.wrap(reference)
        pm.init(up.init.XavierUniform(), layer="linear", kind="weight", seed=5)
        pm.init(up.init.Normal(std=0.5), kind="bias", seed=5)
        for name, view in pm.items():
            got = np.asarray(up.wrap(loaded)[name].native.get_value())
            assert np.array_equal(got, np.asarray(view.native.get_value())), (saved, name)


def test_an_nnx_eval_shape_model_is_pending_storage_until_materialize_applies_its_records() -> None:
    """Issue 16: nnx.eval_shape on one device: not initialized, pm.init records, materialize() allocates; the values
    equal the same init on the model built eagerly (NNX's own arrays)."""
    from flax import nnx

    def build() -> nnx.Module:
        return nnx.Sequential(nnx.Linear(6, 5, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(5, 2, rngs=nnx.Rngs(0)))

    eager = up.wrap(build())
    pm = up.wrap(nnx.eval_shape(build))
    assert not pm.initialized and pm.pending() == [] and pm.pending("storage") == pm.names()
    with pytest.raises(up.DeferredInitializationError, match="storage"):
        pm["0.weight"].numpy()
    for model in (eager, pm):
        model.init(up.init.KaimingUniform(), layer="linear", kind="weight", seed=3)
    with pytest.raises(up.DeferredInitializationError, match="0/bias"):
        pm.materialize()
    assert pm.pending("storage") == pm.names()
    for model in (eager, pm):
        model.init(up.init.Uniform(), kind="bias", seed=3)
    assert pm.materialize() is pm and pm.initialized
    for name, view in pm.items():
        assert np.array_equal(np.asarray(view.native.get_value()), np.asarray(eager[name].native.get_value())), name
    np.testing.assert_allclose(pm.forward(np.ones((1, 6), np.float32)), eager.forward(np.ones((1, 6), np.float32)))
