"""`compare --plot`: per built-in initializer, the value histogram on each backend, beside each framework's default."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

INITIALIZERS = {
    "Normal(0, 0.05)": ("Normal", {"mean": 0.0, "std": 0.05}),
    "Uniform(-0.1, 0.1)": ("Uniform", {"low": -0.1, "high": 0.1}),
    "XavierUniform": ("XavierUniform", {}),
    "XavierNormal": ("XavierNormal", {}),
    "KaimingUniform": ("KaimingUniform", {}),
    "KaimingNormal": ("KaimingNormal", {}),
    "TruncatedNormal(0, 0.05)": ("TruncatedNormal", {"std": 0.05}),
    "Orthogonal": ("Orthogonal", {}),
}
DEFAULT = "framework default"


def samples(name: str, seed: int = 0) -> dict[str, list[float]]:
    """The first layer's weight values of the eager example on backend name: native default, then each initializer."""
    import unified_params as up
    from unified_params.registry import adapter_class

    ex = importlib.import_module(adapter_class(name).examples)
    built = ex.eager()
    pm = up.wrap(built.model, built.variables)
    out = {DEFAULT: pm["0.weight"].numpy().ravel().tolist()}
    for label, (cls, kwargs) in INITIALIZERS.items():
        pm.init(getattr(up.init, cls)(**kwargs), pattern=r"0\.weight", seed=seed)
        out[label] = pm["0.weight"].numpy().ravel().tolist()
    return out


def plot_target(path: str) -> str:
    """The file a plot to path writes (matplotlib adds .png to a name without extension), refused now if it cannot be."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ImportError("drawing the plot needs matplotlib: pip install matplotlib") from None
    ext = os.path.splitext(path)[1]
    if ext in ("", "."):
        path, ext = path.rstrip(".") + ".png", ".png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext[1:].lower() not in formats:
        raise ValueError(f"cannot draw {path!r}: unknown image format {ext!r}; use one of {', '.join(sorted(formats))}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    if os.path.isdir(path) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"cannot write {path!r}: it is a folder or write-protected")
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError as e:
        raise ValueError(f"cannot write {path!r}: {e.strerror} in {folder!r}") from None
    os.close(fd)
    os.remove(probe)
    return path


def plot_initializers(path: str, backends: list[str]) -> str:
    """Draw a grid: one row per initializer (and the native default), one column per backend; return the file written."""
    path = plot_target(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data: dict[str, dict[str, Any]] = {}
    for name in backends:
        proc = subprocess.run([sys.executable, "-m", "unified_params.plot", name], capture_output=True, text=True, env=dict(os.environ))
        if proc.returncode == 0:
            data[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [DEFAULT, *INITIALIZERS]
    fig, axes = plt.subplots(len(rows), len(data), figsize=(2.6 * len(data), 1.6 * len(rows)), squeeze=False)
    for j, name in enumerate(data):
        for i, label in enumerate(rows):
            ax = axes[i][j]
            values = np.asarray(data[name][label])
            same = label != DEFAULT and all(np.array_equal(values, np.asarray(data[o][label])) for o in data)
            ax.hist(values, bins=50, color="tab:gray" if label == DEFAULT else "tab:blue")
            ax.set_yticks([])
            ax.locator_params(axis="x", nbins=5)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=7)
            if label != DEFAULT:
                ax.text(1.0, 1.02, "identical on every backend" if same else "differs", transform=ax.transAxes, ha="right", fontsize=6,
                        color="tab:green" if same else "tab:red")
    fig.suptitle("First-layer weight (256, 20):\neach framework's default, then unified_params initializers, seed 0", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    print(json.dumps(samples(sys.argv[1])))
