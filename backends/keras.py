"""Keras 3 adapter: Sequential, functional and subclassed models on any Keras backend (tensorflow, jax, torch).

Canonical child keys: a Sequential's children by position in ``model.layers`` (its auto-generated
InputLayer is not a child), a functional model's by position among its non-input layers, a
subclassed layer's by attribute name (a list or dict attribute of layers becomes a container
keyed ``attr.i`` / ``attr.key``, as torch's ModuleList and ModuleDict do). Unbuilt layers get
slots synthesized from their configuration (Dense, Conv*, Conv*Transpose, BatchNormalization,
LayerNormalization, GroupNormalization); other unbuilt layers show their parameters once built.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from unified_params.adapter import (
    LOAD_DEFERRED,
    NATIVE_GRAD,
    TIE,
    UNALLOCATED,
    UNKNOWN_STRUCTURE,
    Adapter,
    DeferredHooks,
    Node,
    Slot,
)
from unified_params.dtypes import resolve
from unified_params.errors import (
    DeferredInitializationError,
    UnifiedParamsError,
    UnsupportedError,
    deferred,
    quote,
)
from unified_params.freshness import Contents, identical
from unified_params.layout import (
    axis_map,
    canonical_copy,
    copy_into,
    fill_native,
    shape_to_canonical,
    to_canonical,
)
from unified_params.lazy import lazy
from unified_params.locate import walk as walk_nodes
from unified_params.naming import Group, alias_paths, attribute_paths, group_children
from unified_params.outputs import loss_target
from unified_params.rules import Leaf, Rule, adopt_ruled_layouts, leaf_of
from unified_params.sharding import Sharding

from . import keras_builds as builds
from .keras_ops import ops
from .keras_rules import RULES

keras = lazy("keras")

AUTO_NAME = re.compile(r"variable(_\d+)?")


@dataclass(eq=False)
class Ref:
    """A slot's handle: the Keras variable (None while its layer is unbuilt), its layer and its name in the layer."""

    variable: Any
    layer: Any
    name: str


def _to_numpy(value: Any) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(value), copy=True)


def _attribute_items(layer: Any) -> list[tuple[str, Any]]:
    """The layer's attributes, including the sublayers the torch backend keeps in nn.Module._modules (those first:
    a layer held by an attribute and by a list is named by the attribute there, as the order between them is lost)."""
    attrs = vars(layer)
    modules = attrs.get("_modules")
    items = list(modules.items()) if isinstance(modules, Mapping) else []
    items += [(k, v) for k, v in attrs.items() if k not in ("_layers", "_modules", "_functional", "_tracker")]
    return sorted(items, key=lambda kv: kv[0].startswith("_"))


def _is_layer(value: Any) -> bool:
    return isinstance(value, keras.Layer) and not isinstance(value, keras.metrics.Metric)


def _variable_keys(layer: Any) -> dict[int, str]:
    """id(variable) -> the attribute that holds it, for naming auto-named variables."""
    return {id(v): k for k, v in _attribute_items(layer) if isinstance(v, keras.Variable)}


@functools.cache
def _container(cls: type) -> str:
    """How a layer class holds its children: "sequential", "functional" or "layer" (tracked sublayers)."""
    from keras.src.models.functional import Functional

    if issubclass(cls, keras.Sequential):
        return "sequential"
    return "functional" if issubclass(cls, Functional) else "layer"


def _children(layer: Any) -> list[tuple[str, Any]]:
    """(key, child) in container order; a child is a layer or a Group of the layers in one list/dict attribute."""
    kind = _container(type(layer))
    if kind == "sequential":
        return [(str(i), child) for i, child in enumerate(layer.layers)]
    if kind == "functional":
        inner = [c for c in layer.layers if not isinstance(c, keras.layers.InputLayer)]
        return [(_functional_key(child, i), child) for i, child in enumerate(inner)]
    if not layer._layers:
        return []
    children = list(layer._flatten_layers(include_self=False, recursive=False))
    if not children:
        return []
    items = _attribute_items(layer)
    paths = attribute_paths(items, _is_layer)
    return group_children([(c.name, c) for c in children], paths, dict(items), alias_paths(items, _is_layer, paths))


@functools.cache
def _auto_layer_name(cls: type) -> re.Pattern:
    """The names Keras gives unnamed layers of cls: `<snake_case class>` or `<snake_case class>_<n>`."""
    from keras.src.utils.naming import to_snake_case

    return re.compile(rf"{re.escape(to_snake_case(cls.__name__))}(_\d+)?")


def _functional_key(layer: Any, position: int) -> str:
    """A functional model's child key: the name the user gave the layer, else its position.

    Keras names unnamed layers `<snake_case class>` or `<snake_case class>_<n>` from a global counter, which
    changes between sessions, so those (and names with a dot) fall back to the position among non-input layers.
    """
    name = layer.name
    auto = _auto_layer_name(type(layer)).fullmatch(name)
    return str(position) if auto or "." in name or not name else name


def _own_variables(layer: Any) -> list[Any]:
    """The layer's own variables, trainable first, each once."""
    out = [*layer._trainable_variables, *layer._non_trainable_variables]
    if len(out) < 2 or len(set(map(id, out))) == len(out):
        return out
    return list({id(v): v for v in out}.values())


@functools.lru_cache(maxsize=4096)
def _auto_named(names: tuple[str, ...]) -> bool:
    """True when a variable name is Keras's automatic `variable_N` (its attribute names it instead)."""
    return any(AUTO_NAME.fullmatch(n) for n in names)


def _leaves(layer: Any, own: list[Any], rule: Rule | None) -> list[tuple[str, str, Any, Leaf]]:
    """(canonical leaf, native name, variable, rule leaf) of a layer's own variables: an auto-named variable takes the
    attribute holding it, a leaf already taken keeps the native name."""
    out = []
    taken: set[str] = set()
    attrs: dict[int, str] | None = None
    for v in own:
        name = v.name
        if AUTO_NAME.fullmatch(name):
            attrs = _variable_keys(layer) if attrs is None else attrs
            name = attrs.get(id(v), name)
        leaf = leaf_of(rule, name)
        canonical = leaf.name
        if canonical in taken:
            canonical = name if name not in taken else f"{name}_{len(taken)}"
        taken.add(canonical)
        out.append((canonical, name, v, leaf))
    return out


_TRACKED = attrgetter("_layers", "_trainable_variables", "_non_trainable_variables")
_BUILT = attrgetter("built")
_ATTRIBUTES = attrgetter("trainable", "dtype", "_shape")
_SHAPE = attrgetter("_shape")
"""A Keras variable's shape as the tuple Keras keeps (TensorFlow's `shape` builds a TensorShape per call)."""


def _keyed(layers: list[Any]) -> list[Any]:
    """Subclassed layers with sublayers: their children are keyed by attribute, which tracking alone does not show."""
    from keras.src.models.functional import Functional

    return [layer for layer in layers if layer._layers and not isinstance(layer, (keras.Sequential, Functional))]


def _keys(layer: Any) -> dict[int, tuple[str, ...]]:
    """What names a subclassed layer's sublayers: the attributes (and list/dict attributes) holding them."""
    return attribute_paths(_attribute_items(layer), _is_layer)


def _tracked(layers: list[Any], functional: list[Any]) -> list[Any]:
    """The tracker lists tree() reads children and variables from (a functional model's operations too)."""
    return [*chain.from_iterable(map(_TRACKED, layers)), *(layer._operations for layer in functional)]


class _Stamp:
    """The layers an index was built from, their tracker lists and attribute keys, and each variable's attributes."""

    def __init__(self, layers: list[Any], attributes: bool = True) -> None:
        """attributes=False: what a listing needs (no variable attributes; changed(attributes=True) then says True)."""
        self.layers = layers
        self.functional = [layer for layer in self.layers if isinstance(getattr(layer, "_operations", None), list)]
        self.lists = _tracked(self.layers, self.functional)
        self.contents = Contents(sequences=self.lists)
        self.keyed = _keyed(self.layers)
        self.keys = [_keys(layer) for layer in self.keyed]
        self.built = list(map(_BUILT, self.layers))
        self.variables = [v for layer in self.layers for v in _own_variables(layer)] if attributes else None
        self.attributes = list(map(_ATTRIBUTES, self.variables)) if attributes else None

    @classmethod
    def of_walk(cls, layers: list[Any], states: list[Any], functional: list[Any], keyed: list[Any]) -> _Stamp:
        """A listing's stamp from what its walk read: each layer's sublayers, trainable and non-trainable variable
        lists and built flag, one after the other in `states` (the lists in another order than tree()'s stamp)."""
        stamp = cls.__new__(cls)
        stamp.layers, stamp.functional, stamp.keyed = layers, functional, keyed
        stamp.lists = [*states[0::4], *states[1::4], *states[2::4], *(layer._operations for layer in functional)]
        stamp.contents = Contents(sequences=stamp.lists)
        stamp.keys = [_keys(layer) for layer in keyed]
        stamp.built = states[3::4]
        stamp.variables = stamp.attributes = None
        return stamp

    def changed(self, attributes: bool) -> bool:
        """Listing trusts that Keras keeps each layer's tracker lists (it mutates them); with attributes, that too."""
        if self.contents.changed() or list(map(_BUILT, self.layers)) != self.built:
            return True
        if [_keys(x) for x in self.keyed] != self.keys:
            return True
        if not attributes:
            return False
        return self.variables is None or not identical(_tracked(self.layers, self.functional), self.lists) or \
            list(map(_ATTRIBUTES, self.variables)) != self.attributes


class KerasAdapter(Adapter):
    """Wraps a keras.Layer or keras.Model (Sequential, functional or subclassed) on any Keras backend."""

    name = "keras"
    roots = ("keras",)
    distribution = "keras"
    extra = "keras"
    model_types = "keras.Layer/keras.Model"
    examples = "unified_params.backends.keras_examples"
    structures = "unified_params.backends.keras_structures"
    capabilities: dict[str, str] = {
        UNKNOWN_STRUCTURE: "a custom Keras layer that creates its sublayers in build() is not recognized yet: its "
                           "parameters show once it is built",
        UNALLOCATED: "Keras creates a layer's variables, with values, when the layer is built: a layer waits only for "
                     "its input shape",
        NATIVE_GRAD: "Keras variables hold no gradient: gradients come from the backend's autodiff "
                       "(tf.GradientTape, jax.grad, torch.autograd); use pm.grads(x)",
        LOAD_DEFERRED: "a Keras layer makes its variables in build(input_shape), which a checkpoint's shapes do not "
                       "determine in general: call pm.materialize(example_input) first",
        TIE: "a Keras layer creates and tracks its own variables and cannot take another layer's: share the layer "
             "itself (call one layer object twice) instead",
    }

    def __init__(self, model: Any, variables: Any = None) -> None:
        super().__init__(model, variables)
        self._grads: dict[int, tuple[Any, np.ndarray]] = {}
        self._builds = builds.Builds(_own_variables)

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        return isinstance(model, keras.Layer)

    def tree(self) -> Node:
        return adopt_ruled_layouts(self._node("", self.model, (self.model.name,)))

    def _node(self, key: str, layer: Any, scope: tuple[str, ...]) -> Node:
        rule = RULES.for_layer(layer)
        node = Node(key, layer, slots=self._slots(layer, scope, rule), label=type(layer).__name__,
                    layer_type=rule and rule.layer_type, rule=rule)
        for child_key, child in _children(layer):
            if isinstance(child, Group):
                node.children.append(Node(child_key, child.container, label=type(child.container).__name__, children=[
                    self._node(k, c, (*scope, c.name)) for k, c in child.members]))
            else:
                node.children.append(self._node(child_key, child, (*scope, child.name)))
        return node

    def _slots(self, layer: Any, scope: tuple[str, ...], rule: Rule | None) -> list[Slot]:
        own = _own_variables(layer)
        slots = [Slot(canonical, v.path, Ref(v, layer, name), id(v), shape_to_canonical(tuple(_SHAPE(v)), leaf.layout),
                      str(v.dtype), trainable=bool(v.trainable), layout=leaf.layout)
                 for canonical, name, v, leaf in _leaves(layer, own, rule)]
        taken = {slot.leaf for slot in slots}
        if not layer.built and rule is not None:
            existing = {v.name for v in own}
            for leaf, shape in rule.before_data(layer):
                if leaf.native in existing or leaf.name in taken:
                    continue
                taken.add(leaf.name)
                slots.append(Slot(leaf.name, "/".join((*scope, leaf.native)), Ref(None, layer, leaf.native),
                                  ("deferred", id(layer), leaf.native), shape_to_canonical(shape, leaf.layout),
                                  str(layer.variable_dtype), trainable=leaf.trainable and bool(layer.trainable),
                                  initialized=False, layout=leaf.layout))
        return slots

    def stamp(self, root: Node) -> _Stamp:
        """Every layer's tracker lists (sublayers, variables), attribute keys and built flag; variables' attributes."""
        return _Stamp(list({id(layer): layer for layer in root.native._flatten_layers(include_self=True)}.values()))

    def listing(self) -> tuple[list[str], _Stamp] | None:
        """The names tree() would give, without slots; None for unbuilt ruled layers and variables held twice (there
        the tree decides: deferred slots, a borrowed variable taking its owner's leaf)."""
        from .keras_listing import listing

        return listing(self.model)

    def changed(self, stamp: _Stamp, attributes: bool = True) -> bool:
        return stamp.changed(attributes)

    def native(self, slot: Slot) -> Any:
        return slot.ref.variable

    def _variable(self, slot: Slot) -> Any:
        variable = slot.ref.variable
        if variable is None:
            raise deferred(slot.native_name)
        return variable

    def read(self, slot: Slot) -> np.ndarray:
        return canonical_copy(ops().numpy_view(self._variable(slot).value), slot.layout)

    def view(self, slot: Slot) -> np.ndarray:
        return to_canonical(ops().numpy_view(self._variable(slot).value), slot.layout)

    def write(self, slot: Slot, value: np.ndarray) -> None:
        self._assign_filled(self._variable(slot), slot, lambda view: copy_into(view, np.asarray(value)))

    def _assign_filled(self, variable: Any, slot: Slot, fn: Callable[[np.ndarray], None]) -> None:
        """fn writes the canonical view of a new native-layout buffer, which is then assigned to variable."""
        memory, value = ops().buffer(tuple(variable.shape), resolve(slot.dtype))
        fill_native(memory, slot.layout, fn)
        variable.assign(value)

    def fill(self, slot: Slot, fn: Callable[[np.ndarray], None]) -> None:
        """fn writes the variable's memory in place where the backend hands it out (torch), else a new buffer."""
        variable = self._variable(slot)
        split = ops().filled(variable.value, slot.layout, fn)
        if split is not None:
            variable.assign(split)
            return
        memory = ops().writable(variable.value)
        if memory is not None:
            fill_native(memory, slot.layout, fn)
            return
        self._assign_filled(variable, slot, fn)

    def sharding(self, slot: Slot) -> Sharding | None:
        """The variable's placement under a keras.distribution (ModelParallel + LayoutMap), None on one device."""
        variable = slot.ref.variable
        return None if variable is None else ops().sharding(variable.value, slot.layout)

    def group(self) -> Any:
        """The processes of jax.distributed that hold the model's variables together (Keras on JAX), else None."""
        return ops().group([v.value for v in self.model.weights])

    def blocks(self, slot: Slot) -> list | None:
        variable = slot.ref.variable
        return None if variable is None else ops().blocks(variable.value, slot.layout, slot.native_name)

    def mesh_axes(self, mesh: Any) -> dict[str, int]:
        """A keras.distribution.DeviceMesh's axis names and sizes."""
        if not isinstance(mesh, keras.distribution.DeviceMesh):
            raise UnsupportedError(f"mesh {quote(mesh)} is not a keras.distribution.DeviceMesh")
        return dict(zip(mesh.axis_names, map(int, mesh.shape)))

    def placement(self, slot: Slot, dims: tuple[tuple[str, ...], ...], mesh: Any) -> Any:
        """The keras TensorLayout (native axis order) that splits canonical dimension i over dims[i]."""
        axes = axis_map(slot.layout, len(dims))
        if axes is None:
            raise UnsupportedError(f"{quote(slot.native_name)} is stored reshaped: leave it out of the rules")
        native: list[Any] = [None] * len(dims)
        for canonical, (axis, _) in enumerate(axes):
            d = dims[canonical]
            native[axis] = None if not d else d[0] if len(d) == 1 else d
        return keras.distribution.TensorLayout(tuple(native), mesh)

    def layout_map(self, mesh: Any, pairs: Sequence[tuple[Slot, Any]]) -> Any:
        """A LayoutMap for keras.distribution.ModelParallel keyed by each variable's path below the model's own name
        (a fresh build of the model may be named `sequential_1`; give layers names so that theirs repeat)."""
        layouts = keras.distribution.LayoutMap(mesh)
        for slot, layout in pairs:
            path = slot.ref.variable.path
            layouts["(?:.*/)?" + re.escape(path.split("/", 1)[-1])] = layout.axes
        return layouts

    def grad(self, slot: Slot) -> np.ndarray | None:
        found = self._grads.get(id(slot.ref.variable))
        if found is None or found[0] is not slot.ref.variable:
            return None
        return canonical_copy(found[1], slot.layout)

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        variables = list(self.model.trainable_variables)
        objective = loss or (lambda out: _sum_outputs(loss_target(out, keras.ops.is_tensor)))
        grads = ops().gradients(self.model, variables, objective, inputs, self._call)
        self._grads = {id(v): (v, _to_numpy(g)) for v, g in zip(variables, grads) if g is not None}

    def _call(self, inputs: Sequence[Any]) -> Any:
        return self.model(*inputs, training=False)

    def channels_last(self) -> bool:
        return keras.config.image_data_format() == "channels_last"

    def change_token(self, slot: Slot) -> tuple[Any, Hashable] | None:
        """The variable's value tensor (see Ops.token): JAX and torch backends have one, TensorFlow none."""
        variable = slot.ref.variable
        return None if variable is None else ops().token(variable.value)

    def layer_names(self, root: Node) -> dict[str, tuple[str, ...]]:
        """Each layer's layer.name (a functional model's positional layers are found by it too)."""
        return {path: (node.native.name,) for path, node in walk_nodes(root) if isinstance(node.native, keras.Layer)}

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """Each given layer's `call` is wrapped on the instance for one inference-mode pass, then restored."""
        out: dict[str, np.ndarray] = {}
        patched: list[tuple[Any, Any]] = []
        for key, layer in layers.items():
            if not isinstance(layer, keras.Layer) or layer is self.model:
                continue
            original = layer.call

            def call(*args: Any, __key: str = key, __call: Any = original, **kwargs: Any) -> Any:
                result = __call(*args, **kwargs)
                if __key not in out:
                    out[__key] = _to_numpy(keras.tree.flatten(result)[0])
                return result

            patched.append((layer, vars(layer).get("call")))
            object.__setattr__(layer, "call", call)
        try:
            root = self._call(inputs)
        finally:
            for layer, before in reversed(patched):
                if before is None:
                    vars(layer).pop("call", None)
                else:
                    object.__setattr__(layer, "call", before)
        if "" in layers:
            out[""] = _to_numpy(keras.tree.flatten(root)[0])
        return {key: out[key] for key in layers if key in out}

    def forward(self, inputs: Sequence[Any]) -> np.ndarray:
        out = self._call(inputs)
        return keras.tree.map_structure(_to_numpy, out) if not keras.ops.is_tensor(out) else _to_numpy(out)

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        """Build every layer with one call on inputs; on any failure, or later through the undo, unbuild them."""
        layers = self.model._flatten_layers(include_self=True, recursive=True)
        if not inputs:
            unbuilt = [layer.name for layer in layers if not layer.built]
            if unbuilt:
                raise DeferredInitializationError(
                    f"Keras infers shapes from data: pass example inputs to pm.materialize(x) "
                    f"(layers not built yet: {', '.join(unbuilt)})")
            return None
        snapshot = builds.Snapshot.of(self.model)
        self._builds.quiet = True
        try:
            self._call(inputs)
        except BaseException as e:
            snapshot.restore()
            if isinstance(e, UnifiedParamsError) or not isinstance(e, Exception) or not builds.is_shape_error(e):
                raise
            raise builds.mismatch(self.tree(), inputs, e) from e
        finally:
            self._builds.quiet = False
            self._builds.changed = False
        return snapshot.restore

    def watch(self, hooks: DeferredHooks) -> None:
        self._builds.watch(self.model, hooks)

    def set_trainable(self, owner: Any, slot: Slot, trainable: bool) -> bool:
        """The variable's own trainable flag (a layer with trainable=False keeps all its variables out of training)."""
        variable = self._variable(slot)
        variable.trainable = trainable
        return True


def _sum_outputs(out: Any) -> Any:
    parts = [keras.ops.sum(o) for o in keras.tree.flatten(out)]
    return functools.reduce(lambda a, b: a + b, parts)
