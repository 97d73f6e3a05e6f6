"""One backend's benchmarks, run in a process of its own: `python benchmarks/suite.py torch --json out.json`."""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES, Case, Model, big_shapes  # noqa: E402
from measure import Stats, alternate, compare, memcpy_bandwidth  # noqa: E402

import unified_params as up  # noqa: E402

STD = 0.01
SEED = 0
ACCESS_TARGET = 2.0
INIT_TARGET = 1.2
MEMORY_SLACK = 1.1
BANDWIDTH_TARGET = 0.5


def row(section: str, op: str, ours: Stats, native: Stats | None, native_label: str, **extra: Any) -> dict[str, Any]:
    """One result line: our and the native time per call, with what the native call is."""
    out = {"section": section, "op": op, "ours": ours.as_dict(), "native": native.as_dict() if native else None,
           "native_label": native_label}
    out.update(extra)
    return out


def access(case: Case, layers: int, repeat: int) -> list[dict[str, Any]]:
    """wrap, names, collect and lookup on 2 x layers parameter tensors, against the framework's own listing."""
    m = case.many(layers)
    pm = case.wrap(m)
    name = f"{layers // 2}.weight"
    regex = re.compile(case.native_pattern)
    ours_n, native_n = len(pm.collect(r".*weight")), len(case.native_collect(m, regex))
    assert ours_n == native_n == layers, (ours_n, native_n)
    assert len(pm.names()) == len(case.native_names(m)) == 2 * layers
    lookup = case.native_lookup(m, pm, name)
    assert lookup() is not None
    listing = "own listing of names"
    a, b = compare(lambda: case.wrap(m), lambda: case.native_names(m), repeat)
    rows = [row("access", "wrap() alone (the index is built on first use)", a, b, listing)]
    for op, ours, native, label in (
        ("wrap + first names()", lambda: case.wrap(m).names(), lambda: case.native_names(m), listing),
        ("names()", pm.names, lambda: case.native_names(m), listing),
        ('collect(r".*weight")', lambda: pm.collect(r".*weight"), lambda: case.native_collect(m, re.compile(case.native_pattern)),
         f"own listing + re.fullmatch({case.native_pattern!r})" if case.name != "mxnet" else f"collect_params({case.native_pattern!r})"),
        (f'pm["{name}"]', lambda: pm[name], lookup, case.lookup_label),
    ):
        a, b = compare(ours, native, repeat)
        rows.append(row("access", op, a, b, label, target=ACCESS_TARGET, holds=a.median <= ACCESS_TARGET * b.median))
    return rows


def fingerprint(pm: Any) -> str:
    """sha256 of the first weight's canonical bytes (the same seed must give the same bytes on every backend)."""
    return hashlib.sha256(pm["0.weight"].numpy().tobytes()).hexdigest()[:16]


def _nbytes(p: Any) -> int:
    return math.prod(p.shape) * np.dtype(p.dtype).itemsize


def init(case: Case, m: Model, pm: Any, repeat: int) -> tuple[list[dict[str, Any]], str]:
    """pm.init(Normal) against the framework's own normal initializer on every weight: time, CPU time, peak extra memory."""
    largest = max(_nbytes(p) for p in pm.values())
    runs = alternate({
        "native": lambda: case.native_init(m, STD, SEED),
        "ours": lambda: (pm.init(up.init.Normal(std=STD), pattern=r".*weight", seed=SEED), case.pm_sync(pm)),
    }, repeat)
    ours, native = runs["ours"], runs["native"]
    label = {"torch": "nn.init.normal_", "mxnet": "collect_params().initialize(Normal, force_reinit=True)",
             "keras": "v.assign(RandomNormal()(shape))", "flax": "jax.nn.initializers.normal per leaf",
             "nnx": "var.value = jax.nn.initializers.normal(...)"}[case.name]
    wall = Stats.of(ours.wall), Stats.of(native.wall)
    peak = Stats.of(ours.peak), Stats.of(native.peak)
    rows = [row("init", "init(Normal) time", *wall, label, target=INIT_TARGET, holds=wall[0].median <= INIT_TARGET * wall[1].median),
            row("init", "init(Normal) CPU time, all threads", Stats.of(ours.cpu), Stats.of(native.cpu), label),
            row("init", "init(Normal) peak extra memory", *peak, label, unit="bytes", largest=largest,
                target=MEMORY_SLACK, holds=peak[0].median <= MEMORY_SLACK * largest)]
    return rows, fingerprint(pm)


def bandwidth(op: str, fn: Callable[[], Any], nbytes: int, repeat: int, native: Callable[[], Any] | None = None,
              native_label: str = "") -> dict[str, Any]:
    """Seconds per call of fn moving nbytes (and of its native counterpart), and fn's peak extra memory."""
    runs = alternate({"native": native, "ours": fn} if native else {"ours": fn}, repeat)
    return row("bandwidth", op, Stats.of(runs["ours"].wall), Stats.of(runs["native"].wall) if native else None, native_label,
               bytes=nbytes, peak=Stats.of(runs["ours"].peak).as_dict(), target=BANDWIDTH_TARGET)


def heavy(case: Case, small: bool, layers: int, repeat: int) -> tuple[list[dict[str, Any]], str, int]:
    """init, state_dict and transfer on the large model."""
    shapes = big_shapes(layers, small)
    m = case.big(shapes)
    pm = case.wrap(m)
    nbytes = sum(_nbytes(p) for p in pm.values())
    rows, digest = init(case, m, pm, repeat)
    layout = "same layout" if case.name in ("torch", "mxnet") else "kernels transposed"
    rows.append(bandwidth(f"state_dict() ({layout})", pm.state_dict, nbytes, repeat, lambda: case.native_state(m),
                          "own values to numpy copies, native layout"))
    if case.name == "torch":
        other = case.big(shapes)
        pm2 = case.wrap(other)
        rows.append(bandwidth("transfer torch -> torch (same layout)", lambda: up.transfer(pm, pm2), nbytes, repeat,
                              lambda: other.net.load_state_dict(m.net.state_dict()), "dst.load_state_dict(src.state_dict())"))
    else:
        from cases import TorchCase

        torch_case = TorchCase()
        tm = torch_case.big(shapes)
        tpm = torch_case.wrap(tm)
        tpm.init(up.init.Zeros())
        layout = "same layout" if case.name == "mxnet" else "kernels transposed"
        rows.append(bandwidth(f"transfer torch -> {case.name} ({layout})", lambda: (up.transfer(tpm, pm), case.pm_sync(pm)), nbytes, repeat,
                              lambda: case.native_import(m, torch_case.native_export(tm)), "numpy views of torch -> own setters"))
        rows.append(bandwidth(f"transfer {case.name} -> torch ({layout})", lambda: up.transfer(pm, tpm), nbytes, repeat,
                              lambda: torch_case.native_import(tm, case.native_export(m)), "own getters -> numpy -> torch copy_"))
    return rows, digest, nbytes


def versions(name: str) -> dict[str, str]:
    """Versions of Python, numpy and the backend's framework."""
    info = {b.name: b.version for b in up.backends()}
    return {"numpy": np.__version__, "python": sys.version.split()[0], name: str(info.get(name))}


def main() -> None:
    """Run one backend's benchmarks and write the results as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=sorted(CASES))
    parser.add_argument("--json", required=True)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layers", type=int, default=500, help="Dense layers of the access model (2 tensors each)")
    parser.add_argument("--big-layers", type=int, default=16)
    parser.add_argument("--skip-heavy", action="store_true")
    args = parser.parse_args()
    case = CASES[args.backend]()
    memcpy = memcpy_bandwidth(256 << 20)
    rows = access(case, args.layers, max(args.repeat, 5))
    digest, nbytes = None, 0
    if not args.skip_heavy:
        more, digest, nbytes = heavy(case, args.small, args.big_layers, args.repeat)
        rows += more
    out = {"backend": case.name, "versions": versions(case.name), "memcpy": memcpy.as_dict(), "rows": rows,
           "fingerprint": digest, "model_bytes": nbytes, "small": args.small}
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
