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


def group_children(children: Sequence[tuple[str, Any]], paths: Mapping[int, tuple[str, ...]],
                   containers: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(key, child or Group) in the children's order; a Group stands where its first member was.

    children are (the framework's own key, child); a child with a two-level path joins the Group of its attribute.
    """
    out: list[tuple[str, Any]] = []
    groups: dict[str, Group] = {}
    for own_key, child in children:
        path = paths.get(id(child), (own_key,))
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
