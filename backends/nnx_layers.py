"""The conformance layers section's builders on Flax NNX (channels-last input (2, 9, 8, 4))."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from unified_params.conformance.examples import Built

from .nnx_attention import ATTENTION


def _one(make: Callable[[nnx.Rngs], Any]) -> Callable[[], Built]:
    return lambda: Built(nnx.Sequential(make(nnx.Rngs(0))))


class Recurrent(nnx.Module):
    """A recurrent layer as attribute `layer` (batch-first, zero initial carry: every step's output)."""

    def __init__(self, layer: nnx.Module) -> None:
        self.layer = layer

    def __call__(self, x: Any) -> Any:
        return self.layer(x)


def _recurrent(make: Callable[[nnx.Rngs], Any]) -> Callable[[], Built]:
    return lambda: Built(Recurrent(make(nnx.Rngs(0))))


def _bidirectional(cell: type) -> Callable[[nnx.Rngs], Any]:
    return lambda r: nnx.Bidirectional(nnx.RNN(cell(3, 4, rngs=r)), nnx.RNN(cell(3, 4, rngs=r)))


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": _one(lambda r: nnx.Conv(4, 6, (3, 2), feature_group_count=2, padding="VALID", rngs=r)),
    "depthwise_conv": _one(lambda r: nnx.Conv(4, 8, (3, 2), feature_group_count=4, padding="VALID", rngs=r)),
    "conv_transpose": _one(lambda r: nnx.ConvTranspose(4, 6, (3, 2), strides=2, padding="VALID", rngs=r)),
    "group_norm": _one(lambda r: nnx.GroupNorm(4, num_groups=2, epsilon=1e-5, rngs=r)),
    "instance_norm": _one(lambda r: nnx.InstanceNorm(4, epsilon=1e-5, rngs=r)),
    "prelu": _one(lambda r: nnx.PReLU()),
    **ATTENTION,
    "lstm": _recurrent(lambda r: nnx.RNN(nnx.LSTMCell(3, 4, rngs=r))),
    "gru": "NNX GRUCell has no recurrent bias on the new gate (torch's b_hn, inside r * (W_hn h + b_hn)): a torch GRU "
           "moves only when its b_hn is 0 (tests/test_recurrent_flax.py), which a same-seed init is not",
    "rnn": _recurrent(lambda r: nnx.RNN(nnx.SimpleCell(3, 4, rngs=r))),
    "bidirectional_lstm": _recurrent(_bidirectional(nnx.LSTMCell)),
    "stacked_gru": "Flax has no multi-layer recurrent module: a stack of nnx.RNN layers is one layer each "
                   "(0.weight_ih_l0, ...)",
}
FOLDED = ("lstm", "rnn", "bidirectional_lstm")
"""NNX keeps biases on one side only: torch's other-side biases are folded (docs/layouts.md, bias policy)."""
