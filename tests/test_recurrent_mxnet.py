"""Recurrent layers on torch (canonical) and MXNet Gluon: names, and transfer from torch gives torch's outputs."""
from __future__ import annotations

import numpy as np
import pytest
from recurrent_torch import CELLS, LAYERS, TOL, X, reference

import unified_params as up

mx = pytest.importorskip("unified_params.backends.mxnet_import").import_mxnet()
rnn = mx.gluon.rnn

class GluonModel(mx.gluon.HybridBlock):
    """The layer as attribute `layer`; a cell is unrolled over the time steps (batch-first) from a zero state."""

    def __init__(self, make: type, **kwargs: object) -> None:
        super().__init__()
        with self.name_scope():
            self.layer = make(**kwargs)

    def hybrid_forward(self, F: object, x: object) -> object:
        if isinstance(self.layer, rnn.HybridRecurrentCell):
            return self.layer.unroll(X.shape[1], x, layout="NTC", merge_outputs=True)[0]
        return self.layer(x)


def _gluon(make: type, **kwargs: object) -> GluonModel:
    model = GluonModel(make, **kwargs)
    model.initialize()
    return model


@pytest.mark.parametrize("layer_type", ["lstm", "gru", "rnn"])
def test_stacked_bidirectional_layer_from_torch(layer_type: str) -> None:
    source, expected = reference(LAYERS[layer_type](3, 4, num_layers=2, bidirectional=True, batch_first=True))
    make = {"lstm": rnn.LSTM, "gru": rnn.GRU, "rnn": rnn.RNN}[layer_type]
    extra = {"activation": "tanh"} if layer_type == "rnn" else {}
    target = _gluon(make, hidden_size=4, num_layers=2, bidirectional=True, layout="NTC", input_size=3, **extra)
    pm = up.wrap(target)
    assert {n: v.shape for n, v in pm.items()} == {n: v.shape for n, v in up.wrap(source).items()}
    assert pm["layer.weight_ih_l1_reverse"].native_name.endswith("r1_i2h_weight")
    assert set(pm.collect(layer=layer_type)) == set(pm.names())
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(X)).asnumpy(), expected, **TOL)


@pytest.mark.parametrize("layer_type", ["lstm", "gru", "rnn"])
def test_cell_from_torch(layer_type: str) -> None:
    source, expected = reference(CELLS[layer_type](3, 4))
    make = {"lstm": rnn.LSTMCell, "gru": rnn.GRUCell, "rnn": rnn.RNNCell}[layer_type]
    target = _gluon(make, hidden_size=4, input_size=3)
    assert up.wrap(target).names() == up.wrap(source).names()
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(X)).asnumpy(), expected, **TOL)


def test_deferred_input_size_is_known_after_materialize() -> None:
    source, expected = reference(LAYERS["lstm"](3, 4, batch_first=True))
    pm = up.wrap(_gluon(rnn.LSTM, hidden_size=4, layout="NTC"))
    assert pm.pending() == ["layer.weight_ih_l0"]
    assert pm["layer.weight_ih_l0"].shape == (16, None)
    pm.materialize(X)
    up.transfer(source, pm)
    np.testing.assert_allclose(pm.model(mx.nd.array(X)).asnumpy(), expected, **TOL)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_projected_lstm_is_torchs_proj_size() -> None:
    source, expected = reference(LAYERS["lstm"](3, 4, num_layers=2, bidirectional=True, proj_size=2, batch_first=True))
    target = _gluon(rnn.LSTM, hidden_size=4, num_layers=2, bidirectional=True, projection_size=2, layout="NTC",
                    input_size=3)
    assert [(n, p.shape) for n, p in up.wrap(target).items()] == [(n, p.shape) for n, p in up.wrap(source).items()]
    up.transfer(source, target)
    np.testing.assert_allclose(target(mx.nd.array(X)).asnumpy(), expected, **TOL)
