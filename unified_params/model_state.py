"""The state shared by one wrapped model and all its views: the adapter, the cached index, the pending init records."""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import joins, provenance
from .adapter import Adapter, Slot
from .errors import InitializerError, SelectionError
from .index import Entry, Index
from .init import filler, in_place, make_value
from .joins import JoiningAdapter


@dataclass
class Record:
    """An init call waiting for shapes: applied, in call order, to names as their shapes become known.

    `select` is the call's selection itself, kept while some layer's structure is not known: once it is, the
    selection runs again and the names it finds (beyond `exclude`, those it found at the call) join `names`.
    """

    initializer: Any
    seed: int
    names: list[str]
    select: Callable[[], list[str]] | None = None
    exclude: frozenset[str] = frozenset()
    what: str = ""


class ModelState:
    """Everything cached from one native model (its index) and what is pending on it (recorded inits).

    One instance is shared by the ParamAPI of a wrapped model and every view made from it (pm.layer(...)).
    The index is never served stale: before each use the adapter's stamp of the model it was built from is
    checked (Adapter.changed, or Adapter.current for one entry), and the model is discovered anew when it changed.
    """

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = JoiningAdapter(adapter)
        self.records: list[Record] = []
        self._index: Index | None = None
        self._stamp: Any = None
        self._listing: tuple[list[str], Any] | None = None
        self._watched = False
        self._current = adapter.current
        self.views: dict[str, Any] | None = {} if adapter.tells_changes else None
        """The root views handed out by name while the index is current, for adapters that tell every change (the
        adapter empties it: `on_change` is the dict's own `clear`, so the adapter holds no reference to this state)."""
        if self.views is not None:
            adapter.on_change = self.views.clear
        self.materializing = False
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles of a model that reach this state get a lock of their own."""
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()
        if self.views is not None:
            self.adapter.inner.on_change = self.views.clear

    def index(self, fresh: bool = False, attributes: bool = True) -> Index:
        """The index of the model as it is now; attributes=False when only names and structure matter.

        A model with pending shapes is re-discovered on every call.
        """
        index = self._index
        if fresh or index is None or index.waiting or self.adapter.changed(self._stamp, attributes):
            self._watch()
            found = self.adapter.tree()
            index = self._index = Index(joins.apply(found))
            self._stamp = None if index.waiting else self.adapter.stamp(found)
            if self.views is not None:
                self.views.clear()
        return index

    def keep_view(self, name: str, view: Any) -> None:
        """Hand out this root view by name without checks until the adapter tells a change or the index is rebuilt."""
        index = self._index
        if self.views is not None and index is not None and not index.waiting:
            self.views[name] = view

    def _watch(self) -> None:
        """Let the adapter watch the model's own deferred init, once, before the first index (records need an index)."""
        if not self._watched:
            self._watched = True
            self.adapter.watch(self)

    def names(self) -> list[str]:
        """Every canonical name in order: from the index when one is current, else the adapter's cheaper listing."""
        index = self._index
        if index is not None and not index.waiting and not self.adapter.changed(self._stamp, False):
            return list(index.entries)
        listing = self._listing
        if listing is None or self.adapter.changed(listing[1], False):
            listing = self._listing = self.adapter.listing()
            if listing is None:
                return list(self.index(attributes=False).entries)
        return list(listing[0])

    def entry(self, name: str, attributes: bool = True) -> Entry | None:
        """The entry called name as the model is now (None when there is none), checked at about one lookup's cost."""
        index = self._index
        if index is not None and not index.waiting:
            entry = index.entries.get(name)
            if entry is not None:
                if self._current(self._stamp, entry.nodes, entry.slot, attributes):
                    return entry
                return self.index(fresh=True).entries.get(name)
        return self.index(attributes=attributes).entries.get(name)

    def shapes_known(self) -> None:
        """Apply every recorded initializer whose parameters now have known shapes (all at once after pm.materialize).

        All values are made before any is written: a record whose initializer fails writes nothing and stays (the
        next forward or materialize fails the same way, until a later pm.init of those names supersedes it).
        """
        if self.materializing:
            return
        with self.lock:
            self._apply_records()

    def _apply_records(self) -> None:
        index = self.index(fresh=True)
        entries = index.entries
        if not index.incomplete:
            self._resolve_selections()
        values, fills, done = [], [], []
        for record in self.records:
            ready = [n for n in record.names if n in entries and entries[n].slot.initialized]
            try:
                if in_place(record.initializer):
                    for n in ready:
                        record.initializer.check(entries[n].slot.shape, n, entries[n].slot.dtype)
                    fills += [(entries[n].slot, filler(record.initializer, record.seed, n)) for n in ready]
                else:
                    values += [(entries[n].slot, make_value(record.initializer, record.seed, n, entries[n].slot.shape,
                                                            entries[n].slot.dtype)) for n in ready]
            except InitializerError as e:
                raise InitializerError(f"{e}; nothing was written: a later pm.init of these parameters replaces "
                                       f"the record") from e
            done.append(set(ready))
        if values:
            self.adapter.write_many(values)
        for slot, fn in fills:
            self.adapter.fill(slot, fn)
        for record, ready in zip(self.records, done):
            self.claim([entries[n].slot for n in ready], record.initializer, record.seed)
        for record, ready in zip(self.records, done):
            record.names = [n for n in record.names if n not in ready]
        self.records = [r for r in self.records if r.names or r.select is not None]

    def _resolve_selections(self) -> None:
        """Run the selections recorded while the structure was unknown; one that still matches nothing is a typo."""
        typos = []
        for record in self.records:
            if record.select is None:
                continue
            record.names += [n for n in record.select() if n not in record.exclude and n not in record.names]
            record.select = None
            if not record.names and not record.exclude:
                typos.append(record)
        if typos:
            self.records = [r for r in self.records if all(r is not t for t in typos)]
            raise SelectionError(f"{typos[0].what} matches no parameter now that the structure is known (a typo?); "
                                 f"that pm.init call was dropped, nothing was written")

    def claim(self, slots: list[Slot], initializer: Any, seed: int | None) -> None:
        """These slots' values were just written by initializer with seed (pm.provenance, while unchanged)."""
        text = repr(initializer)
        for slot in slots:
            provenance.claim(self.token(slot), text, seed)

    def disclaim(self, slots: list[Slot]) -> None:
        """These slots' values were just written by something else than an initializer (set, load, transfer)."""
        for slot in slots:
            provenance.disclaim(self.token(slot))

    def token(self, slot: Slot) -> provenance.Token | None:
        """The adapter's change token of slot; None for a tensor joined from several native arrays (not claimed)."""
        return None if isinstance(slot, joins.Joined) else self.adapter.change_token(slot)

    def supersede(self, names: list[str]) -> None:
        """Drop names from earlier records: a later init of them wins (also over one that failed in a native forward)."""
        if self.records and names:
            gone = set(names)
            for record in self.records:
                record.names = [n for n in record.names if n not in gone]
            self.records = [r for r in self.records if r.names or r.select is not None]

    def recorded(self) -> set[Hashable]:
        """The storages a recorded initializer is waiting for."""
        entries = self.index().entries
        return {entries[n].slot.storage for r in self.records for n in r.names if n in entries}

    def initial_value(self, storage: Hashable, shape: tuple[int, ...], dtype: str) -> np.ndarray | None:
        """The value the recorded initializers give one parameter (through any of its tied names), for native init."""
        entry = self.index(fresh=True).by_storage(storage)
        if entry is None:
            return None
        names = set(self.index().groups.get(storage, ()))
        value = None
        for record in self.records:
            if names.intersection(record.names):
                value = make_value(record.initializer, record.seed, entry.primary, tuple(shape), dtype)
        self._take(storage)
        return value

    def native_init(self, storage: Hashable) -> None:
        """The framework's own initialization of this storage came after its records: drop them (the later call wins)."""
        self._take(storage)

    def _take(self, storage: Hashable) -> list[Record]:
        """Remove every tied name of this storage from the records; the records that held one, in call order."""
        names = set(self.index().groups.get(storage, ()))
        taken = [r for r in self.records if names.intersection(r.names)]
        for record in taken:
            record.names = [n for n in record.names if n not in names]
        self.records = [r for r in self.records if r.names]
        return taken


F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """Run a ParamAPI or ParamView method holding its model's lock: init, set, load and save never interleave."""
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        model = self._model if hasattr(self, "_model") else self._api._model
        with model.lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]
