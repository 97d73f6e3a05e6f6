"""pm.save of a model split over several processes (torch DTensor): each process writes only the blocks it holds.

The file layout is the ordinary one (one safetensors file, or transformers-style shards and one index): process
0 creates each file at its final size with its header (checksums still zero), then every process writes the
bytes of its own blocks at their offsets (a replicated block by one process only), then process 0 computes the
checksums by reading the files back in small pieces, rewrites the headers in place and commits the set (rename,
then the index), as single-process saves do. No process ever holds a tensor it does not hold already. If any
process fails, process 0 removes the new files and every process raises: the old checkpoint stays as it was.
"""
from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, Protocol

import numpy as np

from . import errors, safetensors_io, shards
from .checkpoint import Origins, Spec, check_metadata, crc_table, own_metadata, replacing, user_path
from .regions import Region, pieces

READ = 1 << 20


class Group(Protocol):
    """The processes that hold one model together (an adapter's group()): this one's rank, their number, two calls."""

    rank: int
    size: int

    def broadcast(self, value: Any) -> Any:
        """Process 0's value, on every process."""

    def all_ok(self, ok: bool) -> bool:
        """True on every process when ok is True on every process."""


Blocks = Callable[[Any], "list[tuple[Region, np.ndarray]] | None"]


def _create(stack: ExitStack, files: list[str], groups: list[list[Spec]], metadata: dict[str, str],
            backend: str, tied: list[list[str]], origins: Origins) -> dict[str, tuple[str, int]]:
    """Process 0: each file made at its final size under a temporary name; name -> (temporary file, data offset)."""
    where = {}
    for file, group in zip(files, groups):
        meta = {**metadata, **own_metadata([s[0] for s in group], backend, tied, origins)}
        tmp = stack.enter_context(replacing(file))
        head = safetensors_io.header_bytes(group, {**meta, "crc32": crc_table({s[0]: 0 for s in group})})
        with open(tmp, "wb") as f:
            f.write(head)
            at = len(head)
            for spec in group:
                where[spec[0]] = (tmp, at)
                at += math.prod(spec[2]) * np.dtype(spec[1]).itemsize
            f.truncate(at)
    return where


def _write(fd: int, offset: int, shape: tuple[int, ...], region: Region, block: np.ndarray) -> None:
    """The bytes of one block at their places in the tensor stored at offset: one write per run of consecutive bytes."""
    flat = np.ascontiguousarray(block).reshape(-1).view(np.uint8)
    item = block.dtype.itemsize
    for piece in pieces(region, 0, math.prod(shape)):
        for row in range(piece.rows):
            src, dst = piece.src + row * piece.stride, piece.dst + row * piece.width
            data = memoryview(flat[dst * item : (dst + piece.width) * item])
            os.pwrite(fd, data, offset + src * item)


def _checksums(f: Any, specs: list[Spec], where: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Process 0: the CRC-32 of each tensor's bytes, read back from the file in pieces of 1 MiB."""
    sums = {}
    for name, dtype, shape in specs:
        _, at = where[name]
        left = math.prod(shape) * np.dtype(dtype).itemsize
        crc = 0
        f.seek(at)
        while left:
            data = f.read(min(READ, left))
            crc, left = zlib.crc32(data, crc), left - len(data)
        sums[name] = crc
    return sums


def agreed(group: Group, origins: Origins) -> Origins:
    """The provenance to record: process 0's when every process sees the same, else none (a checkpoint never claims
    an origin that one of its writers does not know)."""
    mine = json.loads(json.dumps(origins))
    first = group.broadcast(mine if group.rank == 0 else None)
    return first if group.all_ok(first == mine) else {}


def save(path: Any, specs: list[Spec], items: Sequence[Any], blocks: Blocks, whole: Callable[[Any], np.ndarray],
         group: Group, backend: str, tied: list[list[str]], metadata: dict[str, str] | None,
         max_shard_size: int | str | None, origins: Origins | None = None) -> None:
    """Every process of group calls this with the same specs; items[i] is the slot of specs[i]."""
    shown = user_path(path)
    extra = check_metadata(metadata)
    origins = agreed(group, origins or {})
    with ExitStack() as stack:
        plan: Any = None
        if group.rank == 0:
            try:
                if max_shard_size is None:
                    folder, names, groups, files = None, [], [specs], [shown]
                else:
                    folder, names, groups = shards.plan(shown, specs, max_shard_size)
                    files = [os.path.join(shown, n) for n in names]
                plan = _create(stack, files, groups, extra, backend, tied, origins)
            except Exception as e:
                plan = f"{type(e).__name__}: {e}"
        plan = group.broadcast(plan)
        if isinstance(plan, str):
            raise errors.CheckpointError(f"cannot save {shown!r}: process 0 could not create the files: {plan}")
        failure: BaseException | None = None
        try:
            _write_own(plan, specs, items, blocks, whole, group.rank)
        except BaseException as e:  # every process must reach all_ok, or the others wait for it forever
            failure = e
        ok = group.all_ok(failure is None)
        done: Any = None
        if group.rank == 0 and ok:
            try:
                _finish(plan, specs, extra, backend, tied, origins)
                stack.close()
                if folder is not None:
                    shards.commit(shown, folder, names, groups, extra, backend)
                done = True
            except Exception as e:
                done = f"{type(e).__name__}: {e}"
        done = group.broadcast(done)
        if failure is not None:
            raise failure
        if done is not True:
            raise errors.CheckpointError(f"cannot save {shown!r}: " + (done or "another process failed while "
                                         "writing its shards; nothing was replaced"))


def _write_own(where: dict[str, tuple[str, int]], specs: list[Spec], items: Sequence[Any], blocks: Blocks,
               whole: Callable[[Any], np.ndarray], rank: int) -> None:
    fds: dict[str, int] = {}
    try:
        for (name, _, shape), item in zip(specs, items):
            tmp, at = where[name]
            mine = blocks(item)
            if mine is None:
                mine = [(Region(shape, (0,) * len(shape), shape), whole(item))] if rank == 0 else []
            for region, block in mine:
                if tmp not in fds:
                    fds[tmp] = os.open(tmp, os.O_WRONLY)
                _write(fds[tmp], at, shape, region, block)
    finally:
        for fd in fds.values():
            os.close(fd)


def _finish(where: dict[str, tuple[str, int]], specs: list[Spec], extra: dict[str, str], backend: str,
            tied: list[list[str]], origins: Origins) -> None:
    """Process 0: the checksums into each file's header (same size: fixed-width numbers), written in place."""
    by_file: dict[str, list[Spec]] = {}
    for spec in specs:
        by_file.setdefault(where[spec[0]][0], []).append(spec)
    for tmp, group in by_file.items():
        meta = {**extra, **own_metadata([s[0] for s in group], backend, tied, origins)}
        with open(tmp, "r+b") as f:
            sums = _checksums(f, group, where)
            head = safetensors_io.header_bytes(group, {**meta, "crc32": crc_table(sums)})
            if len(head) != where[group[0][0]][1]:
                raise errors.CheckpointError(f"the header of {tmp!r} changed size once checksums were known")
            f.seek(0)
            f.write(head)
