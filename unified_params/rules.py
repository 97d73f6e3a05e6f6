"""Rules: what the core knows about one native layer class, and the per-framework tables that hold them.

A `Rule` gives a layer class its canonical layer type (`linear`, `conv`, ...), its canonical leaves
(native variable name -> canonical name, kind, `Layout`) and the native shapes its configuration
fixes before any data is seen. Each adapter declares one `RuleTable`; a layer is looked up by its
class's MRO, so traversal never branches on layer classes. A layer without a rule, and a variable
its rule does not name, keep their native name and native layout (`Leaf.layout is None`): no guess.
"""
from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .adapter import Node, Slot
from .errors import quote
from .index import leaf_order
from .layout import Layout, Shape

STATS = ("running_mean", "running_var")


@dataclass(frozen=True)
class Leaf:
    """One canonical tensor of a layer: the native variable it comes from, its canonical name, kind and layout.

    `layout` None means no rule covers the variable: it keeps native layout. Running statistics
    (`trainable=False`) live in a framework's non-trainable collection.
    """

    native: str
    name: str
    layout: Layout | None
    kind: str = ""
    trainable: bool = True

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.name)


def native_leaf(name: str) -> Leaf:
    """The leaf of a variable no rule covers: native name, native layout."""
    return Leaf(name, name, None)


ShapesFn = Callable[[Any], Mapping[str, Union[Shape, None]]]


@dataclass(frozen=True)
class Rule:
    """How one native layer class maps to a canonical layer type.

    `shapes(layer)` gives the native shape (None where the input decides) of each variable the layer
    will create, by native name, from its configuration; a None value means the layer will not
    create that variable (e.g. `use_bias=False`).
    """

    layer_type: str
    leaves: tuple[Leaf, ...]
    shapes: ShapesFn | None = None
    joins: tuple[Any, ...] = ()
    """unified_params.joins.Join objects: canonical tensors made of several native arrays (the rule is opaque)."""
    native_only: str = ""
    """Why the layer has no canonical form: its tensors keep native names and layout and take no other framework's
    values (a load missing them, or a transfer across frameworks, raises UnsupportedError with this reason)."""
    _by_native: dict[str, Leaf] = field(init=False, repr=False, compare=False)
    _order: dict[str, int] = field(init=False, repr=False, compare=False)
    _orders: dict[tuple[bool, tuple[str, ...]], tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_native", {leaf.native: leaf for leaf in self.leaves})
        order = [leaf.name for leaf in self.leaves] + [join.name for join in self.joins]
        object.__setattr__(self, "_order", {name: i for i, name in reversed(list(enumerate(order)))})
        object.__setattr__(self, "_orders", {})

    def position(self, name: str) -> int:
        """Where a canonical tensor comes in the rule's order (leaves, then joins); after all of them if not named."""
        return self._order.get(name, len(self._order))

    def leaf(self, native: str) -> Leaf:
        """The leaf for a native variable name; a name the rule does not know keeps native name and layout."""
        found = self._by_native.get(native)
        return found if found is not None else native_leaf(native)

    def before_data(self, layer: Any) -> list[tuple[Leaf, Shape]]:
        """(leaf, native shape) of every variable the layer will create, in the rule's leaf order."""
        if self.shapes is None:
            return []
        shapes = self.shapes(layer)
        return [(leaf, tuple(shapes[leaf.native])) for leaf in self.leaves if shapes.get(leaf.native) is not None]


def no_canonical_form(nodes: Sequence[Node]) -> str:
    """Why the tensor of the last of these nodes (root first) has no canonical form; "" when it has one."""
    for i, node in enumerate(nodes):
        rule = node.rule
        if rule is not None and rule.native_only:
            layer = ".".join(n.key for n in nodes[1 : i + 1]) or "(root)"
            return f"layer {quote(layer)} ({node.label}) has no canonical form: {rule.native_only}"
    return ""


def leaf_of(rule: Rule | None, native: str) -> Leaf:
    """The leaf of a native variable of a layer with this rule (or none)."""
    return native_leaf(native) if rule is None else rule.leaf(native)


_UNRULED_ORDERS: dict[tuple[bool, tuple[str, ...]], tuple[str, ...]] = {}


class Unlisted(Exception):
    """A layer whose rule joins tensors: its names come from the tree (joins.apply), so a listing gives up."""


def ordered_leaves(rule: Rule | None, leaves: tuple[str, ...], canonical: bool = False) -> tuple[str, ...]:
    """A layer's canonical leaves, from its native variable names (or canonical ones), in the index's order; cached.

    Raises Unlisted for a rule with joins (Adapter.listing then returns None).
    """
    if rule is None:
        orders = _UNRULED_ORDERS
    elif rule.joins:
        raise Unlisted(rule.layer_type)
    else:
        orders = rule._orders
    found = orders.get((canonical, leaves))
    if found is None:
        names = leaves if canonical else (leaf_of(rule, n).name for n in leaves)
        found = orders[(canonical, leaves)] = tuple(dict.fromkeys(sorted(names, key=leaf_order(rule))))
    return found


Entry = Union[Rule, Callable[[Any], Union[Rule, None]], None]
"""A table entry: a Rule, a function of the layer giving one (configuration-dependent rules), or None (no rule)."""

AUTONAME = re.compile(r"(?P<cls>[A-Za-z_]\w*?)_\d+")


class RuleTable:
    """A framework's layer classes -> rules, built on first use (the framework is imported then) and found by MRO."""

    def __init__(self, build: Callable[[], Mapping[type, Entry]]) -> None:
        self._build = build
        self._table: dict[type, Entry] | None = None
        self._cache: weakref.WeakKeyDictionary[type, Entry] = weakref.WeakKeyDictionary()

    @property
    def table(self) -> dict[type, Entry]:
        """The declared entries, class by class."""
        if self._table is None:
            self._table = dict(self._build())
        return self._table

    def register(self, cls: type, entry: Entry) -> None:
        """Declare (or replace) the entry of a layer class, e.g. a user's own layer; subclasses find it by MRO."""
        self.table[cls] = entry
        self._cache = weakref.WeakKeyDictionary()

    def entry(self, cls: type) -> Entry:
        """The entry of the first class in cls's MRO that the table names (None when none does)."""
        try:
            return self._cache[cls]
        except KeyError:
            pass
        table = self.table
        found = next((table[c] for c in cls.__mro__ if c in table), None)
        self._cache[cls] = found
        return found

    def for_layer(self, layer: Any) -> Rule | None:
        """The rule of a layer object (None for None, or for a class without a rule)."""
        if layer is None:
            return None
        found = self.entry(type(layer))
        return found(layer) if callable(found) and not isinstance(found, Rule) else found

    def resolver(self) -> Callable[[Any], Rule | None]:
        """for_layer with the table lookups of one traversal kept by class (a listing meets each class many times)."""
        entries: dict[type, Entry] = {}

        def rule_of(layer: Any) -> Rule | None:
            cls = type(layer)
            found = entries[cls] if cls in entries else entries.setdefault(cls, self.entry(cls))
            return found(layer) if callable(found) and not isinstance(found, Rule) else found

        return rule_of

    def by_autoname(self, name: str) -> Rule | None:
        """The rule of a class named by a framework's automatic layer name `Class_N` (Flax linen's compact children).

        Only classes of the table with a configuration-independent rule qualify.
        """
        match = AUTONAME.fullmatch(name)
        if match is None:
            return None
        for cls, found in self.table.items():
            if cls.__name__ == match["cls"] and isinstance(found, Rule):
                return found
        return None


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _nodes(child)


def adopt_ruled_layouts(root: Node) -> Node:
    """A variable a rule-less layer reaches (a borrowed, tied kernel) takes the leaf and layout its owner's rule gives.

    One storage has one canonical form: the one the rule of the layer that holds it under a known name gives.
    """
    ruled: dict[Hashable, Slot] = {}
    borrowed: list[tuple[Node, Slot]] = []
    for node in _nodes(root):
        for slot in node.slots:
            if slot.layout is not None:
                ruled.setdefault(slot.storage, slot)
            else:
                borrowed.append((node, slot))
    for node, slot in borrowed:
        owner = ruled.get(slot.storage)
        if owner is None or any(s.leaf == owner.leaf for s in node.slots if s is not slot):
            continue
        slot.leaf, slot.kind, slot.layout, slot.shape = owner.leaf, owner.kind, owner.layout, owner.shape
    return root
