"""The page of one ``reslab sweep``: the summary table and one figure per axis, self-contained.

Drawn from ``sweep.json`` alone (``reslab.sweeps.summary.to_json``), in the report's style:
figures inline as data URIs, every text escaped, the same Content-Security-Policy.

Each axis gets one figure: every metric (a panel each) against the axis's values, mean ±
std over seeds, with one line (or bar group) per combination of the other axes' values.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from ..studies.results import FigureSpec, Series
from ..studies.stats import Summary
from ..sweeps.summary import show
from .figures import RenderedFigure, extension, group_figures, render_group
from .html import e, figure_html, page
from .page import FigureView
from .render import write_public

PAGE, DATA, CSV = "summary.html", "sweep.json", "summary.csv"


def _mean_std(cell: dict[str, Any], metric: str, scale: float) -> tuple[float | None, float | None]:
    s = cell["stats"][metric]
    if not s["n"]:
        return None, None
    return scale * s["mean"], scale * s["std"] if s["n"] > 1 else 0.0


def axis_figures(data: dict[str, Any], axis: dict[str, Any]) -> list[FigureSpec]:
    """The panels (one per metric) of ``axis``'s figure."""
    others = [a for a in data["axes"] if a["name"] != axis["name"]]
    cells = {tuple(sorted(c["labels"].items())): c for c in data["cells"]}
    combos = list(itertools.product(*(a["labels"] for a in others)))
    numbers = axis["numbers"]
    specs = []
    for metric in data["metrics"]:
        scale = 100.0 if data["percent"].get(metric) else 1.0
        series = []
        for combo in combos:
            fixed = dict(zip((a["name"] for a in others), combo))
            points = [
                _mean_std(cells[tuple(sorted({**fixed, axis["name"]: v}.items()))], metric, scale)
                for v in axis["labels"]
            ]
            label = ", ".join(f"{k}={v}" for k, v in fixed.items()) or data["name"]
            series.append(
                Series(
                    label,
                    list(numbers or []),
                    [p[0] for p in points],
                    [p[1] for p in points],
                    style="solid+markers" if numbers else "solid",
                )
            )
        spread = numbers and min(numbers) > 0 and max(numbers) / min(numbers) >= 16
        specs.append(
            FigureSpec(
                "lines" if numbers else "bars",
                metric + (" (%)" if scale != 1.0 else ""),
                xlabel=axis["name"],
                ylabel=metric,
                series=series,
                categories=None if numbers else list(axis["labels"]),
                logx=bool(spread),
                panel=f"axis-{axis['name']}",
            )
        )
    n = len(data["seeds"])
    specs[0].caption = f"Each metric against {axis['name']}: mean ± std over {n} seed{'s' * (n != 1)} per point" + (
        ", one series per combination of the other axes" if others else ""
    )
    return specs


def _table(data: dict[str, Any]) -> str:
    axes, metrics = [a["name"] for a in data["axes"]], data["metrics"]
    head = "".join(f"<th>{e(a)}</th>" for a in axes) + "<th class='num'>runs</th>"
    head += "".join(f"<th class='num'>{e(m)}{' (%)' if data['percent'].get(m) else ''}</th>" for m in metrics)
    rows = []
    for c in data["cells"]:
        runs = f"{len(c['runs'])}" + (f" ({c['diverged']} diverged)" if c["diverged"] else "")
        cols = "".join(f"<td>{e(c['labels'][a])}</td>" for a in axes) + f"<td class='num'>{e(runs)}</td>"
        for m in metrics:
            s = c["stats"][m]
            text = show(Summary(s["mean"], s["std"], s["n"]), bool(data["percent"].get(m))) if s["n"] else "n/a"
            cols += f"<td class='num'>{e(text)}</td>"
        rows.append(f"<tr>{cols}</tr>")
    return f"<table class='numbers'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_sweep_page(data: dict[str, Any], figures: list[RenderedFigure]) -> str:
    title = f"reslab sweep {data['name']}"
    n_runs = sum(len(c["runs"]) for c in data["cells"])
    meta = f"{len(data['cells'])} cells × {len(data['seeds'])} seed(s) = {n_runs} runs · from {data['file']}"
    views = [figure_html(FigureView(str(i + 1), f), "sweep") for i, f in enumerate(figures)]
    if not views:
        views = ["<p>The sweep has no axis, so there is nothing to plot.</p>"]
    header = f"<h1>{e(title)}</h1><p class='meta'>{e(meta)}</p>"
    body = [
        "<main><section class='study'>",
        "<h3>Summary</h3>",
        _table(data),
        f"<p class='source'>Mean ± std over seeds per cell; the same numbers are in {CSV}.</p>",
        "<h3>One figure per axis</h3>",
        *views,
        "</section></main>",
    ]
    return page(title, header, body)


def write_sweep_page(folder: str | Path) -> Path:
    """Draw the figures and write the page of the sweep whose ``sweep.json`` is in ``folder``."""
    folder = Path(folder)
    data = json.loads((folder / DATA).read_text())
    fig_dir = folder / "figures"
    fig_dir.mkdir(exist_ok=True)
    figures = []
    for axis in data["axes"]:
        for group in group_figures(axis_figures(data, axis)):
            fig = render_group(f"axis-{len(figures) + 1}.{extension(group)}", group)
            figures.append(fig)
            if fig.data:
                write_public(fig_dir / fig.name, fig.data)
    write_public(folder / PAGE, render_sweep_page(data, figures).encode("utf-8"))
    return folder / PAGE
