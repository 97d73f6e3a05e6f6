"""Joins: a torch LSTM written with one Linear per gate (as Flax writes its cells) is torch's nn.LSTM canonically.

The per-gate module gets a rule with joins (registered like a user's own layer); every check is against torch's own
nn.LSTM: its names, its forward, its autograd gradients.
"""
from __future__ import annotations

import numpy as np
import pytest

import unified_params as up

torch = pytest.importorskip("torch")
nn = torch.nn

from unified_params.backends.torch_rules import RULES  # noqa: E402
from unified_params.joins import Join, Part, Zero  # noqa: E402
from unified_params.layout import Blocks, Layout  # noqa: E402
from unified_params.rules import Rule  # noqa: E402

IN, H, GATES = 3, 4, ("i", "f", "g", "o")
ORDER = (0, 1, 3, 2)
"""The packed bias stores gates i, f, o, g: canonical block k is native block ORDER[k]."""


class GateLSTM(nn.Module):
    """An LSTM with one Linear per gate; biases on the hidden side, packed (2, 4H) in order i,f,o,g, or none."""

    def __init__(self, bias: str = "hidden") -> None:
        super().__init__()
        self.mode = bias
        for g in GATES:
            setattr(self, f"i{g}", nn.Linear(IN, H, bias=False))
            setattr(self, f"h{g}", nn.Linear(H, H, bias=bias == "hidden"))
        if bias == "packed":
            self.bias = nn.Parameter(torch.zeros(2, 4 * H))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = x.new_zeros(x.shape[0], H)
        packed = None
        if self.mode == "packed":
            native = self.bias.sum(0).reshape(4, H)
            packed = {g: native[ORDER[k]] for k, g in enumerate(GATES)}
        outs = []
        for t in range(x.shape[1]):
            pre = {g: getattr(self, f"i{g}")(x[:, t]) + getattr(self, f"h{g}")(h) for g in GATES}
            if packed is not None:
                pre = {g: pre[g] + packed[g] for g in GATES}
            i, f, o = (torch.sigmoid(pre[g]) for g in "ifo")
            c = f * c + i * torch.tanh(pre["g"])
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)


def gate_rule(layer: GateLSTM) -> Rule:
    weights = (Join("weight_ih_l0", tuple(Part(f"i{g}.weight") for g in GATES), kind="weight"),
               Join("weight_hh_l0", tuple(Part(f"h{g}.weight") for g in GATES), kind="weight"))
    if layer.mode == "hidden":
        biases = (Join("bias_ih_l0", (Zero((4 * H,), into=("bias_hh_l0", 0)),), kind="bias"),
                  Join("bias_hh_l0", tuple(Part(f"h{g}.bias") for g in GATES), kind="bias"))
    elif layer.mode == "packed":
        gates = Layout((Blocks(0, ORDER),), "gates i,f,o,g")
        biases = (Join("bias_ih_l0", (Part("bias", gates, take=0),), kind="bias"),
                  Join("bias_hh_l0", (Part("bias", gates, take=1),), kind="bias"))
    else:
        why = "GateLSTM(bias='none') has no biases"
        biases = (Join("bias_ih_l0", (Zero((4 * H,), reason=why),), kind="bias"),
                  Join("bias_hh_l0", (Zero((4 * H,), reason=why),), kind="bias"))
    return Rule("lstm", (), joins=weights + biases)


@pytest.fixture(autouse=True)
def gate_rules():
    RULES.register(GateLSTM, gate_rule)
    yield
    RULES.register(GateLSTM, None)


class Holder(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        return out[0] if isinstance(out, tuple) else out


def torch_lstm(seed: int = 0) -> Holder:
    torch.manual_seed(seed)
    return Holder(nn.LSTM(IN, H, batch_first=True))


X = np.random.default_rng(0).standard_normal((2, 5, IN)).astype(np.float32)


def run(model: nn.Module) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("bias", ["hidden", "packed"])
def test_names_shapes_and_transfer_both_ways(bias):
    ref, gate = torch_lstm(), Holder(GateLSTM(bias))
    pm = up.wrap(gate)
    assert pm.names() == list(ref.state_dict())
    assert {n: pm[n].shape for n in pm.names()} == {n: tuple(t.shape) for n, t in ref.state_dict().items()}
    assert pm.layer("layer").names() == [n.split(".", 1)[1] for n in ref.state_dict()]
    assert pm.num_params() == sum(p.numel() for p in gate.parameters())
    up.transfer(ref, gate)
    np.testing.assert_allclose(run(gate), run(ref), rtol=1e-5, atol=1e-6)
    back = torch_lstm(seed=1)
    up.transfer(gate, back)
    np.testing.assert_allclose(run(back), run(ref), rtol=1e-5, atol=1e-6)


def test_folded_bias_reads_zero_and_keeps_the_function():
    ref, gate = torch_lstm(), Holder(GateLSTM("hidden"))
    up.transfer(ref, gate)
    pm = up.wrap(gate)
    assert not pm["layer.bias_ih_l0"].numpy().any()
    sd = ref.state_dict()
    folded = (sd["layer.bias_ih_l0"] + sd["layer.bias_hh_l0"]).numpy()
    np.testing.assert_allclose(pm["layer.bias_hh_l0"].numpy(), folded, rtol=1e-6)
    forget = getattr(gate.layer, "if").weight.detach().numpy()
    np.testing.assert_array_equal(pm["layer.weight_ih_l0"].numpy()[H:2 * H], forget)


def test_same_seed_same_function():
    ref, gate = torch_lstm(), Holder(GateLSTM("hidden"))
    for model in (ref, gate):
        up.wrap(model).init(up.init.Uniform(-0.4, 0.4), seed=7)
    np.testing.assert_allclose(run(gate), run(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(up.wrap(gate)["layer.weight_hh_l0"].numpy(),
                                  ref.layer.weight_hh_l0.detach().numpy())


def test_gradients_equal_torch_autograd():
    ref, gate = torch_lstm(), Holder(GateLSTM("hidden"))
    up.transfer(ref, gate)
    ref(torch.from_numpy(X)).sum().backward()
    grads = up.wrap(gate).grads(X)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_checkpoint_from_torch_loads_in_any_file_order(tmp_path):
    ref, gate = torch_lstm(), Holder(GateLSTM("hidden"))
    up.wrap(ref).save(tmp_path / "lstm.safetensors")
    up.wrap(gate).load(tmp_path / "lstm.safetensors")
    np.testing.assert_allclose(run(gate), run(ref), rtol=1e-5, atol=1e-6)


def test_values_the_layer_cannot_hold_are_refused_and_nothing_changes(tmp_path):
    ref, bare = torch_lstm(), Holder(GateLSTM("none"))
    before = {k: v.clone() for k, v in bare.state_dict().items()}
    with pytest.raises(up.UnsupportedError, match="'layer'.*'bias_.h_l0'.*no biases"):
        up.transfer(ref, bare)
    up.wrap(ref).save(tmp_path / "lstm.safetensors")
    with pytest.raises(up.UnsupportedError):
        up.wrap(bare).load(tmp_path / "lstm.safetensors")
    with pytest.raises(up.UnsupportedError):
        up.wrap(bare).init(up.init.Uniform(-0.1, 0.1), seed=0)
    assert all(torch.equal(before[k], v) for k, v in bare.state_dict().items())
    with torch.no_grad():
        for name in ("bias_ih_l0", "bias_hh_l0"):
            getattr(ref.layer, name).zero_()
    up.transfer(ref, bare)
    np.testing.assert_allclose(run(bare), run(ref), rtol=1e-5, atol=1e-6)


def test_a_gate_replaced_after_wrapping_is_seen():
    gate = Holder(GateLSTM("hidden"))
    pm = up.wrap(gate)
    assert pm["layer.weight_ih_l0"].shape == (4 * H, IN)
    gate.layer.ig = nn.Linear(IN, H, bias=False)
    with torch.no_grad():
        gate.layer.ig.weight.fill_(0.25)
    np.testing.assert_array_equal(pm["layer.weight_ih_l0"].numpy()[2 * H:3 * H], np.full((H, IN), 0.25, np.float32))
    pm["layer.weight_ih_l0"].set(np.ones((4 * H, IN), np.float32))
    assert torch.equal(gate.layer.ig.weight, torch.ones(H, IN))


def test_a_joined_tensor_cannot_be_tied_and_freezes_every_part():
    gate = Holder(GateLSTM("hidden"))
    pm = up.wrap(gate)
    with pytest.raises(up.UnsupportedError, match="several native arrays"):
        pm.tie("layer.bias_ih_l0", "layer.bias_hh_l0")
    pm.freeze("layer.weight_hh_l0")
    assert not any(getattr(gate.layer, f"h{g}").weight.requires_grad for g in GATES)
    assert gate.layer.ii.weight.requires_grad
    pm.freeze("layer.bias_hh_l0")
    assert not pm["layer.bias_ih_l0"].trainable, "a folded tensor is as trainable as the tensor it is folded into"


def test_blocks_is_exact_and_invertible():
    array = np.arange(24.0).reshape(8, 3)
    step = Blocks(0, ORDER)
    there = step.forward(array)
    np.testing.assert_array_equal(there, np.concatenate([array[0:2], array[2:4], array[6:8], array[4:6]]))
    np.testing.assert_array_equal(step.inverse(there), array)
