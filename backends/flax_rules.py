"""The Flax rule tables, one for linen and one for NNX: dense kernels (in, out) and conv kernels (*kernel, in, out).

Both frameworks name variables alike (`kernel`, `bias`, `scale`, `embedding`, and the batch
statistics `mean`/`var`), so the leaves are shared. Linen layers' shapes before data serve modules
wrapped without variables and `nnx.bridge.ToNNX` modules before `lazy_init` (None where the input decides).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from unified_params.layout import CHANNELS_LAST, DENSE_IN_OUT, IDENTITY, Layout, Permute, Reshape, Reverse
from unified_params.rules import Entry, Leaf, Rule, RuleTable

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


def _linen_transpose(module: Any) -> Rule:
    return _transpose_rule(bool(module.transpose_kernel), len(_kernel_size(module)), True)


def _nnx_transpose(module: Any) -> Rule:
    return _transpose_rule(bool(module.transpose_kernel), len(_kernel_size(module)), False)


def _embed(module: Any) -> dict:
    return {"embedding": (module.num_embeddings, module.features)}


def _norm(module: Any) -> dict:
    return {"scale": (None,) if getattr(module, "use_scale", True) else None,
            "bias": (None,) if getattr(module, "use_bias", False) else None,
            "mean": (None,), "var": (None,)}


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
