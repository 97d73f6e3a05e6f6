"""`unified-params inspect FILE`: checked against safetensors' own reader; corrupt files exit non-zero."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

import unified_params as up
from unified_params.backends import torch_examples
from unified_params.cli import main

pytestmark = pytest.mark.unified_params


def _inspect(capsys: pytest.CaptureFixture, path: Path) -> tuple[int, dict[str, list], str]:
    code = main(["inspect", str(path), "--format", "json"])
    out, err = capsys.readouterr()
    return code, {t["title"]: t["rows"] for t in json.loads(out)} if out else {}, err


def test_inspect_lists_what_the_file_holds_and_verifies_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pm = up.wrap(torch_examples.tied().model)
    path = tmp_path / "tied.safetensors"
    pm.save(path, metadata={"epoch": "3"})
    code, found, _ = _inspect(capsys, path)
    assert code == 0
    with safe_open(str(path), framework="np") as f:
        want = {k: [str(tuple(f.get_slice(k).get_shape())), str(f.get_tensor(k).dtype)] for k in f.keys()}
    assert {r[0]: r[1:3] for r in found["Tensors"]} == want
    assert {r[-1] for r in found["Tensors"]} == {"ok"}
    summary = dict(found["Checkpoint"])
    assert summary["saved from"] == "torch" and summary["checksums"] == "all verified"
    assert summary["metadata 'epoch'"] == "3"
    assert found["Tied groups (saved once, under the first name)"] == [[", ".join(g)] for g in pm.tied()]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10
    path.write_bytes(bytes(data))
    code, found, _ = _inspect(capsys, path)
    assert code == 1 and "MISMATCH" in {r[-1] for r in found["Tensors"]}


def test_inspect_sharded_folder_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pm = up.wrap(torch_examples.nested().model)
    pm.save(tmp_path / "ckpt", max_shard_size=300)
    code, found, _ = _inspect(capsys, tmp_path / "ckpt")
    assert code == 0 and len({r[4] for r in found["Tensors"]}) > 1
    assert sorted(r[0] for r in found["Tensors"]) == sorted(pm.state_dict())
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    code, _, err = _inspect(capsys, tmp_path / "junk.safetensors")
    assert code == 1 and "junk.safetensors" in err


def test_inspect_shows_the_provenance_pm_save_recorded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    model = torch_examples.mlp().model
    pm = up.wrap(model).init(up.init.Normal(std=0.02), kind="weight", seed=7)
    with torch.no_grad():
        model[2].weight.add_(1)
    pm.save(tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        assert json.loads(f.metadata()["provenance"]) == {
            "0.weight": {"initializer": "Normal(mean=0.0, std=0.02)", "seed": 7}}
    code, found, _ = _inspect(capsys, tmp_path / "m.safetensors")
    assert code == 0
    assert {r[0]: r[-2] for r in found["Tensors"]} == {"0.weight": "Normal(mean=0.0, std=0.02), seed 7",
                                                       "0.bias": "-", "2.weight": "-", "2.bias": "-"}
