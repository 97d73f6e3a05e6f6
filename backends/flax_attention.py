"""Multi-head attention on Flax linen: the conformance layers rows (@compact) and the encoder block (setup)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import linen as nn

from unified_params.conformance.examples import EMBED, HEADS, HIDDEN, KDIM, Built, layer_input


class Attention(nn.Module):
    """MultiHeadDotProductAttention named `layer`: self-attention, or keys and values from the first kdim / vdim
    features of the input; `mask` (batch, heads, query, key) True where a query may attend."""

    kdim: int | None = None
    bias: bool = True
    vdim: int | None = None
    qkv_features: int | None = None
    out_features: int | None = None

    @nn.compact
    def __call__(self, x: Any, mask: Any = None) -> Any:
        k, v = (x if d is None else x[..., :d] for d in (self.kdim, self.vdim or self.kdim))
        layer = nn.MultiHeadDotProductAttention(HEADS, qkv_features=self.qkv_features, out_features=self.out_features,
                                                use_bias=self.bias, name="layer")
        return layer(x, k, v, mask=mask)


class EncoderBlock(nn.Module):
    """A post-norm Transformer encoder block: attention, LayerNorm, a ReLU MLP, residuals (submodules in setup: a
    compact child named by the user is known from its variables only, and a LayerNorm's match other norms')."""

    def setup(self) -> None:
        self.attn = nn.MultiHeadDotProductAttention(HEADS)
        self.norm1 = nn.LayerNorm(epsilon=1e-5)
        self.mlp = nn.Sequential([nn.Dense(HIDDEN), nn.relu, nn.Dense(EMBED)])
        self.norm2 = nn.LayerNorm(epsilon=1e-5)

    def __call__(self, x: Any) -> Any:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


def _built(model: nn.Module) -> Built:
    return Built(model, model.init(jax.random.PRNGKey(0), layer_input("attention")))


ATTENTION: dict[str, Callable[[], Built] | str] = {
    "attention": lambda: _built(Attention()),
    "attention_no_bias": lambda: _built(Attention(bias=False)),
    "attention_kdim": lambda: _built(Attention(KDIM)),
}


def encoder_block() -> Built:
    return _built(EncoderBlock())
