"""Speed of the report layer, for ``reslab bench``: the runner re-renders after every study.

Measured on the synthetic sample (``sample.py``): a cold render of 16 studies (every figure
drawn), and the runner's case, a re-render after one study changed (the others' figures come
from the cache in figures/).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ..benchmark import BenchContext, Measurement
from .render import render_report
from .sample import sample_results

STUDIES = 16


def _timed(directory: Path) -> tuple[float, int]:
    t = time.perf_counter()
    paths = render_report(directory)
    return time.perf_counter() - t, len(paths.figures)


def bench(ctx: BenchContext) -> list[Measurement]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        data = sample_results(STUDIES)
        (out / "results.json").write_text(json.dumps(data))
        cold, n_figures = _timed(out)
        # the runner's case: one more study finished, every other figure unchanged
        data["studies"][-1]["figures"][0]["series"][0]["y"][0] += 1.0
        (out / "results.json").write_text(json.dumps(data))
        warm, _ = _timed(out)
        size = (out / "report.html").stat().st_size
    what = f"{STUDIES} synthetic studies, {n_figures} figures"
    return [
        Measurement(f"report: cold render ({what})", round(cold, 2), "s", "< 30 s", cold < 30),
        Measurement(
            f"report: re-render after one study changed ({what})",
            round(warm, 2),
            "s",
            "< 3 s",
            warm < 3,
            reference=f"cold render {cold:.2f} s",
            ratio=round(warm / cold, 2),
        ),
        Measurement("report: report.html size", round(size / 2**20, 2), "MiB", "< 5 MiB", size < 5 * 2**20),
    ]
