"""JAX arrays split over devices (NamedSharding), shared by the NNX, linen and Keras-on-JAX adapters.

Writes keep every array's sharding exactly as it was: a fill makes each local shard on its own
(jax.make_array_from_callback), from the canonical block that shard holds, so no device and no host
buffer ever holds more than one shard of it. Abstract arrays (ShapeDtypeStruct from eval_shape) carry
their sharding on an abstract mesh; allocating them uses the current mesh of the same axes, or a new one.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from unified_params.adapter import Node, Slot
from unified_params.errors import DeferredInitializationError, UnsupportedError, quote, quote_all
from unified_params.layout import (
    Layout,
    aligned_empty,
    axis_map,
    fill_native,
    native_copy,
    shape_to_canonical,
    to_canonical,
)
from unified_params.lazy import lazy
from unified_params.locate import walk
from unified_params.regions import Region, remap
from unified_params.sharding import Sharding, shard_of

from ._jax import filled_array, native_array

jax = lazy("jax")
jnp = lazy("jax.numpy")

Fill = Callable[..., None]


def is_abstract(value: Any) -> bool:
    """True for a value with a shape and no data (jax.ShapeDtypeStruct, as nnx.eval_shape / jax.eval_shape give)."""
    return isinstance(value, jax.ShapeDtypeStruct)


def placement(value: Any) -> Any:
    """The value's sharding when it spans a mesh (NamedSharding or several devices), else None (one device)."""
    sharding = getattr(value, "sharding", None)
    if sharding is None or isinstance(sharding, jax.sharding.SingleDeviceSharding):
        return None
    return sharding


def concrete(sharding: Any) -> Any:
    """A NamedSharding on real devices for one on an abstract mesh: the current mesh of those axes, or a new one."""
    if sharding is None or not isinstance(getattr(sharding, "mesh", None), jax.sharding.AbstractMesh):
        return sharding
    abstract = sharding.mesh
    current = jax.sharding.get_mesh()
    if isinstance(current, jax.sharding.Mesh) and not current.empty and dict(current.shape) == dict(abstract.shape):
        mesh = current
    else:
        mesh = jax.make_mesh(tuple(abstract.shape.values()), tuple(abstract.shape), axis_types=abstract.axis_types)
    return jax.sharding.NamedSharding(mesh, sharding.spec)


def _device(device: Any) -> str:
    return f"{device.platform}:{device.id}"


def describe(value: Any, layout: Layout | None) -> Sharding | None:
    """The framework-neutral placement of a (possibly abstract) jax array, None on one device."""
    sharding = placement(value)
    if sharding is None:
        return None
    shape = tuple(value.shape)
    axes = axis_map(layout, len(shape))
    if isinstance(sharding, jax.sharding.NamedSharding):
        mesh = tuple((str(n), int(s)) for n, s in sharding.mesh.shape.items())
        spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
        native_dims = [() if p is None else (p,) if isinstance(p, str) else tuple(p) for p in spec]
    else:
        mesh, native_dims = (("devices", len(sharding.device_set)),), [()] * len(shape)
    if axes is None:
        return Sharding(mesh, tuple(() for _ in shape_to_canonical(shape, layout)), (), "jax")
    dims = tuple(native_dims[a] for a, _ in axes)
    shards = []
    if not isinstance(getattr(sharding, "mesh", None), jax.sharding.AbstractMesh):
        for device, index in sorted(sharding.addressable_devices_indices_map(shape).items(), key=lambda d: d[0].id):
            shards.append(shard_of(_device(device), remap(Region.of(shape, index), axes)))
    return Sharding(mesh, dims, tuple(shards), "jax")


def sharded_fill(shape: tuple[int, ...], dtype: Any, sharding: Any, layout: Layout | None, fn: Fill) -> Any:
    """A jax array of native shape and dtype with this sharding; fn(canonical view, region) writes each local shard.

    With fn.many (an initializer's fill), every distinct local block is written in one call that draws each random
    chunk once. A block that several devices hold (replication) is made once and copied for the others (JAX may
    adopt a host buffer without a copy, so no two devices share one). A layout that reshapes has no blocks: then
    the whole canonical value is made on the host and each shard cut from it.
    """
    shape, dtype = tuple(int(d) for d in shape), np.dtype(dtype)
    axes = axis_map(layout, len(shape))
    if axes is None:
        whole = aligned_empty(shape, dtype)
        fill_native(whole, layout, fn)
        return jax.make_array_from_callback(shape, sharding, lambda index: np.array(whole[index]))
    made: dict[tuple, np.ndarray] = {}
    many = getattr(fn, "many", None)
    if many is not None:
        blocks = []
        for index in sharding.addressable_devices_indices_map(shape).values():
            native = Region.of(shape, index)
            key = (native.start, native.stop)
            if key not in made:
                made[key] = aligned_empty(native.block_shape, dtype)
                blocks.append((to_canonical(made[key], layout), remap(native, axes)))
        many(blocks)

    given: set[tuple] = set()

    def shard(index: Any) -> np.ndarray:
        native = Region.of(shape, index)
        key = (native.start, native.stop)
        if key in given:
            copy = aligned_empty(native.block_shape, dtype)
            copy[...] = made[key]
            return copy
        given.add(key)
        if key not in made:
            made[key] = aligned_empty(native.block_shape, dtype)
            region = remap(native, axes)
            fill_native(made[key], layout, lambda view: fn(view, region) if not region.whole else fn(view))
        return made[key]

    return jax.make_array_from_callback(shape, sharding, shard)


def mesh_axes(mesh: Any) -> dict[str, int]:
    """A jax Mesh's axis names and sizes."""
    if not isinstance(mesh, (jax.sharding.Mesh, jax.sharding.AbstractMesh)):
        raise UnsupportedError(f"mesh {quote(mesh)} is not a jax.sharding.Mesh: make one with "
                               f"jax.make_mesh(shape, names)")
    return {str(k): int(v) for k, v in mesh.shape.items()}


def named(dims: tuple[tuple[str, ...], ...], layout: Layout | None, mesh: Any, name: str) -> Any:
    """The NamedSharding on mesh whose native PartitionSpec splits canonical dimension i over dims[i]."""
    axes = axis_map(layout, len(dims))
    if axes is None:
        raise UnsupportedError(f"{quote(name)} is stored reshaped ({layout.name}): a split of its canonical dimensions "
                               f"is no split of its native ones; leave it out of the rules (replicated)")
    native: list[tuple[str, ...]] = [()] * len(dims)
    for canonical, (axis, _) in enumerate(axes):
        native[axis] = dims[canonical]
    spec = [None if not d else d[0] if len(d) == 1 else d for d in native]
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*spec))


def sharded_put(native: np.ndarray, sharding: Any) -> Any:
    """A jax array with this sharding from a whole native-layout value (each device gets its block)."""
    return jax.make_array_from_callback(native.shape, sharding, lambda index: np.array(native[index]))


def zeros(value: Any) -> Any:
    """Zeros of an abstract value's shape and dtype, made on its devices with its (concrete) sharding."""
    sharding = concrete(placement(value))
    return jnp.zeros(value.shape, value.dtype, device=sharding) if sharding is not None else \
        jnp.zeros(value.shape, value.dtype)


def filled_like(old: Any, layout: Layout | None, fn: Fill) -> Any:
    """A new array of old's shape, dtype and placement whose canonical value fn wrote (shard by shard when split)."""
    sharding = placement(old)
    if sharding is None:
        return filled_array(old.shape, old.dtype, layout, fn)
    return sharded_fill(old.shape, old.dtype, concrete(sharding), layout, fn)


def written_like(old: Any, value: np.ndarray, layout: Layout | None) -> Any:
    """A new array of old's dtype and placement holding the canonical value."""
    sharding = placement(old)
    if sharding is None:
        return native_array(value, layout, old.dtype)
    return sharded_put(native_copy(value, layout, np.dtype(old.dtype)), concrete(sharding))


def allocate_abstract(root: Node, recorded: set[Hashable], get: Callable[[Slot], Any],
                      put: Callable[[Slot, Any], None]) -> bool:
    """Give every abstract slot under root zeros on its devices (sharding kept) for the recorded initializers to fill.

    An abstract model keeps no initializer of its own, so every abstract slot needs a record: checked first.
    """
    abstract = {s.storage: s for _, node in walk(root) for s in node.slots if is_abstract(get(s))}
    uncovered = [s.native_name for s in abstract.values() if s.storage not in recorded]
    if uncovered:
        raise DeferredInitializationError(
            f"call pm.init(...) for {quote_all(uncovered)} before pm.materialize(): the model was built abstract "
            f"(eval_shape), which keeps no initializer of its own to run")
    for slot in abstract.values():
        put(slot, zeros(get(slot)))
    return bool(abstract)
