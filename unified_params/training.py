"""What training changes on a model's parameters: the framework's own trainability (freeze) and shared storage (tie)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors, selection
from .adapter import FREEZE, TIE

if TYPE_CHECKING:
    from .api import ParamAPI

STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
"""Kinds that are updated by the forward pass, never by gradients: freeze and unfreeze leave them alone."""


def set_trainable(pm: ParamAPI, trainable: bool, selector: selection.Selector) -> list[str]:
    """Set the framework's own trainability of the selected parameters; the names it changed."""
    adapter = pm._model.adapter
    reason = adapter.capabilities.get(FREEZE)
    verb = "freeze" if not trainable else "unfreeze"
    if reason:
        raise errors.UnsupportedError(f"{pm.backend} cannot {verb} parameters: {reason}")
    chosen = [e for e in pm._select(selector) if e.slot.kind not in STATISTICS]
    if not chosen:
        raise errors.SelectionError(f"{selector.describe()} matches no parameter to {verb} in {pm._where()}; "
                                    f"names are: {errors.quote_all(pm.names())}")
    layers = selection.nodes(pm._model.index().root)
    changed = [pm._rel(e.name) for e in chosen if adapter.set_trainable(layers[e.path].native, e.slot, trainable)]
    pm._model.index(fresh=True)
    return changed


def tie(pm: ParamAPI, source: str, target: str) -> None:
    """Make target share source's storage: same shape and dtype, both built; nothing changes on a misfit."""
    adapter = pm._model.adapter
    reason = adapter.capabilities.get(TIE)
    if reason:
        raise errors.UnsupportedError(f"{pm.backend} cannot tie parameters: {reason}")
    a, b = (pm[name]._entry() for name in (source, target))
    for entry in (a, b):
        if not entry.slot.initialized:
            raise errors.deferred(entry.name)
    if a.slot.storage == b.slot.storage:
        raise errors.SelectionError(f"{errors.quote(pm._rel(a.name))} and {errors.quote(pm._rel(b.name))} already "
                                    f"share one storage: nothing to tie")
    if a.slot.shape != b.slot.shape:
        raise errors.ShapeMismatchError(f"cannot tie {errors.quote(pm._rel(b.name))} {b.slot.shape} to "
                                        f"{errors.quote(pm._rel(a.name))} {a.slot.shape}: tie parameters of one shape")
    if a.slot.dtype != b.slot.dtype:
        raise errors.DtypeMismatchError(f"cannot tie {errors.quote(pm._rel(b.name))} ({b.slot.dtype}) to "
                                        f"{errors.quote(pm._rel(a.name))} ({a.slot.dtype}): cast one first")
    owner = selection.nodes(pm._model.index().root)[b.path].native
    adapter.share(owner, b.slot, a.slot)
    pm._model.index(fresh=True)
