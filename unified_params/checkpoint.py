"""Safetensors checkpoints: canonical names and layout, checksums, atomic writes; never pickle."""
from __future__ import annotations

import json
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import errors

FORMAT = "unified_params"
FORMAT_VERSION = "1"


def save(path: str | os.PathLike, state: dict[str, np.ndarray], backend: str, tied: list[list[str]],
         metadata: dict[str, str] | None = None) -> None:
    """Write a canonical state to path as safetensors: a temporary file in the same folder, then renamed."""
    from safetensors.numpy import save_file

    state = {k: np.asarray(v, order="C") for k, v in state.items()}  # ascontiguousarray would make 0-d (1,)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "backend": backend, "layout": "canonical",
            "tied": json.dumps(tied), "order": json.dumps(list(state)),
            "crc32": json.dumps({k: _crc32(v) for k, v in state.items()})}
    meta.update(metadata or {})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order), stored per tensor so that load() detects corrupt data."""
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _file_mode(path: str) -> int:
    """The permissions a checkpoint gets: those of the file it replaces, else 0o666 minus the umask (as open() gives)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0o077)
        os.umask(mask)
        return 0o666 & ~mask


def _fsync_folder(folder: str) -> None:
    """Make the rename durable where the platform allows syncing a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a safetensors file; CheckpointError if it is not a sound one."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise errors.CheckpointError(f"no checkpoint file at {path!r}")
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise errors.CheckpointError(f"{path!r} is not a readable safetensors checkpoint (truncated or corrupt?): {e}") from e
    return tensors, metadata


def verify(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Raise CheckpointError unless the file's layout, format version and checksums are ones load() can trust."""
    where = repr(os.fspath(path))
    if metadata.get("layout", "canonical") != "canonical":
        raise errors.CheckpointError(f"{where} holds {metadata['layout']!r} layout, not canonical: it was not written by pm.save()")
    version = metadata.get("format_version", FORMAT_VERSION) if metadata.get("format") == FORMAT else FORMAT_VERSION
    if not version.isdigit() or int(version) > int(FORMAT_VERSION):
        raise errors.CheckpointError(f"{where} has format version {version!r}; this unified_params reads up to {FORMAT_VERSION}: upgrade it")
    if "crc32" not in metadata:
        return
    try:
        sums = json.loads(metadata["crc32"])
        bad = [k for k, v in sums.items() if k not in tensors or _crc32(tensors[k]) != int(v)]
    except (ValueError, TypeError, AttributeError) as e:
        raise errors.CheckpointError(f"{where} has an unreadable checksum table: {e}") from e
    if bad:
        raise errors.CheckpointError(f"{where} is corrupt: the data of {', '.join(bad)} does not match its checksum")


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a sound checkpoint; CheckpointError for anything load() cannot trust."""
    tensors, metadata = read_file(path)
    verify(path, tensors, metadata)
    return tensors, metadata


@contextmanager
def named(path: str | os.PathLike, metadata: dict[str, str]) -> Iterator[None]:
    """Errors raised while loading a checkpoint's tensors name the file and the backend that saved it."""
    try:
        yield
    except errors.UnifiedParamsError as e:
        source = metadata.get("backend", "unknown")
        raise type(e)(f"checkpoint {os.fspath(path)!r} (saved from {source}): {e}") from e
