"""Gluon's deferred initialization as the MXNet adapter hooks it: recorded initializers reach Gluon through an
Initializer it calls itself, materialize and checkpoint shapes are all or nothing, and a layer that refuses an input
is named."""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from unified_params import errors
from unified_params.adapter import DeferredHooks, Slot
from unified_params.inputs import describe
from unified_params.layout import shape_to_native
from unified_params.rules import leaf_of

from . import mxnet_blocks as blocks
from .mxnet_import import mx
from .mxnet_rules import RULES

HOOKS = "_unified_params_hooks"
_PARAM_STATE = ("_data", "_grad", "_deferred_init", "_shape", "_dtype", "_ctx_list", "_ctx_map", "_var")
_BLOCK_STATE = ("_cached_graph", "_cached_op", "_cached_op_args", "_in_format", "_out_format")
_state = threading.local()


class Watchers(list):
    """A parameter's watching hooks: they step aside when the parameter is pickled or copied (copies get none)."""

    def __reduce__(self) -> tuple:
        return Watchers, ()

    def __deepcopy__(self, memo: dict) -> Watchers:
        return Watchers()


@contextmanager
def bridge_paused() -> Iterator[None]:
    """Inside materialize Gluon initializes natively; the core applies its records after success (a failure consumes
    none)."""
    depth = getattr(_state, "paused", 0)
    _state.paused = depth + 1
    try:
        yield
    finally:
        _state.paused = depth


def _bridge_initializer(original: Any, param: Any) -> Any:
    """A Gluon Initializer giving param the value the recorded unified_params initializers give, else original's."""
    hooks = param.__dict__.get(HOOKS, [])

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


def install_bridge() -> None:
    """Wrap Parameter._finish_deferred_init and initialize once: watched parameters get their recorded values,
    unless the user's own initialize() or set_data() came after the records (the later call wins)."""
    Parameter = mx.gluon.Parameter
    if getattr(Parameter._finish_deferred_init, "_unified_params", False):
        return
    finish, initialize = Parameter._finish_deferred_init, Parameter.initialize

    def _finish_deferred_init(self: Any) -> None:
        saved = self._deferred_init
        if self.__dict__.get(HOOKS) and self._deferred_init and not getattr(_state, "paused", 0):
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
        for h in param.__dict__.get(HOOKS, []):
            h.native_init(id(param))


class Snapshot:
    """Every attribute Gluon changes while it materializes, to put back after a failed attempt."""

    def __init__(self, params: list[Any], blocks: list[Any]) -> None:
        self.items = [(o, {a: o.__dict__[a] for a in names if a in o.__dict__})
                      for objs, names in ((params, _PARAM_STATE), (blocks, _BLOCK_STATE)) for o in objs]

    def restore(self) -> None:
        for obj, attrs in self.items:
            obj.__dict__.update(attrs)


def outputs(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Stack trace")]
    return re.sub(r"\s+", " ", " ".join(lines[:2]))[:400]


def checker(path: str, current: list[str]) -> Callable[[Any, Any], None]:
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
            outs = [o.as_nd_ndarray() if np_mode else o for o in outputs(out)]
            group = sym.Group(outs)
            given = {f"data{i}": tuple(a.shape) for i, a in enumerate(args)}
            arg_shapes, _, aux_shapes = group.infer_shape_partial(**given)
    except Exception:
        return {}
    if arg_shapes is None:
        return {}
    found = dict(zip(group.list_arguments() + group.list_auxiliary_states(), list(arg_shapes) + list(aux_shapes or [])))
    return {k: tuple(found[v]) for k, v in names.items() if found.get(v)}


def materialize(model: Any, inputs: Sequence[Any], convert: Callable[[Sequence[Any]], list[Any]]) -> Callable[[], None]:
    """Initialize what was never initialized, then one checked forward of convert(inputs); on any misfit, undo it all
    and say which layer refused. Returns the undo."""
    params = blocks.unique_params(model)
    members = list({id(b): b for _, b in blocks.walk(model)}.values())
    paths: dict[int, str] = {}
    for path, block in blocks.walk(model):
        paths.setdefault(id(block), ".".join(path))
    active = {id(b): b._active for b in members if isinstance(b, mx.gluon.HybridBlock)}
    snapshot = Snapshot(params, members)
    current: list[str] = []
    handles = [b.register_forward_pre_hook(checker(paths[id(b)], current)) for b in members if b._reg_params]
    try:
        with bridge_paused(), mx.autograd.pause(train_mode=False):
            for b in members:
                if id(b) in active:
                    b._active = False
            for p in params:
                if p._data is None and not p._deferred_init:
                    p.initialize()
            if inputs:
                model(*convert(inputs))
            for p in params:
                if p._data is None and blocks.known(p) and None not in blocks.known(p):
                    p._finish_deferred_init()
    except errors.UnifiedParamsError:
        snapshot.restore()
        raise
    except (mx.base.MXNetError, ValueError, AssertionError, TypeError) as e:
        snapshot.restore()
        where = f"layer {current[-1]!r}" if current else "the model"
        what = "MXNet cannot infer shapes from" if "shape" in str(e).lower() else "the model rejected"
        raise errors.ShapeMismatchError(
            f"{where}: {what} inputs of shape {describe(inputs)}: {first_line(e)}; the model is unchanged") from e
    except BaseException:
        snapshot.restore()
        raise
    finally:
        for h in handles:
            h.detach()
        for b in members:
            if id(b) in active:
                b._active = active[id(b)]
    return snapshot.restore


def settle(pairs: Sequence[tuple[Slot, tuple[int, ...]]]) -> Callable[[], None]:
    """Parameters whose shape Gluon defers take the checkpoint's shapes and storage, as Gluon's own
    load_parameters does (Parameter._load_init); recorded initializers are not run (the load writes next)."""
    snapshot = Snapshot([slot.ref for slot, _ in pairs], [])
    try:
        with bridge_paused():
            for slot, shape in pairs:
                p = slot.ref
                if p._data is None and not p._deferred_init:
                    p.initialize()
                p._load_init(mx.nd.zeros(shape_to_native(shape, slot.layout), dtype=p.dtype), None)
    except BaseException:
        snapshot.restore()
        raise
    return snapshot.restore


def attach(param: Any, hooks: list[DeferredHooks]) -> None:
    """Give param these hooks (once each)."""
    if hooks:
        mine = param.__dict__.setdefault(HOOKS, Watchers())
        mine.extend(h for h in hooks if all(h is not m for m in mine))
