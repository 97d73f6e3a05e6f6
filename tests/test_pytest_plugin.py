"""The pytest plugin is loaded for everyone who installs the package: it must leave other projects' tests alone."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

FOREIGN_CONFTEST = """
import pytest

def pytest_addoption(parser):
    parser.addoption("--backend", default="numpy", help="the foreign suite's own option")

@pytest.fixture
def pair():
    return ("numpy", "cupy")
"""

FOREIGN_TESTS = """
import pytest

@pytest.mark.parametrize("backend", ["numpy", "cupy"])
def test_own_backend(backend):
    assert backend in ("numpy", "cupy")

def test_own_pair(pair):
    assert pair == ("numpy", "cupy")

@pytest.mark.requires("gpu")
@pytest.mark.parametrize("backend", ["numpy"])
def test_own_requires_marker(backend):
    assert backend == "numpy"

def test_own_option(request):
    assert request.config.getoption("backend") == "cupy"
"""

OPTED_IN = """
import pytest

pytestmark = pytest.mark.unified_params

def test_backend(backend):
    assert backend == "torch"

def test_pair(pair):
    raise AssertionError("one backend: no pair to run")
"""


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a fresh interpreter with the installed plugins, as another project would run it."""
    cmd = [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=folder)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_foreign_backend_and_pair_parameters_run_unchanged(tmp_path: Path) -> None:
    folder = write(tmp_path, {"conftest.py": FOREIGN_CONFTEST, "test_foreign.py": FOREIGN_TESTS})
    proc = pytest_in(folder, "--backend", "cupy")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for test in ("test_own_backend[numpy]", "test_own_backend[cupy]", "test_own_pair",
                 "test_own_requires_marker[numpy]", "test_own_option"):
        assert f"test_foreign.py::{test} PASSED" in out, out
    assert "5 passed" in out


def test_marked_tests_opt_in_and_a_lone_backend_skips_pairs(tmp_path: Path) -> None:
    proc = pytest_in(write(tmp_path, {"test_mine.py": OPTED_IN}), "--backend", "torch")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "test_mine.py::test_backend[torch] PASSED" in out
    assert "add a second `--backend`" in out and "1 passed, 1 skipped" in out
