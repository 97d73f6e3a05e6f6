"""up.partition(pm, rules, mesh): partition rules in the selection language, turned into each engine's own sharding.

A rule is (selection, spec): the selection is a pattern (fullmatch of canonical names) or a dict of the
selectors of pm.collect (pattern, kind, layer, ndim, native, trainable); the spec names, for each canonical
dimension, the mesh axis (or tuple of axes, or None) it is split over. The first rule that selects a parameter
wins; parameters no rule selects are replicated. A rule that selects nothing is a SelectionError (Keras's own
LayoutMap ignores such a rule silently). Everything is checked before any parameter moves.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SelectionError, ShapeMismatchError, UnsupportedError, quote
from .joins import Joined

if TYPE_CHECKING:
    from .api import ParamAPI

Spec = tuple[tuple[str, ...], ...]


@dataclass
class Partition:
    """What partition() decided: name -> canonical spec (axes per canonical dimension), name -> the engine's own
    object (JAX NamedSharding, torch placements, Keras TensorLayout), and for Keras the LayoutMap to build under."""

    specs: dict[str, Spec] = field(default_factory=dict)
    native: dict[str, Any] = field(default_factory=dict)
    layout_map: Any = None


def _axes(entry: object, rule: str) -> tuple[str, ...]:
    if entry is None:
        return ()
    if isinstance(entry, str):
        return (entry,)
    if isinstance(entry, (tuple, list)) and all(isinstance(a, str) for a in entry):
        return tuple(entry)
    raise SelectionError(f"{rule}: {quote(entry)} is not a mesh axis: give an axis name, a tuple of names or None "
                         f"for each canonical dimension")


def _spec(spec: object, name: str, shape: tuple[int, ...], mesh: Mapping[str, int], rule: str) -> Spec:
    """The rule's spec for one parameter, checked against its canonical shape and the mesh."""
    if not isinstance(spec, (tuple, list)):
        raise SelectionError(f"{rule}: spec {quote(spec)} is not a tuple: give one entry (axis, axes or None) per "
                             f"canonical dimension, e.g. ('model', None)")
    if len(spec) > len(shape):
        raise ShapeMismatchError(f"{rule}: spec {tuple(spec)} has {len(spec)} entries but {quote(name)} has "
                                 f"{len(shape)} canonical dimensions {shape}")
    dims = tuple(_axes(e, rule) for e in spec) + ((),) * (len(shape) - len(spec))
    used = [a for d in dims for a in d]
    unknown = [a for a in used if a not in mesh]
    if unknown:
        raise SelectionError(f"{rule}: mesh axis {quote(unknown[0])} is not in the mesh; its axes are "
                             f"{', '.join(repr(a) for a in mesh)}")
    if len(set(used)) < len(used):
        raise SelectionError(f"{rule}: spec {tuple(spec)} uses a mesh axis twice")
    for d, axes in enumerate(dims):
        parts = 1
        for a in axes:
            parts *= mesh[a]
        if shape[d] % parts:
            raise ShapeMismatchError(f"{rule}: canonical dimension {d} of {quote(name)} ({shape[d]}) does not split "
                                     f"into {parts} equal parts over {'x'.join(axes)}")
    return dims


def _slot(view: Any) -> Any:
    """The view's slot; a canonical tensor joined from several native arrays has no one placement to give."""
    slot = view._entry().slot
    if isinstance(slot, Joined):
        raise UnsupportedError(f"{quote(view.name)} is joined from several native arrays: leave it out of the rules")
    return slot


def _selected(pm: ParamAPI, selection: object, rule: str) -> list[str]:
    if isinstance(selection, Mapping):
        chosen = pm.collect(**selection)
    elif isinstance(selection, str) or selection is None:
        chosen = pm.collect(selection)
    else:
        raise SelectionError(f"{rule}: the selection {quote(selection)} is neither a pattern nor a dict of selectors "
                             f"such as {{'layer': 'linear', 'kind': 'weight'}}")
    if not chosen:
        raise SelectionError(f"{rule} matches no parameter (a typo?); names are: {', '.join(pm.names()[:10])}")
    return list(chosen)


def partition(pm: ParamAPI, rules: Sequence[tuple[Any, Any]], mesh: Any, apply: bool = True) -> Partition:
    """Turn rules [(selection, spec), ...] into the engine's own sharding on mesh; with apply, place the parameters.

    JAX (NNX, linen) arrays are resharded on their devices, torch parameters become DTensors (distribute_tensor);
    Keras fixes a variable's layout when it is built: use apply=False and build under
    keras.distribution.ModelParallel(layout_map=result.layout_map).
    """
    adapter = pm._model.adapter
    axes = adapter.mesh_axes(mesh)
    out = Partition()
    slots = {}
    for i, item in enumerate(rules):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise SelectionError(f"partition rule {i} {quote(item)} is not a pair (selection, spec)")
        selection, spec = item
        rule = f"partition rule {i} ({selection!r}, {spec!r})"
        for name in _selected(pm, selection, rule):
            if name not in out.specs:
                view = pm[name]
                out.specs[name] = _spec(spec, name, tuple(view.shape), axes, rule)
                slots[name] = _slot(view)
    for name, view in pm.collect().items():
        if name not in out.specs and not isinstance(view._entry().slot, Joined):
            out.specs[name] = ((),) * len(view.shape)
            slots[name] = view._entry().slot
    out.specs = {n: out.specs[n] for n in pm.collect() if n in out.specs}
    out.native = {n: adapter.placement(slots[n], out.specs[n], mesh) for n in out.specs}
    out.layout_map = adapter.layout_map(mesh, [(slots[n], out.native[n]) for n in out.specs])
    if apply:
        if out.layout_map is not None:
            raise UnsupportedError(f"{pm.backend} fixes a variable's layout when the model is built: call "
                                   f"up.partition(pm, rules, mesh, apply=False) and build the model under "
                                   f"keras.distribution.ModelParallel(layout_map=partition.layout_map)")
        for name in out.specs:
            adapter.place(slots[name], out.native[name])
        pm._model.index(fresh=True)
    return out
