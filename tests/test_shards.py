"""Sharded checkpoints against the Hugging Face Hub's own writer and loader; shard size arguments."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import unified_params as up

pytestmark = pytest.mark.unified_params


def test_bad_shard_sizes_are_refused(tmp_path: Path) -> None:
    pm = up.wrap(_torch_mlp())
    for bad in (0, -1, "two GB", "1.5 XB", "", True, 2.5):
        with pytest.raises(up.CheckpointError, match="max_shard_size"):
            pm.save(tmp_path / "ckpt", max_shard_size=bad)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def _torch_mlp() -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))


def test_sharded_folders_of_the_hugging_face_hub_load_both_ways(tmp_path: Path) -> None:
    """huggingface_hub's own writer and loader (as transformers uses them) and pm agree on the sharded format."""
    import torch
    from huggingface_hub import load_torch_model, save_torch_state_dict

    theirs, ours = _torch_mlp(), _torch_mlp()
    (tmp_path / "theirs").mkdir()
    save_torch_state_dict(theirs.state_dict(), tmp_path / "theirs", max_shard_size=20_000)
    assert len(list((tmp_path / "theirs").glob("model-*-of-*.safetensors"))) > 1
    pm = up.wrap(ours)
    pm.load(tmp_path / "theirs")
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    pm.init(up.init.Normal(std=1.0), seed=5)
    pm.save(tmp_path / "ours", max_shard_size="20KB")
    fresh = _torch_mlp()
    load_torch_model(fresh, tmp_path / "ours", strict=True)
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name].numpy(), value.numpy(), err_msg=name)
