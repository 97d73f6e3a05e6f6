"""The `unified-params` command: backends, conformance, compare, inspect."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

Table = tuple[str, list[str], list[list[Any]]]


def _render(tables: list[Table], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([{"title": t, "headers": h, "rows": r} for t, h, r in tables], indent=1, default=str))
        return
    if fmt == "markdown":
        from tabulate import tabulate

        for title, headers, rows in tables:
            print(f"### {title}\n\n{tabulate(rows, headers=headers, tablefmt='github')}\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    console = Console(width=None if sys.stdout.isatty() else 200)
    for title, headers, rows in tables:
        table = RichTable(title=title, title_justify="left", show_lines=False)
        for h in headers:
            table.add_column(escape(str(h)), overflow="fold")
        for row in rows:
            table.add_row(*(_style(c) for c in row))
        console.print(table)


def _style(cell: Any) -> str:
    text = str(cell)
    colors = {"pass": "green", "pass (partial)": "green", "fail": "bold red", "not supported": "yellow",
              "not installed": "red"}
    from rich.markup import escape

    return f"[{colors[text]}]{text}[/]" if text in colors else escape(text)


def cmd_backends(args: argparse.Namespace) -> int:
    from .registry import backends

    rows = [[b.name, b.version or "-", "yes" if b.importable else "no", b.reason or "",
             "; ".join(f"{k}: {v}" for k, v in b.capabilities.items()) or "nothing"] for b in backends()]
    _render([("Registered backends", ["backend", "framework version", "importable", "why not", "not supported"], rows)], args.format)
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    from .conformance.examples import FEATURES
    from .conformance.matrix import CROSS, execute_all, matrix, runs
    from .conformance.plugin import ONE_BACKEND
    from .registry import names

    all_runs = execute_all(runs(args.backend or names()), jobs=args.jobs)
    features, cells, notes = matrix(all_runs)
    labels = [r.label for r in all_runs if not r.label.startswith(CROSS)]
    own, cross = [f for f in features if not f.startswith(CROSS)], [f for f in features if f.startswith(CROSS)]
    rows = [[f, FEATURES.get(f, ""), *[cells[f].get(label, "-") for label in labels]] for f in own]
    tables: list[Table] = [("Conformance: feature x backend", ["feature", "what", *labels], rows)]
    if cross:
        pairs = list(dict.fromkeys(pair for f in cross for pair in cells[f]))
        tables.append(("Cross-framework: pair x feature", ["pair", *[f.removeprefix("cross: ") for f in cross]],
                       [[pair, *[cells[f].get(pair, "-") for f in cross]] for pair in pairs]))
    if len(set(args.backend or names())) == 1:
        notes[CROSS] = ONE_BACKEND
    if notes:
        tables.append(("Notes", ["where", "reason"], [[k, v] for k, v in notes.items()]))
    _render(tables, args.format)
    silent = [r.label for r in all_runs if not r.rows]
    failed = bool(silent) or not features or any(v in ("fail", "not installed") for c in cells.values() for v in c.values())
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    if args.model:
        return _compare_models(args)
    from .registry import backends
    from .sidebyside import run_all, tables

    chosen = [b for b in backends() if not args.backend or b.name in args.backend]
    unusable = [f"{b.name!r}: {b.reason}" for b in chosen if args.backend and not b.importable]
    if unusable:
        print(f"unified-params compare: cannot run {'; '.join(unusable)}", file=sys.stderr)
        return 1
    usable = [b.name for b in chosen if b.importable]
    results = run_all(usable, jobs=args.jobs)
    _render(tables(results), args.format)
    if args.plot:
        from .plot import plot_initializers

        print(f"wrote {plot_initializers(args.plot, usable)}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


def _compare_models(args: argparse.Namespace) -> int:
    """compare --model: the first model is the reference; each other one gets its parameters and is compared."""
    from .comparison import compare
    from .wrapping import wrap

    inputs = tuple(args.input or [])
    if not inputs:
        print("unified-params compare: --model needs --input (e.g. --input shape=2,3,32,32)", file=sys.stderr)
        return 2
    models = [(label, wrap(*_built(build()))) for label, build in args.model]
    (ref_label, ref), failed, tables = models[0], False, []
    ref.init(_reference_init(), seed=args.seed)
    summary = []
    for label, pm in models[1:]:
        result = compare(ref, pm, inputs=inputs, per_layer=True, rename=args.rename, rtol=args.rtol, atol=args.atol)
        failed |= not result
        summary.append([f"{ref_label} -> {label}", "yes" if result else "no", _fmt(max(result.max_abs.values(), default=0)),
                        _fmt(result.outputs), _fmt(max(result.grads.values(), default=0)), result.first_mismatch or "",
                        "; ".join(result.notes)])
        tables.append((f"{ref_label} -> {label}: per item", ["what", "name", "max abs diff", "agrees"],
                       [[w, n, _fmt(d), "yes" if ok else "no"] for w, n, d, ok in result.rows]))
    head = ["pair", "agree", "params", "outputs", "gradients", "first layer that disagrees", "notes"]
    _render([("Your models, compared", head, summary), *tables], args.format)
    return 1 if failed else 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _reference_init() -> Any:
    from .init import Uniform

    return Uniform(-0.5, 0.5)


def _built(value: Any) -> tuple[Any, Any]:
    """(model, variables) from what a --model function returns: a model, (linen module, variables), or a Built."""
    if hasattr(value, "model") and hasattr(value, "variables") and not hasattr(value, "names"):
        return value.model, value.variables
    if isinstance(value, tuple) and len(value) == 2:
        return value
    return value, None


def _model_spec(value: str) -> tuple[str, Any]:
    """--model NAME=package.module:function: a label and the function that builds the model."""
    import importlib

    label, sep, target = value.partition("=")
    module, colon, function = target.partition(":")
    if not (sep and colon and label and module and function):
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=package.module:function")
    try:
        return label, getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as e:
        raise argparse.ArgumentTypeError(f"{value!r}: cannot load {target}: {e}") from None


def _input_spec(value: str) -> Any:
    """--input shape=2,3,32,32[,dtype=int32,high=10]: seeded uniform data in canonical layout (channels first)."""
    import numpy as np

    fields = dict(part.split("=", 1) for part in value.replace(",dtype", ";dtype").replace(",high", ";high").split(";")
                  if "=" in part)
    try:
        shape = tuple(int(d) for d in fields["shape"].split(","))
        dtype = np.dtype(fields.get("dtype", "float32"))
        rng = np.random.default_rng(0)
        if dtype.kind in "iu":
            return rng.integers(0, int(fields.get("high", 10)), size=shape).astype(dtype)
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    except (KeyError, ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not shape=D1,D2,...[,dtype=NAME][,high=N]: {e}") from None


def _rename_file(value: str) -> list[tuple[str, str]]:
    """--rename FILE: a JSON list of [regex, replacement] pairs."""
    try:
        with open(value) as f:
            rules = json.load(f)
        return [(str(a), str(b)) for a, b in rules]
    except (OSError, ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not a JSON list of [regex, replacement] pairs: {e}") from None


def _backend_name(value: str) -> str:
    """--backend: a registered backend's name."""
    from .registry import names

    known = names()
    if value not in known:
        raise argparse.ArgumentTypeError(f"unknown backend {value!r}; registered: {', '.join(known) or 'none'}")
    return value


def _jobs(value: str) -> int:
    """--jobs: a whole number of at least 1."""
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return jobs


def _plot_file(value: str) -> str:
    """--plot: the file that will be written, checked before any work starts."""
    from .plot import plot_target

    try:
        return plot_target(value)
    except (ValueError, OSError, ImportError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_inspect(args: argparse.Namespace) -> int:
    from .errors import CheckpointError
    from .inspection import tables

    try:
        found, ok = tables(args.file)
    except CheckpointError as e:
        print(f"unified-params inspect: {e}", file=sys.stderr)
        return 1
    _render(found, args.format)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unified-params", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_ in (("backends", cmd_backends, "list adapters and framework versions"),
                            ("conformance", cmd_conformance, "run the conformance suite and print the feature x backend matrix"),
                            ("compare", cmd_compare, "run the documents' examples on every backend, side by side")):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--format", choices=("table", "json", "markdown"), default="table")
        if name != "backends":
            p.add_argument("--backend", action="append", type=_backend_name, help="only this backend (repeatable)")
            p.add_argument("--jobs", type=_jobs, default=2, help="backends run in parallel (at least 1)")
        if name == "compare":
            p.add_argument("--plot", metavar="FILE.png", type=_plot_file,
                           help="draw initializer histograms per backend (.png when FILE has no extension)")
            p.add_argument("--model", action="append", type=_model_spec, metavar="NAME=module:function",
                           help="compare your own models instead: the first is the reference (repeatable)")
            p.add_argument("--input", action="append", type=_input_spec, metavar="shape=2,3,32,32",
                           help="one model input in canonical layout (channels first; repeatable for several inputs)")
            p.add_argument("--rename", type=_rename_file, metavar="FILE.json",
                           help="[[regex, replacement], ...] from the reference's names to the others'")
            p.add_argument("--seed", type=int, default=0, help="seed of the reference's Uniform(-0.5, 0.5) init")
            p.add_argument("--rtol", type=float, default=1e-5)
            p.add_argument("--atol", type=float, default=1e-6)
    p = sub.add_parser("inspect", help="names, shapes, dtypes, tied groups and checksum status of a checkpoint")
    p.set_defaults(fn=cmd_inspect)
    p.add_argument("file", help="a .safetensors file, a sharded checkpoint's folder or its index")
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
