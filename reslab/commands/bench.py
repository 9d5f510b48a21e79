"""``reslab bench``: every speed and memory target, measured on this machine.

Each layer with targets provides ``bench() -> list[Measurement]``; targets live here, never
in timed tests. ``--catalogue`` also times the whole quick catalogue from an empty store.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

from ..benchmark import Measurement

LAYERS = {  # name -> module with bench()
    "train": "reslab.train.bench",
    "runs": "reslab.runs.bench",
    "probes": "reslab.probes.bench",
    "report": "reslab.report.bench",
}
CATALOGUE_TARGET_S = 540.0  # the nine studies of the essay's core argument: 9 of the 15 quick minutes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the speed targets (throughput, probe and report times)")
    p.add_argument("--only", nargs="+", choices=sorted(LAYERS), help="measure only these layers")
    p.add_argument("--catalogue", action="store_true", help="also time `reproduce --scale quick` from an empty store")
    p.add_argument("--json", dest="json_out", default=None, help="also write the measurements to this JSON file")
    p.set_defaults(func=run)


def _catalogue() -> list[Measurement]:
    from ..reproduce import reproduce  # on use, so `reslab --help` does not load these layers
    from ..runs.executors import LocalExecutor
    from ..runs.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        reproduce(
            Path(tmp) / "report",
            scale="quick",
            store=RunStore(Path(tmp) / "store"),
            executor=LocalExecutor(workers=2, log=lambda line: None),
            log=lambda line: None,
        )
        seconds = time.perf_counter() - start
        studies = json.loads((Path(tmp) / "report" / "results.json").read_text())["studies"]
    detail = ", ".join(f"{s['id']} {s['elapsed_s']:.0f}s" for s in studies)
    return [
        Measurement(
            "catalogue: reproduce --scale quick, empty store, 2 workers",
            round(seconds, 1),
            "s",
            f"< {CATALOGUE_TARGET_S:.0f} s",
            seconds < CATALOGUE_TARGET_S,
            detail,
        )
    ]


def run(args: argparse.Namespace) -> int:
    results = []
    for name in args.only or list(LAYERS):
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results += importlib.import_module(LAYERS[name]).bench()
    if args.catalogue:
        print("timing the quick catalogue (several minutes) ...", file=sys.stderr, flush=True)
        results += _catalogue()
    width = max(len(m.name) for m in results)
    for m in results:
        mark = {True: "ok  ", False: "MISS", None: "    "}[m.passed]
        target = f"  target {m.target}" if m.target else ""
        print(f"{mark} {m.name:<{width}}  {m.value:>10.4g} {m.unit}{target}")
        if m.detail:
            print(f"     {'':<{width}}  {m.detail}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([m.to_dict() for m in results], indent=1))
    return 0
