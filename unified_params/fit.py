"""Does a value fit a parameter? One home for the shape, cast, overflow and finiteness rules.

Every write path uses it: `ParamView.set`, custom initializers (`init`, recorded inits),
`load_state_dict`, `load` and `transfer`, so a rule fixed here is fixed everywhere.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import errors
from .adapter import is_counter
from .dtypes import can_cast, is_float, overflowed, resolve

Cast = Literal["exact", "safe"]


class Misfit(Exception):
    """Why one value does not fit one parameter (kind: type, shape, dtype, finite, overflow); callers word the error."""

    def __init__(self, kind: str, got: Any = None, want: Any = None, count: int = 0) -> None:
        super().__init__(kind)
        self.kind, self.got, self.want, self.count = kind, got, want, count


def as_array(value: Any) -> np.ndarray:
    """value as a numpy array without a copy where possible (framework tensors through .numpy())."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        try:
            return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value.numpy())
        except Exception:
            pass
    return np.asarray(value)


def fit(value: Any, shape: tuple[int, ...], dtype: str | np.dtype, cast: Cast = "safe", finite: bool = False) -> np.ndarray:
    """value as an array of exactly shape and dtype, or Misfit saying why not.

    cast="exact" takes only the parameter's dtype; "safe" also converts same-kind and float-to-float values
    that do not overflow. A value of the right dtype is returned as given (a view, any strides).
    """
    target = resolve(dtype) if isinstance(dtype, str) else dtype
    try:
        array = as_array(value)
    except Exception as e:
        raise Misfit("type", type(value).__name__, str(e)) from e
    if array.shape != tuple(shape):
        raise Misfit("shape", array.shape, tuple(shape))
    if array.dtype != target and (cast == "exact" or not can_cast(array.dtype, target)):
        raise Misfit("dtype", array.dtype, target)
    if finite and is_float(array.dtype) and not np.isfinite(array).all():
        raise Misfit("finite", count=int(array.size - np.isfinite(array).sum()))
    if array.dtype == target:
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(target)
    bad = overflowed(array, out)
    if bad:
        raise Misfit("overflow", array.dtype, target, bad)
    return out


def fit_one(value: Any, name: str, shape: tuple[int, ...], dtype: str | np.dtype, source: str, finite: bool = False,
            error: type[errors.UnifiedParamsError] | None = None) -> np.ndarray:
    """fit() for one named parameter, raising ShapeMismatchError / DtypeMismatchError (or `error` for every misfit)."""
    try:
        return fit(value, shape, dtype, "safe", finite)
    except Misfit as m:
        cls = error or (errors.ShapeMismatchError if m.kind == "shape" else errors.DtypeMismatchError)
        text = {
            "type": f"{source} gave {m.got} for parameter {errors.quote(name)}, not an array: {m.want}",
            "shape": f"{source} gave shape {m.got} for parameter {errors.quote(name)}, which has shape {m.want}",
            "dtype": f"{source} gave dtype {m.got} for parameter {errors.quote(name)} ({m.want}): casting would be unsafe; "
                     f"convert it explicitly",
            "finite": f"{source} gave {m.count} NaN or inf value(s) for parameter {errors.quote(name)}",
            "overflow": f"{source} gave {m.count} value(s) for parameter {errors.quote(name)} that overflow {m.want} "
                        f"(they would become inf); scale them or use a wider dtype",
        }[m.kind]
        raise cls(text) from None


@dataclass
class Target:
    """What a state is loaded into: unique names -> (shape, dtype, known), and alias -> primary name."""

    shapes: dict[str, tuple[int | None, ...]]
    dtypes: dict[str, str]
    pending: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)
    counters: set[str] = field(default_factory=set)
    settles: str | None = "shapes come from pm.materialize(example_input)"
    """None when the backend takes pending shapes from the state (Adapter.settle), else why it cannot."""
    native_only: dict[str, str] = field(default_factory=dict)
    """name -> why its layer has no canonical form (rules.no_canonical_form): missing from a strict state, refused."""


Spec = tuple[tuple[int, ...], np.dtype]


def plan_state(specs: Mapping[str, Spec], target: Target, strict: bool = True,
               cast: bool = False) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Check names, shapes and dtypes only (no data): primary -> state name to write, and (alias, primary) pairs.

    Raises one error listing every misfit; the values' own checks (overflow, tied aliases that agree) are
    check_values' job, so a checkpoint is judged from its header before any of its data is read. A step counter
    (COUNTERS) is loaded where the target has one; one the target lacks, or the state lacks, is no misfit.
    """
    given: dict[str, str] = {}
    unexpected: list[str] = []
    tied: list[tuple[str, str]] = []
    for name in specs:
        primary = name if name in target.shapes else target.aliases.get(name)
        if primary is None:
            if not is_counter(name):
                unexpected.append(name)
            continue
        if primary not in given or name == primary:
            given[primary] = name
        if primary != name:
            tied.append((name, primary))
    pending = [n for n in given if n in target.pending]
    if pending and target.settles is not None:
        raise errors.DeferredInitializationError(
            f"call pm.materialize(example_input) first: cannot load {errors.short_list(pending)}, shape not known yet "
            f"({target.settles})")
    mismatched, dtypes = [], []
    for name, primary in tied:
        if specs[name][0] != specs[given[primary]][0]:
            mismatched.append(f"{name}: checkpoint {specs[name][0]} vs {specs[given[primary]][0]} of {primary}, "
                              f"which it is tied to")
    for primary, name in given.items():
        shape, dtype = specs[name]
        want = resolve(target.dtypes[primary])
        if not _fits_shape(tuple(shape), tuple(target.shapes[primary])):
            mismatched.append(f"{primary}: checkpoint {tuple(shape)} vs model {tuple(target.shapes[primary])}")
        elif dtype != want and (not cast or not can_cast(dtype, want)):
            dtypes.append(f"{primary}: checkpoint {dtype} vs model {want}")
    missing = [n for n in target.shapes if n not in given and n not in target.counters]
    refused = [n for n in missing if n in target.native_only] if strict else []
    if refused:
        raise errors.UnsupportedError(f"{target.native_only[refused[0]]}; {errors.quote_all(refused)} cannot take "
                                      f"values from a state of another form (nothing was written)")
    _refuse(missing if strict else [], unexpected if strict else [], mismatched, dtypes, [])
    return given, tied


def _fits_shape(shape: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    """shape is want, where want's unknown dimensions (None) take any size."""
    return len(shape) == len(want) and all(w is None or w == d for d, w in zip(shape, want))


def _refuse(missing: list[str], unexpected: list[str], mismatched: list[str], dtypes: list[str],
            overflow: list[str]) -> None:
    """Raise one error listing every misfit (the class of the gravest), or return when there is none."""
    problems = []
    if missing:
        problems.append(f"missing: {errors.short_list(missing)}")
    if unexpected:
        problems.append(f"unexpected: {errors.short_list(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {errors.short_list(mismatched, sep='; ')}")
    if dtypes:
        problems.append(f"dtype mismatch: {errors.short_list(dtypes, sep='; ')} (pass cast=True to convert)")
    if overflow:
        problems.append(f"cast would overflow: {errors.short_list(overflow, sep='; ')}")
    if not problems:
        return
    text = "state does not fit the model, nothing was written; " + " | ".join(problems)
    if mismatched:
        raise errors.ShapeMismatchError(text)
    if dtypes or overflow:
        raise errors.DtypeMismatchError(text)
    raise errors.ParameterNotFoundError(text)


def _shape(target: Target, name: str, given: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a planned value must have: the model's, or the state's own where the model's is not known yet."""
    return tuple(given) if name in target.pending else target.shapes[name]


def fit_value(value: np.ndarray, name: str, target: Target, cast: bool) -> np.ndarray:
    """One value of a planned state in the model's dtype; DtypeMismatchError naming it if the cast overflows."""
    try:
        return fit(value, _shape(target, name, value.shape), target.dtypes[name], "safe" if cast else "exact")
    except Misfit as m:
        _refuse([], [], [], [], [f"{name}: {m.count} value(s) of {m.got} overflow {m.want}"])
        raise


def tied_conflict(alias: str, primary: str, a: np.ndarray, b: np.ndarray) -> str | None:
    """Why an alias's value cannot be loaded with its primary's (another value), or None when they agree."""
    if np.array_equal(a, b, equal_nan=is_float(a.dtype) and is_float(b.dtype)):
        return None
    return f"{alias} (tied to {primary} in this model, but the state holds another value)"


def fit_state(state: Mapping[str, Any], target: Target, strict: bool = True, cast: bool = False) -> dict[str, np.ndarray]:
    """primary name -> value that fits, for every entry of state; raise one error listing every misfit.

    Nothing is written here: callers write the result only when this returns, so a load is all or nothing.
    """
    arrays, bad = {}, []
    for name, value in state.items():
        try:
            arrays[name] = as_array(value)
        except Exception as e:
            bad.append(f"{name}: {type(value).__name__} is not an array ({e})")
    if bad:
        _refuse([], [], [], bad, [])
    given, tied = plan_state({n: (a.shape, a.dtype) for n, a in arrays.items()}, target, strict, cast)
    conflicts = [c for alias, primary in tied if (c := tied_conflict(alias, primary, arrays[alias],
                                                                        arrays[given[primary]]))]
    if conflicts and strict:
        _refuse([], conflicts, [], [], [])
    values: dict[str, np.ndarray] = {}
    overflow = []
    for primary, name in given.items():
        try:
            values[primary] = fit(arrays[name], _shape(target, primary, arrays[name].shape), target.dtypes[primary],
                                  "safe" if cast else "exact")
        except Misfit as m:
            overflow.append(f"{primary}: {m.count} value(s) of {m.got} overflow {m.want}")
    _refuse([], [], [], [], overflow)
    return values


def _not_an_input(x: Any) -> str | None:
    """Why x cannot be an example input (not an array of at least one dimension), or None when it can."""
    if isinstance(x, Mapping):
        return next((why for why in map(_not_an_input, x.values()) if why), None)
    shape = getattr(x, "shape", None)
    if shape is not None and hasattr(x, "dtype") and not isinstance(x, np.ndarray):
        return None if len(tuple(shape)) >= 1 else f"a 0-d {type(x).__name__}"
    try:
        array = np.asarray(x)
    except Exception:  # noqa: BLE001 - ragged or foreign objects: judged item by item below
        array = None
    if array is not None and array.dtype.kind in "biufc":
        return None if array.ndim >= 1 else f"the scalar {x!r}"
    if isinstance(x, (list, tuple)) and x:
        return next((why for why in map(_not_an_input, x) if why), None)
    return f"{x!r} ({type(x).__name__})"


def check_example_inputs(inputs: Any) -> None:
    """Refuse example inputs that are not arrays (a string, a scalar, None) before the model sees them.

    After the first input, None and Python numbers pass: optional arguments such as a mask or a flag.
    """
    for i, x in enumerate(inputs):
        if i and (x is None or isinstance(x, (bool, int, float))):
            continue
        why = _not_an_input(x)
        if why:
            raise errors.ShapeMismatchError(
                f"materialize(): example input {i} is {why}, not an array: pass arrays or native tensors of the "
                f"model's input shape (e.g. np.zeros((2, 20), 'float32')); nothing was changed")
