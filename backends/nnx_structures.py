"""The naming section's eight structures written the natural Flax NNX way (see docs/names.md)."""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_params.conformance.examples import Built


class Attributes(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.fc1 = nnx.Linear(4, 8, rngs=rngs)
        self.fc2 = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        return self.fc2(nnx.relu(self.fc1(x)))


class ListOfBlocks(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.blocks = nnx.List([nnx.Linear(4, 4, rngs=rngs) for _ in range(3)])

    def __call__(self, x: Any) -> Any:
        for block in self.blocks:
            x = nnx.relu(block(x))
        return x


class DictOfHeads(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.trunk = nnx.Linear(4, 8, rngs=rngs)
        self.heads = nnx.Dict({"cls": nnx.Linear(8, 3, rngs=rngs), "box": nnx.Linear(8, 4, rngs=rngs)})

    def __call__(self, x: Any) -> Any:
        h = nnx.relu(self.trunk(x))
        return jnp.concatenate([self.heads["cls"](h), self.heads["box"](h)], axis=-1)


class EncoderDecoder(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.encoder = nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu, nnx.Linear(8, 2, rngs=rngs))
        self.decoder = nnx.Linear(2, 4, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))


class Residual(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.fc = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        return x + jnp.tanh(self.fc(x))


class ResidualTwice(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.block = Residual(rngs)
        self.out = nnx.Linear(4, 1, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        return self.out(self.block(self.block(x)))


class TiedEmbedding(nnx.Module):
    """The output projection is the embedding table (nnx.Embed.attend)."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(10, 4, rngs=rngs)
        self.norm = nnx.LayerNorm(4, epsilon=1e-5, rngs=rngs)

    def __call__(self, tokens: Any) -> Any:
        return self.embed.attend(self.norm(self.embed(tokens)))


class NamedLayers(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(4, 8, rngs=rngs)
        self.output = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        return self.output(nnx.relu(self.hidden(x)))


def _make(cls: type) -> Built:
    return Built(cls(nnx.Rngs(0)))


def attributes() -> Built:
    return _make(Attributes)


def list_of_blocks() -> Built:
    return _make(ListOfBlocks)


def dict_of_heads() -> Built:
    return _make(DictOfHeads)


def encoder_decoder() -> Built:
    return _make(EncoderDecoder)


def sequential_in_sequential() -> Built:
    rngs = nnx.Rngs(0)
    return Built(nnx.Sequential(nnx.Sequential(nnx.Linear(4, 8, rngs=rngs), nnx.relu), nnx.Linear(8, 1, rngs=rngs)))


def residual_twice() -> Built:
    return _make(ResidualTwice)


def tied_embedding() -> Built:
    return _make(TiedEmbedding)


def named_layers() -> Built:
    return _make(NamedLayers)


def run(pm: Any, x: np.ndarray) -> np.ndarray:
    """The native forward of the wrapped model, as numpy."""
    return np.asarray(pm.model(jnp.asarray(x)))
