"""The MXNet Gluon rule table: Gluon stores PyTorch's layout, so only norm layers' gamma/beta are renamed.

Gluon parameters carry their own shapes before data (0 for a dimension not known yet), so no rule
needs a shape function.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from unified_params import recurrent
from unified_params.layer_types import typed
from unified_params.layout import IDENTITY
from unified_params.rules import Entry, Leaf, Rule, RuleTable

from . import mxnet_groupnorm
from .mxnet_import import import_mxnet


def _leaves(**names: str) -> tuple[Leaf, ...]:
    return tuple(Leaf(native, name, IDENTITY, trainable=not name.startswith("running_"))
                 for native, name in names.items())


_NATIVE = dict(zip(recurrent.TENSORS, ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")))


@functools.cache
def _recurrent_rule(layer_type: str, layers: int, directions: int, projected: bool) -> Rule:
    """Gluon's fused layers keep torch's layout and gate order: `l0_i2h_weight` is weight_ih_l0, `r0_` the reverse,
    `l0_h2r_weight` (projection_size) torch's weight_hr_l0 (proj_size)."""
    native = {}
    for k, reverse, end in recurrent.stack_names(layers, directions):
        direction = f"{'r' if reverse else 'l'}{k}_"
        native.update({direction + _NATIVE[t]: t + end for t in recurrent.TENSORS})
        if projected:
            native[direction + "h2r_weight"] = "weight_hr" + end
    return Rule(layer_type, recurrent.leaves(native))


def _recurrent(layer_type: str) -> Callable[[Any], Rule]:
    @typed(layer_type)
    def rule(layer: Any) -> Rule:
        return _recurrent_rule(layer_type, layer._num_layers, layer._dir, bool(layer._projection_size))
    return rule


def _cell(layer_type: str) -> Rule:
    return Rule(layer_type, recurrent.leaves({n: t for t, n in _NATIVE.items()}))


def _rules() -> dict[type, Entry]:
    mxnet_groupnorm.install()
    nn = import_mxnet().gluon.nn
    from mxnet.gluon import rnn
    from mxnet.gluon.nn.basic_layers import _BatchNorm
    from mxnet.gluon.nn.conv_layers import _Conv
    from mxnet.gluon.rnn import rnn_cell

    dense = _leaves(weight="weight", bias="bias")
    norm = _leaves(gamma="weight", beta="bias")
    stats = _leaves(gamma="weight", beta="bias", running_mean="running_mean", running_var="running_var")
    transposed = [getattr(nn, f"Conv{d}DTranspose") for d in (1, 2, 3) if hasattr(nn, f"Conv{d}DTranspose")]
    return {
        nn.Dense: Rule("linear", dense),
        _Conv: Rule("conv", dense),
        **{cls: Rule("conv_transpose", dense) for cls in transposed},
        _BatchNorm: Rule("batch_norm", stats),
        nn.InstanceNorm: Rule("instance_norm", norm),
        nn.LayerNorm: Rule("layer_norm", norm),
        nn.GroupNorm: typed("group_norm")(mxnet_groupnorm.group_norm),
        nn.Embedding: Rule("embedding", _leaves(weight="weight")),
        nn.PReLU: Rule("prelu", _leaves(alpha="weight")),
        rnn.LSTM: _recurrent("lstm"), rnn.GRU: _recurrent("gru"), rnn.RNN: _recurrent("rnn"),
        rnn_cell.LSTMCell: _cell("lstm"), rnn_cell.GRUCell: _cell("gru"), rnn_cell.RNNCell: _cell("rnn"),
    }


RULES = RuleTable(_rules)
MISSING = {"attention": "Gluon 1.9 has no multi-head attention layer", "rms_norm": "Gluon 1.9 has no RMS norm layer"}
"""Layer types MXNet Gluon has no layer for (shown by `unified-params compare`)."""
