"""Multi-head attention on Equinox (per-example modules, vmapped over the batch): the Transformer encoder block."""
from __future__ import annotations

from typing import Any

import equinox as eqx
import jax

from unified_params.conformance.examples import EMBED, HEADS, HIDDEN, Built


class Attention(eqx.Module):
    """MultiheadAttention as field `layer`: self-attention, or keys and values from the first kdim / vdim features;
    `attend` (query, key) True where a query may attend."""

    layer: eqx.nn.MultiheadAttention
    kdim: int | None = eqx.field(static=True)
    vdim: int | None = eqx.field(static=True)

    def __init__(self, kdim: int | None = None, bias: bool = True, vdim: int | None = None) -> None:
        self.kdim, self.vdim = kdim, vdim or kdim
        flags = dict.fromkeys(("use_query_bias", "use_key_bias", "use_value_bias", "use_output_bias"), bias)
        self.layer = eqx.nn.MultiheadAttention(HEADS, EMBED, key_size=kdim, value_size=self.vdim, **flags,
                                               key=jax.random.PRNGKey(0))

    def __call__(self, x: Any, attend: Any = None) -> Any:
        k, v = (x if d is None else x[..., :d] for d in (self.kdim, self.vdim))
        return self.layer(x, k, v, mask=attend)


class EncoderBlock(eqx.Module):
    """A post-norm Transformer encoder block on one sequence: attention, LayerNorm, a ReLU MLP, residuals."""

    attn: eqx.nn.MultiheadAttention
    norm1: eqx.nn.LayerNorm
    mlp: eqx.nn.Sequential
    norm2: eqx.nn.LayerNorm

    def __init__(self, key: Any) -> None:
        k1, k2, k3 = jax.random.split(key, 3)
        self.attn = eqx.nn.MultiheadAttention(HEADS, EMBED, use_query_bias=True, use_key_bias=True,
                                              use_value_bias=True, use_output_bias=True, key=k1)
        self.norm1 = eqx.nn.LayerNorm(EMBED, eps=1e-5)
        self.mlp = eqx.nn.Sequential([eqx.nn.Linear(EMBED, HIDDEN, key=k2), eqx.nn.Lambda(jax.nn.relu),
                                      eqx.nn.Linear(HIDDEN, EMBED, key=k3)])
        self.norm2 = eqx.nn.LayerNorm(EMBED, eps=1e-5)

    def __call__(self, x: Any) -> Any:
        x = jax.vmap(self.norm1)(x + self.attn(x, x, x))
        return jax.vmap(self.norm2)(x + jax.vmap(self.mlp)(x))


def encoder_block() -> Built:
    return Built(EncoderBlock(jax.random.PRNGKey(0)))
