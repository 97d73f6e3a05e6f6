"""`unified-params inspect FILE`: what a checkpoint holds (names, shapes, dtypes, tied groups, provenance) and whether
it verifies.

The headers are judged as `pm.load` judges them; every tensor's CRC-32 is then checked, one tensor at a time.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import errors
from .checkpoint import RESERVED, crc32, strict_json
from .checkpoint_load import Source, opened

Table = tuple[str, list[str], list[list[Any]]]


def _verdict(statuses: set[str]) -> str:
    if "MISMATCH" in statuses:
        return "MISMATCH: the file is corrupt"
    if "no checksum" in statuses:
        return "some files have no checksum table (not written by pm.save)"
    return "all verified" if statuses else "no tensors"


def _origins(source: Source) -> dict[str, str]:
    """name -> "initializer, seed N" from one file's provenance metadata; CheckpointError if it is malformed."""
    text = source.header.metadata.get("provenance")
    if text is None:
        return {}
    table = strict_json(text, "provenance", repr(source.shown))
    if not isinstance(table, dict) or not all(isinstance(v, dict) and isinstance(v.get("initializer"), str)
                                              for v in table.values()):
        raise errors.CheckpointError(f"{source.shown!r} has a malformed 'provenance' entry: expected name -> "
                                     f"{{'initializer': repr, 'seed': int}}")
    return {name: f"{v['initializer']}, seed {v.get('seed')}" for name, v in table.items()}


def tables(path: str | bytes | os.PathLike) -> tuple[list[Table], bool]:
    """The tables `inspect` prints, and True when every tensor that has a checksum matches it."""
    with opened(path) as (shown, where, metadata):
        scratch = np.empty(max((loc.entry.end - loc.entry.start for loc in where.values()), default=0), np.uint8)
        rows, ok = [], True
        sharded = len({loc.source.shown for loc in where.values()}) > 1
        origins = {n: o for source in {loc.source for loc in where.values()} for n, o in _origins(source).items()}
        for name, loc in where.items():
            sums = loc.source.sums
            if sums is None:
                status = "no checksum"
            else:
                status = "ok" if crc32(loc.read(scratch)) == sums[name] else "MISMATCH"
                ok &= status == "ok"
            rows.append([name, str(loc.entry.shape), loc.entry.dtype.name, loc.entry.end - loc.entry.start,
                         *([os.path.basename(loc.source.shown)] if sharded else []), origins.get(name, "-"),
                         status])
        tied = json.loads(metadata["tied"]) if "tied" in metadata else []
        size = sum(loc.entry.end - loc.entry.start for loc in where.values())
        summary = [["file", shown], ["writer", metadata.get("writer", metadata.get("format", "unknown"))],
                   ["saved from", metadata.get("backend", "unknown")],
                   ["format version", metadata.get("format_version", "-")],
                   ["layout", metadata.get("layout", "canonical (assumed)")],
                   ["tensors", f"{len(rows)}, {size:,} bytes"],
                   ["checksums", _verdict({r[-1] for r in rows})]]
        summary += [[f"metadata {k!r}", v] for k, v in metadata.items() if k not in RESERVED]
    headers = ["name", "shape", "dtype", "bytes", *(["file"] if sharded else []), "provenance", "checksum"]
    out: list[Table] = [("Checkpoint", ["", ""], summary), ("Tensors", headers, rows)]
    if tied:
        out.append(("Tied groups (saved once, under the first name)", ["names"], [[", ".join(g)] for g in tied]))
    return out, ok
