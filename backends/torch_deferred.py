"""Deferred torch models: Lazy modules materialized by one checked forward (undone on failure), meta-device tensors
given storage, shapes taken from a checkpoint, and the hook that applies recorded initializers once shapes are known."""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from unified_params.adapter import DeferredHooks, Slot
from unified_params.errors import DeferredInitializationError, ShapeMismatchError, UnifiedParamsError, quote_all
from unified_params.inputs import describe
from unified_params.layout import shape_to_native
from unified_params.lazy import lazy

torch = lazy("torch")


class Rollback:
    """What a forward that materializes Lazy modules changes (classes, attributes, hooks, tensors), to put back."""

    def __init__(self, model: Any) -> None:
        mixin = torch.nn.parameter.UninitializedTensorMixin
        modules = [m for m in model.modules() if has_pending(m)]
        self.modules = [(m, m.__class__, dict(vars(m)), {k: dict(v) for k, v in vars(m).items() if isinstance(v, dict)})
                        for m in modules]
        self.tensors = [(t, t.__class__, t.data) for m in modules
                        for t in (*m._parameters.values(), *m._buffers.values()) if isinstance(t, mixin)]
        self.watchers = [(h, h.hooks) for m in modules
                         for h in m._forward_pre_hooks.values() if isinstance(h, ShapesKnown)]

    def restore(self) -> None:
        for watcher, hooks in self.watchers:
            watcher.hooks = hooks
        for t, cls, data in self.tensors:
            t.data = data
            t.__class__ = cls
        for m, cls, attrs, dicts in self.modules:
            m.__class__ = cls
            vars(m).clear()
            vars(m).update(attrs)
            for key, saved in dicts.items():
                attrs[key].clear()
                attrs[key].update(saved)


def materialize(model: Any, inputs: Sequence[Any], run: Callable[[], Any]) -> Callable[[], None]:
    """run() is one inference forward of model on inputs; Lazy modules take their shapes from it. On any failure the
    model is put back as it was and a shape error names the layer that refused; else the undo is returned."""
    stack: list[tuple[str, Any, tuple]] = []
    paths = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}

    def enter(module: Any, args: tuple) -> None:
        stack.append((paths.get(id(module), ""), module, tuple(tuple(a.shape) for a in args if hasattr(a, "shape"))))

    def leave(module: Any, args: tuple, out: Any) -> None:
        stack.pop()

    undo = Rollback(model).restore
    handles = [h for m in model.modules()
               for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        run()
    except BaseException as e:
        undo()
        if isinstance(e, UnifiedParamsError) or not isinstance(e, (RuntimeError, ValueError, TypeError)):
            raise
        raise _mismatch(inputs, stack, e) from e
    finally:
        for h in handles:
            h.remove()
    return undo


def _mismatch(inputs: Sequence[Any], stack: list[tuple[str, Any, tuple]], e: Exception) -> ShapeMismatchError:
    if not stack:
        return ShapeMismatchError(f"the model rejected inputs of shape {describe(inputs)}: {e}; the model is unchanged")
    path, module, shapes = stack[-1]
    weight = module._parameters.get("weight")
    known = (f", but its weight has shape {tuple(weight.shape)}"
             if weight is not None and not isinstance(weight, torch.nn.parameter.UninitializedTensorMixin) else "")
    got = shapes[0] if shapes else "?"
    return ShapeMismatchError(
        f"layer {path or '(root)'!r} ({type(module).__name__}) got input of shape {got}{known}: "
        f"{e}. Give inputs that fit the layer, or rebuild the layer for the new size; the model is unchanged")


def allocate(model: Any, device: str | None, recorded: set[Hashable]) -> bool:
    """Meta-device tensors get memory (model.to_empty), ties kept; modules with a tensor no record covers run their
    own reset_parameters(), checked for every module before any memory is allocated."""
    names = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}
    holders: dict[int, list[tuple[dict, str]]] = {}
    reset: dict[int, Callable[[], None]] = {}
    uncovered: list[str] = []
    for module in model.modules():
        for registry in (module._parameters, module._buffers):
            for attr, t in registry.items():
                if t is None or not t.is_meta:
                    continue
                holders.setdefault(id(t), []).append((registry, attr))
                if id(t) in recorded:
                    continue
                fn = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
                if fn is None:
                    uncovered.append(f"{names.get(id(module), '')}.{attr}".lstrip("."))
                else:
                    reset[id(module)] = fn
    if not holders:
        return False
    if uncovered:
        raise DeferredInitializationError(
            f"call pm.init(...) for {quote_all(uncovered)} before pm.materialize: they are on the meta device, no "
            f"recorded initializer covers them and their module has no reset_parameters()")
    model.to_empty(device=device or "cpu")
    for group in holders.values():
        first = group[0][0][group[0][1]]
        for registry, attr in group[1:]:
            registry[attr] = first
    with torch.no_grad():
        for fn in reset.values():
            fn()
    return True


def settle(model: Any, pairs: Sequence[tuple[Slot, tuple[int, ...]]]) -> Callable[[], None]:
    """Lazy modules' uninitialized tensors take the checkpoint's shapes (UninitializedParameter.materialize, what
    torch's own load_state_dict does); meta-device tensors are refused before any changes."""
    pending = torch.nn.parameter.UninitializedTensorMixin
    meta = [slot.native_name for slot, _ in pairs if not isinstance(slot.ref, pending)]
    if meta:
        raise DeferredInitializationError(
            f"call pm.materialize(device='cpu') before loading: {quote_all(meta)} are on the meta device (known "
            f"shape, no storage); the checkpoint was not loaded")
    rollback = Rollback(model)
    try:
        with torch.no_grad():
            for slot, shape in pairs:
                slot.ref.materialize(shape_to_native(shape, slot.layout))
    except BaseException:
        rollback.restore()
        raise
    return rollback.restore


def watch(model: Any, hooks: DeferredHooks) -> None:
    """Every module still waiting for a shape gets a ShapesKnown pre-hook for these hooks (once)."""
    for module in model.modules():
        watching = (h for h in module._forward_pre_hooks.values() if isinstance(h, ShapesKnown))
        if has_pending(module) and all(h.hooks is not hooks for h in watching):
            known = ShapesKnown(hooks)
            known.handle = module.register_forward_pre_hook(known)


class ShapesKnown:
    """Forward pre-hook of a lazy module: once its shapes are known, apply the recorded initializers, then step aside.

    A failing initializer leaves the hook in place, so the next forward fails the same way. A module-level class,
    not a closure: a model carrying it pickles and deep-copies, and the copy gets an inert hook (no pending records).
    """

    def __init__(self, hooks: DeferredHooks | None) -> None:
        self.hooks, self.handle = hooks, None

    def __call__(self, module: Any, args: Any) -> None:
        if self.hooks is not None and not has_pending(module):
            self.hooks.shapes_known()
            self.hooks = None
            if self.handle is not None:
                self.handle.remove()

    def __reduce__(self) -> tuple:
        return ShapesKnown, (None,)


def has_pending(module: Any) -> bool:
    """True while the module holds an UninitializedParameter or UninitializedBuffer."""
    pending = torch.nn.parameter.UninitializedTensorMixin
    return any(isinstance(t, pending) for t in (*module._parameters.values(), *module._buffers.values()))
