"""Pairing parameters of models whose names differ: rename rules and pairing by order, across frameworks."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up


class Named(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def sequential() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def keras_functional() -> keras.Model:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))


RENAME = [(r"0\.(.*)", r"hidden.\1"), (r"2\.(.*)", r"out.\1")]


def test_rename_moves_torch_into_keras_with_the_same_outputs() -> None:
    src, dst = sequential(), keras_functional()
    up.transfer(src, dst, rename=RENAME)
    np.testing.assert_array_equal(np.asarray(dst.get_layer("hidden").kernel), src[0].weight.detach().numpy().T)
    x = np.random.default_rng(0).uniform(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(dst(x)), src(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_by_order_pairs_differently_named_models_and_reports_the_pairing() -> None:
    src, dst = sequential(), Named()
    found = up.match(src, dst, by="order")
    assert found and found.mapping() == {"0.weight": "fc1.weight", "0.bias": "fc1.bias",
                                         "2.weight": "fc2.weight", "2.bias": "fc2.bias"}
    assert "fc2.weight" in str(found)
    up.transfer(src, dst, by="order")
    assert torch.equal(dst.fc2.weight, src[2].weight) and torch.equal(dst.fc1.bias, src[0].bias)


def test_by_order_names_the_first_disagreement_and_writes_nothing() -> None:
    src, dst = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), Named()
    before = dst.fc2.weight.detach().clone()
    expected = r"position 2: '2.weight' vs 'fc2.weight': shape \(2, 8\) vs \(1, 8\)"
    with pytest.raises(up.ShapeMismatchError, match=expected):
        up.transfer(src, dst, by="order")
    assert torch.equal(dst.fc2.weight, before)


@pytest.mark.parametrize(("rename", "match"), [
    ([(r"9\.(.*)", r"x.\1")], r"rename rule\(s\) '9.* match no name; names are: 0.weight"),
    ([(r"\d\.(.*)", r"same.\1")], "not one-to-one: '0.weight' and '2.weight' -> 'same.weight'"),
    ([("(", "x")], "does not compile"),
    ("0.weight", "list of"),
])
def test_bad_rename_rules_are_selection_errors(rename: object, match: str) -> None:
    dst = Named()
    before = dst.fc1.weight.detach().clone()
    with pytest.raises(up.SelectionError, match=match):
        up.transfer(sequential(), dst, rename=rename)
    assert torch.equal(dst.fc1.weight, before)


def test_rename_on_load_state_dict_and_load(tmp_path: object) -> None:
    src, dst = sequential(), Named()
    state = {k: v.detach().numpy() for k, v in src.state_dict().items()}
    rename = [(r"0\.(.*)", r"fc1.\1"), (r"2\.(.*)", r"fc2.\1")]
    up.wrap(dst).load_state_dict(state, rename=rename)
    assert torch.equal(dst.fc2.weight, src[2].weight)
    path = tmp_path / "seq.safetensors"
    up.wrap(src).save(path)
    other = Named()
    up.wrap(other).load(path, rename=rename)
    assert torch.equal(other.fc1.weight, src[0].weight)


def test_by_order_refuses_rename() -> None:
    with pytest.raises(up.SelectionError, match="one or the other"):
        up.match(sequential(), Named(), rename=RENAME, by="order")
