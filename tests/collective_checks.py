"""Checks shared by the multi-process scripts (dtensor_checks.py over torch gloo, jax_process_checks.py over
jax.distributed): each runs them in every process of its group."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

import unified_params as up


def atomic(rank: int, size: int, pm: up.ParamAPI, folder: str, barrier: Callable[[], object]) -> None:
    """A save that fails on the last process raises on every process and leaves the old checkpoint as it was."""
    old = {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}
    barrier()
    real = os.pwrite

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(28, "No space left on device")

    if rank == size - 1:
        os.pwrite = full
    try:
        pm.save(folder, max_shard_size=20_000)
        raise AssertionError("the save did not fail")
    except (OSError, up.CheckpointError) as e:
        assert rank == size - 1 or "another process failed" in str(e), e
    finally:
        os.pwrite = real
    barrier()
    now = {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}
    assert now == old, "a failed save changed the checkpoint folder"


def saved_bytes(pm: up.ParamAPI, folder: str) -> int:
    """The bytes this process writes (os.pwrite) while pm saves one file and a sharded folder into folder."""
    written = [0]
    real = os.pwrite

    def counted(fd: int, data: object, offset: int) -> int:
        written[0] += len(data)
        return real(fd, data, offset)

    os.pwrite = counted
    try:
        pm.save(os.path.join(folder, "one.safetensors"))
        pm.save(os.path.join(folder, "sharded"), max_shard_size=20_000)
    finally:
        os.pwrite = real
    return written[0]


def check_provenance(folder: str, names: Iterable[str], seed: int) -> None:
    """The files saved_bytes wrote record, for every tensor, the pm.init that made it (the scripts' init: XavierUniform
    on weights, Normal(std=0.5) on biases, both with seed): every process knew the same, so process 0 wrote it."""
    from safetensors import safe_open

    want = {n: {"initializer": repr(up.init.XavierUniform() if n.endswith("weight") else up.init.Normal(std=0.5)),
                "seed": seed} for n in names}
    sharded = os.path.join(folder, "sharded")
    files = [os.path.join(folder, "one.safetensors")]
    files += [os.path.join(sharded, f) for f in sorted(os.listdir(sharded)) if f.endswith(".safetensors")]
    merged: dict = {}
    for file in files:
        with safe_open(file, "np") as f:
            merged.setdefault(file == files[0], {}).update(json.loads(f.metadata().get("provenance", "{}")))
    assert merged == {True: want, False: want}, (merged, want)
