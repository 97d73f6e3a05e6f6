"""The canonical form of recurrent layers (PyTorch's names and layout), shared by every adapter's rule table.

Canonical tensors of a layer `l` and direction (`""` forward, `"_reverse"` backward): `weight_ih_l{l}` (G*H, in),
`weight_hh_l{l}` (G*H, H), `bias_ih_l{l}` (G*H,), `bias_hh_l{l}` (G*H,) with G gates in torch's order (LSTM i,f,g,o;
GRU r,z,n; RNN one). A cell (torch `LSTMCell`) has the same tensors without the `_l{l}` suffix. See docs/layouts.md.
"""
from __future__ import annotations

from .layout import IDENTITY, Layout
from .rules import Leaf

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
"""Gates per layer type: the first axis of every weight and bias is G*H."""

TENSORS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
"""A cell's tensors in torch's order; a layer's are these with the suffix `_l{layer}{direction}`."""

REVERSE = "_reverse"


def suffix(layer: int | None, reverse: bool = False) -> str:
    """The canonical suffix of one layer and direction (`_l1_reverse`); `""` for a cell (layer None)."""
    return "" if layer is None else f"_l{layer}{REVERSE if reverse else ''}"


def kind(tensor: str) -> str:
    """`weight` or `bias`: the kind of a canonical recurrent tensor (`weight_hh_l0` -> `weight`)."""
    return tensor.split("_", 1)[0]


def leaves(native: dict[str, str], layout: Layout | None = IDENTITY) -> tuple[Leaf, ...]:
    """Leaves of native variable -> canonical recurrent tensor, all in one layout (IDENTITY: torch's own)."""
    return tuple(Leaf(n, c, layout, kind=kind(c)) for n, c in native.items())


def stack_names(layers: int, directions: int) -> list[tuple[int, bool, str]]:
    """(layer, reverse, suffix) of every layer and direction of a stacked (and bidirectional) recurrent layer."""
    return [(k, d == 1, suffix(k, d == 1)) for k in range(layers) for d in range(directions)]
