"""What `unified-params compare` shows: the documents' examples run on each backend, native and unified views.

Each backend is run in its own interpreter (`python -m unified_params.sidebyside NAME` prints JSON), so
frameworks never share a process and Keras keeps the backend it was started with.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .adapter import DEFERRED, is_counter

Table = tuple[str, list[str], list[list[Any]]]


def _shape(obj: Any) -> str:
    shape = getattr(obj, "shape", None)
    return str(tuple(shape)) if shape is not None else "?"


def _digest(state: dict[str, np.ndarray]) -> str:
    """A short hash of every value's bytes, by name (step counters left out): equal digests mean bitwise-equal states."""
    return hashlib.sha256(b"".join(state[k].tobytes() for k in sorted(state) if not is_counter(k))).hexdigest()[:16]


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def collect(name: str) -> dict[str, Any]:
    """Run the examples on one backend through the unified API, with the native facts beside them."""
    import unified_params as up
    from unified_params.conformance.examples import deferred_input, mlp_input
    from unified_params.conformance.plugin import backend_label
    from unified_params.registry import adapter_class

    cls = adapter_class(name)
    ex = importlib.import_module(cls.examples)
    x = mlp_input()
    built = ex.mlp()
    pm = up.wrap(built.model, built.variables)
    data: dict[str, Any] = {"backend": backend_label(name), "version": cls.framework_version()}
    data["params"] = [{"name": n, "native_name": p.native_name, "native_shape": _shape(p.native), "shape": _fmt(p.shape),
                       "dtype": p.dtype} for n, p in pm.items()]
    data["native_listing"] = ex.native_names(pm)
    data["layer_types"] = _layer_types(cls.examples.replace("_examples", "_rules"))
    data["grad_before"] = {"unified": repr(pm["0.weight"].grad), "native": getattr(ex, "GRAD_BEFORE_BACKWARD", "n/a")}
    pm.init(up.init.Normal(0.0, 0.01), pattern=r".*weight", seed=0)
    pm.init(up.init.Zeros(), kind="bias")
    state = pm.state_dict()
    data["init"] = {"first": [round(float(v), 6) for v in state["0.weight"].ravel()[:3]],
                    "digest": _digest(state)}
    data["equality"] = {"mlp": _run(built_model(ex, "mlp"), (x,))}
    if hasattr(ex, "zoo"):
        data["equality"]["zoo"] = _run(built_model(ex, "zoo"), tuple(ex.zoo_input()))
    nested = ex.nested()
    npm = up.wrap(nested.model, nested.variables)
    bias = npm.layer(0, 1, 0)["bias"]
    data["nested"] = {"count": len(npm), "name": bias.full_name, "native_name": bias.native_name, "shape": _fmt(bias.shape)}
    tied = ex.tied()
    tpm = up.wrap(tied.model, tied.variables)
    data["tied"] = {"groups": tpm.tied(), "names": len(tpm), "native_listed": len(ex.native_names(tpm)),
                    "num_params": tpm.num_params()}
    if DEFERRED in cls.capabilities:
        data["deferred"] = {"supported": False, "reason": cls.capabilities[DEFERRED]}
    else:
        d = ex.deferred()
        dpm = up.wrap(d.model, d.variables)
        before = {n: _fmt(p.shape) for n, p in dpm.items()}
        dpm.materialize(deferred_input(20))
        data["deferred"] = {"supported": True, "before": before, "after": {n: _fmt(p.shape) for n, p in dpm.items()}}
    return data


def _layer_types(module: str) -> dict[str, str]:
    """Layer type -> supported classes or why not, from the backend's rule table (none for an adapter without one)."""
    from unified_params.layer_types import supported

    try:
        rules = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        return {}
    return supported(rules.RULES, getattr(rules, "MISSING", None))


def built_model(ex: Any, kind: str) -> Any:
    import unified_params as up

    built = getattr(ex, kind)()
    return up.wrap(built.model, built.variables)


def _run(pm: Any, inputs: tuple) -> dict[str, Any]:
    """Seeded init (running variances kept positive), then digest, outputs and gradients."""
    import unified_params as up

    pm.init(up.init.Uniform(-0.5, 0.5), seed=3)
    if pm.collect(kind="running_var"):
        pm.init(up.init.Uniform(0.5, 1.5), kind="running_var", seed=3)
    state = pm.state_dict()
    return {"digest": _digest(state),
            "output": pm.forward(*inputs).tolist(), "grads": {k: v.tolist() for k, v in pm.grads(*inputs).items()}}


def run(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """collect(name) in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "unified_params.sidebyside", name], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        return {"backend": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_all(names: list[str], jobs: int = 2) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, names))


def tables(results: list[dict[str, Any]]) -> list[Table]:
    """The side-by-side tables, ending with the cross-framework equality table."""
    ok = [r for r in results if "error" not in r]
    out: list[Table] = []
    heads = [f"{r['backend']} {r['version']}" for r in ok]
    names = [p["name"] for p in ok[0]["params"]] if ok else []
    rows = []
    for i, n in enumerate(names):
        rows.append([n, ok[0]["params"][i]["shape"], *[f"{r['params'][i]['native_name']} {r['params'][i]['native_shape']}" for r in ok]])
    out.append(("E4: canonical name and shape | each framework's native name and native shape", ["canonical", "shape", *heads], rows))
    out.append(("E3: gradient before any backward pass", ["", *heads],
                [["unified p.grad", *[r["grad_before"]["unified"] for r in ok]], ["native", *[r["grad_before"]["native"] for r in ok]]]))
    out.append(("E6: nested rgnet, pm.layer(0, 1, 0)['bias']", ["", *heads],
                [["parameters", *[r["nested"]["count"] for r in ok]], ["canonical name", *[r["nested"]["name"] for r in ok]],
                 ["native name", *[r["nested"]["native_name"] for r in ok]], ["shape", *[r["nested"]["shape"] for r in ok]]]))
    out.append(("E7: Normal(0, 0.01) on weights, zeros on biases, seed 0", ["", *heads],
                [["0.weight[0, :3]", *[r["init"]["first"] for r in ok]], ["state digest", *[r["init"]["digest"] for r in ok]]]))
    out.append(("E10: shared layer", ["", *heads],
                [["pm.tied()", *[r["tied"]["groups"] for r in ok]], ["unified names", *[r["tied"]["names"] for r in ok]],
                 ["native listing", *[r["tied"]["native_listed"] for r in ok]], ["num_params (counted once)", *[r["tied"]["num_params"] for r in ok]]]))
    types = list(dict.fromkeys(t for r in ok for t in r.get("layer_types", {})))
    out.append(("Layer types (rule tables): the classes mapped to each canonical type, or why not", ["layer type", *heads],
                [[t, *[r.get("layer_types", {}).get(t, "no rule table") for r in ok]] for t in types]))
    drows = []
    for r in ok:
        d = r["deferred"]
        if not d["supported"]:
            drows.append([r["backend"], "not supported", d["reason"]])
        else:
            drows.append([r["backend"], ", ".join(f"{k} {v}" for k, v in d["before"].items() if "weight" in k),
                          ", ".join(f"{k} {v}" for k, v in d["after"].items() if "weight" in k)])
    out.append(("E11: deferred shapes, before and after a (2, 20) input", ["backend", "before", "after"], drows))
    eq = []
    for kind in ("mlp", "zoo"):
        having = [r for r in ok if kind in r["equality"]]
        for i, a in enumerate(having):
            for b in having[i + 1:]:
                ea, eb = a["equality"][kind], b["equality"][kind]
                out_diff = float(np.max(np.abs(np.asarray(ea["output"]) - np.asarray(eb["output"]))))
                grad_diff = max((float(np.max(np.abs(np.asarray(eb["grads"][k]) - np.asarray(v)))) for k, v in ea["grads"].items() if k in eb["grads"]), default=float("nan"))
                eq.append([kind, f"{a['backend']} vs {b['backend']}", "bitwise equal" if ea["digest"] == eb["digest"] else "DIFFERENT",
                           f"{out_diff:.2e}", f"{grad_diff:.2e}"])
    out.append(("Across frameworks: same seed Uniform(-0.5, 0.5), same model (E1 MLP; zoo = conv, batch norm, pooling, embedding, layer norm, dense)",
                ["model", "pair", "parameters", "outputs max abs diff", "gradients max abs diff"], eq))
    errors = [[r["backend"], r["error"]] for r in results if "error" in r]
    if errors:
        out.append(("Backends that could not run", ["backend", "error"], errors))
    return out


if __name__ == "__main__":
    print(json.dumps(collect(sys.argv[1])))
