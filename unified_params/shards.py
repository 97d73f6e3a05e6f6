"""Sharded checkpoints, transformers-style: model-00001-of-0000N.safetensors + model.safetensors.index.json.

Atomic as a whole by versioned names and the index written last: new shards get names no current index
refers to (`model-00001-of-00004.safetensors`, or `model-00001-of-00004-b.safetensors` when the old set
uses those), each written to a temporary file, synced and renamed; then the index is replaced atomically,
which is the commit point; only then are shards the new index does not name removed. A crash before the
index is replaced leaves the old set loadable (new shards are orphans, removed by the next save); a crash
after leaves the new set loadable.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from . import errors
from .checkpoint import Origins, Spec, check_metadata, own_metadata, replacing, strict_json, user_path, write_file

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
SHARD = re.compile(r"model-(\d{5})-of-(\d{5})(-b)?\.safetensors")
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20,
         "GIB": 2**30, "TIB": 2**40}
MAX_INDEX = 100_000_000


def parse_size(size: int | str) -> int:
    """Bytes from an int or a string such as "2GB" (10**9) or "500MiB" (2**20, as transformers reads them)."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]I?B|B)?\s*", size, re.I | re.ASCII) \
        if isinstance(size, str) else None
    if match is None or float(match[1]) * UNITS[(match[2] or "").upper()] < 1:
        raise errors.CheckpointError(f"max_shard_size={size!r:.40} is not a size: give bytes (an int > 0) or a "
                                     f"string such as '2GB' or '500MiB'")
    return int(float(match[1]) * UNITS[(match[2] or "").upper()])


def split(specs: list[Spec], limit: int) -> list[list[Spec]]:
    """Consecutive groups of tensors of at most `limit` bytes each (a larger tensor gets a shard of its own)."""
    groups: list[list[Spec]] = [[]]
    size = 0
    for spec in specs:
        n = int(np.prod(spec[2], dtype=np.int64)) * np.dtype(spec[1]).itemsize
        if groups[-1] and size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(spec)
        size += n
    return groups


def _current(folder: str) -> set[str]:
    """The shard files the folder's current index refers to (none if it has no readable index)."""
    try:
        return set(_read_index(os.path.join(folder, INDEX))[1].values())
    except errors.CheckpointError:
        return set()


def plan(shown: str, specs: list[Spec], max_shard_size: int | str) -> tuple[str, list[str], list[list[Spec]]]:
    """The folder (created if its parent exists), the new shard file names and the tensors of each."""
    limit = parse_size(max_shard_size)
    folder = os.path.realpath(shown)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise errors.CheckpointError(f"cannot save shards into {shown!r}: it is a file; give a folder")
    if not os.path.isdir(os.path.dirname(folder)):
        raise errors.CheckpointError(f"cannot save shards into {shown!r}: its parent folder does not exist")
    os.makedirs(folder, exist_ok=True)
    groups = split(specs, limit)
    taken = _current(folder)
    names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    if taken & set(names):
        names = [n.replace(".safetensors", "-b.safetensors") for n in names]
    return folder, names, groups


def commit(shown: str, folder: str, names: list[str], groups: list[list[Spec]], extra: Mapping[str, str],
           backend: str) -> None:
    """Replace the index (the commit point), then remove the shards it no longer names."""
    weight_map = {s[0]: name for name, group in zip(names, groups) for s in group}
    total = sum(int(np.prod(s[2], dtype=np.int64)) * np.dtype(s[1]).itemsize for group in groups for s in group)
    index = {"metadata": {**extra, "total_size": total, "writer": "unified_params", "backend": backend},
             "weight_map": weight_map}
    with replacing(os.path.join(shown, INDEX), suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(index, f, indent=2)
    for stale in os.listdir(folder):
        if SHARD.fullmatch(stale) and stale not in names:
            os.unlink(os.path.join(folder, stale))


def save(path: str | bytes | os.PathLike, specs: list[Spec], values: Iterable[np.ndarray], backend: str,
         tied: list[list[str]], metadata: Mapping[str, str] | None, max_shard_size: int | str,
         origins: Origins | None = None) -> None:
    """Write shards then the index into the folder at path (created if its parent exists); see the module doc."""
    shown = user_path(path)
    extra = check_metadata(metadata)
    folder, names, groups = plan(shown, specs, max_shard_size)
    stream = iter(values)
    for name, group in zip(names, groups):
        meta = {**extra, **own_metadata([s[0] for s in group], backend, tied, origins)}
        with replacing(os.path.join(shown, name)) as tmp:
            write_file(tmp, group, (next(stream) for _ in group), meta)
    commit(shown, folder, names, groups, extra, backend)


def _read_index(index: str) -> tuple[str, dict[str, str]]:
    """The folder of an index file and its weight map (name -> shard file in that folder), strictly checked."""
    where = repr(index)
    try:
        with open(index, "rb") as f:
            text = f.read(MAX_INDEX + 1)
    except PermissionError as e:
        raise errors.CheckpointError(f"cannot read {where}: permission denied; make it readable") from e
    except OSError as e:
        raise errors.CheckpointError(f"cannot read index {where}: {e.strerror or e}") from e
    if len(text) > MAX_INDEX:
        raise errors.CheckpointError(f"index {where} is larger than {MAX_INDEX} bytes: it is not an index")
    try:
        data = strict_json(text.decode("utf-8"), "index", where)
    except UnicodeDecodeError as e:
        raise errors.CheckpointError(f"index {where} is not UTF-8 JSON: {e}") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise errors.CheckpointError(f"index {where} has no weight_map of tensor name -> shard file")
    outside = sorted({v for v in weight_map.values() if os.path.basename(v) != v or v in ("", ".", "..")})
    if outside:
        raise errors.CheckpointError(f"index {where} names shard files outside its folder: {outside[:3]}")
    return os.path.dirname(index), weight_map


def files_of(shown: str) -> tuple[list[str], dict[str, str] | None]:
    """The files of the checkpoint at shown (a file, a folder or an index) and the weight map they must match."""
    if os.path.isdir(shown):
        if os.path.exists(os.path.join(shown, INDEX)):
            shown = os.path.join(shown, INDEX)
        elif os.path.exists(os.path.join(shown, SINGLE)):
            return [os.path.join(shown, SINGLE)], None
        else:
            raise errors.CheckpointError(f"no checkpoint in folder {shown!r}: it has neither {INDEX} nor {SINGLE}")
    if not shown.endswith(".json"):
        return [shown], None
    folder, weight_map = _read_index(shown)
    return [os.path.join(folder, f) for f in dict.fromkeys(weight_map.values())], weight_map


def check_weight_map(shown: str, weight_map: dict[str, str] | None, found: Mapping[str, str]) -> None:
    """Every tensor of the shards is in the index under its own shard, and every indexed tensor exists."""
    if weight_map is None:
        return
    wrong = [n for n, f in found.items() if weight_map.get(n) != os.path.basename(f)]
    absent = [n for n in weight_map if n not in found]
    if wrong or absent:
        raise errors.CheckpointError(f"index {shown!r} does not match its shards (listed elsewhere or not at all: "
                                     f"{wrong[:5]}; listed but absent: {absent[:5]}): the set is incomplete or mixed")


Files = Callable[[str], tuple[list[str], dict[str, str] | None]]
