"""The Keras backend's own operations, chosen once per process: numpy views, in-place memory, gradients, eager writes.

Keras 3 fixes its backend at import, so `ops()` picks one `Ops` object at first use and the
adapter never branches on the backend's name again.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Sequence
from typing import Any, ContextManager

import numpy as np

from unified_params.layout import Layout, aligned_empty
from unified_params.lazy import lazy
from unified_params.sharding import Sharding

keras = lazy("keras")


class Ops:
    """What works on every Keras backend: copies through keras.ops, no gradients."""

    name = ""

    def numpy_view(self, value: Any) -> np.ndarray:
        """The tensor's memory as numpy, without a copy where the backend allows (read-only use)."""
        return keras.ops.convert_to_numpy(value)

    def writable(self, value: Any) -> np.ndarray | None:
        """The tensor's own memory as a writable numpy array, or None where the backend cannot hand it out."""
        return None

    def token(self, value: Any) -> tuple[Any, Any] | None:
        """A variable value's change token (Adapter.change_token), or None where the backend has none (TensorFlow)."""
        return None

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, Any]:
        """A new writable native-layout array and what variable.assign then takes for it (here the array itself)."""
        out = aligned_empty(shape, dtype)
        return out, out

    def gradients(self, model: Any, variables: list[Any], objective: Callable[[Any], Any],
                  inputs: Sequence[Any], call: Callable[[Sequence[Any]], Any]) -> list[Any]:
        """d objective(model output) / d variable for each variable (None where unused), as backend tensors."""
        raise NotImplementedError(f"pm.grads() is not implemented for the Keras backend {self.name!r}")

    def eager(self) -> ContextManager[Any]:
        """A context in which variable writes take effect at once."""
        return contextlib.nullcontext()

    def filled(self, value: Any, layout: Layout | None, fn: Callable[..., None]) -> Any:
        """A new tensor placed as value is, whose canonical value fn wrote shard by shard; None when value is not
        split over devices (then one buffer is written and assigned)."""
        return None

    def sharding(self, value: Any, layout: Layout | None) -> Sharding | None:
        """value's placement over devices (a keras.distribution layout), None on one device."""
        return None

    def group(self, values: Sequence[Any]) -> Any:
        """The processes that hold these variable values together (collective.Group), None within one process."""
        return None

    def blocks(self, value: Any, layout: Layout | None, name: str) -> list | None:
        """The canonical blocks of value this process writes to a checkpoint, None when process 0 writes it whole."""
        return None


class TensorflowOps(Ops):
    name = "tensorflow"

    def numpy_view(self, value: Any) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(tf.convert_to_tensor(value))

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, Any]:
        """A new TensorFlow tensor's memory, writable, and the tensor: assign shares it (TensorFlow's resource variables
        are copy-on-write, so AssignVariableOp adopts its input), where a numpy buffer is first converted into a new
        tensor (one more tensor of peak memory). In-place writes into the variable (scatter, sliced assign) would switch
        it to copy-on-read mode for good: every later read, a forward pass too, would copy it."""
        import tensorflow as tf

        if not tf.executing_eagerly():
            return super().buffer(shape, dtype)
        try:
            with tf.device("/CPU:0"):
                tensor = tf.raw_ops.Empty(shape=shape, dtype=tf.as_dtype(dtype), init=False)
        except (TypeError, tf.errors.OpError):
            return super().buffer(shape, dtype)
        memory = np.asarray(tensor)
        if memory.dtype != dtype or memory.shape != tuple(shape):
            return super().buffer(shape, dtype)
        if not memory.flags.writeable:
            raw = (ctypes.c_uint8 * memory.nbytes).from_address(memory.ctypes.data) if memory.nbytes else bytearray()
            memory = np.frombuffer(raw, np.uint8).view(dtype).reshape(shape)
        return memory, tensor

    def gradients(self, model: Any, variables: list[Any], objective: Callable[[Any], Any],
                  inputs: Sequence[Any], call: Callable[[Sequence[Any]], Any]) -> list[Any]:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = objective(call(inputs))
        return [g if g is None else tf.convert_to_tensor(g) for g in tape.gradient(value, variables)]

    def eager(self) -> ContextManager[Any]:
        """Writes inside a tf.function trace reach the variables at once (tf.init_scope), as Keras initializes them."""
        import tensorflow as tf

        return contextlib.nullcontext() if tf.executing_eagerly() else tf.init_scope()


class JaxOps(Ops):
    name = "jax"

    def numpy_view(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def filled(self, value: Any, layout: Layout | None, fn: Callable[..., None]) -> Any:
        from ._jax_sharding import placement, sharded_fill

        sharding = placement(value)
        return None if sharding is None else sharded_fill(value.shape, value.dtype, sharding, layout, fn)

    def sharding(self, value: Any, layout: Layout | None) -> Sharding | None:
        from ._jax_sharding import describe

        return describe(value, layout)

    def group(self, values: Sequence[Any]) -> Any:
        from . import _jax_processes

        return _jax_processes.group(values)

    def blocks(self, value: Any, layout: Layout | None, name: str) -> list | None:
        from . import _jax_processes

        return _jax_processes.blocks(value, layout, name)

    def token(self, value: Any) -> tuple[Any, Any] | None:
        """A JAX array is immutable: every assign makes a new one."""
        return value, None

    def gradients(self, model: Any, variables: list[Any], objective: Callable[[Any], Any],
                  inputs: Sequence[Any], call: Callable[[Sequence[Any]], Any]) -> list[Any]:
        import jax

        options = {"training": False} if model._call_has_training_arg else {}

        def f(trainable: list[Any], fixed: list[Any], *xs: Any) -> Any:
            out, _ = model.stateless_call(trainable, fixed, *xs, **options)
            return objective(out)

        fixed = [v.value for v in model.non_trainable_variables]
        return jax.jit(jax.grad(f))([v.value for v in variables], fixed, *inputs)


class TorchOps(Ops):
    name = "torch"

    def numpy_view(self, value: Any) -> np.ndarray:
        if value.device.type == "cpu" and str(value.dtype) != "torch.bfloat16":
            return value.detach().numpy()
        return keras.ops.convert_to_numpy(value)

    def writable(self, value: Any) -> np.ndarray | None:
        tensor = value.detach()
        if tensor.device.type != "cpu" or not tensor.is_contiguous() or str(tensor.dtype) == "torch.bfloat16":
            return None
        return tensor.numpy()

    def token(self, value: Any) -> tuple[Any, Any] | None:
        """In-place torch ops (Keras assigns with copy_) bump the tensor's _version."""
        return value, (value.data_ptr(), value._version)

    def gradients(self, model: Any, variables: list[Any], objective: Callable[[Any], Any],
                  inputs: Sequence[Any], call: Callable[[Sequence[Any]], Any]) -> list[Any]:
        import torch

        with torch.enable_grad():
            value = objective(call(inputs))
            return list(torch.autograd.grad(value, [v.value for v in variables], allow_unused=True))


@functools.cache
def _for(name: str) -> Ops:
    return next((cls() for cls in (TensorflowOps, JaxOps, TorchOps) if cls.name == name), Ops())


def ops() -> Ops:
    """The operations of the Keras backend this process runs."""
    return _for(keras.backend.backend())
