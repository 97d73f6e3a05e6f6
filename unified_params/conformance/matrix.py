"""Run the suite once per backend (each in its own process) and fold the outcomes into a feature x backend matrix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .plugin import NOT_SUPPORTED

KERAS_BACKENDS = ("tensorflow", "jax", "torch")


@dataclass
class Run:
    """One pytest process: a backend label, its environment, and what it reported."""

    label: str
    args: list[str]
    env: dict[str, str]
    rows: list[dict] = field(default_factory=list)
    returncode: int = 0
    output: str = ""


def runs(backends: list[str], cross: bool = True) -> list[Run]:
    """One run per backend (keras once per Keras backend, since Keras picks it at import), then one cross run."""
    out = []
    for name in backends:
        args = ["--backend", name, "-m", "not cross"]
        if name == "keras":
            out += [Run(f"keras[{kb}]", args, {"KERAS_BACKEND": kb}) for kb in KERAS_BACKENDS]
        else:
            out.append(Run(name, args, {}))
    if cross and len(backends) > 1:
        out.append(Run("cross", ["-m", "cross", *[a for b in backends for a in ("--backend", b)]], {}))
        partner = next((b for b in backends if b != "keras"), None)
        if "keras" in backends and partner:
            out += [Run(f"cross keras[{kb}]", ["-m", "cross", "--backend", "keras", "--backend", partner], {"KERAS_BACKEND": kb})
                    for kb in KERAS_BACKENDS[1:]]
    return out


def execute(run: Run, extra: list[str] | None = None) -> Run:
    """Run the suite for one backend in a fresh interpreter and read its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "unified_params.conformance",
               *run.args, "--up-report", report, *(extra or [])]
        proc = subprocess.run(cmd, env={**os.environ, **run.env}, capture_output=True, text=True, cwd=tmp)
        run.returncode, run.output = proc.returncode, proc.stdout + proc.stderr
        if os.path.exists(report):
            with open(report) as f:
                run.rows = json.load(f)
    return run


def execute_all(all_runs: list[Run], jobs: int = 2) -> list[Run]:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(execute, all_runs))


PARTIAL = "pass (partial)"
CROSS = "cross"


def _cell(outcomes: set[str]) -> str:
    """One cell: any failure fails it; tests passed beside tests skipped as not supported make it partial."""
    if "fail" not in outcomes and {"pass", NOT_SUPPORTED} <= outcomes:
        return PARTIAL
    for verdict in ("fail", "pass", NOT_SUPPORTED, "not installed"):
        if verdict in outcomes:
            return verdict
    return "not run"


def matrix(all_runs: list[Run]) -> tuple[list[str], dict[str, dict[str, str]], dict[str, str]]:
    """(features, {feature: {label: cell}}, {feature/label: reason}); a cross feature's labels are pairs `a->b`.

    A cell is `pass`, `pass (partial)` (what ran passed, the rest is not supported: the note says what),
    `not supported`, `fail`, `not installed` or `not run`.
    """
    seen: dict[str, dict[str, set[str]]] = {}
    notes: dict[str, str] = {}
    for run in all_runs:
        if not run.rows:
            tail = run.output.strip().splitlines()[-1] if run.output.strip() else f"exit {run.returncode}"
            notes[run.label] = f"suite did not run: {tail}"
        for row in run.rows:
            label = row["backend"]
            key = f"{row['feature']}/{label}"
            if row["outcome"] == "failed":
                verdict = "fail"
                notes[key] = f"{row['test']}: {row['reason']}"
            elif row["outcome"] == "skipped":
                verdict = NOT_SUPPORTED if row["reason"].startswith(NOT_SUPPORTED) else "not installed"
                notes.setdefault(key, row["reason"])
            else:
                verdict = "pass"
            seen.setdefault(row["feature"], {}).setdefault(label, set()).add(verdict)
    order = ["builders"] + [f"E{i}" for i in range(1, 14)] + ["errors", "state"]
    features = sorted(seen, key=lambda f: (order.index(f) if f in order else len(order), f))
    cells = {f: {label: _cell(v) for label, v in seen[f].items()} for f in features}
    return features, cells, notes
