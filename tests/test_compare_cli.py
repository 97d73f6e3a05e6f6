"""unified-params compare --model: one's own models from any module, compared with the first as reference."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unified_params.cli import main

STRUCTURES = "unified_params.backends.{}_structures:{}"


def models(*specs: tuple[str, str, str]) -> list[str]:
    return [arg for label, backend, builder in specs
            for arg in ("--model", f"{label}={STRUCTURES.format(backend, builder)}")]


def test_own_models_agree_and_the_report_is_json(capsys: pytest.CaptureFixture) -> None:
    argv = ["compare", *models(("torch", "torch", "dict_of_heads"), ("nnx", "nnx", "dict_of_heads")),
            "--input", "shape=2,4", "--format", "json"]
    assert main(argv) == 0
    tables = json.loads(capsys.readouterr().out)
    assert tables[0]["rows"][0][:2] == ["torch -> nnx", "yes"]
    items = {(row[0], row[1]) for row in tables[1]["rows"]}
    assert ("layer", "heads.cls") in items and ("grad", "trunk.weight") in items


def test_a_fused_activation_is_named_as_the_first_layer_that_differs(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """Keras's Dense(activation='relu') outputs after the ReLU: outputs agree, the layer 'hidden' does not."""
    rules = tmp_path / "rename.json"
    rules.write_text(json.dumps([[r"0\.0\.(.*)", r"hidden.\1"], [r"1\.(.*)", r"output.\1"]]))
    argv = ["compare", *models(("torch", "torch", "sequential_in_sequential"), ("keras", "keras", "named_layers")),
            "--input", "shape=3,4", "--rename", str(rules), "--format", "json"]
    assert main(argv) == 1
    row = json.loads(capsys.readouterr().out)[0]["rows"][0]
    assert row[1] == "no" and row[2] == "0" and row[5] == "0.0", row


def test_bad_model_specs_are_usage_errors() -> None:
    for spec in ("torch", "torch=nomodule", "torch=unified_params.backends.torch_structures:nothing"):
        proc = subprocess.run([sys.executable, "-m", "unified_params.cli", "compare", "--model", spec, "--input",
                               "shape=2,4"], capture_output=True, text=True)
        assert proc.returncode == 2 and "--model" in proc.stderr, proc.stderr
