"""Multi-head attention on Flax NNX: the conformance layers rows and the Transformer encoder block."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from unified_params.conformance.examples import EMBED, HEADS, HIDDEN, KDIM, Built


class Attention(nnx.Module):
    """nnx.MultiHeadAttention as attribute `layer`: self-attention, or keys and values from the first kdim features."""

    def __init__(self, kdim: int | None = None, bias: bool = True) -> None:
        self.kdim = kdim
        self.layer = nnx.MultiHeadAttention(HEADS, EMBED, in_kv_features=kdim, use_bias=bias, decode=False,
                                            rngs=nnx.Rngs(0))

    def __call__(self, x: Any, mask: Any = None) -> Any:
        kv = x if self.kdim is None else x[..., : self.kdim]
        return self.layer(x, kv, mask=mask)


class EncoderBlock(nnx.Module):
    """A post-norm Transformer encoder block: attention, LayerNorm, a ReLU MLP, residuals."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.attn = nnx.MultiHeadAttention(HEADS, EMBED, decode=False, rngs=rngs)
        self.norm1 = nnx.LayerNorm(EMBED, epsilon=1e-5, rngs=rngs)
        self.mlp = nnx.Sequential(nnx.Linear(EMBED, HIDDEN, rngs=rngs), nnx.relu, nnx.Linear(HIDDEN, EMBED, rngs=rngs))
        self.norm2 = nnx.LayerNorm(EMBED, epsilon=1e-5, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


ATTENTION: dict[str, Callable[[], Built] | str] = {
    "attention": lambda: Built(Attention()),
    "attention_no_bias": lambda: Built(Attention(bias=False)),
    "attention_kdim": lambda: Built(Attention(KDIM)),
}


def encoder_block() -> Built:
    return Built(EncoderBlock(nnx.Rngs(0)))
