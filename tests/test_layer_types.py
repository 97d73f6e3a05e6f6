"""The layer types each rule table supports, as `unified-params compare` lists them."""
from __future__ import annotations

import pytest

from unified_params.layer_types import entry_type, supported
from unified_params.selection import LAYER_TYPES


def test_torch_table_lists_its_classes_and_marks_what_it_lacks() -> None:
    pytest.importorskip("torch")
    from unified_params.backends.torch_rules import RULES

    found = supported(RULES)
    assert found["attention"] == "MultiheadAttention" and found["linear"] == "Linear"
    assert list(found)[: len(LAYER_TYPES)] == list(LAYER_TYPES)


def test_mxnet_says_why_it_has_no_attention() -> None:
    from unified_params.backends.mxnet_rules import MISSING, RULES

    assert supported(RULES, MISSING)["attention"] == f"not supported: {MISSING['attention']}"


@pytest.mark.parametrize("module", ["keras_rules", "flax_rules", "nnx_rules", "torch_rules", "mxnet_rules",
                                    "equinox_rules"])
def test_every_function_entry_declares_its_layer_type(module: str) -> None:
    """A configuration-dependent entry carries @typed, so the table is listed without building a layer."""
    framework = module.removesuffix("_rules")
    if framework != "mxnet":
        pytest.importorskip("flax" if framework == "nnx" else framework)
    import importlib

    table = importlib.import_module(f"unified_params.backends.{module}").RULES.table
    unmarked = [cls.__name__ for cls, entry in table.items() if entry is not None and entry_type(entry) is None]
    assert not unmarked
