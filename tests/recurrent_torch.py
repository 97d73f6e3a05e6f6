"""The torch reference for the recurrent-layer tests: a layer as attribute `layer` of a tiny model, its outputs."""
from __future__ import annotations

import numpy as np
import torch

X = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
"""Batch-first input (batch 2, 5 steps, 3 features) on every framework."""
TOL = {"rtol": 1e-5, "atol": 1e-5}
LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


class TorchModel(torch.nn.Module):
    """The layer as attribute `layer`; a cell runs over the time steps from a zero state."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.layer, torch.nn.RNNCellBase):
            return self.layer(x)[0]
        state, outputs = None, []
        for t in range(x.shape[1]):
            state = self.layer(x[:, t], state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, 1)


def reference(layer: torch.nn.Module, seed: int = 0) -> tuple[TorchModel, np.ndarray]:
    """The torch model around layer, every parameter U(-0.5, 0.5) from the seed, and its own output on X."""
    torch.manual_seed(seed)
    model = TorchModel(layer)
    for p in model.parameters():
        torch.nn.init.uniform_(p, -0.5, 0.5)
    return model, run(model)


def run(model: TorchModel, x: np.ndarray = X) -> np.ndarray:
    """torch's own forward on x, as numpy."""
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()
