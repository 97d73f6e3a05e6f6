"""Cheap checks that a native model still is what a cached index was built from: identity snapshots of containers.

Adapters use these to implement `Adapter.stamp` / `changed` / `current` (see docs/adapters.md, "Live model").
Every comparison runs in C (map, chain, operator.is_), so checking 1,000 tensors costs a fraction of a native listing.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from operator import is_, methodcaller
from typing import Any


def identical(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """True when a and b hold the same objects in the same order (identity, never __eq__)."""
    return len(a) == len(b) and all(map(is_, a, b))


_items = methodcaller("values")


class Contents:
    """What some mutable containers hold now: sizes, mapping keys by equality, values and items by identity.

    `changed()` is True when any container gained, lost, renamed or replaced an item since the snapshot.
    The snapshot keeps the values alive, so an identity seen here cannot be reused by a new object.
    """

    __slots__ = ("keys", "mappings", "sequences", "sizes", "values")

    def __init__(self, mappings: Iterable[Any] = (), sequences: Iterable[Any] = ()) -> None:
        self.mappings, self.sequences = list(mappings), list(sequences)
        self.sizes, self.keys, self.values = self._read()

    def _read(self) -> tuple[list[int], list[Any], list[Any]]:
        mappings, sequences = self.mappings, self.sequences
        sizes = list(map(len, chain(mappings, sequences)))
        keys = list(chain.from_iterable(mappings))
        values = list(chain(chain.from_iterable(map(_items, mappings)), chain.from_iterable(sequences)))
        return sizes, keys, values

    def resized(self) -> bool:
        """True when a container's size differs from the snapshot's (a cheaper, partial changed())."""
        return list(map(len, chain(self.mappings, self.sequences))) != self.sizes

    def changed(self) -> bool:
        """True when a container holds something else than at the snapshot."""
        sizes, keys, values = self._read()
        return sizes != self.sizes or keys != self.keys or not identical(values, self.values)
