"""pm.summary(): one line per parameter, at most 120 columns wide."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import selection

if TYPE_CHECKING:
    from .api import ParamAPI

WIDTH = 120


def shorten(text: str, limit: int) -> str:
    """text cut in the middle to at most limit characters, so both ends stay readable."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def summary(pm: ParamAPI) -> str:
    """A table: name, native name (when it differs anywhere), layer type, shape, dtype, size, trainable, tied with."""
    from tabulate import tabulate

    nodes = selection.nodes(pm._model.index().root)
    entries = pm._entries()
    native = any(e.slot.native_name != e.name for e in entries)
    rows = []
    for e in entries:
        p = pm[pm._rel(e.name)]
        node = nodes.get(e.path)
        layer = (selection.layer_type(node) or node.label) if node is not None else ""
        rows.append([p.name, *([p.native_name] if native else []), layer, _shape(p.shape), p.dtype,
                     p.size if p.size is not None else "?", "yes" if p.trainable else "no", ", ".join(p.tied_with)])
    headers = ["name", *(["native name"] if native else []), "layer", "shape", "dtype", "size", "trainable",
               "tied with"]
    texts = [0, 1] if native else [0]
    texts.append(len(headers) - 1)
    table = tabulate(rows, headers=headers)
    limit = max((len(str(r[i])) for r in rows for i in texts), default=0)
    while max(map(len, table.splitlines()), default=0) > WIDTH and limit > 12:
        limit -= max(1, (max(map(len, table.splitlines())) - WIDTH) // len(texts))
        cut = [[shorten(str(v), limit) if i in texts else v for i, v in enumerate(r)] for r in rows]
        table = tabulate(cut, headers=headers)
    known = "?" if not pm.initialized else f"{pm.num_params():,}"
    return f"{table}\n{pm.backend}: {len(rows)} names, {known} parameters"
