"""A model changed after wrap, beyond the conformance suite's mlp: custom modules, casts, changes no hook sees."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up
from unified_params.adapter import Adapter
from unified_params.api import ParamAPI
from unified_params.backends.torch import TorchAdapter
from unified_params.model_state import ModelState


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 2)


def warm(pm: up.ParamAPI) -> dict[str, up.ParamView]:
    views = dict(pm.items())
    pm.state_dict(), pm.tied(), pm.collect(r".*weight")
    return views


def test_head_swapped_and_layer_deleted_on_a_custom_module() -> None:
    net = Head()
    pm = up.wrap(net)
    views = warm(pm)
    net.fc = nn.Linear(6, 5)
    assert pm["fc.weight"].shape == views["fc.weight"].shape == tuple(net.fc.weight.shape) == (5, 6)
    assert pm["fc.weight"].native is net.fc.weight and views["fc.bias"].native is net.fc.bias
    pm.init(up.init.Constant(0.5), pattern=r"fc\.weight")
    np.testing.assert_array_equal(net.fc.weight.detach().numpy(), np.full((5, 6), 0.5, np.float32))
    assert pm.layer("fc").names() == ["weight", "bias"] and pm.layer("fc").native_layer is net.fc
    del net.norm
    assert pm.names() == ["body.weight", "body.bias", "fc.weight", "fc.bias"]
    assert list(pm.state_dict()) == [n for n, _ in net.named_parameters()]
    with pytest.raises(up.ParameterNotFoundError, match="no longer in the model"):
        views["norm.weight"].numpy()


@pytest.mark.parametrize("cast, dtype", [
    (lambda m: m.half(), torch.float16),
    (lambda m: m.to(torch.bfloat16), torch.bfloat16),
    (lambda m: m.double(), torch.float64),
])
def test_dtype_followed_through_half_and_bfloat16(cast, dtype: torch.dtype) -> None:  # noqa: ANN001
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    pm = up.wrap(net)
    views = warm(pm)
    cast(net)
    name = str(dtype).removeprefix("torch.")
    native = [str(p.dtype).removeprefix("torch.") for p in net.parameters()]
    assert [v.dtype for v in views.values()] == [name] * 4 == native
    state = pm.state_dict()
    assert {v.dtype.name for v in state.values()} == {name}
    pm.load_state_dict(state)
    views["2.bias"].set(np.array([1 / 3], state["2.bias"].dtype))
    assert net[2].bias.item() == float(np.array([1 / 3], state["2.bias"].dtype)[0])


def test_changes_no_registration_hook_sees() -> None:
    """Sequential.insert writes _modules directly; _apply with overwrite on replaces parameters in _parameters."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    pm = up.wrap(net)
    views = warm(pm)
    net.insert(0, nn.Linear(4, 4))
    assert pm.names() == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert views["0.weight"].shape == (4, 4) and views["0.weight"].native is net[0].weight
    old = net[1].weight
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        net.double()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(False)
    assert net[1].weight is not old
    assert pm["1.weight"].native is net[1].weight and pm["1.weight"].dtype == "float64"
    pm.init(up.init.Ones(), pattern=r"1\.weight")
    assert (net[1].weight == 1).all() and not (old == 1).all()


def test_buffer_and_parameter_assigned_in_place_of_the_old() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    pm = up.wrap(net)
    views = warm(pm)
    net[1].running_mean = torch.full((4,), 2.0)
    net[0].bias = nn.Parameter(torch.full((4,), 3.0), requires_grad=False)
    np.testing.assert_array_equal(views["1.running_mean"].numpy(), net[1].running_mean.numpy())
    assert views["0.bias"].native is net[0].bias and not views["0.bias"].trainable
    assert list(pm.grads(np.ones((2, 4), np.float32))) == ["0.weight", "1.weight", "1.bias"]


class Rediscovering(TorchAdapter):
    """A torch adapter without a stamp, as a third-party adapter would be: the default interface."""

    stamp = Adapter.stamp
    changed = Adapter.changed
    current = Adapter.current


def test_adapter_without_a_stamp_is_discovered_anew() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    pm = ParamAPI(ModelState(Rediscovering(net)))
    views = warm(pm)
    net[2] = nn.Linear(8, 3)
    assert views["2.weight"].shape == (3, 8) and pm["2.weight"].native is net[2].weight


def test_nnx_attribute_reassigned_on_a_custom_module() -> None:
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.body = nnx.Linear(4, 6, rngs=rngs)
            self.fc = nnx.Linear(6, 2, rngs=rngs)

    model = Model(nnx.Rngs(0))
    pm = up.wrap(model)
    views = warm(pm)
    model.fc = nnx.Linear(6, 5, rngs=nnx.Rngs(1))
    assert views["fc.weight"].shape == (5, 6) and pm["fc.weight"].native is model.fc.kernel
    np.testing.assert_array_equal(pm["fc.weight"].numpy(), np.asarray(model.fc.kernel[...]).T)
    del model.body
    assert pm.names() == ["fc.weight", "fc.bias"]


def test_linen_variables_replaced_by_materialize_are_seen() -> None:
    linen = pytest.importorskip("flax.linen")
    pm = up.wrap(linen.Sequential([linen.Dense(3), linen.relu, linen.Dense(2)]), None)
    assert pm["0.weight"].shape == (3, None)
    pm.materialize(np.ones((1, 5), np.float32))
    assert pm["0.weight"].shape == (3, 5) and pm.initialized
    pm.init(up.init.Zeros(), pattern=r"0\.weight")
    assert not np.asarray(pm.variables["params"]["layers_0"]["kernel"]).any()
    assert pm.names() == ["0.weight", "0.bias", "2.weight", "2.bias"]
