"""Which initializer and seed produced a parameter's current value, claimed only while that value is unchanged.

"Unchanged" is judged by a change token each adapter gives (Adapter.change_token): the native object that holds the
value and a state that changes with every write to it (torch: the tensor and its data_ptr and _version; JAX arrays are
immutable, so the array itself). Origins are kept per native object, not per wrapper, so every wrap of one model
sees them; an object that is gone, or whose state moved on, has none. Writes pm makes itself (set, load, transfer)
disclaim, since they may bypass the framework's counters (numpy views of native memory).
"""
from __future__ import annotations

import weakref
from collections.abc import Hashable
from typing import Any

Token = tuple[Any, Hashable]
"""(the native object that holds a value, its change state): see Adapter.change_token."""

_ORIGINS: dict[int, tuple[weakref.ref, Hashable, str, int | None]] = {}


def _forget(key: int, ref: weakref.ref) -> None:
    entry = _ORIGINS.get(key)
    if entry is not None and entry[0] is ref:
        del _ORIGINS[key]


def claim(token: Token | None, initializer: str, seed: int | None) -> None:
    """The value behind token was just written by initializer (its repr) with seed."""
    if token is None:
        return
    obj, state = token
    key = id(obj)
    _ORIGINS[key] = (weakref.ref(obj, lambda ref, key=key: _forget(key, ref)), state, initializer, seed)


def disclaim(token: Token | None) -> None:
    """The value behind token was written by something else than an initializer."""
    if token is not None:
        _ORIGINS.pop(id(token[0]), None)


def origin(token: Token | None) -> tuple[str, int | None] | None:
    """(initializer repr, seed) that produced the value behind token, if it is unchanged since; else None."""
    if token is None:
        return None
    entry = _ORIGINS.get(id(token[0]))
    if entry is None or entry[0]() is not token[0] or entry[1] != token[1]:
        return None
    return entry[2], entry[3]
