"""Checkpoint save/load: time and peak memory above the model, against safetensors.torch and the disk itself.

Each measurement runs in a fresh process (so its peak RSS is its own): a torch model of 16 dense layers
(1 GB of float32, or 62 MB with --small) is built, then one operation runs. Reads start cold: the file's
pages are dropped from the page cache first (posix_fadvise DONTNEED on that file only).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPS = ["disk write", "disk read", "pm.save", "save_file", "pm.load", "load_file + load_state_dict"]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cold(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _model(small: bool):  # noqa: ANN202
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from cases import big_shapes

    layers = [torch.nn.Linear(i, o, bias=False) for o, i in big_shapes(16, small)]
    for layer in layers:
        torch.nn.init.normal_(layer.weight)
    return torch.nn.Sequential(*layers)


def one(op: str, path: str, small: bool) -> dict[str, float]:
    """Run one operation in this process: seconds, and peak RSS above the RSS before it."""
    import torch  # noqa: F401

    import unified_params as up

    net = _model(small)
    size = sum(p.numel() * p.element_size() for p in net.parameters())
    pm = up.wrap(net)
    if "load" in op or op == "disk read":
        _cold(path)
    before = _rss()
    start = time.perf_counter()
    if op == "disk write":
        block = memoryview(bytearray(64 << 20))
        with open(path, "wb") as f:
            for _ in range(0, size, len(block)):
                f.write(block)
            os.fsync(f.fileno())
    elif op == "disk read":
        block = bytearray(64 << 20)
        with open(path, "rb", buffering=0) as f:
            while f.readinto(block):
                pass
    elif op == "pm.save":
        pm.save(path)
    elif op == "save_file":
        from safetensors.torch import save_file

        save_file(net.state_dict(), path)
    elif op == "pm.load":
        pm.load(path)
    else:
        from safetensors.torch import load_file

        net.load_state_dict(load_file(path))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "extra": max(0, _peak() - before), "bytes": size,
            "largest": max(p.numel() * p.element_size() for p in net.parameters())}


def measure(small: bool, repeat: int) -> dict[str, dict[str, float]]:
    """Median seconds and peak extra memory of every operation, each run `repeat` times in fresh processes."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("UP_BENCH_DIR")) as tmp:
        files = {"disk": f"{tmp}/raw.bin", "ours": f"{tmp}/ours.safetensors", "theirs": f"{tmp}/theirs.safetensors"}
        for op in OPS:
            path = files["disk" if "disk" in op else "ours" if op.startswith("pm.") else "theirs"]
            runs = []
            for _ in range(repeat):
                code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
                       f"from checkpoints import one; print(json.dumps(one({op!r}, {path!r}, {small!r})))"
                done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            runs.sort(key=lambda r: r["seconds"])
            out[op] = {**runs[len(runs) // 2], "min": runs[0]["seconds"], "max": runs[-1]["seconds"]}
    return out


def rows(results: dict[str, dict[str, float]]) -> list[list[str]]:
    """Table rows: operation, seconds, GB/s, share of the disk's bandwidth, peak extra memory, target."""
    out = []
    for op, r in results.items():
        rate = r["bytes"] / r["seconds"] / 1e9
        disk = results["disk write" if "save" in op or "write" in op else "disk read"]
        share = r["seconds"] and (r["bytes"] / r["seconds"]) / (disk["bytes"] / disk["seconds"])
        target = ""
        if op.startswith("pm."):
            holds = share >= 0.5 and r["extra"] <= 1.1 * r["largest"]
            target = f"{'holds' if holds else 'does not hold'} (>= 50% of disk, <= largest tensor + 10%)"
        out.append([op, f"{r['seconds']:.2f} ({r['min']:.2f}-{r['max']:.2f})", f"{rate:.2f}", f"{share:.0%}",
                    f"{r['extra'] / 1e6:.0f} MB", target])
    return out


HEADERS = ["operation", "seconds (min-max)", "GB/s", "of disk", "peak above model", "target"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 62 MB model instead of 1 GB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    from tabulate import tabulate

    results = measure(args.small, args.repeat)
    r = next(iter(results.values()))
    print(f"model {r['bytes'] / 1e9:.2f} GB in 16 tensors, largest {r['largest'] / 1e6:.0f} MB")
    print(tabulate(rows(results), headers=HEADERS, tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
