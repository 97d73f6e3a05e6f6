"""The Keras first listing: canonical names in one walk over the layers' own tracker lists, and its stamp.

One rule and container lookup per layer class, then per layer one read of its tracker lists and built flag and
one lookup of its leaves by (class, variable names); the stamp is made of what the walk read. Anything this walk
is not sure of (an unbuilt ruled layer, a variable held twice, a rule that joins tensors) gives None: the index
decides.
"""
from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from unified_params.naming import Group, positions
from unified_params.rules import Rule, Unlisted, ordered_leaves

from .keras import _auto_named, _children, _container, _leaves, _own_variables, _Stamp
from .keras_rules import RULES

_STATE = attrgetter("_layers", "_trainable_variables", "_non_trainable_variables", "built")
_VARIABLE_NAME = attrgetter("_name")
"""Variable.name without the property call (Keras keeps the name in `_name` on every backend)."""


def _names(variables: list[Any]) -> tuple[str, ...]:
    """The variables' names (one or two, as most layers have, without building an iterator)."""
    n = len(variables)
    if n == 2:
        return variables[0]._name, variables[1]._name
    return (variables[0]._name,) if n == 1 else tuple(map(_VARIABLE_NAME, variables))


class _GiveUp(Exception):
    """The walk met something only the full index decides."""


def listing(model: Any) -> tuple[list[str], _Stamp] | None:
    """The names tree() would give, and the stamp that keeps them valid; None where the tree decides."""
    walk = _Walk()
    try:
        walk.visit((model,), ("",))
    except (_GiveUp, Unlisted):
        return None
    owned = walk.owned
    if len(set(map(id, owned))) != len(owned):
        return None
    return list(dict.fromkeys(walk.names)), _Stamp.of_walk(walk.layers, walk.states, walk.functional, walk.keyed)


class _Walk:
    """One listing: the names found, each layer met with its tracker lists, every own variable."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.layers: list[Any] = []
        self.states: list[Any] = []
        """(sublayers, trainable, non-trainable, built) of every layer met, one after the other (no tuple kept alive:
        objects that outlive a collection of the young generation make Python's collector walk the whole heap)."""
        self.functional: list[Any] = []
        self.keyed: list[Any] = []
        self.owned: list[Any] = []
        self.plans: dict[type, tuple[Any, str, dict[tuple[str, ...], tuple[str, ...]] | None]] = {}

    def plan(self, cls: type) -> tuple[Any, str, dict[tuple[str, ...], tuple[str, ...]] | None]:
        """A layer class's rule table entry, container kind and, when the entry is a fixed rule (or none), the cache
        of its leaves by variable names; looked up once per listing."""
        entry = RULES.entry(cls)
        fixed = entry is None or isinstance(entry, Rule)
        found = self.plans[cls] = (entry, _container(cls), {} if fixed else None)
        return found

    def visit(self, layers: Sequence[Any], prefixes: Sequence[str]) -> None:
        """Each layer with its canonical prefix, in order: its leaves, then (depth first) its children's."""
        plans, owned, add, states = self.plans, self.owned, self.names.append, self.states
        self.layers += layers
        for layer, prefix in zip(layers, prefixes):
            state = _STATE(layer)
            states += state
            sublayers, trainable, other, built = state
            cls = type(layer)
            entry, kind, cache = plans.get(cls) or self.plan(cls)
            rule = entry if cache is not None else entry(layer)
            if rule is not None and (rule.joins or not built):
                raise _GiveUp
            own = trainable + other if other else trainable
            if own:
                owned += own
                natives = _names(own)
                leaves = None if cache is None else cache.get(natives)
                if leaves is None:
                    leaves = self._ordered(layer, natives, rule)
                    if cache is not None and not _auto_named(natives):
                        cache[natives] = leaves
                for leaf in leaves:
                    add(prefix + leaf)
            if kind == "layer":
                if sublayers:
                    self.keyed.append(layer)
                    self._children(layer, prefix)
            elif kind == "sequential":
                children = layer.layers
                self.visit(children, positions(prefix, len(children)))
            else:
                self.functional.append(layer)
                self._children(layer, prefix)

    def _children(self, layer: Any, prefix: str) -> None:
        """A functional model's or subclassed layer's children (a list or dict attribute's members in its place)."""
        layers: list[Any] = []
        prefixes: list[str] = []
        for key, child in _children(layer):
            if isinstance(child, Group):
                layers += [c for _, c in child.members]
                prefixes += [f"{prefix}{key}.{k}." for k, _ in child.members]
            else:
                layers.append(child)
                prefixes.append(f"{prefix}{key}.")
        self.visit(layers, prefixes)

    @staticmethod
    def _ordered(layer: Any, natives: tuple[str, ...], rule: Rule | None) -> tuple[str, ...]:
        """A layer's canonical leaves in order (an auto-named variable takes its attribute's name, a repeated leaf
        keeps its native name)."""
        leaves = None if _auto_named(natives) else ordered_leaves(rule, natives)
        if leaves is None or len(leaves) != len(natives):
            leaves = ordered_leaves(rule, tuple(c for c, *_ in _leaves(layer, _own_variables(layer), rule)),
                                    canonical=True)
        return leaves
