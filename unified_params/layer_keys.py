"""What pm.layer(key) accepts: a position, a child key, a dotted canonical path, or the framework's own layer name."""
from __future__ import annotations

from collections.abc import Callable, Mapping

from . import errors
from .adapter import Node


def _child(node: Node, key: str) -> Node | None:
    return next((c for c in node.children if c.key == key), None)


def _dotted(node: Node, key: str) -> list[Node] | None:
    """The nodes along a dotted canonical path below node ("transformer.h.0"), or None when there is none."""
    found = []
    for part in key.split("."):
        node = _child(node, part)
        if node is None:
            return None
        found.append(node)
    return found


def step(root: Node, path: tuple[str, ...], key: int | str,
         native: Callable[[], Mapping[str, tuple[str, ...]]]) -> tuple[str, ...]:
    """The canonical path (from the root) of the layer key names below the layer at path.

    A canonical key or dotted path wins; else key is looked up among the native layer names of that layer's subtree
    (native(): canonical layer path -> the framework's own names of that layer, Adapter.layer_names).
    """
    node = root
    for part in path:
        node = _child(node, part)
    where = ".".join(path) or "the model"
    if isinstance(key, int) and not isinstance(key, bool):
        if not -len(node.children) <= key < len(node.children):
            raise errors.ParameterNotFoundError(
                f"{where} has {len(node.children)} children; there is no position {key}")
        return (*path, node.children[key].key)
    key = str(key)
    child = _child(node, key)
    if child is not None:
        return (*path, key)
    nodes = _dotted(node, key) if "." in key else None
    if nodes is not None:
        return (*path, *(n.key for n in nodes))
    lead = ".".join(path)
    inside = {p: names for p, names in native().items() if p and (not lead or p.startswith(lead + "."))}
    hits = [p for p, names in inside.items() if key in names]
    if len(hits) > 1:
        raise errors.SelectionError(f"the native layer name {errors.quote(key)} names {len(hits)} layers in {where}: "
                                    f"{errors.quote_all(hits)}; pass one of these canonical paths instead")
    if hits:
        return tuple(hits[0].split("."))
    known = list(dict.fromkeys([c.key for c in node.children] + [n for names in inside.values() for n in names]))
    raise errors.not_found(key, known, f"the children of {where}")

