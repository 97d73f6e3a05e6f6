"""Names of transformers checkpoints: the model's names for the tensors of a save_pretrained file.

transformers renames some models' tensors between the file and the module (its conversion mapping: a ViT file holds
`encoder.layer.0.attention.attention.query.weight`, the module `layers.0.attention.q_proj.weight`) and adds or drops
the base-model prefix (`transformer.`) between a head model and its base. from_pretrained applies both; so does
pm.load, through transformers' own functions. Only imported for a model whose class comes from transformers.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def is_transformers_model(model: Any) -> bool:
    """True when the model's class derives from transformers' PreTrainedModel (checked without importing it)."""
    mro = type(model).__mro__
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers.") for c in mro)


def model_names(model: Any, names: Iterable[str], own: set[str]) -> dict[str, str]:
    """File name -> the model's name, for the names of a transformers checkpoint that are not the model's own (own).

    A tensor transformers converts (splits or merges: a WeightConverter) keeps its name, so a strict load reports
    it as unexpected: such checkpoints load with from_pretrained (then wrap the model).
    """
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    prefix, known = model.base_model_prefix, dict.fromkeys(own, True)
    out = {}
    for name in names:
        if name in own:
            continue
        new, converted = rename_source_key(name, renamings, converters, prefix, known)
        if converted is None and new != name:
            out[name] = new
    return out
