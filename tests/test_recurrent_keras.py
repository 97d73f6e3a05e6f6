"""Keras recurrent layers carry torch's recurrent layers: transfer from torch gives torch's own outputs.

The conformance layers section covers LSTM, GRU, SimpleRNN, Bidirectional and a stacked GRU; here: the generic
`keras.layers.RNN` of cells, layers without biases, the folded bias on the way back to torch, and the GRU with
`reset_after=False`, which has no canonical form and is refused.
"""
from __future__ import annotations

import numpy as np
import pytest
from recurrent_torch import LAYERS, TOL, X, reference, run

import unified_params as up

keras = pytest.importorskip("keras")
layers = keras.layers


class KerasModel(keras.Model):
    def __init__(self, layer: keras.Layer) -> None:
        super().__init__()
        self.layer = layer

    def call(self, x: object) -> object:
        return self.layer(x)


def _keras(layer: keras.Layer) -> KerasModel:
    model = KerasModel(layer)
    model(X)
    return model


def _out(model: KerasModel) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(X))


def test_rnn_of_a_cell_and_stacked_lstm_cells_are_torchs_layers() -> None:
    source, expected = reference(LAYERS["lstm"](3, 4, num_layers=2, batch_first=True))
    target = _keras(layers.RNN([layers.LSTMCell(4), layers.LSTMCell(4)], return_sequences=True))
    pm = up.wrap(target)
    assert [(n, p.shape) for n, p in pm.items()] == [(n, tuple(p.shape)) for n, p in source.named_parameters()]
    up.transfer(source, target)
    np.testing.assert_allclose(_out(target), expected, **TOL)
    source, expected = reference(LAYERS["rnn"](3, 4, batch_first=True))
    target = _keras(layers.RNN(layers.SimpleRNNCell(4), return_sequences=True))
    up.transfer(source, target)
    np.testing.assert_allclose(_out(target), expected, **TOL)


@pytest.mark.parametrize("layer_type", ["lstm", "gru", "rnn"])
def test_layers_without_bias(layer_type: str) -> None:
    source, expected = reference(LAYERS[layer_type](3, 4, bias=False, batch_first=True))
    make = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}[layer_type]
    target = _keras(make(4, use_bias=False, return_sequences=True))
    assert up.wrap(target).names() == ["layer.weight_ih_l0", "layer.weight_hh_l0"]
    up.transfer(source, target)
    np.testing.assert_allclose(_out(target), expected, **TOL)


def test_folded_bias_keeps_the_function_on_the_way_back() -> None:
    source, expected = reference(LAYERS["lstm"](3, 4, batch_first=True))
    b_ih, b_hh = source.layer.bias_ih_l0.detach().numpy().copy(), source.layer.bias_hh_l0.detach().numpy().copy()
    target = _keras(layers.LSTM(4, return_sequences=True))
    pm = up.transfer(source, target)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target.layer.cell.bias), b_ih + b_hh, **TOL)
    assert pm["layer.bias_hh_l0"].native_name.startswith("(none")
    assert not pm["layer.bias_hh_l0"].numpy().any()
    back, _ = reference(LAYERS["lstm"](3, 4, batch_first=True), seed=1)
    up.transfer(target, back)
    np.testing.assert_allclose(run(back), expected, **TOL)
    np.testing.assert_allclose(back.layer.bias_ih_l0.detach().numpy(), b_ih + b_hh, **TOL)
    assert not back.layer.bias_hh_l0.detach().numpy().any()


def test_gru_reset_before_the_matmul_has_no_canonical_form() -> None:
    source, _ = reference(LAYERS["gru"](3, 4, batch_first=True))
    target = _keras(layers.GRU(4, reset_after=False, return_sequences=True))
    pm = up.wrap(target)
    assert set(pm.names()) == {"layer.cell.kernel", "layer.cell.recurrent_kernel", "layer.cell.bias"}
    before = _out(target)
    for src, dst in ((source, target), (target, source)):
        with pytest.raises(up.UnsupportedError, match=r"layer 'layer' \(GRU\) has no canonical form: .*reset_after"):
            up.transfer(src, dst)
    with pytest.raises(up.UnsupportedError, match="reset_after=False"):
        pm.load_state_dict(up.wrap(source).state_dict())
    np.testing.assert_array_equal(_out(target), before)
    same = _keras(layers.GRU(4, reset_after=False, return_sequences=True))
    up.transfer(target, same)
    np.testing.assert_allclose(_out(same), before, **TOL)
