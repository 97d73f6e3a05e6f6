"""The conformance layers section's builders on Flax NNX (channels-last input (2, 9, 8, 4))."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from unified_params.conformance.examples import Built

from .nnx_attention import ATTENTION


def _one(make: Callable[[nnx.Rngs], Any]) -> Callable[[], Built]:
    return lambda: Built(nnx.Sequential(make(nnx.Rngs(0))))


LAYERS: dict[str, Callable[[], Built] | str] = {
    "conv": _one(lambda r: nnx.Conv(4, 6, (3, 2), feature_group_count=2, padding="VALID", rngs=r)),
    "depthwise_conv": _one(lambda r: nnx.Conv(4, 8, (3, 2), feature_group_count=4, padding="VALID", rngs=r)),
    "conv_transpose": _one(lambda r: nnx.ConvTranspose(4, 6, (3, 2), strides=2, padding="VALID", rngs=r)),
    "group_norm": _one(lambda r: nnx.GroupNorm(4, num_groups=2, epsilon=1e-5, rngs=r)),
    "instance_norm": _one(lambda r: nnx.InstanceNorm(4, epsilon=1e-5, rngs=r)),
    "prelu": _one(lambda r: nnx.PReLU()),
    **ATTENTION,
}
