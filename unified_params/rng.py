"""Deterministic random streams: values depend on (seed, canonical name, chunk) only, never on threads.

A tensor is cut into fixed chunks of CHUNK elements (in C order of its canonical layout); chunk k is
filled from its own PCG64DXSM stream seeded with SeedSequence(seed, spawn_key=(sha256(name), k)),
so chunks can be filled in parallel (numpy releases the GIL) and the result is the same on every
backend and for any number of threads. Custom initializers get generator(seed, name), a Philox
Generator keyed the same way without the chunk. draws.py turns a stream's raw words into values.

Memory: a chunk that lands in one contiguous run of the output (a C-contiguous tensor, a shard split along its
first dimension) is drawn in place. Any other chunk (a strided native buffer, a shard split along a later
dimension, a dtype drawn wider) is drawn as runs of a few hundred KiB, each copied to its place: no chunk is held
whole. Shards are filled on one thread, whose scratch (draws.scratch_bytes) stays under one chunk of float32, so a
process holds its shards plus less than one chunk; with small pieces one thread is nearly as fast as two (they stay
in cache, and two threads of them lose to the GIL). Unsharded tensors are filled on every CPU in wide pieces,
2.5 MiB of scratch per thread. set_threads(n) sets both.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import operator
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import lru_cache, partial
from itertools import chain, groupby, islice
from operator import itemgetter

import numpy as np

from . import draws
from .chunk_fills import ChunkFill
from .draws import BLOCK, normal, reach, uniform
from .errors import InitializerError, quote
from .regions import Piece, Region, chunks, copy_piece, pieces, scatter

__all__ = ["BLOCK", "CHUNK", "normal", "reach", "uniform", "stream", "generator", "fill_chunks", "fill_blocks",
           "threads", "set_threads", "cpus"]

CHUNK = 1 << 18
Target = tuple[np.ndarray, Region, list[Piece]]
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


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def workers(sharded: bool = False) -> int:
    """Threads that fill chunks: set_threads(n), else one for shards (their memory bound), the CPUs otherwise."""
    if _threads is not None:
        return _threads
    return 1 if sharded else cpus()


def threads() -> int:
    """The number of threads that fill an unsharded tensor's chunks (each with its own draws' scratch)."""
    return workers()


def piece(threads: int) -> int:
    """The values the draws transform at a time: small on one thread (cache, memory), wide on several (the GIL)."""
    return draws.SUB if threads == 1 else draws.WIDE


def set_threads(n: int | None) -> int:
    """Fill chunks on n threads (None: the default, the CPUs, and one for shards); returns the previous number.

    One thread holds a process to its arrays plus draws.scratch_bytes() (under one chunk) while it fills; n threads
    hold n x draws.scratch_bytes(dtype, draws.WIDE) (2.5 MiB of float32 each). Values never depend on n.
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


def _run(jobs: Iterable[Callable[[], None]], threads: int) -> None:
    """Run the jobs in order: on this thread when there is one (or one job), else on the fill threads with at most
    two per thread queued, so jobs are made as they run. A failure cancels the queued ones and waits for the rest."""
    jobs = iter(jobs)
    head = list(islice(jobs, 2))
    if threads == 1 or len(head) < 2:
        for job in chain(head, jobs):
            job()
        return
    pending: deque[Future[None]] = deque()
    try:
        for job in chain(head, jobs):
            pending.append(_executor().submit(job))
            if len(pending) >= 2 * threads:
                pending.popleft().result()
        while pending:
            pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        wait(pending)


def fill_chunks(out: np.ndarray, seed: int, name: str, fill: ChunkFill, region: Region | None = None,
                work: np.dtype | None = None) -> None:
    """Fill each fixed chunk of out's C-order elements from its own stream (fill_blocks with one block: out, the whole
    tensor, or with a region that block of it, a shard), in parallel when there are several and out is no shard."""
    whole = Region(out.shape, (0,) * out.ndim, out.shape)
    fill_blocks([(out, region or whole)], seed, name, fill, work, workers(sharded=region is not None))


def _in_place(targets: list[Target], size: int, work: np.dtype) -> np.ndarray | None:
    """The block memory a whole chunk of size values is one contiguous run of, if it is (else None)."""
    if len(targets) != 1 or len(targets[0][2]) != 1:
        return None
    out, _, (run,) = targets[0]
    if run.rows * run.width != size or (run.rows > 1 and run.width != run.stride):
        return None
    if not out.flags.c_contiguous or out.dtype != work:
        return None
    return out.reshape(-1)[run.dst : run.dst + size]


def fill_blocks(blocks: list[tuple[np.ndarray, Region]], seed: int, name: str, fill: ChunkFill,
                work: np.dtype | None = None, threads: int | None = None) -> None:
    """Fill blocks of one tensor (the shards one process holds, or the whole tensor): each chunk that meets any block
    is drawn once, run by run, and each run copied into every block it meets (a split along any dimension costs one
    pass over the chunks the blocks meet, not one per block); a chunk inside one block's contiguous run is drawn there.
    On `threads` threads (default: set_threads, else one, the shards' memory bound)."""
    if not blocks:
        return
    size, count = math.prod(blocks[0][1].shape), threads or workers(sharded=True)
    sub = piece(count)
    work = np.dtype(work or blocks[0][0].dtype)

    def job(k: int, targets: list[Target]) -> None:
        start, stop = k * CHUNK, min(size, (k + 1) * CHUNK)
        direct = _in_place(targets, stop - start, work)
        if direct is not None:
            fill.into(stream(seed, name, k), direct, sub)
            return
        for where, values in fill.runs(stream(seed, name, k), stop - start, work, sub):
            for out, region, _ in targets:
                if isinstance(where, np.ndarray):
                    scatter(out, region, start + where, values)
                    continue
                first = start + where
                for found in pieces(region, first, first + values.size):
                    copy_piece(values, first, found, out)

    _run((partial(job, k, targets) for k, targets in _meetings(blocks)), count)


def _meetings(blocks: list[tuple[np.ndarray, Region]]) -> Iterator[tuple[int, list[Target]]]:
    """(k, the blocks chunk k meets with their pieces) in the order of k, made as they are asked for."""
    def tagged(i: int, out: np.ndarray, region: Region) -> Iterator[tuple[int, int, np.ndarray, Region, list[Piece]]]:
        return ((k, i, out, region, found) for k, found in chunks(region, CHUNK))

    met = [tagged(i, out, region) for i, (out, region) in enumerate(blocks)]
    for k, group in groupby(heapq.merge(*met, key=itemgetter(0, 1)), key=itemgetter(0)):
        yield k, [(out, region, found) for _, _, out, region, found in group]
