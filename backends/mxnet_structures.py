"""The naming section's eight structures written the natural Gluon way (see docs/names.md).

Gluon 1.9 has no ModuleList/ModuleDict: blocks kept in a list or dict attribute are registered one by one
with `register_child`, as Gluon's documentation advises; they are named `attr.i` / `attr.key`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from unified_params.backends.mxnet_import import import_mxnet
from unified_params.conformance.examples import Built

mx = import_mxnet()
from mxnet import nd  # noqa: E402
from mxnet.gluon import nn  # noqa: E402


def _ready(block: Any) -> Built:
    block.initialize()
    return Built(block)


def _sequential(*layers: Any) -> nn.Sequential:
    net = nn.Sequential()
    net.add(*layers)
    return net


class Attributes(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Dense(8, in_units=4)
        self.fc2 = nn.Dense(2, in_units=8)

    def forward(self, x: Any) -> Any:
        return self.fc2(nd.relu(self.fc1(x)))


class ListOfBlocks(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = [nn.Dense(4, in_units=4) for _ in range(3)]
        for i, block in enumerate(self.blocks):
            self.register_child(block, f"blocks{i}")

    def forward(self, x: Any) -> Any:
        for block in self.blocks:
            x = nd.relu(block(x))
        return x


class DictOfHeads(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Dense(8, in_units=4)
        self.heads = {"cls": nn.Dense(3, in_units=8), "box": nn.Dense(4, in_units=8)}
        for key, head in self.heads.items():
            self.register_child(head, f"heads_{key}")

    def forward(self, x: Any) -> Any:
        h = nd.relu(self.trunk(x))
        return nd.concat(self.heads["cls"](h), self.heads["box"](h), dim=-1)


class EncoderDecoder(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = _sequential(nn.Dense(8, in_units=4), nn.Activation("relu"), nn.Dense(2, in_units=8))
        self.decoder = nn.Dense(4, in_units=2)

    def forward(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))


class Residual(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Dense(4, in_units=4)

    def forward(self, x: Any) -> Any:
        return x + nd.tanh(self.fc(x))


class ResidualTwice(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.block = Residual()
        self.out = nn.Dense(1, in_units=4)

    def forward(self, x: Any) -> Any:
        return self.out(self.block(self.block(x)))


class TiedEmbedding(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(epsilon=1e-5, in_channels=4)
        self.head = nn.Dense(10, in_units=4, use_bias=False, flatten=False, params=self.embed.params)

    def forward(self, tokens: Any) -> Any:
        return self.head(self.norm(self.embed(tokens)))


class NamedLayers(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Dense(8, in_units=4)
        self.output = nn.Dense(1, in_units=8)

    def forward(self, x: Any) -> Any:
        return self.output(nd.relu(self.hidden(x)))


def attributes() -> Built:
    return _ready(Attributes())


def list_of_blocks() -> Built:
    return _ready(ListOfBlocks())


def dict_of_heads() -> Built:
    return _ready(DictOfHeads())


def encoder_decoder() -> Built:
    return _ready(EncoderDecoder())


def sequential_in_sequential() -> Built:
    return _ready(_sequential(_sequential(nn.Dense(8, in_units=4), nn.Activation("relu")), nn.Dense(1, in_units=8)))


def residual_twice() -> Built:
    return _ready(ResidualTwice())


def tied_embedding() -> Built:
    return _ready(TiedEmbedding())


def named_layers() -> Built:
    return _ready(NamedLayers())


def run(pm: Any, x: np.ndarray) -> np.ndarray:
    """The native forward of the wrapped model (prediction mode), as numpy."""
    return pm.model(nd.array(x, dtype=x.dtype)).asnumpy()
