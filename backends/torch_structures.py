"""The naming section's eight structures written the natural PyTorch way (see docs/names.md)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unified_params.conformance.examples import Built


class Attributes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class ListOfBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = torch.relu(block(x))
        return x


class DictOfHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "box": nn.Linear(8, 4)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.trunk(x))
        return torch.cat([self.heads["cls"](h), self.heads["box"](h)], dim=-1)


class EncoderDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.decoder = nn.Linear(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.fc(x))


class ResidualTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Residual()
        self.out = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(self.block(x)))


class TiedEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(tokens)))


class NamedLayers(nn.Module):
    """The compact / functional idiom elsewhere: layers named by the user where they are made."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.output = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(torch.relu(self.hidden(x)))


def attributes() -> Built:
    return Built(Attributes())


def list_of_blocks() -> Built:
    return Built(ListOfBlocks())


def dict_of_heads() -> Built:
    return Built(DictOfHeads())


def encoder_decoder() -> Built:
    return Built(EncoderDecoder())


def sequential_in_sequential() -> Built:
    return Built(nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 1)))


def residual_twice() -> Built:
    return Built(ResidualTwice())


def tied_embedding() -> Built:
    return Built(TiedEmbedding())


def named_layers() -> Built:
    return Built(NamedLayers())


def run(pm: Any, x: np.ndarray) -> np.ndarray:
    """The native forward of the wrapped model in inference mode, as numpy."""
    with torch.no_grad():
        return pm.model.eval()(torch.as_tensor(x)).numpy()
