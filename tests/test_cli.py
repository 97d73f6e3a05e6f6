"""The command line: backends, compare and the conformance matrix, in each output format."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unified_params.cli import main
from unified_params.conformance.matrix import Run, matrix, runs


def test_backends_json(capsys) -> None:  # noqa: ANN001
    assert main(["backends", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)[0]
    names = [row[0] for row in table["rows"]]
    assert names[:5] == ["torch", "mxnet", "keras", "flax", "nnx"]
    assert all(row[2] == "yes" for row in table["rows"][:5])


def test_compare_markdown_shows_native_and_unified_names() -> None:
    out = subprocess.run([sys.executable, "-m", "unified_params.cli", "compare", "--backend", "torch",
                          "--backend", "mxnet", "--format", "markdown"],
                         capture_output=True, text=True, check=True).stdout
    assert "dense0_weight (8, 4)" in out and "| 0.weight " in out
    assert "torch vs mxnet" in out and "bitwise equal" in out and "DIFFERENT" not in out
    assert "| attention      | MultiheadAttention | not supported: Gluon 1.9 has no multi-head attention layer |" in out


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
    assert cells["E3"]["torch"] == "pass (partial)" and cells["E11"]["torch"] == "not supported"
    assert notes["E3/torch"] == "not supported: no grads"
    assert "AssertionError" in notes["E2/torch"]


def test_backends_says_nothing_when_everything_is_supported(capsys, monkeypatch) -> None:  # noqa: ANN001
    from unified_params.registry import adapter_class

    monkeypatch.setattr(adapter_class("torch"), "capabilities", {})
    assert main(["backends", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)[0]["rows"]
    for name, *_, unsupported in rows:
        capabilities = adapter_class(name).capabilities
        assert unsupported == ("; ".join(f"{k}: {v}" for k, v in capabilities.items()) if capabilities else "nothing")
    assert "nothing" in [row[-1] for row in rows]


@pytest.mark.parametrize("command", ["compare", "conformance"])
def test_unknown_backend_is_refused_naming_it(command: str, capsys) -> None:  # noqa: ANN001
    from unified_params.registry import names

    with pytest.raises(SystemExit) as exit_:
        main([command, "--backend", "torch", "--backend", "tourch"])
    assert exit_.value.code != 0
    err = capsys.readouterr()
    assert err.out == ""
    assert "'tourch'" in err.err and ", ".join(names()) in err.err


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_below_one_is_an_argparse_error(jobs: str, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--backend", "torch", "--jobs", jobs])
    assert exit_.value.code == 2 and "--jobs" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["missing folder", "under a file", "a folder", "unknown format"])
def test_plot_to_an_unwritable_place_fails_before_the_work(where: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.png").mkdir()
    target = {"missing folder": tmp_path / "no" / "plot.png", "under a file": tmp_path / "file" / "plot.png",
              "a folder": tmp_path / "folder.png", "unknown format": tmp_path / "plot.nope"}[where]
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--backend", "torch", "--format", "json", "--plot", str(target)])
    out = capsys.readouterr()
    assert exit_.value.code == 2 and out.out == ""
    assert "--plot" in out.err and str(target) in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.png"]


def test_compare_json_with_plot_keeps_stdout_json_and_names_the_file_written(tmp_path: Path,
                                                                             capsys) -> None:  # noqa: ANN001
    assert main(["compare", "--backend", "torch", "--format", "json", "--plot", str(tmp_path / "hist")]) == 0
    out = capsys.readouterr()
    tables = json.loads(out.out)
    assert tables and all({"title", "headers", "rows"} <= set(t) for t in tables)
    written = tmp_path / "hist.png"
    assert [p.name for p in tmp_path.iterdir()] == ["hist.png"]
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {written}" in out.err.splitlines()


REPORTED = """
import pytest

pytestmark = pytest.mark.unified_params


@pytest.mark.feature("E3")
def test_e3_supported(backend):
    pass


@pytest.mark.feature("E3")
@pytest.mark.requires("native_grad")
def test_e3_needs_native_grad(backend):
    pass


@pytest.mark.feature("cross: transfer")
def test_transfer(pair):
    if pair == ("keras", "torch"):
        raise AttributeError("'Zoo' object has no attribute 'conv'")
"""


def test_matrix_notes_keep_the_message_blame_the_pair_and_mark_partial_support(tmp_path: Path) -> None:
    from unified_params.conformance.plugin import backend_label
    from unified_params.registry import adapter_class

    (tmp_path / "test_reported.py").write_text(REPORTED)
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                    str(tmp_path), "--backend", "torch", "--backend", "keras", "--up-report", str(report)],
                   capture_output=True, cwd=tmp_path)
    features, cells, notes = matrix([Run("x", [], {}, rows=json.loads(report.read_text()))])
    keras = backend_label("keras")
    assert ("native_grad" in adapter_class("keras").capabilities
            and "native_grad" not in adapter_class("torch").capabilities)
    assert cells["E3"] == {"torch": "pass", keras: "pass (partial)"}
    assert notes[f"E3/{keras}"] == "not supported: " + adapter_class("keras").capabilities["native_grad"]
    assert cells["cross: transfer"] == {f"torch->{keras}": "pass", f"{keras}->torch": "fail"}
    assert "AttributeError: 'Zoo' object has no attribute 'conv'" in notes[f"cross: transfer/{keras}->torch"]
