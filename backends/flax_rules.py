"""The Flax rule tables, one for linen and one for NNX: dense kernels (in, out) and conv kernels (*kernel, in, out).

Both frameworks name variables alike (`kernel`, `bias`, `scale`, `embedding`, and the batch
statistics `mean`/`var`), so the leaves are shared. Linen layers' shapes before data serve modules
wrapped without variables and `nnx.bridge.ToNNX` modules before `lazy_init` (None where the input decides).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from unified_params.attention import attention_rule, same
from unified_params.layer_types import typed
from unified_params.layout import CHANNELS_LAST, DENSE_IN_OUT, IDENTITY, Layout, Permute, Reshape, Reverse
from unified_params.projections import bias_layout, kernel_layout, projection_rule
from unified_params.rules import Entry, Leaf, Rule, RuleTable

from .flax_rnn_rules import linen_table, nnx_table

BIAS = Leaf("bias", "bias", IDENTITY)
DENSE = (Leaf("kernel", "weight", DENSE_IN_OUT), BIAS)
CONV = (Leaf("kernel", "weight", CHANNELS_LAST), BIAS)
NORM = (Leaf("scale", "weight", IDENTITY), BIAS)
STATS = (*NORM, Leaf("mean", "running_mean", IDENTITY, trainable=False),
         Leaf("var", "running_var", IDENTITY, trainable=False))
EMBED = (Leaf("embedding", "weight", IDENTITY),)
SLOPE = (Leaf("negative_slope", "weight", Layout((Reshape((), (1,)),), "one shared slope ()")),)


def _bias(module: Any, size: int | None) -> tuple | None:
    return (size,) if module.use_bias else None


def _dense(module: Any) -> dict:
    return {"kernel": (None, module.features), "bias": _bias(module, module.features)}


def _kernel_size(module: Any) -> tuple[int, ...]:
    k = module.kernel_size
    return (k,) if isinstance(k, int) else tuple(k)


def _conv(module: Any) -> dict:
    return {"kernel": (*_kernel_size(module), None, module.features), "bias": _bias(module, module.features)}


def _conv_swapped(module: Any) -> dict:
    return {"kernel": (*_kernel_size(module), module.features, None), "bias": _bias(module, module.features)}


@functools.cache
def _transpose_rule(swapped: bool, spatial: int, shapes: bool) -> Rule:
    """`transpose_kernel=True` stores (*kernel, out, in) and flips it in the call: PyTorch's (in, out, *kernel) is
    CHANNELS_LAST. `False` stores (*kernel, in, out) used unflipped: PyTorch's weight is it with the kernel reversed."""
    if swapped:
        return Rule("conv_transpose", CONV, _conv_swapped if shapes else None)
    flipped = Layout((Permute((-2, -1, ...)), Reverse(tuple(range(2, 2 + spatial)))),
                     "transposed conv kernel (*kernel, in, out), kernel reversed")
    return Rule("conv_transpose", (Leaf("kernel", "weight", flipped), BIAS), _conv if shapes else None)


@typed("conv_transpose")
def _linen_transpose(module: Any) -> Rule:
    return _transpose_rule(bool(module.transpose_kernel), len(_kernel_size(module)), True)


@typed("conv_transpose")
def _nnx_transpose(module: Any) -> Rule:
    return _transpose_rule(bool(module.transpose_kernel), len(_kernel_size(module)), False)


def _embed(module: Any) -> dict:
    return {"embedding": (module.num_embeddings, module.features)}


def _norm(module: Any) -> dict:
    return {"scale": (None,) if getattr(module, "use_scale", True) else None,
            "bias": (None,) if getattr(module, "use_bias", False) else None,
            "mean": (None,), "var": (None,)}


def _tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _trailing(axis: Any, count: int) -> bool:
    """True when axis names the input's last `count` axes in order (-count, ..., -1)."""
    return _tuple(axis) == tuple(range(-count, 0))


def _dense_general_shapes(module: Any) -> dict:
    features = _tuple(module.features)
    return {"kernel": (None, *features), "bias": features if module.use_bias else None}


@typed("linear")
def _dense_general(module: Any) -> Rule | None:
    """linen DenseGeneral contracting the last input axis (its size comes from the input) without batch_dims is
    `linear`; several contracted axes (their sizes unknown to the layer) or batch_dims keep native layout."""
    if tuple(module.batch_dims) or not _trailing(module.axis, 1):
        return None
    return _dense_general_rule(_tuple(module.features))


@functools.cache
def _dense_general_rule(features: tuple[int, ...]) -> Rule:
    return Rule("linear", projection_rule((-1,), features).leaves, _dense_general_shapes)


@typed("linear")
def _linear_general(module: Any) -> Rule | None:
    """nnx LinearGeneral over the input's trailing axes without batch axes is `linear` (it knows every size)."""
    inputs = tuple(module.in_features)
    if module.batch_axis or not _trailing(module.axis, len(inputs)):
        return None
    return projection_rule(inputs, tuple(module.out_features))


def _linen_kernel(module: Any, child: str) -> tuple | None:
    """A bound linen module's child kernel shape (None before init or when unbound)."""
    try:
        kernel = module.variables["params"][child]["kernel"]
        return tuple(np.shape(kernel.unbox() if hasattr(kernel, "unbox") else kernel))
    except Exception:  # noqa: BLE001 - unbound, uninitialized or a variables tree without that child
        return None


@typed("attention")
def _linen_attention(module: Any) -> Rule:
    """MultiHeadDotProductAttention's compact DenseGeneral children joined into torch's tensors (heads from the
    configuration, packed when the query, key and value kernels have one shape)."""
    shapes = [_linen_kernel(module, c) for c in ("query", "key", "value")]
    return _linen_attention_rule(int(module.num_heads), same(shapes) or None in shapes, bool(module.use_bias))


def _linen_attention_rule(heads: int, packed: bool, bias: bool) -> Rule:
    """Kernels (in, heads, head_dim), out kernel (heads, head_dim, out), biases (heads, head_dim) made dense."""
    dense = kernel_layout((-1,), (heads, -1)), bias_layout((heads, -1)), kernel_layout((heads, -1), (-1,))
    return attention_rule("query", "key", "value", "out", packed, bias, "kernel", "bias", *dense)


ATTENTION_CHILDREN = ("query", "key", "value", "out")


def by_children(children: Sequence[str], shapes: Callable[[str], Mapping[str, tuple[int, ...]]]) -> Rule | None:
    """The attention rule of a linen compact child known from its variables only: children query, key and value
    with kernels (in, heads, head_dim) and out with (heads, head_dim, out) (MultiHeadDotProductAttention's own)."""
    if not set(ATTENTION_CHILDREN) <= set(children):
        return None
    found = {c: shapes(c) for c in ATTENTION_CHILDREN}
    kernels = [found[c].get("kernel") for c in ATTENTION_CHILDREN]
    if any(k is None or len(k) != 3 for k in kernels) or kernels[3][:1] != kernels[0][1:2]:
        return None
    return _linen_attention_rule(kernels[0][1], same(kernels[:3]), "bias" in found["query"])


@typed("attention")
def _nnx_attention(module: Any) -> Rule:
    """nnx.MultiHeadAttention's LinearGeneral children (canonical dense via _linear_general) joined like torch's."""
    shapes = [tuple(getattr(module, c).kernel.shape) for c in ("query", "key", "value")]
    return attention_rule("query", "key", "value", "out", same(shapes), bool(module.use_bias))


def _linen() -> dict[type, Entry]:
    from flax import linen

    return {
        linen.Dense: Rule("linear", DENSE, _dense),
        linen.Conv: Rule("conv", CONV, _conv),
        linen.ConvTranspose: _linen_transpose,
        linen.Embed: Rule("embedding", EMBED, _embed),
        linen.BatchNorm: Rule("batch_norm", STATS, _norm),
        linen.LayerNorm: Rule("layer_norm", NORM, _norm),
        linen.GroupNorm: Rule("group_norm", NORM, _norm),
        linen.InstanceNorm: Rule("instance_norm", NORM, _norm),
        linen.RMSNorm: Rule("rms_norm", NORM[:1], _norm),
        linen.PReLU: Rule("prelu", SLOPE, lambda module: {"negative_slope": ()}),
        linen.DenseGeneral: _dense_general,
        linen.MultiHeadDotProductAttention: _linen_attention,
        **linen_table(),
    }


def _nnx() -> dict[type, Entry]:
    from flax import nnx

    table: dict[type, Entry] = {
        nnx.Linear: Rule("linear", DENSE),
        nnx.Conv: Rule("conv", CONV),
        nnx.ConvTranspose: _nnx_transpose,
        nnx.Embed: Rule("embedding", EMBED),
        nnx.BatchNorm: Rule("batch_norm", STATS),
        nnx.LayerNorm: Rule("layer_norm", NORM),
        nnx.GroupNorm: Rule("group_norm", NORM),
        nnx.RMSNorm: Rule("rms_norm", NORM[:1]),
        nnx.PReLU: Rule("prelu", SLOPE),
        nnx.LinearGeneral: _linear_general,
        nnx.MultiHeadAttention: _nnx_attention,
        **nnx_table(),
    }
    if hasattr(nnx, "InstanceNorm"):
        table[nnx.InstanceNorm] = Rule("instance_norm", NORM)
    return table


def by_signature(shapes: Mapping[str, tuple[int, ...]]) -> Rule | None:
    """The rule of a linen compact child named by the user, known from its variables only, where exactly one Flax
    class has them: Dense (kernel (in, out), bias (out,)), Embed (embedding), BatchNorm (statistics). Conv kernels,
    whose variables Conv, ConvTranspose and ConvLocal share, and the other norms match none: they stay native."""
    names = set(shapes)
    kernel, bias = shapes.get("kernel"), shapes.get("bias")
    table = LINEN.table
    from flax import linen

    if names <= {"kernel", "bias"} and kernel is not None and len(kernel) == 2 and bias in (None, kernel[1:]):
        return table[linen.Dense]
    if names == {"embedding"} and len(shapes["embedding"]) == 2:
        return table[linen.Embed]
    if {"mean", "var"} <= names <= {"scale", "bias", "mean", "var"} and len({shapes[n] for n in names}) == 1:
        return table[linen.BatchNorm]
    return None


LINEN = RuleTable(_linen)
NNX = RuleTable(_nnx)
RULES = LINEN
"""The linen table under the name `unified-params compare` looks for (NNX's is in nnx_rules)."""
