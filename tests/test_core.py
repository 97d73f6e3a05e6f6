"""Core behaviour that no single backend owns: lazy imports, the registry, the public names."""
from __future__ import annotations

import subprocess
import sys

import pytest

import unified_params as up


def test_import_loads_no_framework_and_no_numpy() -> None:
    code = ("import sys, unified_params; "
            "print(sorted(m for m in ('numpy', 'torch', 'mxnet', 'keras', 'tensorflow', 'jax', 'flax') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_backends_stays_callable_after_an_adapter_loads() -> None:
    import torch

    up.wrap(torch.nn.Linear(2, 3))
    import unified_params.backends  # noqa: F401

    names = [b.name for b in up.backends()]
    assert names[:5] == ["torch", "mxnet", "keras", "flax", "nnx"]
    torch_info = next(b for b in up.backends() if b.name == "torch")
    assert torch_info.importable and torch_info.version == torch.__version__


def test_unknown_backend_and_missing_framework() -> None:
    import torch

    with pytest.raises(ImportError) as err:
        up.wrap(torch.nn.Linear(2, 3), backend="nosuch")
    assert isinstance(err.value, up.BackendNotInstalledError) and "registered" in str(err.value)
    from unified_params.adapter import Adapter
    from unified_params.registry import require

    class Missing(Adapter):
        name, roots, extra = "missing", ("no_such_framework_xyz",), "missing"

    with pytest.raises(up.BackendNotInstalledError, match=r"unified-params\[missing\]"):
        require(Missing)


def test_every_error_is_a_unified_params_error_and_its_builtin() -> None:
    pairs = {up.ParameterNotFoundError: KeyError, up.SelectionError: ValueError, up.InitializerError: ValueError,
             up.ShapeMismatchError: ValueError, up.DeferredInitializationError: RuntimeError,
             up.UnsupportedModelError: TypeError, up.BackendNotInstalledError: ImportError,
             up.UnsupportedError: NotImplementedError}
    for cls, builtin in pairs.items():
        assert issubclass(cls, up.UnifiedParamsError) and issubclass(cls, builtin)
