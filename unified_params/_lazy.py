"""The old import path of the lazy-import helper: use `unified_params.lazy` (public, documented in docs/adapters.md)."""
from .lazy import LazyModule, lazy

__all__ = ["LazyModule", "lazy"]
