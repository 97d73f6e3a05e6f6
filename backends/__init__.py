"""The built-in adapters, one module per framework; each imports its framework only when used.

Importing this subpackage sets the attribute `unified_params.backends`, which is also the public
function `up.backends()`: the module is made callable so that both keep working.
"""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


class _CallableModule(ModuleType):
    def __call__(self) -> Any:
        from unified_params.registry import backends

        return backends()


sys.modules[__name__].__class__ = _CallableModule
