"""Names: the same structure, written the natural way in each framework, gets the same canonical names.

Each backend's structures module (the adapter's `structures` attribute) builds the eight structures below
with the framework's own idiom; the expected names are the naming rule of docs/names.md applied to them.
The cross-framework identity of a parameter is its state_dict() key (one name per storage), so that is
what is compared; aliases of a tied storage are framework-local.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np
import pytest

import unified_params as up

feature = pytest.mark.feature

STRUCTURES: dict[str, dict[str, tuple[int, ...]]] = {
    "attributes": {"fc1.weight": (8, 4), "fc1.bias": (8,), "fc2.weight": (2, 8), "fc2.bias": (2,)},
    "list_of_blocks": {f"blocks.{i}.{leaf}": (4, 4) if leaf == "weight" else (4,)
                       for i in range(3) for leaf in ("weight", "bias")},
    "dict_of_heads": {"trunk.weight": (8, 4), "trunk.bias": (8,), "heads.cls.weight": (3, 8), "heads.cls.bias": (3,),
                      "heads.box.weight": (4, 8), "heads.box.bias": (4,)},
    "encoder_decoder": {"encoder.0.weight": (8, 4), "encoder.0.bias": (8,), "encoder.2.weight": (2, 8),
                        "encoder.2.bias": (2,), "decoder.weight": (4, 2), "decoder.bias": (4,)},
    "sequential_in_sequential": {"0.0.weight": (8, 4), "0.0.bias": (8,), "1.weight": (1, 8), "1.bias": (1,)},
    "residual_twice": {"block.fc.weight": (4, 4), "block.fc.bias": (4,), "out.weight": (1, 4), "out.bias": (1,)},
    "tied_embedding": {"embed.weight": (10, 4), "norm.weight": (4,), "norm.bias": (4,)},
    "named_layers": {"hidden.weight": (8, 4), "hidden.bias": (8,), "output.weight": (1, 8), "output.bias": (1,)},
}


def structures(name: str) -> ModuleType:
    """The backend's structures module; a backend without one does not support the naming section."""
    from unified_params.conformance.plugin import require_backend

    cls = require_backend(name)
    if not getattr(cls, "structures", ""):
        pytest.skip(f"not supported: the {name} adapter declares no structures module")
    return importlib.import_module(cls.structures)


def structure_input(structure: str) -> np.ndarray:
    """Token ids (2, 5) for the tied embedding, else features (2, 4); the same on every backend."""
    rng = np.random.default_rng(7)
    if structure == "tied_embedding":
        return rng.integers(0, 10, size=(2, 5)).astype(np.int32)
    return rng.uniform(-1, 1, size=(2, 4)).astype(np.float32)


def build(module: ModuleType, structure: str) -> up.ParamAPI:
    built = getattr(module, structure)()
    return up.wrap(built.model, built.variables)


def seeded(pm: up.ParamAPI) -> up.ParamAPI:
    """Every parameter from one seeded stream; norm scales near one so outputs stay informative."""
    pm.init(up.init.Uniform(-0.5, 0.5), seed=11)
    return pm


@feature("names")
@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_structure_names(backend: str, structure: str) -> None:
    pm = build(structures(backend), structure)
    first = pm.names()
    assert first == [n for n, _ in pm.items()] and set(first) >= set(STRUCTURES[structure])
    state = pm.state_dict()
    assert list(state) == list(STRUCTURES[structure])
    assert {n: v.shape for n, v in state.items()} == STRUCTURES[structure]


@pytest.mark.cross
@feature("names: transfer")
@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_structure_transfer(pair: tuple[str, str], structure: str) -> None:
    (a_name, b_name), x = pair, structure_input(structure)
    a_mod, b_mod = structures(a_name), structures(b_name)
    a, b = seeded(build(a_mod, structure)), build(b_mod, structure)
    b = up.transfer(a, b)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(b[name].numpy(), value, err_msg=name)
    np.testing.assert_allclose(b_mod.run(b, x), a_mod.run(a, x), rtol=1e-5, atol=1e-6)
