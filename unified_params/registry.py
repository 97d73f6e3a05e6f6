"""Adapters registered under the entry-point group `unified_params.backends`, found by the model's type."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, entry_points
from typing import Any

from .adapter import Adapter
from .errors import BackendNotInstalledError, UnsupportedModelError

GROUP = "unified_params.backends"


@lru_cache(maxsize=None)
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@lru_cache(maxsize=None)
def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered as name (its framework is not imported)."""
    eps = _entry_points()
    if name not in eps:
        raise BackendNotInstalledError(f"no backend named {name!r}; registered: {', '.join(sorted(eps)) or 'none'}")
    return eps[name].load()


def names() -> list[str]:
    """Registered backend names, built-in ones first."""
    order = ["torch", "mxnet", "keras", "flax", "nnx", "equinox"]
    eps = sorted(_entry_points(), key=lambda n: (order.index(n) if n in order else len(order), n))
    return eps


def install_hint(cls: type[Adapter]) -> str:
    """What to pip install for cls's framework: an extra of unified-params for built-in adapters, else the
    framework's own distribution (a third-party adapter names no extra of ours)."""
    return f"pip install 'unified-params[{cls.extra}]'" if cls.extra else f"pip install '{cls.distribution or cls.roots[0]}'"


def installed(cls: type[Adapter]) -> str | None:
    """None when the adapter's framework can be imported, else why not."""
    missing = [r for r in cls.roots if importlib.util.find_spec(r) is None]
    if missing:
        return f"{missing[0]} is not installed: {install_hint(cls)}"
    return None


def require(cls: type[Adapter]) -> None:
    """Raise BackendNotInstalledError naming the pip extra when cls's framework is missing."""
    reason = installed(cls)
    if reason:
        raise BackendNotInstalledError(f"backend {cls.name!r}: {reason}")


def _roots(model: Any) -> list[str]:
    """Top-level modules of the model's type and its bases, most specific first."""
    return list(dict.fromkeys(c.__module__.split(".")[0] for c in type(model).__mro__ if c.__module__))


def supported() -> str:
    """What the registered adapters take, for UnsupportedModelError: each adapter's model_types."""
    kinds = []
    for name in names():
        try:
            cls = adapter_class(name)
        except Exception:
            continue
        kinds.append(cls.model_types or f"{cls.roots[0]} models")
    return ", ".join(dict.fromkeys(kinds)) or "nothing (no backend is registered)"


def _recognizes(cls: type[Adapter], model: Any) -> bool:
    """cls.recognizes(model), with a framework that fails to import reported as BackendNotInstalledError."""
    try:
        return bool(cls.recognizes(model))
    except ImportError as e:
        raise BackendNotInstalledError(
            f"backend {cls.name!r} cannot import its framework ({e}): {install_hint(cls)}") from e


def find(model: Any, backend: str | None = None) -> type[Adapter]:
    """The adapter for model: the requested backend, or the one that recognises its type."""
    if backend is not None:
        cls = adapter_class(backend)
        require(cls)
        if not _recognizes(cls, model):
            raise UnsupportedModelError(f"backend {backend!r} does not recognise {type(model).__module__}.{type(model).__qualname__}")
        return cls
    roots = _roots(model)
    candidates = []
    for name in names():
        try:
            cls = adapter_class(name)
        except Exception:
            continue
        ranks = [roots.index(r) for r in cls.roots if r in roots]
        if ranks:
            candidates.append((min(ranks), cls))
    for _, cls in sorted(candidates, key=lambda c: c[0]):
        if _recognizes(cls, model):
            return cls
    raise UnsupportedModelError(
        f"no adapter recognises {type(model).__module__}.{type(model).__qualname__}; supported: {supported()}"
        f" (registered backends: {', '.join(names())})")


@dataclass
class BackendInfo:
    """One registered adapter: its name, framework version, and whether it can be used here."""

    name: str
    version: str | None
    importable: bool
    reason: str | None
    capabilities: dict[str, str] = field(default_factory=dict)


def backends() -> list[BackendInfo]:
    """Every registered adapter with its framework's version, or why it cannot be used."""
    out = []
    for name in names():
        try:
            cls = adapter_class(name)
        except Exception as e:
            out.append(BackendInfo(name, None, False, f"adapter failed to load: {e}"))
            continue
        reason = installed(cls)
        try:
            version = cls.framework_version()
        except PackageNotFoundError:
            version = None
        out.append(BackendInfo(name, version, reason is None, reason, dict(cls.capabilities)))
    return out
