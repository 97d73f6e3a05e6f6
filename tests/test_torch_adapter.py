"""The PyTorch adapter beyond the documents' MLPs: conv, norms, embedding, lazy modules, ties, native grads."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up


class Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.conv = nn.Conv1d(6, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.embed(tokens).transpose(1, 2)).mean(-1)
        return self.head(self.norm(h))


def test_custom_module_names_kinds_and_layout() -> None:
    net = Custom()
    pm = up.wrap(net)
    assert pm.names() == ["embed.weight", "conv.weight", "conv.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"]
    assert pm["conv.weight"].shape == tuple(net.conv.weight.shape) == (4, 6, 3)
    assert pm["embed.weight"].native is net.embed.weight
    pm.init(up.init.Ones(), pattern=r"norm\..*")
    assert torch.equal(net.norm.weight, torch.ones(4)) and torch.equal(net.norm.bias, torch.ones(4))


@pytest.mark.parametrize("conv, shape", [(nn.Conv1d(3, 5, 2), (5, 3, 2)), (nn.Conv2d(3, 5, (2, 3)), (5, 3, 2, 3)),
                                          (nn.Conv3d(3, 5, 2), (5, 3, 2, 2, 2))])
def test_conv_weights_canonical_and_fans(conv: nn.Module, shape: tuple) -> None:
    pm = up.wrap(conv)
    assert pm["weight"].shape == shape
    pm.init(up.init.KaimingUniform(), kind="weight", seed=0)
    fan_in = int(np.prod(shape[1:]))
    bound = np.sqrt(2.0) * np.sqrt(3.0 / fan_in)
    w = conv.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound


def test_batchnorm_buffers_are_not_trainable() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    pm = up.wrap(net)
    assert pm.layer(1).names() == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [p.trainable for p in pm.layer(1).values()] == [True, True, False, False, False]
    assert pm["1.running_var"].kind == "running_var"
    assert pm["1.num_batches_tracked"].kind == "num_batches_tracked" and not pm["1.num_batches_tracked"].trainable
    pm["1.running_mean"].set(np.array([1.0, 2.0]))
    assert torch.equal(net[1].running_mean, torch.tensor([1.0, 2.0]))
    assert list(pm.collect(trainable=True)) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    x = np.random.default_rng(0).normal(size=(2, 1, 5, 5)).astype(np.float32)
    before = net[1].running_mean.clone()
    pm.grads(x)
    assert torch.equal(net[1].running_mean, before), "grads() must not update running statistics"
    assert net.training


def test_parameter_assigned_to_two_modules_is_tied() -> None:
    enc, dec = nn.Linear(4, 4), nn.Linear(4, 4)
    dec.weight = enc.weight
    pm = up.wrap(nn.Sequential(enc, nn.Tanh(), dec))
    assert pm.tied() == [["0.weight", "2.weight"]]
    assert len(pm.collect()) == 3
    x = np.ones((1, 4), np.float32)
    grads = pm.grads(x)
    net = pm.model
    net.zero_grad()
    net(torch.from_numpy(x)).sum().backward()
    np.testing.assert_allclose(grads["0.weight"], net[0].weight.grad.numpy(), rtol=1e-6)


def test_native_backward_shows_in_grad() -> None:
    net = nn.Linear(3, 2)
    pm = up.wrap(net)
    assert pm["weight"].grad is None
    net(torch.ones(1, 3)).pow(2).sum().backward()
    np.testing.assert_array_equal(pm["weight"].grad, net.weight.grad.numpy())


def test_lazy_conv_and_batchnorm_deferred() -> None:
    net = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(2))
    pm = up.wrap(net)
    assert pm["0.weight"].shape == (4, None, 3, 3)
    assert pm["3.weight"].shape == (2, None)
    pm.init(up.init.Constant(0.25), kind="weight")
    pm.materialize(np.zeros((1, 3, 6, 6), np.float32))
    assert pm.initialized and pm["0.weight"].shape == (4, 3, 3, 3) and pm["3.weight"].shape == (2, 64)
    assert torch.all(net[0].weight == 0.25) and torch.all(net[1].weight == 0.25) and torch.all(net[3].weight == 0.25)


def test_loss_callable_and_dtype_float64() -> None:
    net = nn.Linear(2, 1).double()
    pm = up.wrap(net)
    assert pm["weight"].dtype == "float64"
    x = np.array([[1.0, 2.0]])
    grads = pm.grads(x, loss=lambda out: (out ** 2).mean())
    net.zero_grad()
    (net(torch.from_numpy(x)) ** 2).mean().backward()
    np.testing.assert_allclose(grads["weight"], net.weight.grad.numpy())


def test_bfloat16_roundtrip() -> None:
    net = nn.Linear(2, 2).to(torch.bfloat16)
    pm = up.wrap(net)
    assert pm["weight"].dtype == "bfloat16"
    pm.init(up.init.Constant(1.5), kind="weight")
    assert torch.all(net.weight == 1.5)
    assert pm["weight"].numpy().astype(np.float32).tolist() == [[1.5, 1.5], [1.5, 1.5]]


def test_grads_and_forward_leave_modes_statistics_rng_and_users_grads() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 2))
    net[3].eval()
    x = torch.randn(5, 4)
    net(x).sum().backward()
    users = {n: p.grad.clone() for n, p in net.named_parameters()}
    state = {n: b.clone() for n, b in net.named_buffers()}
    modes = [m.training for m in net.modules()]
    rng = torch.get_rng_state()
    pm = up.wrap(net)
    pm.grads(x * 3)
    pm.forward(x)
    assert [m.training for m in net.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)
    for n, b in net.named_buffers():
        assert torch.equal(b, state[n]), n
    for n, p in net.named_parameters():
        assert torch.equal(p.grad, users[n]), n
        np.testing.assert_array_equal(pm[n].grad, users[n].numpy())


def test_torch_state_dict_with_buffers_loads_strictly_and_carries_num_batches_tracked() -> None:
    torch.manual_seed(0)
    src, dst = (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)) for _ in range(2))
    src.train()
    src(torch.randn(4, 1, 5, 5))
    pm = up.wrap(dst)
    pm.load_state_dict(src.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    assert int(dst[1].num_batches_tracked) == 1 and pm.num_params() == sum(
        t.numel() for n, t in src.state_dict().items() if not n.endswith("num_batches_tracked"))
    assert pm.num_params(trainable=True) == sum(p.numel() for p in src.parameters() if p.requires_grad)
    pm.init(up.init.Zeros())
    assert int(dst[1].num_batches_tracked) == 1, "init without kind= leaves step counters alone"


def test_num_batches_tracked_has_no_counterpart_in_keras_and_is_left_out() -> None:
    import keras

    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization(epsilon=1e-5)])
    up.transfer(net, model)
    up.transfer(model, net)
    assert np.array_equal(model.layers[1].moving_variance.numpy(), net[1].running_var.numpy())


def test_pairing_by_order_skips_num_batches_tracked() -> None:
    import keras

    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    found = up.match(net, model, by="order")
    assert found.disagreement is None and len(found.pairs) == 8
    up.transfer(net, model, by="order")
    assert np.array_equal(model.layers[2].kernel.numpy().T, net[2].weight.detach().numpy())


def _half(shape, dtype, rng, name):  # noqa: ANN001, ANN202
    return np.full(shape, 0.5)


@pytest.mark.parametrize("materialized", [False, True])
def test_wrapped_model_pickles_deep_copies_and_compiles(materialized: bool) -> None:
    import copy
    import io

    net = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(2))
    up.wrap(net).init(_half, kind="weight")
    x = torch.randn(3, 5)
    if materialized:
        net(x)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    copies = [torch.load(buffer, weights_only=False), copy.deepcopy(net), torch.compile(net, backend="eager")]
    for other in copies[:2]:
        other(x)
        assert (other[0].weight == 0.5).all().item() is materialized
    with torch.no_grad():
        torch.testing.assert_close(copies[2](x), net(x))
    assert (net[0].weight == 0.5).all() and (net[2].weight == 0.5).all()
