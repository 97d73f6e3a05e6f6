"""Deterministic random streams: values depend on (seed, canonical name, chunk) only, never on threads.

A tensor is cut into fixed chunks of CHUNK elements (in C order of its canonical layout); chunk k is
filled from its own PCG64DXSM stream seeded with SeedSequence(seed, spawn_key=(sha256(name), k)),
so chunks can be filled in parallel (numpy releases the GIL) and the result is the same on every
backend and for any number of threads. Custom initializers get generator(seed, name), a Philox
Generator keyed the same way without the chunk. draws.py turns a stream's raw words into values.

Memory: a chunk that lands in one contiguous run of the output (a C-contiguous tensor, a shard split along its
first dimension) is drawn in place. Any other chunk (a strided native buffer, a shard split along a later
dimension, a dtype drawn wider) is drawn into a buffer of one chunk, then copied out and freed. The draws need a few
arrays of draws.SUB elements besides (draws.scratch_bytes). So while it fills, a process holds its shards plus, per
fill thread, at most one chunk and draws.scratch_bytes(dtype); set_threads(1) bounds it to one of each.
"""
from __future__ import annotations

import hashlib
import math
import operator
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial

import numpy as np

from .draws import BLOCK, normal, reach, uniform
from .errors import InitializerError, quote
from .regions import Piece, Region, chunks, copy_piece, put

__all__ = ["BLOCK", "CHUNK", "normal", "reach", "uniform", "stream", "generator", "fill_chunks", "fill_blocks",
           "threads", "set_threads"]

CHUNK = 1 << 18
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_threads: int | None = None


def fresh_seed() -> int:
    """A random seed, for init calls that give none (like the frameworks' unseeded initializers)."""
    return secrets.randbits(63)


def check_seed(seed: object) -> int:
    """seed as a non-negative int, a fresh random one for None; InitializerError naming it otherwise (bools too)."""
    if seed is None:
        return fresh_seed()
    if not isinstance(seed, (bool, np.bool_)):
        try:
            value = operator.index(seed)
        except TypeError:
            value = -1
        if value >= 0:
            return value
    raise InitializerError(f"seed {quote(seed)} is not valid: pass a non-negative integer, "
                           f"or seed=None for a fresh random seed")


@lru_cache(maxsize=4096)
def _name_words(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4))


def generator(seed: int, name: str) -> np.random.Generator:
    """The Generator a custom initializer gets for parameter name (Philox keyed by seed and name)."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(seed, spawn_key=_name_words(name))))


def stream(seed: int, name: str, chunk: int) -> np.random.Generator:
    """The Generator whose raw words fill chunk of parameter name."""
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(seed, spawn_key=(*_name_words(name), chunk))))


def workers() -> int:
    """Threads that fill chunks: set_threads(n), else the CPUs this process may run on."""
    if _threads is not None:
        return _threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def threads() -> int:
    """The number of threads that fill one tensor's chunks (each holds at most one chunk of scratch)."""
    return workers()


def set_threads(n: int | None) -> int:
    """Fill chunks on n threads (None: the CPUs this process may run on); returns the previous number.

    n=1 holds a process to one chunk buffer and the draws' scratch while it fills; values never depend on n.
    """
    global _pool, _threads
    if n is not None and (isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1):
        raise InitializerError(f"threads {quote(n)} is not valid: pass a positive integer, or None for the CPUs "
                               f"this process may run on")
    with _pool_lock:
        previous = workers()
        _threads = None if n is None else int(n)
        if _pool is not None and previous != workers():
            _pool.shutdown(wait=False)
            _pool = None
    return previous


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="unified_params-init")
    return _pool


def _run(jobs: list[Callable[[], None]]) -> None:
    """Run the jobs: on this thread when there is one, else on the fill threads."""
    if len(jobs) == 1 or workers() == 1:
        for job in jobs:
            job()
        return
    for result in [_executor().submit(job) for job in jobs]:
        result.result()


def fill_chunks(out: np.ndarray, seed: int, name: str, fill: Callable[[np.random.Generator, np.ndarray], None],
                region: Region | None = None, work: np.dtype | None = None) -> None:
    """Call fill(rng_k, chunk_k) on each fixed chunk of out's C-order elements, in parallel when there are several.

    chunk_k is 1-D, contiguous and of dtype work (default out's): a view of out when out is C-contiguous and of that
    dtype, else a chunk buffer copied into out's strided memory (a transposed native buffer, say). With a region, out
    is that block of the tensor: only the chunks that meet it are drawn, and only their pieces inside it kept.
    """
    work = np.dtype(work or out.dtype)
    if region is not None and not region.whole:
        fill_blocks([(out, region)], seed, name, fill, work)
        return
    size = out.size
    flat = out.reshape(-1) if out.flags.c_contiguous and out.dtype == work else None

    def job(k: int) -> None:
        start, stop = k * CHUNK, min(size, (k + 1) * CHUNK)
        if flat is not None:
            fill(stream(seed, name, k), flat[start:stop])
            return
        values = np.empty(stop - start, work)
        fill(stream(seed, name, k), values)
        put(out, start, values)

    _run([partial(job, k) for k in range(-(-size // CHUNK))])


def _in_place(targets: list[tuple[np.ndarray, list[Piece]]], size: int, work: np.dtype) -> np.ndarray | None:
    """The block memory a whole chunk of size values is one contiguous run of, if it is (else None)."""
    if len(targets) != 1 or len(targets[0][1]) != 1:
        return None
    out, (piece,) = targets[0]
    if piece.rows * piece.width != size or (piece.rows > 1 and piece.width != piece.stride):
        return None
    if not out.flags.c_contiguous or out.dtype != work:
        return None
    return out.reshape(-1)[piece.dst : piece.dst + size]


def fill_blocks(blocks: list[tuple[np.ndarray, Region]], seed: int, name: str,
                fill: Callable[[np.random.Generator, np.ndarray], None], work: np.dtype | None = None) -> None:
    """fill_chunks for several blocks of one tensor (the shards one process holds): each chunk that meets any block
    is drawn once, whole, and its pieces copied into every block it meets (a split along any dimension costs one
    pass over the chunks the blocks meet, not one per block); a chunk inside one block's contiguous run is drawn there."""
    if not blocks:
        return
    size = math.prod(blocks[0][1].shape)
    work = np.dtype(work or blocks[0][0].dtype)
    todo: dict[int, list[tuple[np.ndarray, list[Piece]]]] = {}
    for out, region in blocks:
        for k, found in chunks(region, CHUNK):
            todo.setdefault(k, []).append((out, found))

    def job(k: int, targets: list[tuple[np.ndarray, list[Piece]]]) -> None:
        start, stop = k * CHUNK, min(size, (k + 1) * CHUNK)
        direct = _in_place(targets, stop - start, work)
        if direct is not None:
            fill(stream(seed, name, k), direct)
            return
        values = np.empty(stop - start, work)
        fill(stream(seed, name, k), values)
        for out, found in targets:
            for piece in found:
                copy_piece(values, start, piece, out)

    _run([partial(job, k, targets) for k, targets in sorted(todo.items())])
