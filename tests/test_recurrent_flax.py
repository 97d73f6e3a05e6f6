"""Flax (linen, NNX) and Equinox recurrent cells carry torch's cells and layers: transfer gives torch's outputs.

The conformance layers section covers nn.RNN / nnx.RNN of LSTMCell, GRUCell, SimpleCell and Bidirectional; here:
the cells used by themselves (torch's nn.LSTMCell ...), OptimizedLSTMCell, NNX GRUCell's missing b_hn (refused
unless 0), SimpleCell(residual=True) (no canonical form) and Equinox's cells.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from recurrent_torch import CELLS, LAYERS, TOL, X, reference, run

import unified_params as up

jax = pytest.importorskip("jax")
jnp = jax.numpy
nn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")


def _zero_carry(layer_type: str, batch: int, hidden: int) -> Any:
    h = jnp.zeros((batch, hidden), jnp.float32)
    return (h, h) if layer_type == "lstm" else h


class LinenCells(nn.Module):
    """A linen cell as attribute `layer`, run over the steps of a batch-first input from a zero carry."""

    layer: nn.Module
    layer_type: str

    def __call__(self, x: Any) -> Any:
        carry, outs = _zero_carry(self.layer_type, x.shape[0], self.layer.features), []
        for t in range(x.shape[1]):
            carry, y = self.layer(carry, x[:, t])
            outs.append(y)
        return jnp.stack(outs, 1)


class NNXCells(nnx.Module):
    def __init__(self, layer: nnx.Module, layer_type: str) -> None:
        self.layer, self.layer_type = layer, layer_type

    def __call__(self, x: Any) -> Any:
        carry, outs = _zero_carry(self.layer_type, x.shape[0], self.layer.hidden_features), []
        for t in range(x.shape[1]):
            carry, y = self.layer(carry, x[:, t])
            outs.append(y)
        return jnp.stack(outs, 1)


LINEN = {"lstm": nn.LSTMCell, "optimized_lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}
NNX = {"lstm": nnx.LSTMCell, "optimized_lstm": nnx.OptimizedLSTMCell, "gru": nnx.GRUCell, "rnn": nnx.SimpleCell}


@pytest.mark.parametrize("cell", list(LINEN))
def test_linen_cell_is_torchs_cell(cell: str) -> None:
    layer_type = cell.replace("optimized_", "")
    source, expected = reference(CELLS[layer_type](3, 4))
    model = LinenCells(LINEN[cell](4), layer_type)
    pm = up.wrap(model, model.init(jax.random.PRNGKey(0), X))
    assert [(n, p.shape) for n, p in pm.items()] == [(n, tuple(p.shape)) for n, p in source.named_parameters()]
    up.transfer(source, pm)
    np.testing.assert_allclose(np.asarray(model.apply(pm.variables, X)), expected, **TOL)


@pytest.mark.parametrize("cell", list(NNX))
def test_nnx_cell_is_torchs_cell(cell: str) -> None:
    layer_type = cell.replace("optimized_", "")
    source, expected = reference(CELLS[layer_type](3, 4))
    if layer_type == "gru":
        source.layer.bias_hh.data[8:] = 0
        expected = run(source)
    model = NNXCells(NNX[cell](3, 4, rngs=nnx.Rngs(0)), layer_type)
    assert [(n, p.shape) for n, p in up.wrap(model).items()] == [(n, tuple(p.shape)) for n, p in
                                                                  source.named_parameters()]
    up.transfer(source, model)
    np.testing.assert_allclose(np.asarray(model(X)), expected, **TOL)


def test_nnx_gru_refuses_torchs_b_hn_and_changes_nothing() -> None:
    source, _ = reference(CELLS["gru"](3, 4))
    model = NNXCells(nnx.GRUCell(3, 4, rngs=nnx.Rngs(0)), "gru")
    before = np.asarray(model(X))
    with pytest.raises(up.UnsupportedError, match=r"layer 'layer' .*'bias_hh'.* b_hn"):
        up.transfer(source, model)
    np.testing.assert_array_equal(np.asarray(model(X)), before)


def test_nnx_rnn_of_optimized_lstm_cell_is_torchs_lstm() -> None:
    source, expected = reference(LAYERS["lstm"](3, 4, batch_first=True))
    from unified_params.backends.nnx_layers import Recurrent

    model = Recurrent(nnx.RNN(nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0))))
    up.transfer(source, model)
    np.testing.assert_allclose(np.asarray(model(X)), expected, **TOL)


def test_residual_simple_cell_has_no_canonical_form() -> None:
    source, _ = reference(CELLS["rnn"](3, 4))
    model = NNXCells(nnx.SimpleCell(3, 4, residual=True, rngs=nnx.Rngs(0)), "rnn")
    assert set(up.wrap(model).names()) == {"layer.dense_i.weight", "layer.dense_i.bias", "layer.dense_h.weight"}
    with pytest.raises(up.UnsupportedError, match=r"layer 'layer' \(SimpleCell\) has no canonical form: .*residual"):
        up.transfer(source, model)


@pytest.mark.parametrize("layer_type", ["lstm", "gru"])
def test_equinox_cell_is_torchs_cell(layer_type: str) -> None:
    eqx = pytest.importorskip("equinox")
    source, expected = reference(CELLS[layer_type](3, 4))
    cell = {"lstm": eqx.nn.LSTMCell, "gru": eqx.nn.GRUCell}[layer_type](3, 4, key=jax.random.PRNGKey(0))
    assert [(n, p.shape) for n, p in up.wrap(cell).items()] == [(n.split(".", 1)[1], tuple(p.shape)) for n, p in
                                                                 source.named_parameters()]
    cell = up.transfer(source.layer, cell).model
    carry = _zero_carry(layer_type, X.shape[0], 4)
    outs = []
    for t in range(X.shape[1]):
        carry = jax.vmap(cell)(X[:, t], carry)
        outs.append(carry[0] if layer_type == "lstm" else carry)
    np.testing.assert_allclose(np.stack(outs, 1), expected, **TOL)
