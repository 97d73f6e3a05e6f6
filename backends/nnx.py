"""Flax NNX adapter: stateful modules whose Variables are written in place.

Names follow the graph: an `nnx.Sequential`'s `layers.N` is position `N`, other attributes keep
their names (`nnx.List`/`nnx.Dict` attributes add their own level, like torch's ModuleList).
`nnx.Param` is trainable, `nnx.BatchStat` is not; RNG state, caches and intermediates are not
parameters. A Variable reached twice (a module used at two positions) is one storage: its names
are tied. Deferred shapes come from `nnx.bridge.ToNNX` lazy modules, which wrap a linen module
and get their variables from `bridge.lazy_init(model, x)` or `pm.materialize(x)`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from unified_params.adapter import FREEZE, LOAD_DEFERRED, NATIVE_GRAD, UNALLOCATED, Adapter, DeferredHooks, Node, Slot
from unified_params.errors import DeferredInitializationError, UnsupportedError
from unified_params.lazy import lazy
from unified_params.outputs import loss_target
from unified_params.sharding import Sharding

from . import _jax_processes as processes
from . import nnx_graph as graph
from ._jax import (
    as_input,
    canonical_copy,
    canonical_view,
    compare_shapes,
    is_array,
    mismatch_from_failure,
    output_numpy,
    sum_outputs,
    to_numpy,
    walk,
)
from ._jax_sharding import allocate_abstract, describe, filled_like, mesh_axes, named, written_like

jax = lazy("jax")
nnx = lazy("flax.nnx")
bridge = lazy("flax.nnx.bridge")

def _swap_class(obj: Any, cls: type) -> None:
    object.__setattr__(obj, "__class__", cls)


class NNXAdapter(Adapter):
    """Wraps a flax.nnx Module (including nnx.bridge lazy modules)."""

    name = "nnx"
    roots = ("flax",)
    distribution = "flax"
    extra = "flax"
    model_types = "flax.nnx.Module"
    examples = "unified_params.backends.nnx_examples"
    structures = "unified_params.backends.nnx_structures"
    capabilities: dict[str, str] = {
        UNALLOCATED: "NNX modules create their Variables, with values, when they are constructed; an nnx.eval_shape "
                     "model has known shapes and no storage but keeps no initializer, so materialize() needs a pm.init "
                     "record for every parameter (docs/scale.md)",
        NATIVE_GRAD: "JAX keeps no gradient on parameters (nnx.grad returns them); use pm.grads(x)",
        LOAD_DEFERRED: "an nnx.bridge ToNNX module makes its variables by running the wrapped linen module: call "
                       "pm.materialize(example_input) first",
        FREEZE: "NNX has no trainable flag: the variable type (nnx.Param) and the optimizer's wrt filter decide; to "
                "freeze, pass optax.masked(tx, mask) with a mask built from pm.collect(...)",
    }

    def __init__(self, model: Any, variables: Any = None) -> None:
        self.model = model
        self._grads: dict[int, np.ndarray] = {}
        self._hooks: DeferredHooks | None = None

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        return isinstance(model, nnx.Module)

    def tree(self) -> Node:
        return graph.Tree(self.model).root

    def listing(self) -> tuple[list[str], Any] | None:
        """The names tree() gives, without slots or NNX's own paths (no graph traversal of NNX's)."""
        from .nnx_listing import Holders, Listing

        found = Listing(self.model)
        return (list(dict.fromkeys(found.names)), Holders(list(found.holders.values()))) if found.ok else None

    def stamp(self, root: Node) -> graph.Stamp:
        """Every module's attribute dict (and list, dict, ToNNX dict) contents, each slot's path, the Variables'
        attributes."""
        return graph.Stamp(root)

    def changed(self, stamp: graph.Stamp, attributes: bool = True) -> bool:
        return stamp.changed(attributes)

    def current(self, stamp: graph.Stamp, nodes: Sequence[Node], slot: Slot, attributes: bool = True) -> bool:
        """The Variable is still reached through the same attributes (one lookup per level), else the whole check."""
        steps = stamp.paths.get(id(slot))
        if steps is None:
            return not stamp.changed(attributes)
        try:
            for container, key, value in steps:
                if container[key] is not value:
                    return False
        except (KeyError, IndexError, TypeError):
            return False
        return not attributes or graph.var_attributes(slot.ref.var) == stamp.attributes[id(slot.ref.var)]

    def native(self, slot: Slot) -> Any:
        """The nnx.Variable (nnx.Param, nnx.BatchStat, ...) itself."""
        return slot.ref.var

    def change_token(self, slot: Slot) -> tuple[Any, Hashable] | None:
        """The Variable's array (JAX arrays are immutable: a write sets a new one)."""
        return graph.value_of(slot.ref.var), None

    def read(self, slot: Slot) -> np.ndarray:
        return canonical_copy(graph.value_of(slot.ref.var), slot.layout)

    def view(self, slot: Slot) -> np.ndarray:
        return canonical_view(graph.value_of(slot.ref.var), slot.layout)

    def fill(self, slot: Slot, fn: Callable[..., None]) -> None:
        """fn writes the canonical view of one native-layout buffer, which becomes the Variable's value; a sharded
        Variable gets each local shard written on its own (fn(block, region)), its sharding kept."""
        var = slot.ref.var
        graph.assign(var, filled_like(graph.value_of(var), slot.layout, fn))

    def write(self, slot: Slot, value: np.ndarray) -> None:
        var = slot.ref.var
        graph.assign(var, written_like(graph.value_of(var), value, slot.layout))

    def sharding(self, slot: Slot) -> Sharding | None:
        return None if slot.ref.var is None else describe(graph.value_of(slot.ref.var), slot.layout)

    def group(self) -> Any:
        return processes.group(jax.tree.leaves(nnx.state(self.model)))

    def blocks(self, slot: Slot) -> list | None:
        var = slot.ref.var
        return None if var is None else processes.blocks(graph.value_of(var), slot.layout, slot.native_name)

    def mesh_axes(self, mesh: Any) -> dict[str, int]:
        return mesh_axes(mesh)

    def placement(self, slot: Slot, dims: tuple[tuple[str, ...], ...], mesh: Any) -> Any:
        return named(dims, slot.layout, mesh, slot.native_name)

    def place(self, slot: Slot, placement: Any) -> None:
        """Reshard the Variable's array on its devices (jax.device_put; no host copy)."""
        graph.assign(slot.ref.var, jax.device_put(graph.value_of(slot.ref.var), placement))

    def allocate(self, device: str | None, recorded: set[Hashable]) -> bool:
        """Variables of an nnx.eval_shape model get zeros on their devices (sharding kept) for the recorded
        initializers to fill; every one needs a record, checked before any is allocated."""
        def value(slot: Slot) -> Any:
            return None if slot.ref.var is None else graph.value_of(slot.ref.var)

        return allocate_abstract(self.tree(), recorded, value, lambda slot, new: graph.assign(slot.ref.var, new))

    def grad(self, slot: Slot) -> np.ndarray | None:
        g = self._grads.get(id(slot.ref.var))
        return None if g is None else canonical_copy(g, slot.layout)

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """nnx.grad of an eval-mode clone, in inference mode like forward (as every backend); the model is untouched."""
        xs = [as_input(x) for x in inputs]

        def objective(model: Any) -> Any:
            out = model(*xs)
            return sum_outputs(loss_target(out, is_array)) if loss is None else loss(out)

        probe = nnx.clone(self.model)
        probe.eval()
        grads = nnx.grad(objective)(probe)
        by_path = {path: v for path, v in nnx.iter_graph(self.model) if isinstance(v, nnx.Variable)}
        self._grads = {}
        for path, g in nnx.to_flat_state(grads):
            var = by_path.get(tuple(path))
            if var is not None:
                self._grads[id(var)] = to_numpy(graph.value_of(g) if isinstance(g, nnx.Variable) else g)

    def forward(self, inputs: Sequence[Any]) -> Any:
        """The output of an eval-mode clone: Dropout off, BatchNorm on running statistics, the model untouched."""
        if graph.lazy_modules(self.model):
            raise DeferredInitializationError(
                "ToNNX modules have no variables yet: call pm.materialize(example_input) or "
                "nnx.bridge.lazy_init(model, x)")
        probe = nnx.clone(self.model)
        probe.eval()
        return output_numpy(probe(*[as_input(x) for x in inputs]))

    def channels_last(self) -> bool:
        return True

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """Each given module's __call__ output on an eval-mode clone (NNX has no hooks: the classes' __call__ is
        wrapped for the one pass and restored)."""
        probe = nnx.clone(self.model)
        probe.eval()
        clones = {id(a): b for (_, a), (_, b) in zip(nnx.iter_graph(self.model), nnx.iter_graph(probe))}
        keys: dict[int, str] = {}
        for key, module in layers.items():
            if isinstance(module, nnx.Module) and id(module) in clones:
                keys.setdefault(id(clones[id(module)]), key)
        out: dict[str, Any] = {}
        saved = {cls: cls.__dict__.get("__call__") for cls in {type(clones[id(m)]) for m in layers.values()
                                                                if isinstance(m, nnx.Module) and id(m) in clones}}
        for cls in saved:
            cls.__call__ = _recording(cls.__call__, keys, out)
        try:
            probe(*[as_input(x) for x in inputs])
        finally:
            for cls, original in saved.items():
                if original is None:
                    del cls.__call__
                else:
                    cls.__call__ = original
        return {key: out[key] for key in layers if key in out}

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        """Run a clone (lazy_init when ToNNX modules wait for shapes), check shapes, then adopt its new variables."""
        if not inputs:
            if graph.lazy_modules(self.model):
                raise DeferredInitializationError(
                    "ToNNX modules create their variables by running the model: pass example inputs, pm.materialize(x)")
            return None
        xs = [as_input(x) for x in inputs]
        known = self.tree()
        probe = nnx.clone(self.model)
        pending = bool(graph.lazy_modules(probe))
        probe_tree = graph.Tree(probe)
        try:
            if pending:
                bridge.lazy_init(probe, *xs)
            else:
                probe.eval()
                probe(*xs)
        except Exception as e:
            raise mismatch_from_failure(e, inputs, lambda obj: probe_tree.layers.get(id(obj)), dict(walk(known))) from e
        error = compare_shapes(known, graph.Tree(probe).root, inputs)
        if error is not None:
            raise error
        return self._adopt(probe) if pending else None

    def _adopt(self, probe: Any) -> Callable[[], None]:
        """Move the variables lazy_init created in the probe's ToNNX modules into the model's; return the undo."""
        created = {path: m for path, m in nnx.iter_graph(probe) if isinstance(m, bridge.ToNNX)}
        cls, saved = type(self.model), []
        for path, module in nnx.iter_graph(self.model):
            if isinstance(module, bridge.ToNNX) and graph.tonnx_variables(module) is None and path in created:
                saved.append((module, dict(vars(module))))
                for name, value in graph.attributes(created[path]):
                    setattr(module, name, value)
        _release(self.model, skip=self._hooks)

        def undo() -> None:
            for module, attrs in saved:
                vars(module).clear()
                vars(module).update(attrs)
            _swap_class(self.model, cls)

        return undo

    def share(self, owner: Any, slot: Slot, source: Slot) -> None:
        """Point the owner's attribute (or list/dict item) at source's Variable: NNX shares a Variable by identity."""
        items = vars(owner).items() if isinstance(owner, nnx.Module) else (
            owner.items() if isinstance(owner, dict) else enumerate(owner))
        for key, value in list(items):
            if value is slot.ref.var:
                if isinstance(owner, nnx.Module):
                    setattr(owner, key, source.ref.var)
                else:
                    owner[key] = source.ref.var
                return
        raise UnsupportedError(f"{slot.native_name!r} is not an attribute of its layer: tie it in the model's code")

    def watch(self, hooks: DeferredHooks) -> None:
        """Make the model's own first `bridge.lazy_init(model, x)` apply the recorded initializers.

        The root's class is swapped for a subclass whose `__call__` reports once every ToNNX module
        has its variables, then the original class is put back.
        """
        if not graph.lazy_modules(self.model):
            return
        self._hooks = hooks
        model, cls = self.model, type(self.model)
        if "_up_hooks" in vars(cls):
            cls._up_hooks.append(hooks)
            return

        def __call__(this: Any, *args: Any, **kwargs: Any) -> Any:
            out = cls.__call__(this, *args, **kwargs)
            if this is model and not graph.lazy_modules(model):
                _release(model)
            return out

        namespace = {"__call__": __call__, "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                     "__reduce_ex__": _reduce_as_base, "_up_hooks": [hooks], "_up_base": cls}
        _swap_class(model, type(cls.__name__, (cls,), namespace))


def _reduce_as_base(self: Any, protocol: int) -> Any:
    """Pickle and deepcopy a watched model as its own class: the copy is a plain model without pending records."""
    swapped, base = type(self), type(self)._up_base
    reduced = object.__reduce_ex__(self, protocol)
    if isinstance(reduced, tuple) and len(reduced) > 1 and reduced[1][:1] == (swapped,):
        reduced = (_new_instance, (base,), *reduced[2:])
    return reduced


def _new_instance(cls: type) -> Any:
    return cls.__new__(cls)


def _release(model: Any, skip: Any = None) -> None:
    """Tell every other watcher that shapes are known, then put back the model's own class.

    A recorded initializer that fails keeps the class swapped, so the next call fails the same way.
    """
    cls = type(model)
    hooks = vars(cls).get("_up_hooks")
    if hooks is None:
        return
    for h in hooks:
        if h is not skip:
            h.shapes_known()
    _swap_class(model, cls._up_base)


def _recording(call: Callable, keys: Mapping[int, str], out: dict[str, Any]) -> Callable:
    """call, recording the first output of each module whose id keys names, once."""

    @functools.wraps(call)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = call(self, *args, **kwargs)
        key = keys.get(id(self))
        if key is not None and key not in out:
            out[key] = to_numpy(jax.tree_util.tree_leaves(result)[0])
        return result

    return recorded
