"""Selection arguments (pattern, kind) checked once; a tied storage is selected through any of its names."""
from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from .errors import SelectionError, quote

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
