"""Loading into a deferred model takes the shapes from the file where the framework's own load does (issue 16):
torch Lazy modules (UninitializedParameter.materialize) and Gluon's deferred shapes (load_parameters); elsewhere the
error's first line says to call pm.materialize(example_input). All or nothing either way."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up


def _eager() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def _lazy() -> nn.Module:
    return nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.LazyLinear(2))


def _is_lazy(model: nn.Module) -> bool:
    return any(isinstance(t, nn.parameter.UninitializedTensorMixin) for t in model.parameters())


def test_torch_lazy_modules_take_the_shapes_from_the_file(tmp_path: Path) -> None:
    eager = _eager()
    up.wrap(eager).save(tmp_path / "m.safetensors")
    lazy = _lazy()
    pm = up.wrap(lazy).init(up.init.Zeros(), seed=0)
    assert pm.pending() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    pm.load(tmp_path / "m.safetensors")
    assert pm.initialized and not _is_lazy(lazy)
    assert all(torch.equal(lazy.state_dict()[n], t) for n, t in eager.state_dict().items())
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lazy(x), eager(x)), "the load wins over the recorded init, also after the first forward"
    assert all(torch.equal(lazy.state_dict()[n], t) for n, t in eager.state_dict().items())


def test_torch_lazy_load_state_dict_takes_the_shapes_too() -> None:
    eager, lazy = _eager(), _lazy()
    up.wrap(lazy).load_state_dict(eager.state_dict())
    assert all(torch.equal(lazy.state_dict()[n], t) for n, t in eager.state_dict().items())


def test_a_lazy_load_that_does_not_fit_leaves_the_model_deferred(tmp_path: Path) -> None:
    eager = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    up.wrap(eager).save(tmp_path / "m.safetensors")
    lazy = _lazy()
    pm = up.wrap(lazy)
    with pytest.raises(up.ShapeMismatchError, match=r"0\.weight: checkpoint \(5, 4\) vs model \(3, None\)"):
        pm.load(tmp_path / "m.safetensors")
    assert _is_lazy(lazy) and len(pm.pending()) == 4
    up.wrap(_eager()).save(tmp_path / "ok.safetensors")
    data = bytearray((tmp_path / "ok.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(up.CheckpointError, match="corrupt"):
        pm.load(tmp_path / "bad.safetensors")
    assert _is_lazy(lazy) and len(pm.pending()) == 4
    pm.load(tmp_path / "ok.safetensors")
    assert pm.initialized


def test_a_meta_device_model_is_told_to_materialize_on_a_device(tmp_path: Path) -> None:
    up.wrap(_eager()).save(tmp_path / "m.safetensors")
    with torch.device("meta"):
        model = _eager()
    pm = up.wrap(model)
    with pytest.raises(up.DeferredInitializationError, match=r"call pm.materialize\(device='cpu'\) before loading"):
        pm.load(tmp_path / "m.safetensors")
    assert all(t.is_meta for t in model.parameters())
    pm.materialize(device="cpu").load(tmp_path / "m.safetensors")
    assert all(torch.equal(model.state_dict()[n], t) for n, t in _eager().state_dict().items())


def _gluon(mx: Any, in_units: int = 0) -> Any:
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(3, in_units=in_units), mx.gluon.nn.Activation("relu"), mx.gluon.nn.Dense(2, in_units=3))
    net.initialize()
    return net


def test_gluon_deferred_shapes_come_from_the_file_as_load_parameters_does(tmp_path: Path) -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    mx.random.seed(0)
    eager = _gluon(mx, in_units=4)
    up.wrap(eager).save(tmp_path / "m.safetensors")
    eager.save_parameters(str(tmp_path / "m.params"))
    ours, theirs = _gluon(mx), _gluon(mx)
    pm = up.wrap(ours)
    assert pm.pending() == ["0.weight"]
    pm.load(tmp_path / "m.safetensors")
    theirs.load_parameters(str(tmp_path / "m.params"))
    assert pm.initialized
    for a, b in zip(ours.collect_params().values(), theirs.collect_params().values()):
        assert a.shape == b.shape and np.array_equal(a.data().asnumpy(), b.data().asnumpy())
    x = mx.nd.array(np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32))
    assert np.array_equal(ours(x).asnumpy(), eager(x).asnumpy())


def test_gluon_deferred_load_that_does_not_fit_changes_nothing(tmp_path: Path) -> None:
    from unified_params.backends.mxnet_import import import_mxnet

    mx = import_mxnet()
    up.wrap(_gluon(mx, in_units=4)).save(tmp_path / "m.safetensors")
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(5), mx.gluon.nn.Activation("relu"), mx.gluon.nn.Dense(2, in_units=5))
    net.initialize()
    pm = up.wrap(net)
    with pytest.raises(up.ShapeMismatchError, match=r"0\.weight: checkpoint \(3, 4\) vs model \(5, None\)"):
        pm.load(tmp_path / "m.safetensors")
    assert pm.pending() == ["0.weight"] and net[0].weight.shape == (5, 0)


def test_keras_unbuilt_layers_ask_for_materialize_first(tmp_path: Path) -> None:
    import keras

    built = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    up.wrap(built).save(tmp_path / "m.safetensors")
    model = keras.Sequential([keras.layers.Dense(3)])
    pm = up.wrap(model)
    with pytest.raises(up.DeferredInitializationError) as info:
        pm.load(tmp_path / "m.safetensors")
    assert str(info.value).splitlines()[0].split(": ", 1)[1].startswith("call pm.materialize(example_input) first")
    assert not model.built
