"""What the report says, independent of HTML or Markdown: both writers render this, so they agree."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..studies.results import VERDICTS, StudyResult
from .figures import RenderedFigure
from .load import Results
from .values import flatten, fmt_duration, fmt_value, paired_rows

TITLE = "What residual connections solve, measured"


@dataclass
class FigureView:
    number: str  # "3.2": study 3, figure 2
    file: RenderedFigure

    @property
    def title(self) -> str:
        return " · ".join(t for t in self.file.titles if t)

    @property
    def text(self) -> str:
        """Title and captions as one sentence-ish line (the caption under the image)."""
        parts = [self.title] if self.title else []
        parts += self.file.captions
        return ". ".join(p.rstrip(". ") for p in parts) + ("." if parts else "")


@dataclass
class StudyView:
    index: int  # 1-based position in the report
    slug: str  # file- and id-safe form of the study id
    study: StudyResult
    figures: list[FigureView] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"study-{self.slug}"

    @property
    def key_number(self) -> str:
        """The study's own headline number if it gives one, else its first measured number."""
        key = getattr(self.study, "key_number", "")
        if key:
            return str(key)
        for name, value in flatten(self.study.numbers):
            return f"{name}: {fmt_value(value)}"
        return "—"

    @property
    def elapsed(self) -> str:
        return fmt_duration(self.study.elapsed_s)

    @property
    def stability(self) -> str:
        """Whether ``reslab stability`` found the same verdict in every precision and seed set."""
        cells = self.study.stability
        if not cells:
            return ""
        same = len(set(cells.values())) == 1
        each = ", ".join(f"{cell} {verdict}" for cell, verdict in cells.items())
        found = "the same in every cell" if same else "not the same in every cell, so not a finding yet"
        return f"Verdict in the {len(cells)} cells of reslab stability: {each}; {found}."

    def numbers_table(self) -> tuple[list[tuple[str, str, str]], str]:
        return paired_rows(self.study.numbers, self.study.anchors)

    @property
    def ours_header(self) -> str:
        seeds = self.study.seeds
        return f"ours ({self.study.scale}, {seeds} seed{'s' if seeds != 1 else ''})"

    def setup_rows(self) -> list[tuple[str, Any]]:
        """``setup`` as given, then the seeds, scale and the runs used, so 'what was run' is complete."""
        rows = list(self.study.setup.items())
        names = {k for k, _ in rows}
        if "seeds" not in names:
            rows.append(("seeds", self.study.seeds))
        if "scale" not in names:
            rows.append(("scale", self.study.scale))
        if self.study.run_precisions:
            rows.append(("training precision", ", ".join(self.study.run_precisions)))
        runs = self.study.runs
        if runs:
            shown = ", ".join(runs[:6]) + (f", … ({len(runs)} runs)" if len(runs) > 6 else "")
            rows.append(("runs in the store", shown))
        return rows


def study_views(results: Results, slugs: list[str], figures: list[list[RenderedFigure]]) -> list[StudyView]:
    views = []
    for i, (study, slug, figs) in enumerate(zip(results.studies, slugs, figures), start=1):
        view = StudyView(index=i, slug=slug, study=study)
        view.figures = [FigureView(number=f"{i}.{j}", file=f) for j, f in enumerate(figs, start=1)]
        views.append(view)
    return views


def when(iso: str) -> str:
    """An ISO time as ``2025-11-28 16:44 UTC`` (local offset kept); anything else as it is."""
    if not iso:
        return "unknown time"
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is None:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    zone = "UTC" if t.utcoffset() == dt.timedelta(0) else t.strftime("UTC%z")
    return t.strftime("%Y-%m-%d %H:%M:%S ") + zone


def meta_items(results: Results) -> list[tuple[str, str]]:
    studies_time = sum(s.elapsed_s for s in results.studies if isinstance(s.elapsed_s, int | float))
    items = [
        ("scale", results.scale or "unknown"),
        ("started", when(results.started)),
        ("took", fmt_duration(results.elapsed_s) if results.elapsed_s is not None else "n/a"),
        ("studies", f"{len(results.studies)} (their own time: {fmt_duration(studies_time)})"),
    ]
    items += [(str(k), fmt_value(v)) for k, v in results.extra.items()]
    return items


def tally(studies: list[StudyResult]) -> list[tuple[str, int]]:
    """How many studies got each verdict, in the order holds, fails, inconclusive."""
    return [(v, sum(s.verdict == v for s in studies)) for v in VERDICTS]


def tally_words(verdict: str, count: int) -> str:
    verb = {"holds": ("holds", "hold"), "fails": ("fails", "fail"), "inconclusive": ("inconclusive",) * 2}
    return f"{count} {verb[verdict][0 if count == 1 else 1]}"


def env_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, fmt_value(v)) for k, v in flatten(env)]
