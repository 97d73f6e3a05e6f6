"""The naming rule's shared half: children held in list and dict attributes get a level of their own.

A child is named by the attribute that holds it; a list or tuple attribute adds a level `attr.i`, a dict
attribute `attr.key` (insertion order), as torch's ModuleList and ModuleDict do. Adapters call these with
their framework's attributes and layer test, so every framework applies the same rule (docs/names.md).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Group:
    """Children reached through one list or dict attribute: the container and (key, child) in its order."""

    container: Any
    members: list[tuple[str, Any]] = field(default_factory=list)


def attribute_paths(attrs: Iterable[tuple[str, Any]], is_layer: Callable[[Any], bool]) -> dict[int, tuple[str, ...]]:
    """id(child) -> (attr,) for a layer held by an attribute, (attr, i) or (attr, key) for one in a list or dict.

    An attribute holding the layer itself names it before any container does (a framework's own bookkeeping
    dicts never win over the user's attribute); among equals the first attribute wins.
    """
    attrs = list(attrs)
    paths: dict[int, tuple[str, ...]] = {}
    for name, value in attrs:
        if is_layer(value):
            paths.setdefault(id(value), (name,))
    for name, value in attrs:
        for key, item in _items(value):
            if is_layer(item):
                paths.setdefault(id(item), (name, str(key)))
    return paths


def _items(value: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    return ()


def alias_paths(attrs: Iterable[tuple[str, Any]], is_layer: Callable[[Any], bool],
                paths: Mapping[int, tuple[str, ...]]) -> list[tuple[tuple[str, ...], Any]]:
    """(path, child) for every further public attribute, list or dict entry holding a child that paths names already.

    These are the child's tied aliases (`self.b = self.a`), as torch lists a module registered under two names.
    """
    out: list[tuple[tuple[str, ...], Any]] = []
    for name, value in attrs:
        if name.startswith("_"):
            continue
        held = [((name,), value)] if is_layer(value) else [((name, str(k)), v) for k, v in _items(value) if is_layer(v)]
        for path, child in held:
            if id(child) in paths and paths[id(child)] != path and all(path != p for p, _ in out):
                out.append((path, child))
    return out


def _rank(path: tuple[str, ...], containers: Mapping[str, Any], order: Mapping[str, int]) -> tuple[int, int]:
    """Where path stands among the layer's attributes: the attribute's position, then the entry's inside it."""
    if len(path) == 1:
        return order.get(path[0], -1), -1
    keys = [str(k) for k, _ in _items(containers.get(path[0]))]
    return order.get(path[0], -1), keys.index(path[1]) if path[1] in keys else -1


def _with_aliases(entries: list[tuple[tuple[str, ...], Any]], aliases: Sequence[tuple[tuple[str, ...], Any]],
                  containers: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """entries with each alias inserted: inside its list or dict by position, else after the attributes before it."""
    order = {name: i for i, name in enumerate(containers)}

    def rank(path: tuple[str, ...]) -> tuple[int, int]:
        return _rank(path, containers, order)

    out = list(entries)
    for path, child in sorted(aliases, key=lambda pc: rank(pc[0])):
        same = [k for k, (q, _) in enumerate(out) if len(path) > 1 and len(q) > 1 and q[0] == path[0]]
        if same:
            before = [k for k in same if rank(out[k][0]) <= rank(path)]
            at = before[-1] + 1 if before else same[0]
        else:
            at = max((k + 1 for k, (q, _) in enumerate(out) if rank(q) <= rank(path)), default=0)
        out.insert(at, (path, child))
    return out


def group_children(children: Sequence[tuple[str, Any]], paths: Mapping[int, tuple[str, ...]],
                   containers: Mapping[str, Any],
                   aliases: Sequence[tuple[tuple[str, ...], Any]] = ()) -> list[tuple[str, Any]]:
    """(key, child or Group) in the children's order; a Group stands where its first member was.

    children are (the framework's own key, child); a child with a two-level path joins the Group of its attribute.
    An own key that is an attribute holding that very child stays its key (Gluon registers `self.b = self.a` twice).
    aliases (from alias_paths) are further names of children, placed where their attribute stands.
    """
    out: list[tuple[str, Any]] = []
    groups: dict[str, Group] = {}
    entries = [((own_key,) if containers.get(own_key) is child else paths.get(id(child), (own_key,)), child)
               for own_key, child in children]
    for path, child in _with_aliases(entries, aliases, containers) if aliases else entries:
        if len(path) == 1:
            out.append((path[0], child))
            continue
        group = groups.get(path[0])
        if group is None:
            group = groups[path[0]] = Group(containers.get(path[0]))
            out.append((path[0], group))
        group.members.append((path[1], child))
    return out


def unregistered(attrs: Iterable[tuple[str, Any]], is_layer: Callable[[Any], bool], registered: set[int]) -> list[str]:
    """`attr[i]` / `attr[key]` of layers held in list or dict attributes that the framework does not know of."""
    return [f"{name}[{key!r}]" for name, value in attrs for key, item in _items(value)
            if is_layer(item) and id(item) not in registered]


_POSITIONS: list[str] = []


def positions(prefix: str, n: int) -> list[str]:
    """The canonical prefixes of n children keyed by position: `<prefix>0.`, `<prefix>1.`, ... (made once)."""
    while len(_POSITIONS) < n:
        _POSITIONS.append(f"{len(_POSITIONS)}.")
    return _POSITIONS[:n] if not prefix else list(map(prefix.__add__, _POSITIONS[:n]))
