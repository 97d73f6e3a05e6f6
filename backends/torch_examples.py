"""The documents' examples built with torch.nn, and oracles that read them with PyTorch's own API."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from unified_params.conformance.examples import Built

PARAM_TYPE = nn.Parameter


def mlp() -> Built:
    return Built(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))


def _block1() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


def _block2() -> nn.Module:
    net = nn.Sequential()
    for i in range(4):
        net.add_module(f"block {i}", _block1())
    return net


def nested() -> Built:
    return Built(nn.Sequential(_block2(), nn.Linear(4, 1)))


def tied() -> Built:
    shared = nn.Linear(8, 8)
    return Built(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1)))


def deferred() -> Built:
    return Built(nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10)))


def eager() -> Built:
    return Built(nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)))


class Pair(nn.Module):
    """A model taking one tuple (x, y): dense(x) + y, with a lazy dense."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.LazyLinear(4)

    def forward(self, pair: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = pair
        return self.dense(x) + y


def deferred_pair() -> Built:
    return Built(Pair())


def deferred_tied() -> Built:
    shared = nn.LazyLinear(8)
    return Built(nn.Sequential(nn.LazyLinear(8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.LazyLinear(1)))


def native_reinit(pm: Any, x: np.ndarray, value: float) -> None:
    """torch.nn.init on every Linear weight, as early as torch allows it: after the first forward gave the shapes."""
    native_forward(pm, x)
    for m in pm.model.modules():
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, value)


def native_initialized(pm: Any, name: str) -> bool:
    return not isinstance(native_object(pm, name), nn.parameter.UninitializedParameter)


def native_object(pm: Any, name: str) -> Any:
    path, _, leaf = name.rpartition(".")
    return getattr(pm.model.get_submodule(path), leaf)


def native_value(pm: Any, name: str) -> np.ndarray:
    return native_object(pm, name).detach().numpy().copy()


def native_names(pm: Any) -> list[str]:
    return [n for n, _ in pm.model.named_parameters()] + [n for n, _ in pm.model.named_buffers()]


def native_forward(pm: Any, *xs: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """The user's own call on xs (each an array, or a tuple of arrays passed as one input)."""
    with torch.no_grad():
        args = [tuple(map(torch.from_numpy, x)) if isinstance(x, tuple) else torch.from_numpy(x) for x in xs]
        return pm.model(*args).numpy()


def native_grads(pm: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    pm.model.zero_grad(set_to_none=True)
    pm.model(torch.from_numpy(x)).sum().backward()
    return native_grad_state(pm)


def native_grad_state(pm: Any) -> dict[str, np.ndarray]:
    """What PyTorch's own gradient state holds now (param.grad), without computing anything."""
    return {n: p.grad.numpy().copy() for n, p in pm.model.named_parameters() if p.grad is not None}


GRAD_BEFORE_BACKWARD = "None (param.grad)"


class Zoo(nn.Module):
    """Conv, batch norm, pooling, embedding, layer norm and dense: the cross-framework model (see docs/adapters.md)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4, eps=1e-5)
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4, eps=1e-5)
        self.head = nn.Linear(4, 2)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        h = nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(image))), 2).mean(dim=(2, 3))
        return self.head(self.norm(h + self.embed(tokens).mean(dim=1)))


def zoo() -> Built:
    return Built(Zoo())


def zoo_input() -> tuple[np.ndarray, np.ndarray]:
    """(image NCHW float32 (2, 3, 8, 8), tokens int32 (2, 5)): channels-first, as PyTorch expects."""
    from unified_params.conformance.examples import zoo_image, zoo_tokens

    return zoo_image().transpose(0, 3, 1, 2).copy(), zoo_tokens()


def replace_layer(model: nn.Module) -> None:
    model[2] = nn.Linear(8, 3)


def append_layer(model: nn.Module) -> None:
    model.append(nn.Linear(1, 2))


def delete_layer(model: nn.Module) -> None:
    del model[2]


def reassign_weight(model: nn.Module) -> None:
    model[0].weight = nn.Parameter(torch.full((8, 4), 0.5))


def set_trainable(model: nn.Module, position: int, flag: bool) -> None:
    model[position].requires_grad_(flag)


def cast(model: nn.Module) -> str:
    model.double()
    return "float64"


UNSUPPORTED_MUTATIONS: dict[str, str] = {}
