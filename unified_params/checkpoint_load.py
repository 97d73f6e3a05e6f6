"""pm.load, streamed: headers judged before any data, checksums verified one tensor at a time, then written.

Three phases, all or nothing: (1) the headers alone: every name, shape, dtype and byte range against the
model (a tensor the model lacks, or a wrong size, is refused without reading its data); (2) every tensor
to be written is read, verified against its CRC-32 and cast-checked, holding one tensor at a time;
(3) each is read again straight into the parameter's memory where the adapter allows (its fill), else
through one array. Nothing is written unless phases 1 and 2 pass and the files are unchanged since.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from . import errors, safetensors_io, shards
from .atomic import hold_interrupts
from .checkpoint import crc32, named, open_for_reading, trusted_checksums, user_path
from .dtypes import resolve
from .fit import Target, fit_value, plan_state, tied_conflict
from .matching import Rename, library_renamed, rename_state
from .regions import Region
from .safetensors_io import Entry


@dataclass(eq=False)
class Source:
    """One open checkpoint file: the name to show, its header and its trusted checksums (None: a foreign file)."""

    shown: str
    file: BinaryIO
    header: safetensors_io.Header
    sums: dict[str, int] | None
    stamp: int = 0


@dataclass
class Located:
    """Where one tensor of a (possibly sharded) checkpoint lives."""

    source: Source
    entry: Entry

    def read(self, scratch: np.ndarray | None = None) -> np.ndarray:
        return safetensors_io.read_tensor(self.source.file, self.entry, repr(self.source.shown), scratch)

    def filler(self, primary: str, target: Target, cast: bool) -> Callable[..., None]:
        """fn(out) that puts this tensor into `out` (native memory where the adapter allows), cast as planned;
        fn(out, region) reads only that block of it (a device's shard: a checkpoint loads onto any mesh)."""
        def fn(out: np.ndarray, region: Region | None = None) -> None:
            if region is not None and not region.whole:
                same = out.dtype == self.entry.dtype
                block = out if same else np.empty(region.block_shape, self.entry.dtype)
                safetensors_io.read_region(self.source.file, self.entry, region, block, repr(self.source.shown))
                if not same:
                    out[...] = block
            elif out.dtype == self.entry.dtype and out.flags.c_contiguous:
                safetensors_io.read_into(self.source.file, self.entry, out, repr(self.source.shown))
            else:
                out[...] = fit_value(self.read(), primary, target, cast)

        return fn


def open_source(stack: ExitStack, shown: str) -> Source:
    """Open one file and judge its header and metadata (no tensor data is read)."""
    f = stack.enter_context(open_for_reading(shown))
    header = safetensors_io.read_header(f, repr(shown))
    sums = trusted_checksums(repr(shown), header.metadata, list(header.entries))
    return Source(shown, f, header, sums, os.fstat(f.fileno()).st_mtime_ns)


def locate(sources: list[Source]) -> dict[str, Located]:
    """name -> its file and byte range over every source; a name in two files is refused."""
    out: dict[str, Located] = {}
    for source in sources:
        for name, entry in source.header.entries.items():
            if name in out:
                raise errors.CheckpointError(f"tensor {name!r} is in both {out[name].source.shown!r} and "
                                             f"{source.shown!r}: the shards overlap")
            out[name] = Located(source, entry)
    return out


@contextmanager
def opened(path: str | bytes | os.PathLike) -> Iterator[tuple[str, dict[str, Located], dict[str, str]]]:
    """The user's path, every tensor's location and the first file's metadata, with the files open.

    path is a file, a folder (model.safetensors.index.json or model.safetensors in it) or an index file.
    """
    shown = user_path(path)
    files, weight_map = shards.files_of(shown)
    with ExitStack() as stack:
        sources = [open_source(stack, f) for f in files]
        where = locate(sources)
        shards.check_weight_map(shown, weight_map, {n: loc.source.shown for n, loc in where.items()})
        yield shown, where, sources[0].header.metadata


def _verified(loc: Located, scratch: np.ndarray) -> np.ndarray:
    array = loc.read(scratch)
    sums = loc.source.sums
    if sums is not None and crc32(array) != sums[loc.entry.name]:
        raise errors.CheckpointError(f"{loc.source.shown!r} is corrupt: the data of {loc.entry.name} does not "
                                     f"match its checksum")
    return array


def _unchanged(sources: set[Source]) -> None:
    """Refuse before writing if a file was replaced or modified since its header was read."""
    for source in sources:
        then, now = os.fstat(source.file.fileno()), os.stat(source.shown)
        if (then.st_ino, then.st_size, then.st_mtime_ns) != (now.st_ino, now.st_size, now.st_mtime_ns) \
                or then.st_mtime_ns != source.stamp:
            raise errors.CheckpointError(f"{source.shown!r} changed while it was being loaded; nothing was written")


def _in_file_order(names: list[str], where: dict[str, Located]) -> list[str]:
    return sorted(names, key=lambda n: (where[n].source.shown, where[n].entry.start))


def load(path: str | bytes | os.PathLike, target: Target, fill: Callable[[str, Callable[[np.ndarray], None]], None],
         strict: bool = True, cast: bool = False, rename: Rename | None = None, together: Collection[str] = (),
         write_many: Callable[[list[tuple[str, np.ndarray]]], None] | None = None, *,
         library: Callable[[list[str]], dict[str, str]] | None = None,
         settle: Callable[[dict[str, tuple[int, ...]]], None] | None = None) -> None:
    """Load a checkpoint into target, all or nothing, one tensor at a time.

    fill(primary name, fn) lets fn write one verified tensor in place (an adapter's fill). The primary names in
    `together` (tensors made of several native arrays, which may refuse values) go first, in one write_many.
    library(names) maps the names a framework library writes to the model's (Adapter.checkpoint_names), before rename;
    settle(shapes) gives parameters whose shape is not known yet the file's shapes before the first write.
    """
    with opened(path) as (shown, found, metadata), named(shown, metadata):
        native = library_renamed({n: n for n in found}, library(list(found)) if library else {})
        where = {new: found[old] for new, old in rename_state(native, rename).items()}
        specs = {n: (loc.entry.shape, loc.entry.dtype.newbyteorder("=")) for n, loc in where.items()}
        given, tied = plan_state(specs, target, strict, cast)
        primary_of = {name: primary for primary, name in given.items()}
        aliased = {n for alias, primary in tied for n in (alias, given[primary])}
        sums: dict[str, int] = {}
        reads = _in_file_order(list({*primary_of, *aliased}), where)
        scratch = np.empty(max((where[n].entry.end - where[n].entry.start for n in reads), default=0), np.uint8)
        for name in reads:
            array = _verified(where[name], scratch)
            if name in aliased:
                own = where[name].source.sums
                sums[name] = crc32(array) if own is None else own[where[name].entry.name]
            if name in primary_of and array.dtype != resolve(target.dtypes[primary_of[name]]):
                fit_value(array, primary_of[name], target, cast)
        del scratch
        conflicts = [c for alias, primary in tied if sums[alias] != sums[given[primary]]
                     and (c := tied_conflict(alias, primary, where[alias].read(), where[given[primary]].read()))]
        if conflicts and strict:
            raise errors.ParameterNotFoundError("state does not fit the model, nothing was written; unexpected: "
                                                + ", ".join(conflicts))
        _unchanged({where[n].source for n in reads})
        with hold_interrupts():
            shapes = {p: tuple(where[n].entry.shape) for p, n in given.items() if p in target.pending}
            if shapes and settle is not None:
                settle(shapes)
            order = _in_file_order(list(primary_of), where)
            batch = [n for n in order if primary_of[n] in together]
            if batch:
                write_many([(primary_of[n], _value(where[n].filler(primary_of[n], target, cast), primary_of[n], target))
                            for n in batch])
            for name in order:
                if primary_of[name] not in together:
                    fill(primary_of[name], where[name].filler(primary_of[name], target, cast))


def _value(fill: Callable[[np.ndarray], None], name: str, target: Target) -> np.ndarray:
    out = np.empty(target.shapes[name], resolve(target.dtypes[name]))
    fill(out)
    return out
