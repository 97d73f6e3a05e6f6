"""Canonical names, order and tied groups, computed once from an adapter's tree."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from .adapter import KNOWN_KINDS, Node, Slot


@dataclass
class Entry:
    """One canonical name: where it sits and the slot behind it."""

    name: str
    path: tuple[str, ...]
    slot: Slot
    first: str


def _slot_order(slot: Slot) -> tuple[int, str]:
    return (KNOWN_KINDS.index(slot.leaf) if slot.leaf in KNOWN_KINDS else len(KNOWN_KINDS), slot.leaf)


class Index:
    """The model's parameters by canonical name, in canonical order, with tied groups."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self.entries: dict[str, Entry] = {}
        self.groups: dict[Hashable, list[str]] = {}
        self._walk(root, ())

    def _walk(self, node: Node, path: tuple[str, ...]) -> None:
        for slot in sorted(node.slots, key=_slot_order):
            name = ".".join((*path, slot.leaf))
            group = self.groups.setdefault(slot.storage, [])
            group.append(name)
            self.entries[name] = Entry(name, path, slot, group[0])
        for child in node.children:
            self._walk(child, (*path, child.key))

    @property
    def pending(self) -> list[str]:
        return [n for n, e in self.entries.items() if not e.slot.initialized]

    def by_storage(self, storage: Hashable) -> Entry | None:
        names = self.groups.get(storage)
        return self.entries[names[0]] if names else None
