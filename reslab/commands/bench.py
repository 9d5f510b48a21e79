"""``reslab bench``: every speed and memory target, measured on this machine.

Each layer with targets provides ``bench(ctx) -> list[Measurement]``; targets live there,
never in timed tests. Every line carries its reference (measured in the same process,
alternating with it where it is a speed) and the ratio to it. ``--quick`` measures fewer
and shorter rounds (a few minutes); ``--catalogue`` also times the whole quick catalogue
from an empty store.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

from ..benchmark import BenchContext, Measurement
from ..environment import collect_env
from ..files import atomic_write_text

LAYERS = {  # name -> module with bench()
    "train": "reslab.train.bench",
    "runs": "reslab.runs.bench",
    "probes": "reslab.probes.bench",
    "report": "reslab.report.bench",
}
# The quick catalogue's budgets from an empty store, 2 workers (set for a 2-core CPU without native bf16):
# the nine studies of the essay's core argument first, then the other seven in the same store.
NINE = ("vanishing", "degradation", "identity", "propagation", "shortcut-variants", "activation-variants")
NINE += ("lesion", "paths", "shattered")
NINE_TARGET_S = 540.0  # 9 of the 15 minutes, so that the seven later studies fit the rest
CATALOGUE_TARGET_S = 900.0  # all sixteen studies


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the speed targets (throughput, probe and report times)")
    p.add_argument("--only", nargs="+", choices=sorted(LAYERS), help="measure only these layers")
    p.add_argument("--quick", action="store_true", help="fewer and shorter rounds: a few minutes in all")
    p.add_argument("--catalogue", action="store_true", help="also time `reproduce --scale quick` from an empty store")
    p.add_argument("--json", dest="json_out", default=None, help="also write the measurements to this JSON file")
    p.set_defaults(func=run, computes=True)


def _catalogue() -> list[Measurement]:
    from ..reproduce import reproduce  # on use, so `reslab --help` does not load these layers
    from ..runs.executors import LocalExecutor
    from ..runs.store import RunStore
    from ..studies.catalogue import study_ids

    seconds, studies = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for part in (list(NINE), [i for i in study_ids() if i not in NINE]):
            start = time.perf_counter()
            reproduce(
                Path(tmp) / "report",
                scale="quick",
                only=part,
                store=RunStore(Path(tmp) / "store"),
                executor=LocalExecutor(workers=2, log=lambda line: None),
                log=lambda line: None,
            )
            seconds.append(time.perf_counter() - start)
            found = json.loads((Path(tmp) / "report" / "results.json").read_text())["studies"]
            studies.append([s for s in found if s["id"] in part])
    return [
        _catalogue_line("the nine studies of the essay's core argument", seconds[0], NINE_TARGET_S, studies[0]),
        _catalogue_line(
            "all sixteen studies (the other seven after the nine)",
            sum(seconds),
            CATALOGUE_TARGET_S,
            studies[0] + studies[1],
        ),
    ]


def _catalogue_line(what: str, seconds: float, target: float, studies: list[dict]) -> Measurement:
    detail = ", ".join(f"{s['id']} {s['elapsed_s']:.0f}s" for s in studies)
    serial = sum(s["elapsed_s"] for s in studies)  # each study's own time, as if one ran after another
    return Measurement(
        f"catalogue: reproduce --scale quick, {what}, empty store, 2 workers",
        round(seconds, 1),
        "s",
        f"< {target:.0f} s",
        seconds < target,
        detail,
        f"the studies' own times summed {serial:.0f} s",
        round(seconds / serial, 2),
    )


def run(args: argparse.Namespace) -> int:
    ctx = BenchContext(quick=args.quick, progress=True)
    results = []
    start = time.perf_counter()
    for name in args.only or list(LAYERS):
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results += importlib.import_module(LAYERS[name]).bench(ctx)
    if args.catalogue:
        print("timing the quick catalogue (several minutes) ...", file=sys.stderr, flush=True)
        results += _catalogue()
    seconds = time.perf_counter() - start
    for line in _lines(results):
        print(line)
    peak = f"; {ctx.peak.describe()}" if ctx.peak.samples else ""
    print(f"{len(results)} measurements in {seconds:.0f} s{peak}")
    if args.json_out:
        document = {
            "quick": args.quick,
            "seconds": round(seconds, 1),
            "peak_flops": _peaks(ctx),
            "env": collect_env(),
            "measurements": [m.to_dict() for m in results],
        }
        atomic_write_text(Path(args.json_out), json.dumps(document, indent=1))
    return 0


def _peaks(ctx: BenchContext) -> dict[str, float]:
    return {precision: ctx.peak.peak(precision) for precision in ctx.peak.samples}


def _lines(results: list[Measurement]) -> list[str]:
    """Each measurement: mark, name, value, reference and ratio, target; its detail below."""
    width = max(len(m.name) for m in results)
    out = []
    for m in results:
        mark = {True: "ok  ", False: "MISS", None: "    "}[m.passed]
        against = f"  vs {m.reference}" + (f" = {m.ratio:g}x" if m.ratio is not None else "") if m.reference else ""
        target = f"  target {m.target}" if m.target else ""
        out.append(f"{mark} {m.name:<{width}}  {m.value:>10.4g} {m.unit}{against}{target}")
        if m.detail:
            out.append(f"     {'':<{width}}  {m.detail}")
    return out
