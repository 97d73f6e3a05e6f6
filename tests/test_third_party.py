"""The third-party path of docs/adapters.md: messages name the adapter's own distribution, and the list of supported
model types comes from the registered adapters; the public helpers keep their old import paths."""
from __future__ import annotations

import pytest

import unified_params as up
from unified_params import registry
from unified_params.adapter import Adapter
from unified_params.lazy import lazy


class _ForeignModel:
    """An object of a framework that is not installed."""


_ForeignModel.__module__ = "up_thirdparty_framework.nn"


class ThirdPartyAdapter(Adapter):
    name = "thirdparty"
    roots = ("up_thirdparty_framework",)
    distribution = "up-thirdparty-framework"
    model_types = "up_thirdparty_framework.Module"

    @classmethod
    def recognizes(cls, model: object) -> bool:
        return isinstance(model, lazy("up_thirdparty_framework").Module)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    real_class, real_names = registry.adapter_class, registry.names
    monkeypatch.setattr(registry, "adapter_class", lambda n: ThirdPartyAdapter if n == "thirdparty" else real_class(n))
    monkeypatch.setattr(registry, "names", lambda: [*real_names(), "thirdparty"])


def test_missing_framework_of_a_third_party_adapter_names_its_distribution(registered: None) -> None:
    for backend in ("thirdparty", None):
        with pytest.raises(up.BackendNotInstalledError) as err:
            up.wrap(_ForeignModel(), backend=backend)
        assert "pip install 'up-thirdparty-framework'" in str(err.value) and "unified-params[" not in str(err.value)
    info = {b.name: b for b in up.backends()}["thirdparty"]
    assert info.reason == "up_thirdparty_framework is not installed: pip install 'up-thirdparty-framework'"


def test_unsupported_model_lists_every_registered_adapter(registered: None) -> None:
    with pytest.raises(up.UnsupportedModelError) as err:
        up.wrap(object())
    text = str(err.value)
    assert "up_thirdparty_framework.Module" in text and "torch.nn.Module" in text and "flax.nnx.Module" in text


def test_public_helpers_and_their_old_paths() -> None:
    from unified_params import _lazy, locate
    from unified_params.backends import _jax

    assert _lazy.lazy is lazy and _lazy.LazyModule is type(lazy("json"))
    assert lazy("json").dumps([1]) == "[1]"
    for name in locate.__all__:
        assert getattr(_jax, name) is getattr(locate, name)
