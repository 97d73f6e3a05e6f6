"""The MXNet Gluon adapter: `mxnet.gluon.Block` and `HybridBlock`, hybridized or not, on MXNet 1.9.1.

Canonical names follow Gluon's structural names (`Block._children` keys, as `save_parameters`
writes them) with `gamma`/`beta` read as `weight`/`bias`. Gluon already stores dense `(out, in)`
and conv `(out, in, *k)`, so the layout is canonical. Deferred parameters (a 0 or -1 dimension)
get their recorded initializers through a Gluon `Initializer` that Gluon itself calls when it
finishes the deferred init, whether the first forward is the user's or `materialize`'s.
"""
from __future__ import annotations

import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from unified_params import errors
from unified_params.adapter import EMPTY_BATCH, UNKNOWN_STRUCTURE, Adapter, DeferredHooks, Node, Slot
from unified_params.backends.mxnet_import import import_mxnet
from unified_params.freshness import Contents, identical
from unified_params.inputs import describe, empty_batch, float_dtype, map_arrays
from unified_params.layout import shape_to_native
from unified_params.lazy import LazyModule
from unified_params.locate import walk as walk_nodes
from unified_params.naming import Group, attribute_paths, group_children, unregistered
from unified_params.outputs import loss_target
from unified_params.rules import Leaf, Unlisted, leaf_of, ordered_leaves

from .mxnet_rules import RULES

_HOOKS = "_unified_params_hooks"
_PARAM_STATE = ("_data", "_grad", "_deferred_init", "_shape", "_dtype", "_ctx_list", "_ctx_map", "_var")
_BLOCK_STATE = ("_cached_graph", "_cached_op", "_cached_op_args", "_in_format", "_out_format")
_state = threading.local()


class _MXNetModule(LazyModule):
    """The mxnet module, imported on first use through the numpy-2 shim."""

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            module = self.__dict__["_module"] = import_mxnet()
        return module


mx: Any = _MXNetModule("mxnet")


class _Watchers(list):
    """A parameter's watching hooks: they step aside when the parameter is pickled or copied (copies get none)."""

    def __reduce__(self) -> tuple:
        return _Watchers, ()

    def __deepcopy__(self, memo: dict) -> _Watchers:
        return _Watchers()


class _Capsule:
    """Hands a legacy DLPack capsule to np.from_dlpack."""

    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


class _Writable:
    """An __array_interface__ over a read-only array's memory, marked writable; keeps that array alive."""

    def __init__(self, array: np.ndarray) -> None:
        self.base = array
        self.__array_interface__ = dict(array.__array_interface__, data=(array.ctypes.data, False))


def _memory(array: Any, write: bool) -> np.ndarray | None:
    """The NDArray's own CPU memory as numpy through DLPack (waits for pending engine work), or None."""
    try:
        if array.context.device_type != "cpu" or array.stype != "default":
            return None
        capsule = array.to_dlpack_for_write() if write else array.to_dlpack_for_read()
        out = np.from_dlpack(_Capsule(capsule))
    except (AttributeError, TypeError, ValueError, BufferError, RuntimeError, mx.base.MXNetError):
        return None
    if out.shape != tuple(array.shape) or out.dtype != np.dtype(array.dtype):
        return None
    return np.asarray(_Writable(out)) if write else out


def _known(param: Any) -> tuple[int | None, ...]:
    """Gluon's shape with its unknown dimensions (0, or -1 in numpy-shape mode) as None."""
    return tuple(None if d in (0, -1) else int(d) for d in (param.shape or ()))


def _own_params(block: Any) -> list[tuple[str, Any]]:
    """(native name, Parameter) for the block's own parameters: registered attributes, then any others of its dict."""
    own = list(block._reg_params.items())
    seen = {id(p) for _, p in own}
    prefix = block.params.prefix
    for name, p in block.params.items():
        if id(p) not in seen:
            own.append((name[len(prefix):] if prefix and name.startswith(prefix) else name, p))
    return own


def _children(block: Any) -> list[tuple[str, Any]]:
    """(key, child or Group): registered children by name, those also held in a list/dict attribute as attr.i/attr.key.

    Blocks held in a list or dict attribute but never registered are invisible to Gluon (no parameters are
    collected, saved or trained): they get a warning naming them.
    """
    attrs = [(k, v) for k, v in vars(block).items() if not k.startswith("_")]
    registered = block._children
    lost = unregistered(attrs, _is_block, {id(c) for c in registered.values()})
    if lost:
        warnings.warn(f"{type(block).__name__} holds blocks that Gluon does not know of: {', '.join(lost)}; "
                      f"register them with register_child(block, name) or their parameters are neither trained "
                      f"nor saved", stacklevel=4)
    if not attrs:
        return list(registered.items())
    return group_children(list(registered.items()), attribute_paths(attrs, _is_block), dict(attrs))


def _is_block(value: Any) -> bool:
    return isinstance(value, mx.gluon.Block)


def _walk(block: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, block) for the block and its descendants in container order; a shared block once per use."""
    yield path, block
    for key, child in block._children.items():
        yield from _walk(child, (*path, key))


def _unique_params(model: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for _, block in _walk(model):
        for _, p in _own_params(block):
            seen.setdefault(id(p), p)
    return list(seen.values())


@contextmanager
def _bridge_paused() -> Iterator[None]:
    """Inside materialize Gluon initializes natively; the core applies its records after success, so a failure consumes none."""
    depth = getattr(_state, "paused", 0)
    _state.paused = depth + 1
    try:
        yield
    finally:
        _state.paused = depth


def _bridge_initializer(original: Any, param: Any) -> Any:
    """A Gluon Initializer giving param the value the recorded unified_params initializers give, else original's."""
    hooks = param.__dict__.get(_HOOKS, [])

    class RecordedInit(mx.init.Initializer):
        def _init_weight(self, desc: Any, arr: Any) -> None:
            value = None
            for h in hooks:
                v = h.initial_value(id(param), tuple(arr.shape), np.dtype(arr.dtype).name)
                value = v if v is not None else value
            if value is None:
                mx.init.create(original)._init_weight(desc, arr)
            else:
                arr[:] = np.ascontiguousarray(value)

    return RecordedInit()


def _install_bridge() -> None:
    """Wrap Parameter._finish_deferred_init and initialize once: watched parameters get their recorded values,
    unless the user's own initialize() or set_data() came after the records (the later call wins)."""
    Parameter = mx.gluon.Parameter
    if getattr(Parameter._finish_deferred_init, "_unified_params", False):
        return
    finish, initialize = Parameter._finish_deferred_init, Parameter.initialize

    def _finish_deferred_init(self: Any) -> None:
        saved = self._deferred_init
        if self.__dict__.get(_HOOKS) and self._deferred_init and not getattr(_state, "paused", 0):
            init, ctx, default_init, data = self._deferred_init
            if data is None:
                self._deferred_init = (_bridge_initializer(init, self), ctx, default_init, data)
            else:
                _native_init(self)
        try:
            finish(self)
        except BaseException:
            if self._data is None:
                self._deferred_init = saved  # a failed recorded initializer fails again on the next forward
            raise

    def _initialize(self: Any, *args: Any, **kwargs: Any) -> None:
        force = kwargs.get("force_reinit", args[3] if len(args) > 3 else False)
        if self._data is None or force:
            _native_init(self)
        initialize(self, *args, **kwargs)

    for new, old in ((_finish_deferred_init, finish), (_initialize, initialize)):
        new._unified_params = True  # type: ignore[attr-defined]
        new.__doc__ = old.__doc__
    Parameter._finish_deferred_init = _finish_deferred_init
    Parameter.initialize = _initialize


def _native_init(param: Any) -> None:
    """The user's own initialization of a watched parameter: its records are dropped (outside materialize)."""
    if not getattr(_state, "paused", 0):
        for h in param.__dict__.get(_HOOKS, []):
            h.native_init(id(param))


def _containers(block: Any) -> tuple[Any, Any, Any]:
    """The dicts tree() reads a block's children and parameters from."""
    return block._children, block._reg_params, block.params._params


def _natives(node: Node) -> list[Any]:
    """The native object of every node: blocks, and the lists and dicts that group children under an attribute."""
    out, stack = [], [node]
    while stack:
        node = stack.pop()
        out.append(node.native)
        stack.extend(node.children)
    return out


def _attributes(param: Any) -> tuple[Any, ...]:
    return param._dtype, param._grad_req, param._shape, param._data is None


class _Stamp:
    """The blocks an index was built from, what their dicts held, and each parameter's dtype, grad_req and shape."""

    def __init__(self, natives: list[Any], params: list[Any] | None) -> None:
        """natives: the blocks and the lists and dicts grouping children; params None for a listing (names only)."""
        self.blocks = [n for n in natives if isinstance(n, mx.gluon.Block)]
        self.dicts = [d for b in self.blocks for d in _containers(b)]
        groups = [n for n in natives if isinstance(n, (list, tuple, dict))]
        self.contents = Contents(self.dicts + [g for g in groups if isinstance(g, dict)],
                                 [g for g in groups if not isinstance(g, dict)])
        self.params = params
        self.attributes = None if params is None else list(map(_attributes, params))

    def changed(self, attributes: bool) -> bool:
        if not identical([d for b in self.blocks for d in _containers(b)], self.dicts) or self.contents.changed():
            return True
        return attributes and (self.params is None or list(map(_attributes, self.params)) != self.attributes)


class _Snapshot:
    """Every attribute Gluon changes while it materializes, to put back after a failed attempt."""

    def __init__(self, params: list[Any], blocks: list[Any]) -> None:
        self.items = [(o, {a: o.__dict__[a] for a in names if a in o.__dict__})
                      for objs, names in ((params, _PARAM_STATE), (blocks, _BLOCK_STATE)) for o in objs]

    def restore(self) -> None:
        for obj, attrs in self.items:
            obj.__dict__.update(attrs)


class MXNetAdapter(Adapter):
    """unified_params adapter for MXNet Gluon blocks."""

    name = "mxnet"
    roots = ("mxnet",)
    distribution = "mxnet"
    extra = "mxnet"
    model_types = "mxnet.gluon.Block"
    examples = "unified_params.backends.mxnet_examples"
    structures = "unified_params.backends.mxnet_structures"
    capabilities: dict[str, str] = {
        UNKNOWN_STRUCTURE: "Gluon blocks register their children and parameters when they are constructed: the "
                           "structure is always known",
        EMPTY_BATCH: "Gluon reads a dimension of 0 as 'not known yet' and its kernels reject empty arrays: "
                       "give at least one example",
    }

    def __init__(self, model: Any, variables: Any = None) -> None:
        super().__init__(model, variables)
        self._hooks: list[DeferredHooks] = []
        self._grads: dict[int, tuple[Any, np.ndarray]] = {}

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        """True for any mxnet.gluon.Block (MXNet is already imported when such an object exists)."""
        module = sys.modules.get("mxnet")
        return module is not None and isinstance(model, module.gluon.Block)

    def tree(self) -> Node:
        """Blocks as nodes keyed by their Gluon child names; each block's own parameters as slots."""
        return self._node("", self.model)

    def _node(self, key: str, block: Any) -> Node:
        own = _own_params(block)
        for _, p in own:
            self._attach(p)
        rule = RULES.for_layer(block)
        slots = [self._slot(leaf_of(rule, name), p) for name, p in own]
        children = []
        for child_key, child in _children(block):
            if isinstance(child, Group):
                children.append(Node(child_key, child.container, label=type(child.container).__name__,
                                     children=[self._node(k, c) for k, c in child.members]))
            else:
                children.append(self._node(child_key, child))
        return Node(key=key, native=block, children=children, slots=slots, label=type(block).__name__,
                    layer_type=rule and rule.layer_type, rule=rule)

    def listing(self) -> tuple[list[str], _Stamp] | None:
        """The names tree() would give, without slots (a parameter's name does not wait for its shape)."""
        names: list[str] = []
        natives: list[Any] = []

        def visit(block: Any, prefix: str) -> None:
            natives.append(block)
            leaves = ordered_leaves(RULES.for_layer(block), tuple(name for name, _ in _own_params(block)))
            names.extend([prefix + leaf for leaf in leaves])
            for key, child in _children(block):
                if isinstance(child, Group):
                    natives.append(child.container)
                    for k, c in child.members:
                        visit(c, f"{prefix}{key}.{k}.")
                else:
                    visit(child, f"{prefix}{key}.")

        try:
            visit(self.model, "")
        except Unlisted:
            return None
        return list(dict.fromkeys(names)), _Stamp(natives, None)

    def stamp(self, root: Node) -> _Stamp:
        """Blocks' _children, _reg_params and ParameterDict contents, and each parameter's dtype, grad_req, shape."""
        return _Stamp(_natives(root), _unique_params(root.native))

    def changed(self, stamp: _Stamp, attributes: bool = True) -> bool:
        return stamp.changed(attributes)

    @staticmethod
    def _slot(leaf: Leaf, param: Any) -> Slot:
        return Slot(
            leaf=leaf.name,
            kind=leaf.kind,
            layout=leaf.layout,
            native_name=param.name,
            ref=param,
            storage=id(param),
            shape=_known(param),
            dtype=np.dtype(param.dtype).name,
            trainable=param.grad_req != "null",
            initialized=param._data is not None,
        )

    def native(self, slot: Slot) -> Any:
        """The gluon.Parameter behind the slot."""
        return slot.ref

    def read(self, slot: Slot) -> np.ndarray:
        """A numpy copy of the parameter (its first context's copy)."""
        return slot.ref.list_data()[0].asnumpy()

    def view(self, slot: Slot) -> np.ndarray:
        """The first context's memory, read-only, without a copy on CPU."""
        view = _memory(slot.ref.list_data()[0], write=False)
        return self.read(slot) if view is None else view

    def fill(self, slot: Slot, fn: Callable[[np.ndarray], None]) -> None:
        """fn writes the first context's memory in place; other contexts get a copy."""
        data = slot.ref.list_data()
        out = _memory(data[0], write=True)
        if out is None:
            super().fill(slot, fn)
            return
        fn(out)
        for other in data[1:]:
            data[0].copyto(other)

    def write(self, slot: Slot, value: np.ndarray) -> None:
        """Written in place into every context's array, so existing data() handles see it."""
        param = slot.ref
        data = param.list_data()
        out = _memory(data[0], write=True)
        if out is not None:
            np.copyto(out, value, casting="unsafe")
            for other in data[1:]:
                data[0].copyto(other)
            return
        like = data[0]
        array = np.ascontiguousarray(value, dtype=np.dtype(param.dtype))
        if isinstance(like, mx.np.ndarray):
            param.set_data(mx.np.array(array, dtype=array.dtype, ctx=like.ctx))
        else:
            param.set_data(mx.nd.array(array, ctx=like.context, dtype=array.dtype))

    def grad(self, slot: Slot) -> np.ndarray | None:
        """The gradient Gluon's own backward wrote when there is one, else the last pm.grads result."""
        native = _native_grad(slot.ref)
        if native is not None:
            return native
        return self.pass_grad(slot)

    def pass_grad(self, slot: Slot) -> np.ndarray | None:
        own = self._grads.get(id(slot.ref))
        return None if own is None or own[0] is not slot.ref else own[1].copy()

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """autograd.record (predict mode, like forward) + backward into zeroed buffers; Gluon's own gradients put back.

        With grad_req="add" the buffers are accumulators: they are saved, zeroed for the pass and restored after it.
        """
        params = [p for p in _unique_params(self.model) if p.grad_req != "null" and p._grad is not None]
        saved = [(p, _grad_state(p)) for p in params]
        try:
            for p in params:
                for g in p.list_grad():
                    g[:] = 0
                for d in p.list_data():
                    d._fresh_grad = False
            args = self._inputs(inputs)
            with mx.autograd.record(train_mode=False):
                out = self.model(*args)
                value = loss(out) if loss is not None else sum(
                    o.sum() for o in _outputs(loss_target(out, lambda v: isinstance(v, mx.nd.NDArray))))
            value.backward()
            found = {id(p): (p, _native_grad(p)) for p in params}
        finally:
            for p, state in saved:
                _restore_grad_state(p, state)
        self._grads = {key: (p, g) for key, (p, g) in found.items() if g is not None}

    def layer_names(self, root: Node) -> dict[str, tuple[str, ...]]:
        """Each block's Gluon name (its prefix without the trailing underscore: "resnetv10_stage1_conv0")."""
        mx = import_mxnet()
        return {path: (node.native.name,) for path, node in walk_nodes(root) if isinstance(node.native, mx.gluon.Block)}

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """Gluon forward hooks on the given blocks for one predict-mode pass (not inside a hybridized graph)."""
        if getattr(self.model, "_active", False):
            raise NotImplementedError("a hybridized Gluon block runs as one graph, so its layers cannot be "
                                      "intercepted: compare before net.hybridize(), or after net.hybridize(active=False)")
        out: dict[str, np.ndarray] = {}
        handles = []
        for key, block in layers.items():
            def record(block: Any, args: Any, output: Any, key: str = key) -> None:
                first = output[0] if isinstance(output, (list, tuple)) else output
                if key not in out:
                    out[key] = first.asnumpy()
            handles.append(block.register_forward_hook(record))
        try:
            self.forward(inputs)
        finally:
            for handle in handles:
                handle.detach()
        return {key: out[key] for key in layers if key in out}

    def forward(self, inputs: Sequence[Any]) -> np.ndarray:
        """The model's output as numpy, in predict mode and outside autograd recording."""
        args = self._inputs(inputs)
        with mx.autograd.pause(train_mode=False):
            try:
                out = self.model(*args)
            except RuntimeError as e:
                if "has not been initialized" not in str(e):
                    raise
                raise errors.DeferredInitializationError(
                    f"the MXNet model has parameters that were never initialized: call "
                    f"pm.materialize(example_input) or net.initialize() first ({e})") from e
        outs = [o.asnumpy() for o in _outputs(out)]
        return outs[0] if len(outs) == 1 else tuple(outs)  # type: ignore[return-value]

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        """Initialize what was never initialized, then one checked forward; on any misfit, undo it all."""
        params = _unique_params(self.model)
        blocks = list({id(b): b for _, b in _walk(self.model)}.values())
        paths: dict[int, str] = {}
        for path, block in _walk(self.model):
            paths.setdefault(id(block), ".".join(path))
        active = {id(b): b._active for b in blocks if isinstance(b, mx.gluon.HybridBlock)}
        snapshot = _Snapshot(params, blocks)
        current: list[str] = []
        handles = [b.register_forward_pre_hook(_checker(paths[id(b)], current))
                   for b in blocks if b._reg_params]
        try:
            with _bridge_paused(), mx.autograd.pause(train_mode=False):
                for b in blocks:
                    if id(b) in active:
                        b._active = False
                for p in params:
                    if p._data is None and not p._deferred_init:
                        p.initialize()
                if inputs:
                    self.model(*self._inputs(inputs))
                for p in params:
                    if p._data is None and _known(p) and None not in _known(p):
                        p._finish_deferred_init()
        except errors.UnifiedParamsError:
            snapshot.restore()
            raise
        except (mx.base.MXNetError, ValueError, AssertionError, TypeError) as e:
            snapshot.restore()
            where = f"layer {current[-1]!r}" if current else "the model"
            what = "MXNet cannot infer shapes from" if "shape" in str(e).lower() else "the model rejected"
            raise errors.ShapeMismatchError(
                f"{where}: {what} inputs of shape {describe(inputs)}: {_first_line(e)}; the model is unchanged") from e
        except BaseException:
            snapshot.restore()
            raise
        finally:
            for h in handles:
                h.detach()
            for b in blocks:
                if id(b) in active:
                    b._active = active[id(b)]
        return snapshot.restore

    def settle(self, pairs: Sequence[tuple[Slot, tuple[int, ...]]]) -> Callable[[], None]:
        """Parameters whose shape Gluon defers take the checkpoint's shapes and storage, as Gluon's own
        load_parameters does (Parameter._load_init); recorded initializers are not run (the load writes next)."""
        params = [slot.ref for slot, _ in pairs]
        snapshot = _Snapshot(params, [])
        try:
            with _bridge_paused():
                for slot, shape in pairs:
                    p = slot.ref
                    if p._data is None and not p._deferred_init:
                        p.initialize()
                    p._load_init(mx.nd.zeros(shape_to_native(shape, slot.layout), dtype=p.dtype), None)
        except BaseException:
            snapshot.restore()
            raise
        return snapshot.restore

    def watch(self, hooks: DeferredHooks) -> None:
        """Gluon's own deferred init (first forward, or initialize with known shapes) asks hooks for values."""
        if all(h is not hooks for h in self._hooks):
            self._hooks.append(hooks)
        _install_bridge()
        for p in _unique_params(self.model):
            self._attach(p)

    def _attach(self, param: Any) -> None:
        """Give param this adapter's hooks (also parameters of layers added after wrap, found by tree())."""
        if self._hooks:
            mine = param.__dict__.setdefault(_HOOKS, _Watchers())
            mine.extend(h for h in self._hooks if all(h is not m for m in mine))

    def _inputs(self, inputs: Sequence[Any]) -> list[Any]:
        """Native arrays on the model's context (tuples, lists and dicts kept); floating ones in the model's float dtype."""
        if empty_batch(inputs):
            raise errors.ShapeMismatchError(
                f"inputs of shape {describe(inputs)} hold a batch of 0 examples: {self.capabilities[EMPTY_BATCH]}")
        params = _unique_params(self.model)
        ready = [p for p in params if p._data is not None]
        ctx = ready[0].list_ctx()[0] if ready else mx.context.current_context()
        floating = float_dtype([p.dtype for p in params])

        def convert(x: Any) -> Any:
            if isinstance(x, mx.nd.NDArray):
                return x.astype(floating) if floating is not None and np.dtype(x.dtype).kind == "f" and x.dtype != floating else x
            if x is None or isinstance(x, str):
                return x
            a = np.asarray(x)
            if a.dtype.kind == "f" and floating is not None and a.dtype != floating:
                a = a.astype(floating)
            if mx.util.is_np_array():
                return mx.np.array(a, dtype=a.dtype, ctx=ctx)
            return mx.nd.array(a, ctx=ctx, dtype=a.dtype)

        return [map_arrays(x, convert) for x in inputs]

    def set_trainable(self, owner: Any, slot: Slot, trainable: bool) -> bool:
        """grad_req 'write' or 'null'; a parameter Gluon made not differentiable (running statistics) stays 'null'."""
        if not slot.ref._differentiable:
            return False
        slot.ref.grad_req = "write" if trainable else "null"
        return True

    def share(self, owner: Any, slot: Slot, source: Slot) -> None:
        """Replace the Parameter in the block's registry, attribute and ParameterDict; cached graphs are rebuilt."""
        for attr, param in list(owner._reg_params.items()):
            if param is slot.ref:
                owner._reg_params[attr] = source.ref
                object.__setattr__(owner, attr, source.ref)
        params = owner.params._params
        if params.get(slot.ref.name) is slot.ref:
            del params[slot.ref.name]
        for _, block in _walk(self.model):
            if hasattr(block, "_clear_cached_op"):
                block._clear_cached_op()


def _native_grad(param: Any) -> np.ndarray | None:
    """Gluon's gradient once a backward pass wrote one; Gluon's buffers start as zeros.

    Backward marks the data `_fresh_grad` until a Trainer step clears it; a buffer that is not
    all zeros was written too (e.g. before that step), while zero_grad() makes it None again.
    """
    if param.grad_req == "null" or param._grad is None:
        return None
    grads = [g.asnumpy() for g in param.list_grad()]
    if not any(d._fresh_grad for d in param.list_data()) and not any(g.any() for g in grads):
        return None
    return grads[0] if len(grads) == 1 else np.sum(grads, axis=0)


def _grad_state(param: Any) -> tuple[list[Any], list[np.ndarray], list[bool]]:
    """Gluon's gradient buffers of param, a copy of their values and the data's fresh-gradient flags."""
    buffers = list(param.list_grad())
    return buffers, [g.asnumpy() for g in buffers], [bool(d._fresh_grad) for d in param.list_data()]


def _restore_grad_state(param: Any, state: Any) -> None:
    buffers, values, fresh = state
    for g, v in zip(buffers, values):
        g[:] = v
    for d, f in zip(param.list_data(), fresh):
        d._fresh_grad = f


def _outputs(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Stack trace")]
    return re.sub(r"\s+", " ", " ".join(lines[:2]))[:400]


def _checker(path: str, current: list[str]) -> Callable[[Any, Any], None]:
    """A forward pre-hook that compares the layer's known parameter shapes with those its input implies."""

    def check(block: Any, args: Any) -> None:
        if not all(isinstance(a, mx.nd.NDArray) for a in args):
            return
        current.append(path)
        implied = _implied_shapes(block, args)
        for attr, param in block._reg_params.items():
            need = implied.get(attr)
            have = param.shape
            if not need or not have or len(need) != len(have):
                continue
            for k, (h, n) in enumerate(zip(have, need)):
                if h not in (0, -1) and n not in (0, -1) and h != n:
                    shapes = ", ".join(str(tuple(a.shape)) for a in args)
                    raise errors.ShapeMismatchError(
                        f"layer {path!r} ({type(block).__name__}): its {leaf_of(RULES.for_layer(block), attr).name} "
                        f"{param.name} has shape {tuple(have)} but an input of shape {shapes} needs "
                        f"{tuple(need)}: expected size {h}, got {n} (dimension {k}); give inputs of the "
                        f"size the layer was built for, or build a new model for the new size")

    return check


def _implied_shapes(block: Any, args: Any) -> dict[str, tuple[int, ...]]:
    """The shapes MXNet's own shape inference gives the block's parameters for these inputs alone."""
    if not isinstance(block, mx.gluon.HybridBlock) or not args:
        return {}
    sym = mx.sym
    np_mode = mx.util.is_np_array()

    def var(name: str) -> Any:
        v = sym.var(name)
        return v.as_np_ndarray() if np_mode else v

    try:
        with mx.name.NameManager(), mx.attribute.AttrScope():
            data = [var(f"data{i}") for i in range(len(args))]
            names = {k: f"__unified_params_{k}" for k in block._reg_params}
            out = block.hybrid_forward(sym, *data, **{k: var(v) for k, v in names.items()})
            outs = [o.as_nd_ndarray() if np_mode else o for o in _outputs(out)]
            group = sym.Group(outs)
            given = {f"data{i}": tuple(a.shape) for i, a in enumerate(args)}
            arg_shapes, _, aux_shapes = group.infer_shape_partial(**given)
    except Exception:
        return {}
    if arg_shapes is None:
        return {}
    found = dict(zip(group.list_arguments() + group.list_auxiliary_states(), list(arg_shapes) + list(aux_shapes or [])))
    return {k: tuple(found[v]) for k, v in names.items() if found.get(v)}
