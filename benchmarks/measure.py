"""Timing, peak-memory and memory-bandwidth helpers shared by the benchmark cases."""
from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Stats:
    """Median, min and max of several samples (seconds per call, or bytes)."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        """The statistics of samples."""
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def as_dict(self) -> dict[str, float]:
        """A JSON-ready dict."""
        return asdict(self)


def _calibrate(fn: Callable[[], Any], target: float) -> int:
    """How many calls of fn take about target seconds (at least 1)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target / 4 or number >= 1 << 20:
            return max(1, int(number * target / max(elapsed, 1e-9)))
        number *= 4


def compare(ours: Callable[[], Any], native: Callable[[], Any], repeat: int, target: float = 0.02,
            sync: Callable[[], Any] | None = None) -> tuple[Stats, Stats]:
    """Per-call time of ours and native, sampled alternately (so neighbours' load hits both alike)."""
    sync = sync or (lambda: None)

    def loop(fn: Callable[[], Any], number: int) -> float:
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return (time.perf_counter() - start) / number

    n_ours, n_native = _calibrate(ours, target), _calibrate(native, target)
    a, b = [], []
    for _ in range(repeat):
        b.append(loop(native, n_native))
        a.append(loop(ours, n_ours))
    return Stats.of(a), Stats.of(b)


def rss() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


class PeakRSS:
    """Peak RSS growth inside a with-block: the kernel's high-water mark reset on entry, or a sampler thread."""

    def __init__(self) -> None:
        self.extra = 0
        self._reset = False
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.base = rss()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._reset = _hwm() <= self.base + PAGE * 64
        except OSError:
            self._reset = False
        if not self._reset:
            self._peak = self.base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss())
            time.sleep(0.0005)

    def __exit__(self, *exc: Any) -> None:
        if self._reset:
            peak = _hwm()
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            peak = max(self._peak, rss())
        self.extra = max(0, peak - self.base)


@dataclass
class Runs:
    """Wall time, CPU time (all threads) and peak extra memory of each run of one heavy call."""

    wall: list[float]
    cpu: list[float]
    peak: list[float]


def alternate(calls: dict[str, Callable[[], Any]], repeat: int) -> dict[str, Runs]:
    """Run each call once to warm up, then repeat times in turn (a, b, a, b, ...), measuring every run."""
    for fn in calls.values():
        fn()
    runs = {key: Runs([], [], []) for key in calls}
    for _ in range(repeat):
        for key, fn in calls.items():
            gc.collect()
            with PeakRSS() as peak:
                start, start_cpu = time.perf_counter(), time.process_time()
                result = fn()
                runs[key].wall.append(time.perf_counter() - start)
                runs[key].cpu.append(time.process_time() - start_cpu)
                del result
            runs[key].peak.append(float(peak.extra))
    return runs


def memcpy_bandwidth(nbytes: int, repeat: int = 5) -> Stats:
    """Bytes per second of numpy copying one large float32 array into another (the physical reference)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(dst, src)
        samples.append(src.nbytes / (time.perf_counter() - start))
    del src, dst
    gc.collect()
    return Stats.of(samples)
