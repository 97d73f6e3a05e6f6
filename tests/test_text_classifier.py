"""A small real architecture: an LSTM text classifier (embedding, LSTM, dense on the last step) in each framework's
own idiom. Same names and shapes everywhere; the same seed gives torch's own outputs on every backend."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import unified_params as up

TOKENS = np.random.default_rng(5).integers(0, 10, size=(2, 6)).astype(np.int32)
VOCAB, DIM, HIDDEN, CLASSES = 10, 3, 4, 2
TOL = {"rtol": 1e-5, "atol": 1e-5}


class TorchClassifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, DIM)
        self.lstm = torch.nn.LSTM(DIM, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0][:, -1])


def _torch() -> tuple[Any, Callable[[], np.ndarray]]:
    model = TorchClassifier()

    def run() -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(TOKENS).long()).numpy()
    return model, run


def _keras() -> tuple[Any, Callable[[], np.ndarray]]:
    keras = pytest.importorskip("keras")

    class KerasClassifier(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embed = keras.layers.Embedding(VOCAB, DIM)
            self.lstm = keras.layers.LSTM(HIDDEN)
            self.head = keras.layers.Dense(CLASSES)

        def call(self, tokens: Any) -> Any:
            return self.head(self.lstm(self.embed(tokens)))

    model = KerasClassifier()
    model(TOKENS)
    return model, lambda: keras.ops.convert_to_numpy(model(TOKENS))


def _mxnet() -> tuple[Any, Callable[[], np.ndarray]]:
    mx = pytest.importorskip("unified_params.backends.mxnet_import").import_mxnet()
    gluon = mx.gluon

    class GluonClassifier(gluon.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            with self.name_scope():
                self.embed = gluon.nn.Embedding(VOCAB, DIM)
                self.lstm = gluon.rnn.LSTM(HIDDEN, layout="NTC", input_size=DIM)
                self.head = gluon.nn.Dense(CLASSES, in_units=HIDDEN)

        def hybrid_forward(self, F: Any, tokens: Any) -> Any:
            return self.head(F.slice_axis(self.lstm(self.embed(tokens)), axis=1, begin=-1, end=None))

    model = GluonClassifier()
    model.initialize()
    return model, lambda: model(mx.nd.array(TOKENS)).asnumpy()


def _linen() -> tuple[Any, Callable[[], np.ndarray]]:
    jax = pytest.importorskip("jax")
    nn = pytest.importorskip("flax.linen")

    class LinenClassifier(nn.Module):
        def setup(self) -> None:
            self.embed = nn.Embed(VOCAB, DIM)
            self.lstm = nn.RNN(nn.LSTMCell(HIDDEN))
            self.head = nn.Dense(CLASSES)

        def __call__(self, tokens: Any) -> Any:
            return self.head(self.lstm(self.embed(tokens))[:, -1])

    module = LinenClassifier()
    pm = up.wrap(module, module.init(jax.random.PRNGKey(0), TOKENS))
    return pm, lambda: np.asarray(module.apply(pm.variables, TOKENS))


def _nnx() -> tuple[Any, Callable[[], np.ndarray]]:
    nnx = pytest.importorskip("flax.nnx")

    class NNXClassifier(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.embed = nnx.Embed(VOCAB, DIM, rngs=rngs)
            self.lstm = nnx.RNN(nnx.LSTMCell(DIM, HIDDEN, rngs=rngs))
            self.head = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

        def __call__(self, tokens: Any) -> Any:
            return self.head(self.lstm(self.embed(tokens))[:, -1])

    model = NNXClassifier(nnx.Rngs(0))
    return model, lambda: np.asarray(model(TOKENS))


BUILDERS = {"keras": _keras, "mxnet": _mxnet, "flax": _linen, "nnx": _nnx}


@pytest.mark.parametrize("backend", list(BUILDERS))
def test_same_seed_gives_torchs_outputs(backend: str) -> None:
    source, run_source = _torch()
    target, run_target = BUILDERS[backend]()
    a, b = up.wrap(source), up.wrap(target)
    assert [(n, p.shape) for n, p in b.items()] == [(n, p.shape) for n, p in a.items()]
    assert list(b.collect(layer="lstm")) == [f"lstm.{t}_l0" for t in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    for pm in (a, b):
        pm.init(up.init.Uniform(-0.5, 0.5), seed=0)
    expected = run_source()
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(run_target(), expected, **TOL)
