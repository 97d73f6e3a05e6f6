"""The linen first listing: canonical names from the module's class tree and the variables dict keys, without bind.

No `module.bind` (a clone of every child and its `setup()`): Sequentials and layers without `setup()` or submodule
attributes, whose children come from the variables. One rule lookup per class, and one computation of a layer's
leaves per (class, variables at its path); anything else (setup, submodule attributes, adopted names, a layer
used twice, joins) gives None: the index decides.
"""
from __future__ import annotations

import functools
from collections.abc import Container, Mapping
from operator import attrgetter
from typing import Any

from unified_params.lazy import lazy
from unified_params.naming import positions
from unified_params.rules import Rule, Unlisted, leaf_of, ordered_leaves

from ._jax import _shape_of, collections, unbox
from .flax_rules import LINEN, by_children, by_signature

linen = lazy("flax.linen")
flax_frozen = lazy("flax.core.frozen_dict")

_OWNER = attrgetter("name", "_parent_ref")
"""A layer's own name and parent link (`parent` is a descriptor resolving a weak reference: read what it holds)."""
_KEYS: list[str] = []

def _layer_keys(n: int) -> list[str]:
    """The variables keys of a Sequential's n layers, `layers_<i>`, made once per process."""
    while len(_KEYS) < n:
        _KEYS.append(f"layers_{len(_KEYS)}")
    return _KEYS[:n]


def names(module: Any, variables: Mapping | None, values: Any = unbox) -> list[str] | None:
    """The canonical names LinenTree.build gives, or None where the module's structure needs binding."""
    from flax import config

    if variables is None or config.flax_preserve_adopted_names:
        return None
    walk = _Walk(values)
    try:
        walk.module(module, walk.plan(type(module)), [variables[c] for c in collections(variables)], "")
    except (_GiveUp, Unlisted):
        return None
    return list(dict.fromkeys(walk.names))


@functools.cache
def _is_mapping(cls: type) -> bool:
    return issubclass(cls, Mapping)


def _level(subs: list[Any], rule: Rule | None) -> tuple[tuple[str, ...], list[str]]:
    """The canonical leaves _own_slots gives at one path (a repeated leaf keeps its native name) and the keys
    _subtree_keys gives, from the variables at that path in each collection."""
    leaves: list[str] = []
    keys: dict[str, None] = {}
    for sub in subs:
        for name, raw in sub.items():
            if _is_mapping(type(raw)):
                keys[name] = None
            else:
                leaf = leaf_of(rule, name).name
                leaves.append(name if leaf in leaves else leaf)
    return tuple(leaves), list(keys)


def _below(subs: list[Any], key: str) -> list[Any]:
    found = [sub.get(key) for sub in subs]
    return [sub for sub in found if sub is not None and _is_mapping(type(sub))]


def _holds_module(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(map(_holds_module, value))
    if isinstance(value, Mapping):
        return any(map(_holds_module, value.values()))
    return isinstance(value, linen.Module)



class _GiveUp(Exception):
    """The walk met something only the full tree decides."""


class _Walk:
    """One listing: the names found, and what it learnt per class (rule entry, kind, leaves by variables)."""

    def __init__(self, values: Any) -> None:
        self.values = values
        self.names: list[str] = []
        self.plans: dict[type, tuple[Any, str, dict | None]] = {}
        self.plain: set[type] = set()
        self.arrays: set[type] = set()
        """Types of variables met (not mappings): a level of one collection holding only these is keyed by its names."""
        self.kinds = (linen.Module, list, tuple, dict, flax_frozen.FrozenDict)

    def plan(self, cls: type) -> tuple[Any, str, dict | None]:
        """A class's rule entry, its kind ("sequential", "plain": no setup(), "setup", "other": not a module) and,
        for a fixed rule (or none), the cache of its leaves by the variables at its path."""
        if not issubclass(cls, linen.Module):
            found: tuple[Any, str, dict | None] = (None, "other", None)
        else:
            entry = LINEN.entry(cls)
            fixed = entry is None or isinstance(entry, Rule)
            kind = "sequential" if issubclass(cls, linen.Sequential) else \
                "plain" if cls.setup is linen.Module.setup else "setup"
            if kind == "sequential" and getattr(cls, "preserve_adopted_names", False):
                kind = "setup"
            found = (entry, kind, {} if fixed else None)
        self.plans[cls] = found
        return found

    def module(self, module: Any, plan: tuple[Any, str, dict | None], subs: list[Any], prefix: str) -> None:
        """A module's leaves, then its children: a Sequential's layers, then children known from the variables."""
        entry, kind, cache = plan
        if kind == "setup":
            raise _GiveUp
        rule = entry if cache is not None else entry(module)
        if rule is not None and rule.joins:
            raise _GiveUp
        keys = self.leaves(subs, rule, cache, prefix) if subs else ()
        covered: Container[str] = ()
        if kind == "sequential":
            covered = self.layers(module, subs, prefix)
        elif self.submodules(module):
            raise _GiveUp
        for name in keys:
            if name not in covered:
                self.variables_only(name, _below(subs, name), f"{prefix}{name}.")

    def layers(self, module: Any, subs: list[Any], prefix: str) -> set[str]:
        """A Sequential's layers by position (functions such as nn.relu count); the variables keys they cover."""
        covered: set[str] = set()
        seen: set[int] = set()
        plans = self.plans
        layers = module.layers
        single = subs[0] if len(subs) == 1 else None
        for layer, key, at in zip(layers, _layer_keys(len(layers)), positions(prefix, len(layers))):
            plan = plans.get(type(layer)) or self.plan(type(layer))
            if plan[1] == "other":
                continue
            name, parent = _OWNER(layer)
            if name is not None or parent is not None or id(layer) in seen:
                raise _GiveUp
            seen.add(id(layer))
            covered.add(key)
            below = single.get(key) if single is not None else None
            self.module(layer, plan, [below] if type(below) is dict else _below(subs, key), at)
        return covered

    def leaves(self, subs: list[Any], rule: Rule | None, cache: dict | None, prefix: str) -> list[str]:
        """Add the names of the variables directly at this path; the keys of the scopes below it."""
        if not subs:
            return []
        if len(subs) == 1 and self.arrays.issuperset(map(type, subs[0].values())):
            key: Any = tuple(subs[0])
        else:
            key = tuple((tuple(sub), tuple(map(type, sub.values()))) for sub in subs)
        found = None if cache is None else cache.get(key)
        if found is None:
            self.arrays.update(t for sub in subs for t in map(type, sub.values()) if not _is_mapping(t))
            leaves, below = _level(subs, rule)
            found = (ordered_leaves(rule, leaves, canonical=True), below)
            if cache is not None:
                cache[key] = found
        add = self.names.append
        for leaf in found[0]:
            add(prefix + leaf)
        return found[1]

    def submodules(self, module: Any) -> bool:
        """True when an attribute of module holds a linen Module (or a list, tuple or dict with one)."""
        values = vars(module).values()
        if self.plain.issuperset(map(type, values)):
            return False
        self.plain.update(t for t in map(type, values) if not issubclass(t, self.kinds))
        return any(_holds_module(v) for v in values if type(v) not in self.plain)

    def variables_only(self, name: str, subs: list[Any], prefix: str) -> None:
        """A compact child known from its variables only: its rule from its automatic name or its variables."""
        children = list(dict.fromkeys(k for sub in subs for k, v in sub.items() if _is_mapping(type(v))))
        rule = LINEN.by_autoname(name) or by_signature(self.shapes(subs)) or \
            by_children(children, lambda key: self.shapes(_below(subs, key)))
        if rule is not None and rule.joins:
            raise _GiveUp
        for key in self.leaves(subs, rule, None, prefix):
            self.variables_only(key, _below(subs, key), f"{prefix}{key}.")

    def shapes(self, subs: list[Any]) -> dict[str, tuple[int, ...]]:
        """Native name -> shape of the variables directly at one path, over every collection (LinenTree._own_shapes)."""
        return {k: _shape_of(self.values(v)) for sub in subs for k, v in sub.items() if not _is_mapping(type(v))}
