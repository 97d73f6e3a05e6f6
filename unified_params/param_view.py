"""ParamView: one parameter of a wrapped model, read and written in canonical layout through the live index."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import errors
from .atomic import hold_interrupts
from .fit import fit_one
from .index import Entry
from .joins import Joined
from .model_state import locked
from .sharding import Sharding

if TYPE_CHECKING:
    from .api import ParamAPI


class ParamView:
    """One parameter: its names, shape and kind, and its value, gradient and native object."""

    __slots__ = ("_api", "_full", "name")

    def __init__(self, api: ParamAPI, entry: Entry) -> None:
        self._api, self._full, self.name = api, entry.name, api._rel(entry.name)

    def _entry(self) -> Entry:
        entry = self._api._model.entry(self._full)
        if entry is None:
            raise errors.gone(self._full, self._api._model.index(attributes=False).entries)
        return entry

    @property
    def full_name(self) -> str:
        """The canonical name from the wrapped model's root."""
        return self._full

    @property
    def native_name(self) -> str:
        return self._entry().slot.native_name

    @property
    def shape(self) -> tuple[int | None, ...]:
        return self._entry().slot.shape

    @property
    def dtype(self) -> str:
        return self._entry().slot.dtype

    @property
    def kind(self) -> str:
        return self._entry().slot.kind

    @property
    def trainable(self) -> bool:
        return self._entry().slot.trainable

    @property
    def initialized(self) -> bool:
        return bool(self._entry().slot.initialized)

    @property
    def layer_type(self) -> str | None:
        """The canonical type of the layer that holds this parameter (`linear`, `conv`, ...), None without a rule."""
        node = self._api._model.index().root
        for key in self._entry().path:
            node = next(c for c in node.children if c.key == key)
        return getattr(node, "layer_type", None)

    @property
    def sharding(self) -> Sharding | None:
        """Where the values live when split over devices: mesh axes, the axes each canonical dimension is split over,
        this process's shards (device and block); None for a parameter on one device."""
        slot = self._entry().slot
        return None if isinstance(slot, Joined) else self._api._model.adapter.sharding(slot)

    @property
    def size(self) -> int | None:
        shape = self.shape
        return None if None in shape else math.prod(shape)

    @property
    def tied_with(self) -> list[str]:
        """The other names that share this parameter's storage."""
        entry = self._entry()
        group = self._api._model.index(attributes=False).groups[entry.slot.storage]
        return [self._api._rel(n) for n in group if n != self._full]

    @property
    def native(self) -> Any:
        """The framework's own parameter object (it may exist before its shape is known)."""
        return self._api._model.adapter.native(self._entry().slot)

    def _ready(self) -> Entry:
        entry = self._entry()
        if not entry.slot.initialized:
            unallocated = self._full in self._api._model.index().unallocated
            raise errors.deferred(self._full, entry.slot.shape if unallocated else None)
        return entry

    def numpy(self) -> np.ndarray:
        """A copy of the value, in canonical layout."""
        return self._api._model.adapter.read(self._ready().slot)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    @property
    def grad(self) -> np.ndarray | None:
        """The gradient in canonical layout, or None until one has been computed."""
        return self._api._model.adapter.grad(self._ready().slot)

    @locked
    def set(self, value: Any) -> None:
        """Write a value in canonical layout; the shape must match and the dtype cast be safe."""
        slot = self._ready().slot
        value = fit_one(value, self._full, slot.shape, slot.dtype, "set()")
        with hold_interrupts():
            self._api._model.adapter.write(slot, value)
            self._api._model.disclaim([slot])

    @locked
    def update(self, fn: Callable[[np.ndarray], Any]) -> None:
        """Replace the value with fn(old): fn may return a new array or edit the copy it gets and return it."""
        old = self.numpy()
        new = fn(old)
        self.set(old if new is None else new)

    def __repr__(self) -> str:
        state = "" if self.initialized else ", deferred"
        return f"<param {self.name} {self.shape} {self.dtype} {self.kind}{state}>"
