"""What copies and transposes of one 62.5 MB float32 kernel reach on this machine, against memcpy into touched memory.

`python benchmarks/copy_limits.py numpy|torch|jax|tensorflow [--rounds N]`: every method and the reference run
interleaved in one process; the best and median of N rounds (docs/benchmarks.md, "Where the time goes").
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unified_params import layout, parallel  # noqa: E402

SHAPE = (4096, 3814)
Method = tuple[Callable[[], Any], int]


def one_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn with layout's copies kept on the calling thread."""
    def run() -> Any:
        layout.SPLIT_ABOVE, saved = 1 << 62, layout.SPLIT_ABOVE
        try:
            return fn()
        finally:
            layout.SPLIT_ABOVE = saved
    return run


def two_threads(a: np.ndarray) -> np.ndarray:
    """A copy of a made by two threads, each copying (and first touching) half of the fresh pages."""
    out, source = np.empty_like(a), a.reshape(-1)
    flat = out.reshape(-1)
    parallel.run([lambda i=i, j=j: np.copyto(flat[i:j], source[i:j]) for i, j in parallel.bounds(flat.size, 2)])
    return out


def numpy_methods(a: np.ndarray, b: np.ndarray) -> dict[str, Method]:
    """numpy: copies into fresh pages, transposes by numpy's strided copy and by layout.copy_into (tiles/panels)."""
    out = {"into fresh pages, 1 thread (np.array)": (lambda: np.array(a), a.nbytes),
           "into fresh pages, 2 threads": (lambda: two_threads(a), a.nbytes),
           "transpose: np.ascontiguousarray(a.T)": (lambda: np.ascontiguousarray(a.T), a.nbytes)}
    for label, src in (("rows 15256 B apart", a), ("rows 16 KB apart", b)):
        touched = np.zeros(src.shape[::-1], src.dtype)

        def into_touched(s: np.ndarray = src, d: np.ndarray = touched) -> None:
            layout.copy_into(d, s.T)

        def into_fresh(s: np.ndarray = src) -> None:
            layout.copy_into(np.empty(s.shape[::-1], s.dtype), s.T)

        for where, fn in (("touched", into_touched), ("fresh", into_fresh)):
            out[f"transpose [{label}] copy_into, {where}, 1 thread"] = (one_thread(fn), a.nbytes)
            out[f"transpose [{label}] copy_into, {where}, 2 threads"] = (fn, a.nbytes)
    return out


def torch_methods(a: np.ndarray, b: np.ndarray) -> dict[str, Method]:
    """torch: copy_ from a transposed view into touched memory, and .t().contiguous(), on 1 and 2 threads."""
    import torch

    src, dst = torch.from_numpy(b), torch.empty(SHAPE)
    out = {}
    for n in (1, 2):
        def threads(fn: Callable[[], Any], n: int = n) -> Callable[[], Any]:
            return lambda: (torch.set_num_threads(n), fn())
        out[f"transpose: dst.copy_(src.t()), touched, {n} thread(s)"] = (threads(lambda: dst.copy_(src.t())), b.nbytes)
        out[f"transpose: src.t().contiguous(), fresh, {n} thread(s)"] = (threads(src.t().contiguous), b.nbytes)
    return out


def jax_methods(a: np.ndarray, b: np.ndarray) -> dict[str, Method]:
    """XLA: jit(jnp.transpose) of a zero-copy device_put, and device_put of the transposed (Fortran-ordered) view."""
    import jax
    import jax.numpy as jnp

    transpose = jax.jit(jnp.transpose)
    return {"transpose: jit(jnp.transpose)(device_put(a))": (lambda: transpose(jax.device_put(a)).block_until_ready(),
                                                             a.nbytes),
            "transpose: device_put(a.T)": (lambda: jax.device_put(a.T).block_until_ready(), a.nbytes)}


def tensorflow_methods(a: np.ndarray, b: np.ndarray) -> dict[str, Method]:
    """TensorFlow: tf.transpose of an existing tensor, and with the numpy conversion first."""
    import tensorflow as tf

    tensor = tf.convert_to_tensor(a)
    return {"transpose: tf.transpose(tensor)": (lambda: tf.transpose(tensor), a.nbytes),
            "transpose: tf.transpose(tf.convert_to_tensor(a))": (lambda: tf.transpose(tf.convert_to_tensor(a)),
                                                                  a.nbytes),
            "conversion only: tf.convert_to_tensor(a)": (lambda: tf.convert_to_tensor(a), a.nbytes)}


METHODS = {"numpy": numpy_methods, "torch": torch_methods, "jax": jax_methods, "tensorflow": tensorflow_methods}


def main() -> None:
    """Measure one family of methods against memcpy and print GB/s and the fraction of memcpy."""
    parser = argparse.ArgumentParser()
    parser.add_argument("family", choices=sorted(METHODS))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a = layout.aligned_empty(SHAPE, np.float32)
    a[...] = rng.standard_normal(SHAPE, dtype=np.float32)
    b = layout.aligned_empty(SHAPE[::-1], np.float32)
    b[...] = rng.standard_normal(SHAPE[::-1], dtype=np.float32)
    src = np.ones(64 << 20, np.float32)
    dst = np.ones_like(src)
    methods = {"memcpy: 256 MB into touched memory": ((lambda: np.copyto(dst, src)), src.nbytes),
               **METHODS[args.family](a, b)}
    speeds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, (fn, nbytes) in methods.items():
            start = time.perf_counter()
            result = fn()
            speeds[name].append(nbytes / (time.perf_counter() - start) / 1e9)
            del result
    reference = max(speeds["memcpy: 256 MB into touched memory"])
    for name, values in speeds.items():
        print(f"{args.family:10} {name:62} best {max(values):6.2f} GB/s = {max(values) / reference:.2f} of memcpy; "
              f"median {statistics.median(values):6.2f} GB/s")


if __name__ == "__main__":
    main()
