"""torch DTensor parameters (distribute_tensor, fully_shard / FSDP2, meta device before to_empty): names and shapes are
the global ones, each process reads and writes only its local shard, and a whole value goes through torch's own
collectives (full_tensor) only where the API hands one back (read, state_dict)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from unified_params.errors import UnsupportedError, quote
from unified_params.lazy import lazy
from unified_params.regions import Region
from unified_params.sharding import Sharding, shard_of

torch = lazy("torch")


def is_dtensor(t: Any) -> bool:
    """True for a torch.distributed.tensor.DTensor (a parameter too), without importing torch.distributed otherwise."""
    return hasattr(t, "device_mesh") and hasattr(t, "placements") and hasattr(t, "to_local")


def _check(t: Any, name: str) -> None:
    if any(p.is_partial() for p in t.placements):
        raise UnsupportedError(f"{quote(name)} has Partial placements {t.placements}: its value is a pending sum over "
                               f"devices, not a shard; redistribute it to Shard or Replicate first")


def region(t: Any, name: str) -> Region:
    """The block of the global tensor this process holds (the whole tensor when replicated)."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _check(t, name)
    shape = tuple(t.shape)
    local, offset = compute_local_shape_and_global_offset(shape, t.device_mesh, t.placements)
    return Region(shape, tuple(offset), tuple(o + n for o, n in zip(offset, local)))


def describe(t: Any, name: str) -> Sharding:
    """The framework-neutral placement: mesh dims (named, else dim0, dim1, ...), the split dims, this rank's shard."""
    mesh = t.device_mesh
    names = mesh.mesh_dim_names or tuple(f"dim{i}" for i in range(mesh.ndim))
    dims: list[tuple[str, ...]] = [() for _ in t.shape]
    for axis, placement in zip(names, t.placements):
        if placement.is_shard():
            dims[placement.dim % len(dims)] += (axis,)
    device = f"{t.device.type}:{torch.distributed.get_rank()}"
    return Sharding(tuple(zip(names, mesh.shape)), tuple(dims), (shard_of(device, region(t, name)),), "torch")


def local(t: Any) -> Any:
    """The local shard's own tensor (writes to it are writes to the DTensor)."""
    return t._local_tensor if hasattr(t, "_local_tensor") else t.to_local()


def fill(t: Any, name: str, fn: Callable[..., None], view: Callable[[Any], np.ndarray | None],
         write: Callable[[Any, np.ndarray], None]) -> None:
    """fn(local block, region) writes this process's shard: in its memory where view gives it, else through a copy."""
    where = region(t, name)
    shard = local(t)
    memory = view(shard)
    out = memory if memory is not None else np.empty(where.block_shape, _numpy_dtype(shard))
    if where.whole:
        fn(out)
    else:
        fn(out, where)
    if memory is None:
        write(shard, out)


def write(t: Any, name: str, value: np.ndarray, copy: Callable[[Any, np.ndarray], None]) -> None:
    """Write this process's block of a whole canonical value."""
    copy(local(t), np.asarray(value)[region(t, name).slices])


def _numpy_dtype(shard: Any) -> np.dtype:
    from unified_params.dtypes import resolve

    return resolve(str(shard.dtype).removeprefix("torch."))


def mesh_axes(mesh: Any) -> dict[str, int]:
    """A DeviceMesh's dimension names and sizes (rules name mesh dimensions, so the mesh needs mesh_dim_names)."""
    names = getattr(mesh, "mesh_dim_names", None)
    if not hasattr(mesh, "get_coordinate") or not names:
        raise UnsupportedError(f"mesh {quote(mesh)} is not a torch DeviceMesh with named dimensions: make one with "
                               f"init_device_mesh('cpu', shape, mesh_dim_names=(...))")
    return dict(zip(names, map(int, mesh.shape)))


def placements(dims: tuple[tuple[str, ...], ...], mesh: Any) -> list[Any]:
    """One placement per mesh dimension: Shard(d) where canonical dimension d is split over it, else Replicate."""
    from torch.distributed.tensor import Replicate, Shard

    where = {axis: d for d, axes in enumerate(dims) for axis in axes}
    return [Shard(where[n]) if n in where else Replicate() for n in mesh.mesh_dim_names]


def place(model: Any, tensor: Any, mesh: Any, placement: list[Any]) -> None:
    """Replace tensor, wherever the model registers it (ties kept), by a DTensor of its value (distribute_tensor)."""
    from torch.distributed.tensor import distribute_tensor

    value = tensor.full_tensor() if is_dtensor(tensor) else tensor
    moved = distribute_tensor(value.detach(), mesh, placement)
    if isinstance(tensor, torch.nn.Parameter):
        moved = torch.nn.Parameter(moved, requires_grad=tensor.requires_grad)
    for module in model.modules():
        for registry in (module._parameters, module._buffers):
            for attr, t in list(registry.items()):
                if t is tensor:
                    registry[attr] = moved


class TorchGroup:
    """The torch.distributed processes (the default group) that hold a model of DTensors."""

    def __init__(self) -> None:
        self.rank, self.size = torch.distributed.get_rank(), torch.distributed.get_world_size()

    def broadcast(self, value: Any) -> Any:
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_ok(self, ok: bool) -> bool:
        flags: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(flags, bool(ok))
        return all(flags)


def group(model: Any) -> TorchGroup | None:
    """The process group when the model has DTensors and torch.distributed runs more than one process."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return None
    tensors = [*model.parameters(), *model.buffers()]
    return TorchGroup() if any(is_dtensor(t) for t in tensors) else None


def blocks(t: Any, name: str, memory: Callable[[Any], np.ndarray | None],
           copy: Callable[[Any], np.ndarray]) -> list[tuple[Region, np.ndarray]] | None:
    """This process's block of a DTensor for a checkpoint: [] when another process writes the same replica."""
    if not is_dtensor(t):
        return None
    coordinate = t.device_mesh.get_coordinate() or []
    if any(c != 0 for c, p in zip(coordinate, t.placements) if not p.is_shard()):
        return []
    shard = local(t)
    value = memory(shard)
    return [(region(t, name), value if value is not None else copy(shard))]
