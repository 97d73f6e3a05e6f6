"""The MXNet Gluon rule table: Gluon stores PyTorch's layout, so only norm layers' gamma/beta are renamed.

Gluon parameters carry their own shapes before data (0 for a dimension not known yet), so no rule
needs a shape function.
"""
from __future__ import annotations

from unified_params.layer_types import typed
from unified_params.layout import IDENTITY
from unified_params.rules import Entry, Leaf, Rule, RuleTable

from . import mxnet_groupnorm
from .mxnet_import import import_mxnet


def _leaves(**names: str) -> tuple[Leaf, ...]:
    return tuple(Leaf(native, name, IDENTITY, trainable=not name.startswith("running_"))
                 for native, name in names.items())


def _rules() -> dict[type, Entry]:
    mxnet_groupnorm.install()
    nn = import_mxnet().gluon.nn
    from mxnet.gluon.nn.basic_layers import _BatchNorm
    from mxnet.gluon.nn.conv_layers import _Conv

    dense = _leaves(weight="weight", bias="bias")
    norm = _leaves(gamma="weight", beta="bias")
    stats = _leaves(gamma="weight", beta="bias", running_mean="running_mean", running_var="running_var")
    transposed = [getattr(nn, f"Conv{d}DTranspose") for d in (1, 2, 3) if hasattr(nn, f"Conv{d}DTranspose")]
    return {
        nn.Dense: Rule("linear", dense),
        _Conv: Rule("conv", dense),
        **{cls: Rule("conv_transpose", dense) for cls in transposed},
        _BatchNorm: Rule("batch_norm", stats),
        nn.InstanceNorm: Rule("instance_norm", norm),
        nn.LayerNorm: Rule("layer_norm", norm),
        nn.GroupNorm: typed("group_norm")(mxnet_groupnorm.group_norm),
        nn.Embedding: Rule("embedding", _leaves(weight="weight")),
        nn.PReLU: Rule("prelu", _leaves(alpha="weight")),
    }


RULES = RuleTable(_rules)
MISSING = {"attention": "Gluon 1.9 has no multi-head attention layer", "rms_norm": "Gluon 1.9 has no RMS norm layer"}
"""Layer types MXNet Gluon has no layer for (shown by `unified-params compare`)."""
