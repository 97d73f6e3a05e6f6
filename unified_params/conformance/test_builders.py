"""Every builder of the examples module, on one backend: it builds, wraps, has the documented names and runs natively.

The E-tests and the cross-framework rows lean on these builders; checking each one here means a green
single-backend run says the examples module works, `zoo()` included (otherwise only the cross rows build it).
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

import numpy as np
import pytest

import unified_params as up
from unified_params.adapter import DEFERRED, is_counter
from unified_params.conformance.examples import REQUIRED_BUILDERS, Built, deferred_input, mlp_input

MLP = ["0.weight", "0.bias", "2.weight", "2.bias"]
NESTED = [f"0.block {i}.{j}.{leaf}" for i in range(4) for j in (0, 2) for leaf in ("weight", "bias")]
NESTED += ["1.weight", "1.bias"]
TIED = ["0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"]
ZOO = ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "embed.weight",
       "norm.weight", "norm.bias", "head.weight", "head.bias"]

# builder: (its inputs, its canonical names (one per storage), its output shape), as docs/adapters.md describes them
CASES: dict[str, tuple[Callable[[ModuleType], tuple], list[str], tuple[int, ...]]] = {
    "mlp": (lambda ex: (mlp_input(),), MLP, (2, 1)),
    "nested": (lambda ex: (mlp_input(),), NESTED, (2, 1)),
    "tied": (lambda ex: (mlp_input(),), TIED, (2, 1)),
    "deferred": (lambda ex: (deferred_input(20),), MLP, (2, 10)),
    "eager": (lambda ex: (deferred_input(20),), MLP, (2, 10)),
    "zoo": (lambda ex: tuple(ex.zoo_input()), ZOO, (2, 2)),
    "deferred_pair": (lambda ex: ((deferred_input(5), np.ones((2, 4), np.float32)),), ["dense.weight", "dense.bias"],
                      (2, 4)),
    "deferred_tied": (lambda ex: (deferred_input(20),), TIED, (2, 1)),
}
BATCH_NORM = {"zoo"}
DEFERRED_ONLY = {"deferred_pair", "deferred_tied"}
"""Builders only the deferred section uses: a backend without deferred shapes need not have them."""


@pytest.mark.feature("builders")
@pytest.mark.parametrize("kind", [*REQUIRED_BUILDERS, "zoo"])
def test_examples_builder(ex: ModuleType, adapter_cls: Any, kind: str) -> None:
    if kind not in REQUIRED_BUILDERS and not hasattr(ex, kind):
        pytest.skip(f"not supported: the examples module has no {kind}() builder, so the cross-framework rows skip it")
    if kind in DEFERRED_ONLY and not hasattr(ex, kind) and DEFERRED in adapter_cls.capabilities:
        pytest.skip(f"not supported: {adapter_cls.capabilities[DEFERRED]}")
    inputs_of, names, out_shape = CASES[kind]
    built = getattr(ex, kind)()
    assert isinstance(built, Built), f"{kind}() must return conformance.examples.Built, not {type(built).__name__}"
    pm = up.wrap(built.model, built.variables)
    assert [n for n in pm.collect() if not is_counter(n)] == names  # torch's num_batches_tracked: no counterpart
    inputs = inputs_of(ex)
    out: Any = np.asarray(ex.native_forward(pm, *inputs))
    assert out.shape == out_shape and np.isfinite(out).all(), f"{kind}: native forward gave {out.shape}"
    if not pm.initialized:
        return
    assert sorted(p.native_name for p in pm.collect().values()) == sorted(ex.native_names(pm))
    if kind not in BATCH_NORM:
        np.testing.assert_allclose(pm.forward(*inputs), out, rtol=1e-5, atol=1e-6)
