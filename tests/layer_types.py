"""Until the rule tables give nodes their canonical layer type, tests read it from the native class (fallback only)."""
from __future__ import annotations

from typing import Any

import pytest

from unified_params import selection


def _table() -> list[tuple[tuple[type, ...], str]]:
    import keras
    from torch import nn

    from unified_params.backends.mxnet_import import import_mxnet

    gluon = import_mxnet().gluon.nn
    return [((nn.Linear, keras.layers.Dense, gluon.Dense), "linear"),
            ((nn.modules.conv._ConvNd, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, gluon.Conv2D),
             "conv"),
            ((nn.modules.batchnorm._BatchNorm, keras.layers.BatchNormalization, gluon.BatchNorm), "batch_norm"),
            ((nn.LayerNorm,), "layer_norm"), ((nn.Embedding, keras.layers.Embedding), "embedding")]


def by_native_class(node: Any) -> str | None:
    """The node's layer_type where the adapter sets it, else the type its native class tells."""
    if hasattr(node, "layer_type"):
        return node.layer_type
    return next((t for classes, t in _table() if isinstance(getattr(node, "native", None), classes)), None)


@pytest.fixture(autouse=True)
def layer_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "layer_type", by_native_class)
