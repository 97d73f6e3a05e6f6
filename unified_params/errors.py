"""The error family: every error derives from UnifiedParamsError and the builtin a user would catch."""
from __future__ import annotations

from collections.abc import Iterable, Sequence


class UnifiedParamsError(Exception):
    """Base of every error raised by unified_params."""


class ParameterNotFoundError(UnifiedParamsError, KeyError):
    """A name that does not exist; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class SelectionError(UnifiedParamsError, ValueError):
    """A pattern that does not compile, or a selection for init that matches nothing."""


class InitializerError(UnifiedParamsError, ValueError):
    """An initializer raised or produced a wrong shape, an unsafe dtype, NaN or inf."""


class ShapeMismatchError(UnifiedParamsError, ValueError):
    """Shapes that do not fit: set, load_state_dict, transfer or materialize."""


class DtypeMismatchError(UnifiedParamsError, ValueError):
    """A value whose dtype cannot be written without an unsafe cast."""


class CheckpointError(UnifiedParamsError, ValueError):
    """A checkpoint file that is truncated, corrupt, or not a unified_params checkpoint."""


class DeferredInitializationError(UnifiedParamsError, RuntimeError):
    """Reading or writing a parameter whose shape is not known yet."""


class UnsupportedModelError(UnifiedParamsError, TypeError):
    """wrap() of an object that no adapter recognises."""


class BackendNotInstalledError(UnifiedParamsError, ImportError):
    """The model's framework, or a requested backend, is not installed."""


class WholeTensorWarning(UserWarning):
    """pm.init on a parameter split over devices builds its whole value on the host (Orthogonal, a custom
    initializer, a layout that reshapes): the memory of sharded init is not bounded for it."""


class UnsupportedError(UnifiedParamsError, NotImplementedError):
    """A backend cannot do what was asked; its capabilities say why."""


def short_list(names: Sequence[str], limit: int = 10, sep: str = ", ") -> str:
    """At most limit names, comma-separated (or sep), then "and N more": long lists stay readable."""
    names = list(names)
    shown = sep.join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def quote(name: object, limit: int = 72) -> str:
    """repr(name) for a message, shortened in the middle when longer than limit, so both ends stay readable."""
    text = repr(name)
    if len(text) <= limit:
        return text
    head = (limit - 3 + 1) // 2
    return f"{text[:head]}...{text[len(text) - (limit - 3 - head):]}"


def quote_all(names: Iterable[object], limit: int = 10) -> str:
    """short_list of the names, each quoted (and shortened) by quote()."""
    return short_list([quote(n) for n in names], limit)


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates most similar to name, best first."""
    import difflib

    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.3)
    if not found:
        found = [c for c in candidates if name in c or c in name][:n]
    return found


def not_found(name: str, candidates: Iterable[str], where: str = "the model") -> ParameterNotFoundError:
    """A ParameterNotFoundError for name that suggests the closest existing names."""
    candidates = list(candidates)
    near = closest(name, candidates)
    hint = f"closest: {quote_all(near)}" if near else f"names are: {quote_all(candidates)}"
    return ParameterNotFoundError(f"no parameter named {quote(name)} in {where}; {hint}")


def gone(name: str, candidates: Iterable[str]) -> ParameterNotFoundError:
    """The error for a view whose parameter left the model after the view was taken (layer removed or renamed)."""
    near = closest(name, list(candidates))
    hint = f"; closest now: {', '.join(near)}" if near else ""
    return ParameterNotFoundError(
        f"parameter {name!r} is no longer in the model (it changed after this view was taken): "
        f"take the view again from pm[...] or pm.collect(...){hint}")


def deferred(name: str, shape: tuple | None = None) -> DeferredInitializationError:
    """The error for touching a parameter whose shape is not known yet, or (shape given) that has no storage yet."""
    if shape is not None:
        return DeferredInitializationError(
            f"parameter {name!r} has shape {tuple(shape)} but its storage is not allocated yet: call pm.materialize() "
            f"(no example input needed; pm.materialize(device='cpu') on the meta device) or the framework's own "
            f"initialization (MXNet: net.initialize())")
    return DeferredInitializationError(
        f"parameter {quote(name)} is not initialized yet (its shape or memory is not known): call "
        f"pm.materialize(example_input), run the model once on data, or pm.materialize(device='cpu') on the meta device"
    )
