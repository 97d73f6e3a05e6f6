"""The naming section's eight structures written the natural Equinox way (see docs/names.md).

Each module takes one example; `run` maps it over the batch with `jax.vmap`, as an Equinox user would.
"""
from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from unified_params.conformance.examples import Built


def _keys(n: int) -> list[Any]:
    return list(jax.random.split(jax.random.PRNGKey(0), n))


class Attributes(eqx.Module):
    fc1: eqx.nn.Linear
    fc2: eqx.nn.Linear

    def __init__(self) -> None:
        k = _keys(2)
        self.fc1, self.fc2 = eqx.nn.Linear(4, 8, key=k[0]), eqx.nn.Linear(8, 2, key=k[1])

    def __call__(self, x: Any) -> Any:
        return self.fc2(jax.nn.relu(self.fc1(x)))


class ListOfBlocks(eqx.Module):
    blocks: list

    def __init__(self) -> None:
        self.blocks = [eqx.nn.Linear(4, 4, key=k) for k in _keys(3)]

    def __call__(self, x: Any) -> Any:
        for block in self.blocks:
            x = jax.nn.relu(block(x))
        return x


class DictOfHeads(eqx.Module):
    trunk: eqx.nn.Linear
    heads: dict

    def __init__(self) -> None:
        k = _keys(3)
        self.trunk = eqx.nn.Linear(4, 8, key=k[0])
        self.heads = {"cls": eqx.nn.Linear(8, 3, key=k[1]), "box": eqx.nn.Linear(8, 4, key=k[2])}

    def __call__(self, x: Any) -> Any:
        h = jax.nn.relu(self.trunk(x))
        return jnp.concatenate([self.heads["cls"](h), self.heads["box"](h)], axis=-1)


class EncoderDecoder(eqx.Module):
    encoder: eqx.nn.Sequential
    decoder: eqx.nn.Linear

    def __init__(self) -> None:
        k = _keys(3)
        self.encoder = eqx.nn.Sequential([eqx.nn.Linear(4, 8, key=k[0]), eqx.nn.Lambda(jax.nn.relu),
                                          eqx.nn.Linear(8, 2, key=k[1])])
        self.decoder = eqx.nn.Linear(2, 4, key=k[2])

    def __call__(self, x: Any) -> Any:
        return self.decoder(self.encoder(x))


class Residual(eqx.Module):
    fc: eqx.nn.Linear

    def __init__(self, key: Any) -> None:
        self.fc = eqx.nn.Linear(4, 4, key=key)

    def __call__(self, x: Any) -> Any:
        return x + jnp.tanh(self.fc(x))


class ResidualTwice(eqx.Module):
    block: Residual
    out: eqx.nn.Linear

    def __init__(self) -> None:
        k = _keys(2)
        self.block, self.out = Residual(k[0]), eqx.nn.Linear(4, 1, key=k[1])

    def __call__(self, x: Any) -> Any:
        return self.out(self.block(self.block(x)))


class TiedEmbedding(eqx.Module):
    """The output projection is the embedding table (used transposed)."""

    embed: eqx.nn.Embedding
    norm: eqx.nn.LayerNorm

    def __init__(self) -> None:
        self.embed = eqx.nn.Embedding(10, 4, key=_keys(1)[0])
        self.norm = eqx.nn.LayerNorm(4, eps=1e-5)

    def __call__(self, tokens: Any) -> Any:
        h = jax.vmap(lambda t: self.norm(self.embed(t)))(tokens)
        return h @ self.embed.weight.T


class NamedLayers(eqx.Module):
    hidden: eqx.nn.Linear
    output: eqx.nn.Linear

    def __init__(self) -> None:
        k = _keys(2)
        self.hidden, self.output = eqx.nn.Linear(4, 8, key=k[0]), eqx.nn.Linear(8, 1, key=k[1])

    def __call__(self, x: Any) -> Any:
        return self.output(jax.nn.relu(self.hidden(x)))


def attributes() -> Built:
    return Built(Attributes())


def list_of_blocks() -> Built:
    return Built(ListOfBlocks())


def dict_of_heads() -> Built:
    return Built(DictOfHeads())


def encoder_decoder() -> Built:
    return Built(EncoderDecoder())


def sequential_in_sequential() -> Built:
    k = _keys(2)
    inner = eqx.nn.Sequential([eqx.nn.Linear(4, 8, key=k[0]), eqx.nn.Lambda(jax.nn.relu)])
    return Built(eqx.nn.Sequential([inner, eqx.nn.Linear(8, 1, key=k[1])]))


def residual_twice() -> Built:
    return Built(ResidualTwice())


def tied_embedding() -> Built:
    return Built(TiedEmbedding())


def named_layers() -> Built:
    return Built(NamedLayers())


def run(pm: Any, x: np.ndarray) -> np.ndarray:
    """The per-example model mapped over the batch, in inference mode, as numpy."""
    return np.asarray(jax.vmap(eqx.nn.inference_mode(pm.model, True))(jnp.asarray(x)))
