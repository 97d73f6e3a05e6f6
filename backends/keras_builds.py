"""Keras builds as the adapter sees them: build() hooks that apply recorded initializers once a layer's shapes are
known, the snapshot that undoes a build that failed half-way, and the shape error naming the layer that refused."""
from __future__ import annotations

import functools
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from unified_params.adapter import DeferredHooks, Node
from unified_params.errors import ShapeMismatchError
from unified_params.inputs import describe
from unified_params.layout import native_copy, shape_to_canonical
from unified_params.lazy import lazy
from unified_params.rules import leaf_of

from .keras_ops import ops
from .keras_rules import RULES

keras = lazy("keras")

INPUT_SPEC_ERROR = re.compile(
    r"of layer '(?P<layer>[^']+)' is incompatible with the layer: expected axis (?P<axis>-?\d+) of input shape "
    r"to have value (?P<expected>\d+), but received input with shape (?P<shape>\([^)]*\))")
SHAPE_SPEC_ERROR = re.compile(
    r"of layer '(?P<layer>[^']+)' is incompatible with the layer: expected shape=(?P<expected>\([^)]*\)), "
    r"found shape=(?P<shape>\([^)]*\))")
LAYER_IN_MESSAGE = re.compile(r"layer '([^']+)'")


def mismatch(root: Node, inputs: Sequence[Any], error: Exception) -> ShapeMismatchError:
    """A ShapeMismatchError that names the failing layer by canonical path and both sizes."""
    paths: dict[str, str] = {}

    def walk(node: Node, path: tuple[str, ...]) -> None:
        if isinstance(node.native, keras.Layer):
            paths.setdefault(node.native.name, ".".join(path))
        for child in node.children:
            walk(child, (*path, child.key))

    walk(root, ())
    message = str(error)
    shapes = describe(inputs)
    found = INPUT_SPEC_ERROR.search(message)
    if found:
        name, axis, expected = found["layer"], int(found["axis"]), int(found["expected"])
        got = _parse_shape(found["shape"])
        return _size_error(_describe(paths.get(name), name), axis, expected, got)
    found = SHAPE_SPEC_ERROR.search(message)
    if found:
        want, got = _parse_shape(found["expected"]), _parse_shape(found["shape"])
        axis = next((i for i, (w, g) in enumerate(zip(want, got)) if w is not None and w != g), None)
        if axis is not None and len(want) == len(got):
            return _size_error(_describe(paths.get(found["layer"]), found["layer"]), axis - len(got), want[axis], got)
    named = LAYER_IN_MESSAGE.search(message)
    where = _describe(paths.get(named[1]), named[1]) if named else "(unknown)"
    lines = (line.strip() for line in message.splitlines() if "incompatible" in line or "shape" in line)
    first = next(lines, message.strip())
    return ShapeMismatchError(
        f"the model rejected inputs of shape {shapes} at layer {where}: {first}; the model is unchanged")


def _describe(path: str | None, name: str) -> str:
    if path == "":
        return f"'' (the model's input, Keras model {name!r})"
    return f"{path!r} (Keras layer {name!r})" if path is not None else f"{name!r}"


def _parse_shape(text: str) -> tuple[int | None, ...]:
    return tuple(None if d.strip() == "None" else int(d) for d in text.strip("()").split(",") if d.strip())


def _size_error(where: str, axis: int, expected: int, got: tuple[int | None, ...]) -> ShapeMismatchError:
    return ShapeMismatchError(
        f"layer {where} expects input size {expected} on axis {axis} but got size {got[axis]} "
        f"(input shape {got}); the model is unchanged. Give inputs of size {expected}, "
        f"or build a new model for size {got[axis]}")


def is_shape_error(error: Exception) -> bool:
    if isinstance(error, (ValueError, TypeError, RuntimeError)):
        return True
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(error, tf.errors.OpError)


class Snapshot:
    """The attribute state of Keras objects, to undo a build that failed half-way (materialize)."""

    def __init__(self, objects: Sequence[Any]) -> None:
        self._saved: list[tuple[Any, dict[str, Any], list[tuple[Any, Any]]]] = []
        for obj in {id(o): o for o in objects}.values():
            state = dict(vars(obj))
            contents: list[tuple[Any, Any]] = []
            for value in state.values():
                _save_contents(value, contents, depth=2)
            self._saved.append((obj, state, contents))

    @classmethod
    def of(cls, root: Any) -> Snapshot:
        """The state of root, its sublayers and their trackers."""
        layers = root._flatten_layers(include_self=True, recursive=True)
        return cls([*layers, *(layer._tracker for layer in layers)])

    def restore(self) -> None:
        """Put every attribute and every container's contents back as they were."""
        for obj, state, contents in self._saved:
            attrs = vars(obj)
            attrs.clear()
            attrs.update(state)
            for container, saved in contents:
                if isinstance(container, list):
                    list.__delitem__(container, slice(None))
                    list.extend(container, saved)
                elif isinstance(container, dict):
                    dict.clear(container)
                    dict.update(container, saved)
                else:
                    set.clear(container)
                    set.update(container, saved)


def _save_contents(value: Any, out: list[tuple[Any, Any]], depth: int) -> None:
    if depth == 0 or type(value).__module__.startswith("tensorflow"):
        return
    if isinstance(value, list):
        out.append((value, list(value)))
        items = list(value)
    elif isinstance(value, dict):
        out.append((value, dict(value)))
        items = list(value.values())
    elif isinstance(value, set):
        out.append((value, set(value)))
        return
    else:
        return
    for item in items:
        _save_contents(item, out, depth - 1)


class Builds:
    """Watches the build() of layers not built yet: once the outermost build is done the hooks hear that shapes are
    known (a failing recorded initializer unbuilds the layer again). quiet while materialize builds on purpose."""

    def __init__(self, own_variables: Any) -> None:
        self.hooks: DeferredHooks | None = None
        self.depth = 0
        self.changed = False
        self.quiet = False
        self._own_variables = own_variables

    def watch(self, model: Any, hooks: DeferredHooks) -> None:
        """Watch every layer of model not built yet, for these hooks."""
        self.hooks = hooks
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if not layer.built:
                self._watch_build(layer)

    def _watch_build(self, layer: Any) -> None:
        original = vars(layer).get("build")
        if original is None or getattr(original, "_unified_params", None) is self:
            return
        builds = self

        @functools.wraps(original)
        def build(*args: Any, **kwargs: Any) -> None:
            outer = None if builds.depth or builds.quiet else Snapshot.of(layer)
            builds.depth += 1
            try:
                original(*args, **kwargs)
            finally:
                builds.depth -= 1
            if layer.built and vars(layer).get("build") is build:
                object.__setattr__(layer, "build", original)
            builds.changed = True
            try:
                builds._notify(layer)
            except BaseException:
                if outer is not None:
                    outer.restore()  # unbuilt again: the next call builds and tries the recorded initializers again
                raise

        build._unified_params = self  # type: ignore[attr-defined]
        object.__setattr__(layer, "build", build)

    def _notify(self, layer: Any) -> None:
        """Tell the core that shapes became known, once the outermost build is done and variables hold values.

        Inside a StatelessScope (symbolic builds by predict/fit) variables get their values when the
        scope exits: their initializers are bridged to the recorded ones instead.
        """
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        if self.quiet or self.hooks is None:
            return
        if in_stateless_scope():
            for sub in layer._flatten_layers(include_self=True, recursive=True):
                for variable in self._own_variables(sub):
                    self._bridge(sub, variable)
            return
        if self.depth or not self.changed:
            return
        self.changed = False
        with ops().eager():
            self.hooks.shapes_known()

    def _bridge(self, layer: Any, variable: Any) -> None:
        """A variable created in a StatelessScope takes the recorded initializers' value when Keras initializes it."""
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        native = getattr(variable, "_initializer", None)
        if native is None or getattr(variable, "_value", True) is not None or getattr(native, "_unified_params", None):
            return
        hooks = self.hooks
        layout = leaf_of(RULES.for_layer(layer), variable.name).layout

        def initializer(shape: tuple, dtype: Any = None, **kwargs: Any) -> Any:
            if not in_stateless_scope() and hooks is not None:
                canonical = shape_to_canonical(tuple(shape), layout)
                try:
                    value = hooks.initial_value(id(variable), canonical, str(variable.dtype))
                except Exception as e:  # Keras is initializing a batch of variables: a raise would leave some empty
                    warnings.warn(f"{variable.path}: the recorded initializer failed ({e}); Keras's own initializer "
                                  f"was used")
                    value = None
                if value is not None:
                    return native_copy(value, layout)
            return native(shape, dtype=dtype, **kwargs)

        initializer._unified_params = True  # type: ignore[attr-defined]
        variable._initializer = initializer
