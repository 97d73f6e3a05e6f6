"""pytest plugin: the `backend` fixture, capability marks, and a JSON report for the matrix.

It is loaded for everyone who installs the package, so it acts only on the conformance suite's own tests
(those defined in `unified_params.conformance`) and on tests marked `@pytest.mark.unified_params`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
from types import ModuleType
from typing import Any

import pytest

REQUIRE_ALL = "UNIFIED_PARAMS_REQUIRE_ALL"
NOT_SUPPORTED = "not supported"
MARKER = "unified_params"
SUITE = "unified_params.conformance"
GROUP = "unified_params"
BACKENDS = "up_backend"
ONE_BACKEND = "cross-framework: only one backend selected; add a second `--backend`"


def backend_label(name: str) -> str:
    """keras runs on one of its own backends per process: keras[tensorflow], keras[jax], keras[torch]."""
    if name == "keras":
        return f"keras[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]"
    return name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP)
    group.addoption("--up-backend", action="append", dest=BACKENDS, default=None,
                    help="run the conformance suite on this backend (repeatable); also spelled --backend")
    group.addoption("--up-report", default=None, help="write per-test outcomes as JSON here (for the matrix)")


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Any:
    """Add the short spelling `--backend` after the project's conftests, only if none of them defines its own."""
    result = yield
    try:
        parser.getgroup(GROUP).addoption("--backend", action="append", dest=BACKENDS, help="same as --up-backend")
    except (ValueError, argparse.ArgumentError):
        pass
    return result


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: let the unified_params plugin parametrize `backend` and `pair`")
    config.addinivalue_line("markers", "feature(id): the conformance feature (E1-E13, errors, state, ...) a test checks")
    config.addinivalue_line("markers", "requires(*capabilities): adapter capabilities the test needs")
    config.addinivalue_line("markers", "cross: a cross-framework test (needs every backend in one process)")


def selected_backends(config: pytest.Config) -> list[str]:
    """The backends given with --backend, else every registered one."""
    from unified_params.registry import names

    return config.getoption(BACKENDS) or names()


def in_scope(node: pytest.Item) -> bool:
    """Whether the plugin may act on this test: the conformance suite's own, or marked `unified_params`."""
    module = getattr(getattr(node, "obj", None), "__module__", None) or ""
    return module == SUITE or module.startswith(SUITE + ".") or node.get_closest_marker(MARKER) is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not in_scope(metafunc.definition):
        return
    selected = selected_backends(metafunc.config)
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected, scope="session")
    if "pair" in metafunc.fixturenames:
        pairs = [(a, b) for a in selected for b in selected if a != b]
        params = [pytest.param(p, id=f"{p[0]}->{p[1]}") for p in pairs]
        alone = pytest.param(None, id="one backend", marks=pytest.mark.skip(ONE_BACKEND))
        metafunc.parametrize("pair", params or [alone], scope="session")


def require_backend(name: str) -> Any:
    """The adapter class for name; skipped when its framework is missing, unless all are required."""
    from unified_params.registry import adapter_class, installed

    cls = adapter_class(name)
    reason = installed(cls)
    if reason:
        if os.environ.get(REQUIRE_ALL) == "1":
            pytest.fail(f"{REQUIRE_ALL}=1 but backend {name!r} is not usable: {reason}")
        pytest.skip(f"not installed: {reason}")
    return cls


@pytest.fixture(scope="session")
def adapter_cls(backend: str) -> Any:
    """The adapter class for backend."""
    return require_backend(backend)


@pytest.fixture(scope="session")
def ex(adapter_cls: Any) -> ModuleType:
    """The backend's examples module: builders and oracles written with the framework's own API."""
    return importlib.import_module(adapter_cls.examples)


@pytest.fixture(autouse=True)
def _capabilities(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("requires")
    if marker is None or "backend" not in request.fixturenames or not in_scope(request.node):
        return
    cls = request.getfixturevalue("adapter_cls")
    for feature in marker.args:
        if feature in cls.capabilities:
            pytest.skip(f"{NOT_SUPPORTED}: {cls.capabilities[feature]}")


_RESULTS: list[pytest.TestReport] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _RESULTS.append(report)


def failure(report: pytest.TestReport, limit: int = 300) -> str:
    """A failed test's exception message and where it was raised, on one line (not only `file:line: Error`)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None:
        lines = (report.longreprtext or "").strip().splitlines()
        return lines[-1][:limit] if lines else "failed"
    message = " ".join(line.strip() for line in crash.message.splitlines() if line.strip())
    where = f" ({os.path.basename(crash.path)}:{crash.lineno})"
    return (message if len(message) + len(where) <= limit else message[:limit - len(where) - 3] + "...") + where


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("up_report")
    if not path:
        return
    rows = []
    for report in _RESULTS:
        props = dict(report.user_properties)
        item_feature = props.get("feature")
        if not item_feature or not (props.get("backend") or props.get("pair")):
            continue
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            reason = failure(report)
        pair = props.get("pair")
        label = "->".join(map(backend_label, pair)) if pair else backend_label(props["backend"])
        rows.append({"test": report.nodeid, "feature": item_feature, "backend": label, "outcome": report.outcome,
                     "reason": reason})
    with open(path, "w") as f:
        json.dump(rows, f)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not in_scope(item):
        return
    marker = item.get_closest_marker("feature")
    if marker is not None:
        item.user_properties.append(("feature", marker.args[0]))
    callspec = getattr(item, "callspec", None)
    for key in ("backend", "pair"):
        if callspec is not None and key in callspec.params:
            item.user_properties.append((key, callspec.params[key]))
