"""pm[name].sharding: where a parameter's values live, said the same way for every engine (JAX, torch DTensor).

A mesh of named axes; for each canonical dimension the mesh axes it is split over (none: whole, so a parameter
split over no axis is replicated); the shards this process holds, each a device and its block of the canonical
tensor. Native dimensions are mapped through the layer's layout, so a kernel stored (in, out) and split on its
native dimension 1 is split on canonical dimension 0.
"""
from __future__ import annotations

from dataclasses import dataclass

from .regions import Region


@dataclass(frozen=True)
class Shard:
    """One local shard: the device that holds it and its block [start, stop) of the canonical tensor."""

    device: str
    start: tuple[int, ...]
    stop: tuple[int, ...]

    @property
    def index(self) -> tuple[slice, ...]:
        """The block as slices of the canonical tensor: full[shard.index] is this shard's value."""
        return tuple(slice(s, e) for s, e in zip(self.start, self.stop))


@dataclass(frozen=True)
class Sharding:
    """A parameter's placement: mesh axes (name, size) in mesh order, the axes each canonical dimension is split over,
    and this process's shards; `engine` is the framework that holds it (`jax`, `torch`)."""

    mesh: tuple[tuple[str, int], ...]
    dims: tuple[tuple[str, ...], ...]
    shards: tuple[Shard, ...]
    engine: str

    @property
    def axes(self) -> dict[str, int]:
        """Mesh axis name -> size."""
        return dict(self.mesh)

    @property
    def split(self) -> dict[int, tuple[str, ...]]:
        """Canonical dimension -> the mesh axes it is split over, for the split dimensions only."""
        return {d: axes for d, axes in enumerate(self.dims) if axes}

    @property
    def replicated(self) -> bool:
        """True when no dimension is split: every device holds the whole tensor."""
        return not any(self.dims)

    def __repr__(self) -> str:
        mesh = ", ".join(f"{n}={s}" for n, s in self.mesh)
        split = ", ".join(f"dim {d} over {'x'.join(a)}" for d, a in self.split.items()) or "replicated"
        return f"<Sharding {self.engine} mesh({mesh}): {split}; {len(self.shards)} local shards>"


def shard_of(device: str, region: Region) -> Shard:
    """The Shard of one device that holds region."""
    return Shard(device, region.start, region.stop)
