"""Checkpoints on every backend: atomic saves, refused bad files (truncated, corrupt, lying headers, other
architectures), and dtype changes only with cast=True, float16 and bfloat16 included.

Values are read back with the framework's own API (the examples modules' oracles) or with safetensors'
own reader; bad files are crafted byte by byte from the safetensors format (8-byte little-endian header
length, JSON header with dtype, shape and data_offsets, then the data).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from archs import Layer, NotBuildable, Spec, build
from safetensors.numpy import load_file, save_file

import unified_params as up
from unified_params.conformance.test_errors import (
    assert_unchanged,
    native_state,
    wrapped,
)
from unified_params.dtypes import resolve

feature = pytest.mark.feature
pytestmark = pytest.mark.unified_params


def parse(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the data section of a safetensors file."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def assemble(header: dict[str, Any], body: bytes, length: int | None = None) -> bytes:
    """A safetensors file from a header and data; `length` overrides the header length it claims."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + body


def last_tensor(header: dict[str, Any]) -> str:
    return max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])


def saved(ex: ModuleType, tmp_path: Path, value: float = 1.0) -> tuple[up.ParamAPI, Path, bytes]:
    """An mlp set to `value` everywhere and saved; its view, the path and the file's bytes."""
    pm = wrapped(ex.mlp())
    pm.init(up.init.Constant(value))
    path = tmp_path / "model.safetensors"
    pm.save(path)
    return pm, path, path.read_bytes()


def assert_all(ex: ModuleType, pm: up.ParamAPI, value: float) -> None:
    for name in pm.names():
        assert (ex.native_value(pm, name) == value).all(), name


@pytest.mark.parametrize("failure", ["half-written", "rename", "interrupt"])
@feature("checkpoints")
def test_failed_save_leaves_the_old_file_intact(ex: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                failure: str) -> None:
    pm, path, old = saved(ex, tmp_path, 1.0)
    pm.init(up.init.Constant(2.0))
    error = KeyboardInterrupt if failure == "interrupt" else OSError
    adapter = pm._model.adapter
    real_view, calls = adapter.view, []

    def fail_between_tensors(slot: Any) -> Any:
        calls.append(slot)
        if len(calls) == 2:
            raise error("disk full")
        return real_view(slot)

    def refuse(src: str, dst: str) -> None:
        raise OSError("rename refused")

    if failure == "rename":
        monkeypatch.setattr(os, "replace", refuse)
    else:
        monkeypatch.setattr(adapter, "view", fail_between_tensors)
    with pytest.raises(error):
        pm.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    fresh = wrapped(ex.mlp())
    fresh.load(path)
    assert_all(ex, fresh, 1.0)


@feature("checkpoints")
def test_save_replaces_and_keeps_permissions(ex: ModuleType, tmp_path: Path) -> None:
    pm, path, _ = saved(ex, tmp_path, 1.0)
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    path.chmod(0o640)
    pm.init(up.init.Constant(3.0))
    pm.save(path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert all((v == 3.0).all() for v in load_file(path).values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def _cuts(data: bytes) -> list[int]:
    (length,) = struct.unpack("<Q", data[:8])
    return [0, 4, 8, 8 + length // 2, 8 + length, 8 + length + 3, len(data) - 1]


@pytest.mark.parametrize("cut", range(7))
@feature("checkpoints")
def test_truncated_file_is_refused(ex: ModuleType, tmp_path: Path, cut: int) -> None:
    pm, path, data = saved(ex, tmp_path, 1.0)
    pm.init(up.init.Constant(5.0))
    before = native_state(ex, pm)
    path.write_bytes(data[: _cuts(data)[cut]])
    with pytest.raises(up.CheckpointError, match="truncated or corrupt"):
        pm.load(path)
    assert_unchanged(ex, pm, before)


def _lying(data: bytes, how: str) -> bytes:
    header, body = parse(data)
    last = last_tensor(header)
    if how == "length past the end":
        text = data[8:8 + struct.unpack("<Q", data[:8])[0]]
        return struct.pack("<Q", len(data)) + text + body
    if how == "huge length":
        return struct.pack("<Q", 2**62) + data[8:]
    if how == "data past the end":
        header[last]["shape"] = [header[last]["shape"][0] + 1, *header[last]["shape"][1:]]
        header[last]["data_offsets"][1] += 4 * int(np.prod(header[last]["shape"][1:], dtype=np.int64))
        return assemble(header, body)
    if how == "shape bigger than its data":
        header[last]["shape"] = [s * 2 for s in header[last]["shape"]]
        return assemble(header, body)
    if how == "overlapping offsets":
        header[last]["data_offsets"] = [0, header[last]["data_offsets"][1] - header[last]["data_offsets"][0]]
        return assemble(header, body)
    if how == "unknown dtype":
        header[last]["dtype"] = "F99"
        return assemble(header, body)
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["length past the end", "huge length", "data past the end",
                                 "shape bigger than its data", "overlapping offsets", "unknown dtype"])
@feature("checkpoints")
def test_header_that_claims_more_than_the_file_holds_is_refused(ex: ModuleType, tmp_path: Path, how: str) -> None:
    pm, path, data = saved(ex, tmp_path, 1.0)
    pm.init(up.init.Constant(5.0))
    before = native_state(ex, pm)
    path.write_bytes(_lying(data, how))
    with pytest.raises(up.CheckpointError):
        pm.load(path)
    assert_unchanged(ex, pm, before)


@pytest.mark.parametrize("how", ["flipped data byte", "junk", "empty", "folder", "no file", "bad checksum table",
                                 "native layout", "newer format"])
@feature("checkpoints")
def test_corrupt_or_foreign_file_is_refused(ex: ModuleType, tmp_path: Path, how: str) -> None:
    pm, path, data = saved(ex, tmp_path, 1.0)
    pm.init(up.init.Constant(5.0))
    before = native_state(ex, pm)
    header, body = parse(data)
    meta = header["__metadata__"]
    if how == "flipped data byte":
        spot = len(data) - len(body) + header[last_tensor(header)]["data_offsets"][0]
        path.write_bytes(data[:spot] + bytes([data[spot] ^ 0x10]) + data[spot + 1:])
    elif how == "junk":
        path.write_bytes(os.urandom(256))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "folder":
        path.unlink()
        path.mkdir()
    elif how == "no file":
        path.unlink()
    else:
        meta.update({"bad checksum table": {"crc32": "{not json"}, "native layout": {"layout": "native"},
                     "newer format": {"format_version": "2"}}[how])
        path.write_bytes(assemble(header, body))
    with pytest.raises(up.CheckpointError) as err:
        pm.load(path)
    assert "model.safetensors" in str(err.value)
    if how == "flipped data byte":
        assert "does not match its checksum" in str(err.value)
    assert_unchanged(ex, pm, before)


@feature("checkpoints")
def test_checkpoint_of_another_architecture_is_refused(ex: ModuleType, tmp_path: Path) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    nested, eager = wrapped(ex.nested()), wrapped(ex.eager())
    nested.save(tmp_path / "nested.safetensors")
    eager.save(tmp_path / "eager.safetensors")
    with pytest.raises(up.ParameterNotFoundError,
                       match="saved from .*missing: 0.weight.*unexpected: .*0.block 0.0.weight"):
        pm.load(tmp_path / "nested.safetensors")
    with pytest.raises(up.ShapeMismatchError, match=r"0.weight: checkpoint \(256, 20\) vs model \(8, 4\)"):
        pm.load(tmp_path / "eager.safetensors")
    assert_unchanged(ex, pm, before)


TIED = Spec(4, (Layer(8), Layer(8), Layer(8, shares=1), Layer(1)), "relu")
UNTIED = Spec(4, (Layer(8), Layer(8), Layer(8), Layer(1)), "relu")


@feature("checkpoints")
def test_tied_and_untied_checkpoints_do_not_mix(backend: str, ex: ModuleType, tmp_path: Path) -> None:
    tied, untied = (wrapped(build(backend, spec)) for spec in (TIED, UNTIED))
    tied.init(up.init.Uniform(-1, 1), seed=1)
    untied.init(up.init.Uniform(-1, 1), seed=2)
    before_tied, before_untied = native_state(ex, tied), native_state(ex, untied)
    tied.save(tmp_path / "tied.safetensors")
    untied.save(tmp_path / "untied.safetensors")
    with pytest.raises(up.ParameterNotFoundError, match="missing: 4.weight, 4.bias"):
        untied.load(tmp_path / "tied.safetensors")
    with pytest.raises(up.ParameterNotFoundError, match="4.weight \\(tied to 2.weight"):
        tied.load(tmp_path / "untied.safetensors")
    assert_unchanged(ex, tied, before_tied)
    assert_unchanged(ex, untied, before_untied)
    same = {k: v for k, v in load_file(tmp_path / "tied.safetensors").items()}
    same["4.weight"], same["4.bias"] = same["2.weight"], same["2.bias"]
    save_file(same, str(tmp_path / "spelled-out.safetensors"))
    tied.init(up.init.Zeros())
    tied.load(tmp_path / "spelled-out.safetensors")
    assert_unchanged(ex, tied, before_tied)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@feature("checkpoints")
def test_checkpoint_dtype_changes_only_with_cast(ex: ModuleType, tmp_path: Path, dtype: str) -> None:
    pm = wrapped(ex.mlp())
    before = native_state(ex, pm)
    values = {n: (np.arange(v.size).reshape(v.shape) / 4 - 2).astype(resolve(dtype)) for n, v in before.items()}
    path = tmp_path / f"{dtype}.safetensors"
    save_file(values, str(path))
    with pytest.raises(up.DtypeMismatchError, match=f"checkpoint {dtype} vs model float32.*cast=True"):
        pm.load(path)
    assert_unchanged(ex, pm, before)
    pm.load(path, cast=True)
    for name, value in values.items():
        got = ex.native_value(pm, name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, value.astype(np.float32), err_msg=name)


def _native_f32(ex: ModuleType, pm: up.ParamAPI, name: str) -> np.ndarray:
    """The framework's own value as float32 (torch tensors of bfloat16 have no numpy view)."""
    try:
        value = ex.native_value(pm, name)
    except TypeError:
        value = ex.native_object(pm, name).detach().float().numpy()
    return np.asarray(value).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@feature("checkpoints")
def test_half_precision_model_roundtrip_and_cast(backend: str, ex: ModuleType, tmp_path: Path, dtype: str) -> None:
    spec = Spec(3, (Layer(5), Layer(2)), "tanh", dtype=dtype)
    try:
        a, b = (wrapped(build(backend, spec)) for _ in range(2))
    except NotBuildable as e:
        pytest.skip(f"not supported: {e}")
    wide = wrapped(build(backend, Spec(3, (Layer(5), Layer(2)), "tanh")))
    assert {p.dtype for p in a.values()} == {dtype}
    a.init(up.init.Normal(std=1.0), seed=4)
    b.init(up.init.Zeros())
    path = tmp_path / "half.safetensors"
    a.save(path)
    on_disk = load_file(path)
    assert {v.dtype.name for v in on_disk.values()} == {dtype}
    want = {n: _native_f32(ex, a, n) for n in a.names()}
    for name, value in on_disk.items():
        np.testing.assert_array_equal(value.astype(np.float32), want[name], err_msg=name)
    b.load(path)
    for name in a.names():
        np.testing.assert_array_equal(_native_f32(ex, b, name), want[name], err_msg=name)
    before_wide = native_state(ex, wide)
    with pytest.raises(up.DtypeMismatchError, match="cast=True"):
        wide.load(path)
    assert_unchanged(ex, wide, before_wide)
    wide.load(path, cast=True)
    for name in a.names():
        np.testing.assert_array_equal(ex.native_value(wide, name), want[name], err_msg=name)
    wide.save(tmp_path / "wide.safetensors")
    with pytest.raises(up.DtypeMismatchError, match="cast=True"):
        b.load(tmp_path / "wide.safetensors")
    b.load(tmp_path / "wide.safetensors", cast=True)
    for name in a.names():
        np.testing.assert_array_equal(_native_f32(ex, b, name), want[name], err_msg=name)
