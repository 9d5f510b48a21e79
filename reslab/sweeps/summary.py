"""A sweep's results per cell: mean ± std over seeds of each metric, as a table, CSV and JSON.

A metric is read from each run's result.json. A run without a finite value for it (a run
that diverged before its evaluation) is left out of that metric's mean and counted in
``diverged``. Errors of classification runs are shown in percent; the CSV and JSON keep
the fractions result.json holds.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..files import atomic_write_text, is_finite_number
from ..runs.store import RunRecord
from ..studies.stats import Summary, fmt, summarize
from .spec import Sweep


@dataclass
class CellSummary:
    labels: dict[str, str]
    run_ids: list[str]
    diverged: int
    stats: dict[str, Summary]


def summarize_sweep(sweep: Sweep, records: Sequence[RunRecord]) -> list[CellSummary]:
    """``records`` in the order of ``sweep.configs`` (cell by cell, seed by seed)."""
    out, i = [], 0
    for cell in sweep.cells:
        mine = list(records[i : i + len(cell.configs)])
        i += len(cell.configs)
        results = [r.result or {} for r in mine]
        stats = {m: summarize([v for res in results if is_finite_number(v := res.get(m))]) for m in sweep.metrics}
        diverged = sum(res.get("status") == "diverged" for res in results)
        out.append(CellSummary(cell.labels, [r.id for r in mine], diverged, stats))
    return out


def percent_metrics(sweep: Sweep, records: Sequence[RunRecord]) -> dict[str, bool]:
    """Which metrics are shown in percent: errors, where the runs measure a classification error."""
    mse = any((r.result or {}).get("error_metric") == "mse" for r in records)
    return {m: m.endswith("_error") and not mse for m in sweep.metrics}


def show(s: Summary, percent: bool) -> str:
    """``mean ± std`` (the mean alone for one run), errors in percent."""
    k = 100.0 if percent else 1.0
    digits = 1 if percent or abs(s.mean) >= 100 else 3
    return fmt(k * s.mean, k * s.std if s.n > 1 else None, digits)


def table(sweep: Sweep, cells: list[CellSummary], percent: dict[str, bool]) -> list[str]:
    """The summary as aligned text lines: one row per cell, a column per axis and per metric."""
    heads = [a.name for a in sweep.axes] + ["runs"] + [m + (" (%)" if percent[m] else "") for m in sweep.metrics]
    rows = [
        [c.labels[a.name] for a in sweep.axes]
        + [f"{len(c.run_ids)}" + (f" ({c.diverged} diverged)" if c.diverged else "")]
        + [show(c.stats[m], percent[m]) for m in sweep.metrics]
        for c in cells
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    return ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in [heads, *rows]]


def write_csv(path, sweep: Sweep, cells: list[CellSummary]) -> None:
    """One row per cell: its axis labels, runs, diverged runs, and mean, std and n per metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    stats = [f"{m}_{k}" for m in sweep.metrics for k in ("mean", "std", "n")]
    writer.writerow([a.name for a in sweep.axes] + ["runs", "diverged"] + stats)
    for c in cells:
        values = []
        for m in sweep.metrics:
            s = c.stats[m]
            values += [_number(s.mean, s.n > 0), _number(s.std, s.n > 1), s.n]
        writer.writerow([c.labels[a.name] for a in sweep.axes] + [len(c.run_ids), c.diverged] + values)
    atomic_write_text(path, buffer.getvalue())


def _number(value: float, known: bool) -> str:
    return repr(value) if known and math.isfinite(value) else ""


def to_json(sweep: Sweep, cells: list[CellSummary], percent: dict[str, bool]) -> dict[str, Any]:
    """What the sweep's page is drawn from (``reslab.report.sweep_page``)."""
    return {
        "name": sweep.name,
        "file": str(sweep.path),
        "seeds": sweep.seeds,
        "metrics": sweep.metrics,
        "percent": percent,
        "axes": [{"name": a.name, "labels": list(a.labels), "numbers": a.numbers} for a in sweep.axes],
        "cells": [
            {
                "labels": c.labels,
                "runs": c.run_ids,
                "diverged": c.diverged,
                "stats": {m: s.to_dict() for m, s in c.stats.items()},
            }
            for c in cells
        ],
    }
