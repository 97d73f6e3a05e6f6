"""ParamAPI's state and checkpoint methods: state_dict, load_state_dict, save, load and provenance.

A mixin of ParamAPI (api.py), which gives it the view's model state (`_model`), names (`_rel`, `_unique`,
`_prefix`, `_where`) and `backend`, `tied()`; every write here is all or nothing and holds the model's lock.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import checkpoint, checkpoint_load, errors, provenance, shards
from .adapter import COUNTERS, LOAD_DEFERRED
from .atomic import hold_interrupts
from .dtypes import resolve
from .fit import Target, fit_state
from .index import Entry
from .joins import Joined
from .matching import Rename, library_renamed, rename_state
from .model_state import locked
from .rules import no_canonical_form

if TYPE_CHECKING:
    from .api import ParamAPI


class StateMethods:
    """What ParamAPI reads and writes as a whole: its state dict and its checkpoints."""

    def _ready_unique(self) -> list[Entry]:
        unique = self._unique()
        pending = [self._rel(e.name) for e in unique if not e.slot.initialized]
        if pending:
            raise errors.DeferredInitializationError(
                f"call pm.materialize(example_input) first, or pm.materialize(device='cpu') for a model on the meta "
                f"device: {errors.quote_all(pending)} not initialized yet")
        self._structure_known()
        return unique

    def state_dict(self, copy: bool = True) -> dict[str, np.ndarray]:
        """name -> numpy value, canonical layout, one entry per tied group.

        copy=False gives read-only views of the native memory where the framework allows (valid until the next write).
        A copy keeps the native memory order: a kernel stored (in, out) comes back as an (out, in) array in Fortran
        order, copied at memcpy speed instead of transposed element by element.
        """
        view = self._model.adapter.view
        if not copy:
            return {self._rel(e.name): view(e.slot) for e in self._ready_unique()}
        return {self._rel(e.name): np.array(view(e.slot), copy=True, order="K") for e in self._ready_unique()}

    def _target(self) -> tuple[Target, dict[str, Entry]]:
        """What fit_state checks a state against, and the entry behind each unique name in this view."""
        unique = {self._rel(e.name): e for e in self._unique()}
        primary = {e.slot.storage: name for name, e in unique.items()}
        aliases = {self._rel(e.name): primary[e.slot.storage] for e in self._entries()
                   if self._rel(e.name) not in unique}
        target = Target({n: e.slot.shape for n, e in unique.items()}, {n: e.slot.dtype for n, e in unique.items()},
                        {n for n, e in unique.items() if not e.slot.initialized}, aliases,
                        {n for n, e in unique.items() if e.slot.kind in COUNTERS}, self._settles(),
                        native_only={n: why for n, e in unique.items() if (why := no_canonical_form(e.nodes))})
        return target, unique

    @locked
    def load_state_dict(self, state: dict[str, Any], strict: bool = True, cast: bool = False,
                        rename: Rename | None = None) -> ParamAPI:
        """Check every name, shape and dtype first, then write; raise listing every misfit and write nothing.

        rename: [(regex, replacement), ...] applied to the state's names first (first full match wins), after the
        names a framework library saves under (a transformers state_dict or save_pretrained file) became the model's.
        """
        target, unique = self._target()
        if not self._prefix:
            state = library_renamed(state, self._model.adapter.checkpoint_names(list(state)))
        values = fit_state(rename_state(state, rename), target, strict=strict, cast=cast)
        for name in values:
            self._model.adapter.writable(unique[name].slot)
        with hold_interrupts():
            self._settle(unique, {n: v.shape for n, v in values.items() if n in target.pending})
            self._model.adapter.write_many([(unique[n].slot, v) for n, v in values.items()])
            self._model.disclaim([unique[n].slot for n in values])
        self._settled(unique, target)
        return self

    def _settles(self) -> str | None:
        """None when the backend may take the shapes of pending parameters from a state or file, else why not."""
        reason = self._model.adapter.capabilities.get(LOAD_DEFERRED)
        return f"{self.backend} cannot take them from a checkpoint: {reason}" if reason else None

    def _settle(self, unique: dict[str, Entry], shapes: dict[str, tuple[int, ...]]) -> None:
        """Give pending parameters these shapes with storage (Adapter.settle); unique then holds their new slots."""
        if not shapes:
            return
        try:
            if any(isinstance(unique[n].slot, Joined) for n in shapes):
                raise NotImplementedError
            undo = self._model.adapter.settle([(unique[n].slot, tuple(s)) for n, s in shapes.items()])
        except NotImplementedError:
            raise errors.DeferredInitializationError(
                f"call pm.materialize(example_input) first: {self.backend} cannot take the shapes of "
                f"{errors.quote_all(list(shapes))} from a checkpoint; nothing was written") from None
        try:
            fresh = self._model.index(fresh=True).entries
            unique.update({n: fresh[e.name] for n, e in unique.items()})
        except BaseException:
            undo()
            raise

    def _settled(self, unique: dict[str, Entry], target: Target) -> None:
        """After a load that gave pending parameters their shapes: it wins over their records; other records run."""
        groups = self._model.index().groups
        loaded = [name for e in (unique[n] for n in target.pending if n in unique) if e.slot.initialized
                  for name in groups.get(e.slot.storage, [e.name])]
        if loaded:
            self._model.supersede(loaded)
            self._model.shapes_known()

    @locked
    def save(self, path: str | bytes | os.PathLike, metadata: dict[str, str] | None = None,
             max_shard_size: int | str | None = None) -> None:
        """Write a safetensors checkpoint (canonical names and layout) atomically, one tensor at a time.

        With max_shard_size ("2GB", bytes), path is a folder that gets transformers-style shards and an index.
        It holds the model's lock, so the file is one consistent snapshot of what init, set and load write.
        """
        entries = self._ready_unique()
        specs = [(self._rel(e.name), resolve(e.slot.dtype), tuple(e.slot.shape)) for e in entries]
        adapter = self._model.adapter
        origins = {n: o for n, o in self.provenance().items() if o is not None}
        group = adapter.group()
        if group is not None:
            from . import collective

            collective.save(path, specs, [e.slot for e in entries], adapter.blocks, adapter.view, group, self.backend,
                            self.tied(), metadata, max_shard_size, origins)
            return
        values = (adapter.view(e.slot) for e in entries)
        if max_shard_size is None:
            checkpoint.save(path, specs, values, self.backend, self.tied(), metadata, origins)
        else:
            shards.save(path, specs, values, self.backend, self.tied(), metadata, max_shard_size, origins)

    def provenance(self) -> dict[str, dict[str, Any] | None]:
        """name -> {"initializer": its repr, "seed": seed} of the pm.init that produced the current value, while the
        value is unchanged since; None when not known (written otherwise, changed since, not initialized, or a backend
        without change tokens: MXNet, Keras on TensorFlow; a tensor joined from several native arrays). A tied group
        once; pm.save records it in the file."""
        out: dict[str, dict[str, Any] | None] = {}
        for e in self._unique():
            found = provenance.origin(self._model.token(e.slot)) if e.slot.initialized else None
            out[self._rel(e.name)] = None if found is None else {"initializer": found[0], "seed": found[1]}
        return out

    @locked
    def load(self, path: str | bytes | os.PathLike, strict: bool = True, cast: bool = False,
             rename: Rename | None = None) -> ParamAPI:
        """Load a checkpoint (a file, a sharded folder or its index), streamed; all or nothing.

        rename: as in load_state_dict, applied to the checkpoint's names before they are compared with the model.
        """
        target, unique = self._target()
        adapter = self._model.adapter
        joined = {name for name, e in unique.items() if isinstance(e.slot, Joined)}

        def fill(name: str, fn: Callable[[np.ndarray], None]) -> None:
            adapter.fill(unique[name].slot, fn)
            self._model.disclaim([unique[name].slot])

        def write_many(pairs: list[tuple[str, np.ndarray]]) -> None:
            adapter.write_many([(unique[n].slot, v) for n, v in pairs])
            self._model.disclaim([unique[n].slot for n, _ in pairs])

        checkpoint_load.load(path, target, fill, strict, cast, rename, joined, write_many,
                             library=None if self._prefix else adapter.checkpoint_names,
                             settle=lambda shapes: self._settle(unique, shapes))
        self._settled(unique, target)
        return self
