"""The adapter interface: what a backend implements so that the core can manage its parameters.

An adapter is a class registered under the entry-point group ``unified_params.backends``. One
instance wraps one native model. See docs/adapters.md for the contract of each method.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from .dtypes import resolve
from .errors import UnsupportedError
from .layout import Layout
from .regions import Region
from .sharding import Sharding

KNOWN_KINDS = ("weight", "bias", "running_mean", "running_var")
COUNTERS = ("num_batches_tracked",)
"""Kinds that count steps (torch BatchNorm's num_batches_tracked): listed and saved, not parameter values. init skips
them unless kind= names them, num_params leaves them out, and a load carries them only where the target has one."""


def is_counter(name: str) -> bool:
    """True for the canonical name of a step counter (its last part is one of COUNTERS)."""
    return name.rsplit(".", 1)[-1] in COUNTERS

# Capabilities: the keys of Adapter.capabilities, each mapped to the reason the backend cannot do it.
DEFERRED = "deferred"
"""Parameters whose shape is not known yet (deferred / lazy initialization)."""
NATIVE_MATERIALIZE = "native_materialize"
"""The user's own first forward makes shapes known and runs the recorded initializers."""
NATIVE_GRAD = "native_grad"
"""Gradients of the user's own backward pass show in p.grad."""
FREEZE = "freeze"
"""pm.freeze/pm.unfreeze set the framework's own trainability of a parameter."""
TIE = "tie"
"""pm.tie makes one parameter share another's storage after the model is built."""
UNALLOCATED = "unallocated"
"""A parameter can have a known shape and no storage yet (MXNet before initialize()); materialize() allocates it."""
EMPTY_BATCH = "empty_batch"
"""Inputs with a batch of 0 examples materialize and run."""
UNKNOWN_STRUCTURE = "unknown_structure"
"""A layer's parameters can be unknown until the model runs (linen @compact); pm.init records the selection itself."""
LOAD_DEFERRED = "load_deferred"
"""pm.load and load_state_dict into parameters whose shape is not known take the shapes from the state (settle)."""
CAPABILITIES = (DEFERRED, NATIVE_MATERIALIZE, NATIVE_GRAD, FREEZE, TIE, UNALLOCATED, EMPTY_BATCH, UNKNOWN_STRUCTURE,
                LOAD_DEFERRED)


@dataclass
class Slot:
    """One native parameter or buffer, as the adapter found it in the model.

    `shape` is in canonical layout with None for a dimension not known yet. `storage` is equal
    for two slots that share one storage (tied). `ref` is the adapter's own handle. `layout` is the
    transform from native to canonical that the layer's rule declares; None when no rule covers
    the variable (native layout, not known to be canonical: never transformed by a guess).
    """

    leaf: str
    native_name: str
    ref: Any
    storage: Hashable
    shape: tuple[int | None, ...]
    dtype: str
    trainable: bool = True
    kind: str = ""
    initialized: bool | None = None
    layout: Layout | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = self.leaf
        if self.initialized is None:
            self.initialized = all(d is not None for d in self.shape)

    @property
    def numel(self) -> int:
        """The number of native elements behind the slot (its shape must be known)."""
        return math.prod(self.shape)


@dataclass
class Node:
    """One layer or container: its key in its parent, its children in order, its own slots.

    `layer_type` is the canonical layer type its rule declares (`linear`, `conv`, ...), None for a
    container or a layer class without a rule.
    """

    key: str
    native: Any
    children: list[Node] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    label: str = ""
    layer_type: str | None = None
    complete: bool = True
    """False while the layer's own children and parameters are not known (a linen @compact module before init)."""
    rule: Any = None
    """The layer's rule (unified_params.rules.Rule), None for a container or a class without one."""


class DeferredHooks(Protocol):
    """What the core offers an adapter for parameters whose shape becomes known natively."""

    def shapes_known(self) -> None:
        """Re-discover the model and apply every recorded initializer that can now run."""

    def initial_value(self, storage: Hashable, shape: tuple[int, ...], dtype: str) -> np.ndarray | None:
        """The value the recorded initializers give the slot with this storage (canonical layout)."""

    def native_init(self, storage: Hashable) -> None:
        """The framework's own initialization of this storage came after pm.init: drop its records."""


class Adapter:
    """Base class of every backend adapter; one instance wraps one native model."""

    name: ClassVar[str] = ""
    roots: ClassVar[tuple[str, ...]] = ()
    distribution: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    model_types: ClassVar[str] = ""
    examples: ClassVar[str] = ""
    structures: ClassVar[str] = ""
    capabilities: ClassVar[dict[str, str]] = {}
    tells_changes: ClassVar[bool] = False
    """True when every change changed() would see is a replacement the adapter makes itself and reports through
    `on_change` (linen: the wrapper holds the only reference to its variables tree): the core then hands out
    parameters of a current index without asking changed() or current() on every lookup."""
    on_change: Callable[[], None] | None = None
    """Set by the core on adapters that tell changes: call it when the model changed (not after the adapter's own
    writes, which keep the index current)."""

    def __init__(self, model: Any, variables: Any = None) -> None:
        self.model = model

    @classmethod
    def recognizes(cls, model: Any) -> bool:
        """True when model is an object of this framework that the adapter can wrap."""
        raise NotImplementedError

    @classmethod
    def framework_version(cls) -> str:
        """The framework's version, read without importing it."""
        from importlib.metadata import version

        return version(cls.distribution)

    @property
    def variables(self) -> Any:
        """The current variables for stateless frameworks (linen); None elsewhere."""
        return None

    def set_variables(self, tree: Any) -> None:
        """Replace the variables tree (linen), after checking it fits the model; other backends hold theirs natively."""
        raise UnsupportedError(f"{self.name} keeps its parameters in the model itself: there is no variables tree "
                               f"to set; write values with pm.load_state_dict(...) or pm[name].set(...)")

    def tree(self) -> Node:
        """The model's structure and its slots, discovered anew."""
        raise NotImplementedError

    def listing(self) -> tuple[list[str], Any] | None:
        """Canonical names in canonical order and a stamp for changed(stamp, attributes=False), cheaper than tree()
        (no slots); None when the adapter has no such listing, or when the names may still change as the model runs.

        Optional: the first names() of a model uses it; everything else builds the index from tree().
        """
        return None

    def stamp(self, root: Node) -> Any:
        """A record of the native objects and slot attributes `root` was discovered from, for changed() and current().

        Taken right after tree() when no shape is pending. The default records nothing: see changed().
        """
        return None

    def changed(self, stamp: Any, attributes: bool = True) -> bool:
        """True when the model is no longer what stamp recorded: a layer or parameter replaced, added or removed,
        and with attributes also a slot whose shape, dtype or trainable flag differs.

        Cheap (registration counters, identity checks): the core asks before every use of its cached index.
        The default answers True, so an adapter without a stamp is discovered anew on every call.
        """
        return True

    def current(self, stamp: Any, nodes: Sequence[Node], slot: Slot, attributes: bool = True) -> bool:
        """True when slot is still the native object its owner holds at its place (nodes: root to owner), and with
        attributes still has the recorded shape, dtype and trainable flag. Costs about one native lookup.

        The default checks the whole model (changed()).
        """
        return not self.changed(stamp, attributes)

    def native(self, slot: Slot) -> Any:
        """The framework's own parameter object behind slot (default: slot.ref)."""
        return slot.ref

    def read(self, slot: Slot) -> np.ndarray:
        """A copy of the slot's value in canonical layout."""
        raise NotImplementedError

    def write(self, slot: Slot, value: np.ndarray) -> None:
        """Write value (canonical layout, the slot's shape and dtype) into the native storage."""
        raise NotImplementedError

    def view(self, slot: Slot) -> np.ndarray:
        """The value in canonical layout without a copy where the framework allows (read-only use)."""
        return self.read(slot)

    def fill(self, slot: Slot, fn: Callable[..., None]) -> None:
        """Let fn write the value in place: into native memory where possible, else through one scratch array.

        A parameter split over devices calls fn(block, region) once per local shard instead (regions.Region: the
        block of the canonical tensor that block is), so each process makes only what it holds.
        """
        out = np.empty(slot.shape, resolve(slot.dtype))
        fn(out)
        self.write(slot, out)

    def sharding(self, slot: Slot) -> Sharding | None:
        """Where the slot's values live when they are split over devices (see sharding.py); None on one device."""
        return None

    def mesh_axes(self, mesh: Any) -> dict[str, int]:
        """The mesh's axis names and sizes (up.partition); UnsupportedError where the engine has no device meshes."""
        raise UnsupportedError(f"{self.name} models are not split over devices here: up.partition works on JAX "
                               f"(NNX, linen, Keras on JAX) and torch (DTensor) models")

    def placement(self, slot: Slot, dims: tuple[tuple[str, ...], ...], mesh: Any) -> Any:
        """The engine's own sharding of slot on mesh with canonical dimension i split over the mesh axes dims[i]."""
        raise UnsupportedError(f"{self.name} has no sharding of its own")

    def layout_map(self, mesh: Any, pairs: Sequence[tuple[Slot, Any]]) -> Any:
        """The engine's aggregate of placements to build a model under (a Keras LayoutMap), None where place() works."""
        return None

    def place(self, slot: Slot, placement: Any) -> None:
        """Move the slot's parameter to placement (values kept)."""
        raise UnsupportedError(f"{self.name} cannot move a parameter onto devices")

    def writable(self, slot: Slot) -> None:
        """Raise (a family error naming it) when slot cannot be written at all, checked before anything is written."""

    def group(self) -> Any:
        """The processes that hold this model together (collective.Group) when it spans several, else None."""
        return None

    def blocks(self, slot: Slot) -> list[tuple[Region, np.ndarray]] | None:
        """The blocks of the slot's canonical value this process writes to a checkpoint (its own shards, each replica
        by one process only); None: the slot is not split, process 0 writes its whole value."""
        return None

    def write_many(self, pairs: Sequence[tuple[Slot, np.ndarray]]) -> None:
        """Write several slots; adapters whose writes rebuild state override this to do it once."""
        for slot, value in pairs:
            self.write(slot, value)

    def grad(self, slot: Slot) -> np.ndarray | None:
        """The slot's gradient in canonical layout, or None when none has been computed."""
        raise NotImplementedError

    def compute_grads(self, inputs: Sequence[Any], loss: Callable[[Any], Any] | None) -> None:
        """One forward and backward pass that leaves the framework's own gradients as they were; see pass_grad()."""
        raise NotImplementedError

    def pass_grad(self, slot: Slot) -> np.ndarray | None:
        """The slot's gradient from the last compute_grads (grad() may prefer the user's own native gradient)."""
        return self.grad(slot)

    def forward(self, inputs: Sequence[Any]) -> np.ndarray:
        """The model's output on inputs (numpy or native tensors), in inference mode, as numpy."""
        raise NotImplementedError

    def materialize(self, inputs: Sequence[Any]) -> Callable[[], None] | None:
        """Make every shape known from example inputs; raise ShapeMismatchError on a misfit, the model unchanged.

        Returns a function that puts the model back as it was before (called when the recorded initializers then
        fail), or None when nothing changed.
        """
        raise NotImplementedError

    def channels_last(self) -> bool:
        """True when the framework's convolutions and norms take channels last (Keras by default, Flax)."""
        return False

    def checkpoint_names(self, names: Sequence[str]) -> dict[str, str]:
        """Checkpoint name -> the model's canonical name, for files a framework library writes under other names
        (transformers' save_pretrained); names the model has are never mapped. The default maps none."""
        return {}

    def layer_names(self, root: Node) -> dict[str, tuple[str, ...]]:
        """Canonical layer path -> the framework's own names of that layer, for pm.layer("native name").

        The default names none: torch, NNX and Equinox name a layer by its attribute path, which is its canonical path.
        """
        return {}

    def layer_outputs(self, inputs: Sequence[Any], layers: Mapping[str, Any]) -> dict[str, Any]:
        """Each layer's output on inputs, in inference mode: canonical layer path -> native output.

        layers maps the canonical paths wanted to the native layer objects (Node.native) at those paths.
        """
        raise NotImplementedError(f"the {self.name} adapter does not intercept layer outputs")

    def watch(self, hooks: DeferredHooks) -> None:
        """Arrange that the model's own first forward calls hooks when it makes shapes known."""

    def allocate(self, device: str | None, recorded: set[Hashable]) -> bool:
        """Give memory on device to parameters whose shape is known but which have none (torch meta); the framework's
        own init for those whose storage is not in recorded. False when there is nothing to allocate."""
        return False

    def change_token(self, slot: Slot) -> tuple[Any, Hashable] | None:
        """(the native object that holds slot's value, a state that changes with every write to it), for provenance.

        torch: the tensor and (data_ptr, _version); JAX backends: the array itself (immutable) and None. The default
        None means "not known": pm.provenance() then claims no origin for the slot. Cheap (about a microsecond).
        """
        return None

    def settle(self, pairs: Sequence[tuple[Slot, tuple[int, ...]]]) -> Callable[[], None]:
        """Give parameters whose shape is not known yet the shapes a checkpoint holds (canonical), with storage, as the
        framework's own load does (Gluon load_parameters, torch Lazy modules); returns a function that undoes it.

        Called before the first write, only when capabilities lacks LOAD_DEFERRED. The default raises
        NotImplementedError: the load then asks for pm.materialize(example_input) first and writes nothing.
        """
        raise NotImplementedError

    def set_trainable(self, owner: Any, slot: Slot, trainable: bool) -> bool:
        """Set the framework's own trainability of slot in its owner layer; False when slot is no parameter."""
        raise NotImplementedError

    def share(self, owner: Any, slot: Slot, source: Slot) -> None:
        """Make the owner layer use source's parameter object where it now uses slot's (same shape and dtype)."""
        raise NotImplementedError
