"""Flax linen adapter: a stateless module plus the variables tree the wrapper holds and replaces on every write.

Canonical names: a Sequential's `layers_N` is its position `N` (parameter-free layers such as
`nn.relu` count), other submodules keep their names; `kernel`, `scale` and `embedding` are `weight`
(dense kernels `(in, out)` and conv kernels `(*k, in, out)` are shown in PyTorch's layout), the
`batch_stats` collection's `mean`/`var` are `running_mean`/`running_var`. A module used twice in a
Sequential has one entry in the variables and a name at each position, tied to the first.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified_params.adapter import (
    FREEZE,
    LOAD_DEFERRED,
    NATIVE_GRAD,
    NATIVE_MATERIALIZE,
    TIE,
    UNALLOCATED,
    Adapter,
    DeferredHooks,
    Node,
    Slot,
)
from unified_params.errors import (
    DeferredInitializationError,
    DtypeMismatchError,
    ParameterNotFoundError,
    ShapeMismatchError,
)
from unified_params.lazy import lazy
from unified_params.outputs import loss_target
from unified_params.sharding import Sharding

from . import _jax_processes as processes
from ._jax import (
    LinenLeaf,
    LinenTree,
    as_input,
    canonical_copy,
    canonical_view,
    compare_shapes,
    flatten,
    get_path,
    is_array,
    linen_slot_fields,
    mismatch_from_failure,
    output_numpy,
    rebox,
    set_path,
    sum_outputs,
    to_numpy,
    unbox,
    walk,
)
from ._jax_sharding import allocate_abstract, describe, filled_like, mesh_axes, named, written_like

jax = lazy("jax")
linen = lazy("flax.linen")
flax_meta = lazy("flax.core.meta")
frozen_dict = lazy("flax.core.frozen_dict")

SEED = 0


def _placed(boxed: Any) -> Any:
    """The leaf's array; an abstract one inside an nn.Partitioned box without a sharding of its own gets the box's
    names on its mesh or on the current mesh (jax.set_mesh), so that it is allocated where it is meant to live."""
    value = unbox(boxed)
    if not isinstance(value, jax.ShapeDtypeStruct) or value.sharding is not None \
            or not isinstance(boxed, flax_meta.Partitioned):
        return value
    mesh = boxed.mesh or jax.sharding.get_mesh()
    if not isinstance(mesh, jax.sharding.Mesh) or mesh.empty:
        return value
    return jax.ShapeDtypeStruct(value.shape, value.dtype,
                                sharding=jax.sharding.NamedSharding(mesh, boxed.get_partition_spec()))


def _own_copy(tree: Mapping) -> dict:
    """The wrapper's own variables tree: nested dicts copied (later changes to the caller's dicts are not seen), leaves
    shared; a FrozenDict becomes dicts as `frozen_dict.unfreeze` makes them (which is 2-3x slower on plain dicts)."""
    if type(tree) is not dict:
        return frozen_dict.unfreeze(tree)
    out = dict(tree)
    for key, value in out.items():
        kind = type(value)
        if kind is dict:
            out[key] = _own_copy(value)
        elif kind not in _LEAF_TYPES:
            if issubclass(kind, (dict, frozen_dict.FrozenDict)):
                out[key] = frozen_dict.unfreeze(value)
            else:
                _LEAF_TYPES.add(kind)
    return out


_LEAF_TYPES: set[type] = set()
"""Types of variables-tree values met that unfreeze keeps as they are (arrays, boxes)."""


@dataclass(frozen=True)
class LinenRef:
    """Where a slot lives in the variables tree."""

    path: tuple[str, ...]


@dataclass
class _Stamp:
    """The variables tree an index was built from."""

    tree: Any


def _rngs() -> dict[str, Any]:
    key = jax.random.PRNGKey(SEED)
    return {"params": key, "dropout": jax.random.fold_in(key, 1)}


def _set_arg(args: tuple, kwargs: dict, position: int, name: str, value: Any) -> tuple[tuple, dict]:
    if len(args) > position:
        return (*args[:position], value, *args[position + 1:]), kwargs
    return args, {**kwargs, name: value}


INFERENCE = {"BatchNorm": "use_running_average", "Dropout": "deterministic"}


def _inference(next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
    """Interceptor that runs BatchNorm on running statistics and Dropout deterministically.

    The flag goes in the call unless the module set it as a field (Flax refuses both): then the
    field of this apply's bound copy is set for the call.
    """
    module = context.module
    kind = ("BatchNorm" if isinstance(module, linen.BatchNorm)
            else "Dropout" if isinstance(module, linen.Dropout) else None)
    if context.method_name != "__call__" or kind is None:
        return next_fun(*args, **kwargs)
    flag = INFERENCE[kind]
    old = getattr(module, flag)
    if old is None:
        args, kwargs = _set_arg(args, kwargs, 1, flag, True)
        return next_fun(*args, **kwargs)
    object.__setattr__(module, flag, True)
    try:
        return next_fun(*args, **kwargs)
    finally:
        object.__setattr__(module, flag, old)


class FlaxAdapter(Adapter):
    """Wraps a flax.linen Module and its variables (None until materialized)."""

    name = "flax"
    roots = ("flax",)
    tells_changes = True
    distribution = "flax"
    extra = "flax"
    model_types = "flax.linen.Module (with variables)"
    examples = "unified_params.backends.flax_examples"
    structures = "unified_params.backends.flax_structures"
    capabilities: dict[str, str] = {
        UNALLOCATED: "linen variables come only from module.init, which runs the model: materialize needs example "
                     "inputs even where every shape is known, except for variables from jax.eval_shape(module.init, "
                     "...), which materialize() allocates when a pm.init record covers each (docs/scale.md)",
        NATIVE_MATERIALIZE: "linen modules are stateless: module.init returns new variables the wrapper "
                              "cannot see; call pm.materialize(x), then pm.variables holds them",
        NATIVE_GRAD: "JAX keeps no gradient on parameters (jax.grad returns them); use pm.grads(x)",
        FREEZE: "linen has no trainable flag: the optimizer decides; to freeze, pass optax.masked(tx, mask) with a "
                "mask built from pm.collect(...)",
        LOAD_DEFERRED: "linen variables come only from module.init(rng, example_input): call "
                       "pm.materialize(example_input) first",
        TIE: "linen variables are a tree the module reads by path: share a submodule or a param in setup() instead",
    }

    def __init__(self, model: Any, variables: Any = None) -> None:
        self.model = model
        self._held: dict | None = None
        self._variables = None if variables is None else _own_copy(variables)
        self._grads: dict[tuple[str, ...], np.ndarray] = {}
        self._layers: dict[tuple[str, ...], str] = {}
        self._stamp: _Stamp | None = None

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        return isinstance(model, linen.Module)

    @property
    def _variables(self) -> dict | None:
        return self._held

    @_variables.setter
    def _variables(self, tree: dict | None) -> None:
        """Every replacement of the tree but the adapter's own writes (_replace) is a change the core is told of."""
        self._held = tree
        if self.on_change is not None:
            self.on_change()

    @property
    def variables(self) -> dict | None:
        """The current variables tree, to pass to module.apply; None until materialized."""
        return self._variables

    def set_variables(self, tree: Any) -> None:
        """Take a variables tree trained outside pm (e.g. optax updates) once its structure, shapes and dtypes fit."""
        if not isinstance(tree, Mapping):
            raise ShapeMismatchError(
                f"pm.variables = {type(tree).__name__!r}: give the variables tree of {type(self.model).__name__!r} "
                f"(a mapping of collections, as module.init returns); nothing was changed")
        new = _own_copy(tree)
        if self._variables is not None:
            _check_tree(self._variables, new)
            new = _ordered_like(new, self._variables)
        else:
            _check_known(self.tree(), self._tree(new)[0])
        self._variables = new

    def _tree(self, variables: Mapping | None) -> tuple[Node, dict[tuple[str, ...], str]]:
        builder = LinenTree(self.model, variables, self._slot)
        return builder.build(), builder.layers

    def tree(self) -> Node:
        root, self._layers = self._tree(self._variables)
        return root

    @staticmethod
    def _slot(leaf: LinenLeaf) -> Slot:
        path = (leaf.collection, *leaf.path)
        return Slot(native_name=leaf.native_name, ref=LinenRef(path), storage=path, **linen_slot_fields(leaf))

    def listing(self) -> tuple[list[str], _Stamp] | None:
        """The names tree() gives, without binding the module where its structure allows (LinenTree.names)."""
        from .flax_listing import names

        found = names(self.model, self._variables)
        return None if found is None else (found, _Stamp(self._variables))

    def stamp(self, root: Node) -> _Stamp:
        """The variables tree root was built from; the adapter's own writes (same paths, dtypes, shapes) carry it on."""
        self._stamp = _Stamp(self._variables)
        return self._stamp

    def changed(self, stamp: _Stamp, attributes: bool = True) -> bool:
        """The module is immutable: only a variables tree the adapter did not write itself can differ."""
        return self._variables is not stamp.tree

    def current(self, stamp: _Stamp, nodes: Sequence[Node], slot: Slot, attributes: bool = True) -> bool:
        return self._variables is stamp.tree

    def _replace(self, new: dict) -> None:
        """Hold a variables tree made from the current one by writing values in place of values."""
        if self._stamp is not None and self._stamp.tree is self._held:
            self._stamp.tree = new
        self._held = new

    def native(self, slot: Slot) -> Any:
        """The leaf of the current variables tree (a jax.Array, or its AxisMetadata box)."""
        return get_path(self._variables, slot.ref.path)

    def read(self, slot: Slot) -> np.ndarray:
        return canonical_copy(unbox(get_path(self._variables, slot.ref.path)), slot.layout)

    def view(self, slot: Slot) -> np.ndarray:
        return canonical_view(unbox(get_path(self._variables, slot.ref.path)), slot.layout)

    def fill(self, slot: Slot, fn: Callable[..., None]) -> None:
        """fn writes the canonical view of one native-layout buffer, which becomes the new jax array; a sharded array
        gets each local shard written on its own (fn(block, region)), its sharding kept."""
        old = get_path(self._variables, slot.ref.path)
        new = filled_like(unbox(old), slot.layout, fn)
        self._replace(set_path(self._variables, slot.ref.path, rebox(old, new)))

    def sharding(self, slot: Slot) -> Sharding | None:
        boxed = get_path(self._variables, slot.ref.path)
        return None if boxed is None else describe(_placed(boxed), slot.layout)

    def group(self) -> Any:
        return None if self._variables is None else processes.group(jax.tree.leaves(self._variables))

    def blocks(self, slot: Slot) -> list | None:
        boxed = get_path(self._variables, slot.ref.path)
        return None if boxed is None else processes.blocks(unbox(boxed), slot.layout, slot.native_name)

    def mesh_axes(self, mesh: Any) -> dict[str, int]:
        return mesh_axes(mesh)

    def placement(self, slot: Slot, dims: tuple[tuple[str, ...], ...], mesh: Any) -> Any:
        return named(dims, slot.layout, mesh, slot.native_name)

    def place(self, slot: Slot, placement: Any) -> None:
        """A new variables tree whose array at slot is resharded on its devices (jax.device_put; no host copy)."""
        old = get_path(self._variables, slot.ref.path)
        moved = jax.device_put(unbox(old), placement)
        self._replace(set_path(self._variables, slot.ref.path, rebox(old, moved)))

    def allocate(self, device: str | None, recorded: set[Hashable]) -> bool:
        """Variables from jax.eval_shape(module.init, ...) get zeros on their devices for the recorded initializers:
        the array's own sharding, else its nn.Partitioned names on the box's mesh or the current one (jax.set_mesh)."""
        if self._variables is None:
            return False
        tree = {"variables": self._variables}

        def put(slot: Slot, value: Any) -> None:
            old = get_path(tree["variables"], slot.ref.path)
            tree["variables"] = set_path(tree["variables"], slot.ref.path, rebox(old, value))

        done = allocate_abstract(self.tree(), recorded, lambda slot: _placed(get_path(self._variables, slot.ref.path)),
                                 put)
        self._variables = tree["variables"]
        return done

    def write(self, slot: Slot, value: np.ndarray) -> None:
        self.write_many([(slot, value)])

    def write_many(self, pairs: Sequence[tuple[Slot, np.ndarray]]) -> None:
        """Build one new variables tree holding every value; the old tree is left as it was."""
        if not pairs:
            return
        new = self._variables
        for slot, value in pairs:
            old = get_path(new, slot.ref.path)
            new = set_path(new, slot.ref.path, rebox(old, written_like(unbox(old), value, slot.layout)))
        self._replace(new)

    def grad(self, slot: Slot) -> np.ndarray | None:
        g = self._grads.get(slot.ref.path)
        return None if g is None else canonical_copy(g, slot.layout)

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """jax.grad of loss(output) w.r.t. the params collection, in inference mode like forward (as every backend)."""
        variables = self._require_variables()
        others = {k: v for k, v in variables.items() if k != "params"}
        mutable = list(others) or False
        xs = [as_input(x) for x in inputs]

        def objective(params: Any) -> Any:
            out = self.model.apply({**others, "params": params}, *xs, rngs=_rngs(), mutable=mutable)
            if mutable:
                out = out[0]
            return sum_outputs(loss_target(out, is_array)) if loss is None else loss(out)

        with linen.intercept_methods(_inference):
            grads = jax.grad(objective)(variables["params"])
        self._grads = {("params", *path): to_numpy(unbox(g))
                       for path, g in flatten(grads) if g is not None}

    def channels_last(self) -> bool:
        return True

    def change_token(self, slot: Slot) -> tuple[Any, Hashable] | None:
        """The array in the current variables tree (JAX arrays are immutable; a write makes a new tree)."""
        return unbox(get_path(self._variables, slot.ref.path)), None

    def layer_names(self, root: Node) -> dict[str, tuple[str, ...]]:
        """Each module's linen name ("Dense_0", "layers_1") and its scope path ("Encoder_0/Dense_0")."""
        return {canon: (scope[-1], "/".join(scope)) for scope, canon in self._layers.items() if scope}

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """linen's own capture_intermediates: every module's __call__ output, found by its scope path."""
        variables = self._require_variables()
        with linen.intercept_methods(_inference):
            root, state = self.model.apply(variables, *[as_input(x) for x in inputs], capture_intermediates=True,
                                           mutable=["intermediates"])
        by_layer = {canon: path for path, canon in self._layers.items()}
        out = {}
        for key in layers:
            found = get_path(state.get("intermediates", {}), by_layer.get(key, ()) + ("__call__",))
            if key == "":
                out[key] = to_numpy(jax.tree_util.tree_leaves(root)[0])
            elif found is not None:
                out[key] = to_numpy(jax.tree_util.tree_leaves(found)[0])
        return out

    def _require_variables(self) -> dict:
        if self._variables is None:
            raise DeferredInitializationError(
                "the linen module has no variables yet: call pm.materialize(example_input), or wrap it with "
                "the variables module.init returned")
        return self._variables

    def forward(self, inputs: Sequence[Any]) -> Any:
        variables = self._require_variables()
        with linen.intercept_methods(_inference):
            out = self.model.apply(variables, *[as_input(x) for x in inputs])
        return output_numpy(out)

    def _layer_name(self, obj: Any) -> str | None:
        scope = getattr(obj, "scope", None) if isinstance(obj, linen.Module) else None
        if scope is None:
            return None
        path = tuple(scope.path)
        while path not in self._layers and path:
            path = path[:-1]
        return self._layers.get(path)

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        if not inputs:
            if self._variables is None:
                raise DeferredInitializationError(
                    "the linen module has no variables yet and module.init runs the model: "
                    "pass example inputs, pm.materialize(x)")
            return None
        xs = [as_input(x) for x in inputs]
        known, self._layers = self._tree(self._variables)
        try:
            shapes = jax.eval_shape(lambda: self.model.init(_rngs(), *xs))
        except Exception as e:
            raise mismatch_from_failure(e, inputs, self._layer_name, dict(walk(known))) from e
        probe, _ = self._tree(frozen_dict.unfreeze(shapes))
        error = compare_shapes(known, probe, inputs)
        if error is not None:
            raise error
        if self._variables is not None:
            return None
        self._variables = frozen_dict.unfreeze(self.model.init(_rngs(), *xs))
        self._grads = {}

        def undo() -> None:
            self._variables = None

        return undo

    def watch(self, hooks: DeferredHooks) -> None:
        """Nothing to watch: the user's own module.init makes variables the wrapper never sees."""


def _check_known(known: Node, probe: Node) -> None:
    """Every slot the module's configuration tells must be in the tree, with the dimensions it tells."""
    given = {f"{layer}.{slot.leaf}".lstrip("."): slot.shape for layer, node in walk(probe) for slot in node.slots}
    told = {f"{layer}.{slot.leaf}".lstrip("."): slot.shape for layer, node in walk(known) for slot in node.slots}
    missing = [n for n in told if n not in given]
    if missing:
        raise ParameterNotFoundError(f"the variables tree does not fit the module; missing: "
                                     f"{', '.join(map(repr, missing[:8]))}; nothing was changed")
    for name, shape in told.items():
        if len(shape) != len(given[name]) or any(a is not None and a != b for a, b in zip(shape, given[name])):
            raise ShapeMismatchError(f"the variables tree gives {name!r} shape {given[name]}, but the module's "
                                     f"configuration says {shape} (None: any size); nothing was changed")


def _leaf_info(value: Any) -> tuple[tuple[int, ...], str]:
    array = unbox(value)
    return tuple(np.shape(array)), np.dtype(getattr(array, "dtype", None) or np.asarray(array).dtype).name


def _ordered_like(new: Mapping, old: Mapping) -> dict:
    """new with old's key order at every level (tree_map sorts keys; canonical order follows the module)."""
    return {k: _ordered_like(new[k], old[k]) if isinstance(old[k], Mapping) else new[k] for k in old}


def _check_tree(old: Mapping, new: Mapping) -> None:
    """Raise the family error listing every path of new that does not fit old (names, shapes, dtypes)."""
    have = {"/".join(p): _leaf_info(v) for p, v in flatten(old)}
    given = {"/".join(p): _leaf_info(v) for p, v in flatten(new)}
    missing, unexpected = [p for p in have if p not in given], [p for p in given if p not in have]
    if missing or unexpected:
        parts = [f"{what}: {', '.join(map(repr, names[:8]))}{' ...' if len(names) > 8 else ''}"
                 for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise ParameterNotFoundError(f"the variables tree does not fit the module ({'; '.join(parts)}); "
                                     f"hand back a tree of the same structure; nothing was changed")
    shapes = [f"{p!r}: given {given[p][0]} vs model {have[p][0]}" for p in have if given[p][0] != have[p][0]]
    if shapes:
        raise ShapeMismatchError(f"the variables tree does not fit the module; "
                                 f"shape mismatch: {'; '.join(shapes[:8])}; "
                                 f"nothing was changed")
    dtypes = [f"{p!r}: given {given[p][1]} vs model {have[p][1]}" for p in have if given[p][1] != have[p][1]]
    if dtypes:
        raise DtypeMismatchError(f"the variables tree does not fit the module; "
                                 f"dtype mismatch: {'; '.join(dtypes[:8])}; "
                                 f"cast the tree first; nothing was changed")
