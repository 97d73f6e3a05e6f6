"""The state shared by one wrapped model and all its views: the adapter, the cached index, the pending init records."""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .adapter import Adapter
from .index import Entry, Index
from .init import make_value


@dataclass
class Record:
    """An init call waiting for shapes: applied, in call order, to names as their shapes become known."""

    initializer: Any
    seed: int
    names: list[str]


class ModelState:
    """Everything cached from one native model (its index) and what is pending on it (recorded inits).

    One instance is shared by the ParamAPI of a wrapped model and every view made from it (pm.layer(...)).
    The index is never served stale: before each use the adapter's stamp of the model it was built from is
    checked (Adapter.changed, or Adapter.current for one entry), and the model is discovered anew when it changed.
    """

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.records: list[Record] = []
        self._index: Index | None = None
        self._stamp: Any = None
        self.materializing = False
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles of a model that reach this state get a lock of their own."""
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    def index(self, fresh: bool = False, attributes: bool = True) -> Index:
        """The index of the model as it is now; attributes=False when only names and structure matter.

        A model with pending shapes is re-discovered on every call.
        """
        index = self._index
        if fresh or index is None or index.pending or self.adapter.changed(self._stamp, attributes):
            index = self._index = Index(self.adapter.tree())
            self._stamp = None if index.pending else self.adapter.stamp(index.root)
        return index

    def entry(self, name: str, attributes: bool = True) -> Entry | None:
        """The entry called name as the model is now (None when there is none), checked at about one lookup's cost."""
        index = self._index
        if index is not None and not index.pending:
            entry = index.entries.get(name)
            if entry is not None:
                if self.adapter.current(self._stamp, entry.nodes, entry.slot, attributes):
                    return entry
                return self.index(fresh=True).entries.get(name)
        return self.index(attributes=attributes).entries.get(name)

    def shapes_known(self) -> None:
        """Apply every recorded initializer whose parameters now have known shapes (all at once after pm.materialize)."""
        if self.materializing:
            return
        with self.lock:
            self._apply_records()

    def _apply_records(self) -> None:
        entries = self.index(fresh=True).entries
        values, done = [], []
        for record in self.records:
            ready = [n for n in record.names if n in entries and entries[n].slot.initialized]
            values += [(entries[n].slot, make_value(record.initializer, record.seed, n, entries[n].slot.shape,
                                                    entries[n].slot.dtype)) for n in ready]
            done.append(set(ready))
        if values:
            self.adapter.write_many(values)
        for record, ready in zip(self.records, done):
            record.names = [n for n in record.names if n not in ready]
        self.records = [r for r in self.records if r.names]

    def supersede(self, names: list[str]) -> None:
        """Drop names from earlier records: a later init of them wins (also over one that failed in a native forward)."""
        if self.records and names:
            gone = set(names)
            for record in self.records:
                record.names = [n for n in record.names if n not in gone]
            self.records = [r for r in self.records if r.names]

    def recorded(self) -> set[Hashable]:
        """The storages a recorded initializer is waiting for."""
        entries = self.index().entries
        return {entries[n].slot.storage for r in self.records for n in r.names if n in entries}

    def initial_value(self, storage: Hashable, shape: tuple[int, ...], dtype: str) -> np.ndarray | None:
        """The value the recorded initializers give one parameter, for adapters that initialize natively."""
        entry = self.index(fresh=True).by_storage(storage)
        if entry is None:
            return None
        value = None
        for record in self.records:
            if entry.primary in record.names:
                value = make_value(record.initializer, record.seed, entry.primary, tuple(shape), dtype)
                record.names.remove(entry.primary)
        self.records = [r for r in self.records if r.names]
        return value


F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """Run a ParamAPI or ParamView method holding its model's lock: init, set, load and save never interleave."""
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        model = self._model if hasattr(self, "_model") else self._api._model
        with model.lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]
