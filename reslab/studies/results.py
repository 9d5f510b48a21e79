"""What a study hands to the report: data only, never plots.

``DIR/results.json`` holds ``{"env": {...}, "scale": ..., "studies": [StudyResult, ...]}``.
Each study's figures are ``FigureSpec`` data (series of numbers, matrices), which the report
layer renders; nothing here imports matplotlib.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("holds", "fails", "inconclusive")


@dataclass
class Series:
    """One line (or bar group) of a figure. ``err`` is a ± band (std over seeds) if given;
    ``lower``/``upper`` give a band that is not symmetric (e.g. × or ÷ a factor on a log axis)."""

    label: str
    x: list[float]
    y: list[float]
    err: list[float] | None = None
    style: str = "solid"  # "solid", "dashed", "dotted" or "markers"
    color: str | None = None  # a matplotlib colour; None lets the report choose
    lower: list[float] | None = None
    upper: list[float] | None = None


@dataclass
class FigureSpec:
    """A figure as data. ``kind``:
    - "lines": ``series`` against a shared axis (log axes via ``logx``/``logy``);
    - "bars": ``series`` with categorical ``categories`` on x (one bar group per series);
    - "image": ``matrix`` shown as a heat map (e.g. a gradient covariance);
    - "images": several matrices side by side (``matrices`` with ``panel_titles``), on one
      colour scale; with ``contours`` as filled contour maps (Li2018's loss surfaces) over
      ``extent`` = [x0, x1, y0, y1].
    ``panel`` groups figures into one row of subplots when they share a panel name.
    """

    kind: str
    title: str
    xlabel: str = ""
    ylabel: str = ""
    series: list[Series] = field(default_factory=list)
    categories: list[str] | None = None
    matrix: list[list[float]] | None = None
    matrices: list[list[list[float]]] | None = None
    panel_titles: list[str] | None = None
    contours: bool = False
    extent: list[float] | None = None
    ylim: list[float] | None = None  # [low, high]: panels that must be compared by eye share it
    logx: bool = False
    logy: bool = False
    hlines: list[dict[str, Any]] = field(default_factory=list)  # [{"y": 90, "label": "chance"}]
    marks: list[float] = field(default_factory=list)  # x positions to highlight (e.g. downsampling blocks)
    caption: str = ""
    panel: str = ""  # consecutive figures with the same non-empty panel name share one row of subplots


@dataclass
class StudyResult:
    """One claim, measured: the verdict and everything needed to trust it."""

    id: str
    claim: str  # the claim in one sentence
    scale: str
    seeds: int
    verdict: str  # one of VERDICTS
    verdict_rule: str  # the rule, written before tuning, in words
    numbers: dict[str, Any]  # our measurements behind the verdict (mean ± std where trained)
    anchors: dict[str, Any]  # the papers' numbers, with their source
    evidence: list[str] = field(default_factory=list)  # one line per check of the rule, with its numbers
    figures: list[FigureSpec] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)  # models, data, seeds, recipe: what was run
    sources: list[str] = field(default_factory=list)  # papers, by the short names of claims.md
    notes: str = ""  # e.g. why a claim does not reproduce at this scale
    elapsed_s: float = 0.0
    runs: list[str] = field(default_factory=list)  # run ids in the store
    key_number: str = ""  # the headline number for the summary table, e.g. "plain-56 68±3% vs plain-20 17±1%"
    seed_values: list[int] = field(default_factory=list)  # which seeds (a study's seed set K of N: K·N … K·N+N−1)
    precision: str = "recipe"  # the training precision forced on every run, or "recipe" (each recipe's own)
    run_precisions: list[str] = field(default_factory=list)  # what its runs computed in (``auto`` resolved)
    code: str = ""  # git commit of the (clean) checkout that computed it; empty when unknown
    stability: dict[str, str] = field(default_factory=dict)  # verdict per `reslab stability` cell, where one ran

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyResult:
        data = dict(data)
        figures = []
        for fig in data.pop("figures", []):
            fig = dict(fig)
            fig["series"] = [Series(**s) for s in fig.get("series", [])]
            figures.append(FigureSpec(**fig))
        return cls(**data, figures=figures)
