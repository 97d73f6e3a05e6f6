"""The PyTorch rule table: torch's own layout is canonical, so every leaf keeps its name and layout.

Shapes before data serve the `Lazy*` modules (an input size of 0 is not known yet).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from unified_params import recurrent
from unified_params.attention import own_rule
from unified_params.layer_types import typed
from unified_params.layout import IDENTITY
from unified_params.rules import Entry, Leaf, Rule, RuleTable


def _leaves(*names: str) -> tuple[Leaf, ...]:
    return tuple(Leaf(n, n, IDENTITY, trainable=not n.startswith("running_") and n != "num_batches_tracked")
                 for n in names)


def _size(n: int) -> int | None:
    return n or None


def _linear(m: Any) -> dict:
    return {"weight": (m.out_features, _size(m.in_features)), "bias": (m.out_features,)}


def _conv(m: Any) -> dict:
    inputs = _size(m.in_channels // m.groups)
    return {"weight": (m.out_channels, inputs, *m.kernel_size), "bias": (m.out_channels,)}


def _conv_transpose(m: Any) -> dict:
    return {"weight": (_size(m.in_channels), m.out_channels // m.groups, *m.kernel_size), "bias": (m.out_channels,)}


def _norm(m: Any) -> dict:
    size = _size(getattr(m, "num_features", 0) or getattr(m, "num_channels", 0))
    return dict.fromkeys(("weight", "bias", "running_mean", "running_var"), (size,))


ATTENTION = (*(Leaf(n, n, IDENTITY, kind="weight") for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight",
                                                               "v_proj_weight")),
             *(Leaf(n, n, IDENTITY, kind="bias") for n in ("in_proj_bias", "bias_k", "bias_v")))
"""nn.MultiheadAttention's own tensors: packed in_proj_weight (3E, E), or q/k/v_proj_weight when kdim/vdim differ."""


@typed("attention")
def _attention(m: Any) -> Rule:
    return own_rule(ATTENTION, m.out_proj.bias is not None)
@functools.cache
def _recurrent_rule(layer_type: str, names: tuple[str, ...]) -> Rule:
    """torch's recurrent tensors are canonical (`weight_hr_l0` of a projected LSTM too): identity leaves by kind."""
    return Rule(layer_type, recurrent.leaves({n: n for n in names}))


def _recurrent(layer_type: str) -> Callable[[Any], Rule]:
    @typed(layer_type)
    def rule(m: Any) -> Rule:
        return _recurrent_rule(layer_type, tuple(m._flat_weights_names))
    return rule


def _cell(layer_type: str) -> Callable[[Any], Rule]:
    @typed(layer_type)
    def rule(m: Any) -> Rule:
        return _recurrent_rule(layer_type, tuple(n for n in recurrent.TENSORS if getattr(m, n, None) is not None))
    return rule


def _rules() -> dict[type, Entry]:
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
    from torch.nn.modules.instancenorm import _InstanceNorm

    weight_bias, stats = _leaves("weight", "bias"), _leaves("weight", "bias", "running_mean", "running_var",
                                                                 "num_batches_tracked")
    table: dict[type, Entry] = {
        nn.Linear: Rule("linear", weight_bias, _linear),
        _ConvNd: Rule("conv", weight_bias, _conv),
        _ConvTransposeNd: Rule("conv_transpose", weight_bias, _conv_transpose),
        _BatchNorm: Rule("batch_norm", stats, _norm),
        _InstanceNorm: Rule("instance_norm", stats, _norm),
        nn.LayerNorm: Rule("layer_norm", weight_bias),
        nn.GroupNorm: Rule("group_norm", weight_bias, _norm),
        nn.Embedding: Rule("embedding", _leaves("weight")),
        nn.PReLU: Rule("prelu", _leaves("weight"), lambda m: {"weight": (m.num_parameters,)}),
        nn.MultiheadAttention: _attention,
        nn.LSTM: _recurrent("lstm"), nn.GRU: _recurrent("gru"), nn.RNN: _recurrent("rnn"),
        nn.LSTMCell: _cell("lstm"), nn.GRUCell: _cell("gru"), nn.RNNCell: _cell("rnn"),
    }
    if hasattr(nn, "RMSNorm"):
        table[nn.RMSNorm] = Rule("rms_norm", _leaves("weight"))
    return table


RULES = RuleTable(_rules)
