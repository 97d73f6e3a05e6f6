"""How the NNX adapter reads an NNX graph: which attributes hold modules, Variables and containers, the Node tree
they make (ToNNX modules through their linen module), and the stamp that tells when the graph changed."""
from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified_params.adapter import Node, Slot
from unified_params.freshness import Contents
from unified_params.layout import shape_to_canonical
from unified_params.lazy import lazy
from unified_params.rules import Rule, adopt_ruled_layouts, leaf_of

from ._jax import LinenLeaf, LinenTree, dtype_name, linen_slot_fields, unique_leaves
from ._jax_sharding import is_abstract
from .flax_rules import NNX

nnx = lazy("flax.nnx")
bridge = lazy("flax.nnx.bridge")
variablelib = lazy("flax.nnx.variablelib")

PRIVATE = ("_pytree__", "to_nnx__")


@dataclass(frozen=True)
class NNXRef:
    """The Variable behind a slot (None while its ToNNX module is not initialized)."""

    var: Any


def value_of(var: Any) -> Any:
    return var.get_value() if hasattr(var, "get_value") else var.value


def assign(var: Any, value: Any) -> None:
    if hasattr(var, "set_value"):
        var.set_value(value)
    else:
        var.value = value


def is_slot(var: Any) -> bool:
    """Params, batch statistics and user Variable types; RNG state, caches and intermediates are not parameters."""
    skipped = (nnx.RngState, nnx.Intermediate, nnx.Cache)
    return isinstance(var, nnx.Variable) and not isinstance(var, skipped)


@functools.cache
def _nnx_types(*names: str) -> tuple[type, ...]:
    """The nnx classes of these names that this Flax version has (nnx.List and nnx.Dict are recent)."""
    return tuple(getattr(nnx, n) for n in names if hasattr(nnx, n))


def _sequences() -> tuple[type, ...]:
    return (*_nnx_types("List"), list, tuple)


def _mappings() -> tuple[type, ...]:
    return (*_nnx_types("Dict"), Mapping)


def has_data(value: Any, seen: frozenset[int] = frozenset()) -> bool:
    """True for modules, Variables, other graph nodes (except RNG streams) and containers holding any."""
    if isinstance(value, (nnx.Rngs, nnx.RngStream)) or id(value) in seen:
        return False
    if isinstance(value, (nnx.Module, nnx.Variable)):
        return True
    seen = seen | {id(value)}
    if isinstance(value, _sequences()):
        return any(has_data(v, seen) for v in value)
    if isinstance(value, _mappings()):
        return any(has_data(v, seen) for v in value.values())
    if isinstance(value, _nnx_types("Pytree", "Object")):
        return any(has_data(v, seen) for _, v in attributes(value))
    return False


def attributes(obj: Any) -> Iterator[tuple[str, Any]]:
    """A module's attributes in definition order (NNX's own traversal sorts them)."""
    for name, value in vars(obj).items():
        if not name.startswith(PRIVATE):
            yield name, value


def tonnx_variables(module: Any) -> dict[str, dict] | None:
    """A ToNNX module's Variables as a linen variables tree (collection first), or None before lazy_init."""
    tree: dict[str, dict] = {}

    def add(path: tuple[str, ...], value: Any) -> None:
        if isinstance(value, nnx.Variable):
            node = tree.setdefault(variablelib.variable_name_from_type(type(value)), {})
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        elif isinstance(value, Mapping):
            for k, v in value.items():
                add((*path, str(k)), v)

    for name, value in attributes(module):
        add((name,), value)
    return tree or None


def lazy_modules(model: Any) -> list[Any]:
    """Every ToNNX module in the graph whose variables are not created yet."""
    return [m for _, m in nnx.iter_graph(model) if isinstance(m, bridge.ToNNX) and tonnx_variables(m) is None]


def first_paths(model: Any) -> dict[int, str]:
    """NNX's own name of each Variable: its path where the graph traversal first meets it."""
    return {id(v): "/".join(map(str, path)) for path, v in nnx.iter_graph(model) if isinstance(v, nnx.Variable)}


def members(obj: Any, path: tuple) -> tuple[list[tuple[str, Any, tuple]], bool]:
    """(child key, value, native path) of what an NNX object holds, in order, and whether positions are its keys."""
    if isinstance(obj, nnx.Sequential):
        return [(str(i), layer, (*path, "layers", i)) for i, layer in enumerate(obj.layers)], True
    if isinstance(obj, _sequences()):
        return [(str(i), v, (*path, i)) for i, v in enumerate(obj)], True
    if isinstance(obj, _mappings()):
        return [(str(k), v, (*path, k)) for k, v in obj.items()], False
    return [(k, v, (*path, k)) for k, v in attributes(obj)], False


class Tree:
    """Builds the Node tree of an NNX graph, with ToNNX modules described through their linen module."""

    def __init__(self, model: Any) -> None:
        self.paths = first_paths(model)
        self.layers: dict[int, str] = {}
        self.active: set[int] = set()
        self.root = adopt_ruled_layouts(self.node("", model, (), ()))

    def node(self, key: str, obj: Any, path: tuple, canon: tuple[str, ...]) -> Node:
        if isinstance(obj, nnx.Module):
            self.layers.setdefault(id(obj), ".".join(canon))
        if isinstance(obj, bridge.ToNNX):
            return self.tonnx(key, obj, path, canon)
        rule = NNX.for_layer(obj) if isinstance(obj, nnx.Module) else None
        node = Node(key, obj, label=type(obj).__name__, layer_type=rule and rule.layer_type, rule=rule)
        if id(obj) in self.active:
            return node
        self.active.add(id(obj))
        items, positional = members(obj, path)
        for child_key, value, child_path in items:
            if isinstance(value, nnx.Variable):
                if is_slot(value):
                    node.slots.append(self.slot(child_key, value, rule, child_path))
            elif isinstance(value, (nnx.Rngs, nnx.RngStream)):
                continue
            elif has_data(value):
                node.children.append(self.node(child_key, value, child_path, (*canon, child_key)))
            elif positional:
                node.children.append(Node(child_key, value, label=getattr(value, "__name__", type(value).__name__)))
        self.active.discard(id(obj))
        node.slots = unique_leaves(node.slots)
        return node

    def slot(self, name: str, var: Any, rule: Rule | None, path: tuple) -> Slot:
        value = value_of(var)
        leaf = leaf_of(rule, name)
        return Slot(leaf.name, self.paths.get(id(var), "/".join(map(str, path))), NNXRef(var), id(var),
                    shape_to_canonical(tuple(np.shape(value)), leaf.layout), dtype_name(value.dtype),
                    trainable=isinstance(var, nnx.Param), kind=leaf.kind, layout=leaf.layout,
                    initialized=not is_abstract(value))

    def tonnx(self, key: str, obj: Any, path: tuple, canon: tuple[str, ...]) -> Node:
        prefix = "/".join(map(str, path))

        def make_slot(leaf: LinenLeaf) -> Slot:
            var = leaf.value
            fallback = "/".join(p for p in (prefix, *leaf.path) if p)
            if var is None:
                return Slot(native_name=fallback, ref=NNXRef(None), storage=(id(obj), leaf.collection, *leaf.path),
                            **linen_slot_fields(leaf))
            return Slot(native_name=self.paths.get(id(var), fallback), ref=NNXRef(var), storage=id(var),
                        **linen_slot_fields(leaf))

        builder = LinenTree(obj.to_nnx__module, tonnx_variables(obj), make_slot, values=value_of)
        node = builder.build(key)
        node.native, node.label = obj, type(obj).__name__
        return node


def containers(obj: Any) -> Iterator[Any]:
    """The live containers tree() read obj's children and variables from (a ToNNX module's nested dicts too)."""
    if isinstance(obj, _nnx_types("Pytree", "Object")):
        yield vars(obj)
        if isinstance(obj, nnx.Sequential):
            yield from containers(obj.layers)
        if isinstance(obj, bridge.ToNNX):
            stack = [v for _, v in attributes(obj) if isinstance(v, Mapping)]
            while stack:
                inner = stack.pop()
                yield inner
                stack += [v for v in inner.values() if isinstance(v, Mapping)]
    elif isinstance(obj, (list, dict)):
        yield obj


def step(parent: Any, key: str, child: Any) -> list[tuple[Any, Any, Any]] | None:
    """(container, key, value) steps from parent to child as Tree reached it, or None when they cannot be told."""
    if isinstance(parent, nnx.Sequential):
        rest = step(parent.layers, key, child)
        return None if rest is None else [(vars(parent), "layers", parent.layers), *rest]
    if isinstance(parent, _nnx_types("Pytree", "Object")):
        holder = vars(parent)
        found = key if holder.get(key) is child else next((k for k, v in holder.items() if v is child), None)
        return None if found is None else [(holder, found, child)]
    if isinstance(parent, (list, tuple)) and key.isdigit() and int(key) < len(parent) and parent[int(key)] is child:
        return [(parent, int(key), child)]
    if isinstance(parent, Mapping):
        found = next((k for k, v in parent.items() if str(k) == key and v is child), None)
        return None if found is None else [(parent, found, child)]
    return None


def var_attributes(var: Any) -> tuple[Any, ...]:
    value = value_of(var)
    return type(var), np.shape(value), getattr(value, "dtype", None)


class Stamp:
    """The containers an NNX index was built from, the path of native objects to each slot, each Variable's
    attributes."""

    def __init__(self, root: Node) -> None:
        holders: dict[int, Any] = {}
        self.paths: dict[int, list[tuple[Any, Any, Any]] | None] = {}
        self.variables: dict[int, Any] = {}
        stack: list[tuple[Node, list | None]] = [(root, [])]
        while stack:
            node, steps = stack.pop()
            for holder in containers(node.native):
                holders.setdefault(id(holder), holder)
            for slot in node.slots:
                var = slot.ref.var
                if var is not None:
                    self.variables.setdefault(id(var), var)
                    last = None if steps is None else step(node.native, slot.native_name.rsplit("/", 1)[-1], var)
                    self.paths[id(slot)] = None if last is None else [*steps, *last]
            for child in node.children:
                edge = None if steps is None else step(node.native, child.key, child.native)
                stack.append((child, None if edge is None else [*steps, *edge]))
        self.contents = Contents(mappings=[h for h in holders.values() if isinstance(h, Mapping)],
                                 sequences=[h for h in holders.values() if not isinstance(h, Mapping)])
        self.attributes = {k: var_attributes(v) for k, v in self.variables.items()}

    def changed(self, attributes: bool) -> bool:
        if self.contents.changed():
            return True
        return attributes and any(var_attributes(v) != self.attributes[k] for k, v in self.variables.items())
