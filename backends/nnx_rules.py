"""The NNX rule table (declared with linen's in flax_rules, which shares the leaves) under the name
`unified-params compare` looks for."""
from __future__ import annotations

from .flax_rules import NNX as RULES

__all__ = ["RULES"]
