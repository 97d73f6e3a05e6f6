"""Locating the layer that rejected example inputs, for adapters that raise ShapeMismatchError in materialize.

Public helpers for adapter authors (docs/adapters.md, "Errors an adapter raises"): run the model on the
inputs; when it raises, `mismatch_from_failure` names the innermost layer the exception passed through and both
sizes; when it runs, `compare_shapes` compares the shapes the run gave (a probe tree) with the known ones.
Framework-free: they read tracebacks, `Node` trees and the inputs' `.shape`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .adapter import Node
from .errors import ShapeMismatchError
from .inputs import describe

__all__ = ["walk", "failing_layer", "input_weight_size", "mismatch_from_failure", "compare_shapes"]


def walk(node: Node, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Node]]:
    """(canonical dotted layer path, node) for every node, parents first."""
    yield ".".join(path), node
    for child in node.children:
        yield from walk(child, (*path, child.key))


def _frames(exc: BaseException) -> Iterator[Any]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            yield tb.tb_frame
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__


def _first_array_arg(frame: Any) -> tuple[int, ...] | None:
    code = frame.f_code
    names = list(code.co_varnames[1: code.co_argcount])
    if code.co_flags & 0x04:
        names.append(code.co_varnames[code.co_argcount + code.co_kwonlyargcount])
    for name in names:
        value = frame.f_locals.get(name)
        for item in value if isinstance(value, tuple) else (value,):
            shape = getattr(item, "shape", None)
            if shape is not None and not isinstance(item, type):
                return tuple(shape)
    return None


Located = tuple[str, Any, "tuple[int, ...] | None"]


def failing_layer(exc: BaseException, layer_name: Callable[[Any], str | None]) -> Located | None:
    """(canonical layer name, module, shape of its input) of the innermost layer the exception passed through."""
    found = None
    for frame in _frames(exc):
        obj = frame.f_locals.get("self")
        if obj is None:
            continue
        try:
            name = layer_name(obj)
        except Exception:
            name = None
        if name is not None:
            found = (name, obj, _first_array_arg(frame))
    return found


def input_weight_size(node: Node | None) -> int | None:
    """The input size a layer's weight expects (canonical dimension 1), if known."""
    for slot in node.slots if node is not None else ():
        if slot.leaf == "weight" and len(slot.shape) >= 2 and slot.shape[1] is not None:
            return slot.shape[1]
    return None


def mismatch_from_failure(exc: BaseException, inputs: Sequence[Any], layer_name: Callable[[Any], str | None],
                          nodes: Mapping[str, Node]) -> ShapeMismatchError:
    """A ShapeMismatchError naming the layer that rejected the inputs, with both sizes when they can be read."""
    shapes = describe(inputs)
    where = failing_layer(exc, layer_name)
    if where is None:
        return ShapeMismatchError(f"the model rejected inputs of shape {shapes}: {exc}; nothing was changed")
    name, module, got = where
    expected = input_weight_size(nodes.get(name))
    sizes = ""
    if expected is not None and got:
        sizes = f": it expects input size {expected} but got {got[-1]} (input shape {got})"
    elif got:
        sizes = f" (its input has shape {got})"
    return ShapeMismatchError(
        f"layer {name or '(root)'!r} ({type(module).__name__}) does not fit inputs of shape {shapes}{sizes}. "
        f"{type(exc).__name__}: {str(exc).rstrip('. ')}. "
        "Give inputs that fit the layer, or rebuild the layer for the new size; the model is unchanged")


def compare_shapes(known: Node, probe: Node, inputs: Sequence[Any]) -> ShapeMismatchError | None:
    """The first parameter whose known dimensions differ from those the inputs give, as an error; else None."""
    probed = {(layer, slot.leaf): slot.shape for layer, node in walk(probe) for slot in node.slots}
    shapes = describe(inputs)
    for layer, node in walk(known):
        for slot in node.slots:
            new = probed.get((layer, slot.leaf))
            if new is None or len(new) != len(slot.shape):
                continue
            for dim, (a, b) in enumerate(zip(slot.shape, new)):
                if a is not None and b is not None and a != b:
                    what = "input size" if slot.leaf == "weight" and dim == 1 else f"dimension {dim} of its {slot.leaf}"
                    return ShapeMismatchError(
                        f"layer {layer or '(root)'!r}: its {slot.leaf} has shape {slot.shape}, but inputs of shape "
                        f"{shapes} need {new}: {what} is {a}, the inputs give {b}. Give inputs of the size the layer "
                        "was built for, or rebuild the layer for the new size; nothing was changed")
    return None
