"""Multi-head attention on PyTorch: the conformance layers rows and the Transformer encoder block (the reference)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from unified_params.conformance.examples import EMBED, HEADS, HIDDEN, KDIM, Built


class Attention(nn.Module):
    """nn.MultiheadAttention as attribute `layer`: self-attention, or keys and values from the first kdim / vdim
    features of the input; `mask` True where a query may attend."""

    def __init__(self, kdim: int | None = None, bias: bool = True, vdim: int | None = None) -> None:
        super().__init__()
        self.kdim, self.vdim = kdim, vdim or kdim
        self.layer = nn.MultiheadAttention(EMBED, HEADS, bias=bias, kdim=kdim, vdim=self.vdim, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        k, v = (x if d is None else x[..., :d] for d in (self.kdim, self.vdim))
        return self.layer(x, k, v, need_weights=False, attn_mask=None if mask is None else ~mask)[0]


class EncoderBlock(nn.Module):
    """A post-norm Transformer encoder block (nn.TransformerEncoderLayer's structure, ReLU MLP, no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(EMBED, HEADS, batch_first=True)
        self.norm1 = nn.LayerNorm(EMBED)
        self.mlp = nn.Sequential(nn.Linear(EMBED, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, EMBED))
        self.norm2 = nn.LayerNorm(EMBED)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, x, x, need_weights=False)[0])
        return self.norm2(x + self.mlp(x))


ATTENTION: dict[str, Callable[[], Built] | str] = {
    "attention": lambda: Built(Attention()),
    "attention_no_bias": lambda: Built(Attention(bias=False)),
    "attention_kdim": lambda: Built(Attention(KDIM)),
}


def encoder_block() -> Built:
    return Built(EncoderBlock())
