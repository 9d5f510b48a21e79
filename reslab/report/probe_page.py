"""The page of one ``reslab probe`` run: figures and numbers, self-contained, without a verdict.

Reads the run's folder (``probe.json`` and the result files) and writes ``figures/`` and
``report.html``: the report's style, figures inline as data URIs, every text escaped,
and the same Content-Security-Policy, so the page fetches nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import atomic_write
from ..probes.runner import load_run
from .figures import RenderedFigure, extension, group_figures, render_group
from .html import e, figure_html, page
from .page import FigureView
from .probe_figures import FIGURES

PAGE = "report.html"


def _rows(items: dict[str, Any]) -> str:
    return "".join(f"<tr><td>{e(str(k))}</td><td class='num'>{e(v)}</td></tr>" for k, v in items.items())


def _setup(manifest: dict[str, Any]) -> str:
    rows = {**manifest.get("context", {}), "samples": manifest.get("samples"), "settings": manifest.get("settings")}
    rows["probe time"] = f"{manifest.get('seconds', 0):.1f} s"
    body = "".join(f"<dt>{e(str(k))}</dt><dd>{e(_text(v))}</dd>" for k, v in rows.items() if v not in (None, ""))
    return f"<dl class='setup'>{body}</dl>"


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def render_probe_page(manifest: dict[str, Any], figures: list[RenderedFigure], numbers: dict[str, Any]) -> str:
    name = manifest["probe"]
    title = f"reslab probe {name}"
    context = manifest.get("context", {})
    subject = context.get("model") or context.get("run") or "a net"
    views = [figure_html(FigureView(str(i + 1), f), "probe") for i, f in enumerate(figures)]
    header = f"<h1>{e(title)}</h1><p class='meta'>{e(manifest.get('what', ''))} · on <b>{e(subject)}</b></p>"
    body = [
        "<main><section class='study'>",
        "<h3>Numbers</h3>",
        f"<table class='numbers'><tbody>{_rows(numbers)}</tbody></table>",
        "<h3>Figures</h3>",
        *views,
        "<h3>What was run</h3>",
        _setup(manifest),
        "<p class='foot'>A probe measures; it gives no verdict (the studies of <code>reslab reproduce</code> do).</p>",
        "</section></main>",
    ]
    return page(title, header, body)


def write_probe_page(folder: str | Path) -> list[Path]:
    """Draw the figures and write the page of the probe run in ``folder``; returns the files written."""
    run = load_run(folder)
    specs, numbers = FIGURES[run.manifest["probe"]](run.results)
    fig_dir = run.folder / "figures"
    fig_dir.mkdir(exist_ok=True)
    figures, written = [], []
    for i, group in enumerate(group_figures(specs)):
        fig = render_group(f"{run.manifest['probe']}-{i + 1}.{extension(group)}", group)
        figures.append(fig)
        if fig.data:
            atomic_write(fig_dir / fig.name, lambda f, data=fig.data: f.write(data))
            written.append(fig_dir / fig.name)
    page = render_probe_page(run.manifest, figures, numbers)
    atomic_write(run.folder / PAGE, lambda f: f.write(page.encode("utf-8")))
    return written + [run.folder / PAGE]
