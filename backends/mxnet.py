"""The MXNet Gluon adapter: `mxnet.gluon.Block` and `HybridBlock`, hybridized or not, on MXNet 1.9.1.

Canonical names follow Gluon's structural names (`Block._children` keys, as `save_parameters`
writes them) with `gamma`/`beta` read as `weight`/`bias`. Gluon already stores dense `(out, in)`
and conv `(out, in, *k)`, so the layout is canonical. Deferred parameters (a 0 or -1 dimension)
get their recorded initializers through a Gluon `Initializer` that Gluon itself calls when it
finishes the deferred init, whether the first forward is the user's or `materialize`'s.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from unified_params import errors
from unified_params.adapter import EMPTY_BATCH, UNKNOWN_STRUCTURE, Adapter, DeferredHooks, Node, Slot
from unified_params.inputs import describe, empty_batch, float_dtype, map_arrays
from unified_params.locate import walk as walk_nodes
from unified_params.naming import Group
from unified_params.rules import Leaf, Unlisted, leaf_of, ordered_leaves

from . import mxnet_blocks as blocks
from . import mxnet_deferred as deferred
from . import mxnet_grads as grads
from .mxnet_deferred import Watchers as _Watchers  # noqa: F401  (pickles made by older versions name it here)
from .mxnet_import import mx
from .mxnet_rules import RULES


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
        own = blocks.own_params(block)
        for _, p in own:
            self._attach(p)
        rule = RULES.for_layer(block)
        slots = [self._slot(leaf_of(rule, name), p) for name, p in own]
        children = []
        for child_key, child in blocks.children(block):
            if isinstance(child, Group):
                children.append(Node(child_key, child.container, label=type(child.container).__name__,
                                     children=[self._node(k, c) for k, c in child.members]))
            else:
                children.append(self._node(child_key, child))
        return Node(key=key, native=block, children=children, slots=slots, label=type(block).__name__,
                    layer_type=rule and rule.layer_type, rule=rule)

    def listing(self) -> tuple[list[str], blocks.Stamp] | None:
        """The names tree() would give, without slots (a parameter's name does not wait for its shape)."""
        names: list[str] = []
        natives: list[Any] = []

        def visit(block: Any, prefix: str) -> None:
            natives.append(block)
            leaves = ordered_leaves(RULES.for_layer(block), tuple(name for name, _ in blocks.own_params(block)))
            names.extend([prefix + leaf for leaf in leaves])
            for key, child in blocks.children(block):
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
        return list(dict.fromkeys(names)), blocks.Stamp(natives, None)

    def stamp(self, root: Node) -> blocks.Stamp:
        """Blocks' _children, _reg_params and ParameterDict contents, and each parameter's dtype, grad_req, shape."""
        return blocks.Stamp(blocks.natives(root), blocks.unique_params(root.native))

    def changed(self, stamp: blocks.Stamp, attributes: bool = True) -> bool:
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
            shape=blocks.known(param),
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
        native = grads.native_grad(slot.ref)
        if native is not None:
            return native
        return self.pass_grad(slot)

    def pass_grad(self, slot: Slot) -> np.ndarray | None:
        own = self._grads.get(id(slot.ref))
        return None if own is None or own[0] is not slot.ref else own[1].copy()

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """One predict-mode backward into zeroed Gluon buffers, which get their own values back (mxnet_grads)."""
        self._grads = grads.compute(self.model, lambda: self._inputs(inputs), loss)

    def layer_names(self, root: Node) -> dict[str, tuple[str, ...]]:
        """Each block's Gluon name (its prefix without the trailing underscore: "resnetv10_stage1_conv0")."""
        return {path: (node.native.name,) for path, node in walk_nodes(root) if isinstance(node.native, mx.gluon.Block)}

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """Gluon forward hooks on the given blocks for one predict-mode pass (not inside a hybridized graph)."""
        if getattr(self.model, "_active", False):
            raise NotImplementedError("a hybridized Gluon block runs as one graph, so its layers cannot be "
                                      "intercepted: compare before net.hybridize() or after hybridize(active=False)")
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
        outs = [o.asnumpy() for o in deferred.outputs(out)]
        return outs[0] if len(outs) == 1 else tuple(outs)  # type: ignore[return-value]

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        """Initialize what was never initialized, then one checked forward; on any misfit, undo it all."""
        return deferred.materialize(self.model, inputs, self._inputs)

    def settle(self, pairs: Sequence[tuple[Slot, tuple[int, ...]]]) -> Callable[[], None]:
        return deferred.settle(pairs)

    def watch(self, hooks: DeferredHooks) -> None:
        """Gluon's own deferred init (first forward, or initialize with known shapes) asks hooks for values."""
        if all(h is not hooks for h in self._hooks):
            self._hooks.append(hooks)
        deferred.install_bridge()
        for p in blocks.unique_params(self.model):
            self._attach(p)

    def _attach(self, param: Any) -> None:
        """Give param this adapter's hooks (also parameters of layers added after wrap, found by tree())."""
        deferred.attach(param, self._hooks)

    def _inputs(self, inputs: Sequence[Any]) -> list[Any]:
        """Native arrays on the model's context (tuples, lists and dicts kept); floating ones in the model's dtype."""
        if empty_batch(inputs):
            raise errors.ShapeMismatchError(
                f"inputs of shape {describe(inputs)} hold a batch of 0 examples: {self.capabilities[EMPTY_BATCH]}")
        params = blocks.unique_params(self.model)
        ready = [p for p in params if p._data is not None]
        ctx = ready[0].list_ctx()[0] if ready else mx.context.current_context()
        floating = float_dtype([p.dtype for p in params])

        def convert(x: Any) -> Any:
            if isinstance(x, mx.nd.NDArray):
                cast = floating is not None and np.dtype(x.dtype).kind == "f" and x.dtype != floating
                return x.astype(floating) if cast else x
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
        for _, block in blocks.walk(self.model):
            if hasattr(block, "_clear_cached_op"):
                block._clear_cached_op()


