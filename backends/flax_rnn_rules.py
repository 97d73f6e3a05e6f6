"""Flax recurrent cells (linen and NNX), `RNN` and `Bidirectional` as torch's recurrent layers and cells.

Flax computes each gate with its own Dense (linen and NNX `LSTMCell`, linen `GRUCell`) or one Dense per side
(`OptimizedLSTMCell`, NNX `GRUCell`, `SimpleCell`); the Dense rules give torch's (out, in) weights, and these joins
stack them into `weight_ih` / `weight_hh` in torch's gate order (the same as Flax's). Flax keeps a bias on one side
only: the other side's torch bias is folded into it (docs/layouts.md, bias policy), except NNX `GRUCell`'s missing
b_hn, which sits inside r * (...) and cannot be folded: a non-zero b_hn is refused. Which side has the biases
(read in flax/linen/recurrent.py and flax/nnx/nn/recurrent.py): LSTM cells the hidden side; GRU and SimpleCell the
input side (linen's GRUCell also has `hn`'s bias, torch's b_hn).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from unified_params import recurrent
from unified_params.joins import Join, Part, Zero
from unified_params.layer_types import typed
from unified_params.rules import Rule

B_HN = ("NNX GRUCell has no bias on the recurrent side of the new gate (torch's b_hn, inside r * (W_hn h + b_hn)), "
        "so it cannot be folded into the input bias; use linen's GRUCell, or a source whose b_hn is 0")
RESIDUAL = ("SimpleCell(residual=True) adds the previous state to the pre-activation, which no PyTorch RNN does: "
            "its tensors keep Flax's names and layout")

LINEN_LSTM = (("ii", "if", "ig", "io"), ("hi", "hf", "hg", "ho"))
NNX_LSTM = (("ii", "if_", "ig", "io"), ("hi", "hf", "hg", "ho"))
"""The Dense children of an LSTMCell per gate (i, f, g, o), input side then hidden side."""


def _cat(name: str, parts: tuple) -> Join:
    return Join(name, parts, kind=recurrent.kind(name))


def _gates(prefix: str, children: tuple[str, ...], leaf: str) -> tuple[Part, ...]:
    return tuple(Part(f"{prefix}{child}.{leaf}") for child in children)


@functools.cache
def cell_joins(variant: str, hidden: int, prefix: str, end: str) -> tuple[Join, ...]:
    """torch's tensors (suffix `end`) of one Flax cell whose children sit at canonical path `prefix`.

    variant: linen_lstm, nnx_lstm (one Dense per gate), packed_lstm (dense_i/dense_h), linen_gru (one Dense per
    gate), nnx_gru (dense_i/dense_h), simple (dense_i/dense_h in NNX, i/h in linen: `simple_linen`)."""
    w_ih, w_hh, b_ih, b_hh = (f"{t}{end}" for t in recurrent.TENSORS)
    if variant in ("linen_lstm", "nnx_lstm"):
        inputs, hidden_side = LINEN_LSTM if variant == "linen_lstm" else NNX_LSTM
        return (_cat(w_ih, _gates(prefix, inputs, "weight")), _cat(w_hh, _gates(prefix, hidden_side, "weight")),
                _cat(b_ih, (Zero((4 * hidden,), into=(b_hh, 0)),)), _cat(b_hh, _gates(prefix, hidden_side, "bias")))
    if variant == "linen_gru":
        return (_cat(w_ih, _gates(prefix, ("ir", "iz", "in"), "weight")),
                _cat(w_hh, _gates(prefix, ("hr", "hz", "hn"), "weight")),
                _cat(b_ih, _gates(prefix, ("ir", "iz", "in"), "bias")),
                _cat(b_hh, (Zero((hidden,), into=(b_ih, 0)), Zero((hidden,), into=(b_ih, hidden)),
                            Part(f"{prefix}hn.bias"))))
    i, h = ("i", "h") if variant == "simple_linen" else ("dense_i", "dense_h")
    weights = (_cat(w_ih, (Part(f"{prefix}{i}.weight"),)), _cat(w_hh, (Part(f"{prefix}{h}.weight"),)))
    if variant == "packed_lstm":
        return (*weights, _cat(b_ih, (Zero((4 * hidden,), into=(b_hh, 0)),)), _cat(b_hh, (Part(f"{prefix}{h}.bias"),)))
    if variant == "nnx_gru":
        return (*weights, _cat(b_ih, (Part(f"{prefix}{i}.bias"),)),
                _cat(b_hh, (Zero((hidden,), into=(b_ih, 0)), Zero((hidden,), into=(b_ih, hidden)),
                            Zero((hidden,), reason=B_HN))))
    return (*weights, _cat(b_ih, (Part(f"{prefix}{i}.bias"),)), _cat(b_hh, (Zero((hidden,), into=(b_ih, 0)),)))


Cell = tuple[str, str, int]
"""(layer type, variant of cell_joins, hidden size) of one Flax cell; variant "" for a cell with no canonical form."""


def _cell(cell: Any) -> Cell | None:
    from flax import linen, nnx

    size = getattr(cell, "hidden_features", None) or getattr(cell, "features", None)
    found = {
        linen.LSTMCell: ("lstm", "linen_lstm"), linen.OptimizedLSTMCell: ("lstm", "linen_lstm"),
        linen.GRUCell: ("gru", "linen_gru"), linen.SimpleCell: ("rnn", "simple_linen"),
        nnx.LSTMCell: ("lstm", "nnx_lstm"), nnx.OptimizedLSTMCell: ("lstm", "packed_lstm"),
        nnx.GRUCell: ("gru", "nnx_gru"), nnx.SimpleCell: ("rnn", "simple"),
    }.get(type(cell))
    if found is None or size is None:
        return None
    layer_type, variant = found
    if getattr(cell, "residual", False):
        variant = ""
    return layer_type, variant, int(size)


@functools.cache
def _rule(cells: tuple[tuple[Cell, str, str], ...]) -> Rule:
    """The rule of (cell, path prefix, suffix) cells of one layer."""
    layer_type = cells[0][0][0]
    if any(not cell[1] for cell, _, _ in cells):
        return Rule(layer_type, (), native_only=RESIDUAL)
    return Rule(layer_type, (), joins=tuple(j for (_, variant, size), prefix, end in cells
                                            for j in cell_joins(variant, size, prefix, end)))


def cell_rule(cell: Any) -> Rule | None:
    """A cell used by itself: torch's cell tensors (`weight_ih`, ...)."""
    found = _cell(cell)
    return None if found is None else _rule(((found, "", ""),))


@typed(*recurrent.GATES)
def rnn_rule(layer: Any) -> Rule | None:
    """`RNN(cell)` scanning forward: a one-layer torch layer (`weight_ih_l0`, ...). A reversed RNN alone is not."""
    found = _cell(layer.cell)
    if found is None or getattr(layer, "reverse", False):
        return None
    return _rule(((found, "cell.", recurrent.suffix(0)),))


@typed(*recurrent.GATES)
def bidirectional_rule(layer: Any) -> Rule | None:
    """`Bidirectional(forward_rnn, backward_rnn)` of RNNs of one cell type: torch's bidirectional one-layer layer."""
    forward, backward = (_cell(getattr(getattr(layer, side), "cell", None)) for side in ("forward_rnn", "backward_rnn"))
    if forward is None or backward is None or forward[0] != backward[0]:
        return None
    return _rule(((forward, "forward_rnn.cell.", recurrent.suffix(0)),
                  (backward, "backward_rnn.cell.", recurrent.suffix(0, True))))


def _cell_of_type(layer_type: str) -> Callable[[Any], Rule | None]:
    @typed(layer_type)
    def rule(cell: Any) -> Rule | None:
        return cell_rule(cell)
    return rule


def _table(lstm: tuple, gru: type, simple: type, rnn: type, bidirectional: type) -> dict[type, Any]:
    return {**dict.fromkeys(lstm, _cell_of_type("lstm")), gru: _cell_of_type("gru"), simple: _cell_of_type("rnn"),
            rnn: rnn_rule, bidirectional: bidirectional_rule}


def linen_table() -> dict[type, Any]:
    """Entries for the linen rule table (cells declare their layer type; RNN and Bidirectional take their cells')."""
    from flax import linen

    return _table((linen.LSTMCell, linen.OptimizedLSTMCell), linen.GRUCell, linen.SimpleCell, linen.RNN,
                  linen.Bidirectional)


def nnx_table() -> dict[type, Any]:
    """Entries for the NNX rule table."""
    from flax import nnx

    return _table((nnx.LSTMCell, nnx.OptimizedLSTMCell), nnx.GRUCell, nnx.SimpleCell, nnx.RNN, nnx.Bidirectional)
