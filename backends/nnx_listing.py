"""NNX names without the index: what _Tree would name, read without slots or NNX's own graph traversal."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unified_params.freshness import Contents
from unified_params.rules import Unlisted, leaf_of, ordered_leaves

from .flax_rules import NNX
from .nnx_graph import bridge, containers, has_data, is_slot, members, nnx


class Listing:
    """The names _Tree gives, without slots or NNX's own paths; ok is False where the tree must decide (ToNNX modules,
    a Variable held twice, which may take its owner's leaf)."""

    def __init__(self, model: Any) -> None:
        self.names: list[str] = []
        self.holders: dict[int, Any] = {}
        self.variables: set[int] = set()
        self.active: set[int] = set()
        try:
            self.ok = self.visit(model, "")
        except Unlisted:
            self.ok = False

    def visit(self, obj: Any, prefix: str) -> bool:
        if isinstance(obj, bridge.ToNNX):
            return False
        if id(obj) in self.active:
            return True
        self.active.add(id(obj))
        for holder in containers(obj):
            self.holders.setdefault(id(holder), holder)
        rule = NNX.for_layer(obj) if isinstance(obj, nnx.Module) else None
        leaves: list[str] = []
        children = []
        for key, value, _ in members(obj, ())[0]:
            if isinstance(value, nnx.Variable):
                if is_slot(value):
                    if id(value) in self.variables:
                        return False
                    self.variables.add(id(value))
                    leaf = leaf_of(rule, key).name
                    leaves.append(key if leaf in leaves else leaf)
            elif not isinstance(value, (nnx.Rngs, nnx.RngStream)) and has_data(value):
                children.append((key, value))
        self.names.extend([prefix + leaf for leaf in ordered_leaves(rule, tuple(leaves), canonical=True)])
        for key, value in children:
            if not self.visit(value, f"{prefix}{key}."):
                return False
        self.active.discard(id(obj))
        return True


class Holders:
    """What a listing needs to stay valid: the containers it read hold the same things."""

    def __init__(self, holders: list[Any]) -> None:
        self.contents = Contents(mappings=[h for h in holders if isinstance(h, Mapping)],
                                 sequences=[h for h in holders if not isinstance(h, Mapping)])

    def changed(self, attributes: bool) -> bool:
        return attributes or self.contents.changed()
