"""The naming section's eight structures written the natural Flax linen way (see docs/names.md)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from unified_params.conformance.examples import Built


def _init(module: nn.Module, x: np.ndarray) -> Built:
    return Built(module, module.init(jax.random.PRNGKey(0), jnp.asarray(x)))


class Attributes(nn.Module):
    def setup(self) -> None:
        self.fc1 = nn.Dense(8)
        self.fc2 = nn.Dense(2)

    def __call__(self, x: Any) -> Any:
        return self.fc2(nn.relu(self.fc1(x)))


class ListOfBlocks(nn.Module):
    def setup(self) -> None:
        self.blocks = [nn.Dense(4) for _ in range(3)]

    def __call__(self, x: Any) -> Any:
        for block in self.blocks:
            x = nn.relu(block(x))
        return x


class DictOfHeads(nn.Module):
    def setup(self) -> None:
        self.trunk = nn.Dense(8)
        self.heads = {"cls": nn.Dense(3), "box": nn.Dense(4)}

    def __call__(self, x: Any) -> Any:
        h = nn.relu(self.trunk(x))
        return jnp.concatenate([self.heads["cls"](h), self.heads["box"](h)], axis=-1)


class EncoderDecoder(nn.Module):
    """Containers made in setup. (Made inside a compact method, linen parents the Sequential's layers to this
    module, so they are named Dense_0, Dense_1: see docs/names.md.)"""

    def setup(self) -> None:
        self.encoder = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])
        self.decoder = nn.Dense(4)

    def __call__(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))


class Residual(nn.Module):
    def setup(self) -> None:
        self.fc = nn.Dense(4)

    def __call__(self, x: Any) -> Any:
        return x + jnp.tanh(self.fc(x))


class ResidualTwice(nn.Module):
    def setup(self) -> None:
        self.block = Residual()
        self.out = nn.Dense(1)

    def __call__(self, x: Any) -> Any:
        return self.out(self.block(self.block(x)))


class TiedEmbedding(nn.Module):
    """The output projection is the embedding table (nn.Embed.attend)."""

    def setup(self) -> None:
        self.embed = nn.Embed(10, 4)
        self.norm = nn.LayerNorm(epsilon=1e-5)

    def __call__(self, tokens: Any) -> Any:
        return self.embed.attend(self.norm(self.embed(tokens)))


class NamedLayers(nn.Module):
    """Compact style with the layers named by the user."""

    @nn.compact
    def __call__(self, x: Any) -> Any:
        return nn.Dense(1, name="output")(nn.relu(nn.Dense(8, name="hidden")(x)))


def _features() -> np.ndarray:
    return np.zeros((1, 4), np.float32)


def attributes() -> Built:
    return _init(Attributes(), _features())


def list_of_blocks() -> Built:
    return _init(ListOfBlocks(), _features())


def dict_of_heads() -> Built:
    return _init(DictOfHeads(), _features())


def encoder_decoder() -> Built:
    return _init(EncoderDecoder(), _features())


def sequential_in_sequential() -> Built:
    return _init(nn.Sequential([nn.Sequential([nn.Dense(8), nn.relu]), nn.Dense(1)]), _features())


def residual_twice() -> Built:
    return _init(ResidualTwice(), _features())


def tied_embedding() -> Built:
    return _init(TiedEmbedding(), np.zeros((1, 5), np.int32))


def named_layers() -> Built:
    return _init(NamedLayers(), _features())


def run(pm: Any, x: np.ndarray) -> np.ndarray:
    """The native forward of the wrapped module with its current variables, as numpy."""
    return np.asarray(pm.model.apply(pm.variables, jnp.asarray(x)))
