"""Checks shared by the multi-process scripts (dtensor_checks.py over torch gloo, jax_process_checks.py over
jax.distributed): each runs them in every process of its group."""
from __future__ import annotations

import os
from collections.abc import Callable

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
