"""Pairing the parameters of two models whose names differ: rename rules, and pairing by canonical order."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from . import errors

Rename = Sequence[tuple[str, str]]
By = Literal["name", "order"]


def _rules(rename: Rename) -> list[tuple[re.Pattern, str]]:
    if isinstance(rename, (str, bytes)) or not all(isinstance(r, (tuple, list)) and len(r) == 2 for r in rename):
        raise errors.SelectionError(f"rename must be a list of (regex, replacement) pairs, got {rename!r}")
    out = []
    for pattern, repl in rename:
        if not isinstance(pattern, str) or not isinstance(repl, str):
            raise errors.SelectionError(f"rename rule {(pattern, repl)!r}: the regex and the replacement must be str")
        try:
            out.append((re.compile(pattern), repl))
        except re.error as e:
            raise errors.SelectionError(f"rename rule {pattern!r} does not compile: {e}") from e
    return out


def renamed(names: Sequence[str], rename: Rename | None) -> dict[str, str]:
    """name -> new name: the first rule whose regex fully matches a name rewrites it (re.Match.expand).

    Every rule must match at least one name, and no two names may end up with the same new name.
    """
    if not rename:
        return {n: n for n in names}
    rules = _rules(rename)
    used = [False] * len(rules)
    out: dict[str, str] = {}
    for name in names:
        out[name] = name
        for i, (regex, repl) in enumerate(rules):
            found = regex.fullmatch(name)
            if found:
                try:
                    out[name] = found.expand(repl)
                except (re.error, IndexError) as e:
                    raise errors.SelectionError(f"rename rule {regex.pattern!r} -> {repl!r} on {name!r}: {e}") from e
                used[i] = True
                break
    unused = [rules[i][0].pattern for i, u in enumerate(used) if not u]
    if unused:
        raise errors.SelectionError(
            f"rename rule(s) {', '.join(map(repr, unused))} match no name; names are: {errors.short_list(list(names))}")
    sources: dict[str, list[str]] = {}
    for name, new in out.items():
        sources.setdefault(new, []).append(name)
    clashes = [f"{' and '.join(map(repr, olds))} -> {new!r}" for new, olds in sources.items() if len(olds) > 1]
    if clashes:
        raise errors.SelectionError(f"rename is not one-to-one: {'; '.join(clashes)}")
    return out


def rename_state(state: Mapping[str, Any], rename: Rename | None) -> dict[str, Any]:
    """state with its keys rewritten by the rename rules (unchanged without rules)."""
    if not rename:
        return dict(state)
    new = renamed(list(state), rename)
    return {new[k]: v for k, v in state.items()}


def library_renamed(state: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """state with the model's names for tensors a framework library saves under its own (Adapter.checkpoint_names);
    a mapped name the state also holds as it is keeps both apart (the strict check then reports them)."""
    if not names:
        return dict(state)
    taken = [names[k] for k in state if k in names and names[k] in state]
    return {(k if names.get(k) in taken else names.get(k, k)): v for k, v in state.items()}


@dataclass
class Pair:
    """One source parameter and the target parameter it goes to."""

    source: str
    target: str
    source_shape: tuple
    target_shape: tuple
    source_layer: str | None = None
    target_layer: str | None = None


@dataclass
class Match:
    """The pairing of two models' parameters, for inspection before anything is written."""

    by: str
    pairs: list[Pair] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    disagreement: str | None = None

    def __bool__(self) -> bool:
        return not (self.missing or self.unexpected or self.disagreement)

    def mapping(self) -> dict[str, str]:
        """source name -> target name."""
        return {p.source: p.target for p in self.pairs}

    def rows(self) -> list[list[Any]]:
        return [[p.source, p.target, p.source_shape, p.target_shape, p.source_layer or "", p.target_layer or ""]
                for p in self.pairs]

    def __str__(self) -> str:
        from tabulate import tabulate

        table = tabulate(self.rows(), headers=["source", "target", "source shape", "target shape", "source layer",
                                               "target layer"])
        notes = [f"{label}: {errors.short_list(names)}" for label, names in
                 (("only in the source", self.unexpected), ("only in the target", self.missing)) if names]
        if self.disagreement:
            notes.append(f"first disagreement: {self.disagreement}")
        return "\n".join([f"pairing by {self.by}: {len(self.pairs)} pairs", table, *notes])


Param = tuple[str, tuple, "str | None"]
"""(canonical name, shape, canonical layer type or None) of one parameter."""


def by_name(source: Sequence[Param], target: Sequence[Param], aliases: Mapping[str, str],
            rename: Rename | None = None) -> Match:
    """Pair source with target by canonical name after the rename rules; a target alias counts as its primary."""
    new = renamed([n for n, _, _ in source], rename)
    found = {n: (shape, layer) for n, shape, layer in target}
    result = Match("name")
    for name, shape, layer in source:
        goal = aliases.get(new[name], new[name])
        if goal not in found:
            result.unexpected.append(name if goal == name else f"{name} (renamed {goal})")
            continue
        result.pairs.append(Pair(name, goal, shape, found[goal][0], layer, found[goal][1]))
    paired = {p.target for p in result.pairs}
    result.missing = [n for n, _, _ in target if n not in paired]
    bad = next((p for p in result.pairs if p.source_shape != p.target_shape), None)
    if bad is not None:
        result.disagreement = f"{bad.source!r} {bad.source_shape} vs {bad.target!r} {bad.target_shape}"
    return result


def by_order(source: Sequence[Param], target: Sequence[Param]) -> Match:
    """Pair source with target position by position while shapes and (known) layer types agree."""
    result = Match("order")
    for (sn, ss, sl), (tn, ts, tl) in zip(source, target):
        if ss != ts or (sl and tl and sl != tl):
            what = f"shape {ss} vs {ts}" if ss != ts else f"layer type {sl} vs {tl}"
            result.disagreement = f"position {len(result.pairs)}: {sn!r} vs {tn!r}: {what}"
            break
        result.pairs.append(Pair(sn, tn, ss, ts, sl, tl))
    if result.disagreement is None and len(source) != len(target):
        n = len(result.pairs)
        result.unexpected, result.missing = [s[0] for s in source[n:]], [t[0] for t in target[n:]]
    return result


def counts(found: Match) -> str:
    """How many parameters each side has, for an error about a pairing that does not cover both."""
    return (f"the source has {len(found.pairs) + len(found.unexpected)} parameters, "
            f"the target {len(found.pairs) + len(found.missing)}")
