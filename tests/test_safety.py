"""Nothing is executed from data: no pickle, eval, exec or unsafe loaders in the package, and loading never unpickles."""
from __future__ import annotations

import ast
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import unified_params as up

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "unified_params").rglob("*.py"), *(ROOT / "backends").glob("*.py")])

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "pickletools", "dill", "cloudpickle", "joblib", "shelve",
                     "marshal", "jsonpickle", "yaml", "copyreg"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__", "execfile", "input", "breakpoint"}
FORBIDDEN_CALLS = {
    ("torch", "load"), ("np", "load"), ("numpy", "load"), ("jnp", "load"), ("nd", "load"), ("mx", "load"),
    ("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("pd", "read_pickle"),
    ("keras", "load_model"), ("models", "load_model"), ("saving", "load_model"), ("saved_model", "load"),
    ("serialization", "from_bytes"), ("serialization", "msgpack_restore"),
}
UNSAFE_KEYWORDS = {("allow_pickle", True), ("weights_only", False), ("safe_mode", False), ("shell", True)}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def findings(path: Path, root: Path = ROOT) -> list[str]:
    """Every use of a forbidden module, builtin, loader or keyword in one source file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            out += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            out.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if len(name) == 1 and name[0] in FORBIDDEN_BUILTINS:
                out.append(f"{where} {name[0]}()")
            if len(name) >= 2 and tuple(name[-2:]) in FORBIDDEN_CALLS:
                out.append(f"{where} {'.'.join(name)}()")
            if name and name[-1] in ("import_module", "getattr", "__import__"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and arg.value in FORBIDDEN_MODULES | FORBIDDEN_BUILTINS:
                        out.append(f"{where} {name[-1]}({arg.value!r})")
            for kw in node.keywords:
                if isinstance(kw.value, ast.Constant) and (kw.arg, kw.value.value) in UNSAFE_KEYWORDS:
                    out.append(f"{where} {kw.arg}={kw.value.value}")
        elif isinstance(node, ast.Name) and node.id in ("eval", "exec") and isinstance(node.ctx, ast.Load):
            out.append(f"{where} reference to {node.id}")
    return out


def test_sources_are_scanned() -> None:
    names = {p.name for p in SOURCES}
    assert {"checkpoint.py", "api.py", "init.py", "registry.py", "torch.py"} <= names


def test_no_pickle_eval_exec_or_unsafe_loader_in_the_package() -> None:
    found = [f for path in SOURCES for f in findings(path)]
    assert found == [], "unsafe code in the package:\n" + "\n".join(found)


@pytest.mark.parametrize("snippet, expected", [
    ("import pickle", "import pickle"),
    ("from dill import loads", "from dill import"),
    ("x = eval('1')", "eval()"),
    ("exec(code)", "exec()"),
    ("torch.load(path)", "torch.load()"),
    ("np.load(path, allow_pickle=True)", "np.load()"),
    ("f(path, allow_pickle=True)", "allow_pickle=True"),
    ("importlib.import_module('pickle')", "import_module('pickle')"),
    ("getattr(builtins, 'eval')('1')", "getattr('eval')"),
    ("subprocess.run(cmd, shell=True)", "shell=True"),
    ("run = eval", "reference to eval"),
])
def test_the_scanner_catches_each_pattern(tmp_path: Path, snippet: str, expected: str) -> None:
    path = tmp_path / "probe.py"
    path.write_text(snippet + "\n")
    found = findings(path, tmp_path)
    assert any(expected in f for f in found), found


def test_method_calls_named_eval_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ok.py"
    path.write_text("model.eval()\npattern = re.compile('x')\nmodule.exec_module(m)\n")
    assert findings(path, tmp_path) == []


class _Touch:
    """Unpickling this creates the marker file: proof that something was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _torch_style_zip(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")


@pytest.mark.parametrize("container", ["raw", "zip"])
def test_loading_a_pickle_executes_nothing(tmp_path: Path, container: str) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    pm = up.wrap(net)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    marker = tmp_path / "executed"
    payload = pickle.dumps({"0.weight": _Touch(marker)})
    path = tmp_path / "model.safetensors"
    if container == "raw":
        path.write_bytes(payload)
    else:
        _torch_style_zip(path, payload)
    with pytest.raises(up.CheckpointError):
        pm.load(path)
    with pytest.raises(up.CheckpointError):
        pm.load(path, strict=False, cast=True)
    assert not marker.exists()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_load_state_dict_does_not_unpickle_object_arrays() -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(2, 2)
    pm = up.wrap(net)
    before = net.weight.detach().clone()
    weird = np.empty((2, 2), dtype=object)
    weird[...] = "x"
    with pytest.raises(up.UnifiedParamsError):
        pm.load_state_dict({"weight": weird, "bias": np.zeros(2, np.float32)})
    assert torch.equal(net.weight, before)
