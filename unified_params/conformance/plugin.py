"""pytest plugin: the `backend` fixture, capability marks, and a JSON report for the matrix."""
from __future__ import annotations

import importlib
import json
import os
from types import ModuleType
from typing import Any

import pytest

REQUIRE_ALL = "UNIFIED_PARAMS_REQUIRE_ALL"
NOT_SUPPORTED = "not supported"


def backend_label(name: str) -> str:
    """keras runs on one of its own backends per process: keras[tensorflow], keras[jax], keras[torch]."""
    if name == "keras":
        return f"keras[{os.environ.get('KERAS_BACKEND', 'tensorflow')}]"
    return name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unified_params")
    group.addoption("--backend", action="append", default=None, help="run the conformance suite on this backend (repeatable)")
    group.addoption("--up-report", default=None, help="write per-test outcomes as JSON here (for the matrix)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "feature(id): the conformance feature (E1-E13, errors, state, ...) a test checks")
    config.addinivalue_line("markers", "requires(*capabilities): adapter capabilities the test needs")
    config.addinivalue_line("markers", "cross: a cross-framework test (needs every backend in one process)")


def _selected(config: pytest.Config) -> list[str]:
    from unified_params.registry import names

    return config.getoption("backend") or names()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    selected = _selected(metafunc.config)
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected, scope="session")
    if "pair" in metafunc.fixturenames:
        pairs = [(a, b) for a in selected for b in selected if a != b]
        metafunc.parametrize("pair", pairs, ids=[f"{a}->{b}" for a, b in pairs], scope="session")


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
    if marker is None or "backend" not in request.fixturenames:
        return
    cls = request.getfixturevalue("adapter_cls")
    for feature in marker.args:
        if feature in cls.capabilities:
            pytest.skip(f"{NOT_SUPPORTED}: {cls.capabilities[feature]}")


_RESULTS: list[pytest.TestReport] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _RESULTS.append(report)


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
            reason = (report.longreprtext or "").strip().splitlines()[-1][:300] if report.longreprtext else "failed"
        for backend in ([props["backend"]] if props.get("backend") else props["pair"]):
            rows.append({"test": report.nodeid, "feature": item_feature, "backend": backend_label(backend),
                         "outcome": report.outcome, "reason": reason})
    with open(path, "w") as f:
        json.dump(rows, f)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("feature")
    if marker is not None:
        item.user_properties.append(("feature", marker.args[0]))
    callspec = getattr(item, "callspec", None)
    for key in ("backend", "pair"):
        if callspec is not None and key in callspec.params:
            item.user_properties.append((key, callspec.params[key]))
