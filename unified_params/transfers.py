"""Copying parameters between models, across frameworks: by canonical name, renamed, or by canonical order."""
from __future__ import annotations

from typing import Any

from . import errors
from .adapter import is_counter
from .api import ParamAPI
from .matching import By, Match, Param, Rename, by_name, by_order, counts, rename_state
from .wrapping import wrap


def _params(pm: ParamAPI) -> list[Param]:
    """What pairing sees: every parameter but step counters (torch's num_batches_tracked has no counterpart)."""
    return [(name, tuple(p.shape), getattr(p, "layer_type", None)) for name, p in pm.collect().items()
            if not is_counter(name)]


def match(src: Any, dst: Any, rename: Rename | None = None, by: By = "name") -> Match:
    """How src's parameters pair with dst's, as a table to inspect before anything is written.

    by="name": canonical names after the rename rules ([(regex, replacement), ...], first full match wins);
    by="order": canonical order, while shapes and layer types agree (the first disagreement is reported).
    """
    a, b = wrap(src), wrap(dst)
    if by == "order":
        if rename:
            raise errors.SelectionError("rename= pairs by name; by='order' ignores names: give one or the other")
        return by_order(_params(a), _params(b))
    if by != "name":
        raise errors.SelectionError(f"by must be 'name' or 'order', got {by!r}")
    aliases = {alias: group[0] for group in b.tied() for alias in group[1:]}
    return by_name(_params(a), _params(b), aliases, rename)


def transfer(src: Any, dst: Any, strict: bool = True, rename: Rename | None = None, by: By = "name") -> ParamAPI:
    """Copy every parameter of src into dst (across frameworks); returns dst's view.

    Pairs as match() does. The source is read through zero-copy views where its framework allows; the
    destination checks every name, shape and dtype before anything is written.
    """
    src_pm, dst_pm = wrap(src), wrap(dst)
    if src_pm.backend != dst_pm.backend:
        refused = src_pm._target()[0].native_only
        if refused:
            first = next(iter(refused))
            raise errors.UnsupportedError(f"{refused[first]}; {errors.quote_all(refused)} cannot go to "
                                          f"{dst_pm.backend} (nothing was written)")
    state = src_pm.state_dict(copy=False)
    if by == "name":
        return dst_pm.load_state_dict(rename_state(state, rename), strict=strict)
    found = match(src_pm, dst_pm, rename, by)
    problem = found.disagreement or (None if found or not strict else counts(found))
    if problem:
        raise errors.ShapeMismatchError(
            f"the models do not pair by order: {problem}; nothing was written. See up.match(src, dst, by='order')")
    return dst_pm.load_state_dict({p.target: state[p.source] for p in found.pairs}, strict=strict)
