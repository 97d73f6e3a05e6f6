"""Comparing two models: parameters by canonical name, and with inputs also outputs, gradients and each layer.

With inputs, `compare` copies a's parameters into b (by name, rename= or by="order"), runs both in inference
mode on the same inputs put in each framework's own layout, and reports where they disagree: the typical
check of a port from one framework to another.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .adapter import is_counter
from .errors import UnifiedParamsError
from .fit import as_array
from .matching import By, Rename
from .wrapping import wrap

CHANNEL_LAYERS = ("conv", "conv_transpose", "batch_norm", "group_norm", "instance_norm")
"""Layer types whose inputs and outputs carry channels (channels-last in Keras and Flax, first in torch)."""


@dataclass
class Comparison:
    """What compare() found: per name the largest absolute difference, and whether everything agrees.

    `max_abs`: parameters; `outputs`: the model outputs; `grads`: gradients by name; `layers`: each layer's
    output (per_layer=True); `first_mismatch`: the first layer, in a's order, whose output disagrees;
    `rows`: (what, name, max abs difference, agrees) for everything compared.
    """

    equal: bool
    max_abs: dict[str, float] = field(default_factory=dict)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    outputs: float | None = None
    grads: dict[str, float] = field(default_factory=dict)
    layers: dict[str, float] = field(default_factory=dict)
    first_mismatch: str | None = None
    notes: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, float, bool]] = field(default_factory=list)
    rtol: float = 1e-5
    atol: float = 1e-8

    def __bool__(self) -> bool:
        return self.equal

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def check(self, what: str, name: str, x: Any, y: Any, rtol: float | None = None) -> bool:
        """Compare x with y (y is the reference for the relative tolerance), record the row, return whether they agree."""
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            self.rows.append((what, name, float("inf"), False))
            return False
        d = np.abs(x.astype(np.float64) - y.astype(np.float64))
        diff = float(d.max()) if d.size else 0.0
        ok = bool(np.allclose(x, y, rtol=self.rtol if rtol is None else rtol, atol=self.atol, equal_nan=True))
        self.rows.append((what, name, diff, ok))
        {"param": self.max_abs, "grad": self.grads, "layer": self.layers}.get(what, {})[name] = diff
        if what == "output":
            self.outputs = diff
        return ok

    def __str__(self) -> str:
        worst = max(self.max_abs.values(), default=0.0)
        parts = [f"{'equal' if self.equal else 'different'}: {len(self.max_abs)} compared, max abs diff {worst:.3g}"]
        if self.outputs is not None:
            parts.append(f"outputs max abs diff {self.outputs:.3g}")
        if self.grads:
            parts.append(f"gradients max abs diff {max(self.grads.values()):.3g}")
        if self.first_mismatch is not None:
            parts.append(f"first layer that disagrees: {self.first_mismatch!r}")
        for label, names in (("only in a", self.only_in_a), ("only in b", self.only_in_b),
                             ("shape mismatch", self.shape_mismatch)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        parts += self.notes
        return "; ".join(parts)

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=str(self).split(";")[0], title_justify="left")
        for column in ("what", "name", "max abs diff", "agrees"):
            table.add_column(column)
        for what, name, diff, ok in self.rows:
            table.add_row(what, name, f"{diff:.3g}", "[green]yes[/]" if ok else "[bold red]no[/]")
        return table


def _compare_states(sa: Mapping[str, np.ndarray], sb: Mapping[str, np.ndarray], result: Comparison) -> None:
    result.only_in_a = [n for n in sa if n not in sb and not is_counter(n)]
    result.only_in_b = [n for n in sb if n not in sa and not is_counter(n)]
    for name in (n for n in sa if n in sb):
        x, y = as_array(sa[name]), as_array(sb[name])
        if x.shape != y.shape:
            result.shape_mismatch.append(f"{name} {x.shape} vs {y.shape}")
        elif not result.check("param", name, x, y):
            result.equal = False
    if result.only_in_a or result.only_in_b or result.shape_mismatch:
        result.equal = False


def _state(x: Any) -> dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        return {k: as_array(v) for k, v in x.items()}
    return wrap(x).state_dict()


def _channels_last(pm: Any) -> bool:
    """True when pm's framework keeps channels last and the model has layers whose data carries channels."""
    return pm.channels_last and any(p.layer_type in CHANNEL_LAYERS for p in pm.values())


def to_framework(pm: Any, inputs: Sequence[Any]) -> list[Any]:
    """Canonical inputs (channels first, batch first) in the layout pm's framework expects."""
    if not _channels_last(pm):
        return list(inputs)
    out = []
    for x in inputs:
        a = np.asarray(x)
        out.append(np.moveaxis(a, 1, -1).copy() if a.ndim >= 3 and a.dtype.kind == "f" else x)
    return out


def to_canonical(pm: Any, output: Any, layer_type: str | None = "conv") -> np.ndarray:
    """An output (or a layer's output) of pm's framework in canonical layout (channels first)."""
    a = np.asarray(output)
    if a.ndim >= 3 and layer_type in CHANNEL_LAYERS and _channels_last(pm):
        return np.moveaxis(a, -1, 1)
    return a


def _first_tensor(out: Any) -> np.ndarray:
    if isinstance(out, Mapping):
        out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)


def _per_layer(pa: Any, pb: Any, ins_a: list, ins_b: list, layer_map: Callable[[str], str | None],
               result: Comparison) -> None:
    outs = []
    for pm, ins in ((pa, ins_a), (pb, ins_b)):
        try:
            outs.append(pm.layer_outputs(*ins))
        except NotImplementedError as e:
            result.notes.append(f"per-layer outputs are not available on {pm.backend}: {e}")
            return
    la, lb = outs
    types_a = {n.rpartition(".")[0]: p.layer_type for n, p in pa.items()}
    types_b = {n.rpartition(".")[0]: p.layer_type for n, p in pb.items()}
    for layer, out in la.items():
        other = layer_map(layer)
        if other is None or other not in lb:
            continue
        x = to_canonical(pa, _first_tensor(out), types_a.get(layer))
        y = to_canonical(pb, _first_tensor(lb[other]), types_b.get(other))
        if not result.check("layer", layer, y, x) and result.first_mismatch is None:
            result.first_mismatch = layer


def compare(a: Any, b: Any, inputs: Any = None, rtol: float = 1e-5, atol: float = 1e-8, transfer: bool = True,
            per_layer: bool = False, rename: Rename | None = None, by: By = "name") -> Comparison:
    """Compare two models (or views, or state dicts) by canonical name; with inputs also outputs and gradients.

    inputs: one array or a tuple in canonical layout (channels first, batch first), converted to each
    framework's own layout; or {backend name: inputs} giving each framework its inputs as they are. With
    transfer=True a's parameters are first copied into b (rename= / by="order" pair differing names).
    per_layer=True also compares each parametrized layer's output; first_mismatch names the first that
    disagrees. bool(result) is True only when parameters, outputs and gradients all agree.
    """
    from .transfers import match
    from .transfers import transfer as copy

    result = Comparison(True, rtol=rtol, atol=atol)
    if inputs is None:
        _compare_states(_state(a), _state(b), result)
        return result
    pa, pb = wrap(a), wrap(b)
    if transfer:
        try:
            copy(pa, pb, strict=False, rename=rename, by=by)
        except UnifiedParamsError as e:
            result.equal = False
            result.notes.append(f"the transfer from a to b failed, b keeps its own values: {e}")
    pairs = match(pa, pb, rename=rename, by=by).mapping()
    sb = pb.state_dict()
    _compare_states({pairs.get(n, n): v for n, v in pa.state_dict().items()}, sb, result)
    if isinstance(inputs, Mapping):
        ins_a, ins_b = list(_as_tuple(inputs[pa.backend])), list(_as_tuple(inputs[pb.backend]))
    else:
        canonical = _as_tuple(inputs)
        ins_a, ins_b = to_framework(pa, canonical), to_framework(pb, canonical)
    out_a = to_canonical(pa, _first_tensor(pa.forward(*ins_a)))
    out_b = to_canonical(pb, _first_tensor(pb.forward(*ins_b)))
    agree = result.check("output", "", out_b, out_a)
    ga, gb = pa.grads(*ins_a), pb.grads(*ins_b)
    for name, g in ga.items():
        other = pairs.get(name, name)
        if other in gb:
            agree = result.check("grad", name, gb[other], g, rtol=10 * rtol) and agree
    if per_layer:
        prefixes = {n.rpartition(".")[0]: t.rpartition(".")[0] for n, t in pairs.items()}
        _per_layer(pa, pb, ins_a, ins_b, lambda layer: prefixes.get(layer, layer), result)
    result.equal = result.equal and agree and result.first_mismatch is None
    return result


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)
