"""torch models built on the meta device are deferred; pm.materialize(device=...) allocates and initializes them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import unified_params as up


def _build() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.LayerNorm(5))


def _meta() -> nn.Module:
    with torch.device("meta"):
        return _build()


def test_meta_model_is_deferred_with_known_sizes_and_refuses_reads() -> None:
    model = _meta()
    pm = up.wrap(model)
    assert not pm.initialized
    assert pm.pending("storage") == list(model.state_dict()) and pm.pending() == []
    assert pm.num_params() == sum(t.numel() for n, t in model.state_dict().items() if "num_batches" not in n)
    for call in (pm.state_dict, lambda: pm.save("unused.safetensors"), lambda: pm["0.weight"].numpy()):
        with pytest.raises(up.DeferredInitializationError, match=r"pm.materialize\(device='cpu'\)"):
            call()


def test_materialize_applies_recorded_init_bitwise_like_an_eager_model() -> None:
    model = _meta()
    pm = up.wrap(model)
    pm.init(up.init.XavierUniform(), layer=(nn.Linear, nn.Conv2d), kind="weight", seed=0)
    pm.init(up.init.Zeros(), pattern=r"[03]\.bias")
    pm.materialize(device="cpu")
    eager = _build()
    up.wrap(eager).init(up.init.XavierUniform(), layer=(nn.Linear, nn.Conv2d), kind="weight", seed=0)
    up.wrap(eager).init(up.init.Zeros(), pattern=r"[03]\.bias")
    assert pm.initialized and all(t.device.type == "cpu" for t in model.state_dict().values())
    for name in ("0.weight", "0.bias", "3.weight", "3.bias"):
        assert torch.equal(model.state_dict()[name], eager.state_dict()[name])
    assert torch.equal(model[1].running_var, torch.ones(4)) and torch.equal(model[4].bias, torch.zeros(5))
    assert torch.isfinite(model(torch.randn(2, 3, 8, 8))).all()


def test_untouched_modules_get_their_own_reset_parameters() -> None:
    model = _meta()
    torch.manual_seed(3)
    up.wrap(model).materialize()
    torch.manual_seed(3)
    eager = _build()
    for (name, a), b in zip(model.state_dict().items(), eager.state_dict().values()):
        assert torch.equal(a, b), name


def test_meta_tensor_without_init_or_reset_is_named_before_anything_is_allocated() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.empty(5))

    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(3, 5), Scale())
    pm = up.wrap(model)
    match = r"^call pm.init\(...\) for '1.gain' before pm.materialize"
    with pytest.raises(up.DeferredInitializationError, match=match):
        pm.materialize(device="cpu")
    assert all(p.is_meta for p in model.parameters())
    pm.init(up.init.Ones(), pattern=r"1\.gain").materialize(device="cpu")
    assert torch.equal(model[1].gain.detach(), torch.ones(5)) and not model[0].weight.is_meta


def test_ties_survive_materialize() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7, bias=False))
    model[1].weight = model[0].weight
    pm = up.wrap(model)
    pm.init(up.init.Normal(std=0.02), pattern=r"0\.weight", seed=1).materialize(device="cpu")
    assert model[1].weight is model[0].weight and pm.tied() == [["0.weight", "1.weight"]]
    eager = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 7, bias=False))
    eager[1].weight = eager[0].weight
    up.wrap(eager).init(up.init.Normal(std=0.02), pattern=r"0\.weight", seed=1)
    assert torch.equal(eager[0].weight, model[0].weight)
