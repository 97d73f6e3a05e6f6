"""Checkpoint policy: what pm.save writes (metadata, checksums, atomically) and what pm.load trusts; never pickle."""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import errors, safetensors_io

FORMAT = "unified_params"
HUB_FORMAT = "pt"  # what transformers and huggingface_hub require in "format": canonical layout is PyTorch's
FORMAT_VERSION = "1"
RESERVED = frozenset({"format", "writer", "format_version", "layout", "backend", "tied", "order", "crc32", "provenance",
                      "shards", "total_size"})


def user_path(path: str | bytes | os.PathLike) -> str:
    """The path as the user gave it, as a str (bytes and os.PathLike accepted); CheckpointError if empty."""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError as e:
        raise errors.CheckpointError(f"{path!r} is not a path: pass a str, bytes or os.PathLike") from e
    if not text:
        raise errors.CheckpointError("the checkpoint path is empty: pass a file name such as 'model.safetensors'")
    return text


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The user's extra metadata, refused before anything is written if it is not str -> str or uses a reserved key."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise errors.CheckpointError(f"metadata must be a dict of str -> str, not {type(metadata).__name__}")
    bad = [repr(k) for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise errors.CheckpointError(f"metadata {', '.join(bad[:5])}: keys and values must be str; convert them first")
    reserved = sorted(RESERVED & set(metadata))
    if reserved:
        raise errors.CheckpointError(f"metadata {', '.join(map(repr, reserved))}: reserved by the checkpoint format; "
                                     f"rename them (reserved: {', '.join(sorted(RESERVED))})")
    return dict(metadata)


Spec = tuple[str, np.dtype, tuple[int, ...]]


Origins = Mapping[str, Mapping[str, Any]]
"""name -> {"initializer": repr, "seed": int or None}: pm.provenance() of the tensors that have one."""


def own_metadata(names: list[str], backend: str, tied: list[list[str]], origins: Origins | None = None) -> dict[str, str]:
    """The metadata the format owns except the checksums: format, version, layout, backend, tied groups, order, and
    the provenance of the tensors among names that have one."""
    meta = {"format": HUB_FORMAT, "writer": FORMAT, "format_version": FORMAT_VERSION, "backend": backend,
            "layout": "canonical", "tied": json.dumps(tied), "order": json.dumps(names)}
    mine = {n: dict(origins[n]) for n in names if origins and n in origins}
    if mine:
        meta["provenance"] = json.dumps(mine)
    return meta


def save(path: str | bytes | os.PathLike, specs: list[Spec], values: Iterable[np.ndarray], backend: str,
         tied: list[list[str]], metadata: Mapping[str, str] | None = None, origins: Origins | None = None) -> None:
    """Stream tensors (name, dtype, shape in specs; values one at a time) into path atomically, with checksums."""
    shown = user_path(path)
    meta = {**check_metadata(metadata), **own_metadata([s[0] for s in specs], backend, tied, origins)}
    with replacing(shown) as tmp:
        write_file(tmp, specs, values, meta)


def crc_table(sums: Mapping[str, int]) -> str:
    """The CRC-32 table as JSON with fixed-width numbers, so the header can be rewritten in place once they are known."""
    return "{" + ",".join(f"{json.dumps(name)}:{value:10d}" for name, value in sums.items()) + "}"


def write_file(file: str, specs: list[Spec], values: Iterable[np.ndarray], metadata: Mapping[str, str]) -> None:
    """One safetensors file, one tensor at a time: header with placeholder checksums, data, then the real header."""
    sums = {name: 0 for name, _, _ in specs}
    with open(file, "wb") as f:
        placeholder = safetensors_io.write_tensors(f, specs, {**metadata, "crc32": crc_table(sums)}, values,
                                                   seen=lambda name, array: sums.__setitem__(name, crc32(array)))
        final = safetensors_io.header_bytes(specs, {**metadata, "crc32": crc_table(sums)})
        if len(final) != placeholder:
            raise errors.CheckpointError(f"the header of {file!r} changed size once checksums were known")
        f.seek(0)
        f.write(final)


def crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order), stored per tensor so that load() detects corrupt data."""
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def target_of(shown: str) -> str:
    """The file a save to `shown` replaces: a symlink's target (as open(path, "w") writes it); refusals up front."""
    real = os.path.realpath(shown)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise errors.CheckpointError(f"cannot save {shown!r}: folder {os.path.dirname(shown) or folder!r} does not "
                                     f"exist; create it first")
    if os.path.isdir(real):
        raise errors.CheckpointError(f"cannot save {shown!r}: it is a folder; give a file name "
                                     f"(or max_shard_size= to write a sharded checkpoint into a folder)")
    if os.path.exists(real) and not os.stat(real).st_mode & 0o222:
        raise errors.CheckpointError(f"cannot save {shown!r}: the file is write-protected; make it writable "
                                     f"(chmod u+w) or save elsewhere")
    return real


@contextmanager
def replacing(shown: str, suffix: str = ".safetensors") -> Iterator[str]:
    """A temporary file in the target's folder that replaces the target (synced) when the block succeeds.

    OS errors name the user's path, never the temporary file; on any failure the temporary file is removed.
    """
    real = target_of(shown)
    folder = os.path.dirname(real)
    mode = _file_mode(real)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    except OSError as e:
        raise _named(e, shown) from e
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except OSError as e:
        _remove(tmp)
        raise _named(e, shown) from e
    except BaseException:
        _remove(tmp)
        raise
    _fsync_folder(folder)


def _named(e: OSError, shown: str) -> OSError:
    """The same kind of OSError, naming the user's path instead of a temporary file."""
    if e.errno is None:
        return e
    return OSError(e.errno, f"cannot save checkpoint {shown!r}: {e.strerror}", shown)


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


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


def open_for_reading(shown: str) -> Any:
    """The checkpoint file opened for binary reading; CheckpointError naming the user's path otherwise."""
    if not os.path.exists(shown):
        raise errors.CheckpointError(f"no checkpoint file at {shown!r}")
    if os.path.isdir(shown):
        raise errors.CheckpointError(f"no checkpoint file at {shown!r}: it is a folder without a checkpoint")
    try:
        return open(shown, "rb")
    except PermissionError as e:
        raise errors.CheckpointError(f"cannot read {shown!r}: permission denied; make it readable (chmod u+r)") from e
    except OSError as e:
        raise errors.CheckpointError(f"cannot read {shown!r}: {e.strerror or e}") from e


def strict_json(text: str, field: str, where: str) -> Any:
    """A metadata field's JSON: no NaN/Infinity, no floats, no deep nesting; CheckpointError otherwise."""
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not allowed")

    try:
        return json.loads(text, parse_constant=refuse, parse_float=refuse)
    except (ValueError, RecursionError, TypeError) as e:
        raise errors.CheckpointError(f"{where} has an unreadable {field!r} entry: {type(e).__name__}: "
                                     f"{str(e)[:200]}") from None


def _names_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(n, str) for n in value)


def trusted_checksums(where: str, metadata: Mapping[str, str], names: list[str]) -> dict[str, int] | None:
    """Validate every field load() reads; the CRC-32 table (covering every tensor), or None for a foreign file."""
    own = FORMAT in (metadata.get("writer"), metadata.get("format"))
    layout = metadata.get("layout", "canonical")
    if layout != "canonical":
        raise errors.CheckpointError(f"{where} holds {layout!r:.80} layout, not canonical: it was not written by "
                                     f"pm.save()")
    version = metadata.get("format_version", FORMAT_VERSION) if own else FORMAT_VERSION
    if not re.fullmatch(r"[0-9]{1,6}", version, re.ASCII):
        raise errors.CheckpointError(f"{where} has format version {version!r:.40}, not a version number: it is corrupt")
    if int(version) > int(FORMAT_VERSION):
        raise errors.CheckpointError(f"{where} has format version {version!r}; this unified_params reads up to "
                                     f"{FORMAT_VERSION}: upgrade it")
    for field in ("tied", "order"):
        if field in metadata:
            value = strict_json(metadata[field], field, where)
            if not (_names_list(value) if field == "order" else isinstance(value, list) and all(map(_names_list, value))):
                raise errors.CheckpointError(f"{where} has a malformed {field!r} entry: expected lists of names")
    if "crc32" not in metadata:
        if own:
            raise errors.CheckpointError(f"{where} says it was written by pm.save() but has no checksum table: "
                                         f"it was altered")
        return None
    sums = strict_json(metadata["crc32"], "crc32", where)
    if not isinstance(sums, dict) or not all(type(v) is int and 0 <= v < 2**32 for v in sums.values()):
        raise errors.CheckpointError(f"{where} has an unreadable checksum table: expected name -> CRC-32 integers")
    uncovered, extra = [n for n in names if n not in sums], [n for n in sums if n not in set(names)]
    if uncovered or extra:
        raise errors.CheckpointError(f"{where} has a checksum table that does not cover its tensors (no checksum: "
                                     f"{_few(uncovered)}; no tensor: {_few(extra)}): it was altered")
    return sums


def _few(names: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return (shown + f", ... ({len(names)} in all)" if len(names) > n else shown) or "none"


@contextmanager
def named(path: str | bytes | os.PathLike, metadata: dict[str, str]) -> Iterator[None]:
    """Errors raised while loading a checkpoint's tensors name the file and the backend that saved it."""
    try:
        yield
    except errors.UnifiedParamsError as e:
        source = metadata.get("backend", "unknown")
        raise type(e)(f"checkpoint {user_path(path)!r} (saved from {source!r:.60}): {e}") from e
