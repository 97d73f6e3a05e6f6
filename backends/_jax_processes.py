"""JAX models split over several processes (jax.distributed): the process group and the blocks each one saves.

A checkpoint of such a model goes through collective.save, as torch DTensor models do: every process writes the
bytes of the blocks its own devices hold (a block several devices hold by the device of lowest id only), process 0
creates, checksums and commits the files. broadcast and all_ok run over JAX's own collectives
(jax.experimental.multihost_utils), so no other transport is needed.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from unified_params.errors import UnsupportedError, quote
from unified_params.layout import Layout, axis_map, to_canonical
from unified_params.lazy import lazy
from unified_params.regions import Region, remap

jax = lazy("jax")


class JaxGroup:
    """The processes of jax.distributed that hold a model together (collective.Group)."""

    def __init__(self) -> None:
        self.rank, self.size = jax.process_index(), jax.process_count()

    def broadcast(self, value: Any) -> Any:
        """Process 0's value (what JSON carries: collective.save's plans and outcomes; tuples come back as lists)."""
        from jax.experimental import multihost_utils

        data = np.frombuffer(json.dumps(value).encode(), np.uint8) if self.rank == 0 else np.zeros(0, np.uint8)
        size = int(multihost_utils.broadcast_one_to_all(np.int32(data.size)))
        buffer = np.zeros(size, np.uint8)
        if self.rank == 0:
            buffer[:] = data
        return json.loads(np.asarray(multihost_utils.broadcast_one_to_all(buffer)).tobytes())

    def all_ok(self, ok: bool) -> bool:
        from jax.experimental import multihost_utils

        return bool(np.all(multihost_utils.process_allgather(np.int32(bool(ok)))))


def _spans_processes(value: Any) -> bool:
    return isinstance(value, jax.Array) and not value.is_fully_addressable


def group(values: Iterable[Any]) -> JaxGroup | None:
    """The process group when jax.distributed runs several processes and an array of the model spans them."""
    if jax.process_count() == 1:
        return None
    return JaxGroup() if any(_spans_processes(v) for v in values) else None


def blocks(value: Any, layout: Layout | None, name: str) -> list[tuple[Region, np.ndarray]] | None:
    """The canonical blocks of value this process saves: those of its devices that are the first (lowest id) of the
    devices holding that block; None for an array this process holds whole (process 0 saves it)."""
    if not _spans_processes(value):
        return None
    shape = tuple(value.shape)
    axes = axis_map(layout, len(shape))
    if axes is None:
        raise UnsupportedError(f"{quote(name)} is stored reshaped ({layout.name}) and split over processes: no "
                               f"process holds a block of its canonical value; save it replicated")
    first: dict[tuple, int] = {}
    for device, index in value.sharding.devices_indices_map(shape).items():
        native = Region.of(shape, index)
        key = (native.start, native.stop)
        first[key] = min(first.get(key, device.id), device.id)
    out = []
    for shard in value.addressable_shards:
        native = Region.of(shape, shard.index)
        if first[(native.start, native.stop)] == shard.device.id:
            out.append((remap(native, axes), to_canonical(np.asarray(shard.data), layout)))
    return out
