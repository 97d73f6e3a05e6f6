"""Checkpoint files on every backend: 0-d parameters round-trip; bad metadata, reserved keys, paths, permissions.

Scalars are built and read back with each framework's own API; files are checked with safetensors' own reader.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import unified_params as up

feature = pytest.mark.feature
Scalar = tuple[up.ParamAPI, Callable[[], dict[str, np.ndarray]]]


def _torch() -> Scalar:
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))
            self.register_buffer("step", torch.tensor(0, dtype=torch.int64))

    m = Scaled()
    return up.wrap(m), lambda: {"logit_scale": m.logit_scale.detach().numpy(), "step": m.step.numpy()}


def _keras() -> Scalar:
    import keras

    class Scaled(keras.layers.Layer):
        def build(self, shape: Any) -> None:
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, x: Any) -> Any:
            return x * self.scale

    m = Scaled()
    m.build((None, 2))
    return up.wrap(m), lambda: {"scale": np.asarray(m.scale.numpy())}


def _nnx() -> Scalar:
    import jax.numpy as jnp
    from flax import nnx

    class Scaled(nnx.Module):
        def __init__(self) -> None:
            self.lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.scale = nnx.Param(jnp.array(1.0))

    m = Scaled()
    return up.wrap(m), lambda: {"scale": np.asarray(m.scale.value)}


def _flax() -> Scalar:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class Scaled(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            return nn.Dense(2)(x) * self.param("scale", nn.initializers.ones, ())

    m = Scaled()
    pm = up.wrap(m, m.init(jax.random.PRNGKey(0), jnp.ones((1, 2))))
    return pm, lambda: {"scale": np.asarray(pm.variables["params"]["scale"])}


def _mxnet() -> Scalar:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()

    class Scaled(mx.gluon.nn.HybridBlock):
        def __init__(self) -> None:
            super().__init__()
            self.scale = self.params.get("scale", shape=(), init="ones")

    with mx.util.np_shape(True):  # Gluon's legacy shapes read () as "unknown"; NumPy shapes make it 0-d
        m = Scaled()
        m.initialize()
    return up.wrap(m), lambda: {"scale": m.scale.data().asnumpy()}


SCALARS = {"torch": _torch, "keras": _keras, "nnx": _nnx, "flax": _flax, "mxnet": _mxnet}


def scalar_model(backend: str) -> Scalar:
    """A model with a 0-d parameter (and on torch a 0-d integer buffer), and its native scalars by name."""
    return SCALARS[backend]()


def _scalar_names(pm: up.ParamAPI) -> list[str]:
    return [n for n, p in pm.items() if p.shape == ()]


@feature("checkpoints")
def test_scalar_parameters_roundtrip(backend: str, ex: ModuleType, tmp_path: Path) -> None:
    a, native_a = scalar_model(backend)
    b, native_b = scalar_model(backend)
    names = _scalar_names(a)
    assert len(names) == len(native_a())
    for i, name in enumerate(names):
        a[name].set(np.asarray(2 + i).astype(a[name].dtype))
    a.save(tmp_path / "scalars.safetensors")
    on_disk = load_file(tmp_path / "scalars.safetensors")
    assert {on_disk[n].shape for n in names} == {()}
    b.load(tmp_path / "scalars.safetensors")
    got, want = native_b(), native_a()
    for key, value in want.items():
        assert got[key].shape == () and value.shape == ()
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert sorted(float(v) for v in got.values()) == [2.0 + i for i in range(len(names))]
