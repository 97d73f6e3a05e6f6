"""pm.grads on models whose output is a mapping or dataclass: the default loss sums the first tensor (issue 16)."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> dict:
        return {"cache": None, "logits": self.a(x), "hidden": self.b(x)}


@dataclasses.dataclass
class Out:
    hidden: torch.Tensor
    logits: torch.Tensor


class DataclassNet(DictNet):
    def forward(self, x: torch.Tensor) -> Out:  # type: ignore[override]
        return Out(self.b(x), self.a(x))


class OpaqueNet(DictNet):
    def forward(self, x: torch.Tensor) -> object:  # type: ignore[override]
        return object()


def _native_grads(net: nn.Module, x: torch.Tensor, pick: str) -> dict[str, np.ndarray]:
    net.zero_grad()
    out = net(x)
    (out[pick] if isinstance(out, dict) else getattr(out, pick)).sum().backward()
    return {n: p.grad.numpy() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("cls, first", [(DictNet, "logits"), (DataclassNet, "hidden")])
def test_torch_default_loss_sums_the_first_tensor_output(cls: type, first: str) -> None:
    torch.manual_seed(0)
    net = cls()
    x = torch.randn(5, 3)
    grads = up.wrap(net).grads(x.numpy())
    expected = _native_grads(net, x, first)
    assert set(grads) == set(expected)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-6)
    if cls is DictNet:
        assert set(up.wrap(net).grads(x.numpy(), loss=lambda out: out["hidden"].sum())) == {"b.weight", "b.bias"}


def test_opaque_output_names_loss() -> None:
    with pytest.raises(up.UnsupportedError, match="^pass loss= to pm.grads: the model returns object"):
        up.wrap(OpaqueNet()).grads(np.ones((2, 3), np.float32))


def test_keras_dict_outputs_default_loss_is_the_first() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, {"first": keras.layers.Dense(2, name="first")(inputs),
                                 "second": keras.layers.Dense(4, name="second")(inputs)})
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    pm = up.wrap(model)
    grads = pm.grads(x)
    first, second = (pm[model.get_layer(n).kernel.path].name for n in ("first", "second"))
    np.testing.assert_allclose(grads[first], np.tile(x.sum(0)[None, :], (2, 1)), rtol=1e-5)
    assert second not in grads or not np.any(grads[second])
