"""Sharded checkpoints on every backend: transformers-style shards + index, loaded from a folder, an index or a
file; atomic as a whole (a save that fails leaves the old set loadable); an index that does not match its shards
is refused. Values are read back with the framework's own API."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import unified_params as up
from unified_params.conformance.test_errors import assert_unchanged, native_state, wrapped

feature = pytest.mark.feature
INDEX = "model.safetensors.index.json"


def _shards(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != INDEX)


@feature("checkpoints")
def test_sharded_save_and_load(ex: ModuleType, tmp_path: Path) -> None:
    a, b = wrapped(ex.nested()), wrapped(ex.nested())
    a.init(up.init.Normal(std=1.0), seed=3)
    b.init(up.init.Zeros())
    want = native_state(ex, a)
    largest = max(v.nbytes for v in want.values())
    folder = tmp_path / "ckpt"
    a.save(folder, max_shard_size=largest * 2)
    index = json.loads((folder / INDEX).read_text())
    files = _shards(folder)
    assert len(files) > 2 and files == sorted(set(index["weight_map"].values()))
    assert files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    assert sorted(index["weight_map"]) == sorted(a.state_dict())
    from safetensors.numpy import load_file

    total = 0
    for f in files:
        for name, value in load_file(folder / f).items():
            assert index["weight_map"][name] == f
            assert value.nbytes <= largest * 2 or len(load_file(folder / f)) == 1
            total += value.nbytes
    assert index["metadata"]["total_size"] == total
    for source in (folder, folder / INDEX, str(folder).encode()):
        b.init(up.init.Zeros())
        b.load(source)
        assert_unchanged(ex, b, want)


@feature("checkpoints")
def test_failed_sharded_save_leaves_the_old_set_loadable(ex: ModuleType, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a = wrapped(ex.nested())
    a.init(up.init.Constant(1.0))
    folder = tmp_path / "ckpt"
    limit = max(v.nbytes for v in native_state(ex, a).values()) * 2
    a.save(folder, max_shard_size=limit)
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    a.init(up.init.Constant(2.0))
    adapter = a._model.adapter
    real_view, calls, n = adapter.view, [], len(a.state_dict())

    def fail_in_the_last_shard(slot: Any) -> Any:
        calls.append(slot)
        if len(calls) == n:
            raise OSError("disk full")
        return real_view(slot)

    monkeypatch.setattr(adapter, "view", fail_in_the_last_shard)
    with pytest.raises(OSError, match="disk full"):
        a.save(folder, max_shard_size=limit)
    monkeypatch.undo()
    assert (folder / INDEX).read_bytes() == old[INDEX]
    assert all((folder / name).read_bytes() == data for name, data in old.items())
    b = wrapped(ex.nested())
    b.load(folder)
    assert {float(x) for v in native_state(ex, b).values() for x in v.reshape(-1)} == {1.0}
    a.save(folder, max_shard_size=limit)
    assert not any(p.name.startswith(".tmp-") for p in folder.iterdir())
    assert len(_shards(folder)) == len(old) - 1
    b.load(folder / INDEX)
    assert {float(x) for v in native_state(ex, b).values() for x in v.reshape(-1)} == {2.0}


@pytest.mark.parametrize("how", ["shard missing", "tensor listed under another shard", "name not in any shard",
                                 "path outside the folder", "no weight_map", "two shards hold one name"])
@feature("checkpoints")
def test_index_that_does_not_match_its_shards_is_refused(ex: ModuleType, tmp_path: Path, how: str) -> None:
    a = wrapped(ex.nested())
    folder = tmp_path / "ckpt"
    a.save(folder, max_shard_size=max(v.nbytes for v in native_state(ex, a).values()) * 2)
    b = wrapped(ex.nested())
    b.init(up.init.Constant(7.0))
    before = native_state(ex, b)
    index = json.loads((folder / INDEX).read_text())
    files = _shards(folder)
    names = list(index["weight_map"])
    if how == "shard missing":
        os.unlink(folder / files[-1])
    elif how == "tensor listed under another shard":
        index["weight_map"][names[0]] = files[-1]
    elif how == "name not in any shard":
        index["weight_map"]["9.weight"] = files[0]
    elif how == "path outside the folder":
        index["weight_map"][names[0]] = "../" + files[0]
    elif how == "no weight_map":
        index = {"metadata": {}}
    else:
        (folder / files[1]).write_bytes((folder / files[0]).read_bytes())
    (folder / INDEX).write_text(json.dumps(index))
    with pytest.raises(up.CheckpointError):
        b.load(folder)
    assert_unchanged(ex, b, before)
