"""Large copies split over the CPUs: numpy releases the GIL while it copies, so threads copy side by side (used for
transposes, which are bound by the CPU; layout.copy_into)."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

SPLIT_ABOVE = 1 << 24
"""Bytes from which a copy is split over the CPUs (below, the hand-off costs more than it saves)."""
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def workers() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, workers() - 1), thread_name_prefix="unified_params-copy")
    return _pool


def bounds(size: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) of at most parts near-equal consecutive pieces of range(size)."""
    step = -(-size // max(1, parts))
    return [(i, min(i + step, size)) for i in range(0, size, step)] if size else []


def run(jobs: Sequence[Callable[[], None]]) -> None:
    """Run every job, the first in this thread and the others on the copy threads (which never submit jobs
    themselves, so a job never waits on the pool); the first error is raised once all have finished."""
    if len(jobs) <= 1 or threading.current_thread().name.startswith("unified_params-copy"):
        for job in jobs:
            job()
        return
    futures = [_executor().submit(job) for job in jobs[1:]]
    error: BaseException | None = None
    try:
        jobs[0]()
    except BaseException as e:  # noqa: BLE001 - re-raised after the other parts are done
        error = e
    for future in futures:
        try:
            future.result()
        except BaseException as e:  # noqa: BLE001
            error = error or e
    if error is not None:
        raise error
