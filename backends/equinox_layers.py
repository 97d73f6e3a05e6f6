"""The conformance layers section's builders on Equinox (channels-first per example, vmapped over the batch).

Equinox has recurrent cells (`nn.LSTMCell`, `nn.GRUCell`, mapped as torch's cells and checked against torch's own
forward in tests/test_recurrent_flax.py) but no layer module that scans them, so the recurrent rows are reasons.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from unified_params.conformance.examples import KDIM, Built

from .equinox_attention import Attention

CELLS_ONLY = ("Equinox has recurrent cells only (nn.LSTMCell, nn.GRUCell: torch's cells, weight_ih ...), no layer "
              "module that scans them (torch's weight_ih_l0 ...)")


def _one(make: Callable[[Any], Any]) -> Callable[[], Built]:
    return lambda: Built(eqx.nn.Sequential([make(jax.random.PRNGKey(0))]))


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": _one(lambda k: eqx.nn.Conv2d(4, 6, (3, 2), groups=2, key=k)),
    "depthwise_conv": _one(lambda k: eqx.nn.Conv2d(4, 8, (3, 2), groups=4, key=k)),
    "conv_transpose": "the Equinox rule table declares no rule for nn.ConvTranspose: its kernel stays native",
    "group_norm": _one(lambda k: eqx.nn.GroupNorm(2, 4, eps=1e-5)),
    "instance_norm": "Equinox has no instance norm layer (GroupNorm with groups = channels computes it)",
    "prelu": "the Equinox rule table has no rule for nn.PReLU: its negative_slope () is not torch's weight (1,)",
    "attention": lambda: Built(Attention()),
    "attention_no_bias": lambda: Built(Attention(bias=False)),
    "attention_kdim": lambda: Built(Attention(KDIM)),
    "lstm": CELLS_ONLY,
    "gru": CELLS_ONLY,
    "rnn": "Equinox has no simple (Elman) RNN cell",
    "bidirectional_lstm": CELLS_ONLY,
    "stacked_gru": CELLS_ONLY,
}
