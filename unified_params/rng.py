"""Deterministic random streams: values depend on (seed, canonical name, chunk) only, never on threads.

A tensor is cut into fixed chunks of CHUNK elements; chunk k is filled from its own counter-based
Philox stream keyed by (seed, sha256(name), k), so chunks can be filled in parallel (numpy's
generators release the GIL) and the result is the same on every backend and machine.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

CHUNK = 1 << 20
_pool: ThreadPoolExecutor | None = None


def fresh_seed() -> int:
    """A random seed, for init calls that give none (like the frameworks' unseeded initializers)."""
    return secrets.randbits(63)


@lru_cache(maxsize=4096)
def _name_words(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))


def generator(seed: int, name: str, chunk: int | None = None) -> np.random.Generator:
    """The Generator for (seed, name), or for one chunk of it."""
    key = _name_words(name) if chunk is None else (*_name_words(name), chunk)
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(seed, spawn_key=key)))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="unified_params-init")
    return _pool


def fill_chunks(out: np.ndarray, seed: int, name: str, fill: Callable[[np.random.Generator, np.ndarray], None]) -> None:
    """Call fill(rng_k, chunk_k) on each fixed chunk of out's flat view, in parallel when there are several."""
    flat = out.reshape(-1)
    if flat.size <= CHUNK:
        fill(generator(seed, name, 0), flat)
        return
    starts = range(0, flat.size, CHUNK)
    jobs = [_executor().submit(fill, generator(seed, name, k), flat[s : s + CHUNK]) for k, s in enumerate(starts)]
    for job in jobs:
        job.result()
