"""Sharded init: pm.init of a 1 GB model (16 dense 4096x4096 layers, NNX) on meshes of 1, 2, 4 and 8 JAX host devices.

Run in its own process (XLA_FLAGS gives 8 CPU devices before jax is imported). Each kernel is split over the
mesh along canonical dimension 0 (native `P(None, 'model')`: each device's block is a contiguous run of the
streams) or along canonical dimension 1 (`P('model', None)`: every block meets every chunk). One process holds
every device here and fills all its blocks in one pass (each random chunk drawn once), so its time against the
unsharded init is the cost of sharding (target: <= 1.5x). A process that holds one block of a dimension-1 split
(one device per process) still draws every chunk its columns meet: up to the whole tensor's draws.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HEADERS = ["split", "devices", "pm.init", "against unsharded", "bitwise = unsharded"]


def _model(shapes: list[tuple[int, int]], spec: tuple | None) -> Any:
    from flax import nnx

    zeros = nnx.initializers.zeros_init()
    kernel = zeros if spec is None else nnx.with_partitioning(zeros, spec)
    return nnx.Sequential(*[nnx.Linear(i, o, use_bias=False, kernel_init=kernel, rngs=nnx.Rngs(0)) for o, i in shapes])


def _time(pm: Any, repeat: int) -> float:
    import unified_params as up

    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        pm.init(up.init.Normal(std=0.02), seed=0)
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def measure(small: bool, repeat: int) -> dict[str, Any]:
    """Seconds of pm.init per split and mesh, and whether every value equals the unsharded init's."""
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import hashlib

    import jax
    import numpy as np

    import unified_params as up
    shapes = [(1024, 960) if small else (4096, 4096)] * 16
    plain = up.wrap(_model(shapes, None))
    base = _time(plain, repeat)
    digest = hashlib.sha256(b"".join(np.asarray(v.native.get_value()).tobytes() for v in plain.values())).hexdigest()
    del plain
    rows = []
    for dim, spec in ((0, (None, "model")), (1, ("model", None))):
        for n in (1, 2, 4, 8):
            with jax.set_mesh(jax.make_mesh((n,), ("model",), devices=jax.devices()[:n])):
                pm = up.wrap(_model(shapes, spec))
            seconds = _time(pm, repeat)
            got = hashlib.sha256(b"".join(np.asarray(v.native.get_value()).tobytes() for v in pm.values())).hexdigest()
            rows.append({"dim": dim, "devices": n, "seconds": seconds, "same": got == digest})
            del pm
    return {"unsharded": base, "bytes": sum(o * i * 4 for o, i in shapes), "rows": rows}


def measured(small: bool, repeat: int) -> dict[str, Any]:
    """measure() in a fresh process (jax must see 8 host devices from its import on)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sharded.json"
        cmd = [sys.executable, __file__, "--repeat", str(repeat), "--json", str(out), *(["--small"] if small else [])]
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        return json.loads(out.read_text())


def lines(result: dict[str, Any]) -> list[str]:
    """The `make bench` section of docs/benchmarks.md."""
    from tabulate import tabulate

    title = "### sharded init (NNX on JAX host devices)"
    if "error" in result:
        return [title, "", f"Not measured: {result['error']}", ""]
    text = (f"{result['bytes'] / 1e9:.2f} GB in 16 kernels; `pm.init(Normal(std=0.02))`, one process holding every "
            "device (`XLA_FLAGS=--xla_force_host_platform_device_count=8`) and filling all its blocks in one pass, "
            "each random chunk drawn once. Split along canonical dimension 0 a block is a contiguous run of the "
            "streams; along dimension 1 every block meets every chunk (a process holding one such block alone draws "
            "them all). Bitwise: sha256 of every kernel against the unsharded init.")
    return [title, "", text, "", tabulate(rows(result), headers=HEADERS, tablefmt="github"), ""]


def rows(result: dict[str, Any]) -> list[list[str]]:
    """The table rows of a measure() result."""
    base = result["unsharded"]
    out = [["none", "1 (unsharded)", f"{base:.2f} s", "1.00×", "reference"]]
    for r in result["rows"]:
        out.append([f"canonical dim {r['dim']}", str(r["devices"]), f"{r['seconds']:.2f} s",
                    f"{r['seconds'] / base:.2f}×", "✓" if r["same"] else "✗"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a 63 MB model (1024x960 layers) instead of 1 GB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    result = measure(args.small, args.repeat)
    if args.json:
        Path(args.json).write_text(json.dumps(result))
    from tabulate import tabulate

    print(f"{result['bytes'] / 1e9:.2f} GB in 16 kernels")
    print(tabulate(rows(result), headers=HEADERS, tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
