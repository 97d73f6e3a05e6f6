"""General dense projections (Keras `EinsumDense`, Flax `DenseGeneral`/`LinearGeneral`) in canonical dense form.

A projection whose kernel is (*in_axes, *out_axes), contracting the input's trailing axes and adding the kernel's
other axes at the end of the output, is a `linear` layer: canonical weight (prod(out), prod(in)), bias (prod(out),).
Sizes may be -1 (one per group) where the layer's configuration does not fix them.
"""
from __future__ import annotations

import functools

from .layout import IDENTITY, Layout, Merge, Permute
from .rules import Leaf, Rule


def _merge(axis: int, sizes: tuple[int, ...]) -> tuple:
    return (Merge(axis, sizes),) if len(sizes) > 1 else ()


def kernel_layout(in_sizes: tuple[int, ...], out_sizes: tuple[int, ...]) -> Layout:
    """Kernel (*in, *out) -> canonical weight (prod(out), prod(in))."""
    steps = (*_merge(len(in_sizes), out_sizes), *_merge(0, in_sizes), Permute((1, 0)))
    return Layout(steps, f"projection kernel ({', '.join(map(_size, (*in_sizes, *out_sizes)))})")


def bias_layout(out_sizes: tuple[int, ...]) -> Layout:
    """Bias (*out) -> canonical bias (prod(out),)."""
    steps = _merge(0, out_sizes)
    return Layout(steps, f"projection bias ({', '.join(map(_size, out_sizes))})") if steps else IDENTITY


def _size(d: int) -> str:
    return "?" if d == -1 else str(d)


@functools.cache
def projection_rule(in_sizes: tuple[int, ...], out_sizes: tuple[int, ...], kernel: str = "kernel",
                    bias: str = "bias") -> Rule:
    """The `linear` rule of a plain projection with these input and output axis sizes (one -1 per group at most)."""
    return Rule("linear", (Leaf(kernel, "weight", kernel_layout(in_sizes, out_sizes)),
                           Leaf(bias, "bias", bias_layout(out_sizes))))


def einsum_projection(equation: str, bias_axes: str | None) -> tuple[int, int] | None:
    """(number of contracted axes, number of output axes) when an einsum `x,kernel->y` is a plain projection, else None.

    Plain: the kernel is the contracted axes then the new axes, the contracted axes are the input's last ones,
    the output is the input's other axes then the new ones, and the bias (if any) covers every new axis.
    """
    try:
        inputs, out = equation.replace(" ", "").split("->")
        x, kernel = inputs.split(",")
    except ValueError:
        return None
    if x.startswith("...") != out.startswith("...") or "." in kernel:
        return None
    x, out = x.removeprefix("..."), out.removeprefix("...")
    contracted = "".join(c for c in x if c not in out)
    new = "".join(c for c in kernel if c not in x)
    plain = (contracted and new and kernel == contracted + new and x.endswith(contracted)
             and out == x[: len(x) - len(contracted)] + new and bias_axes in (None, "", new))
    return (len(contracted), len(new)) if plain else None
