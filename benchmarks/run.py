"""`make bench`: unified_params against each framework's own calls, one process per backend.

Prints a table per backend (median of several runs, with min and max) and writes the results into
docs/benchmarks.md between the `bench:results` markers. Every figure is a ratio to the native call
measured in the same process, or a fraction of this machine's memcpy bandwidth measured there too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:results -->", "<!-- /bench:results -->"
ORDER = ["torch", "mxnet", "keras", "flax", "nnx"]
FRAMEWORKS = ("torch", "mxnet", "keras", "tensorflow", "jax", "flax", "numpy")
IMPORT_TARGET = 0.050
TARGETS = {"access": "≤ 2× native", "init": "≤ 1.2× native", "memory": "≤ largest tensor + 10%", "bandwidth": "≥ 50% of memcpy"}

IMPORT_PROBE = """
import json, sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "loaded": [m for m in {frameworks!r} if m in sys.modules]}}))
"""


def import_times(repeat: int) -> dict[str, Any]:
    """Seconds to import unified_params and, as the reference, numpy, each in a fresh interpreter."""
    out: dict[str, Any] = {}
    for module in ("unified_params", "numpy"):
        samples, loaded = [], set()
        for _ in range(repeat):
            probe = IMPORT_PROBE.format(module=module, frameworks=FRAMEWORKS)
            result = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout)
            samples.append(result["seconds"])
            loaded.update(m for m in result["loaded"] if m != module)
        samples.sort()
        out[module] = {"median": samples[len(samples) // 2], "min": samples[0], "max": samples[-1], "loaded": sorted(loaded)}
    return out


def available() -> dict[str, str | None]:
    """Backend name -> None when it can run here, else why not."""
    import unified_params as up

    return {b.name: (None if b.importable else b.reason) for b in up.backends()}


def run_backend(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One backend's suite in a fresh process; its JSON results, or the error."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, str(HERE / "suite.py"), name, "--json", str(out), "--repeat", str(args.repeat)]
        if args.small:
            cmd.append("--small")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            return {"backend": name, "error": f"exit {proc.returncode}: {tail}"}
        result = json.loads(out.read_text())
        result["wall"] = time.perf_counter() - start
        return result


def seconds(x: float) -> str:
    """A duration with a unit that keeps 3 significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def megabytes(x: float) -> str:
    """Bytes as MB."""
    return f"{x / 1e6:,.1f} MB"


def spread(stats: dict[str, float], fmt: Any) -> str:
    """median [min - max]."""
    return f"{fmt(stats['median'])} [{fmt(stats['min'])} – {fmt(stats['max'])}]"


def mark(holds: bool | None) -> str:
    """Whether a target holds, as a word."""
    return "" if holds is None else ("yes" if holds else "**no**")


def backend_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows of one backend: operation, ours, native, native call, ratio, target, holds."""
    memcpy = result["memcpy"]["median"]
    rows = []
    for r in result["rows"]:
        ours, native = r["ours"], r["native"]
        if r["section"] == "bandwidth":
            rate = r["bytes"] / ours["median"]
            fraction = rate / memcpy
            holds = fraction >= r["target"]
            versus = f"; {ours['median'] / native['median']:.2f}× native" if native else ""
            cells = [f"{spread(ours, seconds)} = {rate / 1e9:.2f} GB/s",
                     f"{spread(native, seconds)} = {r['bytes'] / native['median'] / 1e9:.2f} GB/s" if native else "",
                     r["native_label"], f"{fraction:.2f} of memcpy{versus}", f"≥ {r['target']:.0%} of memcpy", mark(holds)]
            rows.append([r["op"], *cells])
            rows.append([f"{r['op']}: peak extra memory", megabytes(r["peak"]["median"]), "", "", "", "", ""])
            continue
        if r.get("unit") == "bytes":
            limit = r["target"] * r["largest"]
            cells = [spread(ours, megabytes), spread(native, megabytes), r["native_label"],
                     f"{ours['median'] / r['largest']:.2f} × largest tensor",
                     f"≤ largest tensor ({megabytes(r['largest'])}) + 10% = {megabytes(limit)}", mark(r["holds"])]
        else:
            ratio = ours["median"] / native["median"]
            target = f"≤ {r['target']:g}× native" if "target" in r else "(information)"
            cells = [spread(ours, seconds), spread(native, seconds), r["native_label"], f"{ratio:.2f}×", target, mark(r.get("holds"))]
        rows.append([r["op"], *cells])
    return rows


HEADERS = ["operation", "unified_params: median [min – max]", "native: median [min – max]", "native call", "ratio", "target", "holds"]


def import_rows(times: dict[str, Any]) -> list[list[str]]:
    """The import row: unified_params against numpy."""
    ours, ref = times["unified_params"], times["numpy"]
    holds = ours["median"] < IMPORT_TARGET and not ours["loaded"]
    loaded = ", ".join(ours["loaded"]) or "none"
    return [["import unified_params", spread(ours, seconds), spread(ref, seconds), "import numpy (reference)",
             f"{ours['median'] / ref['median']:.2f}×", f"< 50 ms, no framework imported (imported: {loaded})", mark(holds)]]


def summary(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Target x backend: which hold."""
    names = [r["backend"] for r in results if "error" not in r]
    ops: dict[str, dict[str, str]] = {}
    for result in results:
        if "error" in result:
            continue
        memcpy = result["memcpy"]["median"]
        for r in result["rows"]:
            if r["section"] == "bandwidth":
                value = f"{r['bytes'] / r['ours']['median'] / memcpy:.2f} of memcpy"
                holds = r["bytes"] / r["ours"]["median"] / memcpy >= r["target"]
                op = re.sub(r" \(.*\)$", "", r["op"])
                op = op.replace(result["backend"], "X") if "transfer" in op and result["backend"] != "torch" else op
            elif r.get("unit") == "bytes":
                value, holds, op = f"{r['ours']['median'] / r['largest']:.2f} × largest", r["holds"], r["op"]
            elif "holds" in r:
                value, holds, op = f"{r['ours']['median'] / r['native']['median']:.2f}×", r["holds"], r["op"]
            else:
                continue
            label = f"{op} ({TARGETS[r['section'] if r.get('unit') != 'bytes' else 'memory']})"
            ops.setdefault(label, {})[result["backend"]] = f"{value} {'✓' if holds else '✗'}"
    return ["target", *names], [[op, *(cells.get(n, "") for n in names)] for op, cells in ops.items()]


def machine(results: list[dict[str, Any]], memcpy: float | None) -> str:
    """One line about the machine and the versions measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for r in results:
        versions.update(r.get("versions", {}))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    parts = [f"{cpu}, {os.cpu_count()} CPUs, load average {load:.1f} at the end of the run",
             f"memcpy (numpy copyto of 256 MB, median over the backends' processes) {memcpy / 1e9:.2f} GB/s" if memcpy else "",
             ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    return "; ".join(p for p in parts if p)


def render(results: list[dict[str, Any]], imports: dict[str, Any], args: argparse.Namespace, wall: float) -> str:
    """The markdown block that goes between the markers of docs/benchmarks.md."""
    from tabulate import tabulate

    ok = [r for r in results if "error" not in r]
    memcpys = sorted(r["memcpy"]["median"] for r in ok)
    memcpy = memcpys[len(memcpys) // 2] if memcpys else None
    size = ok[0]["model_bytes"] if ok else 0
    lines = [START, "## Results", "",
             f"`{' '.join(['python benchmarks/run.py', *args.argv])}`, {time.strftime('%Y-%m-%d %H:%M')}, {wall:.0f} s in all."
             f" Large model: {size / 1e9:.2f} GB of float32 in 16 dense layers; access model: 500 Dense(8, 8) layers = 1,000 tensors.",
             "", machine(results, memcpy), "", "### Targets", ""]
    imp = import_rows(imports)[0]
    lines += [f"`import unified_params`: {imports['unified_params']['median'] * 1e3:.1f} ms ({imp[5]}): "
              f"{'holds' if imp[6] == 'yes' else 'does not hold'}.", ""]
    headers, rows = summary(results)
    if rows:
        lines += [tabulate(rows, headers=headers, tablefmt="github"), ""]
    lines += ["### import", "", tabulate(import_rows(imports), headers=HEADERS, tablefmt="github"), ""]
    fingerprints = {r["backend"]: r.get("fingerprint") for r in ok if r.get("fingerprint")}
    for r in results:
        lines += [f"### {r['backend']}", ""]
        if "error" in r:
            lines += [f"Not measured: {r['error']}", ""]
            continue
        rate = spread(r["memcpy"], lambda x: f"{x / 1e9:.2f} GB/s")
        lines += [f"memcpy in this process: {rate}; process wall time {r.get('wall', 0):.0f} s.", "",
                  tabulate(backend_rows(r), headers=HEADERS, tablefmt="github"), ""]
    if fingerprints:
        same = len(set(fingerprints.values())) == 1
        lines += ["### Determinism", "",
                  "sha256 of `0.weight` after `init(Normal(std=0.01), seed=0)`: "
                  + ", ".join(f"{k} `{v}`" for k, v in fingerprints.items())
                  + (" — bitwise identical on every backend." if same else " — **differs between backends**."), ""]
    if "checkpoints" in results_extra:
        lines += checkpoint_lines(results_extra["checkpoints"])
    if "sharded" in results_extra:
        from sharded import lines as sharded_lines

        lines += sharded_lines(results_extra["sharded"])
    lines.append(END)
    return "\n".join(lines)


results_extra: dict[str, Any] = {}


def checkpoint_lines(results: dict[str, Any]) -> list[str]:
    """The checkpoints section: save/load against safetensors.torch and the disk (benchmarks/checkpoints.py)."""
    from tabulate import tabulate

    if "error" in results:
        return ["### checkpoints (torch)", "", f"Not measured: {results['error']}", ""]
    sys.path.insert(0, str(HERE))
    from checkpoints import HEADERS as CKPT_HEADERS
    from checkpoints import rows as ckpt_rows

    first = next(iter(results.values()))
    return ["### checkpoints (torch)", "",
            f"{first['bytes'] / 1e9:.2f} GB in 16 tensors (largest {first['largest'] / 1e6:.0f} MB); each row a fresh "
            "process, reads from a cold page cache; `pm.save` also fsyncs, `save_file` does not.", "",
            tabulate(ckpt_rows(results), headers=CKPT_HEADERS, tablefmt="github"), ""]


def console(results: list[dict[str, Any]], imports: dict[str, Any]) -> None:
    """The tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    out = Console(width=max(160, Console().width))

    def table(title: str, headers: list[str], rows: list[list[str]]) -> None:
        t = Table(title=title, title_justify="left", show_lines=False)
        for h in headers:
            t.add_column(h, overflow="fold")
        for row in rows:
            t.add_row(*(str(c).replace("**", "") for c in row))
        out.print(t)

    table("import", HEADERS, import_rows(imports))
    for r in results:
        if "error" in r:
            out.print(f"[bold red]{r['backend']}[/]: not measured: {r['error']}")
            continue
        memcpy = r["memcpy"]["median"] / 1e9
        table(f"{r['backend']} (memcpy {memcpy:.2f} GB/s)", HEADERS, backend_rows(r))
    headers, rows = summary(results)
    if rows:
        table("targets", headers, rows)


def write_doc(block: str) -> None:
    """Replace the results block of docs/benchmarks.md (or append one)."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run every installed backend's benchmarks, print the tables, write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 62 MB model instead of 1 GB (quick runs)")
    parser.add_argument("--backends", default=",".join(ORDER), help="comma-separated backends (default: all installed)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement of the large model (after one warm-up)")
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds per backend")
    parser.add_argument("--no-write", action="store_true", help=f"do not update {DOC.relative_to(ROOT)}")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--no-checkpoints", action="store_true", help="skip the checkpoint save/load rows")
    parser.add_argument("--no-sharded", action="store_true", help="skip the sharded init rows (8 JAX host devices)")
    args = parser.parse_args(argv)
    shown = sys.argv[1:] if argv is None else argv
    args.argv = [a for i, a in enumerate(shown) if a not in ("--json", "--no-write") and (i == 0 or shown[i - 1] != "--json")]
    start = time.perf_counter()
    imports = import_times(7)
    status = available()
    results = []
    for name in [b for b in args.backends.split(",") if b]:
        if name not in status:
            results.append({"backend": name, "error": "no such backend registered"})
        elif status[name] is not None:
            results.append({"backend": name, "error": status[name]})
        else:
            print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
            try:
                results.append(run_backend(name, args))
            except subprocess.TimeoutExpired:
                results.append({"backend": name, "error": f"timed out after {args.timeout:.0f} s"})
    if not args.no_checkpoints:
        print("benchmarking checkpoints ...", file=sys.stderr, flush=True)
        sys.path.insert(0, str(HERE))
        from checkpoints import measure

        try:
            results_extra["checkpoints"] = measure(args.small, args.repeat)
        except (subprocess.CalledProcessError, OSError) as e:
            results_extra["checkpoints"] = {"error": str(e)}
    if not args.no_sharded:
        print("benchmarking sharded init ...", file=sys.stderr, flush=True)
        sys.path.insert(0, str(HERE))
        from sharded import measured

        try:
            results_extra["sharded"] = measured(args.small, args.repeat)
        except (subprocess.CalledProcessError, OSError) as e:
            results_extra["sharded"] = {"error": str(e)}
    wall = time.perf_counter() - start
    console(results, imports)
    if args.json:
        Path(args.json).write_text(json.dumps({"imports": imports, "results": results}, indent=1))
    if not args.no_write:
        write_doc(render(results, imports, args, wall))
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
