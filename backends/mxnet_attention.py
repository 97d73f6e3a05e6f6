"""Multi-head attention on MXNet Gluon: not supported (the rows and the encoder block skip with this reason)."""
from __future__ import annotations

from collections.abc import Callable

from unified_params.conformance.examples import Built

REASON = "MXNet 1.9 Gluon has no multi-head attention layer"

ATTENTION: dict[str, Callable[[], Built] | str] = {
    "attention": REASON, "attention_no_bias": REASON, "attention_kdim": REASON,
}

encoder_block: Callable[[], Built] | str = REASON
