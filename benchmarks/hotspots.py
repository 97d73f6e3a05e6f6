"""Where the time of one benchmarked operation goes: `python benchmarks/hotspots.py keras state_dict`.

Runs the operation a few times under pyinstrument (`pip install pyinstrument`) and prints the call
tree. For native code (numpy, torch kernels) use py-spy instead:
`py-spy record --native -o out.svg -- python benchmarks/hotspots.py torch init --plain`.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES, Case, big_shapes  # noqa: E402

import unified_params as up  # noqa: E402

OPERATIONS = ("wrap", "names", "collect", "getitem", "init", "state_dict", "transfer_in", "transfer_out")


def operation(case: Case, name: str, small: bool) -> Callable[[], Any]:
    """The unified_params call to profile, on the model the benchmarks use for it."""
    if name in ("wrap", "names", "collect", "getitem"):
        m = case.many(500)
        pm = case.wrap(m)
        return {"wrap": lambda: case.wrap(m).names(), "names": pm.names,
                "collect": lambda: pm.collect(r".*weight"), "getitem": lambda: pm["250.weight"]}[name]
    m = case.big(big_shapes(16, small))
    pm = case.wrap(m)
    if name == "init":
        return lambda: (pm.init(up.init.Normal(std=0.01), pattern=r".*weight", seed=0), case.pm_sync(pm))
    if name == "state_dict":
        return pm.state_dict
    from cases import TorchCase

    torch_case = TorchCase()
    tpm = torch_case.wrap(torch_case.big(big_shapes(16, small)))
    tpm.init(up.init.Zeros())
    return (lambda: up.transfer(tpm, pm)) if name == "transfer_in" else (lambda: up.transfer(pm, tpm))


def main() -> None:
    """Profile one operation of one backend."""
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=sorted(CASES))
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="no pyinstrument: just run (for py-spy)")
    args = parser.parse_args()
    fn = operation(CASES[args.backend](), args.operation, args.small)
    fn()
    times = args.times * (200 if args.operation in ("names", "collect", "getitem", "wrap") else 1)
    if args.plain:
        for _ in range(times):
            fn()
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(times):
            fn()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    print(re.sub(r"\n\s*\n", "\n", text))


if __name__ == "__main__":
    main()
