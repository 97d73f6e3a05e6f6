"""The Equinox rule table: canonical layer types, leaves and layouts of equinox.nn layers.

Equinox stores dense and conv weights in PyTorch's layout already; a conv bias is `(out, 1, ..., 1)` (one 1 per
spatial dimension), canonical `(out,)`. Batch-norm statistics live in the eqx.nn.State, not in the layer.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unified_params import recurrent
from unified_params.attention import attention_rule, same
from unified_params.joins import Join, Part, Zero
from unified_params.layer_types import typed
from unified_params.layout import IDENTITY, Layout, Reshape
from unified_params.rules import Leaf, Rule, RuleTable

WEIGHT = Leaf("weight", "weight", IDENTITY)
BIAS = Leaf("bias", "bias", IDENTITY)


def conv_bias(spatial: int) -> Layout:
    """(out, 1, ..., 1) <-> (out,) for a conv with this many spatial dimensions."""
    return Layout((Reshape((-1, *[1] * spatial), (-1,)),), f"conv bias (out{', 1' * spatial})")


@typed("conv")
def _conv(layer: Any) -> Rule:
    return Rule("conv", (WEIGHT, Leaf("bias", "bias", conv_bias(layer.num_spatial_dims))))


@typed("attention")
def _attention(layer: Any) -> Rule:
    """MultiheadAttention's Linear projections (already torch's layout) joined into nn.MultiheadAttention's tensors;
    biases only when all four projections have one (torch's all or nothing)."""
    shapes = [tuple(getattr(layer, f"{n}_proj").weight.shape) for n in ("query", "key", "value")]
    bias = all(getattr(layer, f"use_{n}_bias") for n in ("query", "key", "value", "output"))
    return attention_rule("query_proj", "key_proj", "value_proj", "output_proj", same(shapes), bias)
def _cell(layer_type: str) -> Callable[[Any], Rule]:
    @typed(layer_type)
    def rule(layer: Any) -> Rule:
        return _cell_rule(layer)
    return rule


def _cell_rule(layer: Any) -> Rule:
    """torch's cell tensors: weights as they are; one bias `bias` = torch's b_ih + b_hh (b_hh folded into it),
    and GRUCell's `bias_n` (torch's b_hn, inside r * (...)) as the last block of bias_hh."""
    hidden, gru = layer.hidden_size, type(layer).__name__ == "GRUCell"
    weights = (Join("weight_ih", (Part("weight_ih"),), kind="weight"),
               Join("weight_hh", (Part("weight_hh"),), kind="weight"))
    if layer.bias is None:
        return Rule("gru" if gru else "lstm", (), joins=weights)
    if gru:
        hh = (Zero((hidden,), into=("bias_ih", 0)), Zero((hidden,), into=("bias_ih", hidden)), Part("bias_n"))
    else:
        hh = (Zero((recurrent.GATES["lstm"] * hidden,), into=("bias_ih", 0)),)
    return Rule("gru" if gru else "lstm", (), joins=(*weights, Join("bias_ih", (Part("bias"),), kind="bias"),
                                                      Join("bias_hh", hh, kind="bias")))


def _rules() -> dict:
    from equinox import nn

    affine = Rule("layer_norm", (WEIGHT, BIAS))
    return {
        nn.Linear: Rule("linear", (WEIGHT, BIAS)),
        nn.Conv: _conv,
        nn.ConvTranspose: None,
        nn.Embedding: Rule("embedding", (WEIGHT,)),
        nn.BatchNorm: Rule("batch_norm", (WEIGHT, BIAS)),
        nn.LayerNorm: affine,
        nn.GroupNorm: Rule("group_norm", (WEIGHT, BIAS)),
        nn.MultiheadAttention: _attention,
        nn.LSTMCell: _cell("lstm"),
        nn.GRUCell: _cell("gru"),
    }


RULES = RuleTable(_rules)

MISSING = {"rnn": "Equinox has no simple (Elman) RNN cell"}
"""Layer types Equinox has no layer for (shown by `unified-params compare`)."""
