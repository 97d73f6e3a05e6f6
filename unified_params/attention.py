"""Multi-head attention in canonical form: PyTorch's `nn.MultiheadAttention` tensors, made of a framework's projections.

Canonical (torch's order): `in_proj_weight` (3E, E) when query, key and value projections have one shape, else
`q_proj_weight`, `k_proj_weight`, `v_proj_weight`; `in_proj_bias` (q, k, v biases concatenated); `out_proj.weight`
(E_out, heads * value_dim), `out_proj.bias`. Keras and Flax keep one projection sublayer each; a rule joins their
canonical dense weights (out, in) into these tensors. See docs/layouts.md (attention) for the configurations
PyTorch cannot express.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

from .joins import Join, Part
from .layout import Layout
from .rules import Leaf, Rule


@functools.cache
def attention_rule(query: str, key: str, value: str, out: str, packed: bool, bias: bool, weight: str = "weight",
                   bias_leaf: str = "bias", in_layout: Layout | None = None, in_bias_layout: Layout | None = None,
                   out_layout: Layout | None = None) -> Rule:
    """The `attention` rule of a layer whose projections are the children query, key, value and out.

    `weight`/`bias_leaf` are the children's leaves (canonical `weight`/`bias` where a dense rule covers them);
    the layouts turn a child's native kernel or bias into the canonical dense form where no rule does.
    """
    def part(child: str, leaf: str, layout: Layout | None) -> Part:
        return Part(f"{child}.{leaf}", layout)

    inputs = (query, key, value)
    if packed:
        joins = [Join("in_proj_weight", tuple(part(c, weight, in_layout) for c in inputs), kind="weight")]
    else:
        joins = [Join(f"{n}_proj_weight", (part(c, weight, in_layout),), kind="weight") for n, c in zip("qkv", inputs)]
    if bias:
        joins.append(Join("in_proj_bias", tuple(part(c, bias_leaf, in_bias_layout) for c in inputs), kind="bias"))
    joins.append(Join("out_proj.weight", (part(out, weight, out_layout),), kind="weight"))
    if bias:
        joins.append(Join("out_proj.bias", (part(out, bias_leaf, None),), kind="bias"))
    return Rule("attention", (), joins=tuple(joins))


@functools.cache
def own_rule(leaves: tuple[Leaf, ...], bias: bool) -> Rule:
    """PyTorch's own layout: the in-projection tensors are the layer's, `out_proj` (a Linear child) joins it."""
    joins = [Join("out_proj.weight", (Part("out_proj.weight"),), kind="weight")]
    if bias:
        joins.append(Join("out_proj.bias", (Part("out_proj.bias"),), kind="bias"))
    return Rule("attention", leaves, joins=tuple(joins))


def same(shapes: Sequence[tuple | None]) -> bool:
    """True when the query, key and value projections have one known shape (torch's packed in_proj_weight)."""
    return None not in shapes and len(set(shapes)) == 1
