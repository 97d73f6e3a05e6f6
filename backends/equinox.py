"""Equinox adapter: immutable pytree models; a write rebuilds the model with `eqx.tree_at` (pm.model is the new one).

Equinox layers take one example, so forward and gradients vmap the model over the inputs' first axis.
Batch-norm statistics live in an `eqx.nn.State` beside the model: `pm.variables` is that State.
Written against docs/adapters.md only (the third-party path).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from unified_params.adapter import (
    DEFERRED,
    NATIVE_GRAD,
    NATIVE_MATERIALIZE,
    UNALLOCATED,
    UNKNOWN_STRUCTURE,
    Adapter,
    Node,
    Slot,
)
from unified_params.layout import IDENTITY, Layout, canonical_copy, native_copy, shape_to_canonical
from unified_params.lazy import lazy
from unified_params.locate import mismatch_from_failure, walk
from unified_params.rules import Leaf, leaf_of

from .equinox_rules import RULES

eqx = lazy("equinox")
jax = lazy("jax")
jnp = lazy("jax.numpy")

STATS = ("running_mean", "running_var")


@dataclass(frozen=True)
class EqxRef:
    """A stable path to one array: attribute names and positions from the model's root; for batch-norm statistics
    the path of the layer's StateIndex and the position in its (mean, var) tuple. Array objects change on writes."""

    path: tuple[Any, ...]
    layout: Layout = IDENTITY
    stat: int | None = None


@dataclass(frozen=True)
class DictKey:
    """A step into a dict attribute (a plain string step is an attribute name)."""

    key: Any


def _get(obj: Any, path: Sequence[Any]) -> Any:
    for step in path:
        if isinstance(step, DictKey):
            obj = obj[step.key]
        else:
            obj = obj[step] if isinstance(step, int) else getattr(obj, step)
    return obj


def _native_name(path: Sequence[Any]) -> str:
    """jax.tree_util.keystr of the path without its leading dot: `layers[0].weight`, `heads['cls'].weight`."""
    text = "".join(f"[{s.key!r}]" if isinstance(s, DictKey) else f"[{s}]" if isinstance(s, int) else f".{s}"
                   for s in path)
    return text[1:]


def _fields(obj: Any) -> Iterator[tuple[str, Any]]:
    """A module's dataclass fields in definition order, static fields skipped."""
    for f in dataclasses.fields(obj):
        if not f.metadata.get("static", False) and hasattr(obj, f.name):
            yield f.name, getattr(obj, f.name)


def _holds_arrays(value: Any) -> bool:
    return any(eqx.is_array(leaf) for leaf in jax.tree_util.tree_leaves(value))


def _is_layer(value: Any) -> bool:
    return isinstance(value, eqx.Module)


def _has_state(model: Any) -> bool:
    is_index = lambda x: isinstance(x, eqx.nn.StateIndex)  # noqa: E731
    return any(is_index(x) for x in jax.tree_util.tree_leaves(model, is_leaf=is_index))


def _stat_index(module: Any) -> Any:
    """The StateIndex of a batch norm's running (mean, var), or None."""
    if isinstance(module, eqx.nn.BatchNorm):
        return getattr(module, "ema_state_index", None) or getattr(module, "batch_state_index", None)
    return None


class _Tree:
    """The Node tree of an Equinox model: Sequential positions, then dataclass fields; slots are array fields."""

    def __init__(self, model: Any, state: Any) -> None:
        self.state = state
        self.storage: dict[int, tuple] = {}
        self.layers: dict[int, str] = {}
        self.root = self.node("", model, (), ())

    def node(self, key: str, obj: Any, path: tuple, canon: tuple[str, ...]) -> Node:
        self.layers.setdefault(id(obj), ".".join(canon))
        rule = RULES.for_layer(obj) if isinstance(obj, eqx.Module) else None
        node = Node(key, obj, label=type(obj).__name__, layer_type=rule.layer_type if rule else None, rule=rule)
        if isinstance(obj, eqx.nn.Sequential):
            items = [(str(i), layer, (*path, "layers", i)) for i, layer in enumerate(obj.layers)]
        elif isinstance(obj, (list, tuple)):
            items = [(str(i), v, (*path, i)) for i, v in enumerate(obj)]
        elif isinstance(obj, dict):
            items = [(str(k), v, (*path, DictKey(k))) for k, v in obj.items()]
        else:
            items = [(k, v, (*path, k)) for k, v in _fields(obj)]
        positional = isinstance(obj, (eqx.nn.Sequential, list, tuple))
        for child_key, value, child_path in items:
            if eqx.is_array(value):
                node.slots.append(self.slot(leaf_of(rule, child_key), value, child_path))
            elif isinstance(value, eqx.nn.StateIndex):
                continue
            elif _is_layer(value) or (isinstance(value, (list, tuple, dict)) and _holds_arrays(value)):
                node.children.append(self.node(child_key, value, child_path, (*canon, child_key)))
            elif positional:
                node.children.append(Node(child_key, value, label=getattr(value, "__name__", type(value).__name__)))
        index = _stat_index(obj)
        if index is not None and self.state is not None:
            where = next(k for k, v in _fields(obj) if v is index)
            for pos, leaf in enumerate(STATS):
                value = self.state.get(index)[pos]
                ref = EqxRef((*path, where), IDENTITY, pos)
                node.slots.append(Slot(leaf, f"{_native_name((*path, where))}[{pos}]", ref, ("state", *ref.path, pos),
                                       tuple(value.shape), np.dtype(value.dtype).name, trainable=False,
                                       layout=IDENTITY))
        return node

    def slot(self, leaf: Leaf, value: Any, path: tuple) -> Slot:
        layout = leaf.layout if leaf.layout is not None else IDENTITY
        storage = self.storage.setdefault(id(value), ("model", *path))
        return Slot(leaf.name, _native_name(path), EqxRef(path, layout), storage,
                    shape_to_canonical(tuple(value.shape), layout), np.dtype(value.dtype).name, layout=leaf.layout)


@dataclass
class _Stamp:
    model: Any
    state: Any


def _inference(model: Any) -> Any:
    return eqx.nn.inference_mode(model, True)


class EquinoxAdapter(Adapter):
    """Wraps an eqx.Module (and its eqx.nn.State when the model has batch norm or other state)."""

    name = "equinox"
    roots = ("equinox",)
    distribution = "equinox"
    extra = "equinox"
    model_types = "equinox.Module"
    examples = "unified_params.backends.equinox_examples"
    structures = "unified_params.backends.equinox_structures"
    capabilities: dict[str, str] = {
        DEFERRED: "Equinox layers are built with their sizes (eqx.nn.Linear(in, out, key=...)): no shape is unknown",
        NATIVE_MATERIALIZE: "Equinox layers are built with their sizes: there is nothing to materialize",
        NATIVE_GRAD: "JAX keeps no gradient on parameters (eqx.filter_grad returns them): use pm.grads(x)",
        UNALLOCATED: "Equinox layers hold their arrays from construction: no parameter waits for storage",
        UNKNOWN_STRUCTURE: "Equinox modules are dataclasses whose fields are set at construction: the structure "
                           "is always known",
    }

    def __init__(self, model: Any, variables: Any = None) -> None:
        self.model = model
        if variables is None and _has_state(model):
            variables = eqx.nn.State(model)
        self._state = variables
        self._grads: dict = {}
        self._holders: dict[Any, list[tuple]] = {}
        self._stamp: _Stamp | None = None

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        return isinstance(model, eqx.Module)

    @property
    def variables(self) -> Any:
        """The eqx.nn.State of a stateful model (batch norm statistics), else None."""
        return self._state

    def tree(self) -> Node:
        built = _Tree(self.model, self._state)
        self._holders = {}
        for _, node in walk(built.root):
            for slot in node.slots:
                self._holders.setdefault(slot.storage, []).append(slot.ref.path)
        return built.root

    def stamp(self, root: Node) -> _Stamp:
        """The model and State the index was built from; the adapter's own writes (same paths, shapes, dtypes) carry
        it on to the model they make."""
        self._stamp = _Stamp(self.model, self._state)
        return self._stamp

    def changed(self, stamp: _Stamp, attributes: bool = True) -> bool:
        """Immutable: only a model or State the adapter did not make itself can differ."""
        return stamp is None or stamp.model is not self.model or stamp.state is not self._state

    def current(self, stamp: _Stamp, nodes: Sequence[Node], slot: Slot, attributes: bool = True) -> bool:
        return not self.changed(stamp)

    def native(self, slot: Slot) -> Any:
        """The jax.Array the model (or its State) holds now."""
        ref = slot.ref
        if ref.stat is not None:
            return self._state.get(_get(self.model, ref.path))[ref.stat]
        return _get(self.model, ref.path)

    def change_token(self, slot: Slot) -> tuple[Any, Hashable] | None:
        """The array the model holds now (JAX arrays are immutable: a write rebuilds the model)."""
        return self.native(slot), None

    def read(self, slot: Slot) -> np.ndarray:
        return canonical_copy(np.asarray(self.native(slot)), slot.ref.layout)

    def write(self, slot: Slot, value: np.ndarray) -> None:
        self.write_many([(slot, value)])

    def write_many(self, pairs: Sequence[tuple[Slot, np.ndarray]]) -> None:
        """One tree_at for every model array (each place of a tied array), one State.set per batch norm."""
        places: dict[tuple, Any] = {}
        stats: dict[tuple, dict[int, Any]] = {}
        for slot, value in pairs:
            old = self.native(slot)
            new = jnp.asarray(native_copy(value, slot.ref.layout, old.dtype))
            if slot.ref.stat is not None:
                stats.setdefault(slot.ref.path, {})[slot.ref.stat] = new
                continue
            for path in self._holders.get(slot.storage, [slot.ref.path]):
                places[path] = new
        state = self._state
        for path, parts in stats.items():
            index = _get(self.model, path)
            current = list(state.get(index))
            for pos, new in parts.items():
                current[pos] = new
            state = state.set(index, tuple(current))
        model = self.model
        if places:
            paths = list(places)
            model = eqx.tree_at(lambda m: [_get(m, p) for p in paths], model, [places[p] for p in paths],
                                is_leaf=lambda x: x is None)
        if self._stamp is not None and not self.changed(self._stamp):
            self._stamp.model, self._stamp.state = model, state
        self.model, self._state = model, state

    def grad(self, slot: Slot) -> np.ndarray | None:
        g = self._grads.get(slot.storage)
        return None if g is None else canonical_copy(g, slot.ref.layout)

    def _call(self, model: Any, xs: Sequence[Any]) -> Any:
        """The batched output: the per-example model vmapped over the inputs' first axis (state shared)."""
        if self._state is None:
            return jax.vmap(model)(*xs)
        state = self._state
        out, _ = jax.vmap(lambda *a: model(*a, state), axis_name="batch")(*xs)
        return out

    def forward(self, inputs: Sequence[Any]) -> np.ndarray:
        out = self._call(_inference(self.model), [jnp.asarray(x) for x in inputs])
        return np.asarray(out)

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """eqx.filter_grad of the inference-mode model; a tied array's gradient is the sum over the places using it."""
        xs = [jnp.asarray(x) for x in inputs]

        def objective(model: Any) -> Any:
            out = self._call(model, xs)
            return out.sum() if loss is None else loss(out)

        grads = eqx.filter_grad(objective)(_inference(self.model))
        root = _Tree(self.model, None).root
        self._grads = {}
        for _, node in walk(root):
            for slot in node.slots:
                g = np.asarray(_get(grads, slot.ref.path))
                have = self._grads.get(slot.storage)
                self._grads[slot.storage] = g if have is None else have + g

    def materialize(self, inputs: Sequence[Any]) -> None:
        """Every shape is known: check that the inputs fit by running the model once (nothing is written)."""
        if not inputs:
            return
        probe = _inference(self.model)
        tree = _Tree(probe, self._state)
        try:
            self._call(probe, [jnp.asarray(x) for x in inputs])
        except Exception as e:
            raise mismatch_from_failure(e, inputs, lambda obj: tree.layers.get(id(obj)), dict(walk(tree.root))) from e

    def watch(self, hooks: Any) -> None:
        """Nothing to watch: shapes are always known."""
