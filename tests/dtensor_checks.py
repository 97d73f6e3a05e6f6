"""torch DTensor checks over gloo: run as `python tests/dtensor_checks.py WORLD` (WORLD processes, spawned here).

Each process builds the same model unsharded as the reference (same seed of pm.init), then sharded by
distribute_tensor (Shard(0), Shard(1), Replicate), by fully_shard, and by fully_shard on the meta device, and
compares torch's own full_tensor() (an all-gather) and its own local shard with the reference."""
from __future__ import annotations

import os
import socket
import sys
import tracemalloc

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from collective_checks import atomic, check_provenance, saved_bytes
from torch import nn

import unified_params as up


def build(width: int = 96) -> nn.Module:
    return nn.Sequential(nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 32))


def init(pm: up.ParamAPI) -> None:
    pm.init(up.init.XavierUniform(), layer=("linear", "conv"), kind="weight", seed=7)
    pm.init(up.init.Normal(std=0.5), kind="bias", seed=7)


def same(label: str, model: nn.Module, pm: up.ParamAPI, want: dict) -> None:
    for name, t in model.state_dict().items():
        whole = t.full_tensor()
        assert torch.equal(whole, want[name]), f"{label}: {name} differs from the unsharded init"
        shard = pm[name].sharding.shards[0]
        assert torch.equal(t.to_local(), want[name][shard.index]), f"{label}: {name} local shard {shard}"


def distributed(model: nn.Module, mesh: object, placement: object) -> nn.Module:
    from torch.distributed.tensor import Shard, distribute_tensor

    for module in model.modules():
        for name, p in list(module._parameters.items()):
            fits = not isinstance(placement, Shard) or placement.dim < p.ndim
            module.register_parameter(name, nn.Parameter(distribute_tensor(p.detach(), mesh,
                                                                           [placement if fits else Shard(0)])))
    return model


def worker(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        run(rank, world)
    finally:
        dist.destroy_process_group()


def run(rank: int, world: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Replicate, Shard

    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("model",))
    reference = build()
    init(up.wrap(reference))
    want = {n: t.detach().clone() for n, t in reference.state_dict().items()}
    for placement in (Shard(0), Shard(1), Replicate()):
        model = distributed(build(), mesh, placement)
        pm = up.wrap(model)
        init(pm)
        same(f"distribute_tensor {placement}", model, pm, want)
        if isinstance(placement, Shard):
            assert pm["2.weight"].sharding.split == {placement.dim: ("model",)}, pm["2.weight"].sharding
    model = build()
    fully_shard(model, mesh=mesh)
    pm = up.wrap(model)
    init(pm)
    same("fully_shard", model, pm, want)
    checkpoint(rank, world, model, pm, want, mesh)
    model = build()
    pm = up.wrap(model)
    init(pm)
    up.partition(pm, [("2.weight", ("model", None)), ({"layer": "linear", "kind": "weight"}, (None, "model"))], mesh)
    assert model[2].weight.placements == (Shard(0),) and model[4].weight.placements == (Shard(1),)
    assert model[0].weight.placements == (Replicate(),) and pm["4.weight"].sharding.split == {1: ("model",)}
    same("partition", model, pm, want)
    partial(mesh)
    with torch.device("meta"):
        model = build()
    fully_shard(model, mesh=mesh)
    pm = up.wrap(model)
    assert not pm.initialized and pm.pending("storage") == pm.names(), pm.pending("any")
    init(pm)
    pm.materialize(device="cpu")
    same("meta + fully_shard", model, pm, want)
    memory(rank, world, mesh)


def checkpoint(rank: int, world: int, model: nn.Module, pm: up.ParamAPI, want: dict, mesh: object) -> None:
    """Each process writes only its own shards' bytes into one checkpoint (a file, and shards + index); it loads
    into an unsharded model and into DTensors split the other way, bitwise; safetensors itself reads it."""
    from safetensors.numpy import load_file
    from torch.distributed.tensor import Shard

    folder = sys.argv[2]
    written = saved_bytes(pm, folder)
    mine = 2 * sum(t.to_local().numel() * 4 for t in model.state_dict().values())
    total = 2 * sum(t.numel() * 4 for t in want.values())
    counts = [None] * world
    dist.all_gather_object(counts, written)
    assert written == mine and sum(counts) == total, (written, mine, counts, total)
    check_provenance(folder, want, 7)
    files = sorted(f for f in os.listdir(os.path.join(folder, "sharded")) if f.endswith(".safetensors"))
    assert len(files) > 1, files
    stored = {k: v for f in files for k, v in load_file(os.path.join(folder, "sharded", f)).items()}
    stored_one = load_file(os.path.join(folder, "one.safetensors"))
    for name, value in want.items():
        assert np.array_equal(stored[name], value.numpy()) and np.array_equal(stored_one[name], value.numpy()), name
    atomic(rank, dist.get_world_size(), pm, os.path.join(folder, "sharded"), dist.barrier)
    plain = build()
    up.wrap(plain).load(os.path.join(folder, "sharded"))
    assert all(torch.equal(t, want[n]) for n, t in plain.state_dict().items())
    other = distributed(build(), mesh, Shard(1))
    up.wrap(other).load(os.path.join(folder, "one.safetensors"))
    same("load into Shard(1)", other, up.wrap(other), want)
    if rank == 0:
        print(f"{world} processes: each wrote its own shard bytes {counts}, {total} in all", flush=True)


def partial(mesh: object) -> None:
    """A Partial placement (a pending sum, not a shard) is refused by name; the tensor is left as it was."""
    from torch.distributed.tensor import DTensor, Partial

    model = nn.Linear(4, 4)
    local = torch.ones(4, 4)
    model.weight = nn.Parameter(DTensor.from_local(local, mesh, [Partial()]))
    pm = up.wrap(model)
    bias = model.bias.detach().clone()
    for write in (lambda: pm.init(up.init.Zeros()), lambda: pm.load_state_dict({"weight": np.zeros((4, 4), "f"),
                                                                                 "bias": np.zeros(4, "f")})):
        try:
            write()
            raise AssertionError("a Partial DTensor was written")
        except up.UnsupportedError as e:
            assert "'weight'" in str(e) and "Partial" in str(e), e
        assert torch.equal(model.weight.to_local(), torch.ones(4, 4)) and torch.equal(model.bias, bias)


def memory(rank: int, world: int, mesh: object) -> None:
    """A 16 MB layer on the meta device, fully_shard, init + materialize: torch holds the shard; numpy at most one
    chunk and the draws' scratch per fill thread (its shard is a run of whole chunks, drawn in place: no chunk)."""
    from torch.distributed.fsdp import fully_shard

    from unified_params import draws, rng

    with torch.device("meta"):
        model = nn.Linear(2048, 2048, bias=False)
    fully_shard(model, mesh=mesh)
    pm = up.wrap(model)
    tracemalloc.start()
    pm.init(up.init.Normal(std=0.02), seed=1)
    pm.materialize(device="cpu")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    shard = model.weight.to_local()
    held = shard.untyped_storage().nbytes()
    chunk, scratch = rng.CHUNK * 4, draws.scratch_bytes(np.float32)
    assert held == shard.numel() * 4 == 2048 * 2048 * 4 // world, held
    assert peak <= chunk, f"numpy peak {peak} beyond one chunk ({chunk})"
    print(f"rank {rank}/{world}: torch shard {held / 2**20:.1f} MiB, numpy peak {peak / 2**20:.2f} MiB "
          f"(one chunk: {chunk / 2**20:.0f} MiB; the draws' scratch at most {scratch / 2**20:.2f} MiB)", flush=True)
    dist.barrier()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    world = int(sys.argv[1])  # argv[2]: a folder for the checkpoints
    for attempt in range(3):
        try:
            mp.spawn(worker, args=(world, free_port()), nprocs=world, join=True)
            break
        except mp.ProcessRaisedException as e:
            if "address already in use" not in str(e).lower() or attempt == 2:
                raise
    print(f"dtensor ok {world}")
