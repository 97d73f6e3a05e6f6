"""Which layer types a backend's rule table supports: the classes mapped to each type, or why there are none.

A configuration-dependent entry (a function of the layer) declares its layer type with `@typed("conv")`, so the
table can be listed without a layer. A rule module may name the layer types its framework lacks in `MISSING`
(layer type -> reason); `unified-params compare` shows the result for every installed backend.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .rules import Entry, Rule, RuleTable
from .selection import LAYER_TYPES

F = TypeVar("F", bound=Callable[..., Any])


def typed(*layer_types: str) -> Callable[[F], F]:
    """Mark a rule function with the layer type its rules have (whatever the configuration), or the types a wrapper's
    rules can have (a Keras `RNN` is `lstm`, `gru` or `rnn` by its cell)."""
    def mark(fn: F) -> F:
        fn.layer_type = layer_types[0]  # type: ignore[attr-defined]
        fn.layer_types = layer_types  # type: ignore[attr-defined]
        return fn

    return mark


def entry_type(entry: Entry) -> str | None:
    """The layer type of a table entry: a Rule's, a marked function's; None for no rule or an unmarked function."""
    return entry.layer_type if isinstance(entry, Rule) else getattr(entry, "layer_type", None)


def entry_types(entry: Entry) -> tuple[str, ...]:
    """Every layer type the rules of a table entry can have (none for no rule or an unmarked function)."""
    if isinstance(entry, Rule):
        return (entry.layer_type,)
    return tuple(getattr(entry, "layer_types", ()))


def supported(table: RuleTable, missing: Mapping[str, str] | None = None) -> dict[str, str]:
    """Layer type -> the native class names the table maps to it, or `not supported: <reason>`, or `no rule`."""
    classes: dict[str, list[str]] = {}
    for cls, entry in table.table.items():
        for layer_type in entry_types(entry):
            classes.setdefault(layer_type, []).append(cls.__name__)
    types = [*LAYER_TYPES, *sorted(t for t in classes if t not in LAYER_TYPES)]
    reasons = missing or {}
    return {t: ", ".join(sorted(set(classes[t]))) if t in classes else
            f"not supported: {reasons[t]}" if t in reasons else "no rule" for t in types}
