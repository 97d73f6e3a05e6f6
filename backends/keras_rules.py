"""The Keras 3 rule table: dense kernels (in, out) and conv kernels (*kernel, in, out) in PyTorch's layout.

Shapes before data serve layers that are not built yet (None where the input decides).
"""
from __future__ import annotations

import functools
from typing import Any

from unified_params.attention import attention_rule, same
from unified_params.layer_types import typed
from unified_params.layout import CHANNELS_LAST, DENSE_IN_OUT, IDENTITY, Layout, Permute, Reshape
from unified_params.projections import einsum_projection, projection_rule
from unified_params.rules import Entry, Leaf, Rule, RuleTable

from . import keras_rnn_rules

BIAS = Leaf("bias", "bias", IDENTITY)
NORM = (Leaf("gamma", "weight", IDENTITY), Leaf("beta", "bias", IDENTITY))
STATS = (Leaf("moving_mean", "running_mean", IDENTITY, trainable=False),
         Leaf("moving_variance", "running_var", IDENTITY, trainable=False))


def _kernel(layout: Layout) -> tuple[Leaf, Leaf]:
    return Leaf("kernel", "weight", layout), BIAS


def _dense(layer: Any) -> dict:
    return {"kernel": (None, layer.units), "bias": (layer.units,) if layer.use_bias else None}


def _conv(layer: Any) -> dict:
    return {"kernel": (*layer.kernel_size, None, layer.filters), "bias": (layer.filters,) if layer.use_bias else None}


def _conv_transpose(layer: Any) -> dict:
    return {"kernel": (*layer.kernel_size, layer.filters, None), "bias": (layer.filters,) if layer.use_bias else None}


def _depthwise_shapes(layer: Any) -> dict:
    return {"kernel": (*layer.kernel_size, None, layer.depth_multiplier), "bias": (None,) if layer.use_bias else None}


@functools.cache
def _depthwise_rule(kernel: tuple[int, ...], multiplier: int) -> Rule:
    """Keras keeps a depthwise kernel (*kernel, in, mult); PyTorch's groups=in conv weight is (in * mult, 1, *kernel),
    output channel c * mult + m, which is the same memory reshaped then permuted."""
    layout = Layout((Reshape((*kernel, -1, multiplier), (*kernel, -1, 1)), Permute((-2, -1, ...))),
                    "depthwise kernel (*kernel, in, mult)")
    return Rule("conv", _kernel(layout), _depthwise_shapes)


@typed("conv")
def _depthwise(layer: Any) -> Rule:
    return _depthwise_rule(tuple(layer.kernel_size), int(layer.depth_multiplier))


def _separable_shapes(layer: Any) -> dict:
    pointwise = (*(1,) * len(layer.kernel_size), None, layer.filters)
    return {"depthwise_kernel": (*layer.kernel_size, None, layer.depth_multiplier), "pointwise_kernel": pointwise,
            "bias": (layer.filters,) if layer.use_bias else None}


@typed("conv")
def _separable(layer: Any) -> Rule:
    """A separable conv is the pair a torch user writes as `depthwise` (groups=in) then a 1x1 `pointwise` conv."""
    depthwise = _depthwise_rule(tuple(layer.kernel_size), int(layer.depth_multiplier)).leaves[0]
    return Rule("conv", (Leaf("depthwise_kernel", "depthwise.weight", depthwise.layout),
                         Leaf("pointwise_kernel", "pointwise.weight", CHANNELS_LAST),
                         Leaf("bias", "pointwise.bias", IDENTITY)), _separable_shapes)


@functools.cache
def _prelu_rule(shape: tuple[int, ...] | None) -> Rule:
    """alpha (1, ..., 1, C) or all ones (`shared_axes` every axis but the channels', or all) is torch's weight (C,);
    any other alpha (one slope per position) has no PyTorch form and stays native."""
    if shape is None or any(d != 1 for d in shape[:-1]):
        return Rule("prelu", (Leaf("alpha", "alpha", None),))
    return Rule("prelu", (Leaf("alpha", "weight", Layout((Reshape(shape, (-1,)),), "alpha (1, ..., 1, C)")),))


@typed("prelu")
def _prelu(layer: Any) -> Rule:
    alpha = getattr(layer, "alpha", None)
    return _prelu_rule(None if alpha is None else tuple(int(d) for d in alpha.shape))


@typed("linear")
def _einsum(layer: Any) -> Rule | None:
    """A plain-projection EinsumDense is `linear` (its kernel's sizes once built); any other keeps native layout."""
    plain = einsum_projection(layer.equation, layer.bias_axes)
    if plain is None:
        return None
    contracted, new = plain
    kernel = getattr(layer, "_kernel", None)
    if kernel is not None:
        shape = tuple(int(d) for d in kernel.shape)
        return projection_rule(shape[:contracted], shape[contracted:])
    out = tuple(layer.partial_output_shape)[-new:]
    return projection_rule((-1,), out) if contracted == 1 and None not in out else None


def _kernel_shape(layer: Any) -> tuple | None:
    kernel = getattr(layer, "_kernel", None) if layer is not None else None
    return None if kernel is None else tuple(kernel.shape)


@typed("attention")
def _attention(layer: Any) -> Rule:
    """MultiHeadAttention's EinsumDense sublayers (canonical dense via _einsum) joined into torch's tensors."""
    shapes = [_kernel_shape(getattr(layer, f"_{n}_dense", None)) for n in ("query", "key", "value")]
    return attention_rule("_query_dense", "_key_dense", "_value_dense", "_output_dense", same(shapes),
                          bool(layer._use_bias))


def _norm(layer: Any) -> dict:
    affine = {"gamma": (None,) if getattr(layer, "scale", False) else None,
              "beta": (None,) if getattr(layer, "center", False) else None}
    return {**affine, "moving_mean": (None,), "moving_variance": (None,)}


def _rules() -> dict[type, Entry]:
    from keras import layers

    conv = Rule("conv", _kernel(CHANNELS_LAST), _conv)
    transpose = Rule("conv_transpose", _kernel(CHANNELS_LAST), _conv_transpose)
    table: dict[type, Entry] = {
        layers.Dense: Rule("linear", _kernel(DENSE_IN_OUT), _dense),
        **{getattr(layers, f"Conv{d}D"): conv for d in (1, 2, 3)},
        **{getattr(layers, f"Conv{d}DTranspose"): transpose for d in (1, 2, 3)},
        **{getattr(layers, f"DepthwiseConv{d}D"): _depthwise for d in (1, 2) if hasattr(layers, f"DepthwiseConv{d}D")},
        **{getattr(layers, f"SeparableConv{d}D"): _separable for d in (1, 2)},
        layers.PReLU: _prelu,
        layers.EinsumDense: _einsum,
        layers.MultiHeadAttention: _attention,
        layers.BatchNormalization: Rule("batch_norm", (*NORM, *STATS), _norm),
        layers.LayerNormalization: Rule("layer_norm", NORM, _norm),
        layers.GroupNormalization: Rule("group_norm", NORM, _norm),
        layers.Embedding: Rule("embedding", (Leaf("embeddings", "weight", IDENTITY),)),
        **keras_rnn_rules.table(),
    }
    if hasattr(layers, "RMSNormalization"):
        table[layers.RMSNormalization] = Rule("rms_norm", (Leaf("scale", "weight", IDENTITY),))
    return table


RULES = RuleTable(_rules)
MISSING = {"instance_norm": "Keras has no instance norm layer (GroupNormalization(groups=-1) computes it: group_norm)"}
"""Layer types Keras has no layer for (shown by `unified-params compare`)."""
