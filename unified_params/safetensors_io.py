"""The safetensors format, streamed: a strictly checked header before any data; tensors read and written one at a time.

A file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, data_offsets; optional
`__metadata__` of str -> str) padded with spaces to a multiple of 8, then the tensors' raw little-endian bytes.
"""
from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from . import errors
from .dtypes import resolve
from .regions import Region, pieces, put

MAX_HEADER = 100_000_000
CODES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
         "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
         "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool", "C64": "complex64"}
NAMES = {v: k for k, v in CODES.items()}


@dataclass(frozen=True)
class Entry:
    """One tensor of a file: its dtype and shape, and its bytes at [start, end) of the file."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Header:
    """What a file declares: its tensors in header order, its metadata, and where the data section starts."""

    entries: dict[str, Entry]
    metadata: dict[str, str]
    data_start: int


def _refuse(where: str, why: str) -> errors.CheckpointError:
    return errors.CheckpointError(f"{where} is not a readable safetensors checkpoint (truncated or corrupt?): {why}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a name appears twice in the header")
    return out


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not allowed")


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def read_header(f: BinaryIO, where: str) -> Header:
    """The file's header, checked strictly (offsets in range and contiguous, sizes = shape x itemsize, known dtypes).

    Only the header's bytes are read; any problem is a CheckpointError that names `where`.
    """
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        raise _refuse(where, f"the file has {size} bytes, fewer than the 8 of a header length")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_HEADER or 8 + length > size:
        raise _refuse(where, f"header length {length} is past the end of the file ({size} bytes) or too large")
    try:
        header = json.loads(f.read(length).decode("utf-8"), object_pairs_hook=_unique_keys,
                            parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise _refuse(where, f"header is not valid JSON: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(header, dict):
        raise _refuse(where, "header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _refuse(where, "__metadata__ is not a mapping of str -> str")
    data_start = 8 + length
    entries = {name: _entry(where, name, info, data_start) for name, info in header.items()}
    _check_coverage(where, entries, data_start, size)
    return Header(entries, metadata, data_start)


def _entry(where: str, name: str, info: Any, data_start: int) -> Entry:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise _refuse(where, f"entry {name!r:.80} must have exactly dtype, shape and data_offsets")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if code not in CODES:
        raise _refuse(where, f"tensor {name!r:.80} has unknown dtype {code!r:.20}")
    if not isinstance(shape, list) or not all(map(_count, shape)):
        raise _refuse(where, f"tensor {name!r:.80} has an invalid shape")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_count, offsets)) or offsets[0] > offsets[1]:
        raise _refuse(where, f"tensor {name!r:.80} has invalid data_offsets")
    dtype = resolve(CODES[code]).newbyteorder("<")
    if math.prod(shape) * dtype.itemsize != offsets[1] - offsets[0]:
        raise _refuse(where, f"tensor {name!r:.80}: shape {tuple(shape)} of {CODES[code]} needs "
                             f"{math.prod(shape) * dtype.itemsize} bytes, data_offsets give {offsets[1] - offsets[0]}")
    return Entry(name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])


def _check_coverage(where: str, entries: Mapping[str, Entry], data_start: int, size: int) -> None:
    """The tensors' byte ranges must tile the data section exactly: no gap, no overlap, nothing past the end."""
    at = data_start
    for e in sorted(entries.values(), key=lambda e: (e.start, e.end)):
        if e.start != at:
            what = "overlaps the tensor before it" if e.start < at else "leaves a gap before it"
            raise _refuse(where, f"tensor {e.name!r:.80} {what} (data_offsets do not tile the data)")
        at = e.end
    if at != size:
        raise _refuse(where, f"the tensors end at byte {at} but the file has {size} bytes")


def read_tensor(f: BinaryIO, entry: Entry, where: str, scratch: np.ndarray | None = None) -> np.ndarray:
    """One tensor's data: a fresh array, or a view of `scratch` (uint8, at least the tensor's size) for reuse."""
    n = entry.end - entry.start
    buffer = np.empty(n, np.uint8) if scratch is None else scratch[:n]
    read_into(f, entry, buffer, where)
    return buffer.view(entry.dtype).reshape(entry.shape)


def read_into(f: BinaryIO, entry: Entry, out: np.ndarray, where: str) -> None:
    """Read a tensor's bytes straight into a C-contiguous array of its size (native memory, a scratch buffer)."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    f.seek(entry.start)
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise _refuse(where, f"the data of {entry.name!r} ends early (the file changed while it was read?)")
        got += n


def read_region(f: BinaryIO, entry: Entry, region: Region, out: np.ndarray, where: str) -> None:
    """Read only the block `region` of a tensor into out (its block shape, the file's dtype): one read per run of
    consecutive bytes (one in all for a split along the first dimension), so a device reads just its shard."""
    item = entry.dtype.itemsize
    flat = out.reshape(-1) if out.flags.c_contiguous else None
    for piece in pieces(region, 0, math.prod(entry.shape)):
        for row in range(piece.rows):
            start = entry.start + (piece.src + row * piece.stride) * item
            dst = piece.dst + row * piece.width
            target = flat[dst : dst + piece.width] if flat is not None else np.empty(piece.width, out.dtype)
            view = memoryview(target.view(np.uint8))
            f.seek(start)
            got = 0
            while got < len(view):
                n = f.readinto(view[got:])
                if not n:
                    raise _refuse(where, f"the data of {entry.name!r} ends early (the file changed while it was read?)")
                got += n
            if flat is None:
                put(out, dst, target)


def code_of(dtype: np.dtype) -> str:
    """The safetensors dtype code of a numpy dtype."""
    try:
        return NAMES[np.dtype(dtype).name]
    except KeyError:
        raise errors.CheckpointError(f"dtype {np.dtype(dtype).name} cannot be stored in safetensors") from None


def header_bytes(specs: Iterable[tuple[str, np.dtype, tuple[int, ...]]], metadata: Mapping[str, str]) -> bytes:
    """The length prefix and padded JSON header for tensors of these dtypes and shapes, stored in this order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    at = 0
    for name, dtype, shape in specs:
        n = math.prod(shape) * np.dtype(dtype).itemsize
        header[name] = {"dtype": code_of(dtype), "shape": list(shape), "data_offsets": [at, at + n]}
        at += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_tensors(f: BinaryIO, specs: list[tuple[str, np.dtype, tuple[int, ...]]], metadata: Mapping[str, str],
                  values: Iterable[np.ndarray], seen: Callable[[str, np.ndarray], None] | None = None) -> int:
    """Write a whole file to f: the header from specs, then each value's bytes in order; the header's size.

    `seen(name, array)` is called on each array as it is written (checksums); a value that does not match its
    spec raises CheckpointError.
    """
    head = header_bytes(specs, metadata)
    f.write(head)
    count = 0
    for (name, dtype, shape), value in zip(specs, values):
        array = np.asarray(value)
        if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
            raise errors.CheckpointError(f"tensor {name!r} changed while it was saved: {array.shape} {array.dtype} "
                                         f"instead of {tuple(shape)} {np.dtype(dtype)}")
        if seen is not None:
            seen(name, array)
        f.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
        count += 1
    if count != len(specs):
        raise errors.CheckpointError(f"{len(specs) - count} tensor(s) were not given while saving")
    return len(head)
