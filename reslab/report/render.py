"""``render_report(DIR)``: results.json -> report.html, report.md and figures/, atomically.

The runner calls this after every study, so a partial report always exists; figures whose
data did not change since the last render are reused from ``figures/`` (their content keys
are kept in ``figures/.manifest.json``), which keeps each call to well under a second for
unchanged studies. Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write
from .figures import RenderedFigure, extension, group_figures, render_group
from .html import render_html
from .load import load_results
from .markdown import FIGURES_DIR, render_markdown
from .page import study_views
from .values import unique_slugs

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
MANIFEST = ".manifest.json"
_FIGURE_SUFFIXES = (".svg", ".png")


@dataclass
class ReportPaths:
    """What ``render_report`` wrote, and the figures it could not draw (also shown in the report)."""

    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def write_public(path: Path, data: bytes) -> None:
    """Write a report file atomically, readable by everyone (a report may be served as it is)."""
    atomic_write(path, lambda f: f.write(data), permissions=0o644)


def _load_manifest(fig_dir: Path) -> dict[str, dict]:
    try:
        data = json.loads((fig_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cached(fig_dir: Path, manifest: dict[str, dict], name: str, key: str) -> tuple[bytes, list[str]] | None:
    entry = manifest.get(name)
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("notes"), list):
        return None
    try:
        return (fig_dir / name).read_bytes(), [str(n) for n in entry["notes"]]
    except OSError:
        return None


def render_report(directory: str | Path) -> ReportPaths:
    """Render ``directory/results.json`` into report.html, report.md and figures/ beside it.

    Raises ``ReportError`` (a ``ReslabError``) when results.json is missing or malformed.
    """
    directory = Path(directory)
    results = load_results(directory)
    fig_dir = directory / FIGURES_DIR
    fig_dir.mkdir(exist_ok=True)
    manifest = _load_manifest(fig_dir)
    new_manifest: dict[str, dict] = {}
    slugs = unique_slugs([s.id for s in results.studies])
    rendered: list[list[RenderedFigure]] = []
    paths = ReportPaths(html=directory / HTML_FILE, markdown=directory / MARKDOWN_FILE)
    for study, slug in zip(results.studies, slugs):
        figs = []
        for n, group in enumerate(group_figures(study.figures), start=1):
            name = f"{slug}-{n}.{extension(group)}"
            fig = render_group(name, group, lambda key, name=name: _cached(fig_dir, manifest, name, key))
            if fig.error:
                paths.problems.append(f"{study.id}: figure {n} ({fig.titles[0]!r}) could not be drawn: {fig.error}")
            else:
                path = fig_dir / name
                if not path.is_file() or path.read_bytes() != fig.data:
                    write_public(path, fig.data)
                new_manifest[name] = {"key": fig.key, "notes": fig.notes}
                paths.figures.append(path)
            figs.append(fig)
        rendered.append(figs)
    write_public(fig_dir / MANIFEST, json.dumps(new_manifest, indent=1, sort_keys=True).encode())
    for stale in fig_dir.iterdir():  # figures of studies or figures that no longer exist
        if stale.suffix in _FIGURE_SUFFIXES and stale.name not in new_manifest:
            stale.unlink(missing_ok=True)
    views = study_views(results, slugs, rendered)
    write_public(paths.markdown, render_markdown(results, views).encode("utf-8"))
    write_public(paths.html, render_html(results, views).encode("utf-8"))
    return paths
