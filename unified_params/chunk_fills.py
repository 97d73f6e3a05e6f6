"""What one random chunk of a built-in initializer gets: written in place, or handed out in runs.

A chunk that is one contiguous run of the output is written in place (`into`). Any other chunk (a strided
native buffer, a block of a shard, a dtype drawn wider) gets the same values as `runs`, each a few hundred KiB of
scratch that the caller copies to its place, so no chunk is ever held whole (see draws.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from . import draws

Run = tuple["int | np.ndarray", np.ndarray]


@dataclass(frozen=True)
class ChunkFill:
    """into(g, z, sub) writes chunk z in place; runs(g, n, dtype, sub) yields (where, values) for the same values:
    `where` is the offset of a contiguous run in the chunk, or an array of offsets whose values replace earlier ones."""

    into: Callable[[np.random.Generator, np.ndarray, int], None]
    runs: Callable[[np.random.Generator, int, np.dtype, int], Iterator[Run]]


def normal(mean: float, std: float) -> ChunkFill:
    """Normal(mean, std) values (draws.normal)."""
    return ChunkFill(lambda g, z, sub: draws.normal(g, z, mean, std, sub),
                     lambda g, n, dtype, sub: draws.normal_runs(g, n, dtype, mean, std, sub))


def uniform(low: float, high: float) -> ChunkFill:
    """Values in [low, high) (draws.uniform)."""
    return ChunkFill(lambda g, z, sub: draws.uniform(g, z, low, high, sub),
                     lambda g, n, dtype, sub: draws.uniform_runs(g, n, dtype, low, high, sub))


def truncated(mean: float, std: float, lo: float, hi: float) -> ChunkFill:
    """Normal draws; those outside [lo, hi] are redrawn from the chunk's own stream, in the order of their offsets."""

    def outside(z: np.ndarray) -> np.ndarray:
        return (z < lo) | (z > hi)

    def redraw(g: np.random.Generator, count: int, dtype: np.dtype, sub: int) -> np.ndarray:
        """The final values of the count draws found outside, in offset order (redrawn until inside)."""
        final = np.empty(count, dtype)
        todo = np.arange(count)
        while todo.size:
            values = np.empty(todo.size, dtype)
            draws.normal(g, values, mean, std, sub)
            final[todo] = values
            todo = todo[outside(values)]
        return final

    def into(g: np.random.Generator, z: np.ndarray, sub: int) -> None:
        draws.normal(g, z, mean, std, sub)
        bad = np.concatenate([np.flatnonzero(outside(z[j : j + sub])) + j for j in range(0, z.size, sub)])
        z[bad] = redraw(g, bad.size, z.dtype, sub)

    def runs(g: np.random.Generator, n: int, dtype: np.dtype, sub: int) -> Iterator[Run]:
        found = []
        low, high = np.empty(min(n, sub), bool), np.empty(min(n, sub), bool)
        for offset, values in draws.normal_runs(g, n, dtype, mean, std, sub):
            m = values.size
            np.less(values, lo, out=low[:m])
            np.greater(values, hi, out=high[:m])
            low[:m] |= high[:m]
            found.append(np.flatnonzero(low[:m]).astype(np.int32) + np.int32(offset))
            yield offset, values
        del low, high, values
        bad = np.sort(np.concatenate(found))
        if bad.size:
            yield bad, redraw(g, bad.size, np.dtype(dtype), sub)

    return ChunkFill(into, runs)
