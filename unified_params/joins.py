"""Joins: canonical tensors made of several native arrays, or of parts of one (gates, packed projections, biases).

A rule declares `Join`s: one canonical tensor of the ruled layer = the concatenation of `Part`s (existing slots of
the layer or its descendants, found by canonical path) and `Zero` blocks (canonical values the framework has no
storage for: folded into another tensor, or refused when non-zero). `apply` turns a discovered tree into one where
each join is one `Joined` slot on the ruled layer; `JoiningAdapter` serves joined slots by reading and writing
their parts through the adapter, so adapters never see a joined slot. See docs/layouts.md (bias policy).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .adapter import Adapter, Node, Slot
from .dtypes import resolve
from .errors import UnsupportedError, quote
from .layout import Layout, Shape, Unrepresentable


@dataclass(frozen=True)
class Part:
    """An existing slot, by canonical path relative to the ruled layer: its own layout first, then `take` (an index
    on the first axis), then `layout` (towards canonical)."""

    path: str
    layout: Layout | None = None
    take: int | None = None


@dataclass(frozen=True)
class Zero:
    """A canonical block with no native storage: reads as zeros; written values are added into canonical tensor
    into[0] of the same layer at offset into[1] along the join axis, or refused (with `reason`) when into is None."""

    shape: Shape
    into: tuple[str, int] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Join:
    """One canonical tensor of the ruled layer: its parts concatenated along canonical `axis`."""

    name: str
    parts: tuple[Part | Zero, ...]
    axis: int = 0
    kind: str = ""
    trainable: bool = True


@dataclass
class Bound:
    """A part of one joined slot as found in the tree: the slot and the nodes below the ruled layer down to its owner
    (empty for the layer's own slots); for a Zero, the slot it folds into (None when it refuses)."""

    part: Part | Zero
    slot: Slot | None = None
    nodes: tuple[Node, ...] = ()
    into: Slot | None = None

    def shape(self) -> Shape:
        if isinstance(self.part, Zero):
            return tuple(self.part.shape)
        shape = self.slot.shape if self.part.take is None else self.slot.shape[1:]
        layout = self.part.layout
        return tuple(shape) if layout is None else layout.canonical_shape(tuple(shape))


@dataclass
class Joined(Slot):
    """A canonical tensor made of parts; `ref` is the Join, `bounds` its parts as found."""

    bounds: list[Bound] = field(default_factory=list)
    axis: int = 0
    layer: str = ""

    @property
    def numel(self) -> int:
        """Native elements only: a Zero block has no storage."""
        seen, total = set(), 0
        for b in self.bounds:
            if b.slot is not None and (b.slot.storage, b.part.take) not in seen:
                seen.add((b.slot.storage, b.part.take))
                total += math.prod(b.slot.shape if b.part.take is None else b.slot.shape[1:])
        return total

    def blocks(self) -> Iterator[tuple[Bound, slice]]:
        """Each part with its index range along the join axis."""
        start = 0
        for b in self.bounds:
            n = b.shape()[self.axis]
            yield b, slice(start, start + n)
            start += n


Owned = Union[Slot, Joined]


def _along(ndim: int, axis: int, rows: slice) -> tuple[slice, ...]:
    """The index that selects rows on one axis of an ndim array and everything on the others."""
    index = [slice(None)] * ndim
    index[axis] = rows
    return tuple(index)


def _concat_shape(shapes: list[Shape], axis: int) -> Shape:
    first = list(shapes[0])
    sizes = [s[axis] for s in shapes]
    first[axis] = None if None in sizes else sum(sizes)
    return tuple(first)


def _found(node: Node, prefix: str, nodes: tuple[Node, ...]) -> Iterator[tuple[str, Slot, tuple[Node, ...]]]:
    for slot in node.slots:
        yield prefix + slot.leaf, slot, nodes
    for child in node.children:
        yield from _found(child, f"{prefix}{child.key}.", (*nodes, child))


def _prune(node: Node, consumed: set[int]) -> Node | None:
    """node without the consumed slots; None when nothing is left of it."""
    children = [c for c in (_prune(child, consumed) for child in node.children) if c is not None]
    slots = [s for s in node.slots if id(s) not in consumed]
    if not slots and not children:
        return None
    return dataclasses.replace(node, slots=slots, children=children)


def _join_layer(node: Node, path: str) -> Node:
    rule = node.rule
    found = {name: (slot, nodes) for name, slot, nodes in _found(node, "", ())}
    if any(isinstance(p, Part) and p.path not in found for j in rule.joins for p in j.parts):
        return node
    consumed: set[int] = set()
    joined: list[Joined] = []
    for join in rule.joins:
        bounds = []
        for part in join.parts:
            if isinstance(part, Part):
                slot, nodes = found[part.path]
                consumed.add(id(slot))
                bounds.append(Bound(part, slot, nodes))
            else:
                bounds.append(Bound(part))
        joined.append(_joined(join, bounds, path))
    by_name = {s.leaf: s for s in joined}
    own = [s for s in node.slots if id(s) not in consumed]
    by_name.update({s.leaf: s for s in own if s.leaf not in by_name})
    for slot in joined:
        for b in slot.bounds:
            if isinstance(b.part, Zero) and b.part.into is not None:
                b.into = by_name[b.part.into[0]]
        targets = [b.into for b in slot.bounds if b.into is not None]
        if targets and all(b.slot is None for b in slot.bounds):
            slot.trainable = all(t.trainable for t in targets)
    children = [c for c in (_prune(child, consumed) for child in node.children) if c is not None]
    return dataclasses.replace(node, slots=own + joined, children=children)


def _joined(join: Join, bounds: list[Bound], layer: str) -> Joined:
    real = [b for b in bounds if b.slot is not None]
    shape = _concat_shape([b.shape() for b in bounds], join.axis)
    native = "+".join(b.slot.native_name for b in real)
    if not native:
        into = next((b.part.into for b in bounds if isinstance(b.part, Zero) and b.part.into), None)
        native = f"(none: folded into {into[0]})" if into else "(none: not stored)"
    return Joined(
        join.name, native, join, ("joined", tuple((b.slot.storage, b.part.take) for b in real) or (layer,), join.name),
        shape, real[0].slot.dtype if real else "float32",
        trainable=join.trainable and all(b.slot.trainable for b in real), kind=join.kind or join.name,
        initialized=all(b.slot.initialized for b in real) and None not in shape, layout=None,
        bounds=bounds, axis=join.axis, layer=layer)


def apply(root: Node, path: str = "") -> Node:
    """The tree with every join of every ruled layer made one Joined slot; nodes without joins below are reused."""
    rule = root.rule
    if rule is not None and rule.joins:
        root = _join_layer(root, path)
    children = [apply(child, f"{path}.{child.key}" if path else child.key) for child in root.children]
    if all(a is b for a, b in zip(children, root.children)):
        return root
    return dataclasses.replace(root, children=children)


class _Writes:
    """Native values pending for one write: joined writes become one write_many of native slots."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner
        self.pending: dict[int, tuple[Slot, np.ndarray]] = {}

    def current(self, slot: Slot) -> np.ndarray:
        held = self.pending.get(id(slot))
        return held[1] if held is not None else self.inner.read(slot)

    def value(self, slot: Owned) -> np.ndarray:
        if not isinstance(slot, Joined):
            return self.current(slot)
        return _assemble(slot, lambda b: _part_value(b, self.current(b.slot)))

    def put(self, slot: Owned, value: np.ndarray) -> None:
        if not isinstance(slot, Joined):
            self.pending[id(slot)] = (slot, np.asarray(value, resolve(slot.dtype)))
            return
        for b, rows in slot.blocks():
            block = value[_along(value.ndim, slot.axis, rows)]
            if isinstance(b.part, Zero):
                self._zero(slot, b, block)
                continue
            try:
                native = block if b.part.layout is None else b.part.layout.from_canonical(block)
            except Unrepresentable as why:
                raise UnsupportedError(f"layer {quote(slot.layer or '(root)')} cannot hold these values of "
                                       f"{quote(slot.leaf)}: {why}; nothing was written") from None
            if b.part.take is not None:
                whole = np.array(self.current(b.slot), copy=True)
                whole[b.part.take] = native
                native = whole
            self.pending[id(b.slot)] = (b.slot, np.ascontiguousarray(native, resolve(b.slot.dtype)))

    def _zero(self, slot: Joined, b: Bound, block: np.ndarray) -> None:
        if not np.any(block):
            return
        if b.into is None:
            why = b.part.reason or "the framework stores no such values"
            raise UnsupportedError(f"layer {quote(slot.layer or '(root)')} cannot hold these values of "
                                   f"{quote(slot.leaf)}: {why}; that block must be 0 here (nothing was written)")
        target = np.array(self.value(b.into), copy=True)
        start = b.part.into[1]
        target[_along(target.ndim, slot.axis, slice(start, start + block.shape[slot.axis]))] += block
        self.put(b.into, target)

    def flush(self) -> None:
        if self.pending:
            self.inner.write_many(list(self.pending.values()))


def _part_value(b: Bound, value: np.ndarray) -> np.ndarray:
    if b.part.take is not None:
        value = value[b.part.take]
    return value if b.part.layout is None else b.part.layout.to_canonical(value)


def _assemble(slot: Joined, value_of: Callable[[Bound], np.ndarray | None]) -> np.ndarray | None:
    arrays = []
    for b in slot.bounds:
        if isinstance(b.part, Zero):
            arrays.append(np.zeros(b.shape(), resolve(slot.dtype)))
        else:
            value = value_of(b)
            if value is None:
                return None
            arrays.append(value)
    return np.ascontiguousarray(np.concatenate(arrays, axis=slot.axis))


def _folds(slot: Owned) -> bool:
    return isinstance(slot, Joined) and any(b.into is not None for b in slot.bounds)


class JoiningAdapter:
    """The adapter as the core uses it: joined slots are served from their parts, everything else goes through."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def read(self, slot: Owned) -> np.ndarray:
        if isinstance(slot, Joined):
            return _assemble(slot, lambda b: _part_value(b, self.inner.read(b.slot)))
        return self.inner.read(slot)

    def view(self, slot: Owned) -> np.ndarray:
        return self.read(slot) if isinstance(slot, Joined) else self.inner.view(slot)

    def write(self, slot: Owned, value: np.ndarray) -> None:
        if isinstance(slot, Joined):
            self.write_many([(slot, value)])
        else:
            self.inner.write(slot, value)

    def fill(self, slot: Owned, fn: Callable[[np.ndarray], None]) -> None:
        if not isinstance(slot, Joined):
            self.inner.fill(slot, fn)
            return
        out = np.empty(slot.shape, resolve(slot.dtype))
        fn(out)
        self.write_many([(slot, out)])

    def write_many(self, pairs: Sequence[tuple[Owned, np.ndarray]]) -> None:
        if not any(isinstance(s, Joined) for s, _ in pairs):
            self.inner.write_many(pairs)
            return
        writes = _Writes(self.inner)
        for slot, value in sorted(pairs, key=lambda pair: _folds(pair[0])):
            writes.put(slot, value)
        writes.flush()

    def _grad(self, slot: Joined, get: Callable[[Slot], np.ndarray | None]) -> np.ndarray | None:
        def value_of(b: Bound) -> np.ndarray | None:
            g = get(b.slot)
            return None if g is None else _part_value(b, g)

        grad = _assemble(slot, value_of)
        if grad is None:
            return None
        for b, rows in slot.blocks():
            if isinstance(b.part, Zero) and b.into is not None:
                target = self._grad(b.into, get) if isinstance(b.into, Joined) else get(b.into)
                if target is None:
                    return None
                start = b.part.into[1]
                source = slice(start, start + rows.stop - rows.start)
                grad[_along(grad.ndim, slot.axis, rows)] = target[_along(grad.ndim, slot.axis, source)]
        return grad

    def grad(self, slot: Owned) -> np.ndarray | None:
        return self._grad(slot, self.inner.grad) if isinstance(slot, Joined) else self.inner.grad(slot)

    def pass_grad(self, slot: Owned) -> np.ndarray | None:
        return self._grad(slot, self.inner.pass_grad) if isinstance(slot, Joined) else self.inner.pass_grad(slot)

    def native(self, slot: Owned) -> Any:
        if isinstance(slot, Joined):
            return tuple(self.inner.native(b.slot) for b in slot.bounds if b.slot is not None)
        return self.inner.native(slot)

    def current(self, stamp: Any, nodes: Sequence[Node], slot: Owned, attributes: bool = True) -> bool:
        if isinstance(slot, Joined):
            return all(self.inner.current(stamp, (*nodes, *b.nodes), b.slot, attributes)
                       for b in slot.bounds if b.slot is not None)
        return self.inner.current(stamp, nodes, slot, attributes)

    def set_trainable(self, owner: Any, slot: Owned, trainable: bool) -> bool:
        if not isinstance(slot, Joined):
            return self.inner.set_trainable(owner, slot, trainable)
        changed = [self.inner.set_trainable(b.nodes[-1].native if b.nodes else owner, b.slot, trainable)
                   for b in slot.bounds if b.slot is not None]
        return any(changed)

    def share(self, owner: Any, slot: Owned, source: Owned) -> None:
        if isinstance(slot, Joined) or isinstance(source, Joined):
            joined = slot if isinstance(slot, Joined) else source
            raise UnsupportedError(f"{quote(joined.leaf)} is made of several native arrays ({joined.native_name}): "
                                   f"it cannot share another tensor's storage; tie the layers' native arrays instead")
        self.inner.share(owner, slot, source)

