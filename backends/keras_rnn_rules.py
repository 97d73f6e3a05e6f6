"""Keras recurrent layers as torch's: LSTM, GRU, SimpleRNN (any `keras.layers.RNN` of their cells) and Bidirectional.

Keras keeps a layer's variables in its `cell` sublayer: `kernel` (in, G*H), `recurrent_kernel` (H, G*H) and `bias`;
the rules hoist them onto the layer as torch's `weight_ih_l0` ... with joins. Gate orders: LSTM i,f,c,o is torch's;
GRU z,r,h becomes r,z,n (Blocks). One bias (LSTM, SimpleRNN) holds torch's b_ih + b_hh (`bias_hh` folded into
`bias_ih`); GRU `reset_after=True` keeps both as (2, 3H) rows; `reset_after=False` applies the reset gate before the
recurrent matmul, a different function: no canonical form (see docs/layouts.md).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from unified_params import recurrent
from unified_params.joins import Join, Part, Zero
from unified_params.layer_types import typed
from unified_params.layout import Blocks, Layout, Permute
from unified_params.rules import Rule

RESET_BEFORE = ("Keras GRU with reset_after=False applies the reset gate before the recurrent matmul, "
                "(r * h) @ W_hn, and PyTorch's GRU after it, r * (h @ W_hn + b_hn): no PyTorch GRU computes it, so "
                "its tensors keep Keras's names and layout; build the GRU with reset_after=True (Keras's default)")

Cell = tuple[str, int, bool]
"""(layer type, units, use_bias) of one Keras cell; layer type "gru_reset_before" for GRU reset_after=False."""


def _cell(cell: Any) -> Cell | None:
    from keras import layers

    if isinstance(cell, layers.LSTMCell):
        kind = "lstm"
    elif isinstance(cell, layers.GRUCell):
        kind = "gru" if cell.reset_after else "gru_reset_before"
    elif isinstance(cell, layers.SimpleRNNCell):
        kind = "rnn"
    else:
        return None
    return kind, int(cell.units), bool(cell.use_bias)


@functools.cache
def _layout(layer_type: str, transpose: bool) -> Layout:
    """Keras kernel (in, G*H) -> torch (G*H, in) (transpose), then GRU's gates z,r,h -> r,z,n."""
    steps: tuple = (Permute((1, 0)),) if transpose else ()
    if layer_type == "gru":
        steps += (Blocks(0, (1, 0, 2)),)
    return Layout(steps, f"keras {layer_type} {'kernel (in, G*H)' if transpose else 'bias'}")


def cell_joins(cell: Cell, prefix: str, end: str) -> tuple[Join, ...]:
    """torch's four tensors (suffix `end`) of one Keras cell whose variables sit at canonical path `prefix`."""
    layer_type, units, use_bias = cell
    weight = _layout(layer_type, True)
    joins = [Join(f"weight_ih{end}", (Part(prefix + "kernel", weight),), kind="weight"),
             Join(f"weight_hh{end}", (Part(prefix + "recurrent_kernel", weight),), kind="weight")]
    if not use_bias:
        return tuple(joins)
    bias = _layout(layer_type, False)
    if layer_type == "gru":
        joins += [Join(f"bias_ih{end}", (Part(prefix + "bias", bias, take=0),), kind="bias"),
                  Join(f"bias_hh{end}", (Part(prefix + "bias", bias, take=1),), kind="bias")]
    else:
        size = recurrent.GATES[layer_type] * units
        joins += [Join(f"bias_ih{end}", (Part(prefix + "bias", bias),), kind="bias"),
                  Join(f"bias_hh{end}", (Zero((size,), into=(f"bias_ih{end}", 0)),), kind="bias")]
    return tuple(joins)


@functools.cache
def _rule(cells: tuple[tuple[str, Cell, str], ...]) -> Rule | None:
    """The rule of (path prefix, cell, suffix) cells of one layer type; None for mixed types."""
    kinds = {cell[0] for _, cell, _ in cells}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind == "gru_reset_before":
        return Rule("gru", (), native_only=RESET_BEFORE)
    return Rule(kind, (), joins=tuple(j for prefix, cell, end in cells for j in cell_joins(cell, prefix, end)))


def _stack(layer: Any, prefix: str, reverse: bool) -> list[tuple[str, Cell, str]] | None:
    from keras import layers

    cell = layer.cell
    found = [(f"{prefix}cell.cells.{k}.", c) for k, c in enumerate(cell.cells)] \
        if isinstance(cell, layers.StackedRNNCells) else [(f"{prefix}cell.", cell)]
    out = [(path, _cell(c), recurrent.suffix(k, reverse)) for k, (path, c) in enumerate(found)]
    return None if any(c is None for _, c, _ in out) else out


@typed(*recurrent.GATES)
def rnn_rule(layer: Any) -> Rule | None:
    """A `keras.layers.RNN` (LSTM, GRU, SimpleRNN, or RNN of their cells, stacked with StackedRNNCells)."""
    cells = _stack(layer, "", False)
    return None if cells is None else _rule(tuple(cells))


def _of_type(layer_type: str) -> Callable[[Any], Rule | None]:
    @typed(layer_type)
    def rule(layer: Any) -> Rule | None:
        return rnn_rule(layer)
    return rule


def table() -> dict[type, Any]:
    """Entries for the Keras rule table: LSTM, GRU and SimpleRNN declare their layer type; any RNN of cells and
    Bidirectional take theirs from the cells."""
    from keras import layers

    return {layers.LSTM: _of_type("lstm"), layers.GRU: _of_type("gru"), layers.SimpleRNN: _of_type("rnn"),
            layers.RNN: rnn_rule, layers.Bidirectional: bidirectional_rule}


@typed(*recurrent.GATES)
def bidirectional_rule(layer: Any) -> Rule | None:
    """A Bidirectional of one-cell RNNs: the forward layer's tensors `_l0`, the backward layer's `_l0_reverse`.

    A stack of cells inside Bidirectional runs each direction through the whole stack, which no torch layer does:
    no rule then."""
    forward = _stack(layer.forward_layer, "forward_layer.", False)
    backward = _stack(layer.backward_layer, "backward_layer.", True)
    if forward is None or backward is None or len(forward) != 1 or len(backward) != 1:
        return None
    return _rule((*forward, *backward))
