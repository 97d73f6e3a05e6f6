"""Helpers shared by the linen and NNX adapters: leaf names, layouts, numpy conversion, linen structure, error locating."""
from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified_params.adapter import Node, Slot
from unified_params.inputs import map_arrays
from unified_params.layout import Layout, aligned_empty, fill_native, native_copy, shape_to_canonical, to_canonical
from unified_params.layout import canonical_copy as _canonical_copy
from unified_params.lazy import lazy
from unified_params.locate import compare_shapes, failing_layer, input_weight_size, mismatch_from_failure, walk  # noqa: F401
from unified_params.naming import Group, attribute_paths, group_children
from unified_params.rules import Leaf, Rule, leaf_of

from .flax_rules import LINEN, by_children, by_signature

jax = lazy("jax")
jnp = lazy("jax.numpy")
linen = lazy("flax.linen")
flax_meta = lazy("flax.core.meta")
flax_frozen = lazy("flax.core.frozen_dict")

RELEASE_ABOVE = 1 << 24
"""Bytes from which a JAX writer first lets jaxlib release the buffers it no longer holds (filled_array)."""
SKIPPED_COLLECTIONS = {"intermediates", "perturbations", "losses", "cache"}
STATS_COLLECTION = "batch_stats"


def to_numpy(value: Any) -> np.ndarray:
    """A numpy copy of a jax array (or anything array-like)."""
    return np.array(value, copy=True)


def canonical_copy(value: Any, layout: Layout | None) -> np.ndarray:
    """A contiguous numpy copy of a natively laid out array, in canonical layout."""
    return _canonical_copy(np.asarray(value), layout)


def canonical_view(value: Any, layout: Layout | None) -> np.ndarray:
    """A read-only canonical-layout view of a jax array (no copy on CPU)."""
    return to_canonical(np.asarray(value), layout)


def native_array(value: np.ndarray, layout: Layout | None, dtype: Any) -> Any:
    """A jax array in native layout and the given dtype from a canonical numpy value (one copy on CPU)."""
    return jax.device_put(native_copy(value, layout, np.dtype(dtype)))


def filled_array(shape: tuple[int, ...], dtype: Any, layout: Layout | None, fn: Callable[[np.ndarray], None]) -> Any:
    """A jax array of native shape and dtype whose canonical-layout view fn wrote, in one buffer on CPU.

    Before a large buffer, the numpy buffers of arrays JAX has let go of (the one this replaces last time) are
    released: jaxlib frees them from Python only at a garbage collection (its gc callback) or a later call into it,
    which would otherwise hold one more tensor at the peak.
    """
    if math.prod(shape) * np.dtype(dtype).itemsize >= RELEASE_ABOVE:
        gc.collect(0)
    buffer = aligned_empty(tuple(shape), np.dtype(dtype))
    fill_native(buffer, layout, fn)
    return jax.device_put(buffer)


def dtype_name(dtype: Any) -> str:
    """The numpy dtype name (float32, bfloat16, ...) of a jax or numpy dtype."""
    return np.dtype(dtype).name


def as_input(x: Any) -> Any:
    """Numpy arrays and lists of numbers become jax arrays (tuples, lists and dicts of arrays kept); others pass unchanged."""
    return map_arrays(x, lambda a: jnp.asarray(a) if isinstance(a, (np.ndarray, np.generic, list, tuple)) else a)


def output_numpy(out: Any) -> Any:
    """The model's output as numpy (a pytree of numpy arrays when the output is not one array)."""
    if isinstance(out, (tuple, list, dict)):
        return jax.tree_util.tree_map(to_numpy, out)
    return to_numpy(out)


def is_array(value: Any) -> bool:
    """True for a JAX array or tracer (what a model's output holds)."""
    return isinstance(value, jax.Array)


def sum_outputs(out: Any) -> Any:
    """The default loss: the sum of every output element."""
    return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(out))


def unbox(value: Any) -> Any:
    """The array inside flax's AxisMetadata boxes (nn.Partitioned, ...), or value itself (never resharded: a
    Partitioned box would otherwise constrain its array to the current mesh)."""
    if not isinstance(value, flax_meta.AxisMetadata):
        return value
    return value.unbox(apply_constraint=False) if isinstance(value, flax_meta.Partitioned) else value.unbox()


def rebox(old: Any, new: Any) -> Any:
    """new in the same AxisMetadata box as old, if old was boxed."""
    return old.replace_boxed(new) if isinstance(old, flax_meta.AxisMetadata) else new


def get_path(tree: Mapping | None, path: Sequence[str]) -> Any:
    """The value at path in a nested mapping, or None when a key is missing."""
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def set_path(tree: Mapping, path: Sequence[str], value: Any) -> dict:
    """A new nested dict with value at path; dicts along the path are copied, the rest shared."""
    new = dict(tree)
    if len(path) == 1:
        new[path[0]] = value
    else:
        new[path[0]] = set_path(tree[path[0]], path[1:], value)
    return new


def flatten(tree: Mapping, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, leaf) for every non-mapping value of a nested mapping, in mapping order."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from flatten(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def unique_leaves(slots: list[Slot]) -> list[Slot]:
    """Slots whose canonical leaf repeats in one layer keep their native name instead."""
    seen: set[str] = set()
    for slot in slots:
        if slot.leaf in seen:
            slot.leaf = slot.native_name.rsplit("/", 1)[-1]
            slot.kind = slot.leaf
        seen.add(slot.leaf)
    return slots


# ---- linen structure ---------------------------------------------------------------------------

@dataclass
class LinenLeaf:
    """One linen variable as found in the module and its variables, and the leaf its layer's rule gives it."""

    collection: str
    path: tuple[str, ...]
    value: Any
    native_shape: tuple[int | None, ...]
    dtype: str
    leaf: Leaf

    @property
    def layout(self) -> Layout | None:
        return self.leaf.layout

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def native_name(self) -> str:
        return "/".join((self.collection, *self.path))


def _param_dtype(module: Any) -> str:
    return dtype_name(getattr(module, "param_dtype", None) or np.float32)


def deferred_leaves(module: Any) -> list[tuple[str, Leaf, tuple[int | None, ...]]]:
    """(collection, leaf, native shape with None where the input decides) for an uninitialized linen layer."""
    rule = LINEN.for_layer(module)
    if rule is None:
        return []
    return [("params" if leaf.trainable else STATS_COLLECTION, leaf, shape) for leaf, shape in rule.before_data(module)]


def _opaque(module: Any) -> bool:
    """True for a @compact module whose submodules and parameters appear only when it runs (Dropout has none)."""
    if isinstance(module, (linen.Sequential, linen.Dropout)):
        return False
    return hasattr(getattr(type(module), "__call__", None), "compact")


def _shape_of(value: Any) -> tuple[int, ...]:
    return tuple(np.shape(unbox(value)))


def _dtype_of(value: Any) -> str:
    inner = unbox(value)
    return dtype_name(getattr(inner, "dtype", None) or np.asarray(inner).dtype)


def collections(variables: Mapping) -> list[str]:
    """The collections of a linen variables tree that hold parameters and statistics, params first."""
    found = [c for c in variables if c not in SKIPPED_COLLECTIONS]
    found.sort(key=lambda c: (c != "params", c != STATS_COLLECTION))
    return found


class LinenTree:
    """Discovers a linen module's structure: Sequential positions, setup/field children, compact children from variables.

    `variables` is the variables tree (leaves may be any object `values` maps to an array, e.g. nnx
    Variables), or None while nothing is initialized; `make_slot` turns each LinenLeaf into a Slot.
    `layers` maps a native scope path to the canonical dotted path of its first node.
    """

    def __init__(self, module: Any, variables: Mapping | None, make_slot: Callable[[LinenLeaf], Slot],
                 values: Callable[[Any], Any] = unbox) -> None:
        self.module = module
        self.variables = variables
        self.make_slot = make_slot
        self.values = values
        self.layers: dict[tuple[str, ...], str] = {}
        self.collections = collections(variables or {})

    def build(self, key: str = "") -> Node:
        """The Node tree of the whole module."""
        return self._module_node(key, self.module, self._bind(), (), ())

    def _bind(self) -> Any:
        tree = {} if self.variables is None else jax.tree_util.tree_map(self.values, dict(self.variables),
                                                                         is_leaf=lambda x: not isinstance(x, Mapping))
        try:
            return self.module.bind(tree)
        except Exception:
            return None

    @staticmethod
    def _children(module: Any, bound: Any) -> list[tuple[str, Any, Any]]:
        """(key, the user's layer object, its bound copy or None) for each child in container order."""
        if bound is not None:
            try:
                bound._try_setup()
            except Exception:
                bound = None
        if isinstance(module, linen.Sequential):
            layers = bound.layers if bound is not None else module.layers
            return [(str(i), mine, layer) for i, (mine, layer) in enumerate(zip(module.layers, layers))]
        if bound is None:
            return []
        children = [(name, child) for name, child in bound._state.children.items() if isinstance(child, linen.Module)]
        attrs = [(k, v) for k, v in vars(bound).items() if not k.startswith("_") and k not in ("name", "scope", "parent")]
        grouped = group_children(children, attribute_paths(attrs, _is_module), dict(attrs))
        return [(key, child, child) if not isinstance(child, Group) else
                (key, child.container, Group(child.container, [(k, (c, c)) for k, c in child.members]))
                for key, child in grouped]

    def _module_node(self, key: str, module: Any, bound: Any, path: tuple[str, ...], canon: tuple[str, ...]) -> Node:
        rule = LINEN.for_layer(module if bound is None else bound)
        node = Node(key, module, label=type(module).__name__, layer_type=rule and rule.layer_type, rule=rule)
        self.layers.setdefault(path, ".".join(canon))
        covered: set[str] = set()
        for position, (child_key, native, child) in enumerate(self._children(module, bound)):
            if isinstance(child, Group):
                group = Node(child_key, native, label=type(native).__name__)
                for key, (mine, member) in self._creation_order(path, child.members):
                    member_path = tuple(member.scope.path)
                    covered.add(member_path[-1])
                    group.children.append(self._module_node(key, mine, member, member_path, (*canon, child_key, key)))
                node.children.append(group)
                continue
            if not isinstance(child, linen.Module):
                node.children.append(Node(child_key, native, label=getattr(native, "__name__", type(native).__name__)))
                continue
            scope = getattr(child, "scope", None)
            child_path = tuple(scope.path) if scope is not None else (*path, child.name or f"layers_{position}")
            if child_path[: len(path)] == path and len(child_path) == len(path) + 1:
                covered.add(child_path[-1])
            node.children.append(self._module_node(child_key, native, child if scope is not None else None,
                                                   child_path, (*canon, child_key)))
        if self.variables is None:
            leaves = deferred_leaves(module)
            node.slots = unique_leaves([self._deferred_slot(module, path, col, leaf, shape) for col, leaf, shape in leaves])
            node.complete = bool(leaves) or not _opaque(module)
            return node
        node.slots = self._own_slots(path, rule)
        for name in self._subtree_keys(path):
            if name not in covered:
                node.children.append(self._vars_node(name, (*path, name), (*canon, name)))
        return node

    def _creation_order(self, path: tuple[str, ...], members: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """A dict attribute's members in the order their variables were created (linen sorts the dict itself)."""
        if self.variables is None:
            return members
        made = {name: i for i, name in enumerate(self._subtree_keys(path))}
        return sorted(members, key=lambda m: made.get(m[1][1].scope.path[-1], len(made)))

    def _subtree_keys(self, path: tuple[str, ...]) -> list[str]:
        keys: dict[str, None] = {}
        for col in self.collections:
            sub = get_path(self.variables[col], path)
            if isinstance(sub, Mapping):
                keys.update((k, None) for k, v in sub.items() if isinstance(v, Mapping))
        return list(keys)

    def _own_shapes(self, path: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
        """Native name -> shape of the variables directly at path, over every collection."""
        shapes = {}
        for col in self.collections:
            sub = get_path(self.variables[col], path)
            if isinstance(sub, Mapping):
                shapes.update((name, _shape_of(self.values(raw))) for name, raw in sub.items() if not isinstance(raw, Mapping))
        return shapes

    def _own_slots(self, path: tuple[str, ...], rule: Rule | None) -> list[Slot]:
        slots = []
        for col in self.collections:
            sub = get_path(self.variables[col], path)
            if not isinstance(sub, Mapping):
                continue
            for name, raw in sub.items():
                if isinstance(raw, Mapping):
                    continue
                value = self.values(raw)
                shape = _shape_of(value)
                leaf = LinenLeaf(col, (*path, name), raw, shape, _dtype_of(value), leaf_of(rule, name))
                slots.append(self.make_slot(leaf))
        return unique_leaves(slots)

    def _vars_node(self, key: str, path: tuple[str, ...], canon: tuple[str, ...]) -> Node:
        """A compact child, known from its variables only: its Flax class from its automatic name or its variables."""
        rule = (LINEN.by_autoname(path[-1]) or by_signature(self._own_shapes(path))
                or by_children(self._subtree_keys(path), lambda k: self._own_shapes((*path, k))))
        node = Node(key, None, label="", layer_type=rule and rule.layer_type, rule=rule)
        self.layers.setdefault(path, ".".join(canon))
        node.slots = self._own_slots(path, rule)
        for name in self._subtree_keys(path):
            node.children.append(self._vars_node(name, (*path, name), (*canon, name)))
        return node

    def _deferred_slot(self, module: Any, path: tuple[str, ...], col: str, leaf: Leaf,
                       shape: tuple[int | None, ...]) -> Slot:
        return self.make_slot(LinenLeaf(col, (*path, leaf.native), None, shape, _param_dtype(module), leaf))


def _is_module(value: Any) -> bool:
    return isinstance(value, linen.Module)


def linen_slot_fields(leaf: LinenLeaf) -> dict[str, Any]:
    """The Slot fields every linen-shaped variable shares: canonical leaf, shape, dtype, trainable."""
    return {
        "leaf": leaf.leaf.name,
        "kind": leaf.leaf.kind,
        "layout": leaf.layout,
        "shape": shape_to_canonical(leaf.native_shape, leaf.layout),
        "dtype": leaf.dtype,
        "trainable": leaf.collection == "params",
        "initialized": leaf.value is not None and not isinstance(unbox(leaf.value), jax.ShapeDtypeStruct),
    }
