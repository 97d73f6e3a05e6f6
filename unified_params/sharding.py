"""pm[name].sharding: where a parameter's values live, said the same way for every engine (JAX, torch DTensor).

A mesh of named axes; for each canonical dimension the mesh axes it is split over (none: whole, so a parameter
split over no axis is replicated); the shards this process holds, each a device and its block of the canonical
tensor. Native dimensions are mapped through the layer's layout, so a kernel stored (in, out) and split on its
native dimension 1 is split on canonical dimension 0.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import WholeTensorWarning, quote
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


def _chunked(initializer: Any) -> bool:
    """True for a built-in that fills a shard from the chunks that meet it (or a constant): no whole value made."""
    from .init import Constant, in_place

    return in_place(initializer) and (getattr(initializer, "chunk_fill", None) is not None
                                      or isinstance(initializer, Constant))


def _split(adapter: Any, slot: Any) -> bool:
    placed = adapter.sharding(slot)
    return placed is not None and not placed.replicated


def _whole_reason(adapter: Any, slot: Any, chunked: bool) -> str | None:
    """Why pm.init must build this parameter whole on the host although (part of) it is split, or None."""
    from .layout import axis_map

    parts = getattr(slot, "bounds", None)
    if parts is not None:
        split = any(b.slot is not None and _split(adapter, b.slot) for b in parts)
        return "is joined from several native arrays (no one placement)" if split else None
    reshaped = axis_map(slot.layout, len(slot.shape)) is None
    if chunked and not reshaped:
        return None
    placed = adapter.sharding(slot)
    if placed is None or not (reshaped or not placed.replicated):
        return None
    return "is stored reshaped (no block of it is a block of the native array)" if reshaped else \
        "needs the whole tensor"


def warn_whole(adapter: Any, initializer: Any, entries: Sequence[Any]) -> None:
    """Warn, naming them with their size, of the split parameters that pm.init builds whole on the host: Orthogonal
    and custom initializers need the whole tensor, a layout that reshapes has no canonical blocks, and a joined
    tensor has no one placement (its split parts are cut from the whole value)."""
    from .dtypes import resolve

    chunked = _chunked(initializer)
    whole: dict[str, list[str]] = {}
    for e in entries:
        shape = tuple(e.slot.shape)
        if None in shape or not shape:
            continue
        why = _whole_reason(adapter, e.slot, chunked)
        if why is not None:
            size = math.prod(shape) * resolve(e.slot.dtype).itemsize
            whole.setdefault(why, []).append(
                f"{quote(e.name)} ({' x '.join(map(str, shape))} {e.slot.dtype}, {size / 2**20:.3g} MiB)")
    if whole:
        text = "; ".join(f"{', '.join(names)} {why}" for why, names in whole.items())
        warnings.warn(f"{initializer!r}: pm.init builds split parameters whole in this process's memory, then keeps "
                      f"their shards: {text} (sharded init is bounded by the shards plus one chunk only for the "
                      f"chunked built-ins: Normal, Uniform, Xavier*, Kaiming*, TruncatedNormal, Constant, on "
                      f"parameters that are not joined; see docs/scale.md)",
                      WholeTensorWarning, stacklevel=4)
