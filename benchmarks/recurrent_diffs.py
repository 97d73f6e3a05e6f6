"""Largest output and gradient differences against torch after up.transfer, per recurrent layer type, on one backend.

Usage: `python benchmarks/recurrent_diffs.py BACKEND` (mxnet, keras, flax, nnx; KERAS_BACKEND picks Keras's own).
Uses the conformance layers builders: torch's layer is initialized U(-0.5, 0.5) (seed 1) and transferred; outputs
are each framework's own forward on the batch-first sequence, gradients those of the sum of squared outputs.
"""
from __future__ import annotations

import importlib
import sys

import numpy as np

import unified_params as up
from unified_params.conformance.examples import RECURRENT, layer_input


def main(backend: str) -> None:
    torch_layers = importlib.import_module("unified_params.backends.torch_layers")
    torch_examples = importlib.import_module("unified_params.backends.torch_examples")
    layers = importlib.import_module(f"unified_params.backends.{backend}_layers")
    examples = importlib.import_module(f"unified_params.backends.{backend}_examples")
    for layer_type in RECURRENT:
        make = layers.LAYERS.get(layer_type)
        if not callable(make):
            print(f"{backend:8} {layer_type:20} not supported: {make}")
            continue
        x = layer_input(layer_type)
        source, built = up.wrap(torch_layers.LAYERS[layer_type]().model), make()
        target = up.wrap(built.model, built.variables)
        up.transfer(source.init(up.init.Uniform(-0.5, 0.5), seed=1), target)
        out = np.abs(examples.native_forward(target, x) - torch_examples.native_forward(source, x)).max()
        want = torch_layers.native_grads(source, x)
        got = target.grads(x, loss=getattr(layers, "loss", lambda o: (o * o).sum()))
        grad = max(float(np.abs(got[n] - g).max()) for n, g in want.items())
        print(f"{backend:8} {layer_type:20} max |output diff| {out:.2e}   max |gradient diff| {grad:.2e}")


if __name__ == "__main__":
    main(sys.argv[1])
