"""The command line: backends, compare and the conformance matrix, in each output format."""
from __future__ import annotations

import json
import subprocess
import sys

from unified_params.cli import main
from unified_params.conformance.matrix import Run, matrix, runs


def test_backends_json(capsys) -> None:  # noqa: ANN001
    assert main(["backends", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)[0]
    names = [row[0] for row in table["rows"]]
    assert names[:5] == ["torch", "mxnet", "keras", "flax", "nnx"]
    assert all(row[2] == "yes" for row in table["rows"][:5])


def test_compare_markdown_shows_native_and_unified_names() -> None:
    out = subprocess.run([sys.executable, "-m", "unified_params.cli", "compare", "--backend", "torch", "--backend", "mxnet",
                          "--format", "markdown"], capture_output=True, text=True, check=True).stdout
    assert "dense0_weight (8, 4)" in out and "| 0.weight " in out
    assert "torch vs mxnet" in out and "bitwise equal" in out and "DIFFERENT" not in out


def test_matrix_folds_outcomes_per_feature_and_backend() -> None:
    plan = runs(["torch", "keras"])
    assert [r.label for r in plan] == ["torch", "keras[tensorflow]", "keras[jax]", "keras[torch]", "cross",
                                       "cross keras[jax]", "cross keras[torch]"]
    run = Run("torch", [], {}, rows=[
        {"test": "a", "feature": "E1", "backend": "torch", "outcome": "passed", "reason": ""},
        {"test": "b", "feature": "E3", "backend": "torch", "outcome": "skipped", "reason": "not supported: no grads"},
        {"test": "c", "feature": "E3", "backend": "torch", "outcome": "passed", "reason": ""},
        {"test": "d", "feature": "E11", "backend": "torch", "outcome": "skipped", "reason": "not supported: why"},
        {"test": "e", "feature": "E2", "backend": "torch", "outcome": "failed", "reason": "AssertionError"},
    ])
    features, cells, notes = matrix([run])
    assert features == ["E1", "E2", "E3", "E11"]
    assert cells["E1"]["torch"] == "pass" and cells["E2"]["torch"] == "fail"
    assert cells["E3"]["torch"] == "pass" and cells["E11"]["torch"] == "not supported"
    assert "AssertionError" in notes["E2/torch"]
