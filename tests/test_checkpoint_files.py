"""Checkpoint files on every backend: 0-d parameters round-trip; bad metadata, reserved keys, paths, permissions.

Scalars are built and read back with each framework's own API; files are checked with safetensors' own reader.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file
from test_checkpoints import assemble, last_tensor, parse, saved

import unified_params as up
from unified_params.backends import torch_examples
from unified_params.conformance.test_errors import wrapped

pytestmark = pytest.mark.unified_params
feature = pytest.mark.feature
Scalar = tuple[up.ParamAPI, Callable[[], dict[str, np.ndarray]]]


def _torch() -> Scalar:
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))
            self.register_buffer("step", torch.tensor(0, dtype=torch.int64))

    m = Scaled()
    return up.wrap(m), lambda: {"logit_scale": m.logit_scale.detach().numpy(), "step": m.step.numpy()}


def _keras() -> Scalar:
    import keras

    class Scaled(keras.layers.Layer):
        def build(self, shape: Any) -> None:
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, x: Any) -> Any:
            return x * self.scale

    m = Scaled()
    m.build((None, 2))
    return up.wrap(m), lambda: {"scale": np.asarray(m.scale.numpy())}


def _nnx() -> Scalar:
    import jax.numpy as jnp
    from flax import nnx

    class Scaled(nnx.Module):
        def __init__(self) -> None:
            self.lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.scale = nnx.Param(jnp.array(1.0))

    m = Scaled()
    return up.wrap(m), lambda: {"scale": np.asarray(m.scale.value)}


def _flax() -> Scalar:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class Scaled(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return nn.Dense(2)(x) * self.param("scale", nn.initializers.ones, ())

    m = Scaled()
    pm = up.wrap(m, m.init(jax.random.PRNGKey(0), jnp.ones((1, 2))))
    return pm, lambda: {"scale": np.asarray(pm.variables["params"]["scale"])}


def _mxnet() -> Scalar:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()

    class Scaled(mx.gluon.nn.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.scale = self.params.get("scale", shape=(), init="ones")

    with mx.util.np_shape(True):  # Gluon's legacy shapes read () as "unknown"; NumPy shapes make it 0-d
        m = Scaled()
        m.initialize()
    return up.wrap(m), lambda: {"scale": m.scale.data().asnumpy()}


def _equinox() -> Scalar:
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    class Scaled(eqx.Module):
        lin: eqx.nn.Linear
        scale: jax.Array

        def __init__(self) -> None:
            self.lin, self.scale = eqx.nn.Linear(2, 2, key=jax.random.PRNGKey(0)), jnp.array(1.0)

    pm = up.wrap(Scaled())
    return pm, lambda: {"scale": np.asarray(pm.model.scale)}


SCALARS = {"torch": _torch, "keras": _keras, "nnx": _nnx, "flax": _flax, "mxnet": _mxnet, "equinox": _equinox}


def scalar_model(backend: str) -> Scalar:
    """A model with a 0-d parameter (and on torch a 0-d integer buffer), and its native scalars by name."""
    return SCALARS[backend]()


def _scalar_names(pm: up.ParamAPI) -> list[str]:
    return [n for n, p in pm.items() if p.shape == ()]


@feature("checkpoints")
def test_scalar_parameters_roundtrip(backend: str, ex: ModuleType, tmp_path: Path) -> None:
    a, native_a = scalar_model(backend)
    b, native_b = scalar_model(backend)
    names = _scalar_names(a)
    assert len(names) == len(native_a())
    for i, name in enumerate(names):
        a[name].set(np.asarray(2 + i).astype(a[name].dtype))
    a.save(tmp_path / "scalars.safetensors")
    on_disk = load_file(tmp_path / "scalars.safetensors")
    assert {on_disk[n].shape for n in names} == {()}
    b.load(tmp_path / "scalars.safetensors")
    got, want = native_b(), native_a()
    for key, value in want.items():
        assert got[key].shape == () and value.shape == ()
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert sorted(float(v) for v in got.values()) == [2.0 + i for i in range(len(names))]


def _torch_pm(value: float) -> up.ParamAPI:
    pm = up.wrap(torch_examples.mlp().model)
    pm.init(up.init.Constant(value))
    return pm


def _rewrite_metadata(path: Path, **fields: str | None) -> None:
    """Replace (or with None delete) metadata fields of a saved file, keeping its tensors."""
    header, body = parse(path.read_bytes())
    meta = header["__metadata__"]
    for key, value in fields.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path.write_bytes(assemble(header, body))


BAD_METADATA = {
    "checksum Infinity": {"crc32": '{"0.weight": Infinity}'},
    "checksum 1e400": {"crc32": '{"0.weight": 1e400}'},
    "checksum float": {"crc32": '{"0.weight": 1.5}'},
    "checksum negative": {"crc32": '{"0.weight": -1}'},
    "checksum too big": {"crc32": '{"0.weight": 99999999999999999999999}'},
    "deeply nested checksums": {"crc32": "[" * 100_000 + "]" * 100_000},
    "deeply nested tied": {"tied": "[" * 100_000 + "]" * 100_000},
    "empty checksum table": {"crc32": "{}"},
    "checksum table of a list": {"crc32": "[1, 2]"},
    "non-ASCII version digits": {"format_version": "\u0661"},
    "empty version": {"format_version": ""},
    "order of numbers": {"order": "[1, 2]"},
    "no checksum table": {"crc32": None},
}


@pytest.mark.parametrize("case", list(BAD_METADATA))
def test_bad_metadata_is_a_checkpoint_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.safetensors"
    _torch_pm(1.0).save(path)
    pm = _torch_pm(5.0)
    _rewrite_metadata(path, **BAD_METADATA[case])
    with pytest.raises(up.CheckpointError) as err:
        pm.load(path)
    assert type(err.value) is up.CheckpointError and "model.safetensors" in str(err.value)
    assert {float(x) for n in pm.names() for x in torch_examples.native_value(pm, n).reshape(-1)} == {5.0}


@feature("checkpoints")
def test_checksum_table_must_cover_every_tensor(ex: ModuleType, tmp_path: Path) -> None:
    pm, path, _ = saved(ex, tmp_path, 1.0)
    header, body = parse(path.read_bytes())
    sums = json.loads(header["__metadata__"]["crc32"])
    last = last_tensor(header)
    spot = len(path.read_bytes()) - len(body) + header[last]["data_offsets"][0]
    data = bytearray(path.read_bytes())
    data[spot] ^= 0x10
    path.write_bytes(bytes(data))
    _rewrite_metadata(path, crc32=json.dumps({k: v for k, v in sums.items() if k != last}))
    with pytest.raises(up.CheckpointError, match=f"does not cover.*{last}"):
        pm.load(path)


def test_load_reads_the_format_itself_so_library_panics_cannot_escape(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The safetensors library panicked (pyo3's PanicException, a BaseException); load no longer calls it."""
    import safetensors
    import safetensors.numpy

    class PanicException(BaseException):
        pass

    def panic(*args: Any, **kwargs: Any) -> None:
        raise PanicException("index out of bounds")

    _torch_pm(3.0).save(tmp_path / "m.safetensors")
    for name in ("load", "load_file"):
        monkeypatch.setattr(safetensors.numpy, name, panic)
    monkeypatch.setattr(safetensors, "safe_open", panic)
    pm = _torch_pm(0.0)
    pm.load(tmp_path / "m.safetensors")
    assert {float(x) for n in pm.names() for x in torch_examples.native_value(pm, n).reshape(-1)} == {3.0}


@pytest.mark.parametrize("key", ["format", "writer", "format_version", "layout", "crc32", "tied", "order", "backend"])
def test_reserved_metadata_keys_are_refused_before_writing(tmp_path: Path, key: str) -> None:
    pm = up.wrap(torch_examples.mlp().model)
    with pytest.raises(up.CheckpointError, match=f"'{key}': reserved"):
        pm.save(tmp_path / "m.safetensors", metadata={"note": "mine", key: "x"})
    with pytest.raises(up.CheckpointError, match="must be str"):
        pm.save(tmp_path / "m.safetensors", metadata={"epoch": 3})
    assert list(tmp_path.iterdir()) == []
    pm.save(tmp_path / "m.safetensors", metadata={"note": "mine"})
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        assert f.metadata()["note"] == "mine"
    up.wrap(torch_examples.mlp().model).load(tmp_path / "m.safetensors")


def _values(path: Path) -> set[float]:
    return {float(x) for v in load_file(path).values() for x in v.reshape(-1)}


def test_path_errors_name_the_users_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    pm = _torch_pm(1.0)
    with pytest.raises(up.CheckpointError, match="path is empty"):
        pm.save("")
    with pytest.raises(up.CheckpointError, match="no checkpoint file at ''|path is empty"):
        pm.load("")
    missing = tmp_path / "nosuch" / "m.safetensors"
    with pytest.raises(up.CheckpointError, match=f"{missing}.*does not exist"):
        pm.save(missing)
    with pytest.raises(up.CheckpointError, match="is a folder"):
        pm.save(tmp_path)

    def read_only(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".tmp-abc.safetensors"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError) as err:
        pm.save(tmp_path / "m.safetensors")
    assert "m.safetensors" in str(err.value) and ".tmp-" not in str(err.value)
    assert err.value.filename == str(tmp_path / "m.safetensors")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_unreadable_file_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    pm = _torch_pm(1.0)
    path = tmp_path / "m.safetensors"
    pm.save(path)
    real_open = builtins.open

    def denied(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)  # the tests run as root, which chmod cannot lock out
    with pytest.raises(up.CheckpointError, match="permission denied") as err:
        pm.load(path)
    assert "corrupt" not in str(err.value) and str(path) in str(err.value)


def test_bytes_and_pathlike_paths(tmp_path: Path) -> None:
    class Where:
        def __init__(self, path: Path) -> None:
            self.path = path

        def __fspath__(self) -> str:
            return str(self.path)

    for i, path in enumerate([os.fsencode(tmp_path / "b.safetensors"), Where(tmp_path / "p.safetensors")]):
        _torch_pm(2.0 + i).save(path)
        pm = _torch_pm(0.0)
        pm.load(path)
        assert {float(x) for v in pm.state_dict().values() for x in v.reshape(-1)} == {2.0 + i}


def test_save_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.safetensors"
    link = tmp_path / "link.safetensors"
    _torch_pm(1.0).save(target)
    link.symlink_to(target)
    _torch_pm(2.0).save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _values(target) == {2.0}
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["m.safetensors"]
    dangling = tmp_path / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "real" / "new.safetensors")
    _torch_pm(3.0).save(dangling)
    assert dangling.is_symlink() and _values(tmp_path / "real" / "new.safetensors") == {3.0}


def test_write_protected_file_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    _torch_pm(1.0).save(path)
    path.chmod(0o444)
    old = path.read_bytes()
    with pytest.raises(up.CheckpointError, match="write-protected"):
        _torch_pm(2.0).save(path)
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def _pause_after_first_write(pm: up.ParamAPI, other: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make pm's next init stop after its first parameter and run `other` in a thread meanwhile.

    With the model's lock `other` waits for the init to finish (the join gives up after a moment);
    without it, `other` runs in the middle of the init.
    """
    import threading

    adapter = pm._model.adapter
    real_fill, started = adapter.fill, []

    def fill(slot: Any, fn: Any) -> None:
        real_fill(slot, fn)
        if not started:
            started.append(threading.Thread(target=other))
            started[0].start()
            started[0].join(timeout=0.5)

    monkeypatch.setattr(adapter, "fill", fill)
    return started


@feature("checkpoints")
def test_save_during_init_is_one_consistent_snapshot(ex: ModuleType, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pm = wrapped(ex.mlp())
    pm.init(up.init.Constant(1.0))
    path = tmp_path / "m.safetensors"
    started = _pause_after_first_write(pm, lambda: pm.save(path), monkeypatch)
    pm.init(up.init.Constant(2.0))
    started[0].join()
    assert _values(path) in ({1.0}, {2.0})


@feature("checkpoints")
def test_two_inits_in_two_threads_give_one_result(ex: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = wrapped(ex.mlp())
    started = _pause_after_first_write(pm, lambda: pm.init(up.init.Constant(3.0)), monkeypatch)
    pm.init(up.init.Constant(2.0))
    started[0].join()
    assert {float(x) for n in pm.names() for x in ex.native_value(pm, n).reshape(-1)} in ({2.0}, {3.0})
