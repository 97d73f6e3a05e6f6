"""Comparing two models' parameters (or state dicts) by canonical name."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fit import as_array
from .wrapping import wrap


@dataclass
class Comparison:
    """The result of compare(): per name the largest absolute difference, and whether all are close."""

    equal: bool
    max_abs: dict[str, float] = field(default_factory=dict)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.equal

    def __str__(self) -> str:
        worst = max(self.max_abs.values(), default=0.0)
        parts = [f"{'equal' if self.equal else 'different'}: {len(self.max_abs)} compared, max abs diff {worst:.3g}"]
        for label, names in (("only in a", self.only_in_a), ("only in b", self.only_in_b), ("shape mismatch", self.shape_mismatch)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts)


def compare(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> Comparison:
    """Compare two models (or views, or state dicts) by canonical name."""
    def state(x: Any) -> dict[str, np.ndarray]:
        if isinstance(x, dict):
            return {k: as_array(v) for k, v in x.items()}
        return wrap(x).state_dict()

    sa, sb = state(a), state(b)
    result = Comparison(True, only_in_a=[n for n in sa if n not in sb], only_in_b=[n for n in sb if n not in sa])
    for name in (n for n in sa if n in sb):
        x, y = sa[name], sb[name]
        if x.shape != y.shape:
            result.shape_mismatch.append(f"{name} {x.shape} vs {y.shape}")
            continue
        diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
        result.max_abs[name] = float(diff.max()) if diff.size else 0.0
        if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            result.equal = False
    if result.only_in_a or result.only_in_b or result.shape_mismatch:
        result.equal = False
    return result
