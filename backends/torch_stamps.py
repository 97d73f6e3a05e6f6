"""Freshness stamps of torch models: what an index or a listing was built from, to tell when the model changed."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

from unified_params.adapter import Node
from unified_params.freshness import Contents, identical
from unified_params.lazy import lazy

torch = lazy("torch")

_DICTS = attrgetter("_modules", "_parameters", "_buffers")
_ATTRIBUTES = attrgetter("dtype", "requires_grad", "shape")
_REGISTRATIONS = [0]
"""Modules, parameters and buffers assigned or registered in any module of the process (torch's global hooks)."""


def _count_registration(module: Any, name: str, value: Any) -> None:
    _REGISTRATIONS[0] += 1


@functools.cache
def count_registrations() -> None:
    """Install, once, global registration hooks that count every assignment of a module, parameter or buffer."""
    hooks = torch.nn.modules.module
    for register in (hooks.register_module_module_registration_hook, hooks.register_module_parameter_registration_hook,
                     hooks.register_module_buffer_registration_hook):
        register(_count_registration)


@dataclass
class Stamp:
    """The modules an index was built from, what their dicts held, and each tensor's dtype, flag and shape."""

    modules: list[Any]
    dicts: list[Any]
    contents: Contents
    registrations: int
    tensors: list[Any]
    attributes: list[tuple]

    def changed(self, attributes: bool) -> bool:
        """Assignments are counted by hooks; deletions shrink a dict (Sequential's `del` too, before it renumbers).

        Listing (attributes=False) trusts the count when it did not move; otherwise the dicts and their contents
        are compared by identity, which also sees a tensor put in place of another without a hook (`_apply`
        with overwrite on) or a dict replaced.
        """
        if self.contents.resized():
            return True
        overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
        if attributes or overwrite or _REGISTRATIONS[0] != self.registrations:
            dicts = list(chain.from_iterable(map(_DICTS, self.modules)))
            if self.contents.changed() or not identical(dicts, self.dicts):
                return True
            self.registrations = _REGISTRATIONS[0]
        return attributes and list(map(_ATTRIBUTES, self.tensors)) != self.attributes


class Sizes:
    """What a listing needs to stay valid: no registration anywhere since, and every module's dicts of the same size."""

    def __init__(self, modules: list[Any]) -> None:
        self.dicts = list(chain.from_iterable(map(_DICTS, modules)))
        self.sizes = list(map(len, self.dicts))
        self.registrations = _REGISTRATIONS[0]

    def changed(self, attributes: bool) -> bool:
        return (attributes or _REGISTRATIONS[0] != self.registrations or list(map(len, self.dicts)) != self.sizes
                or torch.__future__.get_overwrite_module_params_on_conversion())


def stamp(root: Node, tensors: list[Any]) -> Stamp:
    """Every module's _modules/_parameters/_buffers dicts and contents, and each tensor's attributes."""
    count_registrations()
    modules, stack = [], [root]
    while stack:
        node = stack.pop()
        modules.append(node.native)
        stack.extend(node.children)
    dicts = list(chain.from_iterable(map(_DICTS, modules)))
    return Stamp(modules, dicts, Contents(dicts), _REGISTRATIONS[0], tensors, list(map(_ATTRIBUTES, tensors)))
