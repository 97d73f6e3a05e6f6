"""PyTorch adapter: nn.Module trees, Lazy* modules, buffers such as BatchNorm's running statistics."""
from __future__ import annotations

import contextlib
import functools
import itertools
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from unified_params.adapter import UNALLOCATED, UNKNOWN_STRUCTURE, Adapter, DeferredHooks, Node, Slot
from unified_params.inputs import map_arrays
from unified_params.lazy import lazy
from unified_params.outputs import loss_target
from unified_params.rules import Unlisted, leaf_of, ordered_leaves
from unified_params.sharding import Sharding

from . import _torch_dtensor as dtensor
from . import torch_deferred as deferred
from . import torch_stamps as stamps
from .torch_deferred import ShapesKnown  # noqa: F401  (pickles of models hooked by older versions name it here)
from .torch_rules import RULES

torch = lazy("torch")


@functools.cache
def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _to_numpy(tensor: Any) -> np.ndarray:
    """A numpy copy; of a DTensor, the whole value (torch's own all-gather: every process of its mesh must call)."""
    if dtensor.is_dtensor(tensor):
        tensor = tensor.full_tensor()
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return tensor.numpy().copy()


def _to_tensor(value: np.ndarray) -> Any:
    if value.dtype.name == "bfloat16":
        return torch.from_numpy(np.require(value.view(np.int16), requirements=["C", "W"])).view(torch.bfloat16)
    return torch.from_numpy(np.require(value, requirements=["C", "W"]))


def _memory(tensor: Any) -> np.ndarray | None:
    """The tensor's own CPU memory as a writable numpy array, None where torch cannot hand it out."""
    t = tensor.detach()
    if t.device.type != "cpu" or t.dtype == torch.bfloat16 or not t.is_contiguous():
        return None
    return t.numpy()


def _copy(tensor: Any, value: np.ndarray) -> None:
    """tensor[...] = value (canonical numpy), without autograd."""
    with torch.no_grad():
        tensor.copy_(_source(np.asarray(value)))


def _source(value: np.ndarray) -> Any:
    """A tensor over value's memory (any strides, read-only allowed) for copy_ to read; a copy where torch cannot."""
    if value.dtype.name == "bfloat16" or value.dtype.byteorder == ">":
        return _to_tensor(value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(value)
    except (ValueError, TypeError, RuntimeError):
        return _to_tensor(value)


def _as_input(x: Any, floating: Any) -> Any:
    """A tensor for x (numpy, list or tensor); floating values take the model's floating dtype."""
    if x is None or isinstance(x, str):
        return x
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(floating) if floating is not None and t.is_floating_point() and t.dtype != floating else t


class TorchAdapter(Adapter):
    """Wraps a torch.nn.Module."""

    name = "torch"
    roots = ("torch",)
    distribution = "torch"
    extra = "torch"
    model_types = "torch.nn.Module"
    examples = "unified_params.backends.torch_examples"
    structures = "unified_params.backends.torch_structures"
    capabilities: dict[str, str] = {
        UNKNOWN_STRUCTURE: "torch modules register their submodules and parameters when they are constructed: the "
                           "structure is always known",
        UNALLOCATED: "parameters on the meta device (known shape, no storage) are not handled yet: only Lazy "
                     "modules wait, for their shape",
    }

    def __init__(self, model: Any, variables: Any = None) -> None:
        super().__init__(model, variables)
        self._grads: dict[int, tuple[Any, np.ndarray]] = {}

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        return isinstance(model, torch.nn.Module)

    def tree(self) -> Node:
        return self._node("", self.model, "")

    def _node(self, key: str, module: Any, prefix: str) -> Node:
        rule = RULES.for_layer(module)
        node = Node(key, module, label=type(module).__name__, layer_type=rule and rule.layer_type, rule=rule)
        mixin = torch.nn.parameter.UninitializedTensorMixin
        before: dict[str, tuple] | None = None
        tensors = [(n, p, p.requires_grad) for n, p in module._parameters.items() if p is not None]
        tensors += [(n, b, False) for n, b in module._buffers.items()
                    if b is not None and n not in module._non_persistent_buffers_set]
        for name, t, trainable in tensors:
            leaf = leaf_of(rule, name)
            pending = isinstance(t, mixin)
            if pending and before is None:
                before = {lf.native: shape for lf, shape in rule.before_data(module)} if rule else {}
            shape = before.get(name, (None,)) if pending else tuple(t.shape)
            node.slots.append(Slot(leaf.name, prefix + name, t, id(t), shape, _dtype_name(t.dtype), trainable=trainable,
                                   kind=leaf.kind, initialized=not pending and not t.is_meta,
                                   layout=leaf.layout))
        for child_key, child in module._modules.items():
            if child is not None:
                node.children.append(self._node(child_key, child, f"{prefix}{child_key}."))
        return node

    def listing(self) -> tuple[list[str], stamps.Sizes] | None:
        """The names tree() would give, from the modules' own dicts (names do not wait for shapes: no tensor read)."""
        stamps.count_registrations()
        rule_of = RULES.resolver()
        names: list[str] = []
        modules: list[Any] = []

        def visit(module: Any, prefix: str) -> None:
            modules.append(module)
            rule = rule_of(module)
            params, buffers = module._parameters, module._buffers
            natives = [n for n, p in params.items() if p is not None]
            if buffers:
                skip = module._non_persistent_buffers_set
                natives += [n for n, b in buffers.items() if b is not None and n not in skip]
            names.extend([prefix + leaf for leaf in ordered_leaves(rule, tuple(natives))])
            for key, child in module._modules.items():
                if child is not None:
                    visit(child, f"{prefix}{key}.")

        try:
            visit(self.model, "")
        except Unlisted:
            return None
        return list(dict.fromkeys(names)), stamps.Sizes(modules)

    def stamp(self, root: Node) -> stamps.Stamp:
        """Every module's _modules/_parameters/_buffers dicts and contents, and each slot tensor's attributes."""
        return stamps.stamp(root, list({id(t): t for t in _slot_refs(root)}.values()))

    def changed(self, stamp: stamps.Stamp, attributes: bool = True) -> bool:
        return stamp.changed(attributes)

    def current(self, stamp: stamps.Stamp, nodes: Sequence[Node], slot: Slot, attributes: bool = True) -> bool:
        parent = nodes[0].native
        for node in nodes[1:]:
            if parent._modules.get(node.key) is not node.native:
                return False
            parent = node.native
        tensor, attr = slot.ref, slot.native_name.rpartition(".")[2]
        if parent._parameters.get(attr, parent._buffers.get(attr)) is not tensor:
            return False
        if not attributes:
            return True
        trainable = isinstance(tensor, torch.nn.Parameter) and tensor.requires_grad
        same = _dtype_name(tensor.dtype) == slot.dtype and tuple(tensor.shape) == slot.shape
        return same and trainable == slot.trainable

    def read(self, slot: Slot) -> np.ndarray:
        return _to_numpy(slot.ref)

    def write(self, slot: Slot, value: np.ndarray) -> None:
        with torch.no_grad():
            if dtensor.is_dtensor(slot.ref):
                dtensor.write(slot.ref, slot.native_name, value, _copy)
            else:
                slot.ref.copy_(_source(np.asarray(value)))

    def _numpy_view(self, slot: Slot) -> np.ndarray | None:
        return None if dtensor.is_dtensor(slot.ref) else _memory(slot.ref)

    def sharding(self, slot: Slot) -> Sharding | None:
        """A DTensor's mesh, placements and local shard; None for a plain tensor."""
        return dtensor.describe(slot.ref, slot.native_name) if dtensor.is_dtensor(slot.ref) else None

    def writable(self, slot: Slot) -> None:
        """A DTensor with Partial placements holds a pending sum, not a shard: refused before anything is written."""
        ref = getattr(slot, "ref", None)
        if dtensor.is_dtensor(ref):
            dtensor.region(ref, slot.native_name)

    def group(self) -> Any:
        return dtensor.group(self.model)

    def blocks(self, slot: Slot) -> list | None:
        ref = getattr(slot, "ref", None)
        return dtensor.blocks(ref, slot.native_name, _memory, _to_numpy) if dtensor.is_dtensor(ref) else None

    def mesh_axes(self, mesh: Any) -> dict[str, int]:
        return dtensor.mesh_axes(mesh)

    def placement(self, slot: Slot, dims: tuple[tuple[str, ...], ...], mesh: Any) -> Any:
        return (mesh, dtensor.placements(dims, mesh))

    def place(self, slot: Slot, placement: Any) -> None:
        """The parameter becomes a DTensor on the mesh (distribute_tensor), in every module that registers it."""
        dtensor.place(self.model, slot.ref, *placement)

    def view(self, slot: Slot) -> np.ndarray:
        view = self._numpy_view(slot)
        return self.read(slot) if view is None else view

    def fill(self, slot: Slot, fn: Callable[..., None]) -> None:
        """fn writes the tensor's memory; a DTensor's local shard only (fn(block, region)), in place."""
        if dtensor.is_dtensor(slot.ref):
            with torch.no_grad():
                dtensor.fill(slot.ref, slot.native_name, fn, _memory, _copy)
            return
        view = self._numpy_view(slot)
        if view is None:
            super().fill(slot, fn)
        else:
            fn(view)

    def grad(self, slot: Slot) -> np.ndarray | None:
        """The user's own p.grad when there is one, else the last pm.grads result (docs/errors.md, gradients)."""
        g = getattr(slot.ref, "grad", None)
        if g is not None:
            return _to_numpy(g)
        return self.pass_grad(slot)

    def pass_grad(self, slot: Slot) -> np.ndarray | None:
        own = self._grads.get(id(slot.ref))
        return None if own is None or own[0] is not slot.ref else own[1].copy()

    @contextlib.contextmanager
    def _eval(self) -> Iterator[None]:
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """torch.autograd.grad into buffers of our own: p.grad, modes and running statistics stay as they were."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        with self._eval(), torch.enable_grad():
            out = self.model(*self._inputs(inputs))
            value = _sum(loss_target(out, torch.is_tensor)) if loss is None else loss(out)
            grads = torch.autograd.grad(value, params, allow_unused=True) if params else ()
        self._grads = {id(p): (p, _to_numpy(g)) for p, g in zip(params, grads) if g is not None}

    def forward(self, inputs: Sequence[Any]) -> np.ndarray:
        with self._eval(), torch.no_grad():
            return _numpy_tree(self.model(*self._inputs(inputs)))

    def checkpoint_names(self, names: Sequence[str]) -> dict[str, str]:
        """transformers models: the names from_pretrained gives a save_pretrained file's tensors (backends/torch_hf)."""
        from . import torch_hf

        if not torch_hf.is_transformers_model(self.model):
            return {}
        return torch_hf.model_names(self.model, names, set(self.model.state_dict(keep_vars=True)))

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """Forward hooks on the given modules record each one's first output of one inference-mode pass."""
        out: dict[str, np.ndarray] = {}
        handles = []
        for key, module in layers.items():
            def record(module: Any, args: Any, output: Any, key: str = key) -> None:
                first = output if isinstance(output, torch.Tensor) else next(
                    (t for t in torch.utils._pytree.tree_leaves(output) if isinstance(t, torch.Tensor)), None)
                if first is not None and key not in out:
                    out[key] = _to_numpy(first)
            handles.append(module.register_forward_hook(record))
        try:
            with self._eval(), torch.no_grad():
                self.model(*self._inputs(inputs))
        finally:
            for handle in handles:
                handle.remove()
        return {key: out[key] for key in layers if key in out}

    def _inputs(self, inputs: Sequence[Any]) -> list[Any]:
        """Tensors for inputs (tuples, lists and dicts kept), floating ones in the model's floating dtype."""
        tensors = itertools.chain(self.model.parameters(), self.model.buffers())
        floating = next((t.dtype for t in tensors if t.dtype.is_floating_point), None)
        return [map_arrays(x, lambda a: _as_input(a, floating)) for x in inputs]

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        """One checked forward that materializes Lazy modules; on any failure the model is put back as it was."""
        if not inputs:
            return None

        def run() -> None:
            with self._eval(), torch.no_grad():
                self.model(*self._inputs(inputs))

        return deferred.materialize(self.model, inputs, run)

    def allocate(self, device: str | None, recorded: set[Hashable]) -> bool:
        return deferred.allocate(self.model, device, recorded)

    def change_token(self, slot: Slot) -> tuple[Any, Hashable] | None:
        """The tensor and (data_ptr, _version): in-place torch ops bump _version (writes through .data do not)."""
        t = slot.ref
        if not isinstance(t, torch.Tensor) or isinstance(t, torch.nn.parameter.UninitializedTensorMixin) or t.is_meta:
            return None
        try:
            return t, (t.data_ptr(), t._version)
        except (RuntimeError, NotImplementedError):  # tensor subclasses without one storage (DTensor)
            return None

    def settle(self, pairs: Sequence[tuple[Slot, tuple[int, ...]]]) -> Callable[[], None]:
        return deferred.settle(self.model, pairs)

    def watch(self, hooks: DeferredHooks) -> None:
        deferred.watch(self.model, hooks)

    def set_trainable(self, owner: Any, slot: Slot, trainable: bool) -> bool:
        if not isinstance(slot.ref, torch.nn.Parameter):
            return False
        slot.ref.requires_grad_(trainable)
        return True

    def share(self, owner: Any, slot: Slot, source: Slot) -> None:
        for registry in (owner._parameters, owner._buffers):
            for attr, tensor in registry.items():
                if tensor is slot.ref:
                    registry[attr] = source.ref
                    return


def _slot_refs(node: Node) -> Iterator[Any]:
    yield from (slot.ref for slot in node.slots)
    for child in node.children:
        yield from _slot_refs(child)


def _numpy_tree(out: Any) -> Any:
    """A tensor as numpy; a mapping (transformers ModelOutput), tuple or list as the same structure of numpy arrays."""
    if torch.is_tensor(out):
        return _to_numpy(out)
    if isinstance(out, Mapping):
        return {k: _numpy_tree(v) for k, v in out.items() if v is not None}
    if isinstance(out, (tuple, list)):
        return type(out)(_numpy_tree(v) for v in out) if not hasattr(out, "_fields") else out
    return out


def _sum(out: Any) -> Any:
    """The sum of every element of a tensor, or of a tuple or list of tensors."""
    return out.sum() if torch.is_tensor(out) else sum(_sum(o) for o in out)
