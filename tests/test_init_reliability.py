"""Initializer arguments, seeds, zero-size parameters, held interrupts and quoted names (issue 12, items 3-5 and 13)."""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import unified_params as up
from unified_params import errors, rng
from unified_params.atomic import hold_interrupts

ROOT = Path(__file__).resolve().parents[1]


def test_torch_scalar_arguments_are_numbers_and_nan_is_refused() -> None:
    with pytest.raises(up.InitializerError, match=r"std=tensor\(nan\) is not finite"):
        up.init.Normal(std=torch.tensor(float("nan")))
    with pytest.raises(up.InitializerError, match=r"high=tensor\(inf\) is not finite"):
        up.init.Uniform(0.0, torch.tensor(float("inf")))
    with pytest.raises(up.InitializerError, match="not a number"):
        up.init.Normal(std=torch.tensor([0.1, 0.2]))
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    up.wrap(a).init(up.init.Normal(std=torch.tensor(0.5)), seed=1)
    up.wrap(b).init(up.init.Normal(std=0.5), seed=1)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_normal_with_std_zero_is_the_constant_mean_as_in_torch() -> None:
    net = nn.Linear(4, 3)
    up.wrap(net).init(up.init.Normal(mean=0.25, std=0.0), kind="weight", seed=0)
    assert torch.equal(net.weight.detach(), nn.init.normal_(torch.empty(3, 4), mean=0.25, std=0.0))


@pytest.mark.parametrize("initializer", [
    up.init.KaimingUniform(), up.init.KaimingNormal(mode="fan_out"), up.init.XavierUniform(), up.init.XavierNormal(),
    up.init.Orthogonal(), up.init.Normal(), up.init.Uniform(), up.init.TruncatedNormal(), up.init.Constant(2.0),
    lambda shape, dtype, rng, name: rng.uniform(size=shape),
], ids=repr)
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
def test_zero_size_parameters_are_initialized_as_no_ops(initializer) -> None:  # noqa: ANN001
    net = nn.Sequential(nn.Linear(4, 0), nn.Linear(0, 3))
    same = nn.Sequential(nn.Linear(4, 2), nn.Linear(2, 3))
    pm = up.wrap(net)
    pm.init(initializer, kind="weight", seed=5)
    assert net[0].weight.shape == (0, 4) and net[1].weight.shape == (3, 0)
    pm.init(up.init.Uniform(-1.0, 1.0), seed=5)
    up.wrap(same).init(up.init.Uniform(-1.0, 1.0), pattern=r"1\.bias", seed=5)
    assert torch.equal(net[1].bias, same[1].bias)


def test_the_normal_reach_bounds_the_most_extreme_draw() -> None:
    class Extreme:
        """A stream of raw words whose radius part is the largest possible (the smallest uniform), angles random:
        one block of 4096 values, read in any number of calls."""

        def __init__(self, bits: int) -> None:
            self.bits, self.at = bits, 0
            self.bit_generator = self
            width = np.uint32 if bits == 32 else np.uint64
            angles = np.random.default_rng(0).integers(0, np.iinfo(width).max, 2048, dtype=width, endpoint=True)
            self.words = np.concatenate([np.full(2048, np.iinfo(width).max, width), angles]).view(np.uint64)

        def random_raw(self, draws: int) -> np.ndarray:
            self.at += draws
            return self.words[self.at - draws : self.at]

    for dtype, bits in ((np.float32, 32), (np.float64, 64)):
        out = np.empty(4096, dtype)
        rng.normal(Extreme(bits), out)  # type: ignore[arg-type]
        assert np.isfinite(out).all() and np.abs(out).max() <= rng.reach(dtype)
        assert np.abs(out).max() > 0.98 * rng.reach(dtype)


def test_a_held_interrupt_goes_to_the_handler_that_was_there_before() -> None:
    got: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        with hold_interrupts():
            signal.raise_signal(signal.SIGINT)
            assert got == []
        assert got == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)
    with pytest.raises(KeyboardInterrupt):
        with hold_interrupts():
            with hold_interrupts():
                signal.raise_signal(signal.SIGINT)
            got.append(0)
    assert got == [signal.SIGINT, 0] and signal.getsignal(signal.SIGINT) is previous


def test_hold_interrupts_in_another_thread_leaves_the_handler_alone() -> None:
    seen: list[object] = []

    def run() -> None:
        with hold_interrupts():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]


def test_long_names_are_quoted_and_shortened_in_the_middle() -> None:
    long = "encoder." + ".".join(f"block{i}" for i in range(40)) + ".attention.weight"
    text = errors.quote(long)
    assert len(text) == 72 and "..." in text
    assert text.startswith("'encoder.block0") and text.endswith("attention.weight'")
    assert errors.quote("0.weight") == "'0.weight'"
    assert errors.quote_all([str(i) for i in range(12)], 3) == "'0', '1', '2' and 9 more"
    net = nn.Sequential()
    net.add_module("x" * 300, nn.Linear(2, 2))
    pm = up.wrap(net)
    with pytest.raises(up.ParameterNotFoundError) as err:
        pm["y" * 300]
    assert "y" * 80 not in str(err.value) and "x" * 80 not in str(err.value) and "'yyy" in str(err.value)
    with pytest.raises(up.SelectionError) as err:
        pm.init(up.init.Zeros(), pattern="z" * 300)
    message = str(err.value)
    assert "z" * 80 not in message and "x" * 80 not in message and f"names are: '{'x' * 30}" in message


def test_seed_none_is_documented_and_gives_a_fresh_seed_per_call() -> None:
    assert "seed=None" in (ROOT / "README.md").read_text()
    assert "seed=None" in (ROOT / "docs" / "errors.md").read_text()
    net = nn.Linear(4, 3)
    pm = up.wrap(net)
    pm.init(up.init.Normal(std=1.0), seed=None)
    first = net.weight.detach().clone()
    pm.init(up.init.Normal(std=1.0))
    assert not torch.equal(first, net.weight)


@pytest.mark.parametrize("dtype, refused, accepted", [(torch.float16, 2e4, 1e4), (torch.bfloat16, 1e38, 1e37)])
def test_half_precision_parameters_are_checked_against_their_own_range(dtype: torch.dtype, refused: float,
                                                                       accepted: float) -> None:
    net = nn.Linear(64, 64).to(dtype)
    before = net.weight.detach().clone()
    with pytest.raises(up.InitializerError, match=f"beyond the largest {dtype}".replace("torch.", "")):
        up.wrap(net).init(up.init.Normal(std=refused), seed=0)
    assert torch.equal(net.weight, before)
    up.wrap(net).init(up.init.Normal(std=accepted), seed=0)
    assert torch.isfinite(net.weight).all() and torch.isfinite(net.bias).all()
