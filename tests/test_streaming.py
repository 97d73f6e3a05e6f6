"""Streaming checkpoints: headers judged before any data, one tensor at a time, all or nothing.

Files are checked with the safetensors library's own reader; bad headers are crafted byte by byte.
"""
from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file
from test_checkpoints import assemble, parse, saved

import unified_params as up
from unified_params import safetensors_io
from unified_params.backends import torch_examples
from unified_params.conformance.test_errors import assert_unchanged, native_state

pytestmark = pytest.mark.unified_params
feature = pytest.mark.feature
TB = 2**40


def _spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the tensors whose data load() reads from now on."""
    reads: list[str] = []
    real, real_into = safetensors_io.read_tensor, safetensors_io.read_into

    def read(f: Any, entry: safetensors_io.Entry, *args: Any) -> np.ndarray:
        reads.append(entry.name)
        return real(f, entry, *args)

    def read_into(f: Any, entry: safetensors_io.Entry, *args: Any) -> None:
        reads.append(entry.name)
        real_into(f, entry, *args)

    monkeypatch.setattr(safetensors_io, "read_tensor", read)
    monkeypatch.setattr(safetensors_io, "read_into", read_into)
    return reads


def _sparse_claim(path: Path, header: dict[str, Any], body: bytes, name: str, shape: list[int]) -> None:
    """Append a tensor of `shape` float32 to the file, its data a hole (a sparse file: no disk used)."""
    start = len(body)
    meta = header["__metadata__"]
    meta["crc32"] = json.dumps({**json.loads(meta["crc32"]), name: 0})
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [start, start + 4 * int(np.prod(shape))]}
    data = assemble(header, body)
    path.write_bytes(data)
    with open(path, "r+b") as f:
        f.truncate(len(data) + 4 * int(np.prod(shape)))


@pytest.mark.parametrize("claim", ["absent tensor", "oversized tensor"])
@feature("checkpoints")
def test_header_is_judged_before_any_data_is_read(ex: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  claim: str) -> None:
    pm, path, data = saved(ex, tmp_path, 1.0)
    pm.init(up.init.Constant(5.0))
    before = native_state(ex, pm)
    header, body = parse(data)
    if claim == "absent tensor":
        _sparse_claim(path, header, body, "huge.weight", [TB // 4])
        error, match = up.ParameterNotFoundError, "unexpected: huge.weight"
    else:
        name = max(pm.names(), key=lambda n: len(pm[n].shape))
        old = header.pop(name)
        body = body[:old["data_offsets"][0]] + body[old["data_offsets"][1]:]
        for info in header.values():
            if isinstance(info, dict) and "data_offsets" in info and info["data_offsets"][0] >= old["data_offsets"][1]:
                info["data_offsets"] = [o - (old["data_offsets"][1] - old["data_offsets"][0])
                                        for o in info["data_offsets"]]
        _sparse_claim(path, header, body, name, [TB // 8, 2])
        error, match = up.ShapeMismatchError, f"{name}: checkpoint \\({TB // 8}, 2\\)"
    reads = _spy_reads(monkeypatch)
    with pytest.raises(error, match=match):
        pm.load(path)
    assert reads == []
    assert_unchanged(ex, pm, before)


@pytest.mark.parametrize("how", ["overlap", "gap", "size not shape x itemsize", "duplicate name", "NaN offset",
                                 "negative shape", "boolean shape", "metadata not str", "not an object"])
def test_malformed_header_is_refused_without_reading_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          how: str) -> None:
    pm = up.wrap(torch_examples.mlp().model)
    path = tmp_path / "m.safetensors"
    pm.save(path)
    header, body = parse(path.read_bytes())
    first, second = [k for k in header if k != "__metadata__"][:2]
    text = None
    if how == "overlap":
        header[second]["data_offsets"][0] -= 4
    elif how == "gap":
        header[second]["data_offsets"][0] += 4
    elif how == "size not shape x itemsize":
        header[first]["shape"] = [1]
    elif how == "duplicate name":
        text = json.dumps(header).replace(f'"{second}"', f'"{first}"', 1)
    elif how == "NaN offset":
        text = json.dumps(header).replace(str(header[first]["data_offsets"]), "[0, NaN]", 1)
    elif how == "negative shape":
        header[first]["shape"] = [-8, -4]
    elif how == "boolean shape":
        header[first]["shape"] = [True, 32]
    elif how == "metadata not str":
        header["__metadata__"]["format_version"] = 1
    else:
        text = "[]"
    if text is not None:
        raw = text.encode() + b" " * (-len(text) % 8)
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    else:
        path.write_bytes(assemble(header, body))
    reads = _spy_reads(monkeypatch)
    with pytest.raises(up.CheckpointError, match="m.safetensors"):
        pm.load(path)
    assert reads == []


@pytest.mark.parametrize("failure", ["read error", "corrupt last tensor", "interrupt"])
@feature("checkpoints")
def test_failure_between_tensors_writes_nothing(ex: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                failure: str) -> None:
    pm, path, data = saved(ex, tmp_path, 1.0)
    pm.init(up.init.Constant(5.0))
    before = native_state(ex, pm)
    real, count = safetensors_io.read_tensor, []
    n = len(pm.state_dict())

    def read(f: Any, entry: safetensors_io.Entry, *args: Any) -> np.ndarray:
        count.append(entry.name)
        array = real(f, entry, *args)
        if len(count) == n:  # the last tensor of the verify pass: every other one has been read
            if failure == "read error":
                raise OSError("input/output error")
            if failure == "interrupt":
                raise KeyboardInterrupt
            return array + 1
        return array

    monkeypatch.setattr(safetensors_io, "read_tensor", read)
    error = {"read error": OSError, "corrupt last tensor": up.CheckpointError, "interrupt": KeyboardInterrupt}[failure]
    with pytest.raises(error):
        pm.load(path)
    assert_unchanged(ex, pm, before)


def test_streamed_file_is_read_by_the_safetensors_library(tmp_path: Path) -> None:
    import torch

    class Mixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f16 = torch.nn.Parameter(torch.randn(3, 5).half())
            self.bf16 = torch.nn.Parameter(torch.randn(7).bfloat16())
            self.f64 = torch.nn.Parameter(torch.randn(2, 2, 2).double())
            self.scalar = torch.nn.Parameter(torch.tensor(4.5))
            self.register_buffer("count", torch.arange(6, dtype=torch.int32).reshape(2, 3))
            self.register_buffer("mask", torch.tensor([True, False, True]))
            self.register_buffer("empty", torch.zeros(0, 4))

    m = Mixed()
    pm = up.wrap(m)
    path = tmp_path / "mixed.safetensors"
    pm.save(path, metadata={"note": "streamed"})
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["note"] == "streamed" and sorted(f.keys()) == sorted(pm.names())
        for name in f.keys():
            got, want = f.get_tensor(name), getattr(m, name)
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert torch.equal(got, want.detach()), name
    fresh = Mixed()
    up.wrap(fresh).load(path)
    for name in pm.names():
        assert torch.equal(getattr(fresh, name), getattr(m, name).detach()), name


def test_peak_memory_is_one_tensor(tmp_path: Path) -> None:
    """numpy reports its buffers to tracemalloc: save adds ~nothing, load adds one tensor (plus 10%), never a model."""
    import torch

    net = torch.nn.Sequential(*[torch.nn.Linear(512, 512, bias=False) for _ in range(8)])
    pm = up.wrap(net)
    largest = 512 * 512 * 4
    path = tmp_path / "big.safetensors"
    tracemalloc.start()
    try:
        pm.save(path)
        _, peak_save = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        pm.load(path)
        _, peak_load = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_save <= 0.1 * largest, peak_save
    assert peak_load <= 1.1 * largest, peak_load
    on_disk = load_file(path)
    for i, layer in enumerate(net):
        np.testing.assert_array_equal(on_disk[f"{i}.weight"], layer.weight.detach().numpy())
