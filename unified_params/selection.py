"""Selectors checked once (pattern, kind, trainable, layer, ndim, native, expect); a tie is selected by any name."""
from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from .adapter import Node, Slot
from .errors import SelectionError, quote, quote_all

T = TypeVar("T")


def compile_pattern(pattern: object) -> re.Pattern[str] | None:
    """The compiled regex of a pattern argument (a string or a compiled string regex); SelectionError otherwise."""
    if pattern is None:
        return None
    if isinstance(pattern, re.Pattern) and isinstance(pattern.pattern, str):
        return pattern
    if not isinstance(pattern, str):
        raise SelectionError(f"pattern {quote(pattern)} is not a string: pass a regular expression such as r'.*weight'")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise SelectionError(f"pattern {quote(pattern)} does not compile: {e}") from e


def kinds(kind: object) -> tuple[str, ...] | None:
    """A kind argument as a tuple of kinds (a string, or a tuple, list or set of strings); SelectionError otherwise."""
    if kind is None:
        return None
    if isinstance(kind, str):
        return (kind,)
    if isinstance(kind, (tuple, list, set, frozenset)) and kind and all(isinstance(k, str) for k in kind):
        return tuple(kind)
    raise SelectionError(f"kind {quote(kind)} is not a kind: pass a string such as 'weight', or a tuple of them")


def by_storage(items: Iterable[T], storage: Callable[[T], Hashable], chosen: Callable[[T], bool]) -> list[T]:
    """The first item of each storage for which chosen holds for any of its items (a tied group, by any alias)."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(storage(item), []).append(item)
    return [group[0] for group in groups.values() if any(chosen(item) for item in group)]


def by_pattern(entries: Mapping[str, T], groups: Mapping[Hashable, list[str]], pattern: re.Pattern[str]) -> list[T]:
    """by_storage for a pattern on the names alone, the regex run over the names in C: the first entry of each tied
    group any of whose names fullmatch it (entries: name -> entry in order; groups: storage -> its names in order)."""
    if len(groups) == len(entries):
        return list(map(entries.__getitem__, filter(pattern.fullmatch, entries)))
    return [entries[names[0]] for names in groups.values() if any(map(pattern.fullmatch, names))]


LAYER_TYPES = ("linear", "conv", "conv_transpose", "embedding", "batch_norm", "layer_norm", "group_norm",
               "instance_norm", "rms_norm", "lstm", "gru", "rnn", "attention", "prelu")
"""The canonical layer types a rule table can declare (docs/layouts.md), accepted by layer=."""


def layer_type(node: Node) -> str | None:
    """The canonical layer type the adapter's rule table gives a node (None: a container or a layer without rule)."""
    return node.layer_type


def _layers(layer: object) -> tuple[frozenset[str], tuple[type, ...]] | None:
    """A layer argument as (canonical types, native classes); SelectionError for anything else."""
    if layer is None:
        return None
    items = tuple(layer) if isinstance(layer, (tuple, list, set, frozenset)) else (layer,)
    names = frozenset(x for x in items if isinstance(x, str))
    classes = tuple(x for x in items if isinstance(x, type))
    wrong = [x for x in items if not isinstance(x, (str, type)) or (isinstance(x, str) and x not in LAYER_TYPES)]
    if wrong or not items:
        raise SelectionError(f"layer {quote(layer)} is not a layer type: pass one of "
                             f"{', '.join(map(repr, LAYER_TYPES))}, a native layer class, or a tuple of them")
    return names, classes


def _ndims(ndim: object) -> tuple[int, ...] | None:
    """An ndim argument as a tuple of ints; SelectionError otherwise."""
    if ndim is None:
        return None
    items = tuple(ndim) if isinstance(ndim, (tuple, list, set, frozenset)) else (ndim,)
    if not items or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in items):
        raise SelectionError(f"ndim {quote(ndim)} is not a number of dimensions: pass an int such as 2, or a tuple")
    return items


def _count(expect: object) -> int | None:
    if expect is None:
        return None
    if not isinstance(expect, int) or isinstance(expect, bool) or expect < 0:
        raise SelectionError(f"expect {quote(expect)} is not a count: pass how many parameters you expect, e.g. 4")
    return expect


def _flag(trainable: object) -> bool | None:
    if trainable is not None and not isinstance(trainable, bool):
        raise SelectionError(f"trainable {quote(trainable)} is not True, False or None")
    return trainable


@dataclass(frozen=True)
class Selector:
    """Every selector of collect/init/freeze/unfreeze, checked once; all given selectors must hold (AND)."""

    pattern: re.Pattern[str] | None = None
    kinds: tuple[str, ...] | None = None
    trainable: bool | None = None
    layers: tuple[frozenset[str], tuple[type, ...]] | None = None
    ndims: tuple[int, ...] | None = None
    native: re.Pattern[str] | None = None
    expect: int | None = None
    given: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, pattern: object = None, kind: object = None, trainable: object = None, layer: object = None,
           ndim: object = None, native: object = None, expect: object = None) -> Selector:
        """Check every argument (SelectionError naming the wrong one) before anything is selected."""
        args = (("pattern", pattern), ("kind", kind), ("trainable", trainable), ("layer", layer), ("ndim", ndim),
                ("native", native))
        given = tuple((k, v) for k, v in args if v is not None)
        return cls(compile_pattern(pattern), kinds(kind), _flag(trainable), _layers(layer), _ndims(ndim),
                   compile_pattern(native), _count(expect), given)

    def describe(self) -> str:
        """The given selectors as the user wrote them, for messages."""
        return " and ".join(f"{k} {_short(v)}" for k, v in self.given) or "the selection"

    def fits(self, name: str, slot: Slot, node: Node | None) -> bool:
        """True when one name of a parameter (its slot, its layer) fits every given selector."""
        if self.pattern is not None and self.pattern.fullmatch(name) is None:
            return False
        if self.kinds is not None and slot.kind not in self.kinds:
            return False
        if self.trainable is not None and slot.trainable != self.trainable:
            return False
        if self.ndims is not None and len(slot.shape) not in self.ndims:
            return False
        if self.native is not None and self.native.fullmatch(slot.native_name) is None:
            return False
        if self.layers is not None:
            types, classes = self.layers
            native = None if node is None else node.native
            return (node is not None and layer_type(node) in types) or (bool(classes) and isinstance(native, classes))
        return True

    @property
    def names_only(self) -> bool:
        """True when a pattern is the only selector besides expect (it looks at names alone)."""
        return self.pattern is not None and self.kinds is None and self.trainable is None and self.layers is None \
            and self.ndims is None and self.native is None

    def check_count(self, names: list[str], where: str) -> None:
        """SelectionError when expect is given and the number of selected parameters differs."""
        if self.expect is not None and len(names) != self.expect:
            raise SelectionError(
                f"{self.describe()} selects {len(names)} parameters in {where}, not expect={self.expect}: change the "
                f"selection or expect; selected: {quote_all(names) if names else 'none'}")


def _short(value: object) -> str:
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, (tuple, list)) and any(isinstance(v, type) for v in value):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return quote(value.pattern if isinstance(value, re.Pattern) else value)


def nodes(root: Node) -> dict[tuple[str, ...], Node]:
    """Every node of a tree by its path of keys (the path an index entry carries)."""
    out: dict[tuple[str, ...], Node] = {}
    stack = [((), root)]
    while stack:
        path, node = stack.pop()
        out[path] = node
        stack.extend(((*path, c.key), c) for c in node.children)
    return out
