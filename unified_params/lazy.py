"""lazy(name): a module proxy that imports on first attribute access, so an adapter imports its framework when used.

Public for adapter authors (docs/adapters.md); `unified_params._lazy` is the old path of the same objects.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module `name`; the real import happens on the first attribute read."""

    def __init__(self, name: str) -> None:
        self.__dict__["_name"] = name
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            module = importlib.import_module(self.__dict__["_name"])
            self.__dict__["_module"] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._load(), attr)
        self.__dict__[attr] = value
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_name']!r}>"


def lazy(name: str) -> Any:
    """A proxy for module `name` that imports it on first use."""
    return LazyModule(name)
