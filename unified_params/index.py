"""Canonical names, order and tied groups, computed from an adapter's tree (ModelState decides when anew)."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .adapter import KNOWN_KINDS, Node, Slot

_RANK = {leaf: i for i, leaf in enumerate(KNOWN_KINDS)}


@dataclass(slots=True)
class Entry:
    """One canonical name: where it sits, the slot behind it, the primary (first) name of its tied group,
    and the nodes from the root to the slot's owner (what Adapter.current checks)."""

    name: str
    path: tuple[str, ...]
    slot: Slot
    primary: str
    nodes: tuple[Node, ...] = ()


def leaf_order(rule: Any) -> Callable[[str], tuple[int, int, str]]:
    """Sort key of a layer's canonical leaves: kind rank (weight, bias, running statistics), the rule's order, name."""
    def key(leaf: str) -> tuple[int, int, str]:
        return (_RANK.get(leaf, len(KNOWN_KINDS)), 0 if rule is None else rule.position(leaf), leaf)

    return key


def _slot_order(rule: Any) -> Callable[[Slot], tuple[int, int, str]]:
    """A layer's tensors in order: kind rank (weight, bias, running statistics), then the rule's order, then name."""
    key = leaf_order(rule)
    return lambda slot: key(slot.leaf)


class Index:
    """The model's parameters by canonical name, in canonical order, with tied groups.

    Slots are snapshots taken by the adapter's tree(), so `pending` (names whose shape is not known)
    is computed once here.
    """

    def __init__(self, root: Node) -> None:
        self.root = root
        self.entries: dict[str, Entry] = {}
        self.groups: dict[Hashable, list[str]] = {}
        self._walk(root, (), "", (root,))
        self.pending: list[str] = [n for n, e in self.entries.items() if not e.slot.initialized]
        self.unallocated: set[str] = set()
        if self.pending:
            self._find_unallocated(root, "")
        self.incomplete: list[str] = []
        self._find_incomplete(root, ())
        self.waiting = bool(self.pending or self.incomplete)
        """True while the model will change when it runs: shapes not known, or layers whose structure is not known."""

    def _walk(self, node: Node, path: tuple[str, ...], prefix: str, nodes: tuple[Node, ...]) -> None:
        slots = node.slots if len(node.slots) < 2 else sorted(node.slots, key=_slot_order(node.rule))
        entries, groups = self.entries, self.groups
        for slot in slots:
            name = prefix + slot.leaf
            group = groups.get(slot.storage)
            if group is None:
                group = groups[slot.storage] = []
            group.append(name)
            entries[name] = Entry(name, path, slot, group[0], nodes)
        for child in node.children:
            key = child.key
            self._walk(child, (*path, key), f"{prefix}{key}.", (*nodes, child))

    def _find_unallocated(self, node: Node, prefix: str) -> None:
        """Names waiting only for storage: their layer's waiting parameters all have known shapes."""
        waiting = [s for s in node.slots if not s.initialized]
        if waiting and all(None not in s.shape for s in waiting):
            self.unallocated.update(prefix + s.leaf for s in waiting)
        for child in node.children:
            self._find_unallocated(child, f"{prefix}{child.key}.")

    def _find_incomplete(self, node: Node, path: tuple[str, ...]) -> None:
        """Canonical paths of layers whose children and parameters are not known until the model runs."""
        if not node.complete:
            self.incomplete.append(".".join(path))
        for child in node.children:
            self._find_incomplete(child, (*path, child.key))

    def by_storage(self, storage: Hashable) -> Entry | None:
        names = self.groups.get(storage)
        return self.entries[names[0]] if names else None
