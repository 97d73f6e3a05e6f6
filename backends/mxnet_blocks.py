"""Gluon block trees as the MXNet adapter reads them: children and parameters by name, and the stamp that tells
when a block tree changed after it was indexed."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from unified_params.adapter import Node
from unified_params.freshness import Contents, identical
from unified_params.naming import attribute_paths, group_children, unregistered

from .mxnet_import import mx


def known(param: Any) -> tuple[int | None, ...]:
    """Gluon's shape with its unknown dimensions (0, or -1 in numpy-shape mode) as None."""
    return tuple(None if d in (0, -1) else int(d) for d in (param.shape or ()))


def own_params(block: Any) -> list[tuple[str, Any]]:
    """(native name, Parameter) for the block's own parameters: registered attributes, then any others of its dict."""
    own = list(block._reg_params.items())
    seen = {id(p) for _, p in own}
    prefix = block.params.prefix
    for name, p in block.params.items():
        if id(p) not in seen:
            own.append((name[len(prefix):] if prefix and name.startswith(prefix) else name, p))
    return own


def children(block: Any) -> list[tuple[str, Any]]:
    """(key, child or Group): registered children by name, those also held in a list/dict attribute as attr.i/attr.key.

    Blocks held in a list or dict attribute but never registered are invisible to Gluon (no parameters are
    collected, saved or trained): they get a warning naming them.
    """
    attrs = [(k, v) for k, v in vars(block).items() if not k.startswith("_")]
    registered = block._children
    lost = unregistered(attrs, _is_block, {id(c) for c in registered.values()})
    if lost:
        warnings.warn(f"{type(block).__name__} holds blocks that Gluon does not know of: {', '.join(lost)}; "
                      f"register them with register_child(block, name) or their parameters are neither trained "
                      f"nor saved", stacklevel=4)
    if not attrs:
        return list(registered.items())
    return group_children(list(registered.items()), attribute_paths(attrs, _is_block), dict(attrs))


def _is_block(value: Any) -> bool:
    return isinstance(value, mx.gluon.Block)


def walk(block: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, block) for the block and its descendants in container order; a shared block once per use."""
    yield path, block
    for key, child in block._children.items():
        yield from walk(child, (*path, key))


def unique_params(model: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for _, block in walk(model):
        for _, p in own_params(block):
            seen.setdefault(id(p), p)
    return list(seen.values())


def _containers(block: Any) -> tuple[Any, Any, Any]:
    """The dicts tree() reads a block's children and parameters from."""
    return block._children, block._reg_params, block.params._params


def natives(node: Node) -> list[Any]:
    """The native object of every node: blocks, and the lists and dicts that group children under an attribute."""
    out, stack = [], [node]
    while stack:
        node = stack.pop()
        out.append(node.native)
        stack.extend(node.children)
    return out


def _attributes(param: Any) -> tuple[Any, ...]:
    return param._dtype, param._grad_req, param._shape, param._data is None


class Stamp:
    """The blocks an index was built from, what their dicts held, and each parameter's dtype, grad_req and shape."""

    def __init__(self, natives: list[Any], params: list[Any] | None) -> None:
        """natives: the blocks and the lists and dicts grouping children; params None for a listing (names only)."""
        self.blocks = [n for n in natives if isinstance(n, mx.gluon.Block)]
        self.dicts = [d for b in self.blocks for d in _containers(b)]
        groups = [n for n in natives if isinstance(n, (list, tuple, dict))]
        self.contents = Contents(self.dicts + [g for g in groups if isinstance(g, dict)],
                                 [g for g in groups if not isinstance(g, dict)])
        self.params = params
        self.attributes = None if params is None else list(map(_attributes, params))

    def changed(self, attributes: bool) -> bool:
        if not identical([d for b in self.blocks for d in _containers(b)], self.dicts) or self.contents.changed():
            return True
        return attributes and (self.params is None or list(map(_attributes, self.params)) != self.attributes)
