"""The ParamAPI view: one way to access, collect, initialize and inspect a model's parameters."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import errors, selection
from .adapter import COUNTERS, DEFERRED, Node
from .api_state import StateMethods
from .atomic import hold_interrupts
from .fit import check_example_inputs
from .index import Entry
from .init import Initializer, filler, fills_in_place, make_value
from .joins import Joined
from .locate import walk
from .model_state import ModelState, Record, locked
from .param_view import ParamView
from .rng import check_seed
from .sharding import warn_whole


def _short(names: list[str], n: int = 6) -> str:
    """Names for a message, the list cut after n."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


class ParamAPI(StateMethods):
    """A model's parameters under canonical names; pm.layer(...) gives a view rooted at a child."""

    def __init__(self, model: ModelState, prefix: tuple[str, ...] = ()) -> None:
        self._model = model
        self._prefix = prefix
        self._lead = "".join(k + "." for k in prefix)
        self._views: dict[str, ParamView] = {}
        """Views handed out by name (a view finds its entry on every use, so one per name serves every lookup)."""

    @property
    def backend(self) -> str:
        return self._model.adapter.name

    @property
    def model(self) -> Any:
        """The wrapped native model (for linen: the module)."""
        return self._model.adapter.model

    @property
    def variables(self) -> Any:
        """linen: the current variables, to pass to module.apply; None elsewhere."""
        return self._model.adapter.variables

    @variables.setter
    def variables(self, tree: Any) -> None:
        """linen: hand back a tree trained outside pm; it must fit the module (checked first, else nothing changes)."""
        self._model.adapter.set_variables(tree)
        self._model.shapes_known()

    @property
    def capabilities(self) -> dict[str, str]:
        """Features this backend cannot do, with the reason."""
        return dict(self._model.adapter.capabilities)

    def _rel(self, full: str) -> str:
        return full[len(self._lead):]

    def _entries(self, attributes: bool = True) -> list[Entry]:
        entries = self._model.index(attributes=attributes).entries.values()
        if not self._prefix:
            return list(entries)
        n = len(self._prefix)
        return [e for e in entries if e.path[:n] == self._prefix]

    def _unique(self, attributes: bool = True) -> list[Entry]:
        """One entry per storage: the first name inside this view."""
        seen: set = set()
        out = []
        for e in self._entries(attributes):
            if e.slot.storage not in seen:
                seen.add(e.slot.storage)
                out.append(e)
        return out

    def names(self) -> list[str]:
        """Every canonical name, in canonical order (each name of a tied group)."""
        if not self._prefix:
            return self._model.names()
        return [self._rel(e.name) for e in self._entries(attributes=False)]

    def keys(self) -> list[str]:
        return self.names()

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        entry = self._model.entry(self._lead + name, attributes=False) if isinstance(name, str) else None
        return entry is not None and entry.path[: len(self._prefix)] == self._prefix

    def items(self) -> list[tuple[str, ParamView]]:
        return [(self._rel(e.name), ParamView(self, e)) for e in self._entries()]

    def values(self) -> list[ParamView]:
        return [ParamView(self, e) for e in self._entries()]

    def __getitem__(self, name: str) -> ParamView:
        """The parameter with this canonical name (relative to the view), or with this native name."""
        if not self._prefix and name.__class__ is str:
            views = self._model.views
            view = None if views is None else views.get(name)
            if view is not None:
                return view
            if self._model.entry(name, False) is not None:
                view = self._views.get(name)
                if view is None:
                    view = self._views[name] = ParamView(self, self._model.entry(name, False))
                self._model.keep_view(name, view)
                return view
        entry = self._model.entry(self._lead + name, attributes=False) if isinstance(name, str) else None
        if entry is None or entry.path[: len(self._prefix)] != self._prefix:
            by_native = [e for e in self._entries() if e.slot.native_name == name]
            if not by_native:
                raise errors.not_found(str(name), self.names(), self._where())
            entry = by_native[0]
        return ParamView(self, entry)

    def _where(self) -> str:
        return f"layer {'.'.join(self._prefix)!r}" if self._prefix else "the model"

    def _node(self) -> Node:
        node = self._model.index().root
        for key in self._prefix:
            node = next(c for c in node.children if c.key == key)
        return node

    def layer(self, *keys: int | str) -> ParamAPI:
        """A view rooted at a child: positions, keys or dotted paths, like rgnet[0][1][0]; names relative to it.

        A key that is no canonical key may be the framework's own layer name (Keras layer.name, Gluon block.name,
        linen module name); one that names several layers raises SelectionError listing their canonical paths.
        """
        from .layer_keys import step

        root, path = self._model.index().root, self._prefix
        for key in keys:
            path = step(root, path, key, lambda: self._model.adapter.layer_names(root))
        return ParamAPI(self._model, tuple(path))

    @property
    def native_layer(self) -> Any:
        """The framework's own layer this view is rooted at."""
        return self._node().native

    def summary(self) -> str:
        """A table: name, native name (when it differs), layer type, shape, dtype, size, trainable, tied with; its lines
        fit 120 columns (long names shortened in the middle)."""
        from .summary import summary

        return summary(self)

    def __repr__(self) -> str:
        state = "" if self.initialized else f", {len(self.pending())} pending"
        return f"<ParamAPI {self.backend} {self._where()}: {len(self)} parameters{state}>"

    def num_params(self, trainable: bool | None = None) -> int:
        """Unique elements (a tied parameter once); running statistics count, as in Keras and Gluon, step counters not.

        num_params(trainable=True) is torch's sum(p.numel() for p in model.parameters() if p.requires_grad).
        """
        unique = [e for e in self._unique() if e.slot.kind not in COUNTERS
                  and (trainable is None or e.slot.trainable == trainable)]
        pending = [self._rel(e.name) for e in unique if None in e.slot.shape]
        if pending:
            raise errors.DeferredInitializationError(
                f"the size of {errors.quote_all(pending)} is not known yet: call pm.materialize(example_input) first")
        self._structure_known()
        return sum(e.slot.numel for e in unique)

    def _structure_known(self) -> None:
        """Raise while a layer's parameters are not known at all (they appear when the model first runs)."""
        unknown = self._incomplete()
        if unknown:
            where = ", ".join(repr(p or "(root)") for p in unknown[:6])
            raise errors.DeferredInitializationError(
                f"the parameters of layer {where} are not known until the model runs (a linen @compact module): "
                f"call pm.materialize(example_input) first")

    def _select(self, selector: selection.Selector, attributes: bool = True, counters: bool = True) -> list[Entry]:
        """One entry per storage (its first name here) when any of its names fits every selector; expect checked."""
        attributes = attributes or selector.trainable is not None or selector.ndims is not None
        if not self._prefix and counters and selector.names_only:
            index = self._model.index(attributes=attributes)
            chosen = selection.by_pattern(index.entries, index.groups, selector.pattern)
            if selector.expect is not None:
                selector.check_count([e.name for e in chosen], self._where())
            return chosen
        layers = selection.nodes(self._model.index(attributes=attributes).root) if selector.layers is not None else {}
        chosen = selection.by_storage(self._entries(attributes), lambda e: e.slot.storage,
                                      lambda e: selector.fits(self._rel(e.name), e.slot, layers.get(e.path)))
        chosen = chosen if counters else [e for e in chosen if e.slot.kind not in COUNTERS]
        selector.check_count([self._rel(e.name) for e in chosen], self._where())
        return chosen

    def collect(self, pattern: str | None = None, kind: str | tuple[str, ...] | None = None, trainable: bool | None = None,
                *, layer: Any = None, ndim: int | tuple[int, ...] | None = None, native: str | None = None,
                expect: int | None = None) -> dict[str, ParamView]:
        """name -> view of the selected parameters (a tied group once).

        Selectors combine by AND: pattern (fullmatch of a canonical name), kind, trainable, layer (canonical layer type
        such as "linear" or "conv", a native layer class, or a tuple of them), ndim (int or tuple), native (fullmatch of
        the native name); expect=N raises SelectionError unless exactly N parameters are selected.
        """
        selector = selection.Selector.of(pattern, kind, trainable, layer, ndim, native, expect)
        chosen = self._select(selector, attributes=False)
        if self._prefix:
            return {self._rel(e.name): ParamView(self, e) for e in chosen}
        views, out = self._views, {}
        for e in chosen:
            view = views.get(e.name)
            out[e.name] = view if view is not None else views.setdefault(e.name, ParamView(self, e))
        return out

    @locked
    def init(self, initializer: Initializer | Callable, pattern: str | None = None, kind: str | tuple[str, ...] | None = None,
             seed: int | None = None, *, trainable: bool | None = None, layer: Any = None,
             ndim: int | tuple[int, ...] | None = None, native: str | None = None, expect: int | None = None) -> ParamAPI:
        """Initialize the parameters collect() would select: all values made and checked first, then written.

        Parameters whose shape is not known yet get the call recorded; it runs when the shape is known.
        """
        if isinstance(initializer, type) and issubclass(initializer, Initializer):
            initializer = initializer()
        if not callable(initializer) and not isinstance(initializer, Initializer):
            raise errors.InitializerError(f"{errors.quote(initializer)} is not an initializer: pass up.init.Normal(...) "
                                          f"or a function (shape, dtype, rng, name) -> array")
        seed = check_seed(seed)
        selector = selection.Selector.of(pattern, kind, trainable, layer, ndim, native, expect)
        selected = self._select(selector, counters=selector.kinds is not None)
        unknown = self._incomplete()
        if not selected and not unknown:
            raise errors.SelectionError(f"{selector.describe()} matches no parameter in {self._where()}; "
                                        f"names are: {errors.quote_all(self.names())}")
        ready = [e for e in selected if e.slot.initialized]
        in_place = isinstance(initializer, Initializer) and fills_in_place(initializer)
        if isinstance(initializer, Initializer):
            for e in selected:
                initializer.check(tuple(1 if d is None else d for d in e.slot.shape), e.name, e.slot.dtype)
        for e in ready:
            self._model.adapter.writable(e.slot)
        warn_whole(self._model.adapter, initializer, selected)
        make = [e for e in ready if not in_place or isinstance(e.slot, Joined)]
        values = [(e.slot, make_value(initializer, seed, e.name, e.slot.shape, e.slot.dtype)) for e in make]
        with hold_interrupts():
            self._model.adapter.write_many(values)
            if in_place:
                for e in ready:
                    if not isinstance(e.slot, Joined):
                        self._model.adapter.fill(e.slot, filler(initializer, seed, e.name))
            self._model.claim([e.slot for e in ready], initializer, seed)
            self._model.supersede([e.name for e in selected])
            pending = [e.name for e in selected if not e.slot.initialized]
            if unknown:
                select = lambda: [e.name for e in self._select(selector, counters=selector.kinds is not None)]  # noqa: E731
                self._model.records.append(Record(initializer, seed, pending, select, frozenset(e.name for e in selected),
                                                  f"{selector.describe()} of pm.init in {self._where()}"))
            elif pending:
                self._model.records.append(Record(initializer, seed, pending))
        return self

    def freeze(self, pattern: str | None = None, kind: str | tuple[str, ...] | None = None, *, layer: Any = None,
               ndim: int | tuple[int, ...] | None = None, native: str | None = None, expect: int | None = None) -> ParamAPI:
        """Make the selected parameters not trainable in the framework itself (torch requires_grad, MXNet grad_req,
        Keras variable.trainable); running statistics are left alone. Flax has none: mask the optimizer instead."""
        from .training import set_trainable

        set_trainable(self, False, selection.Selector.of(pattern, kind, None, layer, ndim, native, expect))
        return self

    def unfreeze(self, pattern: str | None = None, kind: str | tuple[str, ...] | None = None, *, layer: Any = None,
                 ndim: int | tuple[int, ...] | None = None, native: str | None = None, expect: int | None = None) -> ParamAPI:
        """Make the selected parameters trainable again in the framework itself (the selectors of freeze)."""
        from .training import set_trainable

        set_trainable(self, True, selection.Selector.of(pattern, kind, None, layer, ndim, native, expect))
        return self

    def tie(self, source: str, target: str) -> ParamAPI:
        """Make target use source's storage from now on (torch, NNX, MXNet); both names then show in tied()."""
        from .training import tie

        tie(self, source, target)
        return self

    def _incomplete(self) -> list[str]:
        """Layers inside this view whose structure is not known until the model runs (linen @compact before init)."""
        lead = ".".join(self._prefix)
        return [p for p in self._model.index().incomplete if not lead or p == lead or p.startswith(lead + ".")]

    def tied(self) -> list[list[str]]:
        """Groups of names that share one storage, each in canonical order."""
        index = self._model.index()
        inside = {e.name for e in self._entries()}
        groups = []
        for names in index.groups.values():
            names = [self._rel(n) for n in names if n in inside]
            if len(names) > 1:
                groups.append(names)
        return groups

    @property
    def initialized(self) -> bool:
        """True when every parameter's shape is known and its storage exists (and every layer's structure is known)."""
        return all(e.slot.initialized for e in self._entries()) and not self._incomplete()

    def pending(self, reason: str = "shape") -> list[str]:
        """Names whose shape is not known yet; "storage": shape known, storage not allocated; "any": both."""
        if reason not in ("shape", "storage", "any"):
            raise errors.SelectionError(f"pending(reason={reason!r}): reason is 'shape', 'storage' or 'any'")
        unallocated = self._model.index().unallocated
        return [self._rel(e.name) for e in self._entries() if not e.slot.initialized
                and (reason == "any" or (e.name in unallocated) == (reason == "storage"))]

    def materialize(self, *example_inputs: Any, device: str | None = None) -> ParamAPI:
        """Make every shape known and every parameter allocated, apply the recorded initializers, return self.

        Example inputs may be omitted when every shape is known (torch meta-device models: memory on device, default
        cpu; parameters no recorded init covers get their module's own reset_parameters()).
        """
        reason = self.capabilities.get(DEFERRED)
        if reason and not self.initialized:
            raise errors.UnsupportedError(f"{self.backend} cannot materialize deferred parameters: {reason}")
        check_example_inputs(example_inputs)
        if not example_inputs:
            ParamAPI(self._model)._structure_known()
        unknown = [self._rel(e.name) for e in self._unique() if None in e.slot.shape]
        if unknown and not example_inputs:
            raise errors.DeferredInitializationError(f"pass example inputs, pm.materialize(x): the shapes of "
                                                     f"{errors.quote_all(unknown)} are not known yet")
        self._model.materializing = True
        undo = None
        try:
            allocated = self._model.adapter.allocate(device, self._model.recorded())
            if unknown or not allocated:
                undo = self._model.adapter.materialize(list(example_inputs))
        finally:
            self._model.materializing = False
        try:
            self._model.shapes_known()
        except BaseException:
            if undo is not None:
                undo()
                self._model.index(fresh=True)
            raise
        return self

    def forward(self, *inputs: Any) -> np.ndarray:
        """The whole model's output on inputs, in inference mode, as numpy; a deferred model is refused, not changed."""
        index = self._model.index()
        if index.pending:
            unknown = [n for n in index.pending if n not in index.unallocated]
            what = (f"the shape of {_short(unknown)} is not known: call pm.materialize(example_input) first" if unknown else
                    f"the storage of {_short(index.pending)} is not allocated (the shapes are known): call pm.materialize() first")
            raise errors.DeferredInitializationError(f"pm.forward() does not change the model, and {what}")
        ParamAPI(self._model)._structure_known()
        return self._model.adapter.forward(list(inputs))

    @property
    def channels_last(self) -> bool:
        """True when the framework's convolutions and norms take channels last (Keras by default, Flax)."""
        return self._model.adapter.channels_last()

    def layer_outputs(self, *inputs: Any) -> dict[str, Any]:
        """Each parametrized layer's output on inputs (inference mode, native layout): layer name -> output.

        Names are relative to this view; UnsupportedError where the framework cannot intercept layers.
        """
        layers = {path: node.native for path, node in walk(self._node()) if node.slots}
        try:
            return self._model.adapter.layer_outputs(list(inputs), layers)
        except NotImplementedError as e:
            raise errors.UnsupportedError(str(e)) from e

    def grads(self, *inputs: Any, loss: Callable[[Any], Any] | None = None) -> dict[str, np.ndarray]:
        """One forward and backward pass: name -> gradient of each trainable parameter.

        The default loss is the sum of the output; for a mapping or dataclass output (transformers ModelOutput, Keras
        dict outputs) the sum of its first tensor. Give loss=lambda out: ... (a scalar) for anything else.
        """
        if not self.initialized:
            self[self.pending("any")[0]]._ready()
        adapter = self._model.adapter
        adapter.compute_grads(list(inputs), loss)
        out = {}
        for e in self._unique():
            if e.slot.trainable:
                g = adapter.pass_grad(e.slot)
                if g is not None:
                    out[self._rel(e.name)] = g
        return out
