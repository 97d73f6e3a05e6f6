"""Regions: the block of a canonical tensor that one device holds, and which pieces of which random chunks fill it.

The streams of rng.py cut a tensor into fixed chunks of its C-order elements. A device that holds the block
[start, stop) of a tensor generates only the chunks that meet its block and keeps the pieces inside it, so
its values are bitwise the same block of the unsharded tensor, with memory for its block plus one chunk.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Region:
    """The block [start, stop) (per canonical dimension) of a tensor of canonical shape `shape`."""

    shape: tuple[int, ...]
    start: tuple[int, ...]
    stop: tuple[int, ...]

    @classmethod
    def of(cls, shape: Sequence[int], index: Sequence[slice]) -> Region:
        """The region a tuple of step-1 slices (as JAX and numpy give them) selects in a tensor of this shape."""
        shape = tuple(int(d) for d in shape)
        bounds = [s.indices(d)[:2] for s, d in zip(tuple(index) + (slice(None),) * (len(shape) - len(index)), shape)]
        return cls(shape, tuple(b[0] for b in bounds), tuple(max(b) for b in bounds))

    @property
    def block_shape(self) -> tuple[int, ...]:
        return tuple(e - s for s, e in zip(self.start, self.stop))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(s, e) for s, e in zip(self.start, self.stop))

    @property
    def whole(self) -> bool:
        return self.start == (0,) * len(self.shape) and self.stop == self.shape

    def span(self) -> tuple[int, int]:
        """The C-order flat positions of the block's first element and one past its last."""
        if not math.prod(self.block_shape):
            return 0, 0
        first = int(np.ravel_multi_index(self.start, self.shape)) if self.shape else 0
        last = int(np.ravel_multi_index([e - 1 for e in self.stop], self.shape)) if self.shape else 0
        return first, last + 1


def remap(region: Region, axes: Sequence[tuple[int, bool]]) -> Region:
    """A native region as the canonical one: canonical dimension i is native dimension axes[i][0], reversed if [1]."""
    shape, start, stop = [], [], []
    for axis, flipped in axes:
        n, s, e = region.shape[axis], region.start[axis], region.stop[axis]
        shape.append(n)
        start.append(n - e if flipped else s)
        stop.append(n - s if flipped else e)
    return Region(tuple(shape), tuple(start), tuple(stop))


def _collapse(region: Region) -> list[tuple[int, int, int]]:
    """(size, start, stop) per dimension after merging every fully covered dimension into the one before it.

    Merging keeps C order, so the block is the same set of flat positions; all dimensions but the first are partial.
    """
    dims: list[tuple[int, int, int]] = []
    for size, s, e in zip(region.shape, region.start, region.stop):
        if dims and s == 0 and e == size:
            n, ps, pe = dims[-1]
            dims[-1] = (n * size, ps * size, pe * size)
        else:
            dims.append((size, s, e))
    return dims or [(1, 0, 1)]


@dataclass(frozen=True)
class Piece:
    """rows x width elements at flat src (rows `stride` apart) of the full tensor -> flat dst of the block, in order."""

    src: int
    rows: int
    width: int
    stride: int
    dst: int


def pieces(region: Region, a: int, b: int) -> list[Piece]:
    """The parts of the full tensor's flat range [a, b) inside region: a few strided pieces per level."""
    dims = _collapse(region)
    if len(dims) == 1:
        dims = [(1, 0, 1), *dims]
    out: list[Piece] = []
    _walk(dims, 0, 0, a, b, out)
    return out


def _walk(dims: list[tuple[int, int, int]], full: int, blk: int, a: int, b: int, out: list[Piece]) -> None:
    if len(dims) == 2:
        _rows(dims, full, blk, a, b, out)
        return
    size, s, e = dims[0]
    inner = math.prod(d[0] for d in dims[1:])
    inner_blk = math.prod(d[2] - d[1] for d in dims[1:])
    for i in range(max(s, (a - full) // inner), min(e, -((full - b) // inner))):
        _walk(dims[1:], full + i * inner, blk + (i - s) * inner_blk, a, b, out)


def _rows(dims: list[tuple[int, int, int]], full: int, blk: int, a: int, b: int, out: list[Piece]) -> None:
    """Rows [r0, r1) x columns [c0, c1) of a (R, C) tensor at flat full, met by the flat range [a, b)."""
    (_, r0, r1), (cols, c0, c1) = dims
    width = c1 - c0
    lo = max(r0, (a - full - c1) // cols + 1)
    hi = min(r1, -((full + c0 - b) // cols))
    if lo >= hi or width <= 0:
        return

    def partial(i: int) -> None:
        first, last = full + i * cols + c0, full + i * cols + c1
        x, y = max(a, first), min(b, last)
        if x < y:
            out.append(Piece(x, 1, y - x, cols, blk + (i - r0) * width + x - first))

    def whole(i: int) -> bool:
        return full + i * cols + c0 >= a and full + i * cols + c1 <= b

    if not whole(lo):
        partial(lo)
        lo += 1
    tail = hi - 1 if hi > lo and not whole(hi - 1) else None
    end = hi - 1 if tail is not None else hi
    if end > lo:
        out.append(Piece(full + lo * cols + c0, end - lo, width, cols, blk + (lo - r0) * width))
    if tail is not None:
        partial(tail)


def chunks(region: Region, chunk: int) -> Iterator[tuple[int, list[Piece]]]:
    """(k, pieces) for every chunk k of `chunk` elements that meets region, in order."""
    first, end = region.span()
    size = math.prod(region.shape)
    for k in range(first // chunk, -(-end // chunk)):
        found = pieces(region, k * chunk, min(size, (k + 1) * chunk))
        if found:
            yield k, found


def copy_piece(values: np.ndarray, offset: int, piece: Piece, out: np.ndarray, batch: int = 1 << 15) -> None:
    """Copy the piece's elements from values (a chunk that starts at flat offset) to their place in the block out.

    No copy of the piece is made: rows go straight from the chunk's strided view into out when out is C-contiguous,
    else a row (or rows of at most `batch` elements together) at a time.
    """
    start = piece.src - offset
    if piece.rows == 1:
        put(out, piece.dst, values[start : start + piece.width])
        return
    item = values.itemsize
    rows = np.lib.stride_tricks.as_strided(values[start:], (piece.rows, piece.width), (piece.stride * item, item))
    if out.flags.c_contiguous:
        out.reshape(-1)[piece.dst : piece.dst + rows.size].reshape(rows.shape)[...] = rows
        return
    step = max(1, batch // piece.width)
    for r in range(0, piece.rows, step):
        put(out, piece.dst + r * piece.width, rows[r : r + step].reshape(-1))


def scatter(out: np.ndarray, region: Region, flat: np.ndarray, values: np.ndarray, batch: int = 1 << 12) -> None:
    """Write values at the full tensor's C-order flat positions into the block out, where they lie inside region
    (a batch of positions at a time, so the index arrays stay small)."""
    if not region.shape:
        if flat.size:
            out[...] = values[-1]
        return
    for j in range(0, flat.size, batch):
        coords = np.unravel_index(flat[j : j + batch], region.shape)
        inside = np.ones(coords[0].size, bool)
        for c, s, e in zip(coords, region.start, region.stop):
            inside &= (c >= s) & (c < e)
        out[tuple(c[inside] - s for c, s in zip(coords, region.start))] = values[j : j + batch][inside]


def put(out: np.ndarray, start: int, values: np.ndarray) -> None:
    """Write the 1-D values at C-order flat position start of out, whatever out's strides."""
    if out.ndim <= 1 or out.flags.c_contiguous:
        out.reshape(-1)[start : start + values.size] = values
        return
    inner = math.prod(out.shape[1:])
    i, offset = divmod(start, inner)
    pos = 0
    while pos < values.size:
        if offset == 0 and values.size - pos >= inner:
            rows = (values.size - pos) // inner
            out[i : i + rows] = values[pos : pos + rows * inner].reshape((rows, *out.shape[1:]))
            pos, i = pos + rows * inner, i + rows
            continue
        n = min(inner - offset, values.size - pos)
        put(out[i], offset, values[pos : pos + n])
        pos, i, offset = pos + n, i + 1, 0
